# What scripts/build-c.sh, build-js.sh and build-python.sh share: their command line and when
# an example's build may be skipped. Sourced, after the script has set SCRIPT (its own path),
# HELP (the line range of its header that --help prints), OUT_DIR and WORLDS (each example and
# the world of wit/ it targets).

# Reads `[--force] [EXAMPLE...]` into $force (FORCE=1 too) and $examples (every example of
# WORLDS, in name order, when none is given).
parse_examples() {
    local name arg
    name="$(basename "$SCRIPT")"
    force="${FORCE:-0}"
    examples=()
    for arg in "$@"; do
        case "$arg" in
            --force) force=1 ;;
            -h|--help) sed -n "${HELP}p" "$SCRIPT" | sed 's/^# \{0,1\}//'; exit 0 ;;
            -*) echo "$name: unknown argument: $arg (try --help)" >&2; exit 2 ;;
            *)
                if [[ -z "${WORLDS[$arg]:-}" ]]; then
                    echo "$name: unknown example: $arg (one of: ${!WORLDS[*]})" >&2
                    exit 2
                fi
                examples+=("$arg")
                ;;
        esac
    done
    if [[ ${#examples[@]} == 0 ]]; then
        mapfile -t examples < <(printf '%s\n' "${!WORLDS[@]}" | sort)
    fi
}

# Where example $1's component goes: OUT_DIR/<example>.wasm with `_` for `-`.
example_output() {
    echo "$OUT_DIR/${1//-/_}.wasm"
}

# Succeeds, saying so, when example $1's output exists and `find "${@:2}"` finds no input
# newer than it; fails with --force. The arguments after $1 are the inputs and the tests that
# pick the files among them.
up_to_date() {
    local example="$1" out
    out="$(example_output "$example")"
    shift
    if [[ "$force" == 1 || ! -f "$out" ]]; then
        return 1
    fi
    if [[ -n "$(find "$@" -newer "$out" -print -quit)" ]]; then
        return 1
    fi
    echo "$example: up to date ($out)"
}
