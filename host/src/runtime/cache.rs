//! The on-disk cache of compiled components.
//!
//! Artifacts are keyed by the component's digest and the engine's compatibility hash, so a
//! changed engine configuration or wasmtime version never picks up a stale artifact. Loading
//! an artifact runs native code that wasmtime trusts blindly, so every file is sealed with an
//! HMAC of its digest, the engine hash and its body under a key that only this cache directory
//! holds (owner-only): a file Spool did not write, one cut short by a crash, or one renamed to
//! stand in for another digest fails the check and is recompiled instead.
//!
//! The directory is bounded: past its size cap, the least recently used artifacts are removed
//! (each upload of a new digest adds one, so it would otherwise grow without end).

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use wasmtime::Engine;

type HmacSha256 = Hmac<Sha256>;

// Version 2: the seal binds the digest too (version 1 files are refused, and recompiled).
const MAGIC: &[u8; 8] = b"SPOOLCW2";
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

/// Compiled artifacts in one directory that only this user may write, at most
/// [`max_bytes`](DiskCache::max_bytes) of them.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    key: Vec<u8>,
    engine_hash: String,
    max_bytes: u64,
}

/// The most bytes of artifacts a cache directory holds by default: 2 GiB.
pub const MAX_BYTES_DEFAULT: u64 = 2 << 30;

/// Temporary files older than this are left behind by a crash, and removed.
const STALE_TMP: Duration = Duration::from_secs(3600);

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
    /// The directory or its key is writable (the key: readable) by other users, or owned by
    /// another user, so its files cannot be trusted.
    #[error(
        "component cache at {0} is owned by another user, or open to other users; use a \
         directory only Spool's user owns and writes (mode 0700, its seal.key 0600)"
    )]
    Insecure(PathBuf),
    /// The key file is not a key this cache wrote (wrong length).
    #[error("component cache key {0} is not 32 bytes; remove it (the cache is rebuilt)")]
    BadKey(PathBuf),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Returns whether `meta` belongs to another user, or lets others do what `forbidden` (mode
/// bits) says.
fn is_insecure(meta: &fs::Metadata, forbidden: u32) -> bool {
    meta.uid() != rustix::process::geteuid().as_raw() || meta.permissions().mode() & forbidden != 0
}

impl DiskCache {
    /// Opens (creating it if need be) the cache at `dir` for artifacts of `engine`, holding
    /// at most `max_bytes` of them.
    ///
    /// The directory must belong to this user and be writable by no one else; its key must be
    /// this user's and readable by no one else. The key is made the first time, race-free:
    /// two processes opening a new cache at once agree on one key.
    pub fn open(dir: &Path, engine: &Engine, max_bytes: u64) -> Result<DiskCache, CacheError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        if is_insecure(&fs::metadata(dir).map_err(io(dir))?, 0o022) {
            return Err(CacheError::Insecure(dir.to_path_buf()));
        }
        let key_path = dir.join(KEY_FILE);
        let key = match read_key(&key_path)? {
            Some(key) => key,
            None => create_key(dir, &key_path)?,
        };
        let cache = DiskCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash: engine_hash(engine),
            max_bytes,
        };
        // Another process may have filled it, or a crash left temporary files.
        cache.evict();
        Ok(cache)
    }

    /// Returns the most bytes of artifacts this cache keeps.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash))
    }

    /// Returns the MAC of an artifact: it binds the digest (the file's name) and the engine
    /// hash to the body, so that a sealed file renamed to another digest is refused.
    fn mac(&self, digest: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        // Length-prefixed: no two (digest, engine hash) pairs feed the same bytes.
        for part in [digest.as_bytes(), self.engine_hash.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.update(body);
        mac
    }

    /// Returns the artifact for `digest` if one is there and its seal checks out, and marks it
    /// recently used.
    pub fn read(&self, digest: &str) -> Option<Vec<u8>> {
        let path = self.path(digest);
        let file = fs::read(&path).ok()?;
        let rest = file.strip_prefix(MAGIC.as_slice())?;
        if rest.len() < TAG_LEN {
            return None;
        }
        let (tag, body) = rest.split_at(TAG_LEN);
        self.mac(digest, body).verify_slice(tag).ok()?;
        // Eviction goes by modification time (access times are often not kept): a hit is a
        // use. Failing to mark it only makes it an earlier candidate.
        let _ = fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        Some(body.to_vec())
    }

    /// Stores the artifact for `digest`, replacing any other atomically, then evicts the
    /// least recently used artifacts past [`max_bytes`](DiskCache::max_bytes).
    pub fn write(&self, digest: &str, body: &[u8]) -> std::io::Result<()> {
        let mut file = Vec::with_capacity(MAGIC.len() + TAG_LEN + body.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&self.mac(digest, body).finalize().into_bytes());
        file.extend_from_slice(body);
        write_atomically(&self.dir, &self.path(digest), &file)?;
        self.evict();
        Ok(())
    }

    /// Removes the least recently used artifacts (of any engine) until the rest fit in
    /// [`max_bytes`](DiskCache::max_bytes), and temporary files a crash left; returns how many
    /// artifacts it removed.
    ///
    /// It reads the whole directory: cheap next to the compile that precedes every write.
    pub fn evict(&self) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut artifacts = Vec::new();
        let mut total = 0u64;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let Ok(meta) = entry.metadata() else { continue };
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            if name.ends_with(".cwasm") && meta.is_file() {
                total += meta.len();
                artifacts.push((modified, meta.len(), entry.path()));
            } else if name.starts_with(".tmp-")
                && now.duration_since(modified).unwrap_or_default() > STALE_TMP
            {
                let _ = fs::remove_file(entry.path());
            }
        }
        artifacts.sort();
        let mut removed = 0;
        for (_, len, path) in artifacts {
            if total <= self.max_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                removed += 1;
                total -= len;
                tracing::debug!(path = %path.display(), "evicted a compiled component");
            }
        }
        removed
    }
}

/// Reads the key at `path`: `None` if there is none yet.
fn read_key(path: &Path) -> Result<Option<Vec<u8>>, CacheError> {
    let mut file = match fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if is_insecure(&file.metadata().map_err(io(path))?, 0o077) {
        return Err(CacheError::Insecure(path.to_path_buf()));
    }
    let mut key = Vec::with_capacity(32);
    file.read_to_end(&mut key).map_err(io(path))?;
    if key.len() != 32 {
        return Err(CacheError::BadKey(path.to_path_buf()));
    }
    Ok(Some(key))
}

/// Makes a new key at `path`, or reads the one another process made first.
///
/// The key is written whole to a temporary file, then linked into place: a link never
/// replaces a file, so the first process to link wins and the others read its key (a rename
/// would let the last one replace a key the first already sealed artifacts with).
fn create_key(dir: &Path, path: &Path) -> Result<Vec<u8>, CacheError> {
    let mut key = vec![0; 32];
    getrandom::fill(&mut key).map_err(|e| CacheError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let tmp = tmp_path(dir);
    let linked = write_new(&tmp, &key).and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(path)?.ok_or_else(|| CacheError::BadKey(path.to_path_buf()))
        }
        Err(e) => Err(io(path)(e)),
    }
}

fn tmp_path(dir: &Path) -> PathBuf {
    dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    ))
}

/// Writes `bytes` to a new owner-only file at `path`, durably.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Writes `bytes` to `path` through a temporary file in `dir` and a rename, owner-only.
fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(dir);
    let result = write_new(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> DiskCache {
        DiskCache::open(dir, &Engine::default(), MAX_BYTES_DEFAULT).unwrap()
    }

    #[test]
    fn artifacts_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path());
        assert_eq!(cache.read("abc"), None);
        cache.write("abc", b"compiled").unwrap();
        assert_eq!(cache.read("abc").as_deref(), Some(&b"compiled"[..]));

        let path = cache.path("abc");
        let mut bytes = fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.read("abc"), None, "a modified artifact is refused");

        fs::write(&path, b"SPOOLCW2short").unwrap();
        assert_eq!(cache.read("abc"), None, "a truncated artifact is refused");
    }

    // Security review 6fe51aa, L11: the seal did not cover the digest.
    #[test]
    fn an_artifact_renamed_to_another_digest_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path());
        cache.write("abc", b"compiled abc").unwrap();
        fs::rename(cache.path("abc"), cache.path("def")).unwrap();
        assert_eq!(cache.read("def"), None);
        fs::rename(cache.path("def"), cache.path("abc")).unwrap();
        assert_eq!(cache.read("abc").as_deref(), Some(&b"compiled abc"[..]));
    }

    #[test]
    fn another_cache_key_does_not_trust_the_file() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = open(a.path());
        let second = open(b.path());
        first.write("abc", b"compiled").unwrap();
        fs::copy(first.path("abc"), second.path("abc")).unwrap();
        assert_eq!(second.read("abc"), None);
    }

    #[test]
    fn a_world_writable_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = DiskCache::open(dir.path(), &Engine::default(), 1).unwrap_err();
        assert!(matches!(err, CacheError::Insecure(_)), "{err}");
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path());
        let key = dir.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = DiskCache::open(dir.path(), &Engine::default(), 1).unwrap_err();
        assert!(matches!(err, CacheError::Insecure(_)), "{err}");
    }

    #[test]
    fn caches_opened_at_once_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let caches: Vec<DiskCache> = std::thread::scope(|s| {
            let opening: Vec<_> = (0..8).map(|_| s.spawn(|| open(dir.path()))).collect();
            opening.into_iter().map(|h| h.join().unwrap()).collect()
        });
        caches[0].write("abc", b"compiled").unwrap();
        for cache in &caches {
            assert_eq!(cache.read("abc").as_deref(), Some(&b"compiled"[..]));
        }
        let leftovers = fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".tmp-")
            })
            .count();
        assert_eq!(leftovers, 0, "no temporary key files are left");
    }

    #[test]
    fn the_least_recently_used_artifacts_are_evicted_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let body = vec![7u8; 1000];
        let file_len = (MAGIC.len() + TAG_LEN + body.len()) as u64;
        let cache = DiskCache::open(dir.path(), &Engine::default(), 3 * file_len).unwrap();
        let past = |secs| SystemTime::now() - Duration::from_secs(secs);
        for (i, digest) in ["a", "b", "c"].into_iter().enumerate() {
            cache.write(digest, &body).unwrap();
            let file = fs::File::options()
                .write(true)
                .open(cache.path(digest))
                .unwrap();
            file.set_modified(past(100 - i as u64 * 10)).unwrap();
        }
        // Reading "a" makes it the most recently used; "b" is now the oldest.
        assert!(cache.read("a").is_some());
        cache.write("d", &body).unwrap();
        assert!(cache.read("b").is_none(), "the least recently used is gone");
        for digest in ["a", "c", "d"] {
            assert!(cache.read(digest).is_some(), "{digest} is kept");
        }
    }
}
