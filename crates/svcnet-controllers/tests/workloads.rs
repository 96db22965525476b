//! The Deployment, ReplicaSet and StatefulSet controllers against the API server in process.
//!
//! A small node agent plays the kubelet: it binds new pods to a node, reports them Running and
//! Ready through the status subresource after a short start-up delay, and confirms graceful
//! deletions. Tests wait on conditions with a deadline, never on fixed sleeps.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};
use svcnet_controllers::{deployment, endpointslice, garbagecollector, replicaset, statefulset, ControllerConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use common::{eventually, NS};

const NODES: [&str; 2] = ["node-0", "node-1"];

/// What the node agent does with new pods.
#[derive(Default)]
struct Agent {
    /// New pods stay Pending (not Running, not Ready) while set.
    hold: AtomicBool,
    /// Milliseconds from a pod's binding to it reporting Ready.
    start_delay_ms: AtomicU64,
}

/// The API server, the three controllers and the node agent.
struct Cluster {
    cluster: common::Cluster,
    agent: Arc<Agent>,
}

impl Deref for Cluster {
    type Target = common::Cluster;

    fn deref(&self) -> &common::Cluster {
        &self.cluster
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let mut cluster = common::Cluster::serve().await;
        let client = cluster.client.clone();
        let config = ControllerConfig::default();
        cluster.spawn("Deployment controller", deployment::run(client.clone(), config.clone()));
        cluster.spawn("ReplicaSet controller", replicaset::run(client.clone(), config.clone()));
        cluster.spawn("StatefulSet controller", statefulset::run(client.clone(), config));
        for node in NODES {
            cluster.create_node(node, |_| {}).await;
        }
        let agent = Arc::new(Agent {
            hold: AtomicBool::new(false),
            start_delay_ms: AtomicU64::new(30),
        });
        cluster.tasks.push(tokio::spawn(node_agent(client, Arc::clone(&agent))));
        Cluster { cluster, agent }
    }

    async fn pods(&self, selector: &str) -> Vec<Pod> {
        let mut pods = self
            .api::<Pod>()
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap()
            .items;
        pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        pods
    }

    /// Pods of the selector that are Running, Ready and not terminating, once there are `n`
    /// and no others.
    async fn wait_ready_pods(&self, selector: &str, n: usize) -> Vec<Pod> {
        eventually(&format!("{n} ready pods for {selector}"), || async {
            let pods = self.pods(selector).await;
            (pods.len() == n && pods.iter().all(|p| ready(p) && p.metadata.deletion_timestamp.is_none()))
                .then_some(pods)
        })
        .await
    }

    async fn replica_sets(&self) -> Vec<ReplicaSet> {
        self.api::<ReplicaSet>()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
    }

    /// Waits until `kubectl rollout status` would say the Deployment rolled out.
    async fn wait_rolled_out(&self, name: &str) -> Deployment {
        eventually(&format!("deployment {name} rolled out"), || async {
            let d = self.api::<Deployment>().get(name).await.unwrap();
            rollout_status(&d).is_ok().then_some(d)
        })
        .await
    }
}

fn ready(pod: &Pod) -> bool {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node agent: binds, starts and readies pods, and confirms their deletion.
async fn node_agent(client: kube::Client, agent: Arc<Agent>) {
    let (store, writer) = reflector::store::<Pod>();
    let watch = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(|_| async {});
    let work = async {
        let mut bound = HashSet::new();
        let mut started = HashSet::new();
        let mut confirmed = HashSet::new();
        let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            tokio::time::sleep(Duration::from_millis(10)).await;
            for pod in store.state() {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                let name = pod.metadata.name.clone().unwrap_or_default();
                let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
                if pod.metadata.deletion_timestamp.is_some() {
                    if confirmed.insert(uid) {
                        tokio::spawn(async move {
                            let _ = api.delete(&name, &DeleteParams::default().grace_period(0)).await;
                        });
                    }
                    continue;
                }
                let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
                if node.is_empty() {
                    if bound.insert(uid.clone()) {
                        let target = NODES[name.len() % 2];
                        let binding = json!({"apiVersion": "v1", "kind": "Binding",
                            "metadata": {"name": name}, "target": {"kind": "Node", "name": target}});
                        tokio::spawn(async move {
                            let _: Result<Value, _> = api
                                .create_subresource("binding", &name, &PostParams::default(), &binding)
                                .await;
                        });
                    }
                    continue;
                }
                let first_seen = *seen.entry(uid.clone()).or_insert_with(Instant::now);
                let delay = Duration::from_millis(agent.start_delay_ms.load(Ordering::Relaxed));
                if agent.hold.load(Ordering::Relaxed) || first_seen.elapsed() < delay || started.contains(&uid) {
                    continue;
                }
                started.insert(uid);
                tokio::spawn(async move {
                    let now = jiff::Timestamp::now().to_string();
                    let status = json!({"status": {"phase": "Running", "podIP": "10.244.0.9",
                        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}});
                    let _ = api
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await;
                });
            }
        }
    };
    tokio::join!(watch, work);
}

/// What `kubectl rollout status deployment` checks (polymorphichelpers/rollout_status.go).
fn rollout_status(d: &Deployment) -> Result<String, String> {
    let status = d.status.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Err("Waiting for deployment spec update to be observed...".into());
    }
    let progressing = status.conditions.iter().flatten().find(|c| c.type_ == "Progressing");
    if progressing.is_some_and(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded")) {
        return Err(format!("deployment {name:?} exceeded its progress deadline"));
    }
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < replicas {
        return Err(format!("{updated} out of {replicas} new replicas have been updated..."));
    }
    if total > updated {
        return Err(format!("{} old replicas are pending termination...", total - updated));
    }
    if available < updated {
        return Err(format!("{available} of {updated} updated replicas are available..."));
    }
    Ok(format!("deployment {name:?} successfully rolled out"))
}

/// What `kubectl create deployment web --image=nginx --replicas=3 --port=80` sends.
fn kubectl_deployment(name: &str, replicas: i32, tweak: impl FnOnce(&mut Value)) -> Value {
    let mut value = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]}
            },
            "strategy": {}
        },
        "status": {}
    });
    tweak(&mut value);
    value
}

fn condition(d: &Deployment, type_: &str) -> (String, String, String) {
    let c = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

fn annotation<'a>(meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

#[tokio::test]
async fn deployment_creates_scales_and_reports_rollout_status() {
    let cluster = Cluster::start().await;
    cluster.create::<Deployment>(kubectl_deployment("web", 3, |_| {})).await;
    let pods = cluster.wait_ready_pods("app=web", 3).await;
    let d = cluster.wait_rolled_out("web").await;

    // One ReplicaSet web-<hash>, owned by the Deployment, revision 1.
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 1);
    let rs = &rss[0];
    let hash = rs.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(rs.metadata.name.as_deref(), Some(format!("web-{hash}").as_str()));
    assert!(
        hash.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
        "{hash}"
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Deployment", d.metadata.uid.as_deref().unwrap(), Some(true))
    );
    assert_eq!(annotation(&rs.metadata, "deployment.kubernetes.io/revision"), Some("1"));
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/desired-replicas"),
        Some("3")
    );
    assert_eq!(
        annotation(&rs.metadata, "deployment.kubernetes.io/max-replicas"),
        Some("4")
    );
    assert_eq!(annotation(&d.metadata, "deployment.kubernetes.io/revision"), Some("1"));
    assert_eq!(
        d.metadata.generation,
        Some(1),
        "the revision annotation does not bump the generation"
    );

    // Pods <rs>-<5 characters>, owned by the ReplicaSet, with the hash label.
    for pod in &pods {
        let name = pod.metadata.name.as_deref().unwrap();
        let suffix = name.strip_prefix(&format!("web-{hash}-")).expect(name);
        assert_eq!(suffix.len(), 5, "{name}");
        assert_eq!(pod.metadata.labels.as_ref().unwrap()["pod-template-hash"], hash);
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("ReplicaSet", rs.metadata.name.as_deref().unwrap())
        );
        assert_eq!(
            pod.metadata.generate_name.as_deref(),
            Some(format!("web-{hash}-").as_str())
        );
    }

    // Status as kubectl reads it.
    let status = d.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    assert_eq!(status.unavailable_replicas, None);
    assert_eq!(
        condition(&d, "Available"),
        (
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        )
    );
    let rs_name = rs.metadata.name.clone().unwrap();
    assert_eq!(
        condition(&d, "Progressing"),
        (
            "True".into(),
            "NewReplicaSetAvailable".into(),
            format!("ReplicaSet {rs_name:?} has successfully progressed.")
        )
    );
    let rs = cluster.api::<ReplicaSet>().get(&rs_name).await.unwrap();
    let rs_status = rs.status.unwrap();
    assert_eq!(
        (
            rs_status.replicas,
            rs_status.fully_labeled_replicas,
            rs_status.ready_replicas,
            rs_status.available_replicas
        ),
        (3, Some(3), Some(3), Some(3))
    );
    assert_eq!(rs_status.observed_generation, rs.metadata.generation);

    // kubectl scale --replicas=5, then --replicas=1.
    cluster
        .patch::<Deployment>("web", json!({"spec": {"replicas": 5}}))
        .await;
    cluster.wait_ready_pods("app=web", 5).await;
    let d = cluster.wait_rolled_out("web").await;
    assert_eq!(d.status.unwrap().available_replicas, Some(5));
    cluster
        .patch::<Deployment>("web", json!({"spec": {"replicas": 1}}))
        .await;
    cluster.wait_ready_pods("app=web", 1).await;
    cluster.wait_rolled_out("web").await;
    eventually("the status to count one replica", || async {
        let d = cluster.api::<Deployment>().get("web").await.unwrap();
        (d.status?.replicas == Some(1)).then_some(())
    })
    .await;
    assert_eq!(cluster.replica_sets().await.len(), 1, "scaling makes no new ReplicaSet");

    // A pod deleted by hand is replaced.
    let pod = cluster.pods("app=web").await.remove(0);
    cluster
        .api::<Pod>()
        .delete(pod.metadata.name.as_deref().unwrap(), &DeleteParams::default())
        .await
        .unwrap();
    let replaced = cluster.wait_ready_pods("app=web", 1).await;
    assert_ne!(replaced[0].metadata.uid, pod.metadata.uid);
}

/// Watches the pods of a selector and records, at every change, how many are ready and not
/// terminating, and how many exist at all.
struct Monitor {
    samples: Arc<Mutex<Vec<(usize, usize)>>>,
    task: JoinHandle<()>,
}

impl Monitor {
    fn start(client: &kube::Client, selector: &str) -> Monitor {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (store, writer): (Store<Pod>, _) = reflector::store();
        let config = watcher::Config::default().labels(selector);
        let recorded = Arc::clone(&samples);
        let stream = watcher(Api::<Pod>::namespaced(client.clone(), NS), config)
            .default_backoff()
            .reflect(writer);
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if matches!(event, Ok(watcher::Event::Init | watcher::Event::InitApply(_)) | Err(_)) {
                    continue;
                }
                let pods = store.state();
                let available = pods
                    .iter()
                    .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
                    .count();
                recorded.lock().unwrap().push((available, pods.len()));
            }
        });
        Monitor { samples, task }
    }

    fn stop(self) -> Vec<(usize, usize)> {
        self.task.abort();
        self.samples.lock().unwrap().clone()
    }
}

/// Watches a Service's EndpointSlices and records, at every change, how many endpoints are ready.
struct EndpointMonitor {
    samples: Arc<Mutex<Vec<usize>>>,
    store: Store<EndpointSlice>,
    task: JoinHandle<()>,
}

impl EndpointMonitor {
    fn start(client: &kube::Client, service: &str) -> EndpointMonitor {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (store, writer): (Store<EndpointSlice>, _) = reflector::store();
        let config = watcher::Config::default().labels(&format!("kubernetes.io/service-name={service}"));
        let stream = watcher(Api::<EndpointSlice>::namespaced(client.clone(), NS), config)
            .default_backoff()
            .reflect(writer);
        let (recorded, reader) = (Arc::clone(&samples), store.clone());
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if matches!(event, Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) {
                    recorded.lock().unwrap().push(ready_endpoints(&reader));
                }
            }
        });
        EndpointMonitor { samples, store, task }
    }

    fn ready_now(&self) -> usize {
        ready_endpoints(&self.store)
    }

    fn stop(self) -> Vec<usize> {
        self.task.abort();
        self.samples.lock().unwrap().clone()
    }
}

fn ready_endpoints(slices: &Store<EndpointSlice>) -> usize {
    slices
        .state()
        .iter()
        .flat_map(|slice| &slice.endpoints)
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
        .count()
}

#[tokio::test]
async fn rolling_update_keeps_availability_and_endpoints_and_undo_restores_the_old_revision() {
    let mut cluster = Cluster::start().await;
    // 4 replicas, 25 % / 25 %: at least 3 ready, at most 5 pods, at every moment.
    cluster.create::<Deployment>(kubectl_deployment("web", 4, |_| {})).await;
    cluster.wait_ready_pods("app=web", 4).await;
    cluster.wait_rolled_out("web").await;
    let first_rs = cluster.replica_sets().await.remove(0).metadata.name.unwrap();

    // The Service in front of the Deployment, and what its endpoints look like all along.
    let client = cluster.client.clone();
    cluster.cluster.spawn(
        "EndpointSlice controller",
        endpointslice::run(client, ControllerConfig::default()),
    );
    let service = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 80}]}});
    cluster.create::<Service>(service).await;
    let endpoints = EndpointMonitor::start(&cluster.client, "web");
    eventually("4 ready endpoints before the rollout", || async {
        (endpoints.ready_now() == 4).then_some(())
    })
    .await;

    cluster.agent.start_delay_ms.store(150, Ordering::Relaxed);
    let monitor = Monitor::start(&cluster.client, "app=web");
    // What `kubectl set image deployment/web nginx=nginx:1.27` changes.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}], "resources": {}}]}}}});
    let d = cluster.patch::<Deployment>("web", patch).await;
    assert_eq!(d.metadata.generation, Some(2));
    let d = cluster.wait_rolled_out("web").await;
    let pods = cluster.wait_ready_pods("app=web", 4).await;
    let samples = monitor.stop();
    assert!(samples.len() > 8, "the rollout took steps: {samples:?}");
    let min_available = samples.iter().map(|s| s.0).min().unwrap();
    let max_pods = samples.iter().map(|s| s.1).max().unwrap();
    assert!(
        min_available >= 3,
        "availability dropped to {min_available}: {samples:?}"
    );
    assert!(max_pods <= 5 + 1, "surge too high: {samples:?}");
    // The Service never lost its endpoints: ready endpoints stayed at the availability floor.
    let ready_endpoints = endpoints.stop();
    assert!(
        ready_endpoints.len() > 4,
        "the slices changed during the rollout: {ready_endpoints:?}"
    );
    let fewest = ready_endpoints.iter().min().unwrap();
    assert!(*fewest >= 3, "ready endpoints dropped to {fewest}: {ready_endpoints:?}");

    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 2);
    let new_rs = rss
        .iter()
        .find(|rs| rs.metadata.name.as_deref() != Some(first_rs.as_str()))
        .unwrap();
    let old_rs = rss
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(first_rs.as_str()))
        .unwrap();
    assert_eq!(
        annotation(&new_rs.metadata, "deployment.kubernetes.io/revision"),
        Some("2")
    );
    assert_eq!(old_rs.spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(annotation(&d.metadata, "deployment.kubernetes.io/revision"), Some("2"));
    let new_name = new_rs.metadata.name.clone().unwrap();
    assert!(pods
        .iter()
        .all(|p| p.metadata.name.as_deref().unwrap().starts_with(&new_name)));
    assert_eq!(
        condition(&d, "Progressing").2,
        format!("ReplicaSet {new_name:?} has successfully progressed.")
    );

    // `kubectl rollout undo`: the old ReplicaSet's template (without its hash label) goes back
    // into the Deployment with a JSON patch, and the old ReplicaSet becomes revision 3.
    let mut template = serde_json::to_value(old_rs.spec.as_ref().unwrap().template.as_ref().unwrap()).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let undo = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    cluster
        .api::<Deployment>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::<Value>::Json(serde_json::from_value(undo).unwrap()),
        )
        .await
        .unwrap();
    cluster.wait_rolled_out("web").await;
    let pods = cluster.wait_ready_pods("app=web", 4).await;
    assert!(pods
        .iter()
        .all(|p| p.metadata.name.as_deref().unwrap().starts_with(&first_rs)));
    let old_rs = cluster.api::<ReplicaSet>().get(&first_rs).await.unwrap();
    assert_eq!(
        annotation(&old_rs.metadata, "deployment.kubernetes.io/revision"),
        Some("3")
    );
    assert_eq!(
        annotation(&old_rs.metadata, "deployment.kubernetes.io/revision-history"),
        Some("1")
    );
    assert_eq!(cluster.replica_sets().await.len(), 2);

    // `kubectl rollout restart`: a template annotation makes a third ReplicaSet.
    let now = jiff::Timestamp::now().to_string();
    let restart =
        json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}});
    cluster.patch::<Deployment>("web", restart).await;
    cluster.wait_rolled_out("web").await;
    cluster.wait_ready_pods("app=web", 4).await;
    assert_eq!(cluster.replica_sets().await.len(), 3);
}

#[tokio::test]
async fn recreate_removes_every_old_pod_before_starting_new_ones() {
    let cluster = Cluster::start().await;
    let d = kubectl_deployment("batch", 3, |d| d["spec"]["strategy"] = json!({"type": "Recreate"}));
    cluster.create::<Deployment>(d).await;
    cluster.wait_ready_pods("app=batch", 3).await;
    cluster.wait_rolled_out("batch").await;
    let old_hash = cluster.pods("app=batch").await[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();

    let seen = Arc::new(Mutex::new(Vec::<BTreeSet<String>>::new()));
    let (store, writer): (Store<Pod>, _) = reflector::store();
    let recorded = Arc::clone(&seen);
    let stream = watcher(
        Api::<Pod>::namespaced(cluster.client.clone(), NS),
        watcher::Config::default().labels("app=batch"),
    )
    .reflect(writer);
    let task = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {
            let hashes: BTreeSet<String> = store
                .state()
                .iter()
                .map(|p| p.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone())
                .collect();
            recorded.lock().unwrap().push(hashes);
        }
    });
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}}});
    cluster.patch::<Deployment>("batch", patch).await;
    cluster.wait_rolled_out("batch").await;
    let pods = cluster.wait_ready_pods("app=batch", 3).await;
    task.abort();
    let new_hash = pods[0].metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_ne!(new_hash, old_hash);
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter().all(|hashes| hashes.len() <= 1),
        "old and new pods coexisted: {seen:?}"
    );
}

#[tokio::test]
async fn statefulset_creates_in_order_with_stable_hostnames_and_scales_down_in_reverse() {
    let cluster = Cluster::start().await;
    cluster.agent.start_delay_ms.store(100, Ordering::Relaxed);
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let recorded = Arc::clone(&events);
    let client = cluster.client.clone();
    let task = tokio::spawn(async move {
        let stream = watcher(
            Api::<Pod>::namespaced(client, NS),
            watcher::Config::default().labels("app=db"),
        );
        futures::pin_mut!(stream);
        let mut ready_seen = HashSet::new();
        let mut deleting_seen = HashSet::new();
        while let Some(Ok(event)) = stream.next().await {
            let mut log = recorded.lock().unwrap();
            match event {
                watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                    let name = pod.metadata.name.clone().unwrap();
                    if !log.contains(&format!("created {name}")) {
                        log.push(format!("created {name}"));
                    }
                    if ready(&pod) && ready_seen.insert(name.clone()) {
                        log.push(format!("ready {name}"));
                    }
                    if pod.metadata.deletion_timestamp.is_some() && deleting_seen.insert(name.clone()) {
                        log.push(format!("deleting {name}"));
                    }
                }
                watcher::Event::Delete(pod) => log.push(format!("gone {}", pod.metadata.name.unwrap())),
                _ => {}
            }
        }
    });
    let set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db", "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "clickhouse", "image": "clickhouse:24", "ports": [{"containerPort": 9000}]}]}}
        }
    });
    let created: StatefulSet = cluster.create(set).await;
    let spec = created.spec.unwrap();
    assert_eq!(spec.pod_management_policy.as_deref(), Some("OrderedReady"));
    assert_eq!(spec.update_strategy.unwrap().rolling_update.unwrap().partition, Some(0));

    let pods = cluster.wait_ready_pods("app=db", 3).await;
    for (i, pod) in pods.iter().enumerate() {
        let name = format!("db-{i}");
        assert_eq!(pod.metadata.name.as_deref(), Some(name.as_str()));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(name.as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("db"));
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["statefulset.kubernetes.io/pod-name"], name);
        assert_eq!(labels["apps.kubernetes.io/pod-index"], i.to_string());
        assert!(labels["controller-revision-hash"].starts_with("db-"));
    }
    let set = eventually("statefulset status", || async {
        let set = cluster.api::<StatefulSet>().get("db").await.unwrap();
        let status = set.status.clone()?;
        (status.ready_replicas == Some(3) && status.available_replicas == Some(3)).then_some(set)
    })
    .await;
    let status = set.status.unwrap();
    assert_eq!(status.replicas, 3);
    assert_eq!(status.current_replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.observed_generation, Some(1));
    assert!(status.update_revision.is_some());
    assert_eq!(status.current_revision, status.update_revision);
    {
        let log = events.lock().unwrap();
        let at = |what: &str| {
            log.iter()
                .position(|e| e == what)
                .unwrap_or_else(|| panic!("{what}: {log:?}"))
        };
        assert!(at("ready db-0") < at("created db-1"), "{log:?}");
        assert!(at("ready db-1") < at("created db-2"), "{log:?}");
    }

    cluster
        .patch::<StatefulSet>("db", json!({"spec": {"replicas": 1}}))
        .await;
    cluster.wait_ready_pods("app=db", 1).await;
    assert_eq!(cluster.pods("app=db").await[0].metadata.name.as_deref(), Some("db-0"));
    eventually("status after scale-down", || async {
        let status = cluster.api::<StatefulSet>().get("db").await.unwrap().status?;
        (status.replicas == 1 && status.ready_replicas == Some(1)).then_some(())
    })
    .await;
    task.abort();
    let log = events.lock().unwrap();
    let at = |what: &str| {
        log.iter()
            .position(|e| e == what)
            .unwrap_or_else(|| panic!("{what}: {log:?}"))
    };
    assert!(
        at("gone db-2") < at("deleting db-1"),
        "one at a time, highest first: {log:?}"
    );
}

#[tokio::test]
async fn parallel_statefulsets_do_not_wait() {
    let cluster = Cluster::start().await;
    cluster.agent.hold.store(true, Ordering::Relaxed);
    let set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "cache"},
        "spec": {
            "serviceName": "cache", "replicas": 3, "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": "cache"}},
            "template": {"metadata": {"labels": {"app": "cache"}},
                "spec": {"containers": [{"name": "redis", "image": "redis:7"}]}}
        }
    });
    cluster.create::<StatefulSet>(set).await;
    let pods = eventually("three pending pods", || async {
        let pods = cluster.pods("app=cache").await;
        (pods.len() == 3).then_some(pods)
    })
    .await;
    assert!(pods.iter().all(|p| !ready(p)), "created without waiting for readiness");
    cluster.agent.hold.store(false, Ordering::Relaxed);
    cluster.wait_ready_pods("app=cache", 3).await;
}

#[tokio::test]
async fn deleting_an_owner_deletes_what_it_owns() {
    let cluster = Cluster::start().await;
    cluster.create::<Deployment>(kubectl_deployment("web", 2, |_| {})).await;
    let set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
    });
    cluster.create::<StatefulSet>(set).await;
    cluster.wait_ready_pods("app=web", 2).await;
    cluster.wait_ready_pods("app=db", 2).await;

    cluster
        .api::<Deployment>()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    cluster
        .api::<StatefulSet>()
        .delete("db", &DeleteParams::default())
        .await
        .unwrap();
    eventually("everything gone", || async {
        let rss = cluster.replica_sets().await;
        let pods = cluster.api::<Pod>().list(&ListParams::default()).await.unwrap().items;
        (rss.is_empty() && pods.is_empty()).then_some(())
    })
    .await;

    // A new Deployment of the same name starts from scratch (no stale ReplicaSet adopted).
    cluster.create::<Deployment>(kubectl_deployment("web", 1, |_| {})).await;
    cluster.wait_ready_pods("app=web", 1).await;
    let d = cluster.wait_rolled_out("web").await;
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 1);
    assert_eq!(
        rss[0].metadata.owner_references.as_ref().unwrap()[0].uid,
        d.metadata.uid.unwrap()
    );
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_and_foreground_deletes_them_first() {
    let mut cluster = Cluster::start().await;
    let client = cluster.client.clone();
    cluster.cluster.spawn(
        "garbage collector",
        garbagecollector::run(client, ControllerConfig::default()),
    );
    let deployment_named = |name: &str| {
        let mut d = kubectl_deployment(name, 2, |_| {});
        d["metadata"]["labels"] = json!({"app": name});
        d["spec"]["selector"]["matchLabels"] = json!({"app": name});
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": name});
        d
    };

    // `kubectl delete deployment web --cascade=orphan`: the ReplicaSet and its pods stay, free.
    cluster.create::<Deployment>(deployment_named("web")).await;
    let pods = cluster.wait_ready_pods("app=web", 2).await;
    cluster.wait_rolled_out("web").await;
    cluster
        .api::<Deployment>()
        .delete("web", &DeleteParams::orphan())
        .await
        .unwrap();
    eventually("the orphaned Deployment is gone", || async {
        cluster
            .api::<Deployment>()
            .get_opt("web")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let rss = cluster.replica_sets().await;
    assert_eq!(rss.len(), 1, "the ReplicaSet stays");
    assert!(
        rss[0]
            .metadata
            .owner_references
            .as_deref()
            .unwrap_or_default()
            .is_empty(),
        "and has no owner: {:?}",
        rss[0].metadata.owner_references
    );
    let kept: HashSet<_> = cluster
        .wait_ready_pods("app=web", 2)
        .await
        .into_iter()
        .map(|p| p.metadata.uid)
        .collect();
    assert_eq!(
        kept,
        pods.into_iter().map(|p| p.metadata.uid).collect(),
        "the same pods run on"
    );

    // `--cascade=foreground`: the Deployment waits, marked, until its ReplicaSet and pods are gone.
    cluster.create::<Deployment>(deployment_named("api")).await;
    cluster.wait_ready_pods("app=api", 2).await;
    let deleted = cluster
        .api::<Deployment>()
        .delete("api", &DeleteParams::foreground())
        .await
        .unwrap();
    let marked = deleted.left().expect("the Deployment is kept while its dependents go");
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(
        marked.metadata.finalizers.as_deref(),
        Some(&["foregroundDeletion".to_string()][..])
    );
    eventually("the foreground-deleted Deployment is gone", || async {
        cluster
            .api::<Deployment>()
            .get_opt("api")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(cluster.pods("app=api").await.is_empty(), "its pods went first");
    let left: Vec<_> = cluster
        .replica_sets()
        .await
        .into_iter()
        .filter_map(|rs| rs.metadata.name)
        .filter(|name| name.starts_with("api-"))
        .collect();
    assert!(left.is_empty(), "its ReplicaSet went first: {left:?}");
}

#[tokio::test]
async fn bare_replica_sets_keep_their_count_and_adopt_matching_orphans() {
    let cluster = Cluster::start().await;
    cluster.agent.hold.store(true, Ordering::Relaxed);
    let orphan = json!({"metadata": {"name": "stray", "labels": {"app": "front"}},
        "spec": {"containers": [{"name": "c", "image": "x:1"}]}});
    cluster.create::<Pod>(orphan).await;
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "front"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "front"}},
            "template": {"metadata": {"labels": {"app": "front"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}
    });
    let rs: ReplicaSet = cluster.create(rs).await;
    let pods = eventually("two pods", || async {
        let pods = cluster.pods("app=front").await;
        (pods.len() == 2).then_some(pods)
    })
    .await;
    let stray = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some("stray"))
        .expect("kept");
    eventually("the orphan adopted", || async {
        let stray = cluster.api::<Pod>().get("stray").await.unwrap();
        let owner = stray.metadata.owner_references?.first()?.uid.clone();
        (owner == rs.metadata.uid.clone().unwrap()).then_some(())
    })
    .await;
    assert!(stray.metadata.name.is_some());
    // Not ready yet: the status says so.
    let status = eventually("status of pending pods", || async {
        let status = cluster.api::<ReplicaSet>().get("front").await.unwrap().status?;
        (status.replicas == 2).then_some(status)
    })
    .await;
    assert_eq!(status.ready_replicas, None);
    cluster.agent.hold.store(false, Ordering::Relaxed);
    cluster.wait_ready_pods("app=front", 2).await;
    eventually("ready status", || async {
        let status = cluster.api::<ReplicaSet>().get("front").await.unwrap().status?;
        (status.ready_replicas == Some(2) && status.available_replicas == Some(2)).then_some(())
    })
    .await;
}

/// Bad input: the API server answers 422 with upstream's causes.
#[tokio::test]
async fn invalid_workloads_are_rejected_with_causes() {
    let cluster = Cluster::start().await;
    let expect_invalid = |value: Value, causes: &'static [(&'static str, &'static str, &'static str)]| {
        let client = cluster.client.clone();
        async move {
            let kind = value["kind"].as_str().unwrap().to_string();
            let result = match kind.as_str() {
                "Deployment" => {
                    let object: Deployment = serde_json::from_value(value).unwrap();
                    Api::<Deployment>::namespaced(client, NS)
                        .create(&PostParams::default(), &object)
                        .await
                        .map(|_| ())
                }
                _ => {
                    let object: StatefulSet = serde_json::from_value(value).unwrap();
                    Api::<StatefulSet>::namespaced(client, NS)
                        .create(&PostParams::default(), &object)
                        .await
                        .map(|_| ())
                }
            };
            let Err(kube::Error::Api(status)) = result else {
                panic!("{kind} accepted: {result:?}")
            };
            assert_eq!(status.code, 422, "{status:?}");
            assert_eq!(status.reason, "Invalid");
            let got: Vec<(String, String, String)> = status
                .details
                .unwrap()
                .causes
                .into_iter()
                .map(|c| (c.reason, c.field, c.message))
                .collect();
            let want: Vec<(String, String, String)> = causes
                .iter()
                .map(|(r, f, m)| (r.to_string(), f.to_string(), m.to_string()))
                .collect();
            assert_eq!(got, want);
            status.message
        }
    };
    let message = expect_invalid(
        kubectl_deployment("web", 1, |d| {
            d["spec"]["selector"]["matchLabels"] = json!({"app": "other"})
        }),
        &[(
            "FieldValueInvalid",
            "spec.template.metadata.labels",
            "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        )],
    )
    .await;
    assert!(
        message.ends_with(
            "\"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        ),
        "{message}"
    );
    expect_invalid(
        kubectl_deployment("web", -1, |d| {
            d["spec"].as_object_mut().unwrap().remove("selector");
            d["spec"]["template"]["spec"]["containers"][0]
                .as_object_mut()
                .unwrap()
                .remove("image");
        }),
        &[
            (
                "FieldValueInvalid",
                "spec.replicas",
                "Invalid value: -1: must be greater than or equal to 0",
            ),
            ("FieldValueRequired", "spec.selector", "Required value"),
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
            ),
            (
                "FieldValueRequired",
                "spec.template.spec.containers[0].image",
                "Required value",
            ),
        ],
    )
    .await;
    expect_invalid(
        kubectl_deployment("web", 1, |d| {
            d["spec"]["template"]["spec"]["containers"] = json!([]);
            d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}});
        }),
        &[
            ("FieldValueRequired", "spec.template.spec.containers", "Required value"),
            (
                "FieldValueInvalid",
                "spec.strategy.rollingUpdate.maxUnavailable",
                "Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: may not be 0 when `maxSurge` is 0",
            ),
        ],
    )
    .await;
    let set = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {"serviceName": "db", "podManagementPolicy": "Sometimes",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "other"}}, "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}
    });
    expect_invalid(
        set,
        &[
            (
                "FieldValueInvalid",
                "spec.podManagementPolicy",
                "Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
            ),
            (
                "FieldValueInvalid",
                "spec.template.metadata.labels",
                "Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
            ),
            (
                "FieldValueNotSupported",
                "spec.template.spec.restartPolicy",
                "Unsupported value: \"Never\": supported values: \"Always\"",
            ),
        ],
    )
    .await;

    // The selector may not change.
    cluster.create::<Deployment>(kubectl_deployment("web", 1, |_| {})).await;
    let patch = json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "a"}},
        "template": {"metadata": {"labels": {"app": "web", "tier": "a"}}}}});
    let err = cluster
        .api::<Deployment>()
        .patch("web", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else { panic!("{err}") };
    assert_eq!(status.code, 422);
    assert!(
        status.message.ends_with(
            "\"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"tier\":\"a\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ),
        "{}",
        status.message
    );
    // Defaults as kubectl shows them.
    let d = cluster.api::<Deployment>().get("web").await.unwrap();
    let spec = d.spec.unwrap();
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let rolling = serde_json::to_value(strategy.rolling_update.unwrap()).unwrap();
    assert_eq!(rolling, json!({"maxSurge": "25%", "maxUnavailable": "25%"}));
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let pod_spec = spec.template.spec.unwrap();
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(pod_spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(pod_spec.scheduler_name.as_deref(), Some("default-scheduler"));
    assert_eq!(pod_spec.termination_grace_period_seconds, Some(30));
    let container = &pod_spec.containers[0];
    assert_eq!(container.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(
        container.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );
    assert_eq!(container.ports.as_ref().unwrap()[0].protocol.as_deref(), Some("TCP"));
}
