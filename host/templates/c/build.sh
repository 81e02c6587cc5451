#!/usr/bin/env bash
# Builds a Spool job handler written in C into a WebAssembly component of a world of
# wit/job.wit. `spool build` runs it (the [build] command of spool.toml); in a Spool checkout,
# scripts/build-c.sh builds the C examples with it too.
#
#   bash build.sh [-o OUT] [--wit DIR] [--world WORLD] [--work DIR] [SOURCE.c...]
#
# Beside this script by default: SOURCE every *.c, OUT build/handler.wasm, --wit wit/, --work
# build/ (the bindings and the core module); --world is `handler` unless given. The chain:
# `wit-bindgen c` writes the bindings (handler.h, handler.c and the world's type as an object
# file) into WORK/bindings; clang compiles them with the sources for wasm32-wasi as a reactor
# (-O2, no debug info) against wasi-libc; `wasm-tools component new` makes the module a
# component, adapting its WASI preview-1 imports to WASI 0.2 with wasmtime's adapter. What is
# missing is installed: clang, lld, wasi-libc and the wasm32 compiler-rt builtins with apt-get
# (with sudo unless root), and, pinned, wit-bindgen-cli, wasm-tools and the adapter with cargo
# into SPOOL_C_TOOLS (default .spool-tools/ beside this script; the first install compiles for
# some minutes, so point several projects at one folder to share it). Set CLANG to choose the
# compiler (default clang) and CFLAGS to add flags. Needs bash, and cargo for the first build.
set -euo pipefail

# The pinned tools. wit-bindgen's C generator and wasm-tools are bumped together: wasm-tools
# must read the component type wit-bindgen embeds (wit-bindgen-cli 0.63.0 writes it with
# wit-component 0.262; wasm-tools 1.263.0 reads it). The adapter is the one of the wasmtime
# Spool runs on (48.0.8), so that its WASI 0.2 imports are ones Spool's linker provides; its
# bytes are checked against their digest.
WIT_BINDGEN_VERSION=0.63.0
WASM_TOOLS_VERSION=1.263.0
ADAPTER_VERSION=48.0.8
ADAPTER_SHA256=134b86dc09c6b62077f2307b96fa8b83b94dc86737bc705ac3dbe27cb107b1f9

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
TOOLS="${SPOOL_C_TOOLS:-$HERE/.spool-tools}"
CLANG="${CLANG:-clang}"
me="build.sh"

# The defaults are beside this script, wherever it is run from.
out="$HERE/build/handler.wasm"
wit="$HERE/wit"
world="handler"
work="$HERE/build"
sources=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -o|--out|--wit|--world|--work)
            if [[ $# -lt 2 ]]; then
                echo "$me: $1 needs a value (try --help)" >&2
                exit 2
            fi
            case "$1" in
                -o|--out) out="$2" ;;
                --wit) wit="$2" ;;
                --world) world="$2" ;;
                --work) work="$2" ;;
            esac
            shift 2
            ;;
        -h|--help) sed -n '2,18p' "$SCRIPT" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "$me: unknown argument: $1 (try --help)" >&2; exit 2 ;;
        *) sources+=("$1"); shift ;;
    esac
done
if [[ ${#sources[@]} == 0 ]]; then
    shopt -s nullglob
    sources=("$HERE"/*.c)
    shopt -u nullglob
    if [[ ${#sources[@]} == 0 ]]; then
        echo "$me: no *.c in $HERE to build" >&2
        exit 1
    fi
fi

# apt-get install, through sudo unless root; or, without apt-get, a list of what to install.
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "$me: error: missing: $* (Debian's names). Install clang with the wasm32-wasi" >&2
        echo "  target, wasm-ld (lld), wasi-libc and compiler-rt's wasm32 builtins, or a WASI SDK" >&2
        echo "  (https://github.com/WebAssembly/wasi-sdk) and set CLANG to its bin/clang." >&2
        exit 1
    fi
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        sudo=sudo
    fi
    echo "$me: installing $* (apt-get)" >&2
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

# Whether clang finds file $1 for wasm32-wasi (it prints the bare name when it does not).
clang_finds() {
    local path
    path="$("$CLANG" --target=wasm32-wasi "-print-file-name=$1" 2>/dev/null)" || return 1
    [[ "$path" == */* && -f "$path" ]]
}

# The C side, from Debian: clang, the wasm32 linker, the C library, and the builtins
# (libclang_rt.builtins-wasm32.a) that clang links into every wasm32 module.
install_c_toolchain() {
    local missing=()
    if ! command -v "$CLANG" >/dev/null 2>&1; then
        if [[ "$CLANG" != clang ]]; then
            echo "$me: error: CLANG=$CLANG not found" >&2
            exit 1
        fi
        # The release's default version of each, which go together.
        apt_install clang lld wasi-libc libclang-rt-dev-wasm32
        return
    fi
    command -v wasm-ld >/dev/null 2>&1 || missing+=(lld)
    clang_finds libc.a || missing+=(wasi-libc)
    local builtins
    builtins="$("$CLANG" --target=wasm32-wasi -print-libgcc-file-name 2>/dev/null || true)"
    if [[ ! -f "$builtins" ]]; then
        # The builtins package is per clang version (libclang-rt-14-dev-wasm32 for clang 14).
        missing+=("libclang-rt-$("$CLANG" -dumpversion | cut -d. -f1)-dev-wasm32")
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
}

# cargo install --locked of crate $1 at version $2 into $TOOLS unless its binary $3 reports
# that version; $4... are its cargo features (the fewest the build needs, to compile less).
cargo_install() {
    local crate="$1" version="$2" bin="$3"
    shift 3
    if [[ -x "$TOOLS/bin/$bin" ]] && "$TOOLS/bin/$bin" --version 2>/dev/null | grep -qw "$version"; then
        return
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "$me: error: cargo not found: $crate is installed with it (https://rustup.rs)" >&2
        exit 1
    fi
    echo "$me: installing $crate $version into $TOOLS (cargo install; compiles for a few minutes)" >&2
    cargo install --quiet --locked "$crate" --version "$version" --root "$TOOLS" \
        --no-default-features --features "$*"
}

# A file's SHA-256 digest.
sha256() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    else
        shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# The WASI preview-1 adapter for reactors, taken from the crate wasmtime publishes it in
# (wasi-preview1-component-adapter-provider): cargo fetches the crate, pinned, and verifies it
# against the registry's checksum; the bytes are then checked against ADAPTER_SHA256.
ADAPTER="$TOOLS/wasi_snapshot_preview1.reactor-$ADAPTER_VERSION.wasm"
install_adapter() {
    if [[ -f "$ADAPTER" ]] && [[ "$(sha256 "$ADAPTER")" == "$ADAPTER_SHA256" ]]; then
        return
    fi
    local crate=wasi-preview1-component-adapter-provider
    local fetch="$TOOLS/adapter-$ADAPTER_VERSION"
    echo "$me: fetching the WASI adapter ($crate $ADAPTER_VERSION, cargo)" >&2
    mkdir -p "$fetch"
    # A package of its own ([workspace]), so that no enclosing Cargo workspace claims it.
    cat >"$fetch/Cargo.toml" <<EOF
[package]
name = "spool-c-adapter"
version = "0.0.0"
edition = "2021"
publish = false

[lib]
path = "lib.rs"

[dependencies]
$crate = "=$ADAPTER_VERSION"

[workspace]
EOF
    : >"$fetch/lib.rs"
    local manifest
    manifest="$(cargo metadata --quiet --format-version 1 --manifest-path "$fetch/Cargo.toml" \
        | grep -o "\"manifest_path\":\"[^\"]*/$crate-$ADAPTER_VERSION/Cargo.toml\"" \
        | cut -d'"' -f4)"
    local source="${manifest%/Cargo.toml}/artefacts/wasi_snapshot_preview1.reactor.wasm"
    if [[ -z "$manifest" || ! -f "$source" ]]; then
        echo "$me: error: cargo fetched no $crate $ADAPTER_VERSION with a reactor adapter" >&2
        exit 1
    fi
    local digest
    digest="$(sha256 "$source")"
    if [[ "$digest" != "$ADAPTER_SHA256" ]]; then
        echo "$me: error: $source has digest $digest, not the pinned $ADAPTER_SHA256" >&2
        exit 1
    fi
    cp "$source" "$ADAPTER.tmp"
    mv -f "$ADAPTER.tmp" "$ADAPTER"
    rm -rf "$fetch"
}

install_c_toolchain
cargo_install wit-bindgen-cli "$WIT_BINDGEN_VERSION" wit-bindgen c
cargo_install wasm-tools "$WASM_TOOLS_VERSION" wasm-tools component
install_adapter

bindings="$work/bindings"
core="$work/$(basename "${out%.wasm}").core.wasm"
mkdir -p "$work" "$(dirname "$out")"
# The output being written, removed if the script stops half-way.
partial=""
trap 'if [[ -n "$partial" ]]; then rm -f "$partial"; fi' EXIT

# Written afresh every build: the bindings follow wit/, and are never edited or committed.
# Whatever the world, they are named as for `handler` (handler.h, handler_string_t,
# exports_handler_run), so that spool.h and a handler's code build against `http-handler` too.
rm -rf "$bindings"
# Its chatter (a line a file) is shown only when it fails.
if ! said="$("$TOOLS/bin/wit-bindgen" c "$wit" --world "$world" --rename-world handler \
    --out-dir "$bindings" 2>&1)"; then
    echo "$said" >&2
    exit 1
fi

# -mexec-model=reactor: a library whose exports are called, not a program with a main; the
# component runs its _initialize (static constructors) before the first call. --strip-debug
# drops the DWARF that Debian's wasi-libc carries (most of the module) but keeps the
# function names, a few hundred bytes, for a debugger or wasmtime's backtraces.
# shellcheck disable=SC2086 # CFLAGS is a list of flags.
"$CLANG" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra ${CFLAGS:-} \
    -I "$bindings" "${sources[@]}" "$bindings/handler.c" \
    "$bindings/handler_component_type.o" -Wl,--strip-debug -o "$core"

partial="$out.tmp"
"$TOOLS/bin/wasm-tools" component new "$core" \
    --adapt "wasi_snapshot_preview1=$ADAPTER" -o "$out.tmp"
mv -f "$out.tmp" "$out"
partial=""
