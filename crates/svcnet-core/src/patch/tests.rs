//! Behaviour of the public patch functions, including the exact patches kubectl sends.

use serde_json::{json, Value};

use super::*;

fn smp(original: Value, patch: Value, kind: &str) -> Value {
    let patched = apply_strategic_merge_patch(&original, &patch, kind).unwrap();
    assert_no_directives(&patched, "");
    patched
}

fn smp_err(original: Value, patch: Value, kind: &str) -> PatchError {
    apply_strategic_merge_patch(&original, &patch, kind).unwrap_err()
}

/// Fails if any key starting with `$` is left anywhere in the value.
fn assert_no_directives(value: &Value, path: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                assert!(!key.starts_with('$'), "directive {key} stored at {path}");
                assert_no_directives(child, &format!("{path}.{key}"));
            }
        }
        Value::Array(items) => items
            .iter()
            .for_each(|item| assert_no_directives(item, &format!("{path}[]"))),
        _ => {}
    }
}

fn ports(object: &Value) -> Vec<i64> {
    object["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["port"].as_i64().unwrap())
        .collect()
}

/// The Service as created by the first `kubectl apply -f svc.yaml` in the reference logs.
fn web_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"v\":1}\n"},
            "labels": {"app": "web"},
            "name": "web",
            "namespace": "default",
            "resourceVersion": "109"
        },
        "spec": {
            "clusterIP": "10.96.0.2",
            "clusterIPs": ["10.96.0.2"],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP"
        }
    })
}

/// The patch of `kubectl apply -f svc2.yaml` (+ label tier, type NodePort, + port 9090).
fn apply_svc2_patch() -> Value {
    json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"v\":2}\n"},
            "labels": {"tier": "frontend"}
        },
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 9090}],
            "ports": [{"name": "metrics", "port": 9090}],
            "type": "NodePort"
        }
    })
}

/// The patch of reverting with `kubectl apply -f svc3.yaml`.
fn apply_svc3_patch() -> Value {
    json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"v\":3}\n"},
            "labels": {"tier": null}
        },
        "spec": {
            "$setElementOrder/ports": [{"port": 80}],
            "ports": [{"port": 80, "targetPort": 8081}, {"$patch": "delete", "port": 9090}],
            "type": "ClusterIP"
        }
    })
}

#[test]
fn kubectl_apply_adding_a_port_keeps_the_existing_one() {
    let patched = smp(web_service(), apply_svc2_patch(), "Service");
    assert_eq!(
        patched["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
            {"name": "metrics", "port": 9090}
        ])
    );
    assert_eq!(patched["spec"]["type"], "NodePort");
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "tier": "frontend"}));
    assert_eq!(
        patched["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        "{\"v\":2}\n"
    );
    // Fields the patch does not mention are untouched.
    assert_eq!(patched["spec"]["clusterIP"], "10.96.0.2");
    assert_eq!(patched["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(patched["metadata"]["name"], "web");
}

#[test]
fn kubectl_apply_revert_deletes_the_port_and_the_label() {
    let applied = smp(web_service(), apply_svc2_patch(), "Service");
    let reverted = smp(applied, apply_svc3_patch(), "Service");
    assert_eq!(
        reverted["spec"]["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081}])
    );
    assert_eq!(reverted["spec"]["type"], "ClusterIP");
    assert_eq!(reverted["metadata"]["labels"], json!({"app": "web"}));
}

#[test]
fn null_label_removes_only_that_label() {
    let original = json!({"metadata": {"labels": {"app": "web", "tier": "frontend"}}});
    let patch = json!({"metadata": {"labels": {"tier": null}}});
    assert_eq!(
        smp(original, patch, "Service"),
        json!({"metadata": {"labels": {"app": "web"}}})
    );
}

#[test]
fn null_for_a_missing_key_is_not_stored() {
    let patched = smp(json!({"metadata": {}}), json!({"metadata": {"labels": null}}), "Pod");
    assert_eq!(patched, json!({"metadata": {}}));
}

#[test]
fn plain_merge_patch_would_drop_the_port_but_strategic_merge_does_not() {
    // The reason strategic merge patch exists: a merge patch replaces the list.
    let merged = apply_merge_patch(
        &web_service(),
        &json!({"spec": {"ports": [{"name": "metrics", "port": 9090}]}}),
    )
    .unwrap();
    assert_eq!(ports(&merged), [9090]);
    let patched = smp(
        web_service(),
        json!({"spec": {"ports": [{"name": "metrics", "port": 9090}]}}),
        "Service",
    );
    assert_eq!(ports(&patched), [80, 9090]);
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "finalizers": ["a/one", "b/two"]},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                },
                {"name": "sidecar", "image": "sidecar:1"}
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "k1", "operator": "Exists"}]
        },
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "PodScheduled", "status": "True"}
            ],
            "podIPs": [{"ip": "10.0.0.5"}]
        }
    })
}

#[test]
fn pod_container_env_merges_by_name() {
    let patch = json!({"spec": {"containers": [{
        "name": "app",
        "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}]
    }]}});
    let patched = smp(pod(), patch, "Pod");
    let app = &patched["spec"]["containers"][0];
    assert_eq!(app["image"], "app:1");
    assert_eq!(
        app["env"],
        json!([
            {"name": "A", "value": "1"},
            {"name": "B", "value": "20"},
            {"name": "C", "value": "3"}
        ])
    );
    assert_eq!(patched["spec"]["containers"][1]["name"], "sidecar");
}

#[test]
fn pod_container_env_entry_is_deleted_with_patch_delete() {
    let patch = json!({"spec": {"containers": [{
        "name": "app",
        "env": [{"$patch": "delete", "name": "A"}]
    }]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(
        patched["spec"]["containers"][0]["env"],
        json!([{"name": "B", "value": "2"}])
    );
}

#[test]
fn pod_container_ports_merge_by_container_port_and_mounts_by_path() {
    let patch = json!({"spec": {"containers": [{
        "name": "app",
        "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090}],
        "volumeMounts": [{"mountPath": "/data", "readOnly": true}]
    }]}});
    let patched = smp(pod(), patch, "Pod");
    let app = &patched["spec"]["containers"][0];
    assert_eq!(
        app["ports"],
        json!([
            {"containerPort": 8080, "protocol": "TCP", "name": "http"},
            {"containerPort": 9090}
        ])
    );
    assert_eq!(
        app["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
}

#[test]
fn new_container_is_appended_and_image_update_keeps_the_rest() {
    let patch = json!({"spec": {"containers": [
        {"name": "app", "image": "app:2"},
        {"name": "debug", "image": "busybox"}
    ]}});
    let patched = smp(pod(), patch, "Pod");
    let containers = patched["spec"]["containers"].as_array().unwrap();
    let names: Vec<_> = containers.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["app", "sidecar", "debug"]);
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(containers[0]["env"].as_array().unwrap().len(), 2);
}

#[test]
fn pod_tolerations_are_atomic() {
    let patch = json!({"spec": {"tolerations": [{"key": "k2", "operator": "Exists"}]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(
        patched["spec"]["tolerations"],
        json!([{"key": "k2", "operator": "Exists"}])
    );
}

#[test]
fn pod_status_conditions_merge_by_type_and_ips_by_ip() {
    let patch = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "podIPs": [{"ip": "fd00::5"}]
    }});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"}
        ])
    );
    assert_eq!(
        patched["status"]["podIPs"],
        json!([{"ip": "10.0.0.5"}, {"ip": "fd00::5"}])
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let patch = json!({"metadata": {"finalizers": ["b/two", "c/three", "c/three"]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(patched["metadata"]["finalizers"], json!(["a/one", "b/two", "c/three"]));
}

#[test]
fn delete_from_primitive_list_removes_finalizers() {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/one", "zzz"]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(patched["metadata"]["finalizers"], json!(["b/two"]));
}

#[test]
fn kubectl_finalizer_change_with_order_and_deletion() {
    // What kubectl apply sends when a manifest goes from [a/one, b/two] to [b/two, c/three].
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a/one"],
        "$setElementOrder/finalizers": ["b/two", "c/three"],
        "finalizers": ["c/three"]
    }});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(patched["metadata"]["finalizers"], json!(["b/two", "c/three"]));
}

#[test]
fn delete_from_primitive_list_without_a_list_is_a_no_op() {
    let patched = smp(
        json!({"metadata": {"name": "x"}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        "Pod",
    );
    assert_eq!(patched, json!({"metadata": {"name": "x"}}));
}

#[test]
fn owner_references_merge_by_uid() {
    let original = json!({"metadata": {"ownerReferences": [
        {"uid": "1", "kind": "ReplicaSet", "name": "rs1"}
    ]}});
    let patch = json!({"metadata": {"ownerReferences": [
        {"uid": "1", "controller": true},
        {"uid": "2", "kind": "Deployment", "name": "d"}
    ]}});
    let patched = smp(original, patch, "Pod");
    assert_eq!(
        patched["metadata"]["ownerReferences"],
        json!([
            {"uid": "1", "kind": "ReplicaSet", "name": "rs1", "controller": true},
            {"uid": "2", "kind": "Deployment", "name": "d"}
        ])
    );
}

#[test]
fn node_pod_cidrs_merge_as_a_set_and_taints_are_atomic() {
    let original = json!({
        "spec": {
            "podCIDRs": ["10.244.1.0/24"],
            "taints": [{"key": "a", "effect": "NoSchedule"}]
        },
        "status": {"addresses": [
            {"type": "InternalIP", "address": "192.168.0.10"},
            {"type": "Hostname", "address": "n1"}
        ]}
    });
    let patch = json!({
        "spec": {
            "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"],
            "taints": [{"key": "b", "effect": "NoExecute"}]
        },
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.0.11"}]}
    });
    let patched = smp(original, patch, "Node");
    assert_eq!(
        patched["spec"]["podCIDRs"],
        json!(["10.244.1.0/24", "fd00:10:244:1::/64"])
    );
    assert_eq!(patched["spec"]["taints"], json!([{"key": "b", "effect": "NoExecute"}]));
    assert_eq!(
        patched["status"]["addresses"],
        json!([
            {"type": "InternalIP", "address": "192.168.0.11"},
            {"type": "Hostname", "address": "n1"}
        ])
    );
}

#[test]
fn kubectl_cordon_patch() {
    let original = json!({"spec": {"podCIDR": "10.244.1.0/24"}});
    let patched = smp(original, json!({"spec": {"unschedulable": true}}), "Node");
    assert_eq!(
        patched,
        json!({"spec": {"podCIDR": "10.244.1.0/24", "unschedulable": true}})
    );
}

#[test]
fn service_cluster_ips_are_atomic() {
    let patched = smp(web_service(), json!({"spec": {"clusterIPs": ["10.96.0.3"]}}), "Service");
    assert_eq!(patched["spec"]["clusterIPs"], json!(["10.96.0.3"]));
}

#[test]
fn unknown_kinds_replace_every_list() {
    let original = json!({"metadata": {"finalizers": ["a"]}, "spec": {"ports": [{"port": 1}]}});
    let patch = json!({"metadata": {"finalizers": ["b"]}, "spec": {"ports": [{"port": 2}]}});
    assert_eq!(
        smp(original, patch, "Widget"),
        json!({"metadata": {"finalizers": ["b"]}, "spec": {"ports": [{"port": 2}]}})
    );
}

#[test]
fn endpoint_slice_lists_are_atomic() {
    let original = json!({"endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]});
    let patch = json!({"endpoints": [{"addresses": ["10.0.0.2"]}]});
    assert_eq!(
        smp(original, patch, "EndpointSlice"),
        json!({"endpoints": [{"addresses": ["10.0.0.2"]}], "ports": [{"port": 80}]})
    );
}

#[test]
fn patch_replace_on_a_map_replaces_it() {
    let patch = json!({"spec": {"selector": {"$patch": "replace", "app": "api"}}});
    let patched = smp(
        json!({"spec": {"selector": {"app": "web", "tier": "fe"}, "type": "ClusterIP"}}),
        patch,
        "Service",
    );
    assert_eq!(
        patched,
        json!({"spec": {"selector": {"app": "api"}, "type": "ClusterIP"}})
    );
}

#[test]
fn patch_delete_on_a_map_removes_it() {
    let patch = json!({"spec": {"selector": {"$patch": "delete"}}});
    let patched = smp(
        json!({"spec": {"selector": {"app": "web"}, "type": "ClusterIP"}}),
        patch,
        "Service",
    );
    assert_eq!(patched, json!({"spec": {"type": "ClusterIP"}}));
}

#[test]
fn patch_replace_element_replaces_the_whole_list() {
    let patch = json!({"spec": {"ports": [{"$patch": "replace"}, {"port": 443, "name": "https"}]}});
    let patched = smp(web_service(), patch, "Service");
    assert_eq!(patched["spec"]["ports"], json!([{"port": 443, "name": "https"}]));
}

#[test]
fn patch_replace_element_alone_empties_the_list() {
    let patched = smp(
        web_service(),
        json!({"spec": {"ports": [{"$patch": "replace"}]}}),
        "Service",
    );
    assert_eq!(patched["spec"]["ports"], json!([]));
}

#[test]
fn patch_replace_on_a_primitive_merge_list() {
    let patch = json!({"metadata": {"finalizers": [{"$patch": "replace"}, "z"]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(patched["metadata"]["finalizers"], json!(["z"]));
}

#[test]
fn delete_directive_removes_every_element_with_the_key() {
    // Port 53 for TCP and UDP share the merge key: upstream's known limitation.
    let original = json!({"spec": {"ports": [
        {"port": 53, "protocol": "TCP"},
        {"port": 80},
        {"port": 53, "protocol": "UDP"}
    ]}});
    let patched = smp(
        original,
        json!({"spec": {"ports": [{"$patch": "delete", "port": 53}]}}),
        "Service",
    );
    assert_eq!(patched["spec"]["ports"], json!([{"port": 80}]));
}

#[test]
fn merge_keys_compare_numbers_by_value() {
    let original = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
    let patched = smp(
        original,
        json!({"spec": {"ports": [{"port": 80.0, "targetPort": 8080}]}}),
        "Service",
    );
    assert_eq!(patched["spec"]["ports"].as_array().unwrap().len(), 1);
    assert_eq!(patched["spec"]["ports"][0]["targetPort"], 8080);
}

#[test]
fn retain_keys_clears_the_previous_volume_source() {
    // kubectl apply switching a volume from emptyDir to a ConfigMap.
    let patch = json!({"spec": {"volumes": [{
        "$retainKeys": ["configMap", "name"],
        "name": "data",
        "configMap": {"name": "cm"}
    }]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(
        patched["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cm"}}])
    );
}

#[test]
fn retain_keys_on_deployment_strategy() {
    let original = json!({"spec": {"strategy": {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1}
    }}});
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let patched = smp(original, patch, "Deployment");
    assert_eq!(patched, json!({"spec": {"strategy": {"type": "Recreate"}}}));
}

#[test]
fn retain_keys_rejects_a_patched_field_it_does_not_list() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    let err = smp_err(json!({"spec": {}}), patch, "Deployment");
    let PatchError::BadStrategicMergePatch(message) = &err else {
        panic!("unexpected {err:?}");
    };
    assert!(message.starts_with("invalid patch format of retainKeys"), "{message}");
    assert_eq!(err.status_code(), 400);
}

#[test]
fn retain_keys_must_be_a_list_of_strings() {
    let err = smp_err(json!({}), json!({"spec": {"$retainKeys": "type"}}), "Deployment");
    assert_eq!(
        err,
        PatchError::BadStrategicMergePatch("invalid patch format of retainKeys".into())
    );
}

#[test]
fn set_element_order_reorders_a_merged_list() {
    let original = json!({"spec": {"ports": [{"port": 1}, {"port": 2}, {"port": 3}]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 3}, {"port": 1}, {"port": 2}]
    }});
    assert_eq!(ports(&smp(original, patch, "Service")), [3, 1, 2]);
}

#[test]
fn set_element_order_places_new_elements_where_listed() {
    let original = json!({"spec": {"ports": [{"port": 80}, {"port": 443}]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 8080}, {"port": 443}],
        "ports": [{"port": 8080}]
    }});
    assert_eq!(ports(&smp(original, patch, "Service")), [80, 8080, 443]);
}

#[test]
fn set_element_order_keeps_server_only_elements_near_their_neighbours() {
    // Port 2 was added by someone else; the applier only knows 1 and 3 and adds 4.
    let original = json!({"spec": {"ports": [{"port": 1}, {"port": 2}, {"port": 3}]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 1}, {"port": 3}, {"port": 4}],
        "ports": [{"port": 4}]
    }});
    assert_eq!(ports(&smp(original, patch, "Service")), [1, 2, 3, 4]);
}

#[test]
fn set_element_order_for_a_list_the_object_lacks() {
    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "B"}, {"type": "A"}],
        "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]
    }});
    // The patch's own order disagrees with the directive: upstream rejects that.
    let err = smp_err(json!({}), patch, "Namespace");
    let PatchError::BadStrategicMergePatch(message) = err else {
        panic!("unexpected error");
    };
    assert!(message.starts_with("the order in patch list:"), "{message}");

    let patch = json!({"status": {
        "$setElementOrder/conditions": [{"type": "A"}, {"type": "B"}],
        "conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]
    }});
    let patched = smp(json!({}), patch, "Namespace");
    assert_eq!(
        patched,
        json!({"status": {"conditions": [
            {"type": "A", "status": "True"},
            {"type": "B", "status": "False"}
        ]}})
    );
}

#[test]
fn set_element_order_needs_the_merge_key() {
    let patch = json!({"spec": {"$setElementOrder/ports": [{"name": "http"}]}});
    let err = smp_err(web_service(), patch, "Service");
    let PatchError::BadStrategicMergePatch(message) = err else {
        panic!("unexpected error");
    };
    assert!(
        message.ends_with("does not contain declared merge key: port"),
        "{message}"
    );
}

#[test]
fn set_element_order_must_name_a_field_and_hold_a_list() {
    let err = smp_err(web_service(), json!({"spec": {"$setElementOrder": []}}), "Service");
    assert_eq!(
        err,
        PatchError::BadStrategicMergePatch("invalid patch format of setElementOrder list".into())
    );
    let err = smp_err(
        web_service(),
        json!({"spec": {"$setElementOrder/ports": {"port": 80}}}),
        "Service",
    );
    assert_eq!(
        err,
        PatchError::BadStrategicMergePatch("invalid patch format of setElementOrder list".into())
    );
}

#[test]
fn delete_from_primitive_list_must_hold_scalars() {
    for bad in [json!("a"), json!([{"a": 1}])] {
        let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": bad}});
        let err = smp_err(pod(), patch, "Pod");
        assert_eq!(
            err,
            PatchError::BadStrategicMergePatch("invalid patch format of primitive list".into())
        );
    }
}

#[test]
fn unknown_directives_are_rejected() {
    let err = smp_err(web_service(), json!({"spec": {"$frobnicate": 1}}), "Service");
    assert!(
        matches!(&err, PatchError::BadStrategicMergePatch(m) if m.contains("$frobnicate")),
        "{err:?}"
    );

    let err = smp_err(
        web_service(),
        json!({"spec": {"selector": {"$patch": "frobnicate"}}}),
        "Service",
    );
    assert!(
        matches!(&err, PatchError::BadStrategicMergePatch(m) if m.starts_with("unknown patch type: frobnicate")),
        "{err:?}"
    );

    let err = smp_err(
        web_service(),
        json!({"spec": {"ports": [{"$patch": "merge", "port": 80}]}}),
        "Service",
    );
    assert_eq!(
        err,
        PatchError::BadStrategicMergePatch("merging lists cannot yet be specified in the patch".into())
    );
}

#[test]
fn list_element_without_merge_key_is_rejected() {
    let err = smp_err(web_service(), json!({"spec": {"ports": [{"name": "x"}]}}), "Service");
    assert_eq!(
        err,
        PatchError::BadStrategicMergePatch("map: {\"name\":\"x\"} does not contain declared merge key: port".into())
    );
    let err = smp_err(
        web_service(),
        json!({"spec": {"ports": [{"$patch": "delete", "name": "x"}]}}),
        "Service",
    );
    assert!(matches!(err, PatchError::BadStrategicMergePatch(_)), "{err:?}");
}

#[test]
fn lists_of_lists_and_mixed_lists_are_unprocessable() {
    let err = smp_err(
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": [["b"]]}}),
        "Pod",
    );
    assert_eq!(
        err,
        PatchError::Unprocessable("lists of lists are not supported".into())
    );
    assert_eq!(err.status_code(), 422);

    let err = smp_err(
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": [{"b": 1}]}}),
        "Pod",
    );
    assert!(matches!(err, PatchError::Unprocessable(_)), "{err:?}");
}

#[test]
fn directives_inside_new_values_are_consumed() {
    // None of these fields exists yet, so every value is new to the object.
    let patch = json!({
        "metadata": {"labels": {"a": "1", "gone": null}},
        "spec": {
            "$setElementOrder/ports": [{"port": 80}],
            "ports": [{"port": 80}, {"$patch": "delete", "port": 81}],
            "selector": {"$patch": "replace", "app": "web"},
            "sessionAffinityConfig": {"$patch": "delete"}
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "$patch": "replace"}]}}
    });
    let patched = smp(json!({}), patch, "Service");
    assert_eq!(
        patched,
        json!({
            "metadata": {"labels": {"a": "1"}},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
            "status": {"loadBalancer": {"ingress": []}}
        })
    );
}

#[test]
fn directives_inside_atomic_list_elements_are_consumed() {
    let patch = json!({"spec": {"tolerations": [
        {"key": "a", "operator": "Exists", "value": null, "nested": {"$patch": "delete"}}
    ]}});
    let patched = smp(pod(), patch, "Pod");
    assert_eq!(
        patched["spec"]["tolerations"],
        json!([{"key": "a", "operator": "Exists"}])
    );
}

#[test]
fn type_change_takes_the_patch_value() {
    let patched = smp(
        json!({"spec": {"targetPort": 8080}}),
        json!({"spec": {"targetPort": {"name": "http"}}}),
        "Service",
    );
    assert_eq!(patched, json!({"spec": {"targetPort": {"name": "http"}}}));
}

#[test]
fn deployment_template_uses_the_pod_spec_strategy() {
    let original = json!({
        "spec": {"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{
                "name": "web",
                "image": "web:1",
                "env": [{"name": "A", "value": "1"}]
            }]}
        }},
        "status": {"conditions": [{"type": "Available", "status": "True"}]}
    });
    let patch = json!({
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}],
            "containers": [{
                "name": "web",
                "image": "web:2",
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                "env": [{"name": "B", "value": "2"}]
            }]
        }}},
        "status": {"conditions": [{"type": "Progressing", "status": "True"}]}
    });
    let patched = smp(original, patch, "Deployment");
    assert_eq!(
        patched["spec"]["template"]["spec"]["containers"],
        json!([{
            "name": "web",
            "image": "web:2",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
        }])
    );
    assert_eq!(
        patched["status"]["conditions"],
        json!([
            {"type": "Available", "status": "True"},
            {"type": "Progressing", "status": "True"}
        ])
    );
}

#[test]
fn statefulset_volume_claim_templates_are_atomic() {
    let original = json!({"spec": {"volumeClaimTemplates": [
        {"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}
    ]}});
    let patch = json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "c"}}]}});
    assert_eq!(
        smp(original, patch, "StatefulSet"),
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "c"}}]}})
    );
}

#[test]
fn key_order_is_kept_and_new_keys_are_appended() {
    let patched = smp(
        json!({"a": 1, "b": 2, "c": 3, "d": 4}),
        json!({"b": null, "a": 10, "e": 5}),
        "Pod",
    );
    let keys: Vec<_> = patched.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["a", "c", "d", "e"]);
    assert_eq!(patched["a"], 10);
}

#[test]
fn top_level_patch_delete_empties_the_object() {
    assert_eq!(smp(web_service(), json!({"$patch": "delete"}), "Service"), json!({}));
}

#[test]
fn strategic_merge_patch_body_and_object_must_be_objects() {
    let err = smp_err(web_service(), json!([{"spec": {}}]), "Service");
    assert!(matches!(err, PatchError::InvalidPatch(_)), "{err:?}");
    assert_eq!(err.status_code(), 400);
    assert_eq!(err.reason(), "BadRequest");
    let err = smp_err(json!([1]), json!({}), "Service");
    assert!(matches!(err, PatchError::Unprocessable(_)), "{err:?}");
}

#[test]
fn strategic_merge_does_not_modify_its_inputs() {
    let original = web_service();
    let patch = apply_svc2_patch();
    let before = (original.clone(), patch.clone());
    apply_strategic_merge_patch(&original, &patch, "Service").unwrap();
    assert_eq!((original, patch), before);
}

#[test]
fn server_side_apply_creates_a_missing_object() {
    let applied = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
    });
    let created = apply_server_side(&Value::Null, &applied, "Service").unwrap();
    assert_eq!(created, applied);
}

#[test]
fn server_side_apply_merges_with_the_live_object() {
    let applied = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "labels": {"env": "prod"}},
        "spec": {
            "ports": [{"port": 9090, "name": "metrics"}],
            "clusterIPs": ["10.96.0.2"]
        }
    });
    let patched = apply_server_side(&web_service(), &applied, "Service").unwrap();
    // Ports merge by key, maps merge, fields not applied are kept.
    assert_eq!(ports(&patched), [80, 9090]);
    assert_eq!(patched["metadata"]["labels"], json!({"app": "web", "env": "prod"}));
    assert_eq!(patched["spec"]["selector"], json!({"app": "web"}));
    assert_eq!(patched["spec"]["type"], "ClusterIP");
    assert_eq!(patched["spec"]["clusterIPs"], json!(["10.96.0.2"]));
}

#[test]
fn server_side_apply_replaces_atomic_lists() {
    let live = pod();
    let applied = json!({"spec": {"tolerations": [{"key": "x", "operator": "Exists"}]}});
    let patched = apply_server_side(&live, &applied, "Pod").unwrap();
    assert_eq!(
        patched["spec"]["tolerations"],
        json!([{"key": "x", "operator": "Exists"}])
    );
    assert_eq!(patched["spec"]["containers"], live["spec"]["containers"]);
}

#[test]
fn server_side_apply_rejects_directives_and_non_objects() {
    let err = apply_server_side(
        &web_service(),
        &json!({"spec": {"ports": [{"$patch": "delete", "port": 80}]}}),
        "Service",
    )
    .unwrap_err();
    assert!(
        matches!(&err, PatchError::InvalidPatch(m) if m.contains("spec.ports[*].$patch")),
        "{err:?}"
    );
    let err = apply_server_side(&web_service(), &json!("x"), "Service").unwrap_err();
    assert!(matches!(err, PatchError::InvalidPatch(_)), "{err:?}");
}

#[test]
fn patch_type_from_content_type() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json",
            Some(PatchType::StrategicMerge),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/merge-patch+json; charset=utf-8", Some(PatchType::Merge)),
        (
            " Application/Strategic-Merge-Patch+JSON;charset=UTF-8",
            Some(PatchType::StrategicMerge),
        ),
        ("application/json", None),
        ("application/apply-patch+cbor", None),
        ("", None),
    ];
    for (ct, expected) in cases {
        assert_eq!(PatchType::from_content_type(ct), expected, "{ct:?}");
    }
    for t in [
        PatchType::Json,
        PatchType::Merge,
        PatchType::StrategicMerge,
        PatchType::Apply,
    ] {
        assert_eq!(PatchType::from_content_type(t.content_type()), Some(t));
    }
}

#[test]
fn apply_patch_dispatches_on_the_patch_type() {
    let original = json!({"metadata": {"finalizers": ["a"]}});
    let patch = json!({"metadata": {"finalizers": ["b"]}});
    let merged = apply_patch(PatchType::Merge, &original, &patch, "Pod").unwrap();
    assert_eq!(merged["metadata"]["finalizers"], json!(["b"]));
    let strategic = apply_patch(PatchType::StrategicMerge, &original, &patch, "Pod").unwrap();
    assert_eq!(strategic["metadata"]["finalizers"], json!(["a", "b"]));
    let applied = apply_patch(PatchType::Apply, &original, &patch, "Pod").unwrap();
    assert_eq!(applied["metadata"]["finalizers"], json!(["a", "b"]));
    let json_patched = apply_patch(
        PatchType::Json,
        &original,
        &json!([{"op": "add", "path": "/metadata/finalizers/0", "value": "z"}]),
        "Pod",
    )
    .unwrap();
    assert_eq!(json_patched["metadata"]["finalizers"], json!(["z", "a"]));
}

#[test]
fn error_status_codes_and_reasons() {
    assert_eq!(PatchError::InvalidPatch("x".into()).status_code(), 400);
    assert_eq!(PatchError::BadStrategicMergePatch("x".into()).status_code(), 400);
    assert_eq!(PatchError::JsonPatchFailed("x".into()).status_code(), 422);
    assert_eq!(PatchError::Unprocessable("x".into()).reason(), "Invalid");
    assert_eq!(PatchError::JsonPatchFailed("boom".into()).to_string(), "boom");
}
