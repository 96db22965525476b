//! Workload validation against the messages the v1.33 API server returns.

use serde_json::{json, Value};

use super::defaults::apply_defaults;
use super::validation::validate;

/// What `kubectl create deployment web --image=nginx --replicas=3 --port=80` sends, after
/// `tweak`, defaulted as the API server would.
fn deployment(tweak: impl FnOnce(&mut Value)) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
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
    tweak(&mut d);
    apply_defaults("Deployment", &mut d);
    d
}

fn stateful_set(tweak: impl FnOnce(&mut Value)) -> Value {
    let mut s = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db",
            "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "db", "image": "clickhouse:24"}]}
            }
        }
    });
    tweak(&mut s);
    apply_defaults("StatefulSet", &mut s);
    s
}

/// The errors as kubectl prints them (`field: body`).
fn messages(kind: &str, object: &Value, old: Option<&Value>) -> Vec<String> {
    validate(kind, object, old, false)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn valid_workloads_pass() {
    assert_eq!(messages("Deployment", &deployment(|_| {}), None), Vec::<String>::new());
    assert_eq!(
        messages("StatefulSet", &stateful_set(|_| {}), None),
        Vec::<String>::new()
    );
    let mut rs = deployment(|_| {});
    rs["kind"] = json!("ReplicaSet");
    assert_eq!(messages("ReplicaSet", &rs, None), Vec::<String>::new());
}

#[test]
fn missing_selector_is_required_and_does_not_match() {
    // A missing selector decodes to `{}` (see the module comment).
    let d = deployment(|d| d["spec"]["selector"] = json!({}));
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`",
        ]
    );
    let causes = validate("Deployment", &d, None, false);
    assert_eq!(causes[0].kind.reason(), "FieldValueRequired");
    assert_eq!(causes[1].field, "spec.template.metadata.labels");
}

#[test]
fn selector_must_match_template_labels() {
    let d = deployment(|d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "x", "tier": "a"}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\", \"tier\":\"a\"}: `selector` does not match template `labels`"]
    );
    let d = deployment(|d| d["spec"]["selector"] = json!({"matchLabels": {}}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]
    );
    let d = deployment(|d| {
        d["spec"]["selector"] = json!({"matchExpressions": [{"key": "app", "operator": "Foo", "values": ["web"]}]})
    });
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.selector.matchExpressions[0].operator: Invalid value: \"Foo\": not a valid selector operator",
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:\"app\", Operator:\"Foo\", Values:[]string{\"web\"}}}}: invalid label selector",
        ]
    );
}

#[test]
fn template_containers() {
    let d = deployment(|d| d["spec"]["template"]["spec"]["containers"] = json!([]));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.template.spec.containers: Required value"]
    );
    let d = deployment(|d| {
        d["spec"]["template"]["spec"]["containers"] = json!([{"name": "", "image": "a"}, {"name": "Web"}, {"name": "a", "image": "b"}, {"name": "a", "image": "c"}])
    });
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.template.spec.containers[0].name: Required value",
            "spec.template.spec.containers[1].name: Invalid value: \"Web\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            "spec.template.spec.containers[1].image: Required value",
            "spec.template.spec.containers[3].name: Duplicate value: \"a\"",
        ]
    );
    let d = deployment(|d| {
        let c = &mut d["spec"]["template"]["spec"]["containers"][0];
        c["ports"] =
            json!([{"containerPort": 70000, "protocol": "ICMP", "name": "web"}, {"containerPort": 81, "name": "web"}]);
        c["imagePullPolicy"] = json!("Sometimes");
        c["env"] = json!([{"name": "A=B"}]);
        c["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
        c["readinessProbe"] = json!({"periodSeconds": 5});
        c["livenessProbe"] = json!({"tcpSocket": {"port": 80}, "successThreshold": 2});
    });
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.template.spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            "spec.template.spec.containers[0].ports[1].name: Duplicate value: \"web\"",
            "spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
            "spec.template.spec.containers[0].volumeMounts[0].name: Not found: \"data\"",
            "spec.template.spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
            "spec.template.spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.template.spec.containers[0].readinessProbe: Required value: must specify a handler type",
        ]
    );
}

#[test]
fn workload_pod_rules() {
    let d = deployment(|d| {
        d["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        d["spec"]["template"]["spec"]["activeDeadlineSeconds"] = json!(10);
        d["spec"]["template"]["spec"]["dnsPolicy"] = json!("Bogus");
    });
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.template.spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported",
        ]
    );
    let d = deployment(|d| d["spec"]["template"]["metadata"]["labels"]["bad key"] = json!("v"));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.template.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]
    );
}

#[test]
fn replicas_and_strategy() {
    let d = deployment(|d| {
        d["spec"]["replicas"] = json!(-1);
        d["spec"]["minReadySeconds"] = json!(700);
    });
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            "spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds",
        ]
    );
    let d = deployment(|d| d["spec"]["strategy"] = json!({"type": "Foo"}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Foo\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""]
    );
    let d = deployment(|d| d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]
    );
    let d = deployment(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"0%\"}: may not be 0 when `maxSurge` is 0"]
    );
    let d =
        deployment(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": "x", "maxUnavailable": "150%"}}));
    assert_eq!(
        messages("Deployment", &d, None),
        [
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"x\"}: a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%",
        ]
    );
    let d = deployment(|d| d["spec"]["strategy"] = json!({"rollingUpdate": {"maxSurge": -1}}));
    assert_eq!(
        messages("Deployment", &d, None),
        ["spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"]
    );
}

#[test]
fn selector_is_immutable() {
    let old = deployment(|_| {});
    let new = deployment(|d| {
        d["spec"]["selector"] = json!({"matchLabels": {"app": "web", "v": "2"}});
        d["spec"]["template"]["metadata"]["labels"]["v"] = json!("2");
    });
    assert_eq!(
        messages("Deployment", &new, Some(&old)),
        ["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\", \"v\":\"2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]
    );
    let scaled = deployment(|d| d["spec"]["replicas"] = json!(5));
    assert!(messages("Deployment", &scaled, Some(&old)).is_empty());
}

#[test]
fn status_writes() {
    let mut d = deployment(|_| {});
    d["status"] = json!({"replicas": 2, "readyReplicas": 3, "availableReplicas": 3, "collisionCount": 0});
    let mut old = d.clone();
    old["status"]["collisionCount"] = json!(1);
    let errs: Vec<String> = validate("Deployment", &d, Some(&old), true)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errs,
        [
            "status.readyReplicas: Invalid value: 3: cannot be greater than status.replicas",
            "status.availableReplicas: Invalid value: 3: cannot be greater than status.replicas",
            "status.collisionCount: Invalid value: 0: cannot be decremented",
        ]
    );
}

#[test]
fn stateful_set_rules() {
    let s = stateful_set(|s| {
        s["metadata"]["name"] = json!("db.x");
        s["spec"]["podManagementPolicy"] = json!("Random");
        s["spec"]["updateStrategy"] = json!({"type": "OnDelete", "rollingUpdate": {"partition": 2}});
        s["spec"]["selector"] = json!({});
        s["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        // Not validated for StatefulSets (their pods are).
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("");
    });
    assert_eq!(
        messages("StatefulSet", &s, None),
        [
            "metadata.name: Invalid value: \"db.x\": must not contain dots",
            "spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'",
            "spec.updateStrategy.rollingUpdate: Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:2, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'",
            "spec.selector: Required value",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`",
            "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
        ]
    );
    let s = stateful_set(|s| {
        s["spec"]["updateStrategy"] = json!({"type": "Sometimes"});
        s["spec"]["replicas"] = json!(-2);
        s["spec"]["selector"] = json!({"matchLabels": {"app": "other"}});
    });
    assert_eq!(
        messages("StatefulSet", &s, None),
        [
            "spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:\"Sometimes\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'",
            "spec.replicas: Invalid value: -2: must be greater than or equal to 0",
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`",
        ]
    );
}

#[test]
fn stateful_set_updates() {
    let old = stateful_set(|_| {});
    let new = stateful_set(|s| {
        s["spec"]["replicas"] = json!(5);
        s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("clickhouse:25");
        s["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
    });
    assert!(messages("StatefulSet", &new, Some(&old)).is_empty());
    let new = stateful_set(|s| s["spec"]["serviceName"] = json!("other"));
    assert_eq!(
        messages("StatefulSet", &new, Some(&old)),
        ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
    );
}
