"""The operation registry: what ``webservice.php`` can do, and how plugins add to it.

A plugin is an :class:`Operation`: a name, an HTTP method hint, whether it needs a session, a
marshmallow schema for its parameters, and a handler. Make one with the :func:`operation`
decorator. An installed distribution adds operations through the entry-point group
``wsgate.operations``, each entry point naming an :class:`Operation` (wsgate's own built-ins, in
the package ``operations``, are declared the same way)::

    [project.entry-points."wsgate.operations"]
    whoami = "my_package.whoami:whoami"
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from marshmallow import Schema, ValidationError

from webservice.api.errors import ErrorCode, WebServiceError
from webservice.api.params import BareTextFields, Params, bare_text_fields, load_bare_text

if TYPE_CHECKING:
    from webservice.api.context import OperationContext

ENTRY_POINT_GROUP = "wsgate.operations"
METHODS = ("GET", "POST")

Handler = Callable[["OperationContext", dict[str, Any]], Any]


class RegistryError(Exception):
    """The set of operations is inconsistent (e.g. two plugins claim one name)."""


@dataclass(frozen=True)
class Operation:
    """One operation of ``webservice.php``."""

    name: str
    handler: Handler
    params: Schema = field(default_factory=Params)
    method: str = "POST"
    needs_session: bool = True
    #: It ends sessions (logout and the like): a retry whose own session a revocation ended
    #: moments ago still runs, with ``context.session_ended`` (see OperationContext).
    ends_sessions: bool = False
    #: The handler checks the caller's session itself, when it needs it checked:
    #: ``context.checked()`` runs the endpoint's check, which otherwise runs before the handler
    #: (a change that checks the session in its own round trip saves one: ``logout``). A request
    #: that names no session is refused first all the same.
    checks_own_session: bool = False
    #: Whether the handler reads Flask's request context (``flask.request``, ``session``, ``g``)
    #: beyond its OperationContext. Those that do not are answered on the lean path
    #: (lean_path.py) when the request carries no cookie.
    uses_flask_request: bool = True
    description: str = ""
    #: Where it came from: a distribution and its entry point, else the handler's module.
    source: str = field(default="", compare=False)

    #: The schema's fields when it has only bare text ones (params.bare_text_fields).
    _bare_text: BareTextFields | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_bare_text", bare_text_fields(self.params))

    def load_params(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The handler's parameters, validated; raises the envelope's parameter errors."""
        if self._bare_text is not None:
            # The hot path of listtypes-like operations (the base schema: nothing to load),
            # logout and login skips marshmallow's machinery when the values are good.
            loaded = load_bare_text(self._bare_text, raw)
            if loaded is not None:
                return loaded
        try:
            return self.params.load(raw)
        except ValidationError as error:
            raise _parameter_error(self.params, error) from None

    def describe_params(self) -> list[tuple[str, str, bool]]:
        """(name, type, required) for each parameter, in declaration order."""
        return [
            (declared.data_key or name, type(declared).__name__.lower(), declared.required)
            for name, declared in self.params.fields.items()
        ]


def operation(
    name: str,
    *,
    params: type[Schema] = Params,
    method: str = "POST",
    needs_session: bool = True,
    ends_sessions: bool = False,
    checks_own_session: bool = False,
    uses_flask_request: bool = True,
) -> Callable[[Handler], Operation]:
    """Makes the decorated handler an :class:`Operation`; its docstring becomes the description.
    ``ends_sessions``, ``checks_own_session``: see those attributes of :class:`Operation`.

    ``uses_flask_request=False`` declares that the handler reads nothing of Flask's request
    context but its OperationContext: it is then answered without one, which is faster (see
    webservice/api/lean_path.py)."""
    if method not in METHODS:
        raise RegistryError(f"operation {name!r}: method must be one of {METHODS}")

    def wrap(handler: Handler) -> Operation:
        return Operation(
            name=name.lower(),
            handler=handler,
            params=params(),
            method=method,
            needs_session=needs_session,
            ends_sessions=ends_sessions,
            checks_own_session=checks_own_session,
            uses_flask_request=uses_flask_request,
            description=(handler.__doc__ or "").strip().split("\n")[0],
        )

    return wrap


class OperationRegistry:
    """Operations by (lower-case) name. A name can be registered once."""

    def __init__(self) -> None:
        self._operations: dict[str, Operation] = {}
        self._sources: dict[str, str] = {}

    def add(self, op: Operation, source: str) -> None:
        if not isinstance(op, Operation):  # type: ignore[unreachable]
            raise RegistryError(f"{source} is not an Operation (got {type(op).__name__})")
        if op.name in self._operations:
            raise RegistryError(
                f"duplicate operation {op.name!r}: from {source} and {self._sources[op.name]}"
            )
        self._operations[op.name] = op
        self._sources[op.name] = source

    def get(self, name: str) -> Operation | None:
        return self._operations.get(name.lower())

    def source(self, name: str) -> str:
        return self._sources[name]

    def __iter__(self) -> Iterator[Operation]:
        return iter(sorted(self._operations.values(), key=lambda op: op.name))

    def __len__(self) -> int:
        return len(self._operations)

    @classmethod
    def of(cls, operations: Iterable[Operation]) -> OperationRegistry:
        registry = cls()
        for op in operations:
            registry.add(op, op.source or op.handler.__module__)
        return registry


def installed_operations(group: str = ENTRY_POINT_GROUP) -> list[Operation]:
    """Every operation that installed distributions declare in the entry-point group (wsgate's
    own built-ins among them); raises RegistryError for an entry point that is no Operation."""
    found = []
    for entry_point in entry_points(group=group):
        op = entry_point.load()
        if not isinstance(op, Operation):
            raise RegistryError(
                f"{_distribution(entry_point)} ({entry_point.value}) is not an Operation "
                f"(got {type(op).__name__})"
            )
        found.append(replace(op, source=f"{_distribution(entry_point)} ({entry_point.value})"))
    return found


def _distribution(entry_point: Any) -> str:
    return entry_point.dist.name if entry_point.dist else "unknown distribution"


def _parameter_error(schema: Schema, error: ValidationError) -> WebServiceError:
    """The envelope error for the first failing parameter, in declaration order."""
    messages = error.normalized_messages()
    for attribute, declared in schema.fields.items():
        name = declared.data_key or attribute
        if name not in messages:
            continue
        reason = _first_message(messages[name])
        if reason == declared.error_messages["required"]:
            return WebServiceError(
                ErrorCode.MANDATORY_FIELDS_MISSING, f"Mandatory field missing: {name}"
            )
        return WebServiceError(ErrorCode.INVALID_PARAMETER, f"Invalid parameter {name}: {reason}")
    return WebServiceError(
        ErrorCode.INVALID_PARAMETER, f"Invalid parameters: {_first_message(messages)}"
    )


def _first_message(messages: Any) -> str:
    while isinstance(messages, (list, dict)) and messages:
        messages = messages[0] if isinstance(messages, list) else next(iter(messages.values()))
    return str(messages)
