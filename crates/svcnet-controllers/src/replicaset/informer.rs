//! The I/O the workload controllers share: reflector-backed watches that hand each event to a
//! handler after the cache has applied it, the worker loop around a [`WorkQueue`], and the
//! deletes of owned objects whose owner is gone (svcnet has no garbage collector).

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;

use super::queue::{ObjectKey, WorkQueue};

/// Workers per controller (upstream's default `--concurrent-*-syncs` is 5).
pub const WORKERS: usize = 5;

/// Watches `api` into `writer` forever, calling `on_event` after each event is in the cache.
/// Watch failures are logged and retried with kube's default backoff.
pub async fn watch<K>(api: Api<K>, writer: Writer<K>, mut on_event: impl FnMut(&watcher::Event<K>))
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => on_event(&event),
            Err(err) => {
                tracing::warn!(kind = K::kind(&K::DynamicType::default()).as_ref(), %err, "watch failed; retrying")
            }
        }
    }
}

/// The object an event carries, if any.
pub fn event_object<K>(event: &watcher::Event<K>) -> Option<(&K, bool)> {
    match event {
        watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Some((o, false)),
        watcher::Event::Delete(o) => Some((o, true)),
        watcher::Event::Init | watcher::Event::InitDone => None,
    }
}

/// Runs `workers` loops taking keys from `queue` and calling `sync`: success forgets the key's
/// backoff and honours a requested requeue; failure retries with backoff.
pub async fn run_workers<F, Fut>(queue: Arc<WorkQueue>, workers: usize, sync: F)
where
    F: Fn(ObjectKey) -> Fut + Clone,
    Fut: Future<Output = anyhow::Result<Option<Duration>>>,
{
    let loops = (0..workers).map(|_| {
        let queue = Arc::clone(&queue);
        let sync = sync.clone();
        async move {
            loop {
                let key = queue.next().await;
                match sync(key.clone()).await {
                    Ok(requeue) => {
                        queue.forget(&key);
                        queue.done(&key);
                        if let Some(after) = requeue {
                            queue.add_after(key, after);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(%key, error = %format!("{err:#}"), "sync failed; retrying");
                        queue.retry(&key);
                    }
                }
            }
        }
    });
    futures::future::join_all(loops).await;
}

/// The HTTP status of an API error.
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Deletes `name` if it still has `uid`; gone already or replaced meanwhile is fine.
pub async fn delete_if_uid<K>(api: &Api<K>, name: &str, uid: &str) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(err) if matches!(api_code(&err), Some(404 | 409)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// The uid of the object `name` as the API has it now (the cache may lag), None when absent.
pub async fn live_uid<K>(api: &Api<K>, name: &str) -> Result<Option<String>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    Ok(api.get_opt(name).await?.and_then(|live| live.meta().uid.clone()))
}
