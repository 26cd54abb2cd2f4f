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


#: (name, required) of each field of a schema of bare text fields (:func:`bare_text_fields`).
BareTextFields = tuple[tuple[str, bool], ...]


def bare_text_fields(schema: Schema) -> BareTextFields | None:
    """The fields of ``schema`` when loading it only picks text values out, else None.

    So it is when every field is a bare ``String`` (no validator, default, other name or
    attribute, ``None`` not allowed), nothing is loaded but them (unknown names excluded) and the
    schema has no hooks (``pre_load``, ``validates_schema``, ...): a text value then loads as it
    is. :func:`load_bare_text` does that without marshmallow's machinery, a tenth of the cost of
    a ``logout`` or a ``login`` (which name one or two such fields).
    """
    # marshmallow keeps a schema's hooks in ``_hooks``; a version that does not is not guessed at.
    hooks = getattr(schema, "_hooks", None)
    if not isinstance(hooks, dict) or any(hooks.values()) or schema.unknown != EXCLUDE:
        return None
    bare = []
    for name, declared in schema.load_fields.items():
        if not (
            type(declared) in (String, fields.String)
            and not declared.validators
            and declared.load_default is fields.missing_
            and declared.data_key is None
            and declared.attribute is None
            and not declared.allow_none
        ):
            return None
        bare.append((name, declared.required))
    return tuple(bare)


def load_bare_text(bare: BareTextFields, raw: dict[str, Any]) -> dict[str, Any] | None:
    """What loading a schema of ``bare`` text fields answers for ``raw``; None when that is an
    error (a value that is not text, a required one missing): marshmallow then says which."""
    loaded = {}
    for name, required in bare:
        value = raw.get(name, fields.missing_)
        if type(value) is str:
            loaded[name] = value
        elif value is not fields.missing_ or required:
            return None
    return loaded


__all__ = ["Boolean", "DateTime", "Double", "Encoded", "Params", "String", "ValidationError"]
