//! Keeps the served zone current: watches Services, EndpointSlices, Namespaces (and Pods in
//! verified mode), folds each event into the `Cluster` index, and publishes a new snapshot
//! with one atomic pointer swap, so readers never wait. Events already queued are folded into
//! the same snapshot.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use futures::{FutureExt, Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::{Api, Resource};

use crate::metrics::Metrics;
use crate::zone::{Cluster, PodsMode};

/// One watch event of any of the watched kinds.
enum Event {
    Service(Box<watcher::Event<Service>>),
    Slice(Box<watcher::Event<EndpointSlice>>),
    Namespace(Box<watcher::Event<Namespace>>),
    Pod(Box<watcher::Event<Pod>>),
}

/// The kinds watched, so readiness waits for each initial list.
const KINDS: usize = 4;

/// Watches the API and publishes snapshots into `published` until the process ends. `synced`
/// fires once every kind has been listed.
pub async fn run(
    client: kube::Client,
    mut cluster: Cluster,
    published: Arc<ArcSwap<crate::zone::Zone>>,
    metrics: Arc<Metrics>,
    synced: tokio::sync::oneshot::Sender<()>,
) {
    let verified = cluster.zone.pods == PodsMode::Verified;
    let mut streams = vec![
        events(Api::<Service>::all(client.clone()), Event::Service),
        events(Api::<EndpointSlice>::all(client.clone()), Event::Slice),
        events(Api::<Namespace>::all(client.clone()), Event::Namespace),
    ];
    if verified {
        // CoreDNS does not watch finished pods either.
        let config = watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed");
        let api = Api::<Pod>::all(client);
        streams.push(
            watcher(api, config)
                .default_backoff()
                .map(|e| e.map(|e| Event::Pod(Box::new(e))))
                .boxed(),
        );
    }
    let mut all = futures::stream::select_all(streams);
    let mut lists = Lists::default();
    let mut synced = Some(synced);
    let mut listed_kinds = if verified { 0 } else { 1 };
    while let Some(first) = all.next().await {
        let received = Instant::now();
        let mut batch = vec![first];
        // Fold whatever else is already waiting into this snapshot.
        while let Some(Some(more)) = all.next().now_or_never() {
            batch.push(more);
            if batch.len() >= 10_000 {
                break;
            }
        }
        for event in batch {
            match event {
                Ok(event) => listed_kinds += lists.apply(&mut cluster, event),
                Err(error) => tracing::warn!(%error, "watch failed; retrying with backoff"),
            }
        }
        if cluster.changed {
            cluster.changed = false;
            cluster.zone.serial = unix_now();
            published.store(Arc::new(cluster.zone.clone()));
            metrics.programmed(received.elapsed());
        }
        if listed_kinds >= KINDS {
            if let Some(synced) = synced.take() {
                published.store(Arc::new(cluster.zone.clone()));
                let _ = synced.send(());
            }
        }
    }
}

fn events<K>(
    api: Api<K>,
    wrap: fn(Box<watcher::Event<K>>) -> Event,
) -> std::pin::Pin<Box<dyn Stream<Item = Result<Event, watcher::Error>> + Send>>
where
    K: Resource + Clone + k8s_openapi::serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |e| e.map(|e| wrap(Box::new(e))))
        .boxed()
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as u32)
}

/// Which objects of each kind are known, so a relist can delete the ones that vanished.
#[derive(Default)]
struct Lists {
    services: Known,
    slices: Known,
    namespaces: Known,
    pods: Known,
}

#[derive(Default)]
struct Known {
    keys: HashSet<(String, String)>,
    /// During a relist: the keys seen so far.
    relisting: Option<HashSet<(String, String)>>,
    listed: bool,
}

impl Lists {
    /// Applies one event; returns 1 when it completed a kind's first list.
    fn apply(&mut self, cluster: &mut Cluster, event: Event) -> usize {
        match event {
            Event::Service(e) => self.services.apply(*e, |o, deleted| cluster.apply_service(o, deleted)),
            Event::Slice(e) => self.slices.apply(*e, |o, deleted| cluster.apply_slice(o, deleted)),
            Event::Namespace(e) => {
                let first = self
                    .namespaces
                    .apply(*e, |o, deleted| cluster.apply_namespace(o, deleted));
                // Namespaces change answers (NODATA vs NXDOMAIN), so they publish too.
                cluster.changed = true;
                first
            }
            Event::Pod(e) => self.pods.apply(*e, |o, deleted| cluster.apply_pod(o, deleted)),
        }
    }
}

impl Known {
    fn apply<K: Resource + Default>(&mut self, event: watcher::Event<K>, mut apply: impl FnMut(&K, bool)) -> usize {
        let key = |o: &K| {
            (
                o.meta().namespace.clone().unwrap_or_default(),
                o.meta().name.clone().unwrap_or_default(),
            )
        };
        match event {
            watcher::Event::Apply(object) => {
                self.keys.insert(key(&object));
                apply(&object, false);
            }
            watcher::Event::Delete(object) => {
                self.keys.remove(&key(&object));
                apply(&object, true);
            }
            watcher::Event::Init => self.relisting = Some(HashSet::new()),
            watcher::Event::InitApply(object) => {
                let k = key(&object);
                self.relisting.get_or_insert_with(HashSet::new).insert(k.clone());
                self.keys.insert(k);
                apply(&object, false);
            }
            watcher::Event::InitDone => {
                let seen = self.relisting.take().unwrap_or_default();
                let gone: Vec<_> = self.keys.iter().filter(|k| !seen.contains(*k)).cloned().collect();
                for (namespace, name) in gone {
                    self.keys.remove(&(namespace.clone(), name.clone()));
                    let mut object = K::default();
                    object.meta_mut().namespace = (!namespace.is_empty()).then_some(namespace);
                    object.meta_mut().name = Some(name);
                    apply(&object, true);
                }
                if !self.listed {
                    self.listed = true;
                    return 1;
                }
            }
        }
        0
    }
}
