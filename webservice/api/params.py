"""Parameter schemas for operation plugins: the coreBOS parameter types as marshmallow fields.

coreBOS types each parameter ``string``, ``encoded`` (a JSON string decoded before the call),
``datetime``, ``double`` or ``boolean``; these are the matching fields. A plugin's schema derives
from :class:`Params`, which ignores parameters it does not declare (every request carries
``operation`` and often ``sessionName``).
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields


class Params(Schema):
    """Base schema of every operation's parameters."""

    class Meta:
        unknown = EXCLUDE


class String(fields.String):
    """A ``string`` parameter."""


class Double(fields.Float):
    """A ``double`` parameter."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_nan", False)
        super().__init__(**kwargs)


class Boolean(fields.Boolean):
    """A ``boolean`` parameter (``true``/``false``, ``1``/``0``, ``on``/``off``, ``yes``/``no``)."""


class DateTime(fields.DateTime):
    """A ``datetime`` parameter (ISO 8601)."""


class Encoded(fields.Field):
    """An ``encoded`` parameter: a JSON text, decoded; a JSON request body may pass the value as is."""

    default_error_messages = {"invalid": "must be valid JSON"}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as error:
            raise self.make_error("invalid") from error


__all__ = ["Boolean", "DateTime", "Double", "Encoded", "Params", "String", "ValidationError"]
