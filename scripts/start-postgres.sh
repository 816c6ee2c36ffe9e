#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the audit-log tests and print its DSN on stdout.
#
# Installs PostgreSQL with apt when missing (needs root), initialises a cluster in a temporary directory
# owned by a non-root user (`postgres`, or $PG_USER), and listens on 127.0.0.1 only (trust auth, so
# never use it for anything but tests). Usage:
#   export POLICYENGINE_TEST_PG="$(scripts/start-postgres.sh)"
# Stop it with: pg_ctl -D "$PGDATA" stop  (the data directory is printed on stderr).
set -euo pipefail

log() { echo "start-postgres: $*" >&2; }

find_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$dir" && -x "$dir/initdb" ]]; then echo "$dir"; return 0; fi
    if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
    return 1
}

if ! BIN=$(find_bin); then
    if [[ $(id -u) -ne 0 ]]; then
        log "PostgreSQL is not installed and installing it needs root"; exit 1
    fi
    log "installing PostgreSQL with apt"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    BIN=$(find_bin)
fi

if [[ $(id -u) -eq 0 ]]; then
    RUN_AS=${PG_USER:-postgres}
    id "$RUN_AS" >/dev/null 2>&1 || useradd --system --no-create-home "$RUN_AS"
    as_user() { su -s /bin/sh "$RUN_AS" -c "$*"; }
else
    RUN_AS=$(id -un)
    as_user() { sh -c "$*"; }
fi

PORT=${PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
BASE=$(mktemp -d "${TMPDIR:-/tmp}/policyengine-pg.XXXXXX")
chmod 755 "$BASE"
PGDATA="$BASE/data"
mkdir -p "$PGDATA" "$BASE/run"
[[ $(id -u) -eq 0 ]] && chown -R "$RUN_AS" "$BASE"

as_user "'$BIN/initdb' -D '$PGDATA' -U postgres --auth=trust --encoding=UTF8 --no-instructions" >&2
as_user "'$BIN/pg_ctl' -D '$PGDATA' -l '$BASE/postgres.log' -w -o \"-c listen_addresses=127.0.0.1 -p $PORT -k '$BASE/run' -c fsync=on\" start" >&2
log "cluster in $PGDATA (user $RUN_AS, port $PORT, log $BASE/postgres.log)"
echo "postgresql://postgres@127.0.0.1:$PORT/postgres"
