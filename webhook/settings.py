"""The environment variables through which `headroom webhook` configures the app in each
gunicorn worker (the workers build the app themselves, from `webhook.app:create_app()`).

A module of its own so that the command can name them without importing the app: the app
imports prometheus_client, which must first be imported in the workers (see serving.server).
"""

PROFILES_ENV = "HEADROOM_WEBHOOK_PROFILES"
POLL_ENV = "HEADROOM_WEBHOOK_POLL_SECONDS"
