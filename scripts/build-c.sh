#!/usr/bin/env bash
# Builds the C example handlers (examples/c-*) into WebAssembly components with wit-bindgen,
# clang and wasm-tools, against the same wit/ as every other handler (package `spool:job@0.1.1`).
#
#   scripts/build-c.sh [--force] [EXAMPLE...]
#
# EXAMPLE is a directory name under examples/ (c-hello); all of them when none is given.
# Output: target/wasm32-wasip2/release/<example>.wasm with `_` for `-` (c_hello.wasm, beside
# the Rust examples' output). Each example's *.c are built by host/templates/c/build.sh, the
# script a project made by `spool new --lang c` builds with, so the two share one toolchain:
# Debian's clang, lld, wasi-libc and wasm32 compiler-rt builtins (installed with apt-get when
# missing, with sudo unless root), and, pinned in build.sh, wit-bindgen-cli, wasm-tools and
# wasmtime's WASI adapter, installed with cargo into target/c-tools/ (the first time compiles
# for some minutes). The bindings and the core module go to target/c-tools/build/<example>/,
# never into the source tree. An example's build is skipped while its output is newer than its
# inputs (its *.c and *.h, wit/, build.sh, this script); --force (or FORCE=1) rebuilds anyway.
# Set CLANG to choose the compiler (default clang).
set -euo pipefail

# Each example and the world of wit/ it targets (see build-python.sh for `http-handler`).
declare -A WORLDS=(
    [c-hello]=handler
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCRIPT="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
HELP=2,17
BUILD_SH="$ROOT/host/templates/c/build.sh"
WIT_DIR="$ROOT/wit"
TOOLS="$ROOT/target/c-tools"
OUT_DIR="$ROOT/target/wasm32-wasip2/release"

# shellcheck source=scripts/examples.sh
source "$ROOT/scripts/examples.sh"
parse_examples "$@"

# The examples whose output is missing or older than one of their inputs.
stale=()
for example in "${examples[@]}"; do
    dir="$ROOT/examples/$example"
    if ! compgen -G "$dir/*.c" >/dev/null; then
        echo "build-c.sh: no $dir/*.c found" >&2
        exit 1
    fi
    up_to_date "$example" "$dir" "$WIT_DIR" "$SCRIPT" "$BUILD_SH" -type f \
        \( -name '*.c' -o -name '*.h' -o -name '*.wit' -o -name '*.sh' \) \
        || stale+=("$example")
done
if [[ ${#stale[@]} == 0 ]]; then
    exit 0
fi

# Builds examples/$1 against world $2 of wit/.
build() {
    local example="$1" world="$2"
    local dir="$ROOT/examples/$example" out
    out="$(example_output "$example")"
    local versions
    versions="$(sed -n 's/^\(WIT_BINDGEN\|WASM_TOOLS\|ADAPTER\)_VERSION=/\1 /p' "$BUILD_SH" \
        | tr '\n' ' ' | tr '[:upper:]_' '[:lower:]-')"
    echo "$example: clang, ${versions% } (world $world) -> $out"
    local start=$SECONDS
    mkdir -p "$OUT_DIR"
    # build.sh writes its output atomically (through OUT.tmp), so a stopped build leaves none.
    SPOOL_C_TOOLS="$TOOLS" bash "$BUILD_SH" --wit "$WIT_DIR" --world "$world" \
        --work "$TOOLS/build/$example" -o "$out" "$dir"/*.c
    echo "$example: built $out ($(wc -c <"$out") bytes, $((SECONDS - start)) s)"
}

for example in "${stale[@]}"; do
    build "$example" "${WORLDS[$example]}"
done
