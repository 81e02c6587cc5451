//! The `spool:job/idempotency-store` capability: tenant-scoped key/value state whose writes
//! commit atomically with the job's done-record.
//!
//! Reads go to an injected [`StoreBackend`] (the tenant's rows in Postgres,
//! [`KvBackend`](crate::store::KvBackend), in production; [`MemoryBackend`] for `spool run` and
//! tests) and see the attempt's own buffered writes on top. Writes are only
//! buffered: [`StoreState::into_writes`] hands them to whoever commits the attempt, each with
//! the version the attempt observed, so that the commit can detect a concurrent change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use wasmtime::component::{HasSelf, Linker};

use crate::model::text::is_valid_key;
use crate::model::{Expected, Limits, StoreWrite, WriteOp, counter_value};
use crate::wit::spool::job::idempotency_store as wit;

/// The most keys one `list-keys` call returns, whatever the guest asks for.
pub const MAX_LIST_LIMIT: u32 = 1000;

/// A committed value and its version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The value bytes.
    pub value: Vec<u8>,
    /// The version: changes on every committed write of the key.
    pub version: i64,
}

/// A failure of the backing store; the guest sees it as `store-error::unavailable`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// Where committed store state is read from.
#[async_trait::async_trait]
pub trait StoreBackend: Send + Sync + 'static {
    /// Returns the committed value of `key` in `tenant`'s store, if any.
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Versioned>, BackendError>;

    /// Returns up to `limit` committed keys of `tenant` starting with `prefix`, in byte order,
    /// strictly after `after` when given.
    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError>;
}

/// An in-memory [`StoreBackend`], for `spool run` and tests of pure logic.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    entries: RwLock<BTreeMap<(String, String), Versioned>>,
}

impl MemoryBackend {
    /// Applies committed writes to `tenant`'s state, bumping versions.
    pub fn apply(&self, tenant: &str, writes: &[StoreWrite]) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        for write in writes {
            let id = (tenant.to_string(), write.key.clone());
            let value = match &write.op {
                WriteOp::Put(value) => value.clone(),
                WriteOp::Add(delta) => {
                    let now = entries
                        .get(&id)
                        .map_or(Some(0), |v| counter_value(&v.value));
                    let sum = now.unwrap_or(0).saturating_add(*delta);
                    sum.to_string().into_bytes()
                }
                WriteOp::Delete => {
                    entries.remove(&id);
                    continue;
                }
            };
            let version = entries.get(&id).map_or(1, |v| v.version + 1);
            entries.insert(id, Versioned { value, version });
        }
    }
}

#[async_trait::async_trait]
impl StoreBackend for MemoryBackend {
    async fn get(&self, tenant: &str, key: &str) -> Result<Option<Versioned>, BackendError> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        Ok(entries.get(&(tenant.to_string(), key.to_string())).cloned())
    }

    async fn list_keys(
        &self,
        tenant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        let entries = self.entries.read().unwrap_or_else(|e| e.into_inner());
        let start = (tenant.to_string(), prefix.to_string());
        Ok(entries
            .range(start..)
            .take_while(|((t, k), _)| t == tenant && k.starts_with(prefix))
            .map(|((_, k), _)| k)
            .filter(|k| after.is_none_or(|a| k.as_str() > a))
            .take(limit as usize)
            .cloned()
            .collect())
    }
}

/// Reads from the tenant's rows in PostgreSQL: what the worker's attempts read.
#[async_trait::async_trait]
impl StoreBackend for crate::store::KvBackend {
    async fn get(&self, _tenant: &str, key: &str) -> Result<Option<Versioned>, BackendError> {
        let found = crate::store::KvBackend::get(self, key)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        Ok(found.map(|(value, version)| Versioned { value, version }))
    }

    async fn list_keys(
        &self,
        _tenant: &str,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, BackendError> {
        crate::store::KvBackend::list_keys(self, prefix, after, limit)
            .await
            .map_err(|e| BackendError(e.to_string()))
    }
}

/// The per-attempt state of the store capability.
pub struct StoreState {
    backend: Arc<dyn StoreBackend>,
    tenant: String,
    idempotency_key: String,
    max_key_bytes: u32,
    max_value_bytes: u32,
    max_write_bytes: u64,
    written_bytes: u64,
    max_reads: u32,
    max_read_bytes: u64,
    reads: u32,
    read_bytes: u64,
    /// The buffered write per key: the latest put or delete, or the sum of the adds.
    writes: BTreeMap<String, WriteOp>,
    /// What the attempt first saw under each key it read.
    observed: HashMap<String, Expected>,
}

impl StoreState {
    /// Returns the state for one attempt of a job of `tenant` with `idempotency_key`.
    pub fn new(
        backend: Arc<dyn StoreBackend>,
        tenant: &str,
        idempotency_key: &str,
        limits: &Limits,
    ) -> StoreState {
        StoreState {
            backend,
            tenant: tenant.to_string(),
            idempotency_key: idempotency_key.to_string(),
            max_key_bytes: limits.max_store_key_bytes,
            max_reads: limits.max_store_reads,
            max_read_bytes: limits.max_store_read_bytes,
            reads: 0,
            read_bytes: 0,
            max_value_bytes: limits.max_store_value_bytes,
            max_write_bytes: limits.max_store_write_bytes,
            written_bytes: 0,
            writes: BTreeMap::new(),
            observed: HashMap::new(),
        }
    }

    /// Returns the buffered writes, each with what the attempt observed of its key.
    pub fn into_writes(self) -> Vec<StoreWrite> {
        let observed = self.observed;
        self.writes
            .into_iter()
            .map(|(key, op)| StoreWrite {
                // An add commutes with every other write: it is never checked.
                expected: match op {
                    WriteOp::Add(_) => None,
                    _ => observed.get(&key).copied(),
                },
                key,
                op,
            })
            .collect()
    }

    fn check_key(&self, key: &str) -> Result<(), wit::StoreError> {
        // Keys are stored as text: no control characters (NUL above all, which text refuses).
        if !is_valid_key(key, self.max_key_bytes as usize) {
            return Err(wit::StoreError::InvalidKey(self.max_key_bytes));
        }
        Ok(())
    }

    /// Counts one read that reaches the backend, refusing it past the attempt's read budget.
    fn charge_read(&mut self) -> Result<(), wit::StoreError> {
        if self.reads >= self.max_reads {
            return Err(wit::StoreError::QuotaExceeded(u64::from(self.max_reads)));
        }
        if self.read_bytes > self.max_read_bytes {
            return Err(wit::StoreError::QuotaExceeded(self.max_read_bytes));
        }
        self.reads += 1;
        Ok(())
    }

    fn charge(&mut self, bytes: usize) -> Result<(), wit::StoreError> {
        let total = self.written_bytes.saturating_add(bytes as u64);
        if total > self.max_write_bytes {
            return Err(wit::StoreError::QuotaExceeded(self.max_write_bytes));
        }
        self.written_bytes = total;
        Ok(())
    }
}

/// Returns the effect key for `label` of the job with `idempotency_key` in `tenant`: stable
/// across attempts, distinct across tenants, keys and labels.
pub fn effect_key(tenant: &str, idempotency_key: &str, label: &str) -> String {
    let mut hash = Sha256::new();
    // Length-prefix each part so that no two different triples hash the same bytes.
    for part in [tenant, idempotency_key, label] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    format!("spool-{}", hex::encode(&hash.finalize()[..16]))
}

impl wit::Host for StoreState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, wit::StoreError> {
        self.check_key(&key)?;
        match self.writes.get(&key) {
            Some(WriteOp::Put(value)) => return Ok(Some(value.clone())),
            Some(WriteOp::Delete) => return Ok(None),
            Some(WriteOp::Add(_)) | None => {}
        }
        self.charge_read()?;
        let found = self
            .backend
            .get(&self.tenant, &key)
            .await
            .map_err(|e| wit::StoreError::Unavailable(e.to_string()))?;
        let seen = match &found {
            Some(v) => Expected::Version(v.version),
            None => Expected::Absent,
        };
        self.read_bytes += found.as_ref().map_or(0, |v| v.value.len() as u64);
        let pending = match self.writes.get(&key) {
            Some(WriteOp::Add(delta)) => Some(*delta),
            _ => None,
        };
        self.observed.entry(key).or_insert(seen);
        Ok(match (found, pending) {
            // The committed counter plus this attempt's own adds.
            (found, Some(delta)) => {
                let now = found.as_ref().map_or(Some(0), |v| counter_value(&v.value));
                match now {
                    Some(now) => Some(now.saturating_add(delta).to_string().into_bytes()),
                    None => found.map(|v| v.value),
                }
            }
            (found, None) => found.map(|v| v.value),
        })
    }

    fn put(&mut self, key: String, value: Vec<u8>) -> Result<(), wit::StoreError> {
        self.check_key(&key)?;
        if value.len() > self.max_value_bytes as usize {
            return Err(wit::StoreError::ValueTooLarge(self.max_value_bytes));
        }
        self.charge(key.len() + value.len())?;
        self.writes.insert(key, WriteOp::Put(value));
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), wit::StoreError> {
        self.check_key(&key)?;
        self.charge(key.len())?;
        self.writes.insert(key, WriteOp::Delete);
        Ok(())
    }

    fn add(&mut self, key: String, delta: i64) -> Result<(), wit::StoreError> {
        self.check_key(&key)?;
        let op = match self.writes.get(&key) {
            None => WriteOp::Add(delta),
            Some(WriteOp::Add(before)) => WriteOp::Add(before.saturating_add(delta)),
            Some(WriteOp::Delete) => WriteOp::Put(delta.to_string().into_bytes()),
            Some(WriteOp::Put(value)) => match counter_value(value) {
                Some(now) => WriteOp::Put(now.saturating_add(delta).to_string().into_bytes()),
                None => {
                    return Err(wit::StoreError::Unavailable(format!(
                        "store key {key:?} was just given a value that is not an integer: \
                         cannot add to it"
                    )));
                }
            },
        };
        self.charge(key.len() + op.stored_bytes())?;
        self.writes.insert(key, op);
        Ok(())
    }

    async fn list_keys(
        &mut self,
        prefix: String,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<String>, wit::StoreError> {
        let limit = limit.min(MAX_LIST_LIMIT);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let in_range = |k: &String| k.starts_with(&prefix) && after.as_ref().is_none_or(|a| k > a);
        // Buffered deletes can hide committed keys: ask for more (boundedly) and page on
        // until `limit` keys are found or the committed keys run out; each page is a read.
        let deletes = self
            .writes
            .iter()
            .filter(|(k, op)| matches!(op, WriteOp::Delete) && in_range(k))
            .count()
            .min(MAX_LIST_LIMIT as usize) as u32;
        let mut committed = Vec::new();
        let mut cursor = after.clone();
        loop {
            self.charge_read()?;
            let page = self
                .backend
                .list_keys(&self.tenant, &prefix, cursor.as_deref(), limit + deletes)
                .await
                .map_err(|e| wit::StoreError::Unavailable(e.to_string()))?;
            self.read_bytes += page.iter().map(|k| k.len() as u64).sum::<u64>();
            let exhausted = page.len() < (limit + deletes) as usize;
            cursor = page.last().cloned();
            committed.extend(
                page.into_iter()
                    .filter(|k| !matches!(self.writes.get(k), Some(WriteOp::Delete))),
            );
            if exhausted || committed.len() >= limit as usize {
                break;
            }
        }
        let mut keys: Vec<String> = committed
            .into_iter()
            .chain(
                self.writes
                    .iter()
                    .filter(|(k, op)| !matches!(op, WriteOp::Delete) && in_range(k))
                    .map(|(k, _)| k.clone()),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys.truncate(limit as usize);
        Ok(keys)
    }

    fn effect_key(&mut self, label: String) -> String {
        effect_key(&self.tenant, &self.idempotency_key, &label)
    }
}

/// Adds `spool:job/idempotency-store` to `linker`, reading the state with `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StoreState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<StoreState>>(linker, get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wit::Host;

    fn state(backend: Arc<MemoryBackend>) -> StoreState {
        StoreState::new(backend, "acme", "job-1", &Limits::default())
    }

    fn put(key: &str, value: &str) -> StoreWrite {
        StoreWrite {
            key: key.into(),
            op: WriteOp::Put(value.into()),
            expected: None,
        }
    }

    #[tokio::test]
    async fn reads_see_committed_state_plus_own_writes() {
        let backend = Arc::new(MemoryBackend::default());
        backend.apply("acme", &[put("a", "1"), put("b", "2")]);
        let mut s = state(backend);
        assert_eq!(s.get("a".into()).await.unwrap(), Some(b"1".to_vec()));
        s.put("a".into(), b"9".to_vec()).unwrap();
        s.delete("b".into()).unwrap();
        assert_eq!(s.get("a".into()).await.unwrap(), Some(b"9".to_vec()));
        assert_eq!(s.get("b".into()).await.unwrap(), None);
        let writes = s.into_writes();
        assert_eq!(writes[0].expected, Some(Expected::Version(1)));
        assert_eq!(writes[1].expected, None, "b was never read");
    }

    #[tokio::test]
    async fn adds_sum_unchecked_and_reads_see_them_on_the_committed_value() {
        let backend = Arc::new(MemoryBackend::default());
        backend.apply("acme", &[put("n", "40")]);
        let mut s = state(backend.clone());
        assert_eq!(s.get("n".into()).await.unwrap(), Some(b"40".to_vec()));
        s.add("n".into(), 1).unwrap();
        s.add("n".into(), 1).unwrap();
        assert_eq!(s.get("n".into()).await.unwrap(), Some(b"42".to_vec()));
        s.add("fresh".into(), -3).unwrap();
        s.put("text".into(), b"abc".to_vec()).unwrap();
        assert!(s.add("text".into(), 1).is_err());
        let writes = s.into_writes();
        let n = writes.iter().find(|w| w.key == "n").unwrap();
        // Read first, yet unchecked: adds commute.
        assert_eq!((&n.op, n.expected), (&WriteOp::Add(2), None));
        backend.apply("acme", &writes);
        let mut s = state(backend);
        assert_eq!(s.get("n".into()).await.unwrap(), Some(b"42".to_vec()));
        assert_eq!(s.get("fresh".into()).await.unwrap(), Some(b"-3".to_vec()));
    }

    #[tokio::test]
    async fn tenants_do_not_see_each_other() {
        let backend = Arc::new(MemoryBackend::default());
        backend.apply("other", &[put("a", "1")]);
        let mut s = state(backend);
        assert_eq!(s.get("a".into()).await.unwrap(), None);
        assert!(s.list_keys("".into(), None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn list_keys_merges_buffered_writes_and_pages() {
        let backend = Arc::new(MemoryBackend::default());
        backend.apply(
            "acme",
            &[put("k1", ""), put("k2", ""), put("k3", ""), put("x", "")],
        );
        let mut s = state(backend);
        s.delete("k2".into()).unwrap();
        s.put("k25".into(), vec![]).unwrap();
        let all = s.list_keys("k".into(), None, 100).await.unwrap();
        assert_eq!(all, ["k1", "k25", "k3"]);
        let page = s.list_keys("k".into(), Some("k1".into()), 1).await.unwrap();
        assert_eq!(page, ["k25"]);
    }

    #[tokio::test]
    async fn oversized_keys_values_and_budgets_are_refused() {
        let limits = Limits {
            max_store_key_bytes: 4,
            max_store_value_bytes: 8,
            max_store_write_bytes: 20,
            ..Limits::default()
        };
        let mut s = StoreState::new(Arc::new(MemoryBackend::default()), "t", "k", &limits);
        assert!(matches!(
            s.put("toolong".into(), vec![]),
            Err(wit::StoreError::InvalidKey(4))
        ));
        assert!(matches!(
            s.put("".into(), vec![]),
            Err(wit::StoreError::InvalidKey(4))
        ));
        assert!(matches!(
            s.put("k".into(), vec![0; 9]),
            Err(wit::StoreError::ValueTooLarge(8))
        ));
        s.put("k".into(), vec![0; 8]).unwrap();
        s.put("k".into(), vec![0; 8]).unwrap();
        assert!(matches!(
            s.put("k".into(), vec![0; 8]),
            Err(wit::StoreError::QuotaExceeded(20))
        ));
    }

    #[test]
    fn effect_keys_are_stable_and_distinct() {
        let a = effect_key("t", "job", "charge");
        assert_eq!(a, effect_key("t", "job", "charge"));
        assert_ne!(a, effect_key("t", "job", "email"));
        assert_ne!(a, effect_key("u", "job", "charge"));
        assert_ne!(effect_key("t", "ab", "c"), effect_key("t", "a", "bc"));
    }
}
