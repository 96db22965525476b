//! The embedded backend on redb. Writes go through one writer thread that commits every queued
//! transaction in one fsynced redb commit (group commit, as etcd batches its raft entries), so
//! concurrent clients share the cost of the disk flush. Reads use redb snapshots directly.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use futures::future::BoxFuture;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::hub::Hub;
use crate::record::{decode_event, decode_value, encode_event, encode_value, log_key, log_key_revision};
use crate::{Error, Event, EventType, KeyValue, ListResult, Op, Precondition, Result, Store, TxnResult, WatchStream};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const META_REVISION: &str = "revision";
const META_COMPACTED: &str = "compacted";
/// Transactions folded into one commit at most; bounds the latency of the first in a batch.
const MAX_BATCH: usize = 512;
/// Log entries kept when the store compacts itself; older watch resumes get 410 Expired.
const AUTO_COMPACT_KEEP: u64 = 100_000;

fn backend<E: std::fmt::Display>(err: E) -> Error {
    Error::Backend(err.to_string())
}

struct WriteRequest {
    ops: Vec<Op>,
    reply: oneshot::Sender<Result<TxnResult>>,
}

/// The embedded store. Cheap to clone through `Arc`.
pub struct RedbStore {
    db: Arc<Database>,
    revision: Arc<AtomicU64>,
    compacted: Arc<AtomicU64>,
    hub: Arc<Hub>,
    writer: Option<mpsc::Sender<WriteRequest>>,
    writer_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RedbStore {
    /// Stops the writer after it drains what was queued, so the file is closed on return and the
    /// store can be opened again in the same process.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

impl RedbStore {
    /// Opens (or creates) the store at `path` and starts its writer thread.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Arc::new(Database::create(path).map_err(backend)?);
        let (revision, compacted) = init_tables(&db)?;
        let history = read_log(&db, compacted, 20_000)?;
        let hub = Arc::new(Hub::new(history));
        let revision = Arc::new(AtomicU64::new(revision));
        let compacted = Arc::new(AtomicU64::new(compacted));
        let (writer, requests) = mpsc::channel();
        let state = WriterState {
            db: db.clone(),
            revision: revision.clone(),
            compacted: compacted.clone(),
            hub: hub.clone(),
        };
        let writer_thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || state.run(requests))
            .map_err(backend)?;
        Ok(RedbStore {
            db,
            revision,
            compacted,
            hub,
            writer: Some(writer),
            writer_thread: Some(writer_thread),
        })
    }

    fn get_now(&self, key: &str) -> Result<Option<KeyValue>> {
        let txn = self.db.begin_read().map_err(backend)?;
        let table = txn.open_table(KV).map_err(backend)?;
        Ok(table.get(key).map_err(backend)?.map(|v| decode_value(key, v.value())))
    }

    fn list_now(&self, prefix: &str) -> Result<ListResult> {
        let txn = self.db.begin_read().map_err(backend)?;
        // The revision is read inside the snapshot, so it matches the data listed.
        let meta = txn.open_table(META).map_err(backend)?;
        let revision = meta
            .get(META_REVISION)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let table = txn.open_table(KV).map_err(backend)?;
        let mut kvs = Vec::new();
        for entry in table.range(prefix..).map_err(backend)? {
            let (key, value) = entry.map_err(backend)?;
            if !key.value().starts_with(prefix) {
                break;
            }
            kvs.push(decode_value(key.value(), value.value()));
        }
        Ok(ListResult { kvs, revision })
    }

    fn submit(&self, ops: Vec<Op>) -> oneshot::Receiver<Result<TxnResult>> {
        let (reply, receiver) = oneshot::channel();
        let request = WriteRequest { ops, reply };
        let sent = match &self.writer {
            Some(writer) => writer.send(request).map_err(|mpsc::SendError(request)| request),
            None => Err(request),
        };
        if let Err(request) = sent {
            let _ = request.reply.send(Err(Error::Backend("store writer stopped".into())));
        }
        receiver
    }
}

impl Store for RedbStore {
    fn revision(&self) -> u64 {
        self.revision.load(Ordering::SeqCst)
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<KeyValue>>> {
        Box::pin(async move { self.get_now(key) })
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<ListResult>> {
        Box::pin(async move { self.list_now(prefix) })
    }

    fn txn(&self, ops: Vec<Op>) -> BoxFuture<'_, Result<TxnResult>> {
        let receiver = self.submit(ops);
        Box::pin(async move {
            receiver
                .await
                .map_err(|_| Error::Backend("store writer stopped".into()))?
        })
    }

    fn watch(&self, prefix: &str, after: u64) -> Result<WatchStream> {
        let compacted = self.compacted.load(Ordering::SeqCst);
        if after < compacted {
            return Err(Error::Compacted {
                requested: after,
                compacted,
            });
        }
        self.hub
            .subscribe(prefix, after, |after| read_log(&self.db, after, usize::MAX))
    }

    fn compact(&self, revision: u64) -> BoxFuture<'_, Result<()>> {
        let db = self.db.clone();
        let compacted = self.compacted.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || compact_log(&db, &compacted, revision))
                .await
                .map_err(backend)?
        })
    }

    fn compacted_revision(&self) -> u64 {
        self.compacted.load(Ordering::SeqCst)
    }
}

/// Creates the tables on first start and returns (revision, compacted revision).
fn init_tables(db: &Database) -> Result<(u64, u64)> {
    let txn = db.begin_write().map_err(backend)?;
    let (revision, compacted) = {
        txn.open_table(KV).map_err(backend)?;
        txn.open_table(LOG).map_err(backend)?;
        let meta = txn.open_table(META).map_err(backend)?;
        let revision = meta
            .get(META_REVISION)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let compacted = meta
            .get(META_COMPACTED)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        (revision, compacted)
    };
    txn.commit().map_err(backend)?;
    Ok((revision, compacted))
}

/// Reads up to `limit` log events with revision > `after`, newest last. With a limit, the newest
/// `limit` events are returned (used to warm the in-memory history).
fn read_log(db: &Database, after: u64, limit: usize) -> Result<Vec<Event>> {
    let txn = db.begin_read().map_err(backend)?;
    let table = txn.open_table(LOG).map_err(backend)?;
    let mut events = std::collections::VecDeque::new();
    for entry in table.range(log_key(after + 1, 0)..).map_err(backend)? {
        let (key, value) = entry.map_err(backend)?;
        events.push_back(decode_event(log_key_revision(key.value()), value.value()));
        if events.len() > limit {
            events.pop_front();
        }
    }
    Ok(events.into())
}

fn compact_log(db: &Database, compacted: &AtomicU64, revision: u64) -> Result<()> {
    let txn = db.begin_write().map_err(backend)?;
    {
        let mut log = txn.open_table(LOG).map_err(backend)?;
        log.retain_in(..log_key(revision + 1, 0), |_, _| false)
            .map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let current = meta
            .get(META_COMPACTED)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        meta.insert(META_COMPACTED, current.max(revision)).map_err(backend)?;
    }
    txn.commit().map_err(backend)?;
    compacted.fetch_max(revision, Ordering::SeqCst);
    Ok(())
}

// === impl WriterState ===

struct WriterState {
    db: Arc<Database>,
    revision: Arc<AtomicU64>,
    compacted: Arc<AtomicU64>,
    hub: Arc<Hub>,
}

/// A transaction applied inside a batch, waiting for the commit to be acknowledged.
struct Applied {
    reply: oneshot::Sender<Result<TxnResult>>,
    outcome: Result<TxnResult>,
    events: Vec<Event>,
}

impl WriterState {
    fn run(self, requests: mpsc::Receiver<WriteRequest>) {
        while let Ok(first) = requests.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match requests.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            self.commit_batch(batch);
            self.maybe_compact();
        }
    }

    fn commit_batch(&self, batch: Vec<WriteRequest>) {
        let mut revision = self.revision.load(Ordering::SeqCst);
        let result = (|| -> Result<Vec<Applied>> {
            let txn = self.db.begin_write().map_err(backend)?;
            let mut applied = Vec::with_capacity(batch.len());
            {
                let mut kv = txn.open_table(KV).map_err(backend)?;
                let mut log = txn.open_table(LOG).map_err(backend)?;
                for request in batch {
                    let outcome = apply_one(&mut kv, &mut log, revision + 1, &request.ops);
                    let events = match &outcome {
                        Ok((_, events)) => {
                            revision += 1;
                            events.clone()
                        }
                        Err(_) => Vec::new(),
                    };
                    applied.push(Applied {
                        reply: request.reply,
                        outcome: outcome.map(|(r, _)| r),
                        events,
                    });
                }
                let mut meta = txn.open_table(META).map_err(backend)?;
                meta.insert(META_REVISION, revision).map_err(backend)?;
            }
            txn.commit().map_err(backend)?;
            Ok(applied)
        })();
        match result {
            Ok(applied) => {
                self.revision.store(revision, Ordering::SeqCst);
                // Watchers hear of a change before its writer does, so a client that reads its own
                // write and then watches from it never misses it.
                self.hub
                    .publish(applied.iter().flat_map(|a| a.events.iter().cloned()).collect());
                for a in applied {
                    let _ = a.reply.send(a.outcome);
                }
            }
            Err(err) => {
                tracing::error!(%err, "store commit failed");
                // The batch is lost as a whole; every writer hears why. Nothing was published.
            }
        }
    }

    fn maybe_compact(&self) {
        let revision = self.revision.load(Ordering::SeqCst);
        let compacted = self.compacted.load(Ordering::SeqCst);
        // Compact in steps so that the log stays between KEEP and 2 * KEEP revisions.
        if revision > compacted + 2 * AUTO_COMPACT_KEEP {
            if let Err(err) = compact_log(&self.db, &self.compacted, revision - AUTO_COMPACT_KEEP) {
                tracing::warn!(%err, "store compaction failed");
            }
        }
    }
}

type KvTable<'t> = redb::Table<'t, &'static str, &'static [u8]>;
type LogTable<'t> = redb::Table<'t, u64, &'static [u8]>;

/// Checks every precondition of one transaction first, then writes all its ops at `revision`.
fn apply_one(kv: &mut KvTable, log: &mut LogTable, revision: u64, ops: &[Op]) -> Result<(TxnResult, Vec<Event>)> {
    let mut current = Vec::with_capacity(ops.len());
    for op in ops {
        let existing = kv
            .get(op.key())
            .map_err(backend)?
            .map(|v| decode_value(op.key(), v.value()));
        check(op, existing.as_ref().map(|e| (e.create_revision, e.mod_revision)))?;
        current.push(existing);
    }
    let mut kvs = Vec::with_capacity(ops.len());
    let mut events = Vec::with_capacity(ops.len());
    for (index, (op, existing)) in ops.iter().zip(current).enumerate() {
        let event = match op {
            Op::Put { key, value, .. } => {
                let create_revision = existing.as_ref().map(|e| e.create_revision).unwrap_or(revision);
                kv.insert(key.as_str(), encode_value(create_revision, revision, value).as_slice())
                    .map_err(backend)?;
                let kv = KeyValue {
                    key: key.clone(),
                    value: value.clone(),
                    create_revision,
                    mod_revision: revision,
                };
                Event {
                    kind: EventType::Put,
                    created: existing.is_none(),
                    kv,
                    prev_value: existing.map(|e| e.value),
                    rendered: Default::default(),
                }
            }
            Op::Delete { key, .. } => {
                let Some(mut last) = existing else { continue };
                kv.remove(key.as_str()).map_err(backend)?;
                last.mod_revision = revision;
                let prev_value = Some(last.value.clone());
                Event {
                    kind: EventType::Delete,
                    created: false,
                    kv: last,
                    prev_value,
                    rendered: Default::default(),
                }
            }
        };
        log.insert(log_key(revision, index), encode_event(&event).as_slice())
            .map_err(backend)?;
        kvs.push(event.kv.clone());
        events.push(event);
    }
    Ok((TxnResult { revision, kvs }, events))
}

fn check(op: &Op, existing: Option<(u64, u64)>) -> Result<()> {
    let key = op.key().to_string();
    let precondition = match op {
        Op::Put { precondition, .. } => *precondition,
        // As in etcd, an unconditional delete of a missing key succeeds and changes nothing.
        Op::Delete {
            precondition: Precondition::None,
            ..
        } => return Ok(()),
        Op::Delete { precondition, .. } => {
            if existing.is_none() {
                return Err(Error::NotFound(key));
            }
            *precondition
        }
    };
    match (precondition, existing) {
        (Precondition::MustNotExist, Some(_)) => Err(Error::AlreadyExists(key)),
        (Precondition::MustExist, None) | (Precondition::ModRevision(_), None) => Err(Error::NotFound(key)),
        (Precondition::ModRevision(expected), Some((_, actual))) if expected != actual => {
            Err(Error::Conflict { key, expected, actual })
        }
        _ => Ok(()),
    }
}
