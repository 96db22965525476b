//! Watched caches that wake a control loop on every change, and the retry backoff of those
//! loops; shared by the scheduler, node lifecycle and node IPAM.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

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

/// The HTTP code of an API error (None for transport and decoding errors).
pub(crate) fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
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
