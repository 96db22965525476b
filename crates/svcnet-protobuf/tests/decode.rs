//! Round trips through envelopes built with the crate's own prost types.

use std::collections::BTreeMap;

use prost::Message;
use serde_json::json;
use svcnet_protobuf::proto::*;
use svcnet_protobuf::{decode_object, DecodeError, MAGIC};

/// Wraps an encoded object the way client-go does: magic, then runtime.Unknown
/// with empty contentEncoding/contentType (Go always writes those fields).
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
        }),
        raw: Some(raw),
        content_encoding: Some(String::new()),
        content_type: Some(String::new()),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn some(text: &str) -> Option<String> {
    Some(text.to_owned())
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// ObjectMeta as Go's marshaller produces it: every value field present,
/// empty ones as "" / 0 and a zero creationTimestamp as an empty message.
fn go_meta(name: &str, namespace: &str) -> ObjectMeta {
    ObjectMeta {
        name: some(name),
        generate_name: some(""),
        namespace: some(namespace),
        self_link: some(""),
        uid: some(""),
        resource_version: some(""),
        generation: Some(0),
        creation_timestamp: Some(Time::default()),
        ..Default::default()
    }
}

fn int_port(value: i32) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(0),
        int_val: Some(value),
        str_val: some(""),
    })
}

fn named_port(name: &str) -> Option<IntOrString> {
    Some(IntOrString {
        r#type: Some(1),
        int_val: Some(0),
        str_val: some(name),
    })
}

fn port(name: &str, number: i32, target: Option<IntOrString>, node_port: i32) -> ServicePort {
    ServicePort {
        name: some(name),
        protocol: some("TCP"),
        app_protocol: None,
        port: Some(number),
        target_port: target,
        node_port: Some(node_port),
    }
}

/// A ServiceSpec with Go's empty values filled in, so omission is exercised.
fn go_spec(kind: &str) -> ServiceSpec {
    ServiceSpec {
        cluster_ip: some(""),
        r#type: some(kind),
        session_affinity: some(""),
        load_balancer_ip: some(""),
        external_name: some(""),
        external_traffic_policy: some(""),
        health_check_node_port: Some(0),
        publish_not_ready_addresses: Some(false),
        ..Default::default()
    }
}

fn empty_service_status() -> Option<ServiceStatus> {
    Some(ServiceStatus {
        load_balancer: Some(LoadBalancerStatus::default()),
        conditions: vec![],
    })
}

#[test]
fn nodeport_service_with_named_target_port() {
    let service = Service {
        metadata: Some(ObjectMeta {
            labels: map(&[("app", "web"), ("tier", "front")]),
            ..go_meta("web", "default")
        }),
        spec: Some(ServiceSpec {
            ports: vec![
                port("http", 80, int_port(8080), 30080),
                port("metrics", 9090, named_port("prom"), 0),
            ],
            selector: map(&[("app", "web")]),
            ..go_spec("NodePort")
        }),
        status: empty_service_status(),
    };
    let decoded = decode_object(&envelope("v1", "Service", service.encode_to_vec())).unwrap();
    let expected = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web", "tier": "front"}},
        "spec": {
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "prom"}
            ],
            "selector": {"app": "web"},
            "type": "NodePort"
        },
        "status": {"loadBalancer": {}}
    });
    assert_eq!(decoded, expected);
}

#[test]
fn externalname_service() {
    let service = Service {
        metadata: Some(go_meta("ext", "")),
        spec: Some(ServiceSpec {
            external_name: some("example.com"),
            ..go_spec("ExternalName")
        }),
        status: empty_service_status(),
    };
    let decoded = decode_object(&envelope("v1", "Service", service.encode_to_vec())).unwrap();
    let expected = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "example.com"},
        "status": {"loadBalancer": {}}
    });
    assert_eq!(decoded, expected);
}

#[test]
fn namespace_with_spec_and_status() {
    let namespace = Namespace {
        metadata: Some(ObjectMeta {
            annotations: map(&[("owner", "team-a")]),
            ..go_meta("shop", "")
        }),
        spec: Some(NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: Some(NamespaceStatus {
            phase: some("Active"),
            conditions: vec![],
        }),
    };
    let decoded = decode_object(&envelope("v1", "Namespace", namespace.encode_to_vec())).unwrap();
    let expected = json!({
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "shop", "annotations": {"owner": "team-a"}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"}
    });
    assert_eq!(decoded, expected);
}

#[test]
fn namespace_without_optional_messages_still_has_spec_and_status() {
    let namespace = Namespace {
        metadata: Some(ObjectMeta {
            name: some("bare"),
            ..Default::default()
        }),
        spec: None,
        status: None,
    };
    let decoded = decode_object(&envelope("v1", "Namespace", namespace.encode_to_vec())).unwrap();
    let expected = json!({
        "kind": "Namespace", "apiVersion": "v1",
        "metadata": {"name": "bare"}, "spec": {}, "status": {}
    });
    assert_eq!(decoded, expected);
}

/// A timestamp of 1_700_000_000 s is 2023-11-14T22:13:20Z.
fn time() -> Option<Time> {
    Some(Time {
        seconds: Some(1_700_000_000),
        nanos: Some(500),
    })
}

fn full_metadata() -> ObjectMeta {
    ObjectMeta {
        generate_name: some("web-"),
        uid: some("1234"),
        resource_version: some("42"),
        generation: Some(3),
        creation_timestamp: time(),
        deletion_grace_period_seconds: Some(0),
        finalizers: vec!["example.com/keep".into()],
        owner_references: vec![OwnerReference {
            api_version: some("apps/v1"),
            kind: some("Deployment"),
            name: some("web"),
            uid: some("abcd"),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }],
        managed_fields: vec![ManagedFieldsEntry {
            manager: some("kubectl"),
            operation: some("Update"),
            api_version: some("v1"),
            time: time(),
            fields_type: some("FieldsV1"),
            fields_v1: Some(FieldsV1 {
                raw: Some(br#"{"f:spec":{}}"#.to_vec()),
            }),
            subresource: some(""),
        }],
        ..go_meta("", "prod")
    }
}

fn full_spec() -> ServiceSpec {
    ServiceSpec {
        ports: vec![ServicePort {
            app_protocol: some("kubernetes.io/h2c"),
            ..port("", 443, None, 31443)
        }],
        cluster_ip: some("10.0.0.10"),
        cluster_ips: vec!["10.0.0.10".into(), "fd00::10".into()],
        external_ips: vec!["192.0.2.1".into()],
        session_affinity: some("ClientIP"),
        load_balancer_ip: some("192.0.2.2"),
        load_balancer_source_ranges: vec!["10.0.0.0/8".into()],
        external_traffic_policy: some("Local"),
        health_check_node_port: Some(32000),
        publish_not_ready_addresses: Some(true),
        session_affinity_config: Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig {
                timeout_seconds: Some(600),
            }),
        }),
        ip_families: vec!["IPv4".into(), "IPv6".into()],
        ip_family_policy: some("PreferDualStack"),
        allocate_load_balancer_node_ports: Some(false),
        load_balancer_class: some("example.com/lb"),
        internal_traffic_policy: some("Cluster"),
        traffic_distribution: some("PreferClose"),
        ..go_spec("LoadBalancer")
    }
}

fn full_status() -> ServiceStatus {
    ServiceStatus {
        load_balancer: Some(LoadBalancerStatus {
            ingress: vec![LoadBalancerIngress {
                ip: some("192.0.2.2"),
                hostname: some(""),
                ip_mode: some("VIP"),
                ports: vec![PortStatus {
                    port: Some(443),
                    protocol: some("TCP"),
                    error: None,
                }],
            }],
        }),
        conditions: vec![Condition {
            r#type: some("Ready"),
            status: some("True"),
            observed_generation: Some(3),
            last_transition_time: time(),
            reason: some("Provisioned"),
            message: some(""),
        }],
    }
}

#[test]
fn every_service_field_is_converted() {
    let service = Service {
        metadata: Some(full_metadata()),
        spec: Some(full_spec()),
        status: Some(full_status()),
    };
    let decoded = decode_object(&envelope("v1", "Service", service.encode_to_vec())).unwrap();
    let expected = json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "web-", "namespace": "prod", "uid": "1234",
            "resourceVersion": "42", "generation": 3,
            "creationTimestamp": "2023-11-14T22:13:20Z",
            "deletionGracePeriodSeconds": 0,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "abcd", "controller": true, "blockOwnerDeletion": false}],
            "finalizers": ["example.com/keep"],
            "managedFields": [{"manager": "kubectl", "operation": "Update", "apiVersion": "v1",
                               "time": "2023-11-14T22:13:20Z", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:spec": {}}}]
        },
        "spec": {
            "ports": [{"protocol": "TCP", "appProtocol": "kubernetes.io/h2c", "port": 443, "nodePort": 31443}],
            "clusterIP": "10.0.0.10",
            "clusterIPs": ["10.0.0.10", "fd00::10"],
            "type": "LoadBalancer",
            "externalIPs": ["192.0.2.1"],
            "sessionAffinity": "ClientIP",
            "loadBalancerIP": "192.0.2.2",
            "loadBalancerSourceRanges": ["10.0.0.0/8"],
            "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 32000,
            "publishNotReadyAddresses": true,
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 600}},
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "PreferDualStack",
            "allocateLoadBalancerNodePorts": false,
            "loadBalancerClass": "example.com/lb",
            "internalTrafficPolicy": "Cluster",
            "trafficDistribution": "PreferClose"
        },
        "status": {
            "loadBalancer": {"ingress": [{"ip": "192.0.2.2", "ipMode": "VIP",
                                          "ports": [{"port": 443, "protocol": "TCP"}]}]},
            "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3,
                            "lastTransitionTime": "2023-11-14T22:13:20Z",
                            "reason": "Provisioned", "message": ""}]
        }
    });
    assert_eq!(decoded, expected);
}

#[test]
fn json_keys_follow_go_field_order() {
    let service = Service {
        metadata: Some(go_meta("web", "")),
        spec: Some(ServiceSpec {
            ports: vec![port("http", 80, int_port(8080), 0)],
            ..go_spec("ClusterIP")
        }),
        status: empty_service_status(),
    };
    let decoded = decode_object(&envelope("v1", "Service", service.encode_to_vec())).unwrap();
    assert_eq!(
        decoded.to_string(),
        r#"{"kind":"Service","apiVersion":"v1","metadata":{"name":"web"},"spec":{"ports":[{"name":"http","protocol":"TCP","port":80,"targetPort":8080}],"type":"ClusterIP"},"status":{"loadBalancer":{}}}"#
    );
}

#[test]
fn namespace_conditions_are_converted() {
    let namespace = Namespace {
        metadata: Some(go_meta("gone", "")),
        spec: Some(NamespaceSpec::default()),
        status: Some(NamespaceStatus {
            phase: some("Terminating"),
            conditions: vec![NamespaceCondition {
                r#type: some("NamespaceDeletionContentFailure"),
                status: some("False"),
                last_transition_time: time(),
                reason: some("ContentDeleted"),
                message: some(""),
            }],
        }),
    };
    let decoded = decode_object(&envelope("v1", "Namespace", namespace.encode_to_vec())).unwrap();
    assert_eq!(
        decoded["status"],
        json!({"phase": "Terminating", "conditions": [{
            "type": "NamespaceDeletionContentFailure", "status": "False",
            "lastTransitionTime": "2023-11-14T22:13:20Z", "reason": "ContentDeleted"
        }]})
    );
}

#[test]
fn body_without_magic_is_rejected() {
    let err = decode_object(br#"{"kind":"Service","apiVersion":"v1"}"#).unwrap_err();
    assert!(matches!(err, DecodeError::MissingMagic), "{err:?}");
    assert!(err.to_string().contains("magic prefix"), "{err}");
    assert!(matches!(decode_object(b""), Err(DecodeError::MissingMagic)));
}

#[test]
fn truncated_envelope_is_rejected() {
    let service = Service {
        metadata: Some(go_meta("web", "")),
        ..Default::default()
    };
    let body = envelope("v1", "Service", service.encode_to_vec());
    let err = decode_object(&body[..body.len() - 8]).unwrap_err();
    assert!(matches!(err, DecodeError::Envelope(_)), "{err:?}");
    assert!(err.to_string().starts_with("malformed protobuf envelope"), "{err}");
}

#[test]
fn envelope_without_kind_is_rejected() {
    let mut body = MAGIC.to_vec();
    body.extend(
        Unknown {
            raw: Some(vec![]),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let err = decode_object(&body).unwrap_err();
    assert!(matches!(err, DecodeError::Envelope(_)), "{err:?}");
}

#[test]
fn unsupported_kind_names_group_version_kind() {
    let err = decode_object(&envelope("v1", "Pod", vec![])).unwrap_err();
    assert_eq!(err.to_string(), r#"unsupported kind "v1, Kind=Pod" in protobuf body"#);
    let err = decode_object(&envelope("apps/v1", "StatefulSet", vec![])).unwrap_err();
    match err {
        DecodeError::UnsupportedKind { api_version, kind } => {
            assert_eq!((api_version.as_str(), kind.as_str()), ("apps/v1", "StatefulSet"));
        }
        other => panic!("unexpected error {other:?}"),
    }
}

#[test]
fn corrupt_object_is_rejected() {
    // A length-delimited field 1 claiming 100 bytes that are not there.
    let err = decode_object(&envelope("v1", "Service", vec![0x0a, 100, 1, 2])).unwrap_err();
    assert!(
        matches!(err, DecodeError::Message { ref kind, .. } if kind == "Service"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("malformed Service protobuf message"),
        "{err}"
    );
}

#[test]
fn non_json_managed_fields_are_rejected() {
    let namespace = Namespace {
        metadata: Some(ObjectMeta {
            managed_fields: vec![ManagedFieldsEntry {
                fields_v1: Some(FieldsV1 {
                    raw: Some(b"not json".to_vec()),
                }),
                ..Default::default()
            }],
            ..go_meta("shop", "")
        }),
        ..Default::default()
    };
    let err = decode_object(&envelope("v1", "Namespace", namespace.encode_to_vec())).unwrap_err();
    assert!(matches!(err, DecodeError::Message { .. }), "{err:?}");
}

fn quantity(text: &str) -> Quantity {
    Quantity { string: some(text) }
}

/// A container as Go marshals it: unset value fields present but empty.
fn go_container(name: &str, image: &str) -> Container {
    Container {
        name: some(name),
        image: some(image),
        working_dir: some(""),
        resources: Some(ResourceRequirements::default()),
        termination_message_path: some(""),
        termination_message_policy: some(""),
        image_pull_policy: some(""),
        ..Default::default()
    }
}

fn full_deployment() -> Deployment {
    let app = Container {
        command: vec!["nginx".into()],
        args: vec!["-g".into(), "daemon off;".into()],
        working_dir: some("/srv"),
        ports: vec![
            ContainerPort {
                name: some("http"),
                host_port: Some(0),
                container_port: Some(80),
                protocol: some("TCP"),
                host_ip: some(""),
            },
            ContainerPort {
                name: some(""),
                host_port: Some(8443),
                container_port: Some(443),
                protocol: some("TCP"),
                host_ip: some("0.0.0.0"),
            },
        ],
        env: vec![
            EnvVar {
                name: some("MODE"),
                value: some("prod"),
            },
            EnvVar {
                name: some("EMPTY"),
                value: some(""),
            },
        ],
        resources: Some(ResourceRequirements {
            limits: [
                ("cpu".to_string(), quantity("500m")),
                ("memory".to_string(), quantity("128Mi")),
            ]
            .into(),
            requests: [("cpu".to_string(), quantity("250m"))].into(),
        }),
        termination_message_path: some("/dev/termination-log"),
        termination_message_policy: some("File"),
        image_pull_policy: some("IfNotPresent"),
        ..go_container("nginx", "nginx:1.27")
    };
    Deployment {
        metadata: Some(ObjectMeta {
            labels: map(&[("app", "web")]),
            ..go_meta("web", "shop")
        }),
        spec: Some(DeploymentSpec {
            replicas: Some(0),
            selector: Some(LabelSelector {
                match_labels: map(&[("app", "web")]),
                match_expressions: vec![
                    LabelSelectorRequirement {
                        key: some("tier"),
                        operator: some("In"),
                        values: vec!["front".into(), "edge".into()],
                    },
                    LabelSelectorRequirement {
                        key: some("canary"),
                        operator: some("DoesNotExist"),
                        values: vec![],
                    },
                ],
            }),
            template: Some(PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: map(&[("app", "web")]),
                    ..go_meta("", "")
                }),
                spec: Some(PodSpec {
                    init_containers: vec![go_container("init", "busybox")],
                    containers: vec![app],
                    restart_policy: some("Always"),
                    termination_grace_period_seconds: Some(0),
                    dns_policy: some("ClusterFirst"),
                    node_selector: map(&[("disk", "ssd")]),
                    service_account_name: some("web"),
                    node_name: some(""),
                    security_context: Some(PodSecurityContext {}),
                    hostname: some("web-0"),
                    subdomain: some("web"),
                    scheduler_name: some("default-scheduler"),
                    tolerations: vec![
                        Toleration {
                            key: some("node.kubernetes.io/not-ready"),
                            operator: some("Exists"),
                            value: some(""),
                            effect: some("NoExecute"),
                            toleration_seconds: Some(300),
                        },
                        Toleration {
                            key: some("dedicated"),
                            operator: some("Equal"),
                            value: some("web"),
                            effect: some("NoSchedule"),
                            toleration_seconds: None,
                        },
                    ],
                }),
            }),
            strategy: Some(DeploymentStrategy {
                r#type: some("RollingUpdate"),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: int_port(0),
                    max_surge: named_port("25%"),
                }),
            }),
            min_ready_seconds: Some(5),
            revision_history_limit: Some(0),
            paused: Some(true),
            progress_deadline_seconds: Some(600),
        }),
        status: Some(DeploymentStatus {}),
    }
}

#[test]
fn every_deployment_field_is_converted() {
    let body = envelope("apps/v1", "Deployment", full_deployment().encode_to_vec());
    let decoded = decode_object(&body).unwrap();
    let expected = json!({
        "kind": "Deployment",
        "apiVersion": "apps/v1",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 0,
            "selector": {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                    {"key": "canary", "operator": "DoesNotExist"}
                ]
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "initContainers": [{"name": "init", "image": "busybox", "resources": {}}],
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "command": ["nginx"],
                        "args": ["-g", "daemon off;"],
                        "workingDir": "/srv",
                        "ports": [
                            {"name": "http", "containerPort": 80, "protocol": "TCP"},
                            {"hostPort": 8443, "containerPort": 443, "protocol": "TCP", "hostIP": "0.0.0.0"}
                        ],
                        "env": [{"name": "MODE", "value": "prod"}, {"name": "EMPTY"}],
                        "resources": {
                            "limits": {"cpu": "500m", "memory": "128Mi"},
                            "requests": {"cpu": "250m"}
                        },
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File",
                        "imagePullPolicy": "IfNotPresent"
                    }],
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 0,
                    "dnsPolicy": "ClusterFirst",
                    "nodeSelector": {"disk": "ssd"},
                    "serviceAccountName": "web",
                    "securityContext": {},
                    "hostname": "web-0",
                    "subdomain": "web",
                    "schedulerName": "default-scheduler",
                    "tolerations": [
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 300},
                        {"key": "dedicated", "operator": "Equal", "value": "web", "effect": "NoSchedule"}
                    ]
                }
            },
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "minReadySeconds": 5,
            "revisionHistoryLimit": 0,
            "paused": true,
            "progressDeadlineSeconds": 600
        },
        "status": {}
    });
    assert_eq!(decoded, expected);
}

#[test]
fn deployment_pointer_fields_are_omitted_when_absent() {
    // Go leaves nil pointers (replicas, selector, rollingUpdate, the limits)
    // out of the protobuf; value fields arrive as zero and are omitted too.
    let deployment = Deployment {
        metadata: Some(go_meta("bare", "")),
        spec: Some(DeploymentSpec {
            template: Some(PodTemplateSpec {
                metadata: Some(go_meta("", "")),
                spec: Some(PodSpec {
                    containers: vec![go_container("app", "")],
                    restart_policy: some(""),
                    dns_policy: some(""),
                    service_account_name: some(""),
                    node_name: some(""),
                    hostname: some(""),
                    subdomain: some(""),
                    scheduler_name: some(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(DeploymentStrategy {
                r#type: some("Recreate"),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(DeploymentStatus {}),
    };
    let decoded = decode_object(&envelope("apps/v1", "Deployment", deployment.encode_to_vec())).unwrap();
    assert_eq!(
        decoded.to_string(),
        r#"{"kind":"Deployment","apiVersion":"apps/v1","metadata":{"name":"bare"},"spec":{"template":{"metadata":{},"spec":{"containers":[{"name":"app","resources":{}}]}},"strategy":{"type":"Recreate"}},"status":{}}"#
    );
}

#[test]
fn deployment_status_counters_are_dropped() {
    // observedGeneration, replicas and readyReplicas as a server would send them.
    let mut raw = Deployment {
        metadata: Some(go_meta("web", "")),
        ..Default::default()
    }
    .encode_to_vec();
    raw.extend([0x1a, 6, 0x08, 2, 0x10, 3, 0x38, 3]);
    let decoded = decode_object(&envelope("apps/v1", "Deployment", raw)).unwrap();
    assert_eq!(decoded["status"], json!({}));
    assert_eq!(decoded["spec"], json!({}));
}
