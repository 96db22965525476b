//! Behaviour of the embedded store through the `Store` contract.

use svcnet_store::{Error, EventType, Op, Precondition, RedbStore, Store};

fn put(key: &str, value: &str, precondition: Precondition) -> Op {
    Op::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        precondition,
    }
}

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("db")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn create_get_update_with_preconditions() {
    let (_dir, store) = open();
    let r1 = store
        .txn(vec![put("/services/default/a", "1", Precondition::MustNotExist)])
        .await
        .unwrap();
    assert_eq!(r1.revision, 1);
    let again = store
        .txn(vec![put("/services/default/a", "x", Precondition::MustNotExist)])
        .await;
    assert_eq!(again, Err(Error::AlreadyExists("/services/default/a".into())));
    let stale = store
        .txn(vec![put("/services/default/a", "2", Precondition::ModRevision(7))])
        .await;
    assert!(matches!(
        stale,
        Err(Error::Conflict {
            expected: 7,
            actual: 1,
            ..
        })
    ));
    let r2 = store
        .txn(vec![put("/services/default/a", "2", Precondition::ModRevision(1))])
        .await
        .unwrap();
    assert_eq!(r2.revision, 2);
    let kv = store.get("/services/default/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.create_revision, kv.mod_revision),
        (&b"2"[..], 1, 2)
    );
    assert_eq!(store.revision(), 2);
}

#[tokio::test]
async fn failed_transaction_changes_nothing() {
    let (_dir, store) = open();
    store.txn(vec![put("/a/1", "1", Precondition::None)]).await.unwrap();
    let result = store
        .txn(vec![
            put("/a/2", "2", Precondition::None),
            put("/a/1", "x", Precondition::MustNotExist),
        ])
        .await;
    assert!(result.is_err());
    assert_eq!(store.get("/a/2").await.unwrap(), None);
    assert_eq!(store.revision(), 1);
}

#[tokio::test]
async fn list_by_prefix_is_ordered_and_bounded() {
    let (_dir, store) = open();
    for key in ["/pods/b/x", "/pods/a/y", "/pods/a/x", "/podsx/a", "/services/a/s"] {
        store.txn(vec![put(key, "v", Precondition::None)]).await.unwrap();
    }
    let list = store.list("/pods/").await.unwrap();
    let keys: Vec<_> = list.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/pods/a/x", "/pods/a/y", "/pods/b/x"]);
    assert_eq!(list.revision, 5);
}

#[tokio::test]
async fn watch_replays_then_follows() {
    let (_dir, store) = open();
    store.txn(vec![put("/s/a", "1", Precondition::None)]).await.unwrap();
    store.txn(vec![put("/s/b", "1", Precondition::None)]).await.unwrap();
    store.txn(vec![put("/o/c", "1", Precondition::None)]).await.unwrap();
    let mut watch = store.watch("/s/", 1).unwrap();
    let replayed = watch.next().await.unwrap();
    assert_eq!(
        (replayed.kv.key.as_str(), replayed.revision(), replayed.created),
        ("/s/b", 2, true)
    );
    store
        .txn(vec![Op::Delete {
            key: "/s/a".into(),
            precondition: Precondition::None,
        }])
        .await
        .unwrap();
    let deleted = watch.next().await.unwrap();
    assert_eq!(
        (deleted.kind, deleted.kv.key.as_str(), deleted.revision()),
        (EventType::Delete, "/s/a", 4)
    );
    assert_eq!(deleted.kv.value, b"1");
    assert!(watch.try_next().is_none());
}

#[tokio::test]
async fn compacted_history_is_refused() {
    let (_dir, store) = open();
    for i in 0..5 {
        store
            .txn(vec![put(&format!("/k/{i}"), "v", Precondition::None)])
            .await
            .unwrap();
    }
    store.compact(3).await.unwrap();
    assert_eq!(
        store.watch("/k/", 2).err(),
        Some(Error::Compacted {
            requested: 2,
            compacted: 3
        })
    );
    let mut watch = store.watch("/k/", 3).unwrap();
    assert_eq!(watch.next().await.unwrap().revision(), 4);
}

#[tokio::test]
async fn writes_survive_reopen_and_history_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = RedbStore::open(&path).unwrap();
        store.txn(vec![put("/k/a", "1", Precondition::None)]).await.unwrap();
        store.txn(vec![put("/k/a", "2", Precondition::None)]).await.unwrap();
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.revision(), 2);
    assert_eq!(store.get("/k/a").await.unwrap().unwrap().value, b"2");
    let mut watch = store.watch("/k/", 0).unwrap();
    assert!(watch.next().await.unwrap().created);
    assert!(!watch.next().await.unwrap().created);
}

#[tokio::test]
async fn concurrent_writers_get_distinct_revisions() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .txn(vec![put(&format!("/c/{i}"), "v", Precondition::MustNotExist)])
                .await
                .unwrap()
                .revision
        }));
    }
    let mut revisions = Vec::new();
    for t in tasks {
        revisions.push(t.await.unwrap());
    }
    revisions.sort();
    assert_eq!(revisions, (1..=64).collect::<Vec<_>>());
}
