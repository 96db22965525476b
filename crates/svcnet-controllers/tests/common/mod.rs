//! What the in-process integration tests share: the API server started on a loopback port with
//! a client for it, controllers run beside it, ready-node creation, and polling with a deadline
//! (never a fixed sleep).
#![allow(dead_code)]

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How long any expected state may take to appear (generous for slow CI machines; a passing
/// run takes milliseconds per step).
pub const DEADLINE: Duration = Duration::from_secs(60);
/// The namespace the tests work in.
pub const NS: &str = "default";

/// The API server and the tasks running beside it, stopped when dropped.
pub struct Cluster {
    pub client: kube::Client,
    pub tasks: Vec<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl Cluster {
    /// Starts the API server only, on a free loopback port with a fresh data directory.
    pub async fn serve() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let listener = svcnet_apiserver::Listener::bind("127.0.0.1:0".parse::<SocketAddr>().unwrap())
            .await
            .unwrap();
        let address = listener.local_addr().unwrap();
        let config = svcnet_apiserver::Config {
            data_dir: dir.path().to_path_buf(),
            listen: address,
            service_network: Default::default(),
        };
        let server = tokio::spawn(async move {
            if let Err(err) = svcnet_apiserver::serve(config, listener).await {
                panic!("API server failed: {err}");
            }
        });
        let client = svcnet_controllers::client_for(&format!("http://{address}")).unwrap();
        Cluster {
            client,
            tasks: vec![server],
            _dir: dir,
        }
    }

    /// Runs a controller (or any task) until the cluster is dropped; its failure fails the test.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.tasks.push(tokio::spawn(async move {
            if let Err(err) = task.await {
                panic!("{name} failed: {err:#}");
            }
        }));
    }

    /// The objects of one kind in [`NS`].
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), NS)
    }

    /// Creates an object in [`NS`] from its JSON.
    pub async fn create<K>(&self, value: Value) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + Debug,
    {
        let object: K = serde_json::from_value(value).unwrap();
        self.api::<K>().create(&PostParams::default(), &object).await.unwrap()
    }

    /// Merge-patches an object in [`NS`].
    pub async fn patch<K>(&self, name: &str, patch: Value) -> K
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()> + Clone + DeserializeOwned + Debug,
    {
        self.api::<K>()
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap()
    }

    pub fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    /// Creates a node labelled with its hostname and reporting Ready, after `tweak`.
    pub async fn create_node(&self, name: &str, tweak: impl FnOnce(&mut Value)) -> Node {
        let mut node = json!({
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {},
            "status": {"conditions": [ready_condition("True")]},
        });
        tweak(&mut node);
        self.nodes()
            .create(&PostParams::default(), &serde_json::from_value(node).unwrap())
            .await
            .unwrap()
    }
}

/// Now, as the API shows timestamps (whole seconds).
pub fn now_text() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A node's Ready condition as a kubelet posts it.
pub fn ready_condition(status: &str) -> Value {
    json!({"type": "Ready", "status": status, "reason": "KubeletReady", "message": "kubelet is posting ready status",
           "lastHeartbeatTime": now_text(), "lastTransitionTime": now_text()})
}

/// Polls `probe` until it yields a value or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `name` until `check` accepts it (None = the object does not exist); returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(Option<&K>) -> bool) -> Option<K>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let current = api.get_opt(name).await.unwrap();
        if check(current.as_ref()) {
            return current;
        }
        if Instant::now() > deadline {
            panic!("{name}: timed out waiting until {what}; last seen: {current:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
