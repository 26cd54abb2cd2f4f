"""The standalone server: one host of the extension, with its own users and web UI."""

from webservice.standalone.app import create_app

__all__ = ["create_app"]
