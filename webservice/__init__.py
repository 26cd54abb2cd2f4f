"""wsgate: a coreBOS-compatible web service gateway with linked web/API sessions in Redis."""

from webservice.app import create_app

__all__ = ["create_app"]
