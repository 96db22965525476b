//! Watch-fed caches and the loops around them. The workload controllers use reflector-backed
//! watches that hand each event to a handler after the cache has applied it, the worker loop
//! around a [`WorkQueue`], and the deletes of owned objects whose owner is gone (background
//! deletion; orphan and foreground deletion are in `garbagecollector`). The scheduler, node
//! lifecycle and node IPAM use an [`Informer`] that wakes a control loop on every change, with a
//! [`Backoff`] between failed passes.

use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::queue::WorkQueue;
use super::{api_code, ObjectKey};

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
                        queue.done(&key);
                    }
                }
            }
        }
    });
    futures::future::join_all(loops).await;
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

/// Deletes the object only if it is still the version the caller judged (uid and
/// resourceVersion preconditions): a dependent the cache shows owned by a gone owner may have
/// been let go meanwhile (`--cascade=orphan` removes the reference), and must then stay.
pub async fn delete_if_unchanged<K>(api: &Api<K>, meta: &ObjectMeta) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
        }),
        ..DeleteParams::default()
    };
    match api.delete(meta.name.as_deref().unwrap_or(""), &params).await {
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

/// A cache of one kind kept current by a watch (re-listing with backoff after errors); the
/// watch stops when this is dropped.
pub(crate) struct Informer<K: Resource + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    pub(crate) store: Store<K>,
    task: JoinHandle<()>,
}

impl<K> Informer<K>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    /// Starts watching `api`; every event (and every re-list) calls `wake.notify_one()`, so a
    /// loop waiting on `wake` runs once per burst of changes.
    pub(crate) fn start(api: Api<K>, config: watcher::Config, wake: Arc<Notify>) -> Self {
        let (store, writer) = reflector::store();
        let events = watcher(api, config).default_backoff().reflect(writer);
        let task = tokio::spawn(async move {
            let mut events = std::pin::pin!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(_) => wake.notify_one(),
                    Err(err) => tracing::debug!(error = %err, "watch failed, retrying with backoff"),
                }
            }
        });
        Informer { store, task }
    }

    /// Waits for the first complete list.
    pub(crate) async fn ready(&self) -> anyhow::Result<()> {
        self.store.wait_until_ready().await?;
        Ok(())
    }
}

impl<K: Resource + 'static> Drop for Informer<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Exponential backoff between failed passes of a control loop: 100 ms doubling to 10 s, reset
/// by a pass that succeeds. A loop never retries at once, so a failing API is never hot-looped.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(10);

    pub(crate) fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt; each call doubles the one after.
    pub(crate) fn fail(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub(crate) fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_ceiling_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..9).map(|_| backoff.fail().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000]);
        backoff.reset();
        assert_eq!(backoff.fail(), Duration::from_millis(100));
    }
}
