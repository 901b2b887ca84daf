"""Settings, from environment variables."""

import os

DATABASE_PATH = os.environ.get("SHOP_DATABASE_PATH", "shop.db")
PAYMENTS_URL = os.environ.get("SHOP_PAYMENTS_URL", "http://127.0.0.1:8001")
PAYMENTS_API_KEY = os.environ.get("SHOP_PAYMENTS_API_KEY", "dev-payments-key")
MAIL_URL = os.environ.get("SHOP_MAIL_URL", "http://127.0.0.1:8002")
MAIL_API_KEY = os.environ.get("SHOP_MAIL_API_KEY", "dev-mail-key")
SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "dev-secret-key")
