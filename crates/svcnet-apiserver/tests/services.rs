//! Service allocation through the API: defaults, cluster IPs and node ports stored atomically with
//! the Service, requested values, exhaustion, type changes, release on delete, repair at start-up,
//! and the guarantee that concurrent creates never share a value.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use svcnet_apiserver::services::ServiceNetwork;
use svcnet_store::{Op, Precondition, RedbStore, Store};
use tower::ServiceExt;

struct Api {
    app: Router,
    store: Arc<RedbStore>,
    dir: tempfile::TempDir,
}

impl Api {
    async fn with(cidrs: &[&str], ports: &str) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("db")).unwrap());
        Self::open(dir, store, cidrs, ports).await
    }

    async fn open(dir: tempfile::TempDir, store: Arc<RedbStore>, cidrs: &[&str], ports: &str) -> Api {
        let network = ServiceNetwork {
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
            node_ports: ports.into(),
        };
        let app = svcnet_apiserver::app(store.clone(), "127.0.0.1:6443", network)
            .await
            .unwrap();
        Api { app, store, dir }
    }

    async fn new() -> Api {
        Self::with(&["10.96.0.0/12"], "30000-32767").await
    }

    async fn call(&self, method: &str, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .body(Body::from(bytes))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.call("POST", "/api/v1/namespaces/default/services", "application/json", body)
            .await
    }

    async fn created(&self, body: Value) -> Value {
        let (status, object) = self.create(body).await;
        assert_eq!(status, StatusCode::CREATED, "{object}");
        object
    }

    async fn get(&self, name: &str) -> (StatusCode, Value) {
        self.call(
            "GET",
            &format!("/api/v1/namespaces/default/services/{name}"),
            "application/json",
            Value::Null,
        )
        .await
    }

    async fn patch(&self, name: &str, patch: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/namespaces/default/services/{name}");
        self.call("PATCH", &path, "application/strategic-merge-patch+json", patch)
            .await
    }

    async fn delete(&self, name: &str) -> StatusCode {
        self.call(
            "DELETE",
            &format!("/api/v1/namespaces/default/services/{name}"),
            "application/json",
            Value::Null,
        )
        .await
        .0
    }

    async fn ip_addresses(&self) -> Vec<String> {
        let (_, list) = self
            .call(
                "GET",
                "/apis/networking.k8s.io/v1/ipaddresses",
                "application/json",
                Value::Null,
            )
            .await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    }
}

fn svc(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if spec.get("ports").is_none() && spec.get("type") != Some(&json!("ExternalName")) {
        spec["ports"] = json!([{"port": 80}]);
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn cause(status: &Value) -> (String, String) {
    let cause = &status["details"]["causes"][0];
    (
        cause["field"].as_str().unwrap_or("").to_string(),
        cause["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn defaults_and_allocation_on_create() {
    let api = Api::new().await;
    let created = api.created(svc("web", json!({"selector": {"app": "web"}}))).await;
    let spec = &created["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ports"][0]["protocol"], "TCP");
    assert_eq!(spec["ports"][0]["targetPort"], 80);
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    let ip = spec["clusterIP"].as_str().unwrap();
    assert_eq!(spec["clusterIPs"], json!([ip]));
    let offset =
        u32::from(ip.parse::<std::net::Ipv4Addr>().unwrap()) - u32::from(std::net::Ipv4Addr::new(10, 96, 0, 0));
    assert!(offset > 256, "dynamic addresses come from above the static band: {ip}");
    assert!(api.ip_addresses().await.contains(&ip.to_string()));
    let (_, kubernetes) = api.get("kubernetes").await;
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(kubernetes["spec"]["ports"][0]["port"], 443);
}

#[tokio::test]
async fn node_ports_and_health_check_port() {
    let api = Api::new().await;
    let np = api
        .created(svc(
            "np",
            json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81}], }),
        ))
        .await;
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let lb = api
        .created(svc(
            "lb",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local"}),
        ))
        .await;
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    let health = lb["spec"]["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&health));
    assert_ne!(health, lb["spec"]["ports"][0]["nodePort"].as_i64().unwrap());
    let no_ports = api
        .created(svc(
            "lb2",
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false}),
        ))
        .await;
    assert!(no_ports["spec"]["ports"][0].get("nodePort").is_none());
    let dns = api.created(svc("dns", json!({"type": "NodePort", "ports": [{"name": "u", "port": 53, "protocol": "UDP"}, {"name": "t", "port": 53, "protocol": "TCP"}]}))).await;
    assert_eq!(
        dns["spec"]["ports"][0]["nodePort"], dns["spec"]["ports"][1]["nodePort"],
        "TCP and UDP of one port share a node port"
    );
}

#[tokio::test]
async fn requested_values_are_honoured_or_refused() {
    let api = Api::new().await;
    let first = api.created(svc("a", json!({"clusterIP": "10.96.0.50"}))).await;
    assert_eq!(first["spec"]["clusterIPs"], json!(["10.96.0.50"]));
    let (status, taken) = api.create(svc("b", json!({"clusterIP": "10.96.0.50"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause(&taken), ("spec.clusterIPs".into(), "Invalid value: []string{\"10.96.0.50\"}: failed to allocate IP 10.96.0.50: provided IP is already allocated".into()));
    let (status, outside) = api.create(svc("c", json!({"clusterIP": "192.168.1.1"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        cause(&outside).1.ends_with(
            "the provided IP (192.168.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        ),
        "{outside}"
    );
    api.created(svc(
        "d",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
    ))
    .await;
    let (status, port_taken) = api
        .create(svc(
            "e",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30100}]}),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        cause(&port_taken),
        (
            "spec.ports[0].nodePort".into(),
            "Invalid value: 30100: provided port is already allocated".into()
        )
    );
    let (_, port_outside) = api
        .create(svc(
            "f",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}),
        ))
        .await;
    assert_eq!(
        cause(&port_outside).1,
        "Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    // None of the refused Services left an allocation behind.
    let ips = api.ip_addresses().await;
    assert_eq!(ips.len(), 3, "kubernetes, a and d: {ips:?}");
}

#[tokio::test]
async fn headless_and_external_name_get_no_address() {
    let api = Api::new().await;
    let headless = api
        .created(svc("h", json!({"clusterIP": "None", "selector": {"app": "db"}})))
        .await;
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "SingleStack");
    let selectorless = api.created(svc("h2", json!({"clusterIP": "None"}))).await;
    assert_eq!(selectorless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    let external = api
        .created(svc(
            "ext",
            json!({"type": "ExternalName", "externalName": "example.com"}),
        ))
        .await;
    assert!(external["spec"].get("clusterIP").is_none());
    assert!(external["spec"].get("ipFamilies").is_none());
    assert_eq!(
        api.ip_addresses().await.len(),
        1,
        "only default/kubernetes holds an address"
    );
}

#[tokio::test]
async fn a_full_range_says_so() {
    let api = Api::with(&["10.0.0.0/29"], "30000-30002").await;
    // /29 has six usable addresses; default/kubernetes holds the first.
    for i in 0..5 {
        api.created(svc(&format!("s{i}"), json!({}))).await;
    }
    let (status, full) = api.create(svc("s5", json!({}))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{full}");
    assert_eq!(
        full["message"],
        "Internal error occurred: failed to allocate a serviceIP: range is full"
    );
    assert_eq!(api.delete("s0").await, StatusCode::OK);
    api.created(svc("s5", json!({}))).await;

    api.delete("s1").await;
    api.delete("s2").await;
    api.created(svc("n1", json!({"type": "NodePort", "ports": [{"name": "a", "port": 1}, {"name": "b", "port": 2}, {"name": "c", "port": 3}]}))).await;
    let (status, ports_full) = api.create(svc("n2", json!({"type": "NodePort"}))).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        ports_full["message"],
        "Internal error occurred: failed to allocate a nodePort: range is full"
    );
}

#[tokio::test]
async fn type_changes_allocate_and_release() {
    let api = Api::new().await;
    let created = api.created(svc("web", json!({"selector": {"app": "web"}}))).await;
    let ip = created["spec"]["clusterIP"].clone();
    let (status, nodeport) = api.patch("web", json!({"spec": {"type": "NodePort"}})).await;
    assert_eq!(status, StatusCode::OK, "{nodeport}");
    assert_eq!(nodeport["spec"]["clusterIP"], ip, "the address is kept");
    let node_port = nodeport["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
    assert_eq!(nodeport["spec"]["externalTrafficPolicy"], "Cluster");
    // Port edits keep the node port of a port that stays (matched by name).
    let (_, edited) = api
        .patch("web", json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}}))
        .await;
    assert_eq!(edited["spec"]["ports"][0]["nodePort"], node_port);
    let (_, back) = api.patch("web", json!({"spec": {"type": "ClusterIP"}})).await;
    assert!(back["spec"]["ports"][0].get("nodePort").is_none());
    assert!(back["spec"].get("externalTrafficPolicy").is_none());
    // The released node port can be requested again.
    api.created(svc(
        "other",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": node_port}]}),
    ))
    .await;
    let (status, external) = api
        .patch(
            "web",
            json!({"spec": {"type": "ExternalName", "externalName": "example.com"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{external}");
    assert!(external["spec"].get("clusterIP").is_none());
    assert!(
        !api.ip_addresses().await.contains(&ip.as_str().unwrap().to_string()),
        "the address was released"
    );
    let (status, again) = api
        .patch("web", json!({"spec": {"type": "ClusterIP", "externalName": null}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(again["spec"]["clusterIP"].is_string());
}

#[tokio::test]
async fn dry_run_and_delete_release_nothing_or_everything() {
    let api = Api::new().await;
    let before = api.store.revision();
    let (status, dry) = api
        .call(
            "POST",
            "/api/v1/namespaces/default/services?dryRun=All",
            "application/json",
            svc(
                "d",
                json!({"type": "NodePort", "clusterIP": "10.96.0.77", "ports": [{"port": 80, "nodePort": 30077}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dry}");
    assert_eq!(api.store.revision(), before);
    // The same values are still free.
    api.created(svc(
        "real",
        json!({"type": "NodePort", "clusterIP": "10.96.0.77", "ports": [{"port": 80, "nodePort": 30077}]}),
    ))
    .await;
    assert_eq!(api.delete("real").await, StatusCode::OK);
    assert!(!api.ip_addresses().await.contains(&"10.96.0.77".to_string()));
    api.created(svc(
        "again",
        json!({"type": "NodePort", "clusterIP": "10.96.0.77", "ports": [{"port": 80, "nodePort": 30077}]}),
    ))
    .await;
}

#[tokio::test]
async fn concurrent_creates_never_share_a_value() {
    let api = Arc::new(Api::new().await);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.create(svc(
                &format!("same-{i}"),
                json!({"type": "NodePort", "clusterIP": "10.96.0.99", "ports": [{"port": 80, "nodePort": 30999}]}),
            ))
            .await
            .0
        }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap());
    }
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::CREATED).count(),
        1,
        "{codes:?}"
    );
    assert!(codes
        .iter()
        .all(|c| *c == StatusCode::CREATED || *c == StatusCode::UNPROCESSABLE_ENTITY));

    let mut tasks = Vec::new();
    for i in 0..64 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            api.created(svc(&format!("auto-{i}"), json!({"type": "NodePort"})))
                .await
        }));
    }
    let mut ips = HashSet::new();
    let mut ports = HashSet::new();
    for task in tasks {
        let object = task.await.unwrap();
        assert!(ips.insert(object["spec"]["clusterIP"].as_str().unwrap().to_string()));
        assert!(ports.insert(object["spec"]["ports"][0]["nodePort"].as_i64().unwrap()));
    }
}

#[tokio::test]
async fn repair_fixes_leaks_and_reports_duplicates() {
    let api = Api::new().await;
    let a = api.created(svc("a", json!({"type": "NodePort"}))).await;
    let ip = a["spec"]["clusterIP"].as_str().unwrap().to_string();
    // Corrupt the store behind the API's back: a leaked address record, a leaked node port, and a
    // second Service holding a's address.
    let mut b = a.clone();
    b["metadata"]["name"] = json!("b");
    b["metadata"]["creationTimestamp"] = json!("2099-01-01T00:00:00Z");
    b["metadata"].as_object_mut().unwrap().remove("resourceVersion");
    let ops = vec![
        Op::Put {
            key: "/registry/ipaddresses.networking.k8s.io/10.96.0.200".into(),
            value: br#"{"metadata":{"name":"10.96.0.200"}}"#.to_vec(),
            precondition: Precondition::None,
        },
        Op::Put {
            key: "/registry/nodeports/31999".into(),
            value: b"default/gone".to_vec(),
            precondition: Precondition::None,
        },
        Op::Put {
            key: "/registry/services/default/b".into(),
            value: serde_json::to_vec(&b).unwrap(),
            precondition: Precondition::None,
        },
    ];
    api.store.txn(ops).await.unwrap();
    let Api { app, store, dir } = api;
    drop(app);
    let api = Api::open(dir, store, &["10.96.0.0/12"], "30000-32767").await;
    let ips = api.ip_addresses().await;
    assert!(
        !ips.contains(&"10.96.0.200".to_string()),
        "the leaked record is gone: {ips:?}"
    );
    assert!(ips.contains(&ip));
    assert!(api.store.get("/registry/nodeports/31999").await.unwrap().is_none());
    let (_, events) = api
        .call(
            "GET",
            "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Db",
            "application/json",
            Value::Null,
        )
        .await;
    let reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&"ClusterIPAlreadyAllocated") && reasons.contains(&"PortAlreadyAllocated"),
        "{events}"
    );
    // The address stays taken: a new Service cannot get it.
    let (status, _) = api.create(svc("c", json!({"clusterIP": ip}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn dual_stack_policies() {
    let api = Api::with(&["10.96.0.0/12", "fd00:10:96::/112"], "30000-32767").await;
    let single = api.created(svc("single", json!({}))).await;
    assert_eq!(single["spec"]["ipFamilies"], json!(["IPv4"]));
    let prefer = api
        .created(svc("prefer", json!({"ipFamilyPolicy": "PreferDualStack"})))
        .await;
    assert_eq!(prefer["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert_eq!(prefer["spec"]["clusterIPs"].as_array().unwrap().len(), 2);
    let v6 = api
        .created(svc(
            "v6",
            json!({"ipFamilies": ["IPv6"], "ipFamilyPolicy": "RequireDualStack"}),
        ))
        .await;
    assert!(v6["spec"]["clusterIP"].as_str().unwrap().contains(':'));
    assert_eq!(v6["spec"]["ipFamilies"], json!(["IPv6", "IPv4"]));
    let (status, upgraded) = api
        .patch("single", json!({"spec": {"ipFamilyPolicy": "PreferDualStack"}}))
        .await;
    assert_eq!(status, StatusCode::OK, "{upgraded}");
    assert_eq!(upgraded["spec"]["clusterIPs"][0], single["spec"]["clusterIP"]);
    assert_eq!(upgraded["spec"]["clusterIPs"].as_array().unwrap().len(), 2);

    let single_stack = Api::new().await;
    let (status, refused) = single_stack
        .create(svc("x", json!({"ipFamilyPolicy": "RequireDualStack"})))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(cause(&refused).0, "spec.ipFamilyPolicy");
}
