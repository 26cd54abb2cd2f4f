"""wsgate: a coreBOS-compatible ``webservice.php`` for Flask apps, with linked web/API sessions
in Redis.

The public API: the extension :class:`WSGate`, :class:`ApiUser` (what an ``api_user_loader``
answers), the session events (:mod:`webservice.events`), the plugin API
(:mod:`webservice.plugin`) and the errors. The standalone server is
``webservice.standalone.create_app``.
"""

from webservice import events
from webservice.api.errors import ErrorCode, WebServiceError
from webservice.auth.users import ApiUser
from webservice.extension import WSGate
from webservice.store.confirmation import NotConfirmed

__all__ = ["ApiUser", "ErrorCode", "NotConfirmed", "WebServiceError", "WSGate", "events"]
