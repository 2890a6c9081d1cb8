"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app` (also `flask --app wsgi ...`).

`celery -A wsgi:celery_app worker -B` runs the batch worker on the same app.
"""

import sys

from api import create_app
from api.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    sys.exit(f"modelgate: {error}")

celery_app = app.extensions["celery"]
