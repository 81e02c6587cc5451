//! The on-disk cache of compiled components.
//!
//! Artifacts are keyed by the component's digest and the engine's compatibility hash, so a
//! changed engine configuration or wasmtime version never picks up a stale artifact. Loading
//! an artifact runs native code that wasmtime trusts blindly, so every file is sealed with an
//! HMAC under a key that only this cache directory holds (created owner-only): a file Spool did
//! not write, or one cut short by a crash, fails the check and is recompiled instead.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 8] = b"SPOOLCW1";
const TAG_LEN: usize = 32;
const KEY_FILE: &str = "seal.key";

/// Returns the lowercase hex SHA-256 of `bytes`: a component's digest.
pub fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Returns a stable hex hash of everything that makes compiled code compatible with `engine`.
pub fn engine_hash(engine: &Engine) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..12])
}

/// A [`Hasher`] feeding SHA-256, so the hash is the same in every process and release.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the SHA-256 state is used; `finish` is never called by `engine_hash`.
        0
    }
}

/// Compiled artifacts in one owner-only directory.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    key: Vec<u8>,
    engine_hash: String,
}

/// Why the cache directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An I/O error on the cache directory or its key.
    #[error("component cache at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The directory is writable by others, so its files cannot be trusted.
    #[error("component cache at {0} is writable by other users; use a directory only Spool owns")]
    Insecure(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl DiskCache {
    /// Opens (creating it if need be) the cache at `dir` for artifacts of `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<DiskCache, CacheError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        let mode = fs::metadata(dir).map_err(io(dir))?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(CacheError::Insecure(dir.to_path_buf()));
        }
        let key_path = dir.join(KEY_FILE);
        let key = match fs::read(&key_path) {
            Ok(key) if key.len() == 32 => key,
            _ => {
                let mut key = vec![0; 32];
                getrandom::fill(&mut key).map_err(|e| CacheError::Io {
                    path: key_path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
                write_atomically(dir, &key_path, &key).map_err(io(&key_path))?;
                key
            }
        };
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash: engine_hash(engine),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash))
    }

    fn seal(&self, body: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.engine_hash.as_bytes());
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Returns the artifact for `digest` if one is there and its seal checks out.
    pub fn read(&self, digest: &str) -> Option<Vec<u8>> {
        let file = fs::read(self.path(digest)).ok()?;
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < TAG_LEN {
            return None;
        }
        let (tag, body) = rest.split_at(TAG_LEN);
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.engine_hash.as_bytes());
        mac.update(body);
        mac.verify_slice(tag).ok()?;
        Some(body.to_vec())
    }

    /// Stores the artifact for `digest`, replacing any other atomically.
    pub fn write(&self, digest: &str, body: &[u8]) -> std::io::Result<()> {
        let mut file = Vec::with_capacity(MAGIC.len() + TAG_LEN + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&self.seal(body));
        file.extend_from_slice(body);
        write_atomically(&self.dir, &self.path(digest), &file)
    }
}

/// Writes `bytes` to `path` through a temporary file in `dir` and a rename, owner-only.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ));
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let cache = DiskCache::open(dir.path(), &engine).unwrap();
        assert_eq!(cache.read("abc"), None);
        cache.write("abc", b"compiled").unwrap();
        assert_eq!(cache.read("abc").as_deref(), Some(&b"compiled"[..]));

        let path = cache.path("abc");
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.read("abc"), None, "a modified artifact is refused");

        fs::write(&path, b"SPOOLCW1short").unwrap();
        assert_eq!(cache.read("abc"), None, "a truncated artifact is refused");
    }

    #[test]
    fn another_cache_key_does_not_trust_the_file() {
        let engine = Engine::default();
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = DiskCache::open(a.path(), &engine).unwrap();
        let second = DiskCache::open(b.path(), &engine).unwrap();
        first.write("abc", b"compiled").unwrap();
        fs::copy(first.path("abc"), second.path("abc")).unwrap();
        assert_eq!(second.read("abc"), None);
    }

    #[test]
    fn a_world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = DiskCache::open(dir.path(), &Engine::default()).unwrap_err();
        assert!(matches!(err, CacheError::Insecure(_)), "{err}");
    }
}
