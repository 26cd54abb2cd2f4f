"""An example third-party wsgate operation: ``echo`` answers its text and who asked."""

from __future__ import annotations

from typing import Any

from webservice.api.context import OperationContext
from webservice.api.params import Params, String
from webservice.api.registry import operation


class EchoParams(Params):
    text = String(required=True)


@operation("Echo", params=EchoParams, method="POST", needs_session=True)
def echo(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Answers the given text together with the caller's username."""
    return {"text": params["text"], "user": context.require_session().username}
