//! The API in process (router over a real embedded store): verbs, preconditions, watch replay
//! and expiry, selectors on watches, dry runs, field validation, finalizers, bad input.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use svcnet_store::{RedbStore, Store};
use tower::ServiceExt;

struct Api {
    app: Router,
    store: Arc<RedbStore>,
    _dir: tempfile::TempDir,
}

const JSON: &str = "application/json";
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("db")).unwrap());
        let app = svcnet_apiserver::app(store.clone(), "127.0.0.1:6443", Default::default())
            .await
            .unwrap();
        Api { app, store, _dir: dir }
    }

    async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        accept: &str,
        body: Vec<u8>,
    ) -> axum::response::Response {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type)
            .header("accept", accept)
            .body(Body::from(body))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn call(&self, method: &str, path: &str, content_type: &str, body: Value) -> (StatusCode, Value) {
        let bytes = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let response = self.raw(method, path, content_type, JSON, bytes).await;
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, JSON, Value::Null).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, JSON, body).await
    }

    async fn create_service(&self, namespace: &str, name: &str, labels: Value) -> Value {
        let (status, body) = self
            .post(
                &format!("/api/v1/namespaces/{namespace}/services"),
                service(name, labels),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }
}

fn service(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": labels}, "spec": {"ports": [{"name": "http", "port": 80}]}})
}

fn rv(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap()
}

/// Reads watch events from a streaming response until `count` arrived or a second passed.
async fn events(response: axum::response::Response, count: usize) -> Vec<Value> {
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    while out.len() < count {
        let frame = match tokio::time::timeout(Duration::from_secs(1), body.frame()).await {
            Ok(Some(Ok(frame))) => frame,
            _ => break,
        };
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
        while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=pos).collect();
            out.push(serde_json::from_slice(&line).unwrap());
        }
    }
    out
}

fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[tokio::test]
async fn initial_namespaces_exist() {
    let api = Api::new().await;
    let (status, list) = api.get("/api/v1/namespaces").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "kube-node-lease", "kube-public", "kube-system"]);
    assert_eq!(list["kind"], "NamespaceList");
}

#[tokio::test]
async fn create_get_update_conflict_delete() {
    let api = Api::new().await;
    let created = api.create_service("default", "web", json!({"app": "web"})).await;
    assert!(created["metadata"]["uid"].is_string());
    assert!(created["metadata"]["creationTimestamp"].is_string());
    let (status, dup) = api
        .post("/api/v1/namespaces/default/services", service("web", json!({})))
        .await;
    assert_eq!(
        (status, dup["reason"].as_str()),
        (StatusCode::CONFLICT, Some("AlreadyExists"))
    );
    assert_eq!(dup["message"], "services \"web\" already exists");

    let mut update = created.clone();
    update["metadata"]["labels"]["tier"] = json!("a");
    let (status, updated) = api
        .call("PUT", "/api/v1/namespaces/default/services/web", JSON, update.clone())
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert!(rv(&updated) > rv(&created));
    assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
    let (status, stale) = api
        .call("PUT", "/api/v1/namespaces/default/services/web", JSON, update)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(stale["reason"], "Conflict");

    let (status, deleted) = api
        .call("DELETE", "/api/v1/namespaces/default/services/web", JSON, Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(deleted["metadata"]["name"], "web");
    let (status, missing) = api.get("/api/v1/namespaces/default/services/web").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["message"], "services \"web\" not found");
    assert_eq!(missing["details"]["kind"], "services");
}

#[tokio::test]
async fn unchanged_writes_keep_the_resource_version() {
    let api = Api::new().await;
    let created = api.create_service("default", "web", json!({"app": "web"})).await;
    let patch = json!({"metadata": {"labels": {"app": "web"}}});
    let (status, patched) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            "application/merge-patch+json",
            patch,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rv(&patched), rv(&created));
}

#[tokio::test]
async fn generate_name_and_generation() {
    let api = Api::new().await;
    let deploy = json!({"metadata": {"generateName": "web-"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    let (status, created) = api.post("/apis/apps/v1/namespaces/default/deployments", deploy).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let name = created["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("web-") && name.len() == 9);
    assert_eq!(created["metadata"]["generation"], 1);
    let path = format!("/apis/apps/v1/namespaces/default/deployments/{name}");
    let (_, scaled) = api
        .call(
            "PATCH",
            &path,
            "application/merge-patch+json",
            json!({"spec": {"replicas": 3}}),
        )
        .await;
    assert_eq!(scaled["metadata"]["generation"], 2);
    let (_, labelled) = api
        .call(
            "PATCH",
            &path,
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(
        labelled["metadata"]["generation"], 2,
        "metadata changes keep the generation"
    );
}

#[tokio::test]
async fn strategic_merge_and_apply() {
    let api = Api::new().await;
    api.create_service("default", "web", json!({"app": "web"})).await;
    let smp = json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 9090}], "ports": [{"name": "metrics", "port": 9090}]}});
    let (status, patched) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            "application/strategic-merge-patch+json",
            smp,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    let ports: Vec<i64> = patched["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, [80, 9090]);
    assert!(!patched.to_string().contains("$setElementOrder"));

    // Server-side apply creates a missing object, then merges.
    let applied = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}});
    let path = "/api/v1/namespaces/default/services/ssa?fieldManager=kubectl&force=false";
    let (status, created) = api.call("PATCH", path, "application/apply-patch+yaml", applied).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let metadata_only =
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ssa", "labels": {"a": "b"}}});
    let (status, merged) = api
        .call("PATCH", path, "application/apply-patch+yaml", metadata_only)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        merged["spec"]["ports"][0]["port"], 53,
        "apply of metadata alone keeps the spec"
    );
    assert_eq!(merged["metadata"]["labels"]["a"], "b");
}

#[tokio::test]
async fn json_patch_and_failed_test_op() {
    let api = Api::new().await;
    api.create_service("default", "web", json!({"app": "web"})).await;
    let ops = json!([{"op": "replace", "path": "/spec/ports/0/port", "value": 81}]);
    let (status, patched) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            "application/json-patch+json",
            ops,
        )
        .await;
    assert_eq!(
        (status, patched["spec"]["ports"][0]["port"].as_i64()),
        (StatusCode::OK, Some(81))
    );
    let failing = json!([{"op": "test", "path": "/spec/ports/0/port", "value": 1}]);
    let (status, _) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            "application/json-patch+json",
            failing,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web",
            "text/plain",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn dry_run_stores_nothing() {
    let api = Api::new().await;
    let before = api.store.revision();
    let (status, body) = api
        .post(
            "/api/v1/namespaces/default/services?dryRun=All",
            service("dry", json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["metadata"]["name"], "dry");
    assert_eq!(api.store.revision(), before);
    assert_eq!(
        api.get("/api/v1/namespaces/default/services/dry").await.0,
        StatusCode::NOT_FOUND
    );
    api.create_service("default", "web", json!({})).await;
    let before = api.store.revision();
    let (status, _) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/services/web?dryRun=All",
            JSON,
            Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, patched) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/web?dryRun=All",
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"x": "y"}}}),
        )
        .await;
    assert_eq!(patched["metadata"]["labels"]["x"], "y");
    assert_eq!(api.store.revision(), before);
    assert!(
        api.get("/api/v1/namespaces/default/services/web").await.1["metadata"]["labels"]
            .get("x")
            .is_none()
    );
}

#[tokio::test]
async fn field_validation_modes() {
    let api = Api::new().await;
    let body = json!({"metadata": {"name": "typo"}, "spec": {"ports": [{"port": 80, "tragetPort": 8080}]}});
    let (status, strict) = api
        .post(
            "/api/v1/namespaces/default/services?fieldValidation=Strict",
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        strict["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.ports[0].tragetPort\""),
        "{strict}"
    );
    let response = api
        .raw(
            "POST",
            "/api/v1/namespaces/default/services?fieldValidation=Warn",
            JSON,
            JSON,
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let warning = response.headers().get("warning").unwrap().to_str().unwrap().to_string();
    assert!(
        warning.starts_with("299 - ") && warning.contains("tragetPort"),
        "{warning}"
    );
    let (_, stored) = api.get("/api/v1/namespaces/default/services/typo").await;
    assert!(stored["spec"]["ports"][0].get("tragetPort").is_none());
}

#[tokio::test]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let api = Api::new().await;
    let before = api.store.revision();
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (
            "/api/v1/namespaces/default/services",
            JSON,
            b"{\"metadata\": ".to_vec(),
            400,
        ),
        (
            "/api/v1/namespaces/default/services",
            "application/yaml",
            b"metadata: [\n".to_vec(),
            400,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#.to_vec(),
            400,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            br#"{"apiVersion":"apps/v1","kind":"Service","metadata":{"name":"p"}}"#.to_vec(),
            400,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            br#"{"metadata":{"name":"Not_A_Label"},"spec":{"ports":[{"port":80}]}}"#.to_vec(),
            422,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            br#"{"metadata":{"name":"ok","labels":{"bad key":"x"}},"spec":{"ports":[{"port":80}]}}"#.to_vec(),
            422,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            br#"{"metadata":{"name":"p"},"spec":{"ports":[{"port":"eighty"}]}}"#.to_vec(),
            400,
        ),
        ("/api/v1/namespaces/default/services", "text/plain", b"{}".to_vec(), 415),
        (
            "/api/v1/namespaces/missing/services",
            JSON,
            br#"{"metadata":{"name":"p"},"spec":{"ports":[{"port":80}]}}"#.to_vec(),
            404,
        ),
        (
            "/api/v1/namespaces/default/services",
            JSON,
            vec![b' '; 3 * 1024 * 1024 + 10],
            413,
        ),
    ];
    for (path, content_type, body, code) in cases {
        let response = api.raw("POST", path, content_type, JSON, body).await;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let status_body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(status, code, "{path} {content_type}: {status_body}");
        assert_eq!(status_body["kind"], "Status");
        assert_eq!(status_body["code"], code);
    }
    let (_, invalid) = api
        .post(
            "/api/v1/namespaces/default/services",
            json!({"metadata": {"name": "Not_A_Label"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .await;
    assert_eq!(invalid["reason"], "Invalid");
    assert_eq!(invalid["details"]["causes"][0]["field"], "metadata.name");
    assert!(invalid["details"]["causes"][0]["message"]
        .as_str()
        .unwrap()
        .contains("a DNS-1035 label must consist of lower case alphanumeric characters"));
    assert_eq!(api.store.revision(), before, "nothing was stored");
}

#[tokio::test]
async fn finalizers_hold_deletion() {
    let api = Api::new().await;
    let mut object = service("held", json!({}));
    object["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let (status, _) = api.post("/api/v1/namespaces/default/services", object).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, marked) = api
        .call(
            "DELETE",
            "/api/v1/namespaces/default/services/held",
            JSON,
            json!({"propagationPolicy": "Background"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        api.get("/api/v1/namespaces/default/services/held").await.0,
        StatusCode::OK
    );
    let release = json!({"metadata": {"finalizers": null}});
    let (status, _) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/held",
            "application/merge-patch+json",
            release,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/namespaces/default/services/held").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn propagation_policies_leave_the_collector_a_finalizer() {
    let api = Api::new().await;
    for name in ["orphaned", "foreground", "query", "bad"] {
        let (status, _) = api
            .post("/api/v1/namespaces/default/services", service(name, json!({})))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let path = |name: &str| format!("/api/v1/namespaces/default/services/{name}");
    let (_, marked) = api
        .call(
            "DELETE",
            &path("orphaned"),
            JSON,
            json!({"propagationPolicy": "Orphan"}),
        )
        .await;
    assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]));
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    let (_, marked) = api
        .call(
            "DELETE",
            &path("foreground"),
            JSON,
            json!({"propagationPolicy": "Foreground"}),
        )
        .await;
    assert_eq!(marked["metadata"]["finalizers"], json!(["foregroundDeletion"]));
    let (_, marked) = api
        .call(
            "DELETE",
            &format!("{}?propagationPolicy=Orphan", path("query")),
            JSON,
            json!({}),
        )
        .await;
    assert_eq!(marked["metadata"]["finalizers"], json!(["orphan"]), "from the query");

    let (status, body) = api
        .call("DELETE", &path("bad"), JSON, json!({"propagationPolicy": "Sideways"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Unsupported value: \"Sideways\""),
        "{body}"
    );
    let (status, kept) = api.get(&path("bad")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kept["metadata"]["deletionTimestamp"].is_null(), "nothing half-applied");
}

#[tokio::test]
async fn namespace_deletion_empties_it() {
    let api = Api::new().await;
    assert_eq!(
        api.post("/api/v1/namespaces", json!({"metadata": {"name": "shop"}}))
            .await
            .0,
        StatusCode::CREATED
    );
    api.create_service("shop", "a", json!({})).await;
    let (_, terminating) = api.call("DELETE", "/api/v1/namespaces/shop", JSON, Value::Null).await;
    assert_eq!(terminating["status"]["phase"], "Terminating");
    let (status, refused) = api
        .post("/api/v1/namespaces/shop/services", service("b", json!({})))
        .await;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{refused}"
    );
    for _ in 0..50 {
        if api.get("/api/v1/namespaces/shop").await.0 == StatusCode::NOT_FOUND {
            assert_eq!(
                api.get("/api/v1/namespaces/shop/services/a").await.0,
                StatusCode::NOT_FOUND
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("namespace shop was not removed");
}

#[tokio::test]
async fn selectors_on_lists() {
    let api = Api::new().await;
    api.create_service("kube-public", "a", json!({"app": "web", "tier": "front"}))
        .await;
    api.create_service("kube-public", "b", json!({"app": "web"})).await;
    api.create_service("kube-public", "c", json!({"app": "db"})).await;
    let names = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    for (query, expected) in [
        ("labelSelector=app%3Dweb", vec!["a", "b"]),
        ("labelSelector=app%21%3Dweb", vec!["c"]),
        ("labelSelector=app+in+%28db%29", vec!["c"]),
        ("labelSelector=tier", vec!["a"]),
        ("labelSelector=%21tier", vec!["b", "c"]),
        ("fieldSelector=metadata.name%3Db", vec!["b"]),
        ("labelSelector=app%3Dweb&fieldSelector=metadata.name%21%3Da", vec!["b"]),
    ] {
        let (status, list) = api
            .get(&format!("/api/v1/namespaces/kube-public/services?{query}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {list}");
        assert_eq!(names(&list), expected, "{query}");
    }
    let (status, _) = api
        .get("/api/v1/namespaces/kube-public/services?fieldSelector=spec.bogus%3Dx")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, all) = api.get("/api/v1/services").await;
    assert_eq!(names(&all).len(), 4, "three here and default/kubernetes");
}

#[tokio::test]
async fn watch_replays_from_a_resource_version() {
    let api = Api::new().await;
    let a = api.create_service("default", "a", json!({})).await;
    api.create_service("default", "b", json!({})).await;
    let response = api
        .raw(
            "GET",
            &format!(
                "/api/v1/namespaces/default/services?watch=true&resourceVersion={}",
                rv(&a)
            ),
            JSON,
            JSON,
            vec![],
        )
        .await;
    api.call("DELETE", "/api/v1/namespaces/default/services/a", JSON, Value::Null)
        .await;
    let seen = events(response, 2).await;
    assert_eq!(types(&seen), ["ADDED b", "DELETED a"]);
    assert!(
        rv(&seen[1]["object"]) > rv(&a),
        "a DELETED event carries a new resourceVersion"
    );
}

#[tokio::test]
async fn watch_from_zero_starts_with_synthetic_added() {
    let api = Api::new().await;
    api.create_service("kube-public", "a", json!({})).await;
    let response = api
        .raw(
            "GET",
            "/api/v1/namespaces/kube-public/services?watch=true&resourceVersion=0",
            JSON,
            JSON,
            vec![],
        )
        .await;
    api.create_service("kube-public", "b", json!({})).await;
    assert_eq!(types(&events(response, 2).await), ["ADDED a", "ADDED b"]);
}

#[tokio::test]
async fn watch_with_selectors_reports_entering_and_leaving() {
    let api = Api::new().await;
    api.create_service("default", "a", json!({"app": "web"})).await;
    let response = api
        .raw(
            "GET",
            "/api/v1/namespaces/default/services?watch=true&labelSelector=app%3Dweb&resourceVersion=0",
            JSON,
            JSON,
            vec![],
        )
        .await;
    api.create_service("default", "other", json!({"app": "db"})).await;
    let relabel = |app: &str| json!({"metadata": {"labels": {"app": app}}});
    api.call(
        "PATCH",
        "/api/v1/namespaces/default/services/a",
        "application/merge-patch+json",
        relabel("db"),
    )
    .await;
    api.call(
        "PATCH",
        "/api/v1/namespaces/default/services/other",
        "application/merge-patch+json",
        relabel("web"),
    )
    .await;
    assert_eq!(
        types(&events(response, 3).await),
        ["ADDED a", "DELETED a", "ADDED other"]
    );
}

#[tokio::test]
async fn watch_from_compacted_revision_is_expired() {
    let api = Api::new().await;
    let a = api.create_service("default", "a", json!({})).await;
    api.create_service("default", "b", json!({})).await;
    api.store.compact(api.store.revision()).await.unwrap();
    let response = api
        .raw(
            "GET",
            &format!(
                "/api/v1/namespaces/default/services?watch=true&resourceVersion={}",
                rv(&a)
            ),
            JSON,
            JSON,
            vec![],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = events(response, 1).await;
    assert_eq!(seen[0]["type"], "ERROR");
    assert_eq!(seen[0]["object"]["code"], 410);
    assert_eq!(seen[0]["object"]["reason"], "Expired");
}

#[tokio::test]
async fn watch_timeout_bookmarks_and_tables() {
    let api = Api::new().await;
    let response = api
        .raw(
            "GET",
            "/api/v1/namespaces/kube-public/services?watch=true&timeoutSeconds=1",
            JSON,
            TABLE,
            vec![],
        )
        .await;
    api.create_service("kube-public", "a", json!({"app": "web"})).await;
    api.create_service("kube-public", "b", json!({})).await;
    let seen = events(response, 10).await;
    assert_eq!(seen.len(), 2, "the stream ends at its timeout: {seen:?}");
    assert_eq!(seen[0]["object"]["kind"], "Table");
    assert_eq!(seen[0]["object"]["rows"][0]["cells"][0], "a");
    assert!(seen[0]["object"]["columnDefinitions"].is_array());
    assert!(seen[1]["object"]["columnDefinitions"].is_null());

    let response = api.raw("GET", "/api/v1/namespaces/kube-public/services?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan", JSON, JSON, vec![]).await;
    let seen = events(response, 3).await;
    assert_eq!(seen[2]["type"], "BOOKMARK");
    assert_eq!(
        seen[2]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn status_subresource_and_tables() {
    let api = Api::new().await;
    let mut lb = service("lb", json!({}));
    lb["spec"]["type"] = json!("LoadBalancer");
    assert_eq!(
        api.post("/api/v1/namespaces/default/services", lb).await.0,
        StatusCode::CREATED
    );
    let status =
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}, "spec": {"ports": [{"port": 1}]}});
    let (code, written) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/default/services/lb/status",
            "application/merge-patch+json",
            status,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{written}");
    assert_eq!(written["status"]["loadBalancer"]["ingress"][0]["ip"], "203.0.113.7");
    assert_eq!(
        written["spec"]["ports"][0]["port"], 80,
        "a status write leaves the spec alone"
    );
    let response = api
        .raw("GET", "/api/v1/namespaces/default/services", JSON, TABLE, vec![])
        .await;
    let table: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn discovery_documents() {
    let api = Api::new().await;
    let response = api
        .raw(
            "GET",
            "/apis",
            JSON,
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
            vec![],
        )
        .await;
    assert_eq!(
        response.headers()["content-type"],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let (_, legacy) = api.get("/api").await;
    assert_eq!(legacy["kind"], "APIVersions");
    let (_, core) = api.get("/api/v1").await;
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "services/status"));
    let (_, apps) = api.get("/apis/apps").await;
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    assert_eq!(api.get("/apis/nope/v1").await.0, StatusCode::NOT_FOUND);
    let (_, version) = api.get("/version").await;
    assert_eq!(version["minor"], "33");
}

#[tokio::test]
async fn protobuf_bodies_are_decoded() {
    let api = Api::new().await;
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../svcnet-protobuf/tests/fixtures");
    let mut found = false;
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".bin") || !name.contains("namespace") {
            continue;
        }
        found = true;
        let response = api
            .raw(
                "POST",
                "/api/v1/namespaces",
                "application/vnd.kubernetes.protobuf",
                "application/vnd.kubernetes.protobuf,application/json",
                std::fs::read(&path).unwrap(),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
    }
    assert!(found, "a namespace protobuf fixture exists");
}
