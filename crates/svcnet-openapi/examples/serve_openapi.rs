//! A stand-in API server that serves only version, legacy discovery and the OpenAPI
//! documents, to check the documents against a real kubectl:
//!
//! ```text
//! cargo run -p svcnet-openapi --example serve_openapi -- 127.0.0.1:18080 [--no-field-validation]
//! HOME=$(mktemp -d) kubectl.1.27 --server http://127.0.0.1:18080 explain service.spec.ports
//! ```
//!
//! `--no-field-validation` drops the `fieldValidation` parameter from every operation, which
//! makes kubectl 1.27/1.28 validate manifests client-side against `/openapi/v2` (with the
//! parameter they leave validation to the server). Every request is logged to stderr, with
//! the body of writes.
//!
//! Objects POSTed are kept (without defaulting) and returned by GET on their path, so that
//! `kubectl apply` of a changed manifest computes and sends (and this logs) its strategic
//! merge patch; PATCH itself changes nothing.

use axum::body::{to_bytes, Body};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use svcnet_core::resources::{in_group_version, GROUPS};
use svcnet_openapi::{gnostic, openapi, wants_v2_protobuf, V2_PROTOBUF_RESPONSE_CONTENT_TYPE};

/// Objects by item path, e.g. `/api/v1/namespaces/default/services/web`.
type Store = Arc<Mutex<BTreeMap<String, Vec<u8>>>>;

/// The documents as served: either the crate's, or rewritten without `fieldValidation`.
struct Docs {
    index: Vec<u8>,
    v3: BTreeMap<String, Vec<u8>>,
    v2_json: Vec<u8>,
    v2_protobuf: Vec<u8>,
}

fn docs(strip: bool) -> Docs {
    let o = openapi();
    let mut v3: BTreeMap<String, Vec<u8>> = o
        .v3_paths()
        .map(|k| (k.to_string(), o.v3_document(k).unwrap().to_vec()))
        .collect();
    if !strip {
        return Docs {
            index: o.v3_index().to_vec(),
            v3,
            v2_json: o.v2_json().to_vec(),
            v2_protobuf: o.v2_protobuf().to_vec(),
        };
    }
    for doc in v3.values_mut() {
        *doc = without_field_validation(doc);
    }
    let v2_json = without_field_validation(o.v2_json());
    let v2: Value = serde_json::from_slice(&v2_json).unwrap();
    Docs {
        // The index hashes no longer match the bodies; kubectl does not check them.
        index: o.v3_index().to_vec(),
        v3,
        v2_protobuf: gnostic::encode(&v2).unwrap(),
        v2_json,
    }
}

fn without_field_validation(doc: &[u8]) -> Vec<u8> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(params)) = map.get_mut("parameters") {
                    params.retain(|p| p["name"] != "fieldValidation");
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_slice(doc).unwrap();
    strip(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn json_bytes(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn not_found() -> Response {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": "the server could not find the requested resource", "reason": "NotFound", "code": 404});
    (StatusCode::NOT_FOUND, Json(status)).into_response()
}

fn resource_list(group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in in_group_version(group, version) {
        resources.push(
            json!({"name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            "shortNames": r.short_names, "categories": r.categories}),
        );
        if r.has_status {
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn group_list() -> Value {
    let groups: Vec<Value> = GROUPS
        .iter()
        .map(|g| {
            let gv = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

async fn log(req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("?").to_string());
    let line = format!(
        "{} {} accept={accept:?} content-type={content_type:?}",
        parts.method, parts.uri
    );
    let resp = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    eprintln!("{line} -> {}", resp.status().as_u16());
    if !bytes.is_empty() {
        eprintln!("  body: {}", String::from_utf8_lossy(&bytes));
    }
    resp
}

/// Remembers POSTed objects and serves them back, which is all kubectl apply needs to
/// compute a patch.
async fn objects(State(store): State<Store>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let mut store = store.lock().unwrap();
    match parts.method.as_str() {
        "POST" => {
            let obj: Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let name = obj["metadata"]["name"].as_str().unwrap_or_default();
            store.insert(format!("{path}/{name}"), bytes.to_vec());
            (StatusCode::CREATED, json_bytes(bytes.to_vec())).into_response()
        }
        "GET" | "PATCH" => store
            .get(&path)
            .map(|b| json_bytes(b.clone()))
            .unwrap_or_else(not_found),
        _ => not_found(),
    }
}

fn app(docs: Arc<Docs>, store: Store) -> Router {
    let (d1, d2, d3) = (docs.clone(), docs.clone(), docs);
    Router::new()
        .route(
            "/version",
            get(|| async { Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0"})) }),
        )
        .route(
            "/api",
            get(|| async { Json(json!({"kind": "APIVersions", "versions": ["v1"]})) }),
        )
        .route("/apis", get(|| async { Json(group_list()) }))
        .route("/api/v1", get(|| async { Json(resource_list("", "v1")) }))
        .route(
            "/apis/{group}/{version}",
            get(|Path((g, v)): Path<(String, String)>| async move { Json(resource_list(&g, &v)) }),
        )
        .route("/openapi/v3", get(move || async move { json_bytes(d1.index.clone()) }))
        .route(
            "/openapi/v3/{*gv}",
            get(move |Path(gv): Path<String>| async move {
                d2.v3.get(&gv).map(|b| json_bytes(b.clone())).unwrap_or_else(not_found)
            }),
        )
        .route(
            "/openapi/v2",
            get(move |headers: HeaderMap| async move {
                let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                if d3.v2_protobuf.is_empty() {
                    not_found()
                } else if wants_v2_protobuf(accept) {
                    (
                        [(header::CONTENT_TYPE, V2_PROTOBUF_RESPONSE_CONTENT_TYPE)],
                        d3.v2_protobuf.clone(),
                    )
                        .into_response()
                } else {
                    json_bytes(d3.v2_json.clone())
                }
            }),
        )
        .fallback(objects)
        .with_state(store)
        .layer(middleware::from_fn(log))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".into());
    let flags: Vec<String> = args.collect();
    let strip = flags.iter().any(|a| a == "--no-field-validation");
    let mut docs = docs(strip);
    // `--no-v2` answers 404 for /openapi/v2, as a server without it would (kubectl apply then
    // uses its compiled-in patch metadata): for comparing patches.
    if flags.iter().any(|a| a == "--no-v2") {
        docs.v2_protobuf.clear();
    }
    let docs = Arc::new(docs);
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    eprintln!(
        "serving OpenAPI on http://{addr} (fieldValidation declared: {})",
        !strip
    );
    axum::serve(listener, app(docs, Store::default())).await.expect("serve");
}
