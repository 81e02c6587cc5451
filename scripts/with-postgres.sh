#!/usr/bin/env bash
# Runs COMMAND with DATABASE_URL naming a PostgreSQL database, and exits with its status.
#
#   scripts/with-postgres.sh cargo test -p spool-tests
#   scripts/with-postgres.sh sh -c 'psql "$DATABASE_URL" -c "select 1"'
#
# When DATABASE_URL is set (and not empty) the command just runs against it. Otherwise this
# starts a private cluster, or reuses the one already running, never assuming a server exists:
#
#   - directory  $SPOOL_PG_DIR, default target/spool-pg in the repository; same layout as
#                host/src/devdb.rs (data/, socket/, postgres.log, *.lock), so both share it
#   - binaries   initdb, pg_ctl, postgres from PATH, else /usr/lib/postgresql/*/bin (newest
#                first), /usr/pgsql-*/bin, /usr/local/pgsql/bin; of the cluster's version
#   - OS user    as root: spool-pg (a system user, created if missing; `nobody` failing that),
#                since PostgreSQL refuses to run as root; otherwise the current user
#   - listens    127.0.0.1:$SPOOL_PG_PORT (default 55432; the next free port when taken; a
#                running cluster keeps its port) and a unix socket in socket/
#   - database   DATABASE_URL=postgres://spool@127.0.0.1:PORT/postgres: `spool` is the
#                superuser initdb creates; trust auth; fsync and friends off (test settings)
#   - on exit    the cluster is stopped by the last with-postgres.sh run (or devdb Cluster
#                handle) using it, if Spool's tooling started it; one started by hand is left
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
if [[ -n "${DATABASE_URL:-}" ]]; then
    echo "with-postgres: using DATABASE_URL from the environment ($(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$DATABASE_URL"))" >&2
    exec "$@"
fi

die() {
    echo "with-postgres: $*" >&2
    exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SUPERUSER=spool
PORT_DEFAULT="${SPOOL_PG_PORT:-55432}"
TIMEOUT=60
[[ $PORT_DEFAULT =~ ^[0-9]+$ && $PORT_DEFAULT -gt 0 && $PORT_DEFAULT -lt 65536 ]] \
    || die "SPOOL_PG_PORT must be a port number, not '$PORT_DEFAULT'"

# --- the OS user the server runs as, and the cluster's directory ------------------------------
# Makes DIR (new directories searchable by the server's OS user whatever the umask) and
# gives it to that user.
make_dir() {
    (umask 022 && mkdir -p "$DIR/socket")
    DIR="$(cd "$DIR" && pwd)"
    [[ $DIR != *[\'\"]* ]] || die "$DIR contains quotes"
    [[ $(id -u) -ne 0 ]] || chown "$PG_USER:" "$DIR" "$DIR/socket"
}
DIR="${SPOOL_PG_DIR:-$ROOT/target/spool-pg}"
if [[ $(id -u) -eq 0 ]]; then
    PG_USER=spool-pg
    for _ in 1 2 3; do
        id -u "$PG_USER" >/dev/null 2>&1 && break
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
            --user-group "$PG_USER" >/dev/null 2>&1 || true
    done
    id -u "$PG_USER" >/dev/null 2>&1 || PG_USER=nobody
    if command -v runuser >/dev/null; then
        # A subshell, so that the server never inherits a working directory it cannot read.
        as_pg() (cd "$DIR" && runuser -u "$PG_USER" -- "$@")
    elif command -v setpriv >/dev/null; then
        as_pg() (cd "$DIR" && setpriv --reuid="$(id -u "$PG_USER")" --regid="$(id -g "$PG_USER")" \
            --clear-groups -- "$@")
    else
        die "running as root, and neither runuser nor setpriv is installed to drop privileges"
    fi
    make_dir
    if ! as_pg test -w "$DIR" -a -x "$DIR"; then
        [[ -z ${SPOOL_PG_DIR:-} ]] \
            || die "OS user $PG_USER cannot reach $DIR; make its parents searchable (chmod o+x)"
        # A clone under a private directory (say /root): keep the cluster where it can reach.
        rmdir "$DIR/socket" "$DIR" 2>/dev/null || true
        DIR="/tmp/spool-pg-$(cksum <<<"$ROOT" | cut -d' ' -f1)"
        echo "with-postgres: OS user $PG_USER cannot reach $ROOT/target; using $DIR" >&2
        if [[ -L $DIR ]] || { [[ -e $DIR ]] && [[ $(stat -c %U "$DIR") != @(root|"$PG_USER") ]]; }; then
            die "$DIR exists and is not ours"
        fi
        make_dir
    fi
else
    PG_USER="$(id -un)"
    as_pg() (cd "$DIR" && "$@")
    make_dir
fi
PGDATA_DIR="$DIR/data"
SOCKET_DIR="$DIR/socket"
LOG="$DIR/postgres.log"
# A unix socket path must fit in sun_path (107 bytes); TCP alone works when it does not.
((${#SOCKET_DIR} + 15 <= 107)) || SOCKET_DIR=""

# --- the server binaries, of the cluster's major version when there is one -----------------
want=""
[[ -f $PGDATA_DIR/PG_VERSION ]] && want="$(<"$PGDATA_DIR/PG_VERSION")"
IFS=: read -ra candidates <<<"${PATH:-}"
while read -r dir; do candidates+=("$dir"); done < <(
    printf '%s\n' /usr/lib/postgresql/*/bin | sort -Vr
    printf '%s\n' /usr/pgsql-*/bin | sort -Vr
    echo /usr/local/pgsql/bin
)
BIN="" found=()
for dir in "${candidates[@]}"; do
    [[ -n $dir && -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]] || continue
    # "pg_ctl (PostgreSQL) 15.14 (Debian ...)": the first number is the major version.
    [[ "$("$dir/pg_ctl" --version)" =~ [0-9]+ ]] && version="${BASH_REMATCH[0]}" || version="?"
    if [[ -z $want || $version == "$want" ]]; then
        BIN="$dir"
        break
    fi
    found+=("$dir ($version)")
done
if [[ -z $BIN && ${#found[@]} -gt 0 ]]; then
    die "$PGDATA_DIR holds a PostgreSQL $want cluster but only ${found[*]} are installed"
fi
[[ -n $BIN ]] || die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in PATH," \
    "/usr/lib/postgresql/*/bin, /usr/pgsql-*/bin or /usr/local/pgsql/bin;" \
    "install the PostgreSQL server (e.g. apt-get install postgresql) or set DATABASE_URL"

# --- locks, shared with devdb.rs: users.lock (shared) while using the cluster, then
# start.lock (exclusive) while starting it; the last user out upgrades users.lock to stop it.
if command -v flock >/dev/null; then
    exec 9>>"$DIR/users.lock" 8>>"$DIR/start.lock"
    flock -s 9
    flock 8
    lock() { flock "$@"; }
else
    lock() { true; }
fi
# A cluster made by another user (say, before running as root) is given to this one.
if [[ -d $PGDATA_DIR && $(stat -c %u "$PGDATA_DIR") != "$(id -u "$PG_USER")" && $(id -u) -eq 0 ]]; then
    chown -R "$PG_USER:" "$PGDATA_DIR"
fi

# Prints the port of the live postmaster of PGDATA_DIR: its pid file names a process that is
# not a zombie, is called postgres, and (where visible) runs in PGDATA_DIR.
live_port() {
    local pidfile="$PGDATA_DIR/postmaster.pid" pid port stat comm cwd
    [[ -r $pidfile ]] || return 1
    { read -r pid && read -r _ && read -r _ && read -r port; } <"$pidfile" || return 1
    [[ $pid =~ ^[0-9]+$ && $port =~ ^[0-9]+$ ]] || return 1
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [[ ${stat:0:1} != [ZX] ]] || return 1
    comm="$(cat "/proc/$pid/comm" 2>/dev/null)" || return 1
    [[ $comm == postgres || $comm == postmaster ]] || return 1
    if cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null)"; then
        [[ $cwd == "$(cd "$PGDATA_DIR" && pwd -P)" ]] || return 1
    fi
    echo "$port"
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_conf() {
    cat >"$PGDATA_DIR/spool.conf" <<EOF
# Written by Spool on every start; edit postgresql.conf instead.
port = $1
listen_addresses = '127.0.0.1'
unix_socket_directories = '${SOCKET_DIR:+\"$SOCKET_DIR\"}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
EOF
    [[ $PG_USER == "$(id -un)" ]] || chown "$PG_USER:" "$PGDATA_DIR/spool.conf"
}

if [[ ! -f $PGDATA_DIR/PG_VERSION ]]; then
    as_pg "$BIN/initdb" -D "$PGDATA_DIR" -U "$SUPERUSER" --auth=trust --encoding=UTF8 \
        --no-locale --no-sync >"$DIR/initdb.log" 2>&1 8>&- 9>&- \
        || { cat "$DIR/initdb.log" >&2; die "initdb failed (log above, in $DIR/initdb.log)"; }
    printf "\n# Spool: per-start settings\ninclude_if_exists = 'spool.conf'\n" \
        >>"$PGDATA_DIR/postgresql.conf"
fi

if PORT="$(live_port)"; then
    how="reused"
    deadline=$((SECONDS + TIMEOUT))
    until [[ "$(sed -n 8p "$PGDATA_DIR/postmaster.pid" 2>/dev/null)" == ready* ]] && ! port_free "$PORT"; do
        if ! live_port >/dev/null || ((SECONDS >= deadline)); then
            tail -n 20 "$LOG" >&2
            die "the running server in $PGDATA_DIR did not become ready"
        fi
        sleep 0.05
    done
else
    how="started"
    # What a server that died without cleaning up leaves behind.
    rm -f "$PGDATA_DIR/postmaster.pid" "$DIR/socket"/.s.PGSQL.*
    PORT="$PORT_DEFAULT"
    for attempt in 1 2 3; do
        while ! port_free "$PORT" || [[ $PORT -eq 5432 ]]; do
            PORT=$((PORT + 1))
            ((PORT < PORT_DEFAULT + 100 && PORT < 65536)) || die "no free port from $PORT_DEFAULT"
        done
        write_conf "$PORT"
        log_start=$(($(stat -c %s "$LOG" 2>/dev/null || echo 0) + 1))
        if as_pg "$BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$LOG" -w -s -t "$TIMEOUT" 8>&- 9>&-; then
            break
        fi
        new_log="$(tail -c "+$log_start" "$LOG" 2>/dev/null || true)"
        # Another process may have taken the port since we looked; try the next one.
        if ((attempt < 3)) && [[ $new_log == *"could not bind"* ]]; then
            PORT=$((PORT + 1))
            continue
        fi
        tail -n 20 <<<"$new_log" >&2
        die "could not start PostgreSQL in $PGDATA_DIR on port $PORT (log above, in $LOG)"
    done
    touch "$DIR/spool-started"
fi
lock -u 8

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    # flock cannot upgrade atomically: release, then try for the exclusive lock.
    lock -u 9
    if [[ -f $DIR/spool-started ]] && lock -xn 9; then
        lock 8
        if live_port >/dev/null; then
            as_pg "$BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -s -t "$TIMEOUT" 8>&- 9>&- \
                || echo "with-postgres: could not stop the server in $PGDATA_DIR" >&2
        fi
        rm -f "$DIR/spool-started"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

export DATABASE_URL="postgres://$SUPERUSER@127.0.0.1:$PORT/postgres"
[[ "$("$BIN/postgres" --version)" =~ [0-9][0-9.]* ]] && version="${BASH_REMATCH[0]}" || version="?"
echo "with-postgres: using a private PostgreSQL $version ($how, ${DIR#"$ROOT"/}, OS user $PG_USER): $DATABASE_URL" >&2
"$@" 8>&- 9>&-
