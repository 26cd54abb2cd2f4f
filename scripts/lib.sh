# Shared helpers of scripts/serve and scripts/test. Source it; do not run it.
#
# Before sourcing, set ROOT (the repository root) and SCRIPT (the command's name for messages).
# Python is whatever `python3` is on PATH (3.11 or newer), or $WSGATE_PYTHON when set.

VENV="$ROOT/.venv"
PY="$VENV/bin/python"

say() { printf '%s: %s\n' "$SCRIPT" "$*"; }
warn() { printf '%s: warning: %s\n' "$SCRIPT" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT" "$*" >&2
    exit 1
}

# The interpreter that creates .venv: checked to exist and to be 3.11 or newer.
base_python() {
    local python="${WSGATE_PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 ||
        die "$python not found: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
    "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$python is $("$python" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'); wsgate needs Python 3.11 or newer"
    printf '%s\n' "$python"
}

# What a stamp records: the pyproject.toml the installed environment was made from.
_pyproject_digest() {
    sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1
}

# ensure_venv [test]
#   Makes sure .venv exists and holds this project (editable), with the test extras when asked.
#   pip runs only when .venv is new or pyproject.toml changed since the last install: the digest
#   of pyproject.toml is kept in .venv/.wsgate-stamp (plain install) and .venv/.wsgate-stamp-test
#   (with the test extras, which also counts as a plain install).
ensure_venv() {
    local flavour="${1:-base}" stamp spec digest python lock_fd=""
    case "$flavour" in
    base) stamp="$VENV/.wsgate-stamp" spec="." ;;
    test) stamp="$VENV/.wsgate-stamp-test" spec=".[test]" ;;
    *) die "ensure_venv: unknown flavour $flavour" ;;
    esac

    # serve and test may start at the same moment: one pip at a time in this checkout.
    if command -v flock >/dev/null 2>&1; then
        exec {lock_fd}<"$ROOT"
        flock "$lock_fd"
    fi

    if [[ -e "$VENV" ]] && ! "$PY" -c 'import sys' >/dev/null 2>&1; then
        warn ".venv is broken (its python does not run): re-creating it"
        python="$(base_python)"
        "$python" -m venv --clear "$VENV" >/dev/null ||
            die "could not re-create .venv (Debian: apt-get install python3-venv)"
    elif [[ ! -e "$VENV" ]]; then
        python="$(base_python)"
        say "creating .venv with $("$python" -c 'import platform; print("Python", platform.python_version())')"
        if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
            rm -rf "$VENV"
            die "could not create .venv: the venv module is missing (Debian: apt-get install python3-venv)"
        fi
    fi

    digest="$(_pyproject_digest)"
    if [[ -f "$stamp" && "$(<"$stamp")" == "$digest" ]] ||
        [[ "$flavour" == base && -f "$VENV/.wsgate-stamp-test" && "$(<"$VENV/.wsgate-stamp-test")" == "$digest" ]]; then
        : # up to date
    else
        say "installing wsgate${spec#.} into .venv (new .venv or pyproject.toml changed)..."
        rm -f "$stamp"
        (cd "$ROOT" && "$PY" -m pip install --disable-pip-version-check --quiet -e "$spec") ||
            die "pip could not install the project into .venv (see pip's messages above)"
        printf '%s\n' "$digest" >"$stamp"
        # The test extras include everything a plain install has.
        if [[ "$flavour" == test ]]; then
            printf '%s\n' "$digest" >"$VENV/.wsgate-stamp"
        fi
    fi

    if [[ -n "$lock_fd" ]]; then
        exec {lock_fd}<&-
    fi
}

# port_in_use HOST PORT: true when a TCP server could not bind HOST:PORT right now.
port_in_use() {
    "$PY" - "$1" "$2" <<'EOF'
import socket, sys

host, port = sys.argv[1], int(sys.argv[2])
try:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
except OSError:
    sys.exit(1)
for family, kind, proto, _, address in infos:
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            sys.exit(0)
sys.exit(1)
EOF
}

# redis_answers PORT: true when a Redis on 127.0.0.1:PORT answers PING.
redis_answers() {
    "$PY" - "$1" <<'EOF'
import socket, sys

try:
    with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.5) as conn:
        conn.sendall(b"PING\r\n")
        sys.exit(0 if conn.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
EOF
}

# http_answers URL: true when anything answers HTTP at URL (any status).
http_answers() {
    "$PY" - "$1" <<'EOF'
import sys, urllib.error, urllib.request

try:
    urllib.request.urlopen(sys.argv[1], timeout=1).close()
except urllib.error.HTTPError:
    pass
except OSError:
    sys.exit(1)
EOF
}

# stop_process PID NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 30); reaps it.
stop_process() {
    local pid="$1" name="$2" grace="${3:-30}" waited=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null && ((waited < grace * 10)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "$name (pid $pid) did not stop within ${grace}s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}
