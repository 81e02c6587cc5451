#!/usr/bin/env bash
# The demo: runs the example handlers through `spool run`, one sandboxed attempt each, and
# shows what each attempt returned, logged, wrote and enqueued.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SPOOL="${SPOOL:-$ROOT/target/debug/spool}"
WASM="$ROOT/target/wasm32-wasip2/release"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
attempt() {
    local component=$1 payload=$2 extra=("${@:3}")
    "$SPOOL" run "$WASM/$component.wasm" --payload "$payload" "${extra[@]}" \
        | python3 -c 'import json,sys; r=json.load(sys.stdin); print(json.dumps({k: r[k] for k in ("outcome","result","error","fuel_consumed","store_writes","enqueued")}, indent=2))' \
        || true
}

step "hello: echo a payload"
attempt hello '{"greeting":"hi"}'
step "fulfil-order: charge once, record the order, enqueue the receipt"
attempt fulfil_order '{"order_id":"A-1001","amount_cents":4200,"email":"ada@example.com"}'
step "fulfil-order, a transient failure on attempt 1 (it would be retried)"
attempt fulfil_order '{"order_id":"A-1002","amount_cents":999,"email":"bob@example.com","fail_times":1}'
step "... and the same order on attempt 2 succeeds"
attempt fulfil_order '{"order_id":"A-1002","amount_cents":999,"email":"bob@example.com","fail_times":1}' --attempt 2
step "fulfil-order, a poison order (dead-lettered at once)"
attempt fulfil_order '{"order_id":"A-666","amount_cents":1,"email":"x@example.com","poison":true}'
step "python-hello: a Python handler in the same sandbox"
attempt python_hello '{"name":"ada"}'
step "hostile: a guest that spins forever is stopped by its fuel"
attempt hostile '{"action":"spin"}' --fuel 100000000
