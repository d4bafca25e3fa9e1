"""The HTTP layer: the app, Plivo's endpoint, the management API, media, metrics, health.

Nothing imports it; `python -m service.web` serves it (`__main__`)."""
