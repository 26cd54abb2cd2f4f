"""The plugin API: everything an operation of ``webservice.php`` is written with.

::

    from webservice.plugin import OperationContext, Params, String, operation

    class WhoAmIParams(Params):
        verbose = String()

    @operation("whoami", params=WhoAmIParams, method="GET")
    def whoami(context: OperationContext, params: dict) -> dict:
        "Says who the caller is."
        session = context.require_session()
        return {"user": session.username}

Declare it in your distribution's ``pyproject.toml`` and every WSGate app that has it installed
serves it::

    [project.entry-points."wsgate.operations"]
    whoami = "my_package.whoami:whoami"
"""

from webservice.api.context import OperationContext
from webservice.api.errors import (
    ErrorCode,
    WebServiceError,
    authentication_required,
    session_refused,
    too_many_requests,
    user_not_found,
)
from webservice.api.params import (
    Boolean,
    DateTime,
    Double,
    Encoded,
    Params,
    String,
    ValidationError,
)
from webservice.api.registry import Operation, RegistryError, operation
from webservice.auth.csrf import CSRF_HEADER, has_valid_csrf_header, origin_verdict
from webservice.auth.login import LoginRefused, Refusal
from webservice.events import SessionEvent
from webservice.store.session_values import ClientInfo, Session
from webservice.store.users import webservice_user_id

__all__ = [
    "CSRF_HEADER",
    "LoginRefused",
    "Refusal",
    "has_valid_csrf_header",
    "origin_verdict",
    "Boolean",
    "ClientInfo",
    "DateTime",
    "Double",
    "Encoded",
    "ErrorCode",
    "Operation",
    "OperationContext",
    "Params",
    "RegistryError",
    "Session",
    "SessionEvent",
    "String",
    "ValidationError",
    "WebServiceError",
    "authentication_required",
    "operation",
    "session_refused",
    "too_many_requests",
    "user_not_found",
    "webservice_user_id",
]
