//! The compiled-component cache: compile once, reuse from memory and disk, never reuse an
//! artifact built for another engine configuration.

use spool::runtime::{CacheStats, OptLevel, Runtime, RuntimeConfig};
use spool_tests::component;

fn runtime_at(dir: &std::path::Path, opt_level: OptLevel) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(dir.to_path_buf()),
        opt_level,
        max_instances: 4,
        ..RuntimeConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_second_load_does_not_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let hello = component("hello");
    let first = runtime_at(dir.path(), OptLevel::Speed);
    let a = first.load(&hello).await.unwrap();
    let b = first.load(&hello).await.unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_eq!(
        first.cache_stats(),
        CacheStats {
            compiled: 1,
            from_disk: 0,
            from_memory: 1
        }
    );

    // A new process (here: a new runtime) finds the artifact on disk.
    let second = runtime_at(dir.path(), OptLevel::Speed);
    second.load(&hello).await.unwrap();
    assert_eq!(second.cache_stats().compiled, 0);
    assert_eq!(second.cache_stats().from_disk, 1);
    assert!(second.cached(a.digest()).is_some());
}

#[tokio::test]
async fn a_changed_engine_config_does_not_reuse_stale_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    let hello = component("hello");
    runtime_at(dir.path(), OptLevel::Speed)
        .load(&hello)
        .await
        .unwrap();

    let other = runtime_at(dir.path(), OptLevel::None);
    other.load(&hello).await.unwrap();
    assert_eq!(
        other.cache_stats().compiled,
        1,
        "compiled again for the new config"
    );
    assert_eq!(other.cache_stats().from_disk, 0);
    let artifacts = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("cwasm".as_ref()))
        .count();
    assert_eq!(artifacts, 2, "one artifact per engine configuration");
}

#[tokio::test]
async fn a_tampered_artifact_is_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let hello = component("hello");
    runtime_at(dir.path(), OptLevel::Speed)
        .load(&hello)
        .await
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension() == Some("cwasm".as_ref()) {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let again = runtime_at(dir.path(), OptLevel::Speed);
    again.load(&hello).await.unwrap();
    assert_eq!(again.cache_stats().compiled, 1);
    assert_eq!(again.cache_stats().from_disk, 0);
}
