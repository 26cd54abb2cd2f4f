"""Every setting of the extension, with its default.

A host app sets them in its ``app.config`` as ``WSGATE_<NAME>`` (``WSGATE_REDIS_URL``);
``WSGate.init_app`` fills in the defaults below with ``setdefault``. The standalone server also
reads them from environment variables of the same names, whose values are parsed as JSON when
they parse (``WSGATE_SESSION_IDLE_TIMEOUT=600`` is the integer 600, ``WSGATE_REDIS_CLUSTER=true``
the boolean) and taken as strings otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PREFIX = "WSGATE_"

# --- Redis ---------------------------------------------------------------------------------------
#: Where the sessions and users live (``redis://``, ``rediss://`` or ``unix://``).
REDIS_URL = "redis://127.0.0.1:6379/0"
#: Treat REDIS_URL as a seed node of a Redis Cluster.
REDIS_CLUSTER = False
#: Redis Sentinel: the sentinels to ask where the master is, each "host:port"
#: (``WSGATE_REDIS_SENTINELS='["10.0.0.1:26379", "10.0.0.2:26379"]'``). When set, the master is
#: found through them, and REDIS_URL gives only the database, the credentials and ``rediss://``.
REDIS_SENTINELS: list[str] = []
#: The name the sentinels monitor the master under (``sentinel monitor <name> ...``).
REDIS_SENTINEL_MASTER = "mymaster"
#: The sentinels' own credentials (their ``requirepass`` or ACL user), when they have any.
REDIS_SENTINEL_USERNAME = None
REDIS_SENTINEL_PASSWORD = None
#: Seconds between asking the sentinels whether the master changed: after a failover the gateway
#: moves to the new master within this (README: Redis Sentinel). 0: only when a connection fails.
REDIS_SENTINEL_CHECK_INTERVAL = 0.5
#: Seconds to wait for a connection / for an answer before the request fails with
#: SERVICE_UNAVAILABLE. Bounded so that a dead Redis never hangs a worker.
REDIS_CONNECT_TIMEOUT = 1.0
REDIS_SOCKET_TIMEOUT = 2.0
#: Replicas that must confirm (Redis WAIT) every revocation and every new login before the gateway
#: acknowledges it, so that a failover cannot undo it (README: What a failover may lose). 0: none
#: (Redis's asynchronous replication: an acknowledged logout can come back after a failover).
REDIS_WAIT_REPLICAS = 0
#: Milliseconds to wait for that confirmation; beyond it the client is told SERVICE_UNAVAILABLE
#: ("Logout not confirmed; retry") while the change stays made on the master. Below
#: REDIS_SOCKET_TIMEOUT.
REDIS_WAIT_TIMEOUT = 500
#: Seconds a revoked family is remembered (hashes only) with REDIS_WAIT_REPLICAS, so that a retry
#: of its revocation is told it succeeded rather than that the session is unknown.
REDIS_WAIT_RETRY_GRACE = 120
#: Every key the gateway writes starts with this prefix (see webservice/store/keys.py).
REDIS_KEY_PREFIX = "wsgate"

# --- Sessions ------------------------------------------------------------------------------------
#: A session unused for this many seconds is dead (sliding).
SESSION_IDLE_TIMEOUT = 1800
#: A session family older than this many seconds is dead, however busy.
SESSION_ABSOLUTE_TIMEOUT = 86400

#: The most sessions one family (a login and the API sessions extendsession linked to it) holds;
#: at the cap, extendsession ends the family's oldest API session to make room (audited).
MAX_SESSIONS_PER_FAMILY = 100
#: The most live logins (families) one user has; a new login ends the oldest beyond it (audited).
#: Generous: integrations often log in for every job and never log out (about 380 bytes each).
MAX_FAMILIES_PER_USER = 1000

# --- Challenges (getchallenge / login) -------------------------------------------------------------
#: Seconds a challenge token can be used to log in (once).
CHALLENGE_TTL = 300
#: Unused challenge tokens kept per user and client address; beyond it the oldest is dropped.
#: Bounds memory while letting many workers of one integration log in as the same user at the
#: same time.
CHALLENGE_MAX_OUTSTANDING = 32
#: Unused challenge tokens kept per user in all; beyond it the address holding the most loses
#: its oldest. 17 x 32: sixteen addresses flooding getchallenge cannot push out the user's own.
#: Also the most tokens a user's logins used that are kept until they expire (the newest), so
#: that a replayed proof is told its token was used.
CHALLENGE_MAX_PER_USER = 544
#: Unused challenges kept per client address, over all names (the oldest withdrawn beyond it):
#: bounds what one address can leave in Redis without logging in.
CHALLENGE_MAX_PER_ADDRESS = 64

# --- Logins: enumeration and brute force ------------------------------------------------------
#: Answer getchallenge and login for a name that is no user, or an inactive user, exactly as for
#: a user with a wrong access key (see README: a deliberate difference from coreBOS). Off, the
#: coreBOS answers "Given user cannot be found" / "Given user is inactive" come back.
HIDE_UNKNOWN_USERS = True
#: Failed logins (API and web) allowed per username within LOGIN_FAILURE_WINDOW seconds; more are
#: refused with TOO_MANY_REQUESTS until the window ends. A successful login resets the count. 0: off.
LOGIN_FAILURE_LIMIT = 5
#: The same, per client address (a success does not reset it). 0: off.
LOGIN_ADDRESS_FAILURE_LIMIT = 5
LOGIN_FAILURE_WINDOW = 900
#: getchallenge calls per second allowed from one client address, and the burst above that rate
#: (a token bucket). 0: no limit.
CHALLENGE_RATE_LIMIT = 50
CHALLENGE_RATE_BURST = 100

# --- Audit trail ---------------------------------------------------------------------------------
#: Entries kept in the audit stream (approximately: Redis trims it in whole blocks).
AUDIT_MAX_ENTRIES = 100000

# --- Logout notifications (README: Logout notifications) ----------------------------------------
#: Services told when a session family ends (OpenID Connect Back-Channel Logout 1.0): a JSON list
#: of URLs, or of {"url": ..., "audience": ...} (the audience defaults to the URL). Empty: no
#: notifications, nothing written, no JWKS served.
LOGOUT_RECEIVERS: list[Any] = []
#: The logout tokens' ``iss``: the gateway's public URL (unset: the first of PUBLIC_ORIGINS).
LOGOUT_ISSUER = ""
#: PEM files of the logout tokens' private keys (EC P-256), newest first: the first signs, all are
#: published. Empty: the keys are made and kept in Redis (``flask notifications rotate-key``).
LOGOUT_SIGNING_KEY_FILES: list[str] = []
#: Seconds a logout token is valid (``exp - iat``); at most 120.
LOGOUT_TOKEN_TTL = 120
#: Seconds a receiver has to answer one POST before it counts as a failed try.
LOGOUT_DELIVERY_TIMEOUT = 5.0
#: The first retry waits this many seconds, each next one twice as long, up to RETRY_MAX.
LOGOUT_RETRY_INITIAL = 1.0
LOGOUT_RETRY_MAX = 60.0
#: Seconds after the logout past which a notification that still fails is given up on (recorded
#: in the failed list: ``flask notifications list --failed``).
LOGOUT_GIVE_UP_AFTER = 3600
#: Notifications kept waiting at most (approximately; the oldest are dropped beyond it), and
#: failed ones kept for operators.
LOGOUT_OUTBOX_MAX_ENTRIES = 100000
#: With receivers, a family's record outlives its idle or absolute timeout by this many seconds
#: (dead all the same): a request that comes meanwhile ends it and its end is notified
#: (``idle_timeout`` / ``absolute_timeout``). A family nobody asks for again is not notified.
LOGOUT_TIMEOUT_NOTICE_WINDOW = 3600
#: POSTs one delivery process has in flight at once (with several receivers, at most half of them
#: to any one, so that a receiver that hangs does not hold up the others).
LOGOUT_DELIVERY_CONCURRENCY = 8
#: Seconds after which a notification held by a delivery process that stopped renewing its claim
#: (it died) is taken over by another process.
LOGOUT_DELIVERY_LEASE = 30.0

# --- Requests ------------------------------------------------------------------------------------
#: Largest request body accepted by webservice.php, in bytes.
MAX_CONTENT_LENGTH = 1024 * 1024
#: Largest number of parameters in one request.
MAX_FORM_PARTS = 200
#: Longest parameter value, in characters (a JSON body's nested value: its JSON text); longer ones
#: answer INVALID_PARAMETER before anything else is looked at.
MAX_PARAMETER_LENGTH = 64 * 1024
#: Longest parameter name, in characters (INVALID_PARAMETER beyond).
MAX_PARAMETER_NAME_LENGTH = 256
#: Answer webservice.php requests that carry no cookie without Flask's request context (the
#: operations that declare they need none: webservice/api/lean_path.py). The app's own
#: before/after-request hooks keep every request on Flask's path anyway; turn it off when a
#: receiver of the session events reads ``flask.request``.
LEAN_PATH = True

# --- Monitoring (opt-in for a host app; the standalone server turns both on) -------------------
#: Serve Prometheus metrics at /metrics (webservice/serving/metrics.py).
METRICS_ENABLED = False
#: Serve the probes /healthz and /readyz (webservice/serving/health.py).
PROBES_ENABLED = False
#: Seconds /readyz waits for Redis to connect and to answer its PING (one try).
READY_TIMEOUT = 0.5

# --- REST session API ------------------------------------------------------------------------
#: Serve the REST session API under /v1 (logout, my sessions: webservice/rest/views.py).
REST_ENABLED = True

# --- Wire ----------------------------------------------------------------------------------------
#: Whose error codes refused sessions get: ``corebos`` (AUTHENTICATION_REQUIRED for all) or
#: ``vtiger`` (INVALID_SESSIONID, SESSION_EXPIRED, SESSION_LEFT_IDLE; the official coreBOS
#: JavaScript client raises its "session expired" event only on INVALID_SESSIONID).
WIRE_PROFILE = "corebos"
#: The ``version`` / ``vtigerVersion`` strings that login answers with.
API_VERSION = "0.22"
VTIGER_VERSION = "5.5.0"

# --- Web logins ---------------------------------------------------------------------------------
#: The origins the app's own pages are served from (``["https://gw.example.com"]``): a page's
#: ``Origin`` is compared with these for extendsession's same-origin rule. Unset, the app's
#: origin is taken from the request (``scheme://Host``, or what a trusted proxy forwarded), which
#: a client that talks to the server directly can set to anything: set it in production.
PUBLIC_ORIGINS: list[str] = []
#: Origins (``https://app.example.com``) besides the app's own from which a page may call
#: extendsession with its web cookie and no CSRF token.
TRUSTED_ORIGINS: list[str] = []


def defaults() -> dict[str, Any]:
    """Every setting's default, by its name without the prefix."""
    return {name: value for name, value in globals().items() if name.isupper() and name != "PREFIX"}


def read(config: Mapping[str, Any]) -> dict[str, Any]:
    """The extension's settings from an app's config (``WSGATE_<NAME>``), by name without prefix."""
    return {name: config[PREFIX + name] for name in defaults()}
