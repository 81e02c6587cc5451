//! Host bindings generated from `wit/`, the same directory the guest SDK reads.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "handler",
    imports: {
        // Reads may go to the database; everything else is answered from the attempt's state.
        "spool:job/idempotency-store.get": async,
        "spool:job/idempotency-store.list-keys": async,
    },
    exports: { default: async },
});
