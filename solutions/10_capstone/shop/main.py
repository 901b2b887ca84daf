"""`uvicorn shop.main:app`: the ASGI app. Settings are read when it starts (its lifespan)."""

from .entrypoints.api import create_app

app = create_app()
