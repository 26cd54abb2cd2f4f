"""``listtypes``: the entity types the caller can use through this gateway."""

from __future__ import annotations

from typing import Any

from webservice.plugin import OperationContext, operation

#: The gateway itself serves one entity, its users (webservice ids ``19x<id>``).
ENTITY_TYPES = {"Users": {"isEntity": True, "label": "Users", "singular": "User"}}


@operation("listtypes", method="GET", uses_flask_request=False)
def listtypes(context: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Lists the entity types available to the caller."""
    return {"types": sorted(ENTITY_TYPES), "information": ENTITY_TYPES}
