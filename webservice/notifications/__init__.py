"""Logout notifications: OpenID Connect Back-Channel Logout 1.0 tokens, sent to the services
in ``LOGOUT_RECEIVERS`` whenever a session family ends (README: Logout notifications).

- ``announce``: writes one outbox entry per ended family and receiver in the round trip that
  ends the family (store/outbox.py), by listening to ``family_ended`` (webservice.events);
- ``tokens``: signs the logout tokens (store/signing_keys.py keeps the keys in Redis, or
  ``key_files`` reads them from files);
- ``delivery``: the process that POSTs them (``flask notifications deliver``);
- ``metrics``: what ``/metrics`` shows of them.

The keys are published at ``/.well-known/jwks.json`` by api/jwks.py, and the ``flask
notifications`` commands are in cli/notifications.py: both use an app's gateway, which is built
from this package's settings (services.py), so they sit above it.
"""
