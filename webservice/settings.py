"""Every setting wsgate reads, with its default.

Each one can be overridden by an environment variable named ``WSGATE_<NAME>``; values are parsed
as JSON when they parse (``WSGATE_SESSION_IDLE_TIMEOUT=600`` is the integer 600,
``WSGATE_REDIS_CLUSTER=true`` the boolean) and taken as strings otherwise.
"""

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
#: Every key the gateway writes starts with this prefix (see webservice/keys.py).
REDIS_KEY_PREFIX = "wsgate"

# --- Sessions ------------------------------------------------------------------------------------
#: A session unused for this many seconds is dead (sliding).
SESSION_IDLE_TIMEOUT = 1800
#: A session family older than this many seconds is dead, however busy.
SESSION_ABSOLUTE_TIMEOUT = 86400

# --- Challenges (getchallenge / login) -------------------------------------------------------------
#: Seconds a challenge token can be used to log in (once).
CHALLENGE_TTL = 300
#: Unused challenge tokens kept per user; the oldest is dropped beyond this. Bounds memory while
#: letting many workers of one integration log in as the same user at the same time.
CHALLENGE_MAX_OUTSTANDING = 32

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

# --- Deployment and monitoring -------------------------------------------------------------------
#: Proxies (load balancers, reverse proxies) every request passes through before the gateway:
#: their X-Forwarded-For / -Proto / -Host / -Port entries are trusted (webservice/proxies.py), so
#: the client's address, scheme and host are the real ones. 0: those headers are ignored.
TRUSTED_PROXIES = 0
#: Serve Prometheus metrics at /metrics (webservice/metrics.py).
METRICS_ENABLED = True
#: Seconds /readyz waits for Redis to connect and to answer its PING (twice at most: one retry).
READY_TIMEOUT = 0.5

# --- Wire ----------------------------------------------------------------------------------------
#: The ``version`` / ``vtigerVersion`` strings that login answers with.
API_VERSION = "0.22"
VTIGER_VERSION = "5.4.0"

# --- Web UI -------------------------------------------------------------------------------------
#: The web session cookie. It is HttpOnly and SameSite=Lax; Secure unless turned off here for
#: plain-http development (scripts/serve does that when it binds to loopback).
SESSION_COOKIE_NAME = "wsgate_session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
#: Origins (``https://app.example.com``) besides the gateway's own from which a page may call
#: extendsession with its web cookie and no CSRF token.
TRUSTED_ORIGINS: list[str] = []
#: A web session's data is written only when it changes. It lives SESSION_ABSOLUTE_TIMEOUT, as
#: long as any login can; whether the browser is logged in is read from its session family.
SESSION_REFRESH_EACH_REQUEST = False
#: CSRF tokens live as long as the web session they belong to.
WTF_CSRF_TIME_LIMIT = None

# --- Flask ---------------------------------------------------------------------------------------
#: Signs CSRF tokens and flashed messages; the same on every worker and host. Unset, the gateway
#: makes one and keeps it in Redis, where every worker finds it.
SECRET_KEY = None
#: Logging level of the gateway's own loggers.
LOG_LEVEL = "INFO"
