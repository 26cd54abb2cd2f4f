"""wsgate: a coreBOS-compatible web service gateway with linked web/API sessions in Redis."""

from webservice.standalone.app import create_app

__all__ = ["create_app"]
