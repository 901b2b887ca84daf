"""The shop: accounts, orders paid through a payment provider, and receipts sent by a worker.

The folders are the layers (after cosmicpython): `domain` holds the rules and knows nothing of
HTTP or SQL; `adapters` talk to the outside world (the database, the payment provider, the
mailer); `service_layer` runs each use case inside a unit of work; `entrypoints` only translate
(HTTP requests, the worker's command line) into calls to the service layer.
"""
