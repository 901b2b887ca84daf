"""The shop: accounts, orders paid through a payment provider, and receipts sent by a worker."""
