//! Workload defaulting as upstream's apps/v1 and core/v1 `SetDefaults_*` functions apply it to a
//! decoded object before validation: Deployments, ReplicaSets and StatefulSets, the pod templates
//! inside them, and Pods (`SetDefaults_Pod` on top of the pod spec defaults).
//!
//! A Go string field counts as unset when it is empty, a pointer when it is absent or null, and a
//! probe's numbers when they are zero, exactly as upstream tests them.

use serde_json::{json, Map, Value};

/// `v1.DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `v1.DefaultSchedulerName`.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `v1.TerminationMessagePathDefault`.
pub const TERMINATION_MESSAGE_PATH_DEFAULT: &str = "/dev/termination-log";
/// Mode of secret, configMap, downwardAPI and projected volumes (0644).
pub const DEFAULT_VOLUME_MODE: i64 = 0o644;

/// The volume source fields of `v1.VolumeSource`, in the order upstream's `validateVolumeSource`
/// checks them.
pub const VOLUME_SOURCES: &[&str] = &[
    "emptyDir",
    "hostPath",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "cinder",
    "cephfs",
    "quobyte",
    "downwardAPI",
    "fc",
    "flexVolume",
    "configMap",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "storageos",
    "projected",
    "scaleIO",
    "csi",
    "ephemeral",
    "image",
];

/// Applies the defaults of `kind` in place; other kinds are left alone.
pub fn apply_defaults(kind: &str, object: &mut Value) {
    match kind {
        "Deployment" => default_deployment(object),
        "ReplicaSet" => default_replica_set(object),
        "StatefulSet" => default_stateful_set(object),
        "Pod" => default_pod(object),
        _ => {}
    }
}

// === helpers ===

/// The object under `key`, created when absent or null. None when the value is not an object
/// (decoding rejects that before defaulting runs).
fn child<'a>(map: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

/// Sets a pointer-like field when absent or null.
fn default_value(map: &mut Map<String, Value>, key: &str, value: Value) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() {
        *entry = value;
    }
}

/// Sets a string field when absent, null or empty.
fn default_str(map: &mut Map<String, Value>, key: &str, value: &str) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() || entry.as_str() == Some("") {
        *entry = Value::from(value);
    }
}

/// Sets a number field when absent, null or zero.
fn default_nonzero(map: &mut Map<String, Value>, key: &str, value: i64) {
    let entry = map.entry(key).or_insert(Value::Null);
    if entry.is_null() || entry.as_i64() == Some(0) {
        *entry = Value::from(value);
    }
}

fn str_of<'a>(map: &'a Map<String, Value>, key: &str) -> &'a str {
    map.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Each object in the array under `key`.
fn each_item(map: &mut Map<String, Value>, key: &str, mut f: impl FnMut(&mut Map<String, Value>)) {
    if let Some(items) = map.get_mut(key).and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            f(item);
        }
    }
}

// === apps/v1 ===

/// `SetDefaults_Deployment`: one replica, RollingUpdate with 25 % / 25 %, ten old ReplicaSets
/// kept, a 600 s progress deadline.
pub fn default_deployment(deployment: &mut Value) {
    let Some(spec) = deployment.as_object_mut().and_then(|d| child(d, "spec")) else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(strategy) = child(spec, "strategy") {
        default_str(strategy, "type", "RollingUpdate");
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = child(strategy, "rollingUpdate") {
                default_value(rolling, "maxUnavailable", json!("25%"));
                default_value(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    default_value(spec, "revisionHistoryLimit", json!(10));
    default_value(spec, "progressDeadlineSeconds", json!(600));
    if let Some(template) = child(spec, "template") {
        default_pod_template(template);
    }
}

/// `SetDefaults_ReplicaSet`: one replica.
pub fn default_replica_set(replica_set: &mut Value) {
    let Some(spec) = replica_set.as_object_mut().and_then(|r| child(r, "spec")) else {
        return;
    };
    default_value(spec, "replicas", json!(1));
    if let Some(template) = child(spec, "template") {
        default_pod_template(template);
    }
}

/// `SetDefaults_StatefulSet`: OrderedReady, RollingUpdate with partition 0, Retain/Retain claim
/// retention, one replica, ten revisions; claim templates default as PersistentVolumeClaims.
pub fn default_stateful_set(stateful_set: &mut Value) {
    let Some(spec) = stateful_set.as_object_mut().and_then(|s| child(s, "spec")) else {
        return;
    };
    default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(strategy) = child(spec, "updateStrategy") {
        if matches!(strategy.get("type"), None | Some(Value::Null)) || str_of(strategy, "type").is_empty() {
            strategy.insert("type".into(), json!("RollingUpdate"));
            default_value(strategy, "rollingUpdate", json!({}));
        }
        if str_of(strategy, "type") == "RollingUpdate" {
            if let Some(rolling) = strategy.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
                default_value(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(policy) = child(spec, "persistentVolumeClaimRetentionPolicy") {
        default_str(policy, "whenDeleted", "Retain");
        default_str(policy, "whenScaled", "Retain");
    }
    default_value(spec, "replicas", json!(1));
    default_value(spec, "revisionHistoryLimit", json!(10));
    if let Some(template) = child(spec, "template") {
        default_pod_template(template);
    }
    each_item(spec, "volumeClaimTemplates", |claim| {
        if let Some(claim_spec) = child(claim, "spec") {
            default_value(claim_spec, "volumeMode", json!("Filesystem"));
        }
        if let Some(status) = child(claim, "status") {
            default_str(status, "phase", "Pending");
        }
    });
}

// === core/v1 ===

/// Defaults of a `PodTemplateSpec` (its pod spec).
pub fn default_pod_template(template: &mut Map<String, Value>) {
    if let Some(spec) = child(template, "spec") {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_Pod` after the pod spec defaults: requests from limits, service links on,
/// host ports for host-network pods; plus what the Priority admission plugin sets when no
/// PriorityClass applies (priority 0, PreemptLowerPriority).
pub fn default_pod(pod: &mut Value) {
    let Some(spec) = pod.as_object_mut().and_then(|p| child(p, "spec")) else {
        return;
    };
    default_pod_spec(spec);
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool).unwrap_or(false);
    for list in ["containers", "initContainers"] {
        each_item(spec, list, |container| {
            default_requests_from_limits(container);
            if host_network {
                default_host_network_ports(container);
            }
        });
    }
    default_value(spec, "enableServiceLinks", json!(true));
    if str_of(spec, "priorityClassName").is_empty() {
        default_value(spec, "priority", json!(0));
    }
    default_value(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
}

/// `SetDefaults_PodSpec` and the defaults of everything inside it (containers, probes,
/// volumes, ports).
pub fn default_pod_spec(spec: &mut Map<String, Value>) {
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default_value(spec, "securityContext", json!({}));
    default_value(
        spec,
        "terminationGracePeriodSeconds",
        json!(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS),
    );
    default_str(spec, "schedulerName", DEFAULT_SCHEDULER_NAME);
    each_item(spec, "containers", default_container);
    each_item(spec, "initContainers", default_container);
    each_item(spec, "volumes", default_volume);
}

/// `SetDefaults_Container` with its ports, env, probes and lifecycle handlers.
pub fn default_container(container: &mut Map<String, Value>) {
    if str_of(container, "imagePullPolicy").is_empty() {
        let policy = default_pull_policy(str_of(container, "image"));
        container.insert("imagePullPolicy".into(), json!(policy));
    }
    default_str(container, "terminationMessagePath", TERMINATION_MESSAGE_PATH_DEFAULT);
    default_str(container, "terminationMessagePolicy", "File");
    each_item(container, "ports", |port| default_str(port, "protocol", "TCP"));
    each_item(container, "env", |env| {
        if let Some(field_ref) = env
            .get_mut("valueFrom")
            .and_then(Value::as_object_mut)
            .and_then(|from| from.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            default_str(field_ref, "apiVersion", "v1");
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = container.get_mut(probe).and_then(Value::as_object_mut) {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = container.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = lifecycle.get_mut(hook).and_then(Value::as_object_mut) {
                default_http_get(handler);
            }
        }
    }
}

/// `IfNotPresent`, or `Always` when the image names no tag or the tag `latest`
/// (upstream parses the reference; a digest-only reference has no tag and is not `latest`).
pub fn default_pull_policy(image: &str) -> &'static str {
    match image_tag(image) {
        Some("latest") => "Always",
        _ => "IfNotPresent",
    }
}

/// The tag `ParseImageName` reports: the explicit tag, `latest` when there is neither tag nor
/// digest, nothing for a digest-only or unparsable reference.
fn image_tag(image: &str) -> Option<&str> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // The path after the registry host must be lowercase.
    let path = match repository.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => rest,
        _ => repository,
    };
    if path.is_empty() || path.chars().any(|c| c.is_ascii_uppercase()) || tag == Some("") {
        return None;
    }
    match (tag, digest) {
        (Some(tag), _) => Some(tag),
        (None, Some(_)) => None,
        (None, None) => Some("latest"),
    }
}

/// `SetDefaults_Probe` and its handler.
fn default_probe(probe: &mut Map<String, Value>) {
    default_nonzero(probe, "timeoutSeconds", 1);
    default_nonzero(probe, "periodSeconds", 10);
    default_nonzero(probe, "successThreshold", 1);
    default_nonzero(probe, "failureThreshold", 3);
    default_http_get(probe);
}

/// `SetDefaults_HTTPGetAction`: path `/`, scheme HTTP.
fn default_http_get(handler: &mut Map<String, Value>) {
    if let Some(http) = handler.get_mut("httpGet").and_then(Value::as_object_mut) {
        default_str(http, "path", "/");
        default_str(http, "scheme", "HTTP");
    }
}

/// `SetDefaults_Volume` (an empty source becomes emptyDir) and the per-source defaults.
fn default_volume(volume: &mut Map<String, Value>) {
    let has_source = VOLUME_SOURCES
        .iter()
        .any(|source| volume.get(*source).is_some_and(|v| !v.is_null()));
    if !has_source {
        volume.insert("emptyDir".into(), json!({}));
    }
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = volume.get_mut(source).and_then(Value::as_object_mut) {
            default_value(source, "defaultMode", json!(DEFAULT_VOLUME_MODE));
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").and_then(Value::as_object_mut) {
        default_value(host_path, "type", json!(""));
    }
}

/// Requests default to limits for every resource that has a limit but no request (pods only).
fn default_requests_from_limits(container: &mut Map<String, Value>) {
    let Some(resources) = container.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    let Some(requests) = child(resources, "requests") else {
        return;
    };
    for (name, quantity) in limits {
        requests.entry(name).or_insert(quantity);
    }
}

/// Host-network pods listen on their container ports on the node.
fn default_host_network_ports(container: &mut Map<String, Value>) {
    each_item(container, "ports", |port| {
        let host_port = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
        if host_port == 0 {
            if let Some(container_port) = port.get("containerPort").cloned() {
                port.insert("hostPort".into(), container_port);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployment_defaults_match_kubectl_create_deployment() {
        let mut d = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}], "resources": {}}]}
                },
                "strategy": {}
            }
        });
        default_deployment(&mut d);
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 3);
        assert_eq!(
            spec["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(spec["progressDeadlineSeconds"], 600);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        assert_eq!(pod["schedulerName"], "default-scheduler");
        assert_eq!(pod["securityContext"], json!({}));
        assert!(
            pod.get("enableServiceLinks").is_none(),
            "a Pod default, not a template one"
        );
        let c = &pod["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
    }

    #[test]
    fn recreate_gets_no_rolling_update_and_explicit_values_stay() {
        let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "revisionHistoryLimit": 0}});
        default_deployment(&mut d);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
        assert_eq!(d["spec"]["replicas"], 0);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 0);
        let mut d = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1}}}});
        default_deployment(&mut d);
        assert_eq!(
            d["spec"]["strategy"]["rollingUpdate"],
            json!({"maxSurge": 1, "maxUnavailable": "25%"})
        );
        assert_eq!(d["spec"]["replicas"], 1);
    }

    #[test]
    fn stateful_set_defaults() {
        let mut s = json!({"spec": {"serviceName": "db", "template": {"spec": {"containers": [{"name": "c", "image": "x:1"}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
        default_stateful_set(&mut s);
        let spec = &s["spec"];
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert_eq!(spec["volumeClaimTemplates"][0]["spec"]["volumeMode"], "Filesystem");
        assert_eq!(spec["volumeClaimTemplates"][0]["status"]["phase"], "Pending");

        let mut s = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        default_stateful_set(&mut s);
        assert_eq!(s["spec"]["updateStrategy"], json!({"type": "OnDelete"}));
    }

    #[test]
    fn pod_defaults() {
        let mut p = json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "registry.local:5000/app",
            "ports": [{"containerPort": 8080}],
            "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Gi"}},
            "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 0}}],
            "volumes": [{"name": "a"}, {"name": "b", "secret": {"secretName": "s"}}]}});
        default_pod(&mut p);
        let spec = &p["spec"];
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "Always");
        assert_eq!(c["ports"][0]["hostPort"], 8080);
        assert_eq!(c["resources"]["requests"], json!({"memory": "1Gi", "cpu": "1"}));
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "periodSeconds": 10,
                "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(default_pull_policy("localhost:5000/nginx:2"), "IfNotPresent");
        assert_eq!(
            default_pull_policy("nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy(""), "IfNotPresent");
        assert_eq!(default_pull_policy("Nginx"), "IfNotPresent");
    }
}
