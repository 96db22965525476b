//! Keeps the served zone current: watches Services, EndpointSlices, Namespaces (and Pods in
//! verified mode), folds each event into the `Cluster` index, and publishes a new snapshot
//! with one atomic pointer swap, so readers never wait. Events already queued are folded into
//! the same snapshot.

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
        if cluster.changed && !lists.relisting() {
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

/// Where each kind's list stands. A relist (after a watch expired) clears the kind and
/// delivers every object again; snapshots are held back until it is complete, so readers never
/// see a half-listed cluster.
#[derive(Default)]
struct Lists {
    listed: [bool; KINDS],
    relisting: [bool; KINDS],
}

impl Lists {
    fn relisting(&self) -> bool {
        self.relisting.iter().any(|r| *r)
    }

    /// Applies one event; returns 1 when it completed a kind's first list.
    fn apply(&mut self, cluster: &mut Cluster, event: Event) -> usize {
        match event {
            Event::Service(e) => self.step(0, *e, cluster, Cluster::clear_services, Cluster::apply_service),
            Event::Slice(e) => self.step(1, *e, cluster, Cluster::clear_slices, Cluster::apply_slice),
            Event::Namespace(e) => self.step(2, *e, cluster, Cluster::clear_namespaces, Cluster::apply_namespace),
            Event::Pod(e) => self.step(3, *e, cluster, Cluster::clear_pods, Cluster::apply_pod),
        }
    }

    fn step<K>(
        &mut self,
        kind: usize,
        event: watcher::Event<K>,
        cluster: &mut Cluster,
        clear: fn(&mut Cluster),
        apply: fn(&mut Cluster, &K, bool),
    ) -> usize {
        match event {
            watcher::Event::Apply(object) | watcher::Event::InitApply(object) => apply(cluster, &object, false),
            watcher::Event::Delete(object) => apply(cluster, &object, true),
            watcher::Event::Init => {
                clear(cluster);
                self.relisting[kind] = true;
            }
            watcher::Event::InitDone => {
                self.relisting[kind] = false;
                cluster.changed = true;
                if !self.listed[kind] {
                    self.listed[kind] = true;
                    return 1;
                }
            }
        }
        0
    }
}
