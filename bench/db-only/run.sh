#!/usr/bin/env bash
# The database alone: how fast PostgreSQL claims and completes jobs with no sandbox and no
# client in the way, in LOOPS concurrent loops, as the ceiling the burn-down sits under.
#
#   target/release/spool bench --jobs 1000 --rate 0 --api-requests 0 --keep --json
#   bench/db-only/run.sh postgres://…/spool_bench_… spool|minimal [JOBS] [BATCH] [LOOPS]
#
# `spool` runs the lifecycle's own functions (spool.sql), `minimal` the least a design that
# keeps a history row can do (minimal.sql). Drop the database afterwards.
set -euo pipefail
if [[ $# -lt 2 || ! "$2" =~ ^(spool|minimal)$ ]]; then
    echo "usage: $0 DATABASE_URL spool|minimal [JOBS] [BATCH] [LOOPS]" >&2
    exit 2
fi
url=$1 loop=$2 jobs=${3:-100000} batch=${4:-200} loops=${5:-2}
# fill.sql empties the hot table and history: only ever a bench database.
database=$(psql -qXAt "$url" -c 'SELECT current_database()')
if [[ $database != spool_bench_* ]]; then
    echo "$0: $database is not a database spool bench made (spool_bench_…); refusing to empty it" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
psql -qX "$url" -v ON_ERROR_STOP=1 -v n="$jobs" -f "$here/fill.sql" >/dev/null
start=$(date +%s%N)
for _ in $(seq "$loops"); do
    sed "s/BATCH/$batch/" "$here/$loop.sql" | psql -qX "$url" -v ON_ERROR_STOP=1 2>&1 \
        | sed -n 's/^NOTICE: *//p' &
done
wait
end=$(date +%s%N)
echo "$loop: $jobs jobs, batches of $batch, $loops loops: $(( jobs * 1000000000 / (end - start) )) jobs/s"
