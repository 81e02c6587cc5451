#!/usr/bin/env bash
# Runs COMMAND with DATABASE_URL naming a PostgreSQL database, and exits with its status.
#
#   scripts/with-postgres.sh cargo test -p spool-tests
#   scripts/with-postgres.sh sh -c 'psql "$DATABASE_URL" -c "select 1"'
#
# When DATABASE_URL is set (and not empty) the command just runs against it. Otherwise
# `spool-devdb run` (the crate in devdb/) starts a private cluster under target/spool-pg of the
# current directory ($SPOOL_PG_DIR; port $SPOOL_PG_PORT), or reuses the one running there,
# from the installed server binaries, as an unprivileged OS user when run as root; and the
# last user of a cluster it started stops it. See devdb/src/lib.rs for the details.
set -euo pipefail

if [[ $# -eq 0 ]]; then
    echo "usage: $0 COMMAND [ARG...]" >&2
    exit 2
fi
if [[ -n "${DATABASE_URL:-}" ]]; then
    echo "with-postgres: using DATABASE_URL from the environment ($(sed -E 's#(://[^:/@]*):[^@/]*@#\1:***@#' <<<"$DATABASE_URL"))" >&2
    exec "$@"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"${CARGO:-cargo}" build --quiet --manifest-path "$ROOT/Cargo.toml" -p spool-devdb
exec "${CARGO_TARGET_DIR:-$ROOT/target}/debug/spool-devdb" run -- "$@"
