//! What the binary's own tests share: where `make guests` put the components.

use std::path::PathBuf;

/// Returns the component `name` built by `make guests`, in `$CARGO_TARGET_DIR` (or the
/// workspace's `target/`).
///
/// # Panics
///
/// When it has not been built.
pub fn component(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target
        .join("wasm32-wasip2/release")
        .join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make guests`",
        path.display()
    );
    path
}
