//! A watch-fed cache of one kind, indexed by namespace, that reports each change with the object
//! it replaced: a pod's old labels decide which Services lose it. kube-runtime's reflector
//! `Store` keeps one flat map and forgets the previous object, hence this small variant of it.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// What one watch event did to the cache.
#[derive(Debug)]
pub enum Change<K> {
    Applied {
        old: Option<Arc<K>>,
        new: Arc<K>,
    },
    Deleted(Arc<K>),
    /// A fresh list replaced everything (first sync, or a new list after a broken watch):
    /// changes during the gap are not known one by one.
    Relisted {
        previous: Vec<Arc<K>>,
    },
}

type Index<K> = HashMap<String, HashMap<String, Arc<K>>>;

/// Objects by namespace ("" for cluster-scoped kinds) and name.
pub struct Cache<K> {
    objects: RwLock<Index<K>>,
    /// Objects of a list in progress, swapped in when it completes.
    buffer: RwLock<Index<K>>,
    synced: watch::Sender<bool>,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            objects: RwLock::new(HashMap::new()),
            buffer: RwLock::new(HashMap::new()),
            synced: watch::Sender::new(false),
        }
    }
}

fn key_of<K: Resource>(object: &K) -> (String, String) {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl<K: Resource> Cache<K> {
    /// Applies one watch event and says what changed (nothing for list bookkeeping).
    pub fn apply(&self, event: watcher::Event<K>) -> Option<Change<K>> {
        match event {
            watcher::Event::Apply(object) => {
                let (namespace, name) = key_of(&object);
                let new = Arc::new(object);
                let mut objects = self.objects.write().expect("cache lock");
                let old = objects.entry(namespace).or_default().insert(name, new.clone());
                Some(Change::Applied { old, new })
            }
            watcher::Event::Delete(object) => {
                let (namespace, name) = key_of(&object);
                let mut objects = self.objects.write().expect("cache lock");
                let removed = objects.get_mut(&namespace).and_then(|m| m.remove(&name));
                if objects.get(&namespace).is_some_and(HashMap::is_empty) {
                    objects.remove(&namespace);
                }
                Some(Change::Deleted(removed.unwrap_or_else(|| Arc::new(object))))
            }
            watcher::Event::Init => {
                self.buffer.write().expect("cache lock").clear();
                None
            }
            watcher::Event::InitApply(object) => {
                let (namespace, name) = key_of(&object);
                let mut buffer = self.buffer.write().expect("cache lock");
                buffer.entry(namespace).or_default().insert(name, Arc::new(object));
                None
            }
            watcher::Event::InitDone => {
                let fresh = std::mem::take(&mut *self.buffer.write().expect("cache lock"));
                let previous = std::mem::replace(&mut *self.objects.write().expect("cache lock"), fresh);
                self.synced.send_replace(true);
                let previous = previous.into_values().flat_map(HashMap::into_values).collect();
                Some(Change::Relisted { previous })
            }
        }
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects.get(namespace)?.get(name).cloned()
    }

    /// The objects of one namespace that pass `keep`.
    pub fn list(&self, namespace: &str, mut keep: impl FnMut(&K) -> bool) -> Vec<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects
            .get(namespace)
            .map(|m| m.values().filter(|o| keep(o)).cloned().collect())
            .unwrap_or_default()
    }

    /// Every object, in no particular order.
    pub fn all(&self) -> Vec<Arc<K>> {
        let objects = self.objects.read().expect("cache lock");
        objects.values().flat_map(|m| m.values().cloned()).collect()
    }

    /// Resolves once the first complete list is in.
    pub async fn synced(&self) {
        let mut receiver = self.synced.subscribe();
        // The sender lives as long as the cache, so waiting cannot fail while we hold `self`.
        let _ = receiver.wait_for(|synced| *synced).await;
    }
}

/// Keeps `cache` in step with the API, handing every change to `on_change`. Watch failures are
/// retried with kube-runtime's default backoff (jittered, growing to 30 s), never in a hot loop.
pub async fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    cache: Arc<Cache<K>>,
    mut on_change: impl FnMut(Change<K>),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = std::any::type_name::<K>().rsplit("::").next().unwrap_or("object");
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if let Some(change) = cache.apply(event) {
                    on_change(change);
                }
            }
            Err(error) => {
                tracing::warn!(kind, %error, "watch failed; retrying with backoff");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(name: &str, app: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": name, "labels": {"app": app}}})).unwrap()
    }

    #[test]
    fn changes_carry_the_replaced_object() {
        let cache = Cache::default();
        cache.apply(watcher::Event::Apply(pod("a", "one")));
        let Some(Change::Applied { old: Some(old), new }) = cache.apply(watcher::Event::Apply(pod("a", "two"))) else {
            panic!("expected an update");
        };
        assert_eq!(old.metadata.labels.as_ref().unwrap()["app"], "one");
        assert_eq!(new.metadata.labels.as_ref().unwrap()["app"], "two");
        assert!(matches!(
            cache.apply(watcher::Event::Delete(pod("a", "two"))),
            Some(Change::Deleted(_))
        ));
        assert!(cache.get("ns", "a").is_none());
    }

    #[tokio::test]
    async fn relists_swap_in_whole_and_mark_synced() {
        let cache = Cache::default();
        cache.apply(watcher::Event::Apply(pod("gone", "x")));
        assert!(cache.apply(watcher::Event::Init).is_none());
        assert!(cache.apply(watcher::Event::InitApply(pod("b", "x"))).is_none());
        // Readers still see the old state until the list completes.
        assert!(cache.get("ns", "gone").is_some());
        let Some(Change::Relisted { previous }) = cache.apply(watcher::Event::InitDone) else {
            panic!("expected a relist");
        };
        assert_eq!(previous.len(), 1);
        assert!(cache.get("ns", "gone").is_none());
        assert_eq!(cache.list("ns", |_| true).len(), 1);
        cache.synced().await;
    }
}
