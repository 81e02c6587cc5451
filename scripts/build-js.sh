#!/usr/bin/env bash
# Builds the JavaScript example handlers (examples/js-*) into WebAssembly components with
# componentize-js, against the same wit/ as every other handler (package `spool:job@0.1.1`).
#
#   scripts/build-js.sh [--force] [EXAMPLE...]
#
# EXAMPLE is a directory name under examples/ (js-hello); all of them when none is given.
# Output: target/wasm32-wasip2/release/<example>.wasm with `_` for `-` (js_hello.wasm, beside
# the Rust examples' output). Each example's package.json pins componentize-js, jco and
# TypeScript, and its package-lock.json fixes the rest; they are installed with `npm ci` into
# target/js-tools/<example>/ (never into the source tree). Before building, the script writes
# the TypeScript declarations of the world (`jco guest-types`) into <example>/types/ (git-ignored)
# and type-checks the example against them (`tsc -p jsconfig.json`). An example's build is
# skipped while its output is newer than its inputs (its *.js, *.json, wit/, this script);
# --force (or FORCE=1) rebuilds anyway. Needs Node.js 20 or newer and npm.
set -euo pipefail

# Each example and the world of wit/ it targets (see build-python.sh for `http-handler`).
# componentize-js gives every component `fetch` (wasi:http/outgoing-handler@0.2.x) whichever
# world it targets.
declare -A WORLDS=(
    [js-hello]=handler
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
HELP=2,16
WIT_DIR="$ROOT/wit"
TOOLS="$ROOT/target/js-tools"
OUT_DIR="$ROOT/target/wasm32-wasip2/release"
NODE_MAJOR_MIN=20

# shellcheck source=scripts/examples.sh
source "$ROOT/scripts/examples.sh"
parse_examples "$@"

# The examples whose output is missing or older than one of their inputs.
stale=()
for example in "${examples[@]}"; do
    dir="$ROOT/examples/$example"
    for file in app.js package.json package-lock.json; do
        if [[ ! -f "$dir/$file" ]]; then
            echo "build-js.sh: $dir/$file not found" >&2
            exit 1
        fi
    done
    up_to_date "$example" "$dir" "$WIT_DIR" "$SCRIPT" -path "$dir/types" -prune -o -type f \
        \( -name '*.js' -o -name '*.json' -o -name '*.wit' -o -name '*.sh' \) \
        || stale+=("$example")
done
if [[ ${#stale[@]} == 0 ]]; then
    exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "build-js.sh: error: node and npm not found on PATH." >&2
    echo "  componentize-js is installed with npm and runs on Node.js $NODE_MAJOR_MIN or newer:" >&2
    echo "  e.g. 'apt-get install nodejs npm', or https://nodejs.org/." >&2
    exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < NODE_MAJOR_MIN )); then
    echo "build-js.sh: error: Node.js $(node --version) is too old; componentize-js needs $NODE_MAJOR_MIN or newer" >&2
    exit 1
fi

# Installs examples/$1's pinned tools into target/js-tools/$1 unless its lock file is already
# installed there. `npm ci` installs exactly the lock file (and fails if package.json disagrees
# with it), so every machine builds with the same componentize-js.
install_tools() {
    local example="$1"
    local dir="$ROOT/examples/$example" tools="$TOOLS/$example"
    if [[ -x "$tools/node_modules/.bin/componentize-js" ]] \
        && cmp -s "$dir/package-lock.json" "$tools/package-lock.json" \
        && cmp -s "$dir/package.json" "$tools/package.json"; then
        return
    fi
    echo "$example: npm ci (componentize-js, jco, typescript) into $tools"
    rm -rf "$tools"
    mkdir -p "$tools"
    cp "$dir/package.json" "$dir/package-lock.json" "$tools/"
    # No package of the lock file has an install script; refuse to run any that appears.
    (cd "$tools" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
}

# The output being written, removed if the script stops half-way.
partial=""
trap 'if [[ -n "$partial" ]]; then rm -f "$partial"; fi' EXIT

# Builds examples/$1 against world $2 of wit/.
build() {
    local example="$1" world="$2"
    local dir="$ROOT/examples/$example" bin="$TOOLS/$example/node_modules/.bin"
    local out
    out="$(example_output "$example")"
    install_tools "$example"
    local version
    version="$(node -p "require('$TOOLS/$example/node_modules/@bytecodealliance/componentize-js/package.json').version")"

    # The declarations for editors and for tsc: `declare module 'spool:job/log@0.1.1'` and so
    # on, one file per interface. jco reads wit/ through a WASI shim that sees the host's
    # whole file system, so paths may be absolute.
    rm -rf "$dir/types"
    "$bin/jco" guest-types "$WIT_DIR" --world-name "$world" --out-dir "$dir/types" --quiet
    echo "$example: type-checking (tsc -p jsconfig.json)"
    "$bin/tsc" -p "$dir/jsconfig.json"

    echo "$example: componentize-js $version (world $world) -> $out"
    local start=$SECONDS
    mkdir -p "$OUT_DIR"
    partial="$out.tmp"
    # Run from the example's directory so that the stack traces name `app.js`, not a path.
    (cd "$dir" && "$bin/componentize-js" app.js --wit "$WIT_DIR" --world-name "$world" \
        --out "$out.tmp")
    mv -f "$out.tmp" "$out"
    partial=""
    echo "$example: built $out ($(wc -c <"$out") bytes, $((SECONDS - start)) s)"
}

for example in "${stale[@]}"; do
    build "$example" "${WORLDS[$example]}"
done
