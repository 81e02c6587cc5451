//! Upload validation: what is not a runnable handler is refused, with the reason.

use spool::runtime::ValidationError;
use spool_tests::{component, runtime};

#[tokio::test]
async fn garbage_bytes_are_not_wasm() {
    let err = runtime().load(b"this is not wasm").await.err().unwrap();
    assert_eq!(err, ValidationError::NotWasm);
}

#[tokio::test]
async fn a_core_module_is_refused_with_advice() {
    // The smallest valid core module: the header alone.
    let err = runtime().load(b"\0asm\x01\0\0\0").await.err().unwrap();
    assert_eq!(err, ValidationError::CoreModule);
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
}

#[tokio::test]
async fn a_truncated_component_is_invalid() {
    let hello = component("hello");
    let err = runtime()
        .load(&hello[..hello.len() / 2])
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ValidationError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn a_component_of_another_world_is_refused() {
    let err = runtime()
        .load(&component("wrong-world"))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, ValidationError::WrongWorld(_)), "{err:?}");
    assert!(
        err.to_string().contains("run"),
        "names the missing export: {err}"
    );
}

#[tokio::test]
async fn an_unknown_import_is_refused_by_name() {
    let err = runtime()
        .load(&component("unknown-import"))
        .await
        .err()
        .unwrap();
    match &err {
        ValidationError::UnknownImport(name) => assert!(name.contains("acme:"), "{name}"),
        other => panic!("expected an unknown import, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_component_is_refused_before_compiling() {
    let limit = runtime().config().max_component_bytes;
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.resize(limit + 1, 0);
    let err = runtime().load(&bytes).await.err().unwrap();
    assert!(matches!(err, ValidationError::TooLarge { .. }), "{err:?}");
}
