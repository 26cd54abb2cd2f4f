"""wsgate's built-in operations of webservice.php, one module each.

They are plugins like any other: each is declared in the ``wsgate.operations`` entry-point group
(pyproject.toml) and written with webservice.plugin alone. ``BUILTIN_OPERATIONS`` lists them for
apps that choose their operations (``WSGate(operations=[*BUILTIN_OPERATIONS, mine])``).
"""

from operations.extendsession import extendsession
from operations.getchallenge import getchallenge
from operations.listtypes import listtypes
from operations.login import login
from operations.logout import logout
from operations.sessions import endallsessions, endsession, listsessions

BUILTIN_OPERATIONS = (
    getchallenge,
    login,
    extendsession,
    logout,
    listtypes,
    listsessions,
    endsession,
    endallsessions,
)
