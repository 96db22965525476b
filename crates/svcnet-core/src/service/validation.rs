//! Service validation as the v1.33 API server performs it: upstream's `ValidateService`,
//! `ValidateServiceUpdate` and `ValidateServiceStatusUpdate` (pkg/apis/core/validation), with the
//! helpers they call, over a Service in its JSON form.
//!
//! The object is expected after defaulting (`SetDefaults_Service`) and the REST strategy's
//! preparation, exactly as upstream validates it: that is why `type`, `sessionAffinity`,
//! `internalTrafficPolicy`, `externalTrafficPolicy` (externally reachable Services) and
//! `allocateLoadBalancerNodePorts` (LoadBalancer) are *required* here. Cluster IPs and node ports are
//! validated when present, so the same rules run before and after allocation. Metadata (name,
//! labels, annotations) is the API server's job and is not checked here.
//!
//! Errors come in upstream's order with upstream's field paths and wording, including its quirks:
//! the source-ranges path is `spec.LoadBalancerSourceRanges`, the missing
//! `allocateLoadBalancerNodePorts` is reported at the root path `allocateLoadBalancerNodePorts`, and
//! an update may report a `loadBalancerClass` format error twice (the Status message drops the
//! duplicate, see [`crate::field::aggregate_message`]).
//!
//! Feature gates are taken at their v1.33 defaults (`StrictIPCIDRValidation` off: IPs and CIDRs
//! parse leniently; `LoadBalancerIPMode` on; `AllowServiceLBStatusOnNonLB` off), except
//! `trafficDistribution`, which accepts `PreferSameZone` and `PreferSameNode` as well (see
//! [`SUPPORTED_TRAFFIC_DISTRIBUTION`]).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldPath, GoValue};
use crate::selector::{is_dns1123_label, is_dns1123_subdomain, validate_label_key, validate_labels_at};

/// `core.MaxClientIPServiceAffinitySeconds`.
pub const MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i64 = 86_400;

/// `core.AnnotationLoadBalancerSourceRangesKey`.
pub const ANNOTATION_LOAD_BALANCER_SOURCE_RANGES: &str = "service.beta.kubernetes.io/load-balancer-source-ranges";
/// `core.AnnotationTopologyMode`.
pub const ANNOTATION_TOPOLOGY_MODE: &str = "service.kubernetes.io/topology-mode";
/// `core.DeprecatedAnnotationTopologyAwareHints`.
pub const ANNOTATION_TOPOLOGY_AWARE_HINTS: &str = "service.kubernetes.io/topology-aware-hints";

/// Supported `spec.type` values, sorted as upstream lists them.
pub const SUPPORTED_SERVICE_TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
/// Supported port protocols (`supportedPortProtocols`).
pub const SUPPORTED_PORT_PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Supported `spec.sessionAffinity` values.
pub const SUPPORTED_SESSION_AFFINITY: &[&str] = &["ClientIP", "None"];
/// Supported traffic policies (external and internal).
pub const SUPPORTED_TRAFFIC_POLICIES: &[&str] = &["Cluster", "Local"];
/// Supported `spec.ipFamilies[*]` values.
pub const SUPPORTED_IP_FAMILIES: &[&str] = &["IPv4", "IPv6"];
/// Supported `spec.ipFamilyPolicy` values, sorted.
pub const SUPPORTED_IP_FAMILY_POLICIES: &[&str] = &["PreferDualStack", "RequireDualStack", "SingleStack"];
/// Supported `status.loadBalancer.ingress[*].ipMode` values, sorted.
pub const SUPPORTED_LOAD_BALANCER_IP_MODES: &[&str] = &["Proxy", "VIP"];
/// Supported `spec.trafficDistribution` values, in upstream's (unsorted) order. v1.33 with default
/// gates accepts only `PreferClose`; `PreferSameZone` and `PreferSameNode` come with the
/// `PreferSameTrafficDistribution` gate (beta and on by default from v1.34), accepted here.
pub const SUPPORTED_TRAFFIC_DISTRIBUTION: &[&str] = &["PreferClose", "PreferSameZone", "PreferSameNode"];

const PORT_RANGE_ERROR: &str = "must be between 1 and 65535, inclusive";
const IP_ERROR: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
const CIDR_ERROR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
const LOAD_BALANCER_ONLY: &str = "may only be used when `type` is 'LoadBalancer'";

/// What validation needs to know about the cluster for the checks that depend on it
/// ([`validate_service_for_cluster`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceValidationContext {
    /// The service CIDRs, primary first (`--service-cluster-ip-range`). May be empty: the
    /// cluster-dependent checks are then skipped.
    pub service_cidrs: Vec<(IpAddr, u8)>,
    /// The node-port range, inclusive (`--service-node-port-range`).
    pub node_port_range: (u16, u16),
}

impl Default for ServiceValidationContext {
    fn default() -> Self {
        ServiceValidationContext {
            service_cidrs: vec![(IpAddr::V4(Ipv4Addr::new(10, 96, 0, 0)), 12)],
            node_port_range: (30000, 32767),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reading the JSON object the way Go's decoder would fill the internal type
// ---------------------------------------------------------------------------------------

/// A present, non-null field.
fn get<'a>(obj: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    obj?.get(key).filter(|v| !v.is_null())
}

fn spec(svc: &Value) -> Option<&Value> {
    get(Some(svc), "spec")
}

fn spec_field<'a>(svc: &'a Value, key: &str) -> Option<&'a Value> {
    get(spec(svc), key)
}

/// A string field; absent, null or not a string reads as the empty string (Go's zero value).
fn spec_str<'a>(svc: &'a Value, key: &str) -> &'a str {
    spec_field(svc, key).and_then(Value::as_str).unwrap_or("")
}

/// A `*string` field: `None` when absent or null.
fn spec_opt_str<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    spec_field(svc, key).map(|v| v.as_str().unwrap_or(""))
}

/// A `[]string` field: `None` when absent or null (a nil slice), else its items.
fn spec_strings(svc: &Value, key: &str) -> Option<Vec<String>> {
    spec_field(svc, key).map(|v| {
        v.as_array()
            .map(|items| items.iter().map(|i| i.as_str().unwrap_or("").to_string()).collect())
            .unwrap_or_default()
    })
}

fn service_type(svc: &Value) -> &str {
    spec_str(svc, "type")
}

fn cluster_ips(svc: &Value) -> Vec<String> {
    spec_strings(svc, "clusterIPs").unwrap_or_default()
}

fn ip_families(svc: &Value) -> Vec<String> {
    spec_strings(svc, "ipFamilies").unwrap_or_default()
}

fn ip_family_policy(svc: &Value) -> Option<&str> {
    spec_opt_str(svc, "ipFamilyPolicy")
}

fn external_ips(svc: &Value) -> Vec<String> {
    spec_strings(svc, "externalIPs").unwrap_or_default()
}

fn health_check_node_port(svc: &Value) -> i64 {
    spec_field(svc, "healthCheckNodePort")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn annotations(svc: &Value) -> Option<&Map<String, Value>> {
    get(get(Some(svc), "metadata"), "annotations").and_then(Value::as_object)
}

fn annotation<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    annotations(svc)?.get(key).map(|v| v.as_str().unwrap_or(""))
}

/// `[]string` as `%#v` prints it.
fn string_slice(items: Option<Vec<String>>) -> GoValue {
    GoValue::StringSlice("string", items)
}

fn cluster_ips_value(svc: &Value) -> GoValue {
    string_slice(spec_strings(svc, "clusterIPs"))
}

fn ip_families_value(svc: &Value) -> GoValue {
    GoValue::StringSlice("core.IPFamily", spec_strings(svc, "ipFamilies"))
}

/// `intstr.IntOrString`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IntOrString {
    Int(i64),
    Str(String),
}

/// One `spec.ports[]` entry with Go's zero values for what is missing.
#[derive(Debug, Clone)]
struct Port<'a> {
    name: &'a str,
    protocol: &'a str,
    app_protocol: Option<&'a str>,
    port: i64,
    target_port: IntOrString,
    node_port: i64,
}

fn ports(svc: &Value) -> Vec<Port<'_>> {
    let Some(items) = spec_field(svc, "ports").and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|p| {
            let s = |k: &str| get(Some(p), k).and_then(Value::as_str).unwrap_or("");
            let n = |k: &str| get(Some(p), k).and_then(Value::as_i64).unwrap_or(0);
            Port {
                name: s("name"),
                protocol: s("protocol"),
                app_protocol: get(Some(p), "appProtocol").map(|v| v.as_str().unwrap_or("")),
                port: n("port"),
                target_port: match get(Some(p), "targetPort") {
                    Some(Value::String(t)) => IntOrString::Str(t.clone()),
                    Some(v) => IntOrString::Int(v.as_i64().unwrap_or(0)),
                    None => IntOrString::Int(0),
                },
                node_port: n("nodePort"),
            }
        })
        .collect()
}

/// `isHeadlessService`: exactly one cluster IP, `None`.
fn is_headless(svc: &Value) -> bool {
    let ips = cluster_ips(svc);
    ips.len() == 1 && ips[0] == "None"
}

/// `apiservice.ExternallyAccessible`.
fn externally_accessible(svc: &Value) -> bool {
    match service_type(svc) {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !external_ips(svc).is_empty(),
        _ => false,
    }
}

/// `apiservice.NeedsHealthCheck`: LoadBalancer with `externalTrafficPolicy: Local`.
fn needs_health_check(svc: &Value) -> bool {
    service_type(svc) == "LoadBalancer" && spec_str(svc, "externalTrafficPolicy") == "Local"
}

// ---------------------------------------------------------------------------------------
// Small validators from apimachinery's util/validation
// ---------------------------------------------------------------------------------------

/// `netutils.ParseIPSloppy`: Go's `net.ParseIP`, which also takes IPv4 octets with leading zeros
/// (read as decimal). IPv4-mapped IPv6 addresses come back as IPv4, as Go treats them.
pub fn parse_ip_sloppy(value: &str) -> Option<IpAddr> {
    let ip = match value.parse::<IpAddr>() {
        Ok(ip) => ip,
        Err(_) => {
            if value.contains(':') {
                return None;
            }
            let parts: Vec<&str> = value.split('.').collect();
            if parts.len() != 4 {
                return None;
            }
            let mut octets = [0u8; 4];
            for (octet, part) in octets.iter_mut().zip(&parts) {
                if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                *octet = u8::try_from(part.parse::<u16>().ok()?).ok()?;
            }
            IpAddr::V4(Ipv4Addr::from(octets))
        }
    };
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// `netutils.ParseCIDRSloppy`: an IP (sloppy) and a decimal prefix length within the address size.
pub fn parse_cidr_sloppy(value: &str) -> Option<(IpAddr, u8)> {
    let (ip, prefix) = value.split_once('/')?;
    let literal_v6 = ip.contains(':');
    let ip = parse_ip_sloppy(ip)?;
    if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let bits = if literal_v6 { 128 } else { 32 };
    (prefix <= bits).then_some((ip, prefix))
}

/// The IP family of an address string (`IPv6` only for real IPv6; IPv4-mapped counts as IPv4).
fn family_of(ip: &str) -> &'static str {
    match parse_ip_sloppy(ip) {
        Some(IpAddr::V6(_)) => "IPv6",
        _ => "IPv4",
    }
}

/// `validation.IsValidIP` with lenient parsing (`IsValidIPForLegacyField`).
fn validate_ip(path: &FieldPath, value: &str) -> Vec<FieldError> {
    match parse_ip_sloppy(value) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(path, value, IP_ERROR)],
    }
}

/// `validation.IsValidCIDR` with lenient parsing (`IsValidCIDRForLegacyField`).
fn validate_cidr(path: &FieldPath, value: &str) -> Vec<FieldError> {
    match parse_cidr_sloppy(value) {
        Some(_) => Vec::new(),
        None => vec![FieldError::invalid(path, value, CIDR_ERROR)],
    }
}

/// `ValidateNonSpecialIP` (`ValidateEndpointIP`): no unspecified, loopback, link-local or
/// link-local multicast addresses.
fn validate_non_special_ip(path: &FieldPath, value: &str) -> Vec<FieldError> {
    let Some(ip) = parse_ip_sloppy(value) else {
        return vec![FieldError::invalid(path, value, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(FieldError::invalid(
            path,
            value,
            format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let (link_local, link_local_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (o[0] == 169 && o[1] == 254, o[0] == 224 && o[1] == 0 && o[2] == 0)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0 == 0xfe80, s[0] & 0xff0f == 0xff02)
        }
    };
    if link_local {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if link_local_multicast {
        errs.push(FieldError::invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

/// `validation.IsValidPortNum`.
fn is_valid_port_num(port: i64) -> bool {
    (1..=65535).contains(&port)
}

/// `validation.IsValidPortName`: an IANA_SVC_NAME.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > 15 {
        errs.push("must be no more than 15 characters".to_string());
    }
    if port.is_empty()
        || !port
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".to_string());
    }
    if !port.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".to_string());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".to_string());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".to_string());
    }
    errs
}

/// `ValidatePortNumOrName`.
fn validate_port_num_or_name(path: &FieldPath, port: &IntOrString) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) if !is_valid_port_num(*n) => vec![FieldError::invalid(path, *n, PORT_RANGE_ERROR)],
        IntOrString::Int(_) => Vec::new(),
        IntOrString::Str(s) => is_valid_port_name(s)
            .into_iter()
            .map(|msg| FieldError::invalid(path, s.as_str(), msg))
            .collect(),
    }
}

/// `ValidateQualifiedName`.
fn validate_qualified_name(path: &FieldPath, value: &str) -> Vec<FieldError> {
    validate_label_key(value)
        .into_iter()
        .map(|msg| FieldError::invalid(path, value, msg))
        .collect()
}

// ---------------------------------------------------------------------------------------
// ValidateService
// ---------------------------------------------------------------------------------------

/// Validates a Service being created (`ValidateServiceCreate`).
pub fn validate_service_create(svc: &Value) -> Vec<FieldError> {
    validate_service(svc)
}

/// Validates an update (`ValidateServiceUpdate`): the transitions allowed for cluster IPs, IP
/// families, `loadBalancerClass` and `healthCheckNodePort`, then every create rule on `new`.
///
/// Cluster IPs may not change once set, except: adding or removing the secondary family's IP (a
/// removal needs `ipFamilyPolicy: SingleStack`), any change to, from or within ExternalName, and
/// changes between headless Services. `loadBalancerClass` may not change while the Service stays a
/// LoadBalancer; `healthCheckNodePort` may not change while the Service needs one.
pub fn validate_service_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = validate_upgrade_downgrade_cluster_ips(old, new);
    errs.extend(validate_upgrade_downgrade_ip_families(old, new));
    errs.extend(validate_load_balancer_class(Some(old), new));
    errs.extend(validate_external_traffic_fields_update(old, new));
    errs.extend(validate_service(new));
    errs
}

/// `ValidateService` (without metadata).
fn validate_service(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec_path = FieldPath::new("spec");

    if let (Some(mode), Some(hints)) = (
        annotation(svc, ANNOTATION_TOPOLOGY_MODE),
        annotation(svc, ANNOTATION_TOPOLOGY_AWARE_HINTS),
    ) {
        if mode != hints {
            errs.push(FieldError::invalid(
                FieldPath::new("metadata")
                    .child("annotations")
                    .key(ANNOTATION_TOPOLOGY_MODE),
                mode,
                format!("must match annotations[{ANNOTATION_TOPOLOGY_AWARE_HINTS}] when both are specified"),
            ));
        }
    }

    let headless = is_headless(svc);
    let kind = service_type(svc);
    let ports = ports(svc);
    if ports.is_empty() && !headless && kind != "ExternalName" {
        errs.push(FieldError::required(spec_path.child("ports"), ""));
    }
    match kind {
        "LoadBalancer" | "NodePort" if headless => errs.push(FieldError::invalid(
            spec_path.child("clusterIPs").index(0),
            "None",
            format!("may not be set to 'None' for {kind} services"),
        )),
        "ExternalName" => {
            if !cluster_ips(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    spec_path.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !ip_families(svc).is_empty() {
                errs.push(FieldError::forbidden(
                    spec_path.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if ip_family_policy(svc).is_some() {
                errs.push(FieldError::forbidden(
                    spec_path.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            // The name (a CNAME) may end in a dot to mark it fully qualified.
            let external_name = spec_str(svc, "externalName");
            let cname = external_name.strip_suffix('.').unwrap_or(external_name);
            if cname.is_empty() {
                errs.push(FieldError::required(spec_path.child("externalName"), ""));
            } else {
                for msg in is_dns1123_subdomain(cname) {
                    errs.push(FieldError::invalid(spec_path.child("externalName"), cname, msg));
                }
            }
        }
        _ => {}
    }

    let ports_path = spec_path.child("ports");
    let mut port_names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        errs.extend(validate_service_port(
            port,
            ports.len() > 1,
            &mut port_names,
            &ports_path.index(i),
        ));
    }

    if let Some(selector) = spec_field(svc, "selector").and_then(Value::as_object) {
        errs.extend(validate_labels_at(selector, spec_path.child("selector").as_str()));
    }

    let affinity = spec_str(svc, "sessionAffinity");
    if affinity.is_empty() {
        errs.push(FieldError::required(spec_path.child("sessionAffinity"), ""));
    } else if !SUPPORTED_SESSION_AFFINITY.contains(&affinity) {
        errs.push(FieldError::not_supported(
            spec_path.child("sessionAffinity"),
            affinity,
            SUPPORTED_SESSION_AFFINITY,
        ));
    }
    let config_path = spec_path.child("sessionAffinityConfig");
    match affinity {
        "ClientIP" => errs.extend(validate_client_ip_affinity_config(
            spec_field(svc, "sessionAffinityConfig"),
            &config_path,
        )),
        "None" if spec_field(svc, "sessionAffinityConfig").is_some() => errs.push(FieldError::forbidden(
            config_path,
            "must not be set when session affinity is None",
        )),
        _ => {}
    }

    errs.extend(validate_cluster_ips_related_fields(svc));

    let external_ips_path = spec_path.child("externalIPs");
    for (i, ip) in external_ips(svc).iter().enumerate() {
        let path = external_ips_path.index(i);
        let ip_errs = validate_ip(&path, ip);
        if ip_errs.is_empty() {
            errs.extend(validate_non_special_ip(&path, ip));
        } else {
            errs.extend(ip_errs);
        }
    }

    if kind.is_empty() {
        errs.push(FieldError::required(spec_path.child("type"), ""));
    } else if !SUPPORTED_SERVICE_TYPES.contains(&kind) {
        errs.push(FieldError::not_supported(
            spec_path.child("type"),
            kind,
            SUPPORTED_SERVICE_TYPES,
        ));
    }

    if kind == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if port.node_port != 0 {
                errs.push(FieldError::forbidden(
                    ports_path.index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }

    // Node ports and ports must be unique per protocol.
    let mut node_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        if port.node_port != 0 && !node_ports.insert((port.protocol, port.node_port)) {
            errs.push(FieldError::duplicate(
                ports_path.index(i).child("nodePort"),
                port.node_port,
            ));
        }
    }
    let mut service_ports = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        if !service_ports.insert((port.protocol, port.port)) {
            errs.push(FieldError::duplicate(ports_path.index(i), duplicate_port_key(port)));
        }
    }

    errs.extend(validate_source_ranges(svc));

    let allocate_path = spec_path.child("allocateLoadBalancerNodePorts");
    let allocate = spec_field(svc, "allocateLoadBalancerNodePorts");
    if allocate.is_some() && kind != "LoadBalancer" {
        errs.push(FieldError::forbidden(allocate_path, LOAD_BALANCER_ONLY));
    }
    if kind == "LoadBalancer" && allocate.is_none() {
        // Upstream reports this one at the root path.
        errs.push(FieldError::required("allocateLoadBalancerNodePorts", ""));
    }

    errs.extend(validate_load_balancer_class(None, svc));
    errs.extend(validate_external_traffic_policy(svc));
    errs.extend(validate_internal_traffic_policy(svc));
    errs.extend(validate_traffic_distribution(svc));
    errs
}

/// The `(protocol, port)` key upstream reports for a duplicate port: an internal
/// `core.ServicePort` holding only those two fields, printed with `%#v`.
fn duplicate_port_key(port: &Port) -> GoValue {
    GoValue::Raw(format!(
        "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, \
         TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
        crate::field::go_quote(port.protocol),
        port.port
    ))
}

/// `validateServicePort`.
fn validate_service_port<'a>(
    port: &Port<'a>,
    require_name: bool,
    names: &mut HashSet<&'a str>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if require_name && port.name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !port.name.is_empty() {
        for msg in is_dns1123_label(port.name) {
            errs.push(FieldError::invalid(path.child("name"), port.name, msg));
        }
        if !names.insert(port.name) {
            errs.push(FieldError::duplicate(path.child("name"), port.name));
        }
    }

    if !is_valid_port_num(port.port) {
        errs.push(FieldError::invalid(path.child("port"), port.port, PORT_RANGE_ERROR));
    }

    if port.protocol.is_empty() {
        errs.push(FieldError::required(path.child("protocol"), ""));
    } else if !SUPPORTED_PORT_PROTOCOLS.contains(&port.protocol) {
        errs.push(FieldError::not_supported(
            path.child("protocol"),
            port.protocol,
            SUPPORTED_PORT_PROTOCOLS,
        ));
    }

    errs.extend(validate_port_num_or_name(&path.child("targetPort"), &port.target_port));

    if let Some(app_protocol) = port.app_protocol {
        errs.extend(validate_qualified_name(&path.child("appProtocol"), app_protocol));
    }
    errs
}

/// `validateClientIPAffinityConfig` and `validateAffinityTimeout`.
fn validate_client_ip_affinity_config(config: Option<&Value>, path: &FieldPath) -> Vec<FieldError> {
    const DETAIL: &str = "when session affinity type is ClientIP";
    let Some(config) = config else {
        return vec![FieldError::required(path, DETAIL)];
    };
    let client_path = path.child("clientIP");
    let Some(client) = get(Some(config), "clientIP") else {
        return vec![FieldError::required(client_path, DETAIL)];
    };
    let timeout_path = client_path.child("timeoutSeconds");
    let Some(timeout) = get(Some(client), "timeoutSeconds") else {
        return vec![FieldError::required(timeout_path, DETAIL)];
    };
    let timeout = timeout.as_i64().unwrap_or(0);
    if timeout <= 0 || timeout > MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS {
        return vec![FieldError::invalid(
            timeout_path,
            timeout,
            format!("must be greater than 0 and less than {MAX_CLIENT_IP_SERVICE_AFFINITY_SECONDS}"),
        )];
    }
    Vec::new()
}

/// `spec.loadBalancerSourceRanges`, or else the legacy annotation: LoadBalancer only, CIDRs
/// (space-padding tolerated, as upstream does for historical reasons).
fn validate_source_ranges(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let is_lb = service_type(svc) == "LoadBalancer";
    let ranges = spec_strings(svc, "loadBalancerSourceRanges").unwrap_or_default();
    if !ranges.is_empty() {
        let path = FieldPath::new("spec").child("LoadBalancerSourceRanges");
        if !is_lb {
            errs.push(FieldError::forbidden(&path, LOAD_BALANCER_ONLY));
        }
        for (i, value) in ranges.iter().enumerate() {
            errs.extend(validate_cidr(&path.index(i), value.trim()));
        }
    } else if let Some(value) = annotation(svc, ANNOTATION_LOAD_BALANCER_SOURCE_RANGES) {
        let path = FieldPath::new("metadata")
            .child("annotations")
            .key(ANNOTATION_LOAD_BALANCER_SOURCE_RANGES);
        if !is_lb {
            errs.push(FieldError::forbidden(&path, LOAD_BALANCER_ONLY));
        }
        let value = value.trim();
        if !value.is_empty() {
            for cidr in value.split(',') {
                errs.extend(validate_cidr(&path, cidr.trim()));
            }
        }
    }
    errs
}

/// `validateLoadBalancerClassField`: LoadBalancer only, a qualified name, and (on update) fixed
/// while the Service stays a LoadBalancer.
fn validate_load_balancer_class(old: Option<&Value>, svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let path = FieldPath::new("spec").child("loadBalancerClass");
    let class = spec_opt_str(svc, "loadBalancerClass");
    let is_lb = service_type(svc) == "LoadBalancer";
    if let Some(old) = old {
        if service_type(old) == "LoadBalancer" && is_lb && spec_opt_str(old, "loadBalancerClass") != class {
            errs.push(FieldError::invalid(&path, class, "may not change once set"));
        }
    }
    if is_lb {
        if let Some(class) = class {
            errs.extend(validate_qualified_name(&path, class));
        }
    } else if class.is_some() {
        errs.push(FieldError::forbidden(&path, LOAD_BALANCER_ONLY));
    }
    errs
}

/// `validateServiceExternalTrafficPolicy`: the policy is required for externally reachable
/// Services and refused on others; `healthCheckNodePort` exactly for LoadBalancer + Local.
fn validate_external_traffic_policy(svc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec_path = FieldPath::new("spec");
    let policy = spec_str(svc, "externalTrafficPolicy");
    if !externally_accessible(svc) {
        if !policy.is_empty() {
            errs.push(FieldError::invalid(
                spec_path.child("externalTrafficPolicy"),
                policy,
                "may only be set for externally-accessible services",
            ));
        }
    } else if policy.is_empty() {
        errs.push(FieldError::required(spec_path.child("externalTrafficPolicy"), ""));
    } else if !SUPPORTED_TRAFFIC_POLICIES.contains(&policy) {
        errs.push(FieldError::not_supported(
            spec_path.child("externalTrafficPolicy"),
            policy,
            SUPPORTED_TRAFFIC_POLICIES,
        ));
    }

    let hc_path = spec_path.child("healthCheckNodePort");
    let hc = health_check_node_port(svc);
    if !needs_health_check(svc) {
        if hc != 0 {
            errs.push(FieldError::invalid(
                hc_path,
                hc,
                "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
            ));
        }
    } else if hc == 0 {
        errs.push(FieldError::required(hc_path, ""));
    } else if !is_valid_port_num(hc) {
        errs.push(FieldError::invalid(hc_path, hc, PORT_RANGE_ERROR));
    }
    errs
}

/// `validateServiceExternalTrafficFieldsUpdate`.
fn validate_external_traffic_fields_update(old: &Value, new: &Value) -> Vec<FieldError> {
    if needs_health_check(old) && needs_health_check(new) && health_check_node_port(old) != health_check_node_port(new)
    {
        return vec![FieldError::forbidden("spec.healthCheckNodePort", "field is immutable")];
    }
    Vec::new()
}

/// `validateServiceInternalTrafficFieldsValue`: required for ClusterIP, NodePort and
/// LoadBalancer (tolerated but not required on ExternalName, for historical reasons).
fn validate_internal_traffic_policy(svc: &Value) -> Vec<FieldError> {
    let path = FieldPath::new("spec").child("internalTrafficPolicy");
    match spec_opt_str(svc, "internalTrafficPolicy") {
        None if matches!(service_type(svc), "ClusterIP" | "NodePort" | "LoadBalancer") => {
            vec![FieldError::required(path, "")]
        }
        Some(policy) if !SUPPORTED_TRAFFIC_POLICIES.contains(&policy) => {
            vec![FieldError::not_supported(path, policy, SUPPORTED_TRAFFIC_POLICIES)]
        }
        _ => Vec::new(),
    }
}

/// `validateServiceTrafficDistribution`.
fn validate_traffic_distribution(svc: &Value) -> Vec<FieldError> {
    match spec_opt_str(svc, "trafficDistribution") {
        Some(value) if !SUPPORTED_TRAFFIC_DISTRIBUTION.contains(&value) => vec![FieldError::not_supported(
            "spec.trafficDistribution",
            value,
            SUPPORTED_TRAFFIC_DISTRIBUTION,
        )],
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Cluster IPs, IP families and their policy
// ---------------------------------------------------------------------------------------

/// `ValidateServiceClusterIPsRelatedFields`: `clusterIP` and `clusterIPs` agree, at most one IP
/// per family (and at most two), families and policy have supported values, and each IP matches
/// the family listed at its index. Part of [`validate_service_create`]; exported because upstream
/// also runs it on its own before allocating addresses.
pub fn validate_cluster_ips_related_fields(svc: &Value) -> Vec<FieldError> {
    if service_type(svc) == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let spec_path = FieldPath::new("spec");
    let ips_path = spec_path.child("clusterIPs");
    let families_path = spec_path.child("ipFamilies");
    let cluster_ip = spec_str(svc, "clusterIP");
    let ips = cluster_ips(svc);
    let families = ip_families(svc);

    if !cluster_ip.is_empty() {
        if ips.is_empty() {
            errs.push(FieldError::required(&ips_path, ""));
        } else if ips[0] != cluster_ip {
            errs.push(FieldError::invalid(
                &ips_path,
                cluster_ips_value(svc),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(FieldError::invalid(
            &ips_path,
            cluster_ips_value(svc),
            "must be empty when `clusterIP` is not specified",
        ));
    }

    let mut seen = HashSet::new();
    for (i, family) in families.iter().enumerate() {
        if !SUPPORTED_IP_FAMILIES.contains(&family.as_str()) {
            errs.push(FieldError::not_supported(
                families_path.index(i),
                family,
                SUPPORTED_IP_FAMILIES,
            ));
        }
        if !seen.insert(family.as_str()) {
            errs.push(FieldError::duplicate(families_path.index(i), family));
        }
    }

    if let Some(policy) = ip_family_policy(svc) {
        if !SUPPORTED_IP_FAMILY_POLICIES.contains(&policy) {
            errs.push(FieldError::not_supported(
                spec_path.child("ipFamilyPolicy"),
                policy,
                SUPPORTED_IP_FAMILY_POLICIES,
            ));
        }
    }

    let mut has_invalid_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                has_invalid_ips = true;
                errs.push(FieldError::invalid(
                    &ips_path,
                    cluster_ips_value(svc),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        let ip_errs = validate_ip(&ips_path.index(i), ip);
        has_invalid_ips |= !ip_errs.is_empty();
        errs.extend(ip_errs);
    }

    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            &ips_path,
            cluster_ips_value(svc),
            "may only hold up to 2 values",
        ));
    }

    // Bad or misplaced values would only skew the checks below.
    if has_invalid_ips {
        return errs;
    }

    if ips.len() > 1 {
        let v6 = ips.iter().filter(|ip| family_of(ip) == "IPv6").count();
        if v6 == 0 || v6 == ips.len() {
            errs.push(FieldError::invalid(
                &ips_path,
                cluster_ips_value(svc),
                "may specify no more than one IP for each IP family",
            ));
        }
    }

    if !is_headless(svc) && !ips.is_empty() && !families.is_empty() {
        for (i, (ip, family)) in ips.iter().zip(&families).enumerate() {
            let is_v6 = family_of(ip) == "IPv6";
            if family == "IPv4" && is_v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ip,
                    format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if family == "IPv6" && !is_v6 {
                errs.push(FieldError::invalid(
                    ips_path.index(i),
                    ip,
                    format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// `validateUpgradeDowngradeClusterIPs`.
fn validate_upgrade_downgrade_cluster_ips(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if service_type(new) == "ExternalName" || service_type(old) == "ExternalName" {
        return errs;
    }
    if is_headless(old) && is_headless(new) {
        return errs;
    }
    let path = FieldPath::new("spec").child("clusterIPs");
    let (old_ips, new_ips) = (cluster_ips(old), cluster_ips(new));
    if old_ips.len() == new_ips.len() {
        for (i, ip) in old_ips.iter().enumerate() {
            if *ip != new_ips[i] {
                errs.push(FieldError::invalid(
                    path.index(i),
                    cluster_ips_value(new),
                    "may not change once set",
                ));
            }
        }
    } else if old_ips.len() > new_ips.len() {
        if new_ips.is_empty() {
            errs.push(FieldError::invalid(
                path.index(0),
                cluster_ips_value(new),
                "primary clusterIP can not be unset",
            ));
        }
        if !old_ips.is_empty() && !new_ips.is_empty() && new_ips[0] != old_ips[0] {
            errs.push(FieldError::invalid(
                path.index(0),
                cluster_ips_value(new),
                "may not change once set",
            ));
        }
        if new_ips.len() == 1 && ip_family_policy(new) != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                ip_family_policy(new),
                "must be set to 'SingleStack' when releasing the secondary clusterIP",
            ));
        }
    } else if !old_ips.is_empty() && new_ips[0] != old_ips[0] {
        errs.push(FieldError::invalid(
            path.index(0),
            cluster_ips_value(new),
            "may not change once set",
        ));
    }
    errs
}

/// `validateUpgradeDowngradeIPFamilies`, with upstream's choice of reported values.
fn validate_upgrade_downgrade_ip_families(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if service_type(new) == "ExternalName" || service_type(old) == "ExternalName" {
        return errs;
    }
    // To, from and between headless Services the families may change.
    if is_headless(old) || is_headless(new) {
        return errs;
    }
    let path = FieldPath::new("spec").child("ipFamilies").index(0);
    let (old_families, new_families) = (ip_families(old), ip_families(new));
    if old_families.len() == new_families.len() {
        for (i, family) in old_families.iter().enumerate() {
            if *family != new_families[i] {
                errs.push(FieldError::invalid(
                    &path,
                    ip_families_value(new),
                    "may not change once set",
                ));
            }
        }
    } else if old_families.len() > new_families.len() {
        if cluster_ips(new).is_empty() {
            errs.push(FieldError::invalid(
                &path,
                ip_families_value(new),
                "primary ipFamily can not be unset",
            ));
        }
        if !new_families.is_empty() && new_families[0] != old_families[0] {
            errs.push(FieldError::invalid(
                &path,
                cluster_ips_value(new),
                "may not change once set",
            ));
        }
        if new_families.len() == 1 && ip_family_policy(new) != Some("SingleStack") {
            errs.push(FieldError::invalid(
                "spec.ipFamilyPolicy",
                ip_family_policy(new),
                "must be set to 'SingleStack' when releasing the secondary ipFamily",
            ));
        }
    } else if !old_families.is_empty() && new_families[0] != old_families[0] {
        errs.push(FieldError::invalid(
            &path,
            cluster_ips_value(new),
            "may not change once set",
        ));
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Status
// ---------------------------------------------------------------------------------------

/// `ValidateServiceStatusUpdate` (without metadata): `status.loadBalancer.ingress` only on
/// LoadBalancer Services, valid IPs with an `ipMode` (VIP or Proxy) exactly when an IP is set,
/// and DNS names (not IPs) as hostnames.
pub fn validate_service_status_update(new: &Value, _old: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ingress_path = FieldPath::new("status").child("loadBalancer").child("ingress");
    let ingress = get(get(get(Some(new), "status"), "loadBalancer"), "ingress")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if service_type(new) != "LoadBalancer" && !ingress.is_empty() {
        errs.push(FieldError::forbidden(
            ingress_path,
            "may only be used when `spec.type` is 'LoadBalancer'",
        ));
        return errs;
    }
    for (i, entry) in ingress.iter().enumerate() {
        let path = ingress_path.index(i);
        let ip = get(Some(entry), "ip").and_then(Value::as_str).unwrap_or("");
        let hostname = get(Some(entry), "hostname").and_then(Value::as_str).unwrap_or("");
        let ip_mode = get(Some(entry), "ipMode").map(|v| v.as_str().unwrap_or(""));
        if !ip.is_empty() {
            errs.extend(validate_ip(&path.child("ip"), ip));
        }
        match ip_mode {
            None if !ip.is_empty() => errs.push(FieldError::required(
                path.child("ipMode"),
                "must be specified when `ip` is set",
            )),
            Some(_) if ip.is_empty() => errs.push(FieldError::forbidden(
                path.child("ipMode"),
                "may not be specified when `ip` is not set",
            )),
            Some(mode) if !SUPPORTED_LOAD_BALANCER_IP_MODES.contains(&mode) => errs.push(FieldError::not_supported(
                path.child("ipMode"),
                mode,
                SUPPORTED_LOAD_BALANCER_IP_MODES,
            )),
            _ => {}
        }
        if !hostname.is_empty() {
            for msg in is_dns1123_subdomain(hostname) {
                errs.push(FieldError::invalid(path.child("hostname"), hostname, msg));
            }
            if parse_ip_sloppy(hostname).is_some() {
                errs.push(FieldError::invalid(
                    path.child("hostname"),
                    hostname,
                    "must be a DNS name, not an IP address",
                ));
            }
        }
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Checks that depend on the cluster's configuration
// ---------------------------------------------------------------------------------------

fn cidr_family(cidr: &(IpAddr, u8)) -> &'static str {
    match cidr.0 {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// Whether `ip` is an allocatable address of `cidr`: inside it, and neither the network address
/// nor (IPv4) the broadcast address.
fn cidr_contains(cidr: &(IpAddr, u8), ip: IpAddr) -> bool {
    let (bits, base, addr) = match (cidr.0, ip) {
        (IpAddr::V4(b), IpAddr::V4(a)) => (32u32, u128::from(u32::from(b)), u128::from(u32::from(a))),
        (IpAddr::V6(b), IpAddr::V6(a)) => (128u32, u128::from(b), u128::from(a)),
        _ => return false,
    };
    let prefix = u32::from(cidr.1).min(bits);
    let host_bits = bits - prefix;
    let mask = if host_bits >= 128 {
        0
    } else {
        !((1u128 << host_bits) - 1)
    };
    let network = base & mask;
    if addr & mask != network || addr == network {
        return false;
    }
    let broadcast = if host_bits >= 128 {
        u128::MAX
    } else {
        network | ((1u128 << host_bits) - 1)
    };
    !(bits == 32 && host_bits > 0 && addr == broadcast)
}

fn cidr_string(cidr: &(IpAddr, u8)) -> String {
    format!("{}/{}", cidr.0, cidr.1)
}

/// Upstream's `isMatchingPreferDualStackClusterIPFields`: an update that leaves a PreferDualStack
/// Service's addresses and families alone is not re-examined.
fn is_matching_prefer_dual_stack(new: &Value, old: &Value) -> bool {
    let Some(policy) = ip_family_policy(new) else {
        return false;
    };
    let kind = service_type(new);
    kind == service_type(old)
        && matches!(kind, "ClusterIP" | "NodePort" | "LoadBalancer")
        && policy == "PreferDualStack"
        && ip_family_policy(old).is_none_or(|p| p == "PreferDualStack")
        && cluster_ips(new) == cluster_ips(old)
        && ip_families(new) == ip_families(old)
}

/// The checks upstream makes while initialising IP families and allocating addresses, as far as
/// they depend only on the cluster's configuration (`initIPFamilyFields` and the range checks of
/// the IP and port allocators):
///
/// - `RequireDualStack` on a single-stack cluster, families or requested IPs of a family the
///   cluster does not serve, `SingleStack` with two IPs or families, and (on update) releasing a
///   secondary IP or family without `SingleStack`;
/// - a requested cluster IP outside the service CIDR of its family, and a requested node port
///   outside the node-port range (on update, only values the old object did not hold).
///
/// Like upstream, it first runs [`validate_cluster_ips_related_fields`] and stops at its errors,
/// and reports at most one allocation error. A missing `ipFamilyPolicy` is inferred as upstream
/// does (the old object's; `RequireDualStack` for headless Services without a selector;
/// `SingleStack` otherwise). Whether a requested value is already taken is the allocator's
/// business. Nothing is checked when `ctx.service_cidrs` is empty or for ExternalName Services.
pub fn validate_service_for_cluster(
    new: &Value,
    old: Option<&Value>,
    ctx: &ServiceValidationContext,
) -> Vec<FieldError> {
    if service_type(new) == "ExternalName" || ctx.service_cidrs.is_empty() {
        return Vec::new();
    }
    let errs = validate_family_fields(new, old, ctx);
    if !errs.is_empty() {
        return errs;
    }
    validate_requested_ranges(new, old, ctx)
}

/// The IP-family half of [`validate_service_for_cluster`], upstream's `initIPFamilyFields`: what the
/// API server checks before it allocates anything (the address ranges are then the allocator's
/// business). Nothing is checked when `ctx.service_cidrs` is empty or for ExternalName Services.
pub fn validate_ip_family_fields(new: &Value, old: Option<&Value>, ctx: &ServiceValidationContext) -> Vec<FieldError> {
    if service_type(new) == "ExternalName" || ctx.service_cidrs.is_empty() {
        return Vec::new();
    }
    validate_family_fields(new, old, ctx)
}

fn validate_family_fields(new: &Value, old: Option<&Value>, ctx: &ServiceValidationContext) -> Vec<FieldError> {
    if old.is_some_and(|old| is_matching_prefer_dual_stack(new, old)) {
        return Vec::new();
    }
    let configured: Vec<&str> = {
        let mut f: Vec<&str> = ctx.service_cidrs.iter().map(cidr_family).collect();
        f.dedup();
        f.sort_unstable();
        f.dedup();
        f
    };
    let headless_selectorless = spec_str(new, "clusterIP") == "None"
        && spec_field(new, "selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
    let policy: String = match ip_family_policy(new) {
        Some(p) => p.to_string(),
        None => match old.and_then(ip_family_policy) {
            Some(p) => p.to_string(),
            None if headless_selectorless => "RequireDualStack".to_string(),
            None => "SingleStack".to_string(),
        },
    };

    let errs = validate_cluster_ips_related_fields(new);
    if !errs.is_empty() {
        return errs;
    }

    let mut errs = Vec::new();
    let policy_path = "spec.ipFamilyPolicy";
    let mut ips = cluster_ips(new);
    let mut families = ip_families(new);
    if let Some(old) = old {
        if policy == "SingleStack" {
            // Setting SingleStack with unchanged fields is a clear request to drop the secondary.
            if ips == cluster_ips(old) && ips.len() > 1 {
                ips.truncate(1);
            }
            if families == ip_families(old) && families.len() > 1 {
                families.truncate(1);
            }
        } else {
            let old_ips = cluster_ips(old);
            let old_families = ip_families(old);
            if !ips.is_empty() && ips.len() < old_ips.len() {
                errs.push(FieldError::invalid(
                    policy_path,
                    policy.as_str(),
                    "must be 'SingleStack' to release the secondary cluster IP",
                ));
            }
            if !families.is_empty() && families.len() < old_families.len() {
                errs.push(FieldError::invalid(
                    policy_path,
                    policy.as_str(),
                    "must be 'SingleStack' to release the secondary IP family",
                ));
            }
        }
    }

    if policy == "SingleStack" {
        if ips.len() == 2 {
            errs.push(FieldError::invalid(
                policy_path,
                policy.as_str(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple cluster IPs are specified",
            ));
        }
        if families.len() == 2 {
            errs.push(FieldError::invalid(
                policy_path,
                policy.as_str(),
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified",
            ));
        }
    }

    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            break;
        }
        let family = family_of(ip);
        if i >= families.len() {
            if configured.contains(&family) {
                families.push(family.to_string());
            } else {
                errs.push(FieldError::invalid(
                    FieldPath::new("spec").child("clusterIPs").index(i),
                    string_slice(Some(ips.clone())),
                    format!("{family} is not configured on this cluster"),
                ));
            }
        }
    }
    if !errs.is_empty() {
        return errs;
    }

    // Headless Services without a selector may carry any families.
    if headless_selectorless {
        return errs;
    }

    if policy == "RequireDualStack" && configured.len() < 2 {
        errs.push(FieldError::invalid(
            policy_path,
            policy.as_str(),
            "this cluster is not configured for dual-stack services",
        ));
    }
    for (i, family) in families.iter().enumerate() {
        if !configured.contains(&family.as_str()) {
            errs.push(FieldError::invalid(
                FieldPath::new("spec").child("ipFamilies").index(i),
                family,
                "not configured on this cluster",
            ));
        }
    }
    errs
}

fn validate_requested_ranges(new: &Value, old: Option<&Value>, ctx: &ServiceValidationContext) -> Vec<FieldError> {
    let old_ips = old.map(cluster_ips).unwrap_or_default();
    let moved_from_external_name = old.is_some_and(|o| service_type(o) == "ExternalName");
    if !is_headless(new) {
        for ip in cluster_ips(new) {
            if ip.is_empty() || (!moved_from_external_name && old_ips.contains(&ip)) {
                continue;
            }
            let Some(addr) = parse_ip_sloppy(&ip) else {
                continue;
            };
            let family = family_of(&ip);
            let Some(cidr) = ctx.service_cidrs.iter().find(|c| cidr_family(c) == family) else {
                continue;
            };
            if !cidr_contains(cidr, addr) {
                return vec![FieldError::invalid(
                    "spec.clusterIPs",
                    cluster_ips_value(new),
                    format!(
                        "failed to allocate IP {ip}: provided IP is not in the valid range. The range of valid IPs is {}",
                        cidr_string(cidr)
                    ),
                )];
            }
        }
    }

    if matches!(service_type(new), "NodePort" | "LoadBalancer") {
        let old_node_ports: Vec<i64> = old
            .filter(|o| matches!(service_type(o), "NodePort" | "LoadBalancer"))
            .map(|o| ports(o).iter().map(|p| p.node_port).filter(|n| *n != 0).collect())
            .unwrap_or_default();
        let (low, high) = ctx.node_port_range;
        for (i, port) in ports(new).iter().enumerate() {
            let requested = port.node_port;
            if requested == 0 || old_node_ports.contains(&requested) {
                continue;
            }
            if requested < i64::from(low) || requested > i64::from(high) {
                return vec![FieldError::invalid(
                    FieldPath::new("spec").child("ports").index(i).child("nodePort"),
                    requested,
                    format!("provided port is not in the valid range. The range of valid ports is {low}-{high}"),
                )];
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
#[path = "validation_tests.rs"]
mod tests;
