//! svcnet-store: the versioned key-value store under the API server, shaped like etcd's model so
//! that an etcd backend can replace the embedded one: one global revision that every write bumps,
//! compare-and-swap transactions, prefix lists, and watches that replay from a revision until it is
//! compacted.
//!
//! Start with [`Store`] (the contract) and [`RedbStore`] (the embedded, crash-safe default).

mod hub;
mod record;
mod redb_store;

pub use hub::WatchStream;
pub use redb_store::RedbStore;

use futures::future::BoxFuture;

/// A stored key with the revisions etcd would report for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created the key (etcd `create_revision`).
    pub create_revision: u64,
    /// Revision of the last write to the key (etcd `mod_revision`); the object's resourceVersion.
    pub mod_revision: u64,
}

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Put,
    Delete,
}

/// One change, as a watch delivers it. For a delete, `kv.value` holds the last value and
/// `kv.mod_revision` the revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventType,
    pub kv: KeyValue,
    /// True when a put created the key (the API server reports ADDED rather than MODIFIED).
    pub created: bool,
    /// The value before this change, when known. Live events carry it (watchers with selectors
    /// need it to tell an object leaving their selection from one that never was in it); events
    /// replayed from the persisted log do not.
    pub prev_value: Option<Vec<u8>>,
    /// The event as its consumer sends it on, rendered once by the first reader that needs it and
    /// shared by all: every watcher of a change sends the same bytes, so they are built once per
    /// change instead of once per watcher.
    pub rendered: std::sync::OnceLock<bytes::Bytes>,
}

impl Event {
    pub fn revision(&self) -> u64 {
        self.kv.mod_revision
    }
}

/// A condition a write checks before it applies, evaluated inside the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Apply unconditionally (deleting a missing key is a no-op, as in etcd).
    None,
    /// The key must not exist (create).
    MustNotExist,
    /// The key must exist (update without a resourceVersion).
    MustExist,
    /// The key must exist with this mod revision (optimistic concurrency).
    ModRevision(u64),
}

/// One write inside a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        key: String,
        value: Vec<u8>,
        precondition: Precondition,
    },
    Delete {
        key: String,
        precondition: Precondition,
    },
}

impl Op {
    pub fn key(&self) -> &str {
        match self {
            Op::Put { key, .. } | Op::Delete { key, .. } => key,
        }
    }
}

/// The outcome of a committed transaction: one revision for all its writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    pub revision: u64,
    /// The keys written, in op order (a delete of a missing key writes nothing): their state
    /// after the write, or for a delete the last value.
    pub kvs: Vec<KeyValue>,
}

/// A consistent snapshot of a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    /// The store revision the snapshot reflects.
    pub revision: u64,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("key {0} already exists")]
    AlreadyExists(String),
    #[error("key {0} not found")]
    NotFound(String),
    #[error("key {key}: expected revision {expected}, found {actual}")]
    Conflict { key: String, expected: u64, actual: u64 },
    #[error("revision {requested} has been compacted (oldest available {compacted})")]
    Compacted { requested: u64, compacted: u64 },
    #[error("storage backend failed: {0}")]
    Backend(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The storage contract. Every method maps onto one etcd v3 call: Range, Txn, Watch, Compact.
pub trait Store: Send + Sync + 'static {
    /// The current revision (the revision of the last committed write).
    fn revision(&self) -> u64;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>>;
    /// Every key under `prefix`, in key order, from one snapshot.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>>;
    /// Applies all ops atomically at one new revision, or none if any precondition fails.
    fn txn(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<TxnResult>>;
    /// Streams every change under `prefix` with a revision greater than `after`, then live
    /// changes. Fails with [`Error::Compacted`] if that history is gone.
    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream>;
    /// Forgets history at and below `revision`.
    fn compact(&self, revision: u64) -> BoxFuture<'_, Result<()>>;
    /// The oldest revision a watch may still start after.
    fn compacted_revision(&self) -> u64;
}
