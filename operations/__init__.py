"""The operation plugins of webservice.php: the registry (registry.py) and one module each."""

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
