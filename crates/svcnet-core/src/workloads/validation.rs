//! Workload validation as the v1.33 API server performs it: upstream's `ValidateDeployment`,
//! `ValidateReplicaSet`, `ValidateStatefulSet` (pkg/apis/apps/validation), their update and status
//! variants, the REST strategies' immutable-selector rule, and the part of `ValidatePodTemplateSpec`
//! / `ValidatePodSpec` (pkg/apis/core/validation) that pod templates need: containers, ports,
//! env, volume mounts, probes, pull and restart policies, DNS policy, volumes, tolerations.
//!
//! Objects arrive decoded and defaulted ([`super::defaults`]), so they are validated as upstream
//! validates its internal types, Go zero values included. One difference is forced by decoding:
//! the typed round trip turns a missing `spec.selector` into `{}`, so a selector with neither
//! `matchLabels` nor `matchExpressions` is reported as missing (`Required value`, upstream's answer
//! for the usual mistake of leaving it out) rather than as an empty selector; `matchLabels: {}`
//! is the empty selector.
//!
//! Upstream quirks kept on purpose: pod template labels are reported at `spec.template.labels`,
//! a ReplicaSet's empty selector is "invalid for deployment", and StatefulSet templates are not
//! run through pod spec validation (their pods are, when created).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use crate::field::{go_quote, FieldError, FieldPath, GoValue};
use crate::selector::{
    from_label_selector_json, is_dns1123_label, is_dns1123_subdomain, validate_annotations_at, validate_label_key,
    validate_label_value, validate_labels_at,
};
use crate::service::validation::is_valid_port_name;
use crate::workloads::defaults::VOLUME_SOURCES;

/// `apimachineryvalidation.IsNegativeErrorMsg`.
pub const IS_NEGATIVE_ERROR_MSG: &str = "must be greater than or equal to 0";
/// `apimachineryvalidation.FieldImmutableErrorMsg`.
pub const FIELD_IMMUTABLE_ERROR_MSG: &str = "field is immutable";
const SELECTOR_MISMATCH: &str = "`selector` does not match template `labels`";
const PORT_RANGE_ERROR: &str = "must be between 1 and 65535, inclusive";
const PERCENT_ERROR: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";
const RELAXED_ENV_VAR_NAME_ERROR: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
const STATUS_REPLICAS_MSG: &str = "cannot be greater than status.replicas";

/// Validates a workload write: `old` is the stored object on updates, `status_write` tells a
/// write to the status subresource. Kinds other than Deployment, ReplicaSet and StatefulSet
/// have nothing to check here.
pub fn validate(kind: &str, object: &Value, old: Option<&Value>, status_write: bool) -> Vec<FieldError> {
    match (kind, old, status_write) {
        ("Deployment", Some(old), true) => validate_deployment_status_update(object, old),
        ("Deployment", Some(old), false) => validate_deployment_update(object, old),
        ("Deployment", None, _) => validate_deployment(object),
        ("ReplicaSet", Some(_), true) => validate_replica_set_status(object),
        ("ReplicaSet", Some(old), false) => validate_replica_set_update(object, old),
        ("ReplicaSet", None, _) => validate_replica_set(object),
        ("StatefulSet", Some(old), true) => validate_stateful_set_status_update(object, old),
        ("StatefulSet", Some(old), false) => validate_stateful_set_update(object, old),
        ("StatefulSet", None, _) => validate_stateful_set(object),
        _ => Vec::new(),
    }
}

// === reading JSON as Go would see the internal type ===

/// A present, non-null field.
fn get<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    v?.get(key).filter(|v| !v.is_null())
}

fn str_at<'a>(v: Option<&'a Value>, key: &str) -> &'a str {
    get(v, key).and_then(Value::as_str).unwrap_or("")
}

/// Status counts that may not exceed `status.replicas` (shared by every workload's status rules).
fn counts_within_replicas(s: Option<&Value>, path: &FieldPath, fields: &[&str]) -> Vec<FieldError> {
    let replicas = int_at(s, "replicas");
    fields
        .iter()
        .filter_map(|field| {
            let value = int_at(s, field);
            (value > replicas).then(|| FieldError::invalid(path.child(field), value, STATUS_REPLICAS_MSG))
        })
        .collect()
}

fn int_at(v: Option<&Value>, key: &str) -> i64 {
    get(v, key).and_then(Value::as_i64).unwrap_or(0)
}

fn opt_int(v: Option<&Value>, key: &str) -> Option<i64> {
    get(v, key).and_then(Value::as_i64)
}

fn items<'a>(v: Option<&'a Value>, key: &str) -> &'a [Value] {
    get(v, key).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn object_at<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Map<String, Value>> {
    get(v, key).and_then(Value::as_object)
}

fn spec(object: &Value) -> Option<&Value> {
    get(Some(object), "spec")
}

fn status(object: &Value) -> Option<&Value> {
    get(Some(object), "status")
}

/// Go's semantic equality on decoded JSON: absent, null, empty lists and empty maps are alike.
fn semantic_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    fn empty(v: Option<&Value>) -> bool {
        match v {
            None | Some(Value::Null) => true,
            Some(Value::Array(items)) => items.is_empty(),
            Some(Value::Object(map)) => map.values().all(|v| empty(Some(v))),
            _ => false,
        }
    }
    match (a, b) {
        _ if empty(a) && empty(b) => true,
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let keys: HashSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().all(|k| semantic_eq(x.get(k), y.get(k)))
        }
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(Some(p), Some(q)))
        }
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

// === values as upstream's ErrorBody prints them (`%#v`) ===

/// A `map[string]string`: keys sorted, `map[string]string(nil)` when nil.
fn go_string_map(map: Option<&Map<String, Value>>) -> String {
    match map {
        None => "map[string]string(nil)".to_string(),
        Some(map) => {
            let sorted: BTreeMap<&String, String> = map
                .iter()
                .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            let entries: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{}:{}", go_quote(k), go_quote(v)))
                .collect();
            format!("map[string]string{{{}}}", entries.join(", "))
        }
    }
}

fn go_strings(values: Option<&Value>) -> String {
    match values.and_then(Value::as_array) {
        None => "[]string(nil)".to_string(),
        Some(items) => {
            let items: Vec<String> = items.iter().map(|v| go_quote(v.as_str().unwrap_or(""))).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// A `*metav1.LabelSelector` (dereferenced, as ErrorBody does; nil prints `null`).
fn go_label_selector(selector: Option<&Value>) -> GoValue {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return GoValue::Null;
    };
    let expressions = match get(Some(selector), "matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(exprs) => {
            let exprs: Vec<String> = exprs
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{}}}",
                        go_quote(str_at(Some(e), "key")),
                        go_quote(str_at(Some(e), "operator")),
                        go_strings(get(Some(e), "values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", exprs.join(", "))
        }
    };
    GoValue::Raw(format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(object_at(Some(selector), "matchLabels")),
        expressions
    ))
}

/// `intstr.IntOrString` from its JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IntOrString {
    Int(i64),
    Str(String),
}

impl IntOrString {
    fn read(v: Option<&Value>) -> IntOrString {
        match v {
            Some(Value::String(s)) => IntOrString::Str(s.clone()),
            Some(v) => IntOrString::Int(v.as_i64().unwrap_or(0)),
            None => IntOrString::Int(0),
        }
    }

    /// `%#v` of the struct: `intstr.IntOrString{Type:1, IntVal:0, StrVal:"25%"}`.
    fn go(&self) -> GoValue {
        let (ty, int, s) = match self {
            IntOrString::Int(n) => (0, *n, ""),
            IntOrString::Str(s) => (1, 0, s.as_str()),
        };
        GoValue::Raw(format!(
            "intstr.IntOrString{{Type:{ty}, IntVal:{int}, StrVal:{}}}",
            go_quote(s)
        ))
    }

    /// `IntOrString.IntValue()`: strings parse as integers, 0 when they do not.
    fn int_value(&self) -> i64 {
        match self {
            IntOrString::Int(n) => *n,
            IntOrString::Str(s) => s.parse().unwrap_or(0),
        }
    }

    /// The percentage when the value is a valid percent string.
    fn percent(&self) -> Option<i64> {
        match self {
            IntOrString::Str(s) if is_valid_percent(s) => s[..s.len() - 1].parse().ok(),
            _ => None,
        }
    }

    /// `getIntOrPercentValue`.
    fn int_or_percent_value(&self) -> i64 {
        self.percent().unwrap_or_else(|| self.int_value())
    }
}

/// `[0-9]+%`.
fn is_valid_percent(s: &str) -> bool {
    s.len() >= 2 && s.ends_with('%') && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

// === shared checks ===

/// `ValidateNonnegativeField`.
fn validate_nonnegative(value: i64, path: &FieldPath) -> Vec<FieldError> {
    if value < 0 {
        vec![FieldError::invalid(path, value, IS_NEGATIVE_ERROR_MSG)]
    } else {
        Vec::new()
    }
}

/// `ValidateDNS1123Label`.
fn validate_dns1123_label(value: &str, path: &FieldPath) -> Vec<FieldError> {
    is_dns1123_label(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect()
}

/// `ValidateLabelName` (a qualified name).
fn validate_label_name(key: &str, path: &FieldPath) -> Vec<FieldError> {
    validate_label_key(key)
        .into_iter()
        .map(|msg| FieldError::invalid(path, key, msg))
        .collect()
}

/// `ValidateLabels` on an optional map.
fn validate_labels(labels: Option<&Map<String, Value>>, path: &FieldPath) -> Vec<FieldError> {
    labels.map_or_else(Vec::new, |labels| validate_labels_at(labels, path.as_str()))
}

/// `ValidateLabelSelector` with `AllowInvalidLabelValueInSelector: false`.
pub fn validate_label_selector(selector: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_labels(object_at(selector, "matchLabels"), &path.child("matchLabels"));
    for (i, expr) in items(selector, "matchExpressions").iter().enumerate() {
        let path = path.child("matchExpressions").index(i);
        let expr = Some(expr);
        let values = items(expr, "values");
        match str_at(expr, "operator") {
            "In" | "NotIn" if values.is_empty() => errs.push(FieldError::required(
                path.child("values"),
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errs.push(FieldError::forbidden(
                path.child("values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                path.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        errs.extend(validate_label_name(str_at(expr, "key"), &path.child("key")));
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            for msg in validate_label_value(value) {
                errs.push(FieldError::invalid(path.child("values").index(j), value, msg));
            }
        }
    }
    errs
}

/// Whether a decoded selector stands for a missing one (see the module comment).
fn selector_missing(selector: Option<&Value>) -> bool {
    selector.is_none_or(|s| get(Some(s), "matchLabels").is_none() && get(Some(s), "matchExpressions").is_none())
}

/// What `LabelSelectorAsSelector` makes of the selector: None when it fails to convert; the
/// "nothing" selector for a missing one.
fn selector_matches_template(selector: Option<&Value>, labels: Option<&Map<String, Value>>) -> Option<(bool, bool)> {
    if selector_missing(selector) {
        return Some((false, false));
    }
    let parsed = from_label_selector_json(selector.unwrap_or(&Value::Null)).ok()?;
    Some((parsed.is_empty(), parsed.matches(labels)))
}

/// The selector checks every workload shares: required, valid, not empty, convertible, and
/// matching the template's labels. `kind` words the empty-selector message; `convert_detail` is
/// the detail when conversion fails. Returns whether the template check may proceed.
fn validate_workload_selector(
    spec: Option<&Value>,
    path: &FieldPath,
    empty_message: &str,
    convert_detail: &str,
    errs: &mut Vec<FieldError>,
) -> bool {
    let selector = get(spec, "selector");
    let selector_path = path.child("selector");
    if selector_missing(selector) {
        errs.push(FieldError::required(&selector_path, ""));
    } else {
        errs.extend(validate_label_selector(selector, &selector_path));
        let count = object_at(selector, "matchLabels").map_or(0, Map::len) + items(selector, "matchExpressions").len();
        if count == 0 {
            errs.push(FieldError::invalid(
                &selector_path,
                go_label_selector(selector),
                empty_message,
            ));
        }
    }
    let template = get(spec, "template");
    let labels = object_at(get(template, "metadata"), "labels");
    match selector_matches_template(selector, labels) {
        None => {
            errs.push(FieldError::invalid(
                &selector_path,
                go_label_selector(selector),
                convert_detail,
            ));
            false
        }
        Some((empty, matches)) => {
            if !empty && !matches {
                errs.push(FieldError::invalid(
                    path.child("template").child("metadata").child("labels"),
                    GoValue::Raw(go_string_map(labels)),
                    SELECTOR_MISMATCH,
                ));
            }
            true
        }
    }
}

// === Deployments ===

/// `ValidateDeployment` (the spec; metadata is the API server's common check).
pub fn validate_deployment(deployment: &Value) -> Vec<FieldError> {
    validate_deployment_spec(spec(deployment), &FieldPath::new("spec"))
}

/// `ValidateDeploymentUpdate` plus the strategy's immutable selector.
pub fn validate_deployment_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_deployment(new);
    errs.extend(validate_immutable_selector(new, old));
    errs
}

fn validate_immutable_selector(new: &Value, old: &Value) -> Vec<FieldError> {
    let (new_selector, old_selector) = (get(spec(new), "selector"), get(spec(old), "selector"));
    if semantic_eq(new_selector, old_selector) {
        return Vec::new();
    }
    vec![FieldError::invalid(
        "spec.selector",
        go_label_selector(new_selector),
        FIELD_IMMUTABLE_ERROR_MSG,
    )]
}

/// `ValidateDeploymentSpec`.
pub fn validate_deployment_spec(spec: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_nonnegative(int_at(spec, "replicas"), &path.child("replicas"));
    if validate_workload_selector(
        spec,
        path,
        "empty selector is invalid for deployment",
        "invalid label selector",
        &mut errs,
    ) {
        errs.extend(validate_template_for_replica_set(spec, path, "ReplicaSet"));
    }
    errs.extend(validate_deployment_strategy(
        get(spec, "strategy"),
        &path.child("strategy"),
    ));
    let min_ready = int_at(spec, "minReadySeconds");
    errs.extend(validate_nonnegative(min_ready, &path.child("minReadySeconds")));
    if let Some(limit) = opt_int(spec, "revisionHistoryLimit") {
        errs.extend(validate_nonnegative(limit, &path.child("revisionHistoryLimit")));
    }
    if let Some(deadline) = opt_int(spec, "progressDeadlineSeconds") {
        let deadline_path = path.child("progressDeadlineSeconds");
        errs.extend(validate_nonnegative(deadline, &deadline_path));
        if deadline <= min_ready {
            errs.push(FieldError::invalid(
                deadline_path,
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// `ValidateDeploymentStrategy`.
fn validate_deployment_strategy(strategy: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let rolling = get(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "Recreate" if rolling.is_some() => vec![FieldError::forbidden(
            path.child("rollingUpdate"),
            "may not be specified when strategy `type` is 'Recreate'",
        )],
        "Recreate" => Vec::new(),
        "RollingUpdate" => match rolling {
            None => vec![FieldError::required(
                path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )],
            Some(rolling) => validate_rolling_update_deployment(rolling, &path.child("rollingUpdate")),
        },
        other => {
            let rolling = if rolling.is_some() {
                "(*apps.RollingUpdateDeployment)(0xc000a4e340)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            let value = GoValue::Raw(format!(
                "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{rolling}}}",
                go_quote(other)
            ));
            vec![FieldError::not_supported(path, value, &["Recreate", "RollingUpdate"])]
        }
    }
}

/// `ValidateRollingUpdateDeployment`.
fn validate_rolling_update_deployment(rolling: &Value, path: &FieldPath) -> Vec<FieldError> {
    let max_unavailable = IntOrString::read(get(Some(rolling), "maxUnavailable"));
    let max_surge = IntOrString::read(get(Some(rolling), "maxSurge"));
    let unavailable_path = path.child("maxUnavailable");
    let mut errs = validate_positive_int_or_percent(&max_unavailable, &unavailable_path);
    errs.extend(validate_positive_int_or_percent(&max_surge, &path.child("maxSurge")));
    if max_unavailable.int_or_percent_value() == 0 && max_surge.int_or_percent_value() == 0 {
        errs.push(FieldError::invalid(
            &unavailable_path,
            max_unavailable.go(),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs.extend(is_not_more_than_100_percent(&max_unavailable, &unavailable_path));
    errs
}

/// `ValidatePositiveIntOrPercent`.
fn validate_positive_int_or_percent(value: &IntOrString, path: &FieldPath) -> Vec<FieldError> {
    match value {
        IntOrString::Str(s) if !is_valid_percent(s) => vec![FieldError::invalid(path, value.go(), PERCENT_ERROR)],
        IntOrString::Str(_) => Vec::new(),
        IntOrString::Int(n) => validate_nonnegative(*n, path),
    }
}

/// `IsNotMoreThan100Percent`.
fn is_not_more_than_100_percent(value: &IntOrString, path: &FieldPath) -> Vec<FieldError> {
    match value.percent() {
        Some(p) if p > 100 => vec![FieldError::invalid(path, value.go(), "must not be greater than 100%")],
        _ => Vec::new(),
    }
}

/// `ValidateDeploymentStatusUpdate`.
pub fn validate_deployment_status_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let s = status(new);
    let path = FieldPath::new("status");
    let mut errs = Vec::new();
    for field in [
        "observedGeneration",
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        errs.extend(validate_nonnegative(int_at(s, field), &path.child(field)));
    }
    if let Some(count) = opt_int(s, "collisionCount") {
        errs.extend(validate_nonnegative(count, &path.child("collisionCount")));
    }
    errs.extend(counts_within_replicas(
        s,
        &path,
        &["updatedReplicas", "readyReplicas", "availableReplicas"],
    ));
    let available = int_at(s, "availableReplicas");
    if available > int_at(s, "readyReplicas") {
        errs.push(FieldError::invalid(
            path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs.extend(validate_collision_count_not_decremented(new, old));
    errs
}

/// `IsDecremented` on `status.collisionCount`.
fn validate_collision_count_not_decremented(new: &Value, old: &Value) -> Vec<FieldError> {
    let new_count = opt_int(status(new), "collisionCount");
    let Some(old_count) = opt_int(status(old), "collisionCount") else {
        return Vec::new();
    };
    let value = new_count.unwrap_or(0);
    if new_count.is_none() || value < old_count {
        return vec![FieldError::invalid(
            "status.collisionCount",
            value,
            "cannot be decremented",
        )];
    }
    Vec::new()
}

// === ReplicaSets ===

/// `ValidateReplicaSet` (the spec).
pub fn validate_replica_set(replica_set: &Value) -> Vec<FieldError> {
    validate_replica_set_spec(spec(replica_set), &FieldPath::new("spec"))
}

/// `ValidateReplicaSetUpdate` plus the strategy's immutable selector.
pub fn validate_replica_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_replica_set(new);
    errs.extend(validate_immutable_selector(new, old));
    errs
}

/// `ValidateReplicaSetSpec`.
pub fn validate_replica_set_spec(spec: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_nonnegative(int_at(spec, "replicas"), &path.child("replicas"));
    errs.extend(validate_nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
    ));
    // Upstream's message says "deployment" for ReplicaSets too.
    if validate_workload_selector(
        spec,
        path,
        "empty selector is invalid for deployment",
        "invalid label selector",
        &mut errs,
    ) {
        errs.extend(validate_template_for_replica_set(spec, path, "ReplicaSet"));
    }
    errs
}

/// `ValidateReplicaSetStatus` (status writes).
pub fn validate_replica_set_status(replica_set: &Value) -> Vec<FieldError> {
    let s = status(replica_set);
    let path = FieldPath::new("status");
    let mut errs = Vec::new();
    for field in [
        "replicas",
        "fullyLabeledReplicas",
        "readyReplicas",
        "availableReplicas",
        "observedGeneration",
    ] {
        errs.extend(validate_nonnegative(int_at(s, field), &path.child(field)));
    }
    errs.extend(counts_within_replicas(
        s,
        &path,
        &["fullyLabeledReplicas", "readyReplicas", "availableReplicas"],
    ));
    let available = int_at(s, "availableReplicas");
    if available > int_at(s, "readyReplicas") {
        errs.push(FieldError::invalid(
            path.child("availableReplicas"),
            available,
            "cannot be greater than readyReplicas",
        ));
    }
    errs
}

/// The template part of `ValidatePodTemplateSpecForReplicaSet` (the selector match is done by
/// [`validate_workload_selector`]): the pod template, restartPolicy Always, no active deadline.
fn validate_template_for_replica_set(spec: Option<&Value>, path: &FieldPath, kind: &str) -> Vec<FieldError> {
    let template = get(spec, "template");
    let template_path = path.child("template");
    let mut errs = validate_pod_template_spec(template, &template_path);
    let pod_spec = get(template, "spec");
    let restart_policy = str_at(pod_spec, "restartPolicy");
    if restart_policy != "Always" {
        errs.push(FieldError::not_supported(
            template_path.child("spec").child("restartPolicy"),
            restart_policy,
            &["Always"],
        ));
    }
    if get(pod_spec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            template_path.child("spec").child("activeDeadlineSeconds"),
            format!("activeDeadlineSeconds in {kind} is not Supported"),
        ));
    }
    errs
}

// === StatefulSets ===

/// `ValidateStatefulSet`: the name must be a DNS label (pods append `-<ordinal>`), then the spec.
pub fn validate_stateful_set(stateful_set: &Value) -> Vec<FieldError> {
    let name = str_at(get(Some(stateful_set), "metadata"), "name");
    let mut errs = if name.is_empty() {
        Vec::new()
    } else {
        validate_dns1123_label(name, &FieldPath::new("metadata").child("name"))
    };
    errs.extend(validate_stateful_set_spec(spec(stateful_set), &FieldPath::new("spec")));
    errs
}

/// `ValidateStatefulSetUpdate`: the spec again, and only replicas, ordinals, template,
/// updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds may change.
pub fn validate_stateful_set_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_stateful_set_spec(spec(new), &FieldPath::new("spec"));
    let mutable = [
        "replicas",
        "template",
        "updateStrategy",
        "minReadySeconds",
        "ordinals",
        "persistentVolumeClaimRetentionPolicy",
    ];
    let strip = |object: &Value| -> Value {
        let mut spec = spec(object).cloned().unwrap_or(Value::Null);
        if let Some(map) = spec.as_object_mut() {
            for field in mutable {
                map.remove(field);
            }
        }
        spec
    };
    if !semantic_eq(Some(&strip(new)), Some(&strip(old))) {
        errs.push(FieldError::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', \
             'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
    errs
}

/// `ValidateStatefulSetSpec`.
pub fn validate_stateful_set_spec(spec: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match str_at(spec, "podManagementPolicy") {
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = get(spec, "updateStrategy");
    let strategy_path = path.child("updateStrategy");
    let rolling = get(strategy, "rollingUpdate");
    match str_at(strategy, "type") {
        "" => errs.push(FieldError::required(&strategy_path, "")),
        "OnDelete" => {
            if let Some(rolling) = rolling {
                errs.push(FieldError::invalid(
                    strategy_path.child("rollingUpdate"),
                    go_rolling_update_stateful_set(rolling),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(rolling) = rolling {
                errs.extend(validate_rolling_update_stateful_set(
                    rolling,
                    &strategy_path.child("rollingUpdate"),
                ));
            }
        }
        other => {
            let rolling = match rolling {
                Some(_) => "(*apps.RollingUpdateStatefulSetStrategy)(0xc000a4e360)",
                None => "(*apps.RollingUpdateStatefulSetStrategy)(nil)",
            };
            errs.push(FieldError::invalid(
                &strategy_path,
                GoValue::Raw(format!(
                    "apps.StatefulSetUpdateStrategy{{Type:{}, RollingUpdate:{rolling}}}",
                    go_quote(other)
                )),
                "must be 'RollingUpdate' or 'OnDelete'",
            ));
        }
    }
    if let Some(policy) = get(spec, "persistentVolumeClaimRetentionPolicy") {
        let policy_path = path.child("persistentVolumeClaimRetentionPolicy");
        for field in ["whenDeleted", "whenScaled"] {
            let value = str_at(Some(policy), field);
            if !matches!(value, "Retain" | "Delete") {
                errs.push(FieldError::not_supported(
                    policy_path.child(field),
                    value,
                    &["Retain", "Delete"],
                ));
            }
        }
    }
    errs.extend(validate_nonnegative(int_at(spec, "replicas"), &path.child("replicas")));
    errs.extend(validate_nonnegative(
        int_at(spec, "minReadySeconds"),
        &path.child("minReadySeconds"),
    ));
    if let Some(ordinals) = get(spec, "ordinals") {
        errs.extend(validate_nonnegative(
            int_at(Some(ordinals), "start"),
            &path.child("ordinals.start"),
        ));
    }
    if validate_workload_selector(spec, path, "empty selector is invalid for statefulset", "", &mut errs) {
        let template = get(spec, "template");
        let template_path = path.child("template");
        let metadata = get(template, "metadata");
        errs.extend(validate_labels(
            object_at(metadata, "labels"),
            &template_path.child("labels"),
        ));
        if let Some(annotations) = object_at(metadata, "annotations") {
            errs.extend(validate_annotations_at(
                annotations,
                template_path.child("annotations").as_str(),
            ));
        }
    }
    let pod_spec = get(get(spec, "template"), "spec");
    let restart_policy = str_at(pod_spec, "restartPolicy");
    if restart_policy != "Always" {
        errs.push(FieldError::not_supported(
            path.child("template").child("spec").child("restartPolicy"),
            restart_policy,
            &["Always"],
        ));
    }
    if get(pod_spec, "activeDeadlineSeconds").is_some() {
        errs.push(FieldError::forbidden(
            path.child("template").child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in StatefulSet is not Supported",
        ));
    }
    errs
}

fn go_rolling_update_stateful_set(rolling: &Value) -> GoValue {
    let max_unavailable = if get(Some(rolling), "maxUnavailable").is_some() {
        "(*intstr.IntOrString)(0xc000a4e380)"
    } else {
        "(*intstr.IntOrString)(nil)"
    };
    GoValue::Raw(format!(
        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:{max_unavailable}}}",
        int_at(Some(rolling), "partition")
    ))
}

/// `validateRollingUpdateStatefulSet`.
fn validate_rolling_update_stateful_set(rolling: &Value, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_nonnegative(int_at(Some(rolling), "partition"), &path.child("partition"));
    if let Some(max_unavailable) = get(Some(rolling), "maxUnavailable") {
        let value = IntOrString::read(Some(max_unavailable));
        let max_path = path.child("maxUnavailable");
        errs.extend(validate_positive_int_or_percent(&value, &max_path));
        if value.int_or_percent_value() == 0 {
            errs.push(FieldError::invalid(&max_path, value.go(), "cannot be 0"));
        }
        errs.extend(is_not_more_than_100_percent(&value, &max_path));
    }
    errs
}

/// `ValidateStatefulSetStatusUpdate`.
pub fn validate_stateful_set_status_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let s = status(new);
    let path = FieldPath::new("status");
    let mut errs = Vec::new();
    for field in [
        "replicas",
        "readyReplicas",
        "currentReplicas",
        "updatedReplicas",
        "availableReplicas",
    ] {
        errs.extend(validate_nonnegative(int_at(s, field), &path.child(field)));
    }
    for field in ["observedGeneration", "collisionCount"] {
        if let Some(value) = opt_int(s, field) {
            errs.extend(validate_nonnegative(value, &path.child(field)));
        }
    }
    errs.extend(counts_within_replicas(
        s,
        &path,
        &[
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
        ],
    ));
    let available = int_at(s, "availableReplicas");
    if available > int_at(s, "readyReplicas") {
        errs.push(FieldError::invalid(
            path.child("availableReplicas"),
            available,
            "cannot be greater than status.readyReplicas",
        ));
    }
    errs.extend(validate_collision_count_not_decremented(new, old));
    errs
}

// === pod templates and pod specs ===

/// `ValidatePodTemplateSpec`: labels (at `<path>.labels`, as upstream reports them),
/// annotations, the pod spec, and no ephemeral containers.
pub fn validate_pod_template_spec(template: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let metadata = get(template, "metadata");
    let mut errs = validate_labels(object_at(metadata, "labels"), &path.child("labels"));
    if let Some(annotations) = object_at(metadata, "annotations") {
        errs.extend(validate_annotations_at(annotations, path.child("annotations").as_str()));
    }
    let pod_spec = get(template, "spec");
    errs.extend(validate_pod_spec(pod_spec, &path.child("spec")));
    if !items(pod_spec, "ephemeralContainers").is_empty() {
        errs.push(FieldError::forbidden(
            path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The checks of `ValidatePodSpec` that matter for the pods svcnet runs, in upstream's order.
pub fn validate_pod_spec(spec: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if get(spec, "terminationGracePeriodSeconds").is_none() {
        errs.push(FieldError::required(path.child("terminationGracePeriodSeconds"), ""));
    }
    let volumes = validate_volumes(items(spec, "volumes"), &path.child("volumes"), &mut errs);
    let mut names = HashSet::new();
    errs.extend(validate_containers(
        items(spec, "containers"),
        &volumes,
        &mut names,
        &path.child("containers"),
    ));
    errs.extend(validate_init_containers(
        items(spec, "initContainers"),
        &volumes,
        &mut names,
        &path.child("initContainers"),
    ));
    match str_at(spec, "restartPolicy") {
        "Always" | "OnFailure" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("restartPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("restartPolicy"),
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dns_policy = str_at(spec, "dnsPolicy");
    match dns_policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => {}
        "" => errs.push(FieldError::required(path.child("dnsPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("dnsPolicy"),
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    errs.extend(validate_labels(
        object_at(spec, "nodeSelector"),
        &path.child("nodeSelector"),
    ));
    if dns_policy == "None" && get(spec, "dnsConfig").is_none() {
        errs.push(FieldError::required(
            path.child("dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    // ValidateServiceAccountName and ValidateNodeName are both NameIsDNSSubdomain.
    for field in ["serviceAccountName", "nodeName"] {
        let value = str_at(spec, field);
        if !value.is_empty() {
            for msg in is_dns1123_subdomain(value) {
                errs.push(FieldError::invalid(path.child(field), value, msg));
            }
        }
    }
    if let Some(deadline) = opt_int(spec, "activeDeadlineSeconds") {
        if !(1..=i64::from(i32::MAX)).contains(&deadline) {
            errs.push(FieldError::invalid(
                path.child("activeDeadlineSeconds"),
                deadline,
                "must be between 1 and 2147483647, inclusive",
            ));
        }
    }
    for field in ["hostname", "subdomain"] {
        let value = str_at(spec, field);
        if !value.is_empty() {
            errs.extend(validate_dns1123_label(value, &path.child(field)));
        }
    }
    errs.extend(validate_tolerations(
        items(spec, "tolerations"),
        &path.child("tolerations"),
    ));
    errs
}

/// `ValidateVolumes`: returns the names of the valid volumes.
fn validate_volumes<'a>(volumes: &'a [Value], path: &FieldPath, errs: &mut Vec<FieldError>) -> HashSet<&'a str> {
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let volume_path = path.index(i);
        let mut volume_errs = Vec::new();
        let mut sources = 0;
        for source in VOLUME_SOURCES {
            if get(Some(volume), source).is_some() {
                if sources > 0 {
                    volume_errs.push(FieldError::forbidden(
                        volume_path.child(source),
                        "may not specify more than 1 volume type",
                    ));
                } else {
                    sources += 1;
                }
            }
        }
        if sources == 0 {
            volume_errs.push(FieldError::required(&volume_path, "must specify a volume type"));
        }
        let name = str_at(Some(volume), "name");
        let name_path = volume_path.child("name");
        if name.is_empty() {
            volume_errs.push(FieldError::required(&name_path, ""));
        } else {
            volume_errs.extend(validate_dns1123_label(name, &name_path));
        }
        if names.contains(name) {
            volume_errs.push(FieldError::duplicate(&name_path, name));
        }
        if volume_errs.is_empty() {
            names.insert(name);
        } else {
            errs.extend(volume_errs);
        }
    }
    names
}

/// `validateContainers`: at least one, common checks, unique names, probes and lifecycle.
fn validate_containers<'a>(
    containers: &'a [Value],
    volumes: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
    path: &FieldPath,
) -> Vec<FieldError> {
    if containers.is_empty() {
        return vec![FieldError::required(path, "")];
    }
    let mut errs = Vec::new();
    for (i, container) in containers.iter().enumerate() {
        let c = Some(container);
        let container_path = path.index(i);
        errs.extend(validate_container_common(container, volumes, &container_path));
        let name = str_at(c, "name");
        if !names.insert(name) {
            errs.push(FieldError::duplicate(container_path.child("name"), name));
        }
        if let Some(lifecycle) = get(c, "lifecycle") {
            for hook in ["postStart", "preStop"] {
                if let Some(handler) = get(Some(lifecycle), hook) {
                    errs.extend(validate_handler(
                        handler,
                        &["exec", "httpGet", "tcpSocket", "sleep"],
                        &container_path.child("lifecycle").child(hook),
                    ));
                }
            }
        }
        for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(p) = get(c, probe) {
                let probe_path = container_path.child(probe);
                errs.extend(validate_probe(p, &probe_path));
                let success = int_at(Some(p), "successThreshold");
                if probe != "readinessProbe" && success != 1 {
                    errs.push(FieldError::invalid(
                        probe_path.child("successThreshold"),
                        success,
                        "must be 1",
                    ));
                }
                if let (true, Some(grace)) = (
                    probe == "readinessProbe",
                    opt_int(Some(p), "terminationGracePeriodSeconds"),
                ) {
                    errs.push(FieldError::invalid(
                        probe_path.child("terminationGracePeriodSeconds"),
                        grace,
                        "must not be set for readinessProbes",
                    ));
                }
            }
        }
        if get(c, "restartPolicy").is_some() {
            errs.push(FieldError::forbidden(
                container_path.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs
}

/// `validateInitContainers`: common checks, names unique across all containers, and the
/// sidecar rule (restartPolicy Always is the only one allowed, and only sidecars take probes
/// and lifecycle hooks).
fn validate_init_containers<'a>(
    containers: &'a [Value],
    volumes: &HashSet<&str>,
    names: &mut HashSet<&'a str>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, container) in containers.iter().enumerate() {
        let c = Some(container);
        let container_path = path.index(i);
        errs.extend(validate_container_common(container, volumes, &container_path));
        let name = str_at(c, "name");
        if !names.insert(name) {
            errs.push(FieldError::duplicate(container_path.child("name"), name));
        }
        let sidecar = match get(c, "restartPolicy") {
            None => false,
            Some(policy) if policy.as_str() == Some("Always") => true,
            Some(policy) => {
                errs.push(FieldError::not_supported(
                    container_path.child("restartPolicy"),
                    policy.as_str().unwrap_or(""),
                    &["Always"],
                ));
                false
            }
        };
        if !sidecar {
            for field in ["lifecycle", "livenessProbe", "readinessProbe", "startupProbe"] {
                if get(c, field).is_some() {
                    errs.push(FieldError::forbidden(
                        container_path.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    errs
}

/// `validateContainerCommon`: name, image, termination message policy, ports, env, volume
/// mounts, pull policy.
fn validate_container_common(container: &Value, volumes: &HashSet<&str>, path: &FieldPath) -> Vec<FieldError> {
    let c = Some(container);
    let mut errs = Vec::new();
    let name = str_at(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        errs.extend(validate_dns1123_label(name, &path.child("name")));
    }
    if str_at(c, "image").is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    }
    match str_at(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(FieldError::required(path.child("terminationMessagePolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("terminationMessagePolicy"),
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    errs.extend(validate_container_ports(items(c, "ports"), &path.child("ports")));
    errs.extend(validate_env(items(c, "env"), &path.child("env")));
    errs.extend(validate_volume_mounts(
        items(c, "volumeMounts"),
        volumes,
        &path.child("volumeMounts"),
    ));
    match str_at(c, "imagePullPolicy") {
        "Always" | "IfNotPresent" | "Never" => {}
        "" => errs.push(FieldError::required(path.child("imagePullPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("imagePullPolicy"),
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    errs
}

/// `validateContainerPorts`.
fn validate_container_ports(ports: &[Value], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = Some(port);
        let port_path = path.index(i);
        let name = str_at(p, "name");
        if !name.is_empty() {
            let msgs = is_valid_port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(port_path.child("name"), name, msg));
                }
            } else if !names.insert(name) {
                errs.push(FieldError::duplicate(port_path.child("name"), name));
            }
        }
        let container_port = int_at(p, "containerPort");
        if container_port == 0 {
            errs.push(FieldError::required(port_path.child("containerPort"), ""));
        } else if !(1..=65535).contains(&container_port) {
            errs.push(FieldError::invalid(
                port_path.child("containerPort"),
                container_port,
                PORT_RANGE_ERROR,
            ));
        }
        let host_port = int_at(p, "hostPort");
        if host_port != 0 && !(1..=65535).contains(&host_port) {
            errs.push(FieldError::invalid(
                port_path.child("hostPort"),
                host_port,
                PORT_RANGE_ERROR,
            ));
        }
        match str_at(p, "protocol") {
            "" => errs.push(FieldError::required(port_path.child("protocol"), "")),
            "SCTP" | "TCP" | "UDP" => {}
            other => errs.push(FieldError::not_supported(
                port_path.child("protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
    }
    errs
}

/// `ValidateEnv` with relaxed names (the v1.33 default): printable ASCII without `=`.
fn validate_env(vars: &[Value], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, var) in vars.iter().enumerate() {
        let name_path = path.index(i).child("name");
        let name = str_at(Some(var), "name");
        if name.is_empty() {
            errs.push(FieldError::required(&name_path, ""));
            errs.push(FieldError::invalid(
                &name_path,
                name,
                "environment variable name must be non-empty",
            ));
        } else if name.chars().any(|c| !(' '..='~').contains(&c) || c == '=') {
            errs.push(FieldError::invalid(&name_path, name, RELAXED_ENV_VAR_NAME_ERROR));
        }
    }
    errs
}

/// `ValidateVolumeMounts`: a name naming a volume, a unique mount path.
fn validate_volume_mounts(mounts: &[Value], volumes: &HashSet<&str>, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points = HashSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let m = Some(mount);
        let mount_path = path.index(i);
        let name = str_at(m, "name");
        if name.is_empty() {
            errs.push(FieldError::required(mount_path.child("name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(mount_path.child("name"), name));
        }
        let point = str_at(m, "mountPath");
        if point.is_empty() {
            errs.push(FieldError::required(mount_path.child("mountPath"), ""));
        }
        if !mount_points.insert(point) {
            errs.push(FieldError::invalid(
                mount_path.child("mountPath"),
                point,
                "must be unique",
            ));
        }
    }
    errs
}

/// `validateProbe`: one handler and non-negative numbers.
fn validate_probe(probe: &Value, path: &FieldPath) -> Vec<FieldError> {
    let p = Some(probe);
    let mut errs = validate_handler(probe, &["exec", "httpGet", "tcpSocket", "grpc"], path);
    for field in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        errs.extend(validate_nonnegative(int_at(p, field), &path.child(field)));
    }
    if let Some(grace) = opt_int(p, "terminationGracePeriodSeconds") {
        if grace <= 0 {
            errs.push(FieldError::invalid(
                path.child("terminationGracePeriodSeconds"),
                grace,
                "must be greater than 0",
            ));
        }
    }
    errs
}

/// `validateHandler`: exactly one of the handler types, each well formed.
fn validate_handler(handler: &Value, kinds: &[&str], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for kind in kinds {
        let Some(action) = get(Some(handler), kind) else {
            continue;
        };
        let action_path = path.child(kind);
        if count > 0 {
            errs.push(FieldError::forbidden(
                action_path,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        count += 1;
        let a = Some(action);
        match *kind {
            "exec" if items(a, "command").is_empty() => {
                errs.push(FieldError::required(action_path.child("command"), ""));
            }
            "httpGet" => {
                if str_at(a, "path").is_empty() {
                    errs.push(FieldError::required(action_path.child("path"), ""));
                }
                errs.extend(validate_port_num_or_name(get(a, "port"), &action_path.child("port")));
                let scheme = str_at(a, "scheme");
                if !matches!(scheme, "HTTP" | "HTTPS") {
                    errs.push(FieldError::not_supported(
                        action_path.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => errs.extend(validate_port_num_or_name(get(a, "port"), &action_path.child("port"))),
            "grpc" => {
                let port = int_at(a, "port");
                if !(1..=65535).contains(&port) {
                    errs.push(FieldError::invalid(action_path.child("port"), port, PORT_RANGE_ERROR));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
    errs
}

/// `ValidatePortNumOrName`.
fn validate_port_num_or_name(port: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    match IntOrString::read(port) {
        IntOrString::Int(n) if !(1..=65535).contains(&n) => vec![FieldError::invalid(path, n, PORT_RANGE_ERROR)],
        IntOrString::Int(_) => Vec::new(),
        IntOrString::Str(name) => is_valid_port_name(&name)
            .into_iter()
            .map(|msg| FieldError::invalid(path, name.as_str(), msg))
            .collect(),
    }
}

/// `ValidateTolerations`.
fn validate_tolerations(tolerations: &[Value], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, toleration) in tolerations.iter().enumerate() {
        let t = Some(toleration);
        let toleration_path = path.index(i);
        let key = str_at(t, "key");
        let operator = str_at(t, "operator");
        let effect = str_at(t, "effect");
        let value = str_at(t, "value");
        if !key.is_empty() {
            errs.extend(validate_label_name(key, &toleration_path.child("key")));
        }
        if key.is_empty() && operator != "Exists" {
            errs.push(FieldError::invalid(
                toleration_path.child("operator"),
                operator,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if get(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                toleration_path.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match operator {
            "Equal" | "" => {
                let msgs = validate_label_value(value);
                if !msgs.is_empty() {
                    errs.push(FieldError::invalid(
                        toleration_path.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    let seconds = match opt_int(t, "tolerationSeconds") {
                        Some(_) => "(*int64)(0xc000a4e3a0)",
                        None => "(*int64)(nil)",
                    };
                    errs.push(FieldError::invalid(
                        toleration_path.child("operator"),
                        GoValue::Raw(format!(
                            "core.Toleration{{Key:{}, Operator:{}, Value:{}, Effect:{}, TolerationSeconds:{seconds}}}",
                            go_quote(key),
                            go_quote(operator),
                            go_quote(value),
                            go_quote(effect)
                        )),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                toleration_path.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            errs.push(FieldError::not_supported(
                toleration_path.child("effect"),
                effect,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            ));
        }
    }
    errs
}
