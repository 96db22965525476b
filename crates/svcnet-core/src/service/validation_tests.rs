//! Table-driven tests of Service validation. The cases live in
//! `crates/svcnet-core/tests/fixtures/service_cases.json`, shared with the API server's HTTP tests
//! (`crates/svcnet-apiserver/tests/service_cases.rs`): every invalid case breaks one rule and must
//! produce exactly the listed errors (field, reason, message), every valid case none.

use super::*;
use serde::Deserialize;
use serde_json::json;

const CASES: &str = include_str!("../../tests/fixtures/service_cases.json");

#[derive(Debug, Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

/// One case of the fixture. `http` (what the API answers after defaulting and allocation, when
/// that differs) is checked by the API server's tests only.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    subresource: Option<String>,
    #[serde(default)]
    old: Option<Value>,
    service: Value,
    causes: Vec<Want>,
    #[serde(default, rename = "http")]
    _http: Option<Value>,
}

/// One expected error: field path, StatusCause reason, message body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Want {
    field: String,
    reason: String,
    message: String,
}

impl Case {
    fn is_create(&self) -> bool {
        self.old.is_none()
    }

    fn is_status(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    /// What the validation function for this kind of write says.
    fn validate(&self) -> Vec<FieldError> {
        match (&self.old, self.is_status()) {
            (None, _) => validate_service_create(&self.service),
            (Some(old), false) => validate_service_update(&self.service, old),
            (Some(old), true) => validate_service_status_update(&self.service, old),
        }
    }
}

fn cases() -> Vec<Case> {
    let fixture: Fixture = serde_json::from_str(CASES).expect("the case file parses");
    fixture.cases
}

fn got(errs: &[FieldError]) -> Vec<Want> {
    errs.iter()
        .map(|e| Want {
            field: e.field.clone(),
            reason: e.kind.reason().to_string(),
            message: e.body(),
        })
        .collect()
}

fn check(name: &str, errs: Vec<FieldError>, expected: &[Want]) {
    assert_eq!(got(&errs), expected, "case {name:?}");
}

#[test]
fn case_file_is_well_formed() {
    let cases = cases();
    let mut names = HashSet::new();
    for case in &cases {
        assert!(names.insert(case.name.as_str()), "case {:?} appears twice", case.name);
        assert!(
            case.subresource.is_none() || (case.is_status() && case.old.is_some()),
            "case {:?}: only status updates name a subresource",
            case.name
        );
        for svc in std::iter::once(&case.service).chain(&case.old) {
            assert_eq!(svc["kind"], "Service", "case {:?}", case.name);
            assert!(
                svc.pointer("/metadata/namespace").is_none(),
                "case {:?}: the namespace comes from the request",
                case.name
            );
        }
    }
}

#[test]
fn invalid_services() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.is_create() && !c.causes.is_empty())
        .collect();
    assert!(cases.len() >= 60, "only {} invalid cases", cases.len());
    for case in cases {
        check(&case.name, case.validate(), &case.causes);
    }
}

#[test]
fn valid_services() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.is_create() && c.causes.is_empty())
        .collect();
    assert!(cases.len() >= 30, "only {} valid cases", cases.len());
    for case in cases {
        check(&case.name, case.validate(), &[]);
        // An update that changes nothing is valid too.
        check(&case.name, validate_service_update(&case.service, &case.service), &[]);
    }
}

#[test]
fn invalid_services_stay_invalid_on_update() {
    for case in cases().into_iter().filter(|c| c.is_create()) {
        let got = got(&validate_service_update(&case.service, &case.service));
        for want in &case.causes {
            assert!(
                got.contains(want),
                "case {:?}: {want:?} missing from {got:?}",
                case.name
            );
        }
    }
}

#[test]
fn update_rules() {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| !c.is_create() && !c.is_status())
        .collect();
    assert!(cases.len() >= 20, "only {} update cases", cases.len());
    for case in cases {
        check(&case.name, case.validate(), &case.causes);
    }
}

#[test]
fn duplicate_update_errors_collapse_in_the_message() {
    let case = cases()
        .into_iter()
        .find(|c| c.name == "loadBalancerClass kept when leaving LoadBalancer")
        .expect("case");
    let errs = case.validate();
    assert_eq!(errs.len(), 2);
    assert_eq!(
        crate::field::aggregate_message(&errs).unwrap(),
        "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'"
    );
}

#[test]
fn status_rules() {
    let cases: Vec<Case> = cases().into_iter().filter(Case::is_status).collect();
    assert!(cases.len() >= 8, "only {} status cases", cases.len());
    for case in cases {
        check(&case.name, case.validate(), &case.causes);
    }
}

// The checks that depend on the cluster's configuration take a context besides the Service; their
// table stays here, built from an allocated ClusterIP Service.

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

fn external_name(patch: Value) -> Value {
    let base = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "example.com", "sessionAffinity": "None"}
    });
    with(base, json!({ "spec": patch }))
}

const INVALID: &str = "FieldValueInvalid";

fn want(field: &str, reason: &str, message: impl Into<String>) -> Want {
    Want {
        field: field.to_string(),
        reason: reason.to_string(),
        message: message.into(),
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
    // The family half leaves the address ranges to the allocator.
    let outside = unallocated(json!({"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"]}));
    check(
        "family fields only",
        validate_ip_family_fields(&outside, None, &v4),
        &[],
    );
    let v6 = unallocated(json!({"ipFamilies": ["IPv6"]}));
    assert_eq!(
        got(&validate_ip_family_fields(&v6, None, &v4)),
        got(&validate_service_for_cluster(&v6, None, &v4))
    );
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
