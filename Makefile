# Spool's two commands: `make demo` runs the demo, `make test` runs every test.
# Each builds what it needs first, installing the wasm32-wasip2 target, the pinned
# componentize-py (into target/python-venv), the pinned componentize-js (npm ci into
# target/js-tools) and, for C, Debian's clang, lld and wasi-libc (apt-get) with the pinned
# wit-bindgen and wasm-tools (cargo install into target/c-tools) when missing.

CARGO ?= cargo
# Every guest component the examples and tests use, by crate name.
RUST_GUESTS := hello fulfil-order send-receipt hostile wrong-world unknown-import contract-0-1-0 \
	http-client
# The host-side crates whose tests `make test` runs.
TEST_CRATES := spool spool-client spool-devdb spool-tests spool-guest spool-guest-macro

.PHONY: demo test guests c-guests bench lint

## Builds every guest component into target/wasm32-wasip2/release/.
guests:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 \
		|| rustup target add wasm32-wasip2
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(RUST_GUESTS))
	scripts/build-python.sh
	scripts/build-js.sh

## Builds the C example (examples/c-hello): only the tests and the benches need it, so the demo
## does not wait for its toolchain.
c-guests:
	scripts/build-c.sh

## Runs the demo: an order-fulfilment flow over the HTTP API, on DATABASE_URL or, when it is
## unset, on a private PostgreSQL cluster under .spool/ (the embedded default `spool dev` uses).
demo: guests
	$(CARGO) build -p spool
	target/debug/spool demo

## Installs headless Chromium and chromedriver (Debian's packages) for the dashboard's browser
## test, when missing.
.PHONY: browser
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
		|| ($(SUDO) apt-get update \
			&& $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver)

## Runs all tests, against DATABASE_URL or, when it is unset, a private PostgreSQL cluster
## under target/spool-pg (see scripts/with-postgres.sh).
test: guests c-guests browser
	$(CARGO) build -p spool
	scripts/with-postgres.sh $(CARGO) test $(addprefix -p ,$(TEST_CRATES))

## Checks formatting and lints (what CI checks before the tests).
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy $(addprefix -p ,$(TEST_CRATES)) --all-targets -- -D warnings

## Runs the benchmarks (release build).
bench: guests c-guests
	$(CARGO) bench -p spool
