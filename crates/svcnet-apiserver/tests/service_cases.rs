//! The Service validation cases of `crates/svcnet-core/tests/fixtures/service_cases.json` (shared
//! with svcnet-core's unit tests) through the API. Each case gets a namespace of its own on one
//! dual-stack server: a create case is POSTed there; an update case creates `old` first and then
//! PUTs `service` over it (to `/status` for status cases). A refused write must answer 422
//! `Invalid` about the Service with exactly the expected causes (or the internal error upstream's
//! allocator answers for a health-check port it cannot have) and leave the store alone: same
//! revision, no new IPAddress object or node port, the old object unchanged. An accepted one must
//! be stored and read back as written.
//!
//! The server defaults and allocates before it validates, as upstream does; where that changes the
//! answer the case says so, and why, in `http` (see the case file).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::{json, Value};
use svcnet_apiserver::services::ServiceNetwork;
use svcnet_store::{RedbStore, Store};
use tower::ServiceExt;

const CASES: &str = include_str!("../../svcnet-core/tests/fixtures/service_cases.json");

#[derive(Debug, Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    subresource: Option<String>,
    #[serde(default)]
    old: Option<Value>,
    service: Value,
    causes: Vec<Cause>,
    #[serde(default)]
    http: Option<Http>,
}

/// What the API answers when defaulting or allocation makes it differ from the pure function.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Http {
    why: String,
    /// 422 unless the allocator fails the write otherwise.
    #[serde(default = "invalid_code")]
    code: u16,
    causes: Vec<Cause>,
}

fn invalid_code() -> u16 {
    422
}

/// A StatusCause; an internal error's has a message only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cause {
    #[serde(default)]
    field: String,
    #[serde(default)]
    reason: String,
    message: String,
}

impl Case {
    /// The causes the API must answer with (none for a valid write).
    fn expected(&self) -> &[Cause] {
        self.http.as_ref().map_or(&self.causes, |h| &h.causes)
    }

    /// The status code of a refused write.
    fn refused_with(&self) -> u16 {
        self.http.as_ref().map_or(422, |h| h.code)
    }

    fn service_name(&self) -> &str {
        self.service["metadata"]["name"]
            .as_str()
            .expect("cases name their Service")
    }
}

fn cases() -> Vec<Case> {
    let fixture: Fixture = serde_json::from_str(CASES).expect("the case file parses");
    fixture.cases
}

struct Api {
    app: Router,
    store: Arc<RedbStore>,
    _dir: tempfile::TempDir,
}

/// What an invalid write must not change.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    revision: u64,
    ip_addresses: Vec<String>,
    node_ports: Vec<String>,
}

impl Api {
    async fn new() -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(RedbStore::open(&dir.path().join("db")).unwrap());
        // Dual-stack, so that the dual-stack cases are valid; the default node-port range.
        let network = ServiceNetwork {
            cidrs: vec!["10.96.0.0/12".into(), "fd00::/108".into()],
            ..Default::default()
        };
        let app = svcnet_apiserver::app(store.clone(), "127.0.0.1:6443", network)
            .await
            .unwrap();
        Api { app, store, _dir: dir }
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let bytes = body.map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(Body::from(bytes))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn snapshot(&self) -> Snapshot {
        let (status, list) = self.call("GET", "/apis/networking.k8s.io/v1/ipaddresses", None).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ip_addresses = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect();
        let node_ports = self
            .store
            .list("/registry/nodeports/")
            .await
            .unwrap()
            .kvs
            .iter()
            .map(|kv| kv.key.clone())
            .collect();
        Snapshot {
            revision: self.store.revision(),
            ip_addresses,
            node_ports,
        }
    }
}

/// Upstream's Status message: the causes as `field: message`, identical ones once, several in
/// brackets (`ErrorList.ToAggregate`).
fn aggregate(causes: &[Cause]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for cause in causes {
        let text = match cause.field.as_str() {
            "" => cause.message.clone(),
            field => format!("{field}: {}", cause.message),
        };
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    match seen.len() {
        1 => seen.remove(0),
        _ => format!("[{}]", seen.join(", ")),
    }
}

fn answered_causes(status: &Value) -> Vec<Cause> {
    status["details"]["causes"]
        .as_array()
        .map(|causes| {
            causes
                .iter()
                .map(|c| Cause {
                    field: c["field"].as_str().unwrap_or("").to_string(),
                    reason: c["reason"].as_str().unwrap_or("").to_string(),
                    message: c["message"].as_str().unwrap_or("").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a refused write: an `Invalid` Status (422) about this Service with exactly `expected`,
/// or the internal error (500) upstream's allocator answers for some requests.
fn check_refused(
    name: &str,
    code: StatusCode,
    status: &Value,
    wanted_code: u16,
    expected: &[Cause],
) -> Result<(), String> {
    if code.as_u16() != wanted_code {
        return Err(format!("answered {code}, not {wanted_code}: {status}"));
    }
    let (reason, kind, name, message) = if wanted_code == 422 {
        let message = format!("Service {name:?} is invalid: {}", aggregate(expected));
        ("Invalid", json!("Service"), json!(name), message)
    } else {
        let message = format!("Internal error occurred: {}", aggregate(expected));
        ("InternalError", Value::Null, Value::Null, message)
    };
    let header = (
        &status["kind"],
        &status["status"],
        &status["code"],
        &status["reason"],
        &status["details"]["kind"],
        &status["details"]["name"],
    );
    let wanted = (
        &json!("Status"),
        &json!("Failure"),
        &json!(wanted_code),
        &json!(reason),
        &kind,
        &name,
    );
    if header != wanted {
        return Err(format!("not the {reason} Status expected: {status}"));
    }
    let causes = answered_causes(status);
    if causes != expected {
        return Err(format!(
            "causes differ\n      got:  {}\n      want: {}",
            serde_json::to_string(&causes_json(&causes)).unwrap(),
            serde_json::to_string(&causes_json(expected)).unwrap()
        ));
    }
    if status["message"] != json!(message) {
        return Err(format!("message {} is not {message:?}", status["message"]));
    }
    Ok(())
}

fn causes_json(causes: &[Cause]) -> Value {
    causes
        .iter()
        .map(|c| json!({"field": c.field, "reason": c.reason, "message": c.message}))
        .collect()
}

/// Runs one case in namespace `namespace`; the error says what went wrong.
async fn run(api: &Api, namespace: &str, case: &Case) -> Result<(), String> {
    let (code, created) = api
        .call(
            "POST",
            "/api/v1/namespaces",
            Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})),
        )
        .await;
    if code != StatusCode::CREATED {
        return Err(format!("namespace not created: {created}"));
    }
    let name = case.service_name();
    let collection = format!("/api/v1/namespaces/{namespace}/services");
    let path = format!("{collection}/{name}");
    let stored_old = match &case.old {
        Some(old) => {
            let (code, created) = api.call("POST", &collection, Some(old)).await;
            if code != StatusCode::CREATED {
                return Err(format!("`old` not created ({code}): {created}"));
            }
            Some(created)
        }
        None => None,
    };
    let before = api.snapshot().await;
    let (code, answer) = match (&stored_old, case.subresource.as_deref()) {
        (None, _) => api.call("POST", &collection, Some(&case.service)).await,
        (Some(_), None) => api.call("PUT", &path, Some(&case.service)).await,
        (Some(_), Some(sub)) => api.call("PUT", &format!("{path}/{sub}"), Some(&case.service)).await,
    };
    let (read, stored) = api.call("GET", &path, None).await;
    if case.expected().is_empty() {
        let wanted = if stored_old.is_some() {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        if code != wanted {
            return Err(format!("answered {code}, not {wanted}: {answer}"));
        }
        if read != StatusCode::OK || stored != answer {
            return Err(format!("reads back as {read} {stored}, written {answer}"));
        }
        return Ok(());
    }
    check_refused(name, code, &answer, case.refused_with(), case.expected())?;
    let after = api.snapshot().await;
    if after != before {
        return Err(format!("the refused write changed the store: {before:?} -> {after:?}"));
    }
    match &stored_old {
        None if read != StatusCode::NOT_FOUND => Err(format!("the refused Service reads back: {stored}")),
        Some(old) if read != StatusCode::OK || &stored != old => {
            Err(format!("the stored Service changed: {old} -> {stored}"))
        }
        _ => Ok(()),
    }
}

#[tokio::test]
async fn every_case_through_the_api() {
    let cases = cases();
    let creates = || cases.iter().filter(|c| c.old.is_none());
    let invalid = creates()
        .filter(|c| !c.expected().is_empty() && c.refused_with() == 422)
        .count();
    let valid = creates().filter(|c| c.expected().is_empty()).count();
    assert!(invalid >= 60, "only {invalid} invalid Services through the API");
    assert!(valid >= 30, "only {valid} valid Services through the API");

    let api = Api::new().await;
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        if let Err(err) = run(&api, &format!("case-{index}"), case).await {
            failures.push(format!("case {index} {:?}: {err}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn http_answers_say_why_they_differ() {
    for case in cases() {
        if let Some(http) = &case.http {
            assert!(!http.why.trim().is_empty(), "case {:?} does not say why", case.name);
            assert_ne!(
                http.causes, case.causes,
                "case {:?}: `http` repeats `causes`",
                case.name
            );
        }
    }
}

/// An update that leaves `ipFamilyPolicy` out keeps the stored policy (upstream's
/// initIPFamilyFields), so a dual-stack Service is not quietly cut down to one family.
#[tokio::test]
async fn an_update_without_a_policy_keeps_the_stored_one() {
    let api = Api::new().await;
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "dual"},
        "spec": {"ipFamilyPolicy": "PreferDualStack", "selector": {"app": "web"}, "ports": [{"port": 80}]}
    });
    let (code, created) = api
        .call("POST", "/api/v1/namespaces/default/services", Some(&service))
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert_eq!(created["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    let mut update = created.clone();
    update["spec"].as_object_mut().unwrap().remove("ipFamilyPolicy");
    update["metadata"]["labels"] = json!({"changed": "yes"});
    let (code, updated) = api
        .call("PUT", "/api/v1/namespaces/default/services/dual", Some(&update))
        .await;
    assert_eq!(code, StatusCode::OK, "{updated}");
    assert_eq!(updated["spec"], created["spec"]);
}
