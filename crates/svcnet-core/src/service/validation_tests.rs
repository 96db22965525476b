//! Table-driven tests of Service validation: every invalid case breaks one rule and must produce
//! exactly the listed errors (field, reason, message), every valid case none.

use super::*;
use serde_json::json;

/// One expected error: field path, StatusCause reason, message body.
type Want = (&'static str, &'static str, String);

fn want(field: &'static str, reason: &'static str, body: impl Into<String>) -> Want {
    (field, reason, body.into())
}

fn got(errs: &[FieldError]) -> Vec<(String, String, String)> {
    errs.iter()
        .map(|e| (e.field.clone(), e.kind.reason().to_string(), e.body()))
        .collect()
}

fn check(name: &str, errs: Vec<FieldError>, expected: &[Want]) {
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(f, r, b)| (f.to_string(), r.to_string(), b.clone()))
        .collect();
    assert_eq!(got(&errs), expected, "case {name:?}");
}

/// Merges `patch` into `base` (JSON merge patch: null removes a key).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn with(mut base: Value, patch: Value) -> Value {
    merge(&mut base, &patch);
    base
}

/// A ClusterIP Service after defaulting and allocation.
fn cluster_ip() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "type": "ClusterIP",
            "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
            "sessionAffinity": "None",
            "internalTrafficPolicy": "Cluster"
        }
    })
}

fn cip(patch: Value) -> Value {
    with(cluster_ip(), json!({ "spec": patch }))
}

fn node_port(patch: Value) -> Value {
    let base = cip(json!({
        "type": "NodePort", "externalTrafficPolicy": "Cluster",
        "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}]
    }));
    with(base, json!({ "spec": patch }))
}

fn load_balancer(patch: Value) -> Value {
    let base = node_port(json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": true}));
    with(base, json!({ "spec": patch }))
}

fn external_name(patch: Value) -> Value {
    let base = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}
    });
    with(base, json!({ "spec": patch }))
}

fn annotated(svc: Value, annotations: Value) -> Value {
    with(svc, json!({"metadata": {"annotations": annotations}}))
}

const SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_ERR: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const IP_ERR: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_ERR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const PORT_ERR: &str = "must be between 1 and 65535, inclusive";

const REQUIRED: &str = "FieldValueRequired";
const INVALID: &str = "FieldValueInvalid";
const NOT_SUPPORTED: &str = "FieldValueNotSupported";
const FORBIDDEN: &str = "FieldValueForbidden";
const DUPLICATE: &str = "FieldValueDuplicate";

fn invalid_cases() -> Vec<(&'static str, Value, Vec<Want>)> {
    let second_port = json!({"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443});
    vec![
        (
            "ports required",
            cip(json!({"ports": []})),
            vec![want("spec.ports", REQUIRED, "Required value")],
        ),
        (
            "ports missing entirely",
            cip(json!({"ports": null})),
            vec![want("spec.ports", REQUIRED, "Required value")],
        ),
        (
            "headless LoadBalancer",
            load_balancer(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: \"None\": may not be set to 'None' for LoadBalancer services",
            )],
        ),
        (
            "headless NodePort",
            node_port(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: \"None\": may not be set to 'None' for NodePort services",
            )],
        ),
        (
            "ExternalName with clusterIPs",
            external_name(json!({"clusterIPs": ["10.96.0.5"]})),
            vec![want("spec.clusterIPs", FORBIDDEN, "Forbidden: may not be set for ExternalName services")],
        ),
        (
            "ExternalName with ipFamilies",
            external_name(json!({"ipFamilies": ["IPv4"]})),
            vec![want("spec.ipFamilies", FORBIDDEN, "Forbidden: may not be set for ExternalName services")],
        ),
        (
            "ExternalName with ipFamilyPolicy",
            external_name(json!({"ipFamilyPolicy": "SingleStack"})),
            vec![want("spec.ipFamilyPolicy", FORBIDDEN, "Forbidden: may not be set for ExternalName services")],
        ),
        (
            "ExternalName without externalName",
            external_name(json!({"externalName": null})),
            vec![want("spec.externalName", REQUIRED, "Required value")],
        ),
        (
            "ExternalName of a lone dot",
            external_name(json!({"externalName": "."})),
            vec![want("spec.externalName", REQUIRED, "Required value")],
        ),
        (
            "ExternalName not a subdomain",
            external_name(json!({"externalName": "Foo.Example.com."})),
            vec![want(
                "spec.externalName",
                INVALID,
                format!("Invalid value: \"Foo.Example.com\": {SUBDOMAIN_ERR}"),
            )],
        ),
        (
            "second port without a name",
            cip(json!({"ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"protocol": "TCP", "port": 81, "targetPort": 81}
            ]})),
            vec![want("spec.ports[1].name", REQUIRED, "Required value")],
        ),
        (
            "port name not a label",
            cip(json!({"ports": [{"name": "HTTP", "protocol": "TCP", "port": 80, "targetPort": 80}]})),
            vec![want("spec.ports[0].name", INVALID, format!("Invalid value: \"HTTP\": {LABEL_ERR}"))],
        ),
        (
            "port name with a dot",
            cip(json!({"ports": [{"name": "a.b", "protocol": "TCP", "port": 80, "targetPort": 80}]})),
            vec![want("spec.ports[0].name", INVALID, "Invalid value: \"a.b\": must not contain dots")],
        ),
        (
            "duplicate port names",
            cip(json!({"ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80},
                {"name": "http", "protocol": "TCP", "port": 81, "targetPort": 81}
            ]})),
            vec![want("spec.ports[1].name", DUPLICATE, "Duplicate value: \"http\"")],
        ),
        (
            "port zero",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 0, "targetPort": 80}]})),
            vec![want("spec.ports[0].port", INVALID, format!("Invalid value: 0: {PORT_ERR}"))],
        ),
        (
            "port above 65535",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 70000, "targetPort": 80}]})),
            vec![want("spec.ports[0].port", INVALID, format!("Invalid value: 70000: {PORT_ERR}"))],
        ),
        (
            "protocol missing",
            cip(json!({"ports": [{"name": "http", "port": 80, "targetPort": 80}]})),
            vec![want("spec.ports[0].protocol", REQUIRED, "Required value")],
        ),
        (
            "protocol not supported",
            cip(json!({"ports": [{"name": "http", "protocol": "HTTP", "port": 80, "targetPort": 80}]})),
            vec![want(
                "spec.ports[0].protocol",
                NOT_SUPPORTED,
                "Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            )],
        ),
        (
            "targetPort zero",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 0}]})),
            vec![want("spec.ports[0].targetPort", INVALID, format!("Invalid value: 0: {PORT_ERR}"))],
        ),
        (
            "targetPort above 65535",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 65536}]})),
            vec![want("spec.ports[0].targetPort", INVALID, format!("Invalid value: 65536: {PORT_ERR}"))],
        ),
        (
            "targetPort name in capitals",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "HTTP"}]})),
            vec![
                want(
                    "spec.ports[0].targetPort",
                    INVALID,
                    "Invalid value: \"HTTP\": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                ),
                want(
                    "spec.ports[0].targetPort",
                    INVALID,
                    "Invalid value: \"HTTP\": must contain at least one letter (a-z)",
                ),
            ],
        ),
        (
            "targetPort as a numeric string",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "8080"}]})),
            vec![want(
                "spec.ports[0].targetPort",
                INVALID,
                "Invalid value: \"8080\": must contain at least one letter (a-z)",
            )],
        ),
        (
            "targetPort name with a leading hyphen",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "-http"}]})),
            vec![want(
                "spec.ports[0].targetPort",
                INVALID,
                "Invalid value: \"-http\": must not begin or end with a hyphen",
            )],
        ),
        (
            "targetPort name with consecutive hyphens",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "a--b"}]})),
            vec![want(
                "spec.ports[0].targetPort",
                INVALID,
                "Invalid value: \"a--b\": must not contain consecutive hyphens",
            )],
        ),
        (
            "targetPort name too long",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "abcdefghijklmnop"}]})),
            vec![want(
                "spec.ports[0].targetPort",
                INVALID,
                "Invalid value: \"abcdefghijklmnop\": must be no more than 15 characters",
            )],
        ),
        (
            "appProtocol not a qualified name",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80, "appProtocol": "-h2c"}]})),
            vec![want(
                "spec.ports[0].appProtocol",
                INVALID,
                format!("Invalid value: \"-h2c\": {QUALIFIED_NAME_ERR}"),
            )],
        ),
        (
            "selector value not a label value",
            cip(json!({"selector": {"app": "web app"}})),
            vec![want("spec.selector", INVALID, format!("Invalid value: \"web app\": {LABEL_VALUE_ERR}"))],
        ),
        (
            "sessionAffinity missing",
            cip(json!({"sessionAffinity": null})),
            vec![want("spec.sessionAffinity", REQUIRED, "Required value")],
        ),
        (
            "sessionAffinity not supported",
            cip(json!({"sessionAffinity": "Sticky"})),
            vec![want(
                "spec.sessionAffinity",
                NOT_SUPPORTED,
                "Unsupported value: \"Sticky\": supported values: \"ClientIP\", \"None\"",
            )],
        ),
        (
            "ClientIP without config",
            cip(json!({"sessionAffinity": "ClientIP"})),
            vec![want(
                "spec.sessionAffinityConfig",
                REQUIRED,
                "Required value: when session affinity type is ClientIP",
            )],
        ),
        (
            "ClientIP without clientIP",
            cip(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {}})),
            vec![want(
                "spec.sessionAffinityConfig.clientIP",
                REQUIRED,
                "Required value: when session affinity type is ClientIP",
            )],
        ),
        (
            "ClientIP without timeout",
            cip(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {}}})),
            vec![want(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                REQUIRED,
                "Required value: when session affinity type is ClientIP",
            )],
        ),
        (
            "ClientIP timeout zero",
            cip(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 0}}})),
            vec![want(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                INVALID,
                "Invalid value: 0: must be greater than 0 and less than 86400",
            )],
        ),
        (
            "ClientIP timeout above a day",
            cip(json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86401}}})),
            vec![want(
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                INVALID,
                "Invalid value: 86401: must be greater than 0 and less than 86400",
            )],
        ),
        (
            "affinity config with affinity None",
            cip(json!({"sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}})),
            vec![want(
                "spec.sessionAffinityConfig",
                FORBIDDEN,
                "Forbidden: must not be set when session affinity is None",
            )],
        ),
        (
            "clusterIP without clusterIPs",
            cip(json!({"clusterIPs": null})),
            vec![want("spec.clusterIPs", REQUIRED, "Required value")],
        ),
        (
            "clusterIPs not matching clusterIP",
            cip(json!({"clusterIPs": ["10.96.0.21"]})),
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.96.0.21\"}: first value must match `clusterIP`",
            )],
        ),
        (
            "clusterIPs without clusterIP",
            cip(json!({"clusterIP": null})),
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.96.0.20\"}: must be empty when `clusterIP` is not specified",
            )],
        ),
        (
            "ipFamilies not supported",
            cip(json!({"clusterIP": null, "clusterIPs": null, "ipFamilies": ["IPv5"]})),
            vec![want(
                "spec.ipFamilies[0]",
                NOT_SUPPORTED,
                "Unsupported value: \"IPv5\": supported values: \"IPv4\", \"IPv6\"",
            )],
        ),
        (
            "ipFamilies duplicated",
            cip(json!({"ipFamilies": ["IPv4", "IPv4"], "ipFamilyPolicy": "PreferDualStack"})),
            vec![want("spec.ipFamilies[1]", DUPLICATE, "Duplicate value: \"IPv4\"")],
        ),
        (
            "ipFamilyPolicy not supported",
            cip(json!({"ipFamilyPolicy": "DualStack"})),
            vec![want(
                "spec.ipFamilyPolicy",
                NOT_SUPPORTED,
                "Unsupported value: \"DualStack\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
            )],
        ),
        (
            "None followed by an IP",
            cip(json!({"clusterIP": "None", "clusterIPs": ["None", "fd00::20"], "ipFamilies": null})),
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"None\", \"fd00::20\"}: 'None' must be the first and only value",
            )],
        ),
        (
            "clusterIP not an IP",
            cip(json!({"clusterIP": "10.96.0.300", "clusterIPs": ["10.96.0.300"]})),
            vec![want("spec.clusterIPs[0]", INVALID, format!("Invalid value: \"10.96.0.300\": {IP_ERR}"))],
        ),
        (
            "empty secondary clusterIP",
            cip(json!({"clusterIPs": ["10.96.0.20", ""], "ipFamilyPolicy": "PreferDualStack"})),
            vec![want("spec.clusterIPs[1]", INVALID, format!("Invalid value: \"\": {IP_ERR}"))],
        ),
        (
            "three clusterIPs",
            cip(json!({
                "clusterIPs": ["10.96.0.20", "fd00::20", "10.96.0.21"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"
            })),
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.96.0.20\", \"fd00::20\", \"10.96.0.21\"}: may only hold up to 2 values",
            )],
        ),
        (
            "two IPv4 clusterIPs",
            cip(json!({"clusterIPs": ["10.96.0.20", "10.96.0.21"], "ipFamilies": null, "ipFamilyPolicy": "PreferDualStack"})),
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.96.0.20\", \"10.96.0.21\"}: may specify no more than one IP for each IP family",
            )],
        ),
        (
            "IPv6 address under IPv4 family",
            cip(json!({"clusterIP": "fd00::20", "clusterIPs": ["fd00::20"]})),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: \"fd00::20\": expected an IPv4 value as indicated by `ipFamilies[0]`",
            )],
        ),
        (
            "IPv4 address under IPv6 family",
            cip(json!({
                "clusterIPs": ["10.96.0.20", "10.96.0.21"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"
            })),
            vec![
                want(
                    "spec.clusterIPs",
                    INVALID,
                    "Invalid value: []string{\"10.96.0.20\", \"10.96.0.21\"}: may specify no more than one IP for each IP family",
                ),
                want(
                    "spec.clusterIPs[1]",
                    INVALID,
                    "Invalid value: \"10.96.0.21\": expected an IPv6 value as indicated by `ipFamilies[1]`",
                ),
            ],
        ),
        (
            "externalIP not an IP",
            cip(json!({"externalIPs": ["1.2.3"], "externalTrafficPolicy": "Cluster"})),
            vec![want("spec.externalIPs[0]", INVALID, format!("Invalid value: \"1.2.3\": {IP_ERR}"))],
        ),
        (
            "externalIP unspecified",
            cip(json!({"externalIPs": ["0.0.0.0"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)",
            )],
        ),
        (
            "externalIP loopback",
            cip(json!({"externalIPs": ["127.0.0.1"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            )],
        ),
        (
            "externalIP IPv6 loopback",
            cip(json!({"externalIPs": ["::1"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            )],
        ),
        (
            "externalIP link-local",
            cip(json!({"externalIPs": ["169.254.169.254"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"169.254.169.254\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            )],
        ),
        (
            "externalIP IPv6 link-local",
            cip(json!({"externalIPs": ["fe80::1"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)",
            )],
        ),
        (
            "externalIP link-local multicast",
            cip(json!({"externalIPs": ["224.0.0.251"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[0]",
                INVALID,
                "Invalid value: \"224.0.0.251\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )],
        ),
        (
            "externalIP IPv6 link-local multicast",
            cip(json!({"externalIPs": ["10.0.0.9", "ff02::fb"], "externalTrafficPolicy": "Cluster"})),
            vec![want(
                "spec.externalIPs[1]",
                INVALID,
                "Invalid value: \"ff02::fb\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
            )],
        ),
        (
            "type missing",
            cip(json!({"type": null})),
            vec![want("spec.type", REQUIRED, "Required value")],
        ),
        (
            "type not supported",
            cip(json!({"type": "Internal"})),
            vec![want(
                "spec.type",
                NOT_SUPPORTED,
                "Unsupported value: \"Internal\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
            )],
        ),
        (
            "nodePort on ClusterIP",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080}]})),
            vec![want(
                "spec.ports[0].nodePort",
                FORBIDDEN,
                "Forbidden: may not be used when `type` is 'ClusterIP'",
            )],
        ),
        (
            "duplicate nodePort",
            node_port(json!({"ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30080},
                {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 443, "nodePort": 30080}
            ]})),
            vec![want("spec.ports[1].nodePort", DUPLICATE, "Duplicate value: 30080")],
        ),
        (
            "duplicate port and protocol",
            cip(json!({"ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80},
                {"name": "web", "protocol": "TCP", "port": 80, "targetPort": 8080}
            ]})),
            vec![want(
                "spec.ports[1]",
                DUPLICATE,
                "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"TCP\", AppProtocol:(*string)(nil), Port:80, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
            )],
        ),
        (
            "source ranges on ClusterIP",
            cip(json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]})),
            vec![want(
                "spec.LoadBalancerSourceRanges",
                FORBIDDEN,
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )],
        ),
        (
            "source range not a CIDR",
            load_balancer(json!({"loadBalancerSourceRanges": ["10.0.0.0/8", "10.0.0.0/33"]})),
            vec![want(
                "spec.LoadBalancerSourceRanges[1]",
                INVALID,
                format!("Invalid value: \"10.0.0.0/33\": {CIDR_ERR}"),
            )],
        ),
        (
            "source-ranges annotation on NodePort",
            annotated(node_port(json!({})), json!({ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: "10.0.0.0/8"})),
            vec![want(
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                FORBIDDEN,
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )],
        ),
        (
            "source-ranges annotation not CIDRs",
            annotated(
                load_balancer(json!({})),
                json!({ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: "10.0.0.0/8, office"}),
            ),
            vec![want(
                "metadata.annotations[service.beta.kubernetes.io/load-balancer-source-ranges]",
                INVALID,
                format!("Invalid value: \"office\": {CIDR_ERR}"),
            )],
        ),
        (
            "allocateLoadBalancerNodePorts on NodePort",
            node_port(json!({"allocateLoadBalancerNodePorts": false})),
            vec![want(
                "spec.allocateLoadBalancerNodePorts",
                FORBIDDEN,
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )],
        ),
        (
            "allocateLoadBalancerNodePorts missing on LoadBalancer",
            load_balancer(json!({"allocateLoadBalancerNodePorts": null})),
            vec![want("allocateLoadBalancerNodePorts", REQUIRED, "Required value")],
        ),
        (
            "loadBalancerClass on ClusterIP",
            cip(json!({"loadBalancerClass": "example.com/lb"})),
            vec![want(
                "spec.loadBalancerClass",
                FORBIDDEN,
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )],
        ),
        (
            "loadBalancerClass not a qualified name",
            load_balancer(json!({"loadBalancerClass": "example.com/-lb"})),
            vec![want(
                "spec.loadBalancerClass",
                INVALID,
                format!("Invalid value: \"example.com/-lb\": {QUALIFIED_NAME_ERR}"),
            )],
        ),
        (
            "externalTrafficPolicy on plain ClusterIP",
            cip(json!({"externalTrafficPolicy": "Local"})),
            vec![want(
                "spec.externalTrafficPolicy",
                INVALID,
                "Invalid value: \"Local\": may only be set for externally-accessible services",
            )],
        ),
        (
            "externalTrafficPolicy missing on NodePort",
            node_port(json!({"externalTrafficPolicy": null})),
            vec![want("spec.externalTrafficPolicy", REQUIRED, "Required value")],
        ),
        (
            "externalTrafficPolicy missing with externalIPs",
            cip(json!({"externalIPs": ["192.0.2.10"]})),
            vec![want("spec.externalTrafficPolicy", REQUIRED, "Required value")],
        ),
        (
            "externalTrafficPolicy not supported",
            node_port(json!({"externalTrafficPolicy": "Global"})),
            vec![want(
                "spec.externalTrafficPolicy",
                NOT_SUPPORTED,
                "Unsupported value: \"Global\": supported values: \"Cluster\", \"Local\"",
            )],
        ),
        (
            "healthCheckNodePort on NodePort",
            node_port(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 30100})),
            vec![want(
                "spec.healthCheckNodePort",
                INVALID,
                "Invalid value: 30100: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            )],
        ),
        (
            "healthCheckNodePort missing on LoadBalancer Local",
            load_balancer(json!({"externalTrafficPolicy": "Local"})),
            vec![want("spec.healthCheckNodePort", REQUIRED, "Required value")],
        ),
        (
            "healthCheckNodePort out of range",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 70000})),
            vec![want("spec.healthCheckNodePort", INVALID, format!("Invalid value: 70000: {PORT_ERR}"))],
        ),
        (
            "internalTrafficPolicy missing",
            cip(json!({"internalTrafficPolicy": null})),
            vec![want("spec.internalTrafficPolicy", REQUIRED, "Required value")],
        ),
        (
            "internalTrafficPolicy not supported",
            node_port(json!({"internalTrafficPolicy": "Node"})),
            vec![want(
                "spec.internalTrafficPolicy",
                NOT_SUPPORTED,
                "Unsupported value: \"Node\": supported values: \"Cluster\", \"Local\"",
            )],
        ),
        (
            "trafficDistribution not supported",
            cip(json!({"trafficDistribution": "Nearby"})),
            vec![want(
                "spec.trafficDistribution",
                NOT_SUPPORTED,
                "Unsupported value: \"Nearby\": supported values: \"PreferClose\", \"PreferSameZone\", \"PreferSameNode\"",
            )],
        ),
        (
            "topology annotations disagree",
            annotated(
                cluster_ip(),
                json!({ANNOTATION_TOPOLOGY_MODE: "Auto", ANNOTATION_TOPOLOGY_AWARE_HINTS: "Disabled"}),
            ),
            vec![want(
                "metadata.annotations[service.kubernetes.io/topology-mode]",
                INVALID,
                "Invalid value: \"Auto\": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            )],
        ),
        (
            "second port with a bad name and a duplicate number",
            cip(json!({"ports": [
                {"name": "http", "protocol": "UDP", "port": 53, "targetPort": 53},
                {"name": "dns_tcp", "protocol": "UDP", "port": 53, "targetPort": 53},
                second_port
            ]})),
            vec![
                want("spec.ports[1].name", INVALID, format!("Invalid value: \"dns_tcp\": {LABEL_ERR}")),
                want(
                    "spec.ports[1]",
                    DUPLICATE,
                    "Duplicate value: core.ServicePort{Name:\"\", Protocol:\"UDP\", AppProtocol:(*string)(nil), Port:53, TargetPort:intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}, NodePort:0}",
                ),
            ],
        ),
        (
            "nodePorts on two ClusterIP ports",
            cip(json!({"ports": [
                {"name": "a", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 30001},
                {"name": "b", "protocol": "TCP", "port": 81, "targetPort": 81, "nodePort": 30002}
            ]})),
            vec![
                want("spec.ports[0].nodePort", FORBIDDEN, "Forbidden: may not be used when `type` is 'ClusterIP'"),
                want("spec.ports[1].nodePort", FORBIDDEN, "Forbidden: may not be used when `type` is 'ClusterIP'"),
            ],
        ),
        (
            "loadBalancerClass on NodePort",
            node_port(json!({"loadBalancerClass": "example.com/lb"})),
            vec![want(
                "spec.loadBalancerClass",
                FORBIDDEN,
                "Forbidden: may only be used when `type` is 'LoadBalancer'",
            )],
        ),
        (
            "ipFamilyPolicy empty string",
            cip(json!({"ipFamilyPolicy": ""})),
            vec![want(
                "spec.ipFamilyPolicy",
                NOT_SUPPORTED,
                "Unsupported value: \"\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\"",
            )],
        ),
    ]
}

fn valid_cases() -> Vec<(&'static str, Value)> {
    vec![
        ("ClusterIP", cluster_ip()),
        (
            "ClusterIP before allocation",
            cip(json!({"clusterIP": null, "clusterIPs": null, "ipFamilies": null, "ipFamilyPolicy": null})),
        ),
        (
            "headless with ports",
            cip(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
        ),
        (
            "headless without ports",
            cip(json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": []})),
        ),
        (
            "headless selectorless dual-stack",
            cip(json!({
                "clusterIP": "None", "clusterIPs": ["None"], "selector": null,
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"
            })),
        ),
        (
            "dual-stack",
            cip(json!({
                "clusterIPs": ["10.96.0.20", "fd00::20"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"
            })),
        ),
        (
            "dual-stack IPv6 first",
            cip(json!({
                "clusterIP": "fd00::20", "clusterIPs": ["fd00::20", "10.96.0.20"],
                "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"
            })),
        ),
        (
            "IPv6 only",
            cip(json!({"clusterIP": "fd00::20", "clusterIPs": ["fd00::20"], "ipFamilies": ["IPv6"]})),
        ),
        ("NodePort", node_port(json!({}))),
        (
            "NodePort before allocation",
            node_port(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]})),
        ),
        (
            "NodePort with one node port for TCP and UDP",
            node_port(json!({"ports": [
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53, "nodePort": 30053},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53, "nodePort": 30053}
            ]})),
        ),
        ("LoadBalancer", load_balancer(json!({}))),
        (
            "LoadBalancer without node ports",
            load_balancer(json!({
                "allocateLoadBalancerNodePorts": false,
                "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}]
            })),
        ),
        (
            "LoadBalancer Local",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000})),
        ),
        (
            "LoadBalancer with class",
            load_balancer(json!({"loadBalancerClass": "example.com/internal-vip"})),
        ),
        (
            "LoadBalancer with padded source ranges",
            load_balancer(json!({"loadBalancerSourceRanges": [" 10.0.0.0/8 ", "2001:db8::/32"]})),
        ),
        (
            "LoadBalancer with source-ranges annotation",
            annotated(
                load_balancer(json!({})),
                json!({ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: "10.0.0.0/8, 192.168.0.0/16"}),
            ),
        ),
        (
            "LoadBalancer ignores the annotation when the field is set",
            annotated(
                load_balancer(json!({"loadBalancerSourceRanges": ["10.0.0.0/8"]})),
                json!({ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: "garbage"}),
            ),
        ),
        ("ExternalName", external_name(json!({}))),
        (
            "ExternalName with a trailing dot",
            external_name(json!({"externalName": "db.example.com."})),
        ),
        (
            "ExternalName with ports and tolerated internalTrafficPolicy",
            external_name(json!({
                "ports": [{"name": "pg", "protocol": "TCP", "port": 5432, "targetPort": 5432}],
                "internalTrafficPolicy": "Cluster"
            })),
        ),
        (
            "ClientIP affinity",
            cip(
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}}}),
            ),
        ),
        (
            "ClientIP affinity of a full day",
            cip(
                json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}}),
            ),
        ),
        (
            "named targetPort",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http-web"}]})),
        ),
        (
            "targetPort 65535",
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 65535, "targetPort": 65535}]})),
        ),
        (
            "same port over TCP and UDP",
            cip(json!({"ports": [
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53}
            ]})),
        ),
        (
            "single unnamed port",
            cip(json!({"ports": [{"protocol": "SCTP", "port": 9999, "targetPort": 9999}]})),
        ),
        (
            "appProtocol",
            cip(
                json!({"ports": [{"name": "h2c", "protocol": "TCP", "port": 80, "targetPort": 80, "appProtocol": "kubernetes.io/h2c"}]}),
            ),
        ),
        (
            "externalIPs",
            cip(json!({"externalIPs": ["192.0.2.10", "2001:db8::10"], "externalTrafficPolicy": "Local"})),
        ),
        (
            "externalIP with leading zeros",
            cip(json!({"externalIPs": ["010.001.002.003"], "externalTrafficPolicy": "Cluster"})),
        ),
        (
            "trafficDistribution PreferClose",
            cip(json!({"trafficDistribution": "PreferClose"})),
        ),
        (
            "trafficDistribution PreferSameNode",
            node_port(json!({"trafficDistribution": "PreferSameNode"})),
        ),
        (
            "internalTrafficPolicy Local",
            cip(json!({"internalTrafficPolicy": "Local"})),
        ),
        (
            "publishNotReadyAddresses",
            cip(json!({"publishNotReadyAddresses": true})),
        ),
        ("selectorless", cip(json!({"selector": null}))),
        (
            "topology annotations that agree",
            annotated(
                cluster_ip(),
                json!({ANNOTATION_TOPOLOGY_MODE: "Auto", ANNOTATION_TOPOLOGY_AWARE_HINTS: "Auto"}),
            ),
        ),
    ]
}

#[test]
fn invalid_services() {
    let cases = invalid_cases();
    assert!(cases.len() >= 60, "only {} invalid cases", cases.len());
    for (name, svc, expected) in cases {
        assert!(!expected.is_empty(), "case {name:?} expects no error");
        check(name, validate_service_create(&svc), &expected);
    }
}

#[test]
fn valid_services() {
    let cases = valid_cases();
    assert!(cases.len() >= 30, "only {} valid cases", cases.len());
    for (name, svc) in cases {
        check(name, validate_service_create(&svc), &[]);
        // An update that changes nothing is valid too.
        check(name, validate_service_update(&svc, &svc), &[]);
    }
}

#[test]
fn invalid_services_stay_invalid_on_update() {
    for (name, svc, expected) in invalid_cases() {
        let errs = validate_service_update(&svc, &svc);
        let got = got(&errs);
        for (field, reason, body) in &expected {
            assert!(
                got.contains(&(field.to_string(), reason.to_string(), body.clone())),
                "case {name:?}: {field}: {body} missing from {got:?}"
            );
        }
    }
}

#[test]
fn update_rules() {
    let lb_class = |class: Value| load_balancer(json!({"loadBalancerClass": class}));
    let dual = cip(json!({
        "clusterIPs": ["10.96.0.20", "fd00::20"],
        "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"
    }));
    let cases: Vec<(&str, Value, Value, Vec<Want>)> = vec![
        (
            "clusterIP change refused",
            cluster_ip(),
            cip(json!({"clusterIP": "10.96.0.21", "clusterIPs": ["10.96.0.21"]})),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: []string{\"10.96.0.21\"}: may not change once set",
            )],
        ),
        (
            "primary clusterIP unset refused",
            cluster_ip(),
            cip(json!({"clusterIP": null, "clusterIPs": null})),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: []string(nil): primary clusterIP can not be unset",
            )],
        ),
        (
            "headless to allocated refused",
            cip(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
            cluster_ip(),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: []string{\"10.96.0.20\"}: may not change once set",
            )],
        ),
        (
            "secondary family added",
            cluster_ip(),
            cip(json!({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"})),
            vec![],
        ),
        ("secondary IP added", cluster_ip(), dual.clone(), vec![]),
        (
            "primary changed while adding the secondary",
            cluster_ip(),
            cip(json!({
                "clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99", "fd00::20"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "PreferDualStack"
            })),
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: []string{\"10.96.0.99\", \"fd00::20\"}: may not change once set",
            )],
        ),
        (
            "secondary released with SingleStack",
            dual.clone(),
            cip(json!({"ipFamilyPolicy": "SingleStack"})),
            vec![],
        ),
        (
            "secondary released without SingleStack",
            dual.clone(),
            cip(json!({"ipFamilyPolicy": "PreferDualStack"})),
            vec![
                want(
                    "spec.ipFamilyPolicy",
                    INVALID,
                    "Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary clusterIP",
                ),
                want(
                    "spec.ipFamilyPolicy",
                    INVALID,
                    "Invalid value: \"PreferDualStack\": must be set to 'SingleStack' when releasing the secondary ipFamily",
                ),
            ],
        ),
        (
            "primary family changed",
            cip(json!({"clusterIP": null, "clusterIPs": null})),
            cip(json!({"clusterIP": null, "clusterIPs": null, "ipFamilies": ["IPv6"]})),
            vec![want(
                "spec.ipFamilies[0]",
                INVALID,
                "Invalid value: []core.IPFamily{\"IPv6\"}: may not change once set",
            )],
        ),
        (
            "ClusterIP to ExternalName",
            cluster_ip(),
            external_name(json!({})),
            vec![],
        ),
        (
            "ExternalName to ClusterIP",
            external_name(json!({})),
            cip(json!({"clusterIP": "10.96.0.99", "clusterIPs": ["10.96.0.99"]})),
            vec![],
        ),
        ("ClusterIP to NodePort", cluster_ip(), node_port(json!({})), vec![]),
        (
            "headless families may change",
            cip(json!({"clusterIP": "None", "clusterIPs": ["None"]})),
            cip(json!({"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv6"]})),
            vec![],
        ),
        (
            "loadBalancerClass changed",
            lb_class(json!("example.com/a")),
            lb_class(json!("example.com/b")),
            vec![want(
                "spec.loadBalancerClass",
                INVALID,
                "Invalid value: \"example.com/b\": may not change once set",
            )],
        ),
        (
            "loadBalancerClass added",
            load_balancer(json!({})),
            lb_class(json!("example.com/a")),
            vec![want(
                "spec.loadBalancerClass",
                INVALID,
                "Invalid value: \"example.com/a\": may not change once set",
            )],
        ),
        (
            "loadBalancerClass removed",
            lb_class(json!("example.com/a")),
            load_balancer(json!({})),
            vec![want(
                "spec.loadBalancerClass",
                INVALID,
                "Invalid value: null: may not change once set",
            )],
        ),
        (
            "loadBalancerClass set when becoming a LoadBalancer",
            node_port(json!({})),
            lb_class(json!("example.com/a")),
            vec![],
        ),
        (
            "loadBalancerClass dropped when leaving LoadBalancer",
            lb_class(json!("example.com/a")),
            node_port(json!({})),
            vec![],
        ),
        (
            "loadBalancerClass kept when leaving LoadBalancer",
            lb_class(json!("example.com/a")),
            node_port(json!({"loadBalancerClass": "example.com/a"})),
            vec![
                want(
                    "spec.loadBalancerClass",
                    FORBIDDEN,
                    "Forbidden: may only be used when `type` is 'LoadBalancer'",
                ),
                want(
                    "spec.loadBalancerClass",
                    FORBIDDEN,
                    "Forbidden: may only be used when `type` is 'LoadBalancer'",
                ),
            ],
        ),
        (
            "healthCheckNodePort changed",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000})),
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31001})),
            vec![want("spec.healthCheckNodePort", FORBIDDEN, "Forbidden: field is immutable")],
        ),
        (
            "healthCheckNodePort released with Cluster",
            load_balancer(json!({"externalTrafficPolicy": "Local", "healthCheckNodePort": 31000})),
            load_balancer(json!({})),
            vec![],
        ),
        (
            "nodePort changed",
            node_port(json!({})),
            node_port(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30081}]})),
            vec![],
        ),
        (
            "create rules apply",
            cluster_ip(),
            cip(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 0, "targetPort": 8080}]})),
            vec![want("spec.ports[0].port", INVALID, format!("Invalid value: 0: {PORT_ERR}"))],
        ),
    ];
    for (name, old, new, expected) in cases {
        check(name, validate_service_update(&new, &old), &expected);
    }
}

#[test]
fn duplicate_update_errors_collapse_in_the_message() {
    let old = load_balancer(json!({"loadBalancerClass": "example.com/a"}));
    let new = node_port(json!({"loadBalancerClass": "example.com/a"}));
    let errs = validate_service_update(&new, &old);
    assert_eq!(errs.len(), 2);
    assert_eq!(
        crate::field::aggregate_message(&errs).unwrap(),
        "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"
    );
}

#[test]
fn status_rules() {
    let lb = load_balancer(json!({}));
    let status = |svc: Value, ingress: Value| with(svc, json!({"status": {"loadBalancer": {"ingress": ingress}}}));
    let cases: Vec<(&str, Value, Vec<Want>)> = vec![
        (
            "VIP",
            status(lb.clone(), json!([{"ip": "203.0.113.10", "ipMode": "VIP"}])),
            vec![],
        ),
        (
            "hostname",
            status(lb.clone(), json!([{"hostname": "lb.example.com"}])),
            vec![],
        ),
        (
            "ingress on ClusterIP",
            status(cluster_ip(), json!([{"ip": "203.0.113.10", "ipMode": "VIP"}])),
            vec![want(
                "status.loadBalancer.ingress",
                FORBIDDEN,
                "Forbidden: may only be used when `spec.type` is 'LoadBalancer'",
            )],
        ),
        (
            "bad IP",
            status(lb.clone(), json!([{"ip": "203.0.113", "ipMode": "Proxy"}])),
            vec![want(
                "status.loadBalancer.ingress[0].ip",
                INVALID,
                format!("Invalid value: \"203.0.113\": {IP_ERR}"),
            )],
        ),
        (
            "ipMode missing",
            status(lb.clone(), json!([{"ip": "203.0.113.10"}])),
            vec![want(
                "status.loadBalancer.ingress[0].ipMode",
                REQUIRED,
                "Required value: must be specified when `ip` is set",
            )],
        ),
        (
            "ipMode without ip",
            status(lb.clone(), json!([{"hostname": "lb.example.com", "ipMode": "VIP"}])),
            vec![want(
                "status.loadBalancer.ingress[0].ipMode",
                FORBIDDEN,
                "Forbidden: may not be specified when `ip` is not set",
            )],
        ),
        (
            "ipMode not supported",
            status(lb.clone(), json!([{"ip": "203.0.113.10", "ipMode": "Direct"}])),
            vec![want(
                "status.loadBalancer.ingress[0].ipMode",
                NOT_SUPPORTED,
                "Unsupported value: \"Direct\": supported values: \"Proxy\", \"VIP\"",
            )],
        ),
        (
            "hostname is an IP",
            status(lb.clone(), json!([{"hostname": "203.0.113.10"}])),
            vec![want(
                "status.loadBalancer.ingress[0].hostname",
                INVALID,
                "Invalid value: \"203.0.113.10\": must be a DNS name, not an IP address",
            )],
        ),
    ];
    for (name, svc, expected) in cases {
        check(name, validate_service_status_update(&svc, &lb), &expected);
    }
}

#[test]
fn cluster_dependent_rules() {
    let v4 = ServiceValidationContext::default();
    let dual = ServiceValidationContext {
        service_cidrs: vec![
            (IpAddr::V4(Ipv4Addr::new(10, 96, 0, 0)), 12),
            ("fd00::".parse().unwrap(), 108),
        ],
        node_port_range: (30000, 32767),
    };
    let unallocated = |patch: Value| {
        with(
            cip(json!({"clusterIP": null, "clusterIPs": null, "ipFamilies": null, "ipFamilyPolicy": null})),
            json!({ "spec": patch }),
        )
    };
    type ClusterCase<'a> = (&'a str, Value, Option<Value>, &'a ServiceValidationContext, Vec<Want>);
    let cases: Vec<ClusterCase> = vec![
        ("plain create", unallocated(json!({})), None, &v4, vec![]),
        ("allocated create", cluster_ip(), None, &v4, vec![]),
        (
            "RequireDualStack on a single-stack cluster",
            unallocated(json!({"ipFamilyPolicy": "RequireDualStack"})),
            None,
            &v4,
            vec![want(
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services",
            )],
        ),
        (
            "RequireDualStack on a dual-stack cluster",
            unallocated(json!({"ipFamilyPolicy": "RequireDualStack"})),
            None,
            &dual,
            vec![],
        ),
        (
            "PreferDualStack on a single-stack cluster",
            unallocated(json!({"ipFamilyPolicy": "PreferDualStack"})),
            None,
            &v4,
            vec![],
        ),
        (
            "IPv6 family on an IPv4 cluster",
            unallocated(json!({"ipFamilies": ["IPv6"]})),
            None,
            &v4,
            vec![want(
                "spec.ipFamilies[0]",
                INVALID,
                "Invalid value: \"IPv6\": not configured on this cluster",
            )],
        ),
        (
            "IPv6 clusterIP on an IPv4 cluster",
            unallocated(json!({"clusterIP": "fd00::5", "clusterIPs": ["fd00::5"]})),
            None,
            &v4,
            vec![want(
                "spec.clusterIPs[0]",
                INVALID,
                "Invalid value: []string{\"fd00::5\"}: IPv6 is not configured on this cluster",
            )],
        ),
        (
            "SingleStack with two families",
            unallocated(json!({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "SingleStack"})),
            None,
            &dual,
            vec![want(
                "spec.ipFamilyPolicy",
                INVALID,
                "Invalid value: \"SingleStack\": must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            )],
        ),
        (
            "headless selectorless defaults to dual-stack",
            unallocated(json!({"clusterIP": "None", "clusterIPs": ["None"], "selector": null})),
            None,
            &v4,
            vec![],
        ),
        (
            "requested clusterIP outside the range",
            unallocated(json!({"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]})),
            None,
            &v4,
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.0.0.5\"}: failed to allocate IP 10.0.0.5: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
            )],
        ),
        (
            "requested network address",
            unallocated(json!({"clusterIP": "10.96.0.0", "clusterIPs": ["10.96.0.0"]})),
            None,
            &v4,
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.96.0.0\"}: failed to allocate IP 10.96.0.0: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
            )],
        ),
        (
            "requested broadcast address",
            unallocated(json!({"clusterIP": "10.111.255.255", "clusterIPs": ["10.111.255.255"]})),
            None,
            &v4,
            vec![want(
                "spec.clusterIPs",
                INVALID,
                "Invalid value: []string{\"10.111.255.255\"}: failed to allocate IP 10.111.255.255: provided IP is not in the valid range. The range of valid IPs is 10.96.0.0/12",
            )],
        ),
        (
            "requested last usable address",
            unallocated(json!({"clusterIP": "10.111.255.254", "clusterIPs": ["10.111.255.254"]})),
            None,
            &v4,
            vec![],
        ),
        (
            "requested nodePort outside the range",
            node_port(json!({"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 80, "nodePort": 80}]})),
            None,
            &v4,
            vec![want(
                "spec.ports[0].nodePort",
                INVALID,
                "Invalid value: 80: provided port is not in the valid range. The range of valid ports is 30000-32767",
            )],
        ),
        (
            "kept address outside a changed range",
            cip(json!({"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]})),
            Some(cip(json!({"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]}))),
            &v4,
            vec![],
        ),
        (
            "secondary released without SingleStack",
            cip(json!({"ipFamilies": ["IPv4"], "ipFamilyPolicy": "RequireDualStack"})),
            Some(cip(json!({
                "clusterIPs": ["10.96.0.20", "fd00::20"],
                "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack"
            }))),
            &dual,
            vec![
                want(
                    "spec.ipFamilyPolicy",
                    INVALID,
                    "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary cluster IP",
                ),
                want(
                    "spec.ipFamilyPolicy",
                    INVALID,
                    "Invalid value: \"RequireDualStack\": must be 'SingleStack' to release the secondary IP family",
                ),
            ],
        ),
        (
            "ExternalName is not checked",
            external_name(json!({})),
            None,
            &v4,
            vec![],
        ),
    ];
    for (name, new, old, ctx, expected) in cases {
        check(name, validate_service_for_cluster(&new, old.as_ref(), ctx), &expected);
    }
    // Without CIDRs nothing depends on the cluster.
    let none = ServiceValidationContext {
        service_cidrs: vec![],
        node_port_range: (30000, 32767),
    };
    let svc = unallocated(json!({"ipFamilyPolicy": "RequireDualStack"}));
    check("no CIDRs", validate_service_for_cluster(&svc, None, &none), &[]);
}

#[test]
fn ip_parsing() {
    assert_eq!(parse_ip_sloppy("010.001.002.003"), Some("10.1.2.3".parse().unwrap()));
    assert_eq!(parse_ip_sloppy("::ffff:10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
    assert_eq!(parse_ip_sloppy("fd00::1"), Some("fd00::1".parse().unwrap()));
    assert_eq!(parse_ip_sloppy("256.1.1.1"), None);
    assert_eq!(parse_ip_sloppy("1.2.3"), None);
    assert_eq!(parse_ip_sloppy(""), None);
    assert_eq!(parse_cidr_sloppy("10.0.0.0/8"), Some(("10.0.0.0".parse().unwrap(), 8)));
    assert_eq!(parse_cidr_sloppy("10.0.0.1/33"), None);
    assert_eq!(parse_cidr_sloppy("2001:db8::/129"), None);
    assert_eq!(parse_cidr_sloppy("10.0.0.0"), None);
    assert!(is_valid_port_name("http").is_empty());
    assert!(is_valid_port_name("h2").is_empty());
}
