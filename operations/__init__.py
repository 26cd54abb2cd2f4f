"""The operation plugins of webservice.php: the registry (registry.py) and one module each."""

from operations.getchallenge import getchallenge
from operations.listtypes import listtypes
from operations.login import login
from operations.logout import logout

BUILTIN_OPERATIONS = (getchallenge, login, logout, listtypes)
