//! What kube-apiserver does for Pods beyond the generic registry: the `pods/binding`
//! subresource the scheduler binds through, graceful deletion of pods bound to a node
//! (`deletionTimestamp` + `deletionGracePeriodSeconds`, kept until the node confirms), and the
//! DefaultTolerationSeconds admission plugin.

use serde_json::{json, Value};

use svcnet_core::resources::{self, ResourceInfo};
use svcnet_store::{Error as StoreError, Op, Precondition};

use crate::objects::{self, from_kv, key};
use crate::registry::Registry;
use crate::status::{ApiError, ApiResult, Cause};

/// Seconds pods tolerate `node.kubernetes.io/not-ready` and `unreachable` NoExecute taints
/// unless they say otherwise (--default-not-ready-toleration-seconds and
/// --default-unreachable-toleration-seconds upstream).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;

/// The taints DefaultTolerationSeconds adds tolerations for.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Termination grace of a pod that does not set one (spec.terminationGracePeriodSeconds default).
const DEFAULT_GRACE_SECONDS: i64 = 30;

// === DefaultTolerationSeconds ===

/// Adds `{key: <taint>, operator: Exists, effect: NoExecute, tolerationSeconds: 300}` for the
/// not-ready and unreachable taints, unless a toleration already covers that taint's NoExecute
/// effect (an empty key or effect counts), as the admission plugin does.
pub fn default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for taint in [NOT_READY, UNREACHABLE] {
        let covered = list.iter().any(|t| {
            let key = t.get("key").and_then(Value::as_str).unwrap_or("");
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            (key == taint || key.is_empty()) && (effect == "NoExecute" || effect.is_empty())
        });
        if !covered {
            list.push(json!({
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": DEFAULT_TOLERATION_SECONDS,
            }));
        }
    }
}

// === graceful deletion ===

/// The grace period a DELETE of `pod` gets (the pod strategy's CheckGracefulDelete): the
/// request's gracePeriodSeconds, else the pod's terminationGracePeriodSeconds, else 30; zero for
/// pods that are not on a node or have finished; negative values become 1.
pub fn grace_period(pod: &Value, delete_options: &Value) -> i64 {
    let requested = delete_options.get("gracePeriodSeconds").and_then(Value::as_i64);
    let mut period = requested
        .or_else(|| {
            pod.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_i64)
        })
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    let unscheduled = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let finished = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || finished {
        period = 0;
    }
    if period < 0 {
        period = 1;
    }
    period
}

/// What a DELETE does to a pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodDeletion {
    /// Remove it now.
    Remove,
    /// Store it marked like this (deletionTimestamp set or shortened); unchanged when a
    /// graceful deletion with an equal or shorter grace is already pending.
    Mark(Value),
}

/// Upstream's BeforeDelete for pods: a first DELETE with a grace period sets
/// `deletionTimestamp = now + grace` and `deletionGracePeriodSeconds`; a later one may only
/// shorten it (the timestamp moves by the difference); grace 0 removes the pod unless
/// finalizers hold it.
pub fn graceful_deletion(pod: &Value, delete_options: &Value, now: jiff::Timestamp) -> PodDeletion {
    let grace = grace_period(pod, delete_options);
    let held = !objects::finalizers(pod).is_empty();
    let mut marked = pod.clone();
    let meta = objects::metadata_mut(&mut marked);
    if objects::is_deleting(pod) {
        let current = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if grace >= current {
            return PodDeletion::Mark(marked);
        }
        let deadline = objects::meta_str(pod, "deletionTimestamp")
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or(now);
        let shortened = deadline - jiff::SignedDuration::from_secs(current - grace);
        meta.insert("deletionTimestamp".into(), Value::from(rfc3339(shortened)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    } else {
        let deadline = now + jiff::SignedDuration::from_secs(grace);
        meta.insert("deletionTimestamp".into(), Value::from(rfc3339(deadline)));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if grace == 0 && !held {
        PodDeletion::Remove
    } else {
        PodDeletion::Mark(marked)
    }
}

fn rfc3339(at: jiff::Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

// === pods/binding ===

/// The pod a Binding produces: `spec.nodeName` set, the Binding's annotations merged and
/// `PodScheduled=True` (setPodNodeAndMetadata upstream).
pub fn assign(pod: &Value, binding: &Value) -> ApiResult<Value> {
    let name = objects::name(pod).unwrap_or("");
    let conflict = |why: String| ApiError {
        code: 409,
        reason: "Conflict",
        message: format!("Operation cannot be fulfilled on pods/binding \"{name}\": {why}"),
        details: Some(json!({"name": name, "kind": "pods/binding"})),
    };
    if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str) {
        let actual = objects::meta_str(pod, "uid").unwrap_or("");
        if !uid.is_empty() && uid != actual {
            return Err(conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"
            )));
        }
    }
    if objects::is_deleting(pod) {
        return Err(conflict(format!(
            "pod {name} is being deleted, cannot be assigned to a host"
        )));
    }
    if let Some(node) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Err(conflict(format!("pod {name} is already assigned to node \"{node}\"")));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(conflict(format!("pod {name} has non-empty .spec.schedulingGates")));
    }
    let node = binding.pointer("/target/name").and_then(Value::as_str).unwrap_or("");
    let mut bound = pod.clone();
    bound["spec"]["nodeName"] = json!(node);
    if let Some(annotations) = binding.pointer("/metadata/annotations").and_then(Value::as_object) {
        let meta = objects::metadata_mut(&mut bound);
        let target = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(target) = target.as_object_mut() {
            target.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    set_scheduled(&mut bound);
    Ok(bound)
}

/// Sets the PodScheduled condition to True (keeping its transition time when it already was).
fn set_scheduled(pod: &mut Value) {
    let status = pod
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("status")
        .or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = status
        .as_object_mut()
        .expect("just made an object")
        .entry("conditions")
        .or_insert_with(|| json!([]));
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let list = conditions.as_array_mut().expect("just made an array");
    let now = objects::now_rfc3339();
    match list.iter_mut().find(|c| c["type"] == "PodScheduled") {
        Some(condition) if condition["status"] == "True" => {}
        Some(condition) => {
            *condition =
                json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now});
        }
        None => list
            .push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now})),
    }
}

/// Checks a Binding body the way ValidatePodBinding does, and that it names the URL's pod.
fn validate_binding(name: &str, binding: &Value) -> ApiResult<()> {
    if let Some(body_name) = objects::name(binding) {
        if body_name != name {
            return Err(ApiError::bad_request(
                "name in URL does not match name in Binding object",
            ));
        }
    }
    let mut causes = Vec::new();
    let kind = binding.pointer("/target/kind").and_then(Value::as_str).unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        causes.push(Cause::new(
            "FieldValueNotSupported",
            "target.kind",
            format!("Unsupported value: \"{kind}\": supported values: \"Node\", \"\""),
        ));
    }
    if binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        causes.push(Cause::new("FieldValueRequired", "target.name", "Required value"));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let mut error = ApiError::invalid(binding_resource(), name, causes);
    error.message = error.message.replacen("Pod ", "Binding ", 1);
    if let Some(details) = error.details.as_mut() {
        details["kind"] = json!("Binding");
    }
    Err(error)
}

fn binding_resource() -> &'static ResourceInfo {
    resources::by_kind("Pod").expect("pods are served")
}

/// POST `/api/v1/namespaces/{ns}/pods/{name}/binding`: binds the pod to the Binding's target
/// node in one conditional write, and answers with a Success Status (201).
pub async fn bind(
    registry: &Registry,
    namespace: &str,
    name: &str,
    binding: &Value,
    dry_run: bool,
) -> ApiResult<Value> {
    validate_binding(name, binding)?;
    let pods = binding_resource();
    let key = key(pods, Some(namespace), name);
    for _ in 0..5 {
        let kv = registry
            .store
            .get(&key)
            .await?
            .ok_or_else(|| ApiError::not_found(pods, name))?;
        let pod = from_kv(&kv);
        let bound = assign(&pod, binding)?;
        if dry_run {
            break;
        }
        let op = Op::Put {
            key: key.clone(),
            value: objects::to_bytes(&bound),
            precondition: Precondition::ModRevision(kv.mod_revision),
        };
        match registry.store.txn(vec![op]).await {
            Ok(_) => return Ok(created_status()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(pods, name)),
            Err(err) => return Err(err.into()),
        }
    }
    if dry_run {
        return Ok(created_status());
    }
    Err(ApiError::modified(pods, name))
}

fn created_status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(tweak: impl FnOnce(&mut Value)) -> Value {
        let mut pod = json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Pending"},
        });
        tweak(&mut pod);
        pod
    }

    fn at(text: &str) -> jiff::Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn default_tolerations_are_added_unless_covered() {
        let mut plain = pod(|_| {});
        default_tolerations(&mut plain);
        let keys: Vec<_> = plain["spec"]["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["key"].as_str().unwrap(), t["tolerationSeconds"].as_i64().unwrap()))
            .collect();
        assert_eq!(keys, [(NOT_READY, 300), (UNREACHABLE, 300)]);

        let mut own = pod(|p| {
            p["spec"]["tolerations"] = json!([{"key": UNREACHABLE, "operator": "Exists", "tolerationSeconds": 5}]);
        });
        default_tolerations(&mut own);
        let list = own["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["tolerationSeconds"], 5);
        assert_eq!(list[1]["key"], NOT_READY);

        let mut everything = pod(|p| p["spec"]["tolerations"] = json!([{"operator": "Exists"}]));
        default_tolerations(&mut everything);
        assert_eq!(everything["spec"]["tolerations"].as_array().unwrap().len(), 1);

        let mut no_schedule_only = pod(|p| {
            p["spec"]["tolerations"] = json!([{"key": NOT_READY, "operator": "Exists", "effect": "NoSchedule"}]);
        });
        default_tolerations(&mut no_schedule_only);
        assert_eq!(no_schedule_only["spec"]["tolerations"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn grace_period_follows_the_pod_strategy() {
        let bound = pod(|p| p["spec"]["nodeName"] = json!("n1"));
        assert_eq!(grace_period(&bound, &Value::Null), 30);
        assert_eq!(grace_period(&bound, &json!({"gracePeriodSeconds": 5})), 5);
        assert_eq!(grace_period(&bound, &json!({"gracePeriodSeconds": -3})), 1);
        let own = pod(|p| {
            p["spec"]["nodeName"] = json!("n1");
            p["spec"]["terminationGracePeriodSeconds"] = json!(7);
        });
        assert_eq!(grace_period(&own, &Value::Null), 7);
        assert_eq!(grace_period(&own, &json!({"gracePeriodSeconds": 0})), 0);
        assert_eq!(
            grace_period(&pod(|_| {}), &json!({"gracePeriodSeconds": 9})),
            0,
            "unscheduled"
        );
        let done = pod(|p| {
            p["spec"]["nodeName"] = json!("n1");
            p["status"]["phase"] = json!("Succeeded");
        });
        assert_eq!(grace_period(&done, &Value::Null), 0, "finished");
    }

    #[test]
    fn graceful_deletion_marks_then_shortens_then_removes() {
        let now = at("2026-01-01T00:00:00Z");
        let bound = pod(|p| p["spec"]["nodeName"] = json!("n1"));
        let PodDeletion::Mark(marked) = graceful_deletion(&bound, &Value::Null, now) else {
            panic!("a bound pod is marked");
        };
        assert_eq!(marked["metadata"]["deletionTimestamp"], "2026-01-01T00:00:30Z");
        assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);

        // A longer or equal grace changes nothing; a shorter one moves the deadline.
        let later = at("2026-01-01T00:00:10Z");
        assert_eq!(
            graceful_deletion(&marked, &json!({"gracePeriodSeconds": 60}), later),
            PodDeletion::Mark(marked.clone())
        );
        let PodDeletion::Mark(shorter) = graceful_deletion(&marked, &json!({"gracePeriodSeconds": 10}), later) else {
            panic!("still marked");
        };
        assert_eq!(shorter["metadata"]["deletionTimestamp"], "2026-01-01T00:00:10Z");
        assert_eq!(shorter["metadata"]["deletionGracePeriodSeconds"], 10);

        assert_eq!(
            graceful_deletion(&shorter, &json!({"gracePeriodSeconds": 0}), later),
            PodDeletion::Remove
        );
        assert_eq!(graceful_deletion(&pod(|_| {}), &Value::Null, now), PodDeletion::Remove);

        let held = pod(|p| p["metadata"]["finalizers"] = json!(["example.com/keep"]));
        let PodDeletion::Mark(held) = graceful_deletion(&held, &Value::Null, now) else {
            panic!("finalizers keep it");
        };
        assert_eq!(held["metadata"]["deletionGracePeriodSeconds"], 0);
    }

    #[test]
    fn binding_assigns_once() {
        let binding =
            json!({"metadata": {"name": "web", "annotations": {"a": "b"}}, "target": {"kind": "Node", "name": "n2"}});
        let bound = assign(&pod(|_| {}), &binding).unwrap();
        assert_eq!(bound["spec"]["nodeName"], "n2");
        assert_eq!(bound["metadata"]["annotations"]["a"], "b");
        assert_eq!(bound["status"]["conditions"][0]["type"], "PodScheduled");
        assert_eq!(bound["status"]["conditions"][0]["status"], "True");

        let err = assign(&bound, &binding).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(
            err.message,
            "Operation cannot be fulfilled on pods/binding \"web\": pod web is already assigned to node \"n2\""
        );
        let deleting = pod(|p| p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z"));
        assert!(assign(&deleting, &binding)
            .unwrap_err()
            .message
            .contains("is being deleted"));
    }

    #[test]
    fn bindings_are_validated() {
        assert_eq!(
            validate_binding("web", &json!({"metadata": {"name": "other"}, "target": {"name": "n1"}}))
                .unwrap_err()
                .code,
            400
        );
        let err = validate_binding("web", &json!({"target": {"kind": "Pod"}})).unwrap_err();
        assert_eq!(err.code, 422);
        assert!(err.message.starts_with("Binding \"web\" is invalid"), "{}", err.message);
        assert!(validate_binding("web", &json!({"target": {"name": "n1"}})).is_ok());
    }
}
