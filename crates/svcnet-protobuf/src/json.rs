//! Conversion of decoded protobuf messages into Kubernetes JSON.
//!
//! The goal is the JSON that a JSON-speaking kubectl would have sent for the
//! same object, so the rest of the server needs only one code path. Go's
//! generated protobuf code writes every non-pointer field, even when it is
//! empty, so protobuf presence alone does not say whether a field was set.
//! The rules therefore follow the Go struct tags:
//!
//! * value fields tagged `omitempty` are dropped when empty, zero or false;
//! * pointer fields (`*string`, `*bool`, `*int32`) are kept whenever present,
//!   because `""`/`false`/`0` is a meaningful value there;
//! * fields without `omitempty` (`ServicePort.port`, `OwnerReference.uid`,
//!   condition `type`/`status`/...) are always written;
//! * nested messages are written when present, matching Go, which always
//!   encodes non-pointer structs in both formats.
//!
//! Two deliberate deviations from Go's JSON: a zero `metav1.Time` is omitted
//! instead of written as `null`, and a zero `IntOrString` is omitted instead
//! of written as `0`. Both mean "unset" and the server defaults them anyway.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::proto;

/// Detail text of a conversion failure; the caller adds the object kind.
pub(crate) type ConvError = String;

/// Small builder that applies the omission rules above, one method per rule.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl Fields {
    fn put(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), value.into());
        self
    }

    /// Go `string` with `omitempty`.
    fn text(self, key: &str, value: &Option<String>) -> Self {
        match value.as_deref() {
            Some(v) if !v.is_empty() => self.put(key, v),
            _ => self,
        }
    }

    /// Go `string` without `omitempty`: always written.
    fn text_always(self, key: &str, value: &Option<String>) -> Self {
        self.put(key, value.clone().unwrap_or_default())
    }

    /// Go `*string`, `*bool`, `*int32`, `*int64`: written when present.
    fn present<T: Clone + Into<Value>>(self, key: &str, value: &Option<T>) -> Self {
        match value {
            Some(v) => self.put(key, v.clone()),
            None => self,
        }
    }

    /// Go integer with `omitempty`.
    fn nonzero<T: Copy + Default + PartialEq + Into<Value>>(self, key: &str, value: &Option<T>) -> Self {
        match value {
            Some(v) if *v != T::default() => self.put(key, *v),
            _ => self,
        }
    }

    /// Go `bool` with `omitempty`.
    fn flag(self, key: &str, value: &Option<bool>) -> Self {
        match value {
            Some(true) => self.put(key, true),
            _ => self,
        }
    }

    /// Go `[]string` with `omitempty`.
    fn strings(self, key: &str, values: &[String]) -> Self {
        if values.is_empty() {
            return self;
        }
        self.put(key, values.to_vec())
    }

    /// Go `map[string]string` with `omitempty`; BTreeMap keeps keys sorted.
    fn string_map(self, key: &str, values: &BTreeMap<String, String>) -> Self {
        if values.is_empty() {
            return self;
        }
        let map: Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect();
        self.put(key, map)
    }

    /// A list of converted messages, omitted when empty.
    fn list(self, key: &str, values: Vec<Value>) -> Self {
        if values.is_empty() {
            return self;
        }
        self.put(key, values)
    }

    /// A nested message, written only when the protobuf carried it.
    fn nested(self, key: &str, value: Option<Value>) -> Self {
        match value {
            Some(v) => self.put(key, v),
            None => self,
        }
    }

    /// `metav1.Time`, omitted when zero (see module docs).
    fn time(self, key: &str, value: &Option<proto::Time>) -> Result<Self, ConvError> {
        let formatted = value.as_ref().map(rfc3339).transpose()?.flatten();
        Ok(self.nested(key, formatted.map(Value::from)))
    }

    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

/// Formats a `metav1.Time` the way Go does: UTC, whole seconds, `Z` suffix.
/// Returns `None` for the zero time, which Go encodes as an empty message.
fn rfc3339(time: &proto::Time) -> Result<Option<String>, ConvError> {
    let seconds = time.seconds.unwrap_or(0);
    if seconds == 0 && time.nanos.unwrap_or(0) == 0 {
        return Ok(None);
    }
    // metav1.Time marshals to JSON with second precision, so nanos are dropped.
    jiff::Timestamp::from_second(seconds)
        .map(|ts| Some(ts.to_string()))
        .map_err(|e| format!("timestamp {seconds}s is out of range: {e}"))
}

/// Converts every element, stopping at the first failure.
fn convert_all<T>(items: &[T], convert: impl Fn(&T) -> Result<Value, ConvError>) -> Result<Vec<Value>, ConvError> {
    items.iter().map(convert).collect()
}

fn int_or_string(value: &proto::IntOrString) -> Option<Value> {
    // Type 1 is intstr.String; anything else is treated as intstr.Int.
    if value.r#type == Some(1) {
        let text = value.str_val.clone().unwrap_or_default();
        return (!text.is_empty()).then(|| Value::from(text));
    }
    let number = value.int_val.unwrap_or(0);
    (number != 0).then(|| Value::from(number))
}

fn owner_reference(owner: &proto::OwnerReference) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text_always("apiVersion", &owner.api_version)
        .text_always("kind", &owner.kind)
        .text_always("name", &owner.name)
        .text_always("uid", &owner.uid)
        .present("controller", &owner.controller)
        .present("blockOwnerDeletion", &owner.block_owner_deletion)
        .done())
}

fn fields_v1(fields: &proto::FieldsV1) -> Result<Value, ConvError> {
    // FieldsV1 carries JSON bytes; in JSON form it is that document inline.
    let raw = fields.raw.as_deref().unwrap_or(b"{}");
    serde_json::from_slice(raw).map_err(|e| format!("managedFields fieldsV1 is not JSON: {e}"))
}

fn managed_fields_entry(entry: &proto::ManagedFieldsEntry) -> Result<Value, ConvError> {
    let fields = entry.fields_v1.as_ref().map(fields_v1).transpose()?;
    Ok(Fields::default()
        .text("manager", &entry.manager)
        .text("operation", &entry.operation)
        .text("apiVersion", &entry.api_version)
        .time("time", &entry.time)?
        .text("fieldsType", &entry.fields_type)
        .nested("fieldsV1", fields)
        .text("subresource", &entry.subresource)
        .done())
}

pub(crate) fn object_meta(meta: &proto::ObjectMeta) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("name", &meta.name)
        .text("generateName", &meta.generate_name)
        .text("namespace", &meta.namespace)
        .text("selfLink", &meta.self_link)
        .text("uid", &meta.uid)
        .text("resourceVersion", &meta.resource_version)
        .nonzero("generation", &meta.generation)
        .time("creationTimestamp", &meta.creation_timestamp)?
        .time("deletionTimestamp", &meta.deletion_timestamp)?
        .present("deletionGracePeriodSeconds", &meta.deletion_grace_period_seconds)
        .string_map("labels", &meta.labels)
        .string_map("annotations", &meta.annotations)
        .list("ownerReferences", convert_all(&meta.owner_references, owner_reference)?)
        .strings("finalizers", &meta.finalizers)
        .list(
            "managedFields",
            convert_all(&meta.managed_fields, managed_fields_entry)?,
        )
        .done())
}

fn condition(cond: &proto::Condition) -> Result<Value, ConvError> {
    // metav1.Condition tags type/status/reason/message without omitempty.
    Ok(Fields::default()
        .text_always("type", &cond.r#type)
        .text_always("status", &cond.status)
        .nonzero("observedGeneration", &cond.observed_generation)
        .time("lastTransitionTime", &cond.last_transition_time)?
        .text_always("reason", &cond.reason)
        .text_always("message", &cond.message)
        .done())
}

fn service_port(port: &proto::ServicePort) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("name", &port.name)
        .text("protocol", &port.protocol)
        .present("appProtocol", &port.app_protocol)
        .put("port", port.port.unwrap_or(0))
        .nested("targetPort", port.target_port.as_ref().and_then(int_or_string))
        .nonzero("nodePort", &port.node_port)
        .done())
}

fn session_affinity_config(config: &proto::SessionAffinityConfig) -> Value {
    let client_ip = config
        .client_ip
        .as_ref()
        .map(|c| Fields::default().present("timeoutSeconds", &c.timeout_seconds).done());
    Fields::default().nested("clientIP", client_ip).done()
}

pub(crate) fn service_spec(spec: &proto::ServiceSpec) -> Result<Value, ConvError> {
    let affinity = spec.session_affinity_config.as_ref().map(session_affinity_config);
    Ok(Fields::default()
        .list("ports", convert_all(&spec.ports, service_port)?)
        .string_map("selector", &spec.selector)
        .text("clusterIP", &spec.cluster_ip)
        .strings("clusterIPs", &spec.cluster_ips)
        .text("type", &spec.r#type)
        .strings("externalIPs", &spec.external_ips)
        .text("sessionAffinity", &spec.session_affinity)
        .text("loadBalancerIP", &spec.load_balancer_ip)
        .strings("loadBalancerSourceRanges", &spec.load_balancer_source_ranges)
        .text("externalName", &spec.external_name)
        .text("externalTrafficPolicy", &spec.external_traffic_policy)
        .nonzero("healthCheckNodePort", &spec.health_check_node_port)
        .flag("publishNotReadyAddresses", &spec.publish_not_ready_addresses)
        .nested("sessionAffinityConfig", affinity)
        .strings("ipFamilies", &spec.ip_families)
        .present("ipFamilyPolicy", &spec.ip_family_policy)
        .present("allocateLoadBalancerNodePorts", &spec.allocate_load_balancer_node_ports)
        .present("loadBalancerClass", &spec.load_balancer_class)
        .present("internalTrafficPolicy", &spec.internal_traffic_policy)
        .present("trafficDistribution", &spec.traffic_distribution)
        .done())
}

fn port_status(port: &proto::PortStatus) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .put("port", port.port.unwrap_or(0))
        .text_always("protocol", &port.protocol)
        .present("error", &port.error)
        .done())
}

fn load_balancer_ingress(ingress: &proto::LoadBalancerIngress) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("ip", &ingress.ip)
        .text("hostname", &ingress.hostname)
        .present("ipMode", &ingress.ip_mode)
        .list("ports", convert_all(&ingress.ports, port_status)?)
        .done())
}

fn load_balancer_status(status: &proto::LoadBalancerStatus) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .list("ingress", convert_all(&status.ingress, load_balancer_ingress)?)
        .done())
}

pub(crate) fn service_status(status: &proto::ServiceStatus) -> Result<Value, ConvError> {
    let load_balancer = status.load_balancer.as_ref().map(load_balancer_status).transpose()?;
    Ok(Fields::default()
        .nested("loadBalancer", load_balancer)
        .list("conditions", convert_all(&status.conditions, condition)?)
        .done())
}

pub(crate) fn namespace_spec(spec: &proto::NamespaceSpec) -> Result<Value, ConvError> {
    Ok(Fields::default().strings("finalizers", &spec.finalizers).done())
}

fn namespace_condition(cond: &proto::NamespaceCondition) -> Result<Value, ConvError> {
    // NamespaceCondition only requires type and status; the rest is omitempty.
    Ok(Fields::default()
        .text_always("type", &cond.r#type)
        .text_always("status", &cond.status)
        .time("lastTransitionTime", &cond.last_transition_time)?
        .text("reason", &cond.reason)
        .text("message", &cond.message)
        .done())
}

pub(crate) fn namespace_status(status: &proto::NamespaceStatus) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("phase", &status.phase)
        .list("conditions", convert_all(&status.conditions, namespace_condition)?)
        .done())
}

/// A pointer `*intstr.IntOrString`: written whenever present, so an explicit
/// `0` or `""` survives (`maxSurge: 0` differs from unset).
fn int_or_string_pointer(value: &proto::IntOrString) -> Value {
    if value.r#type == Some(1) {
        return Value::from(value.str_val.clone().unwrap_or_default());
    }
    Value::from(value.int_val.unwrap_or(0))
}

fn label_selector_requirement(req: &proto::LabelSelectorRequirement) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text_always("key", &req.key)
        .text_always("operator", &req.operator)
        .strings("values", &req.values)
        .done())
}

fn label_selector(selector: &proto::LabelSelector) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .string_map("matchLabels", &selector.match_labels)
        .list(
            "matchExpressions",
            convert_all(&selector.match_expressions, label_selector_requirement)?,
        )
        .done())
}

/// `map[ResourceName]resource.Quantity` with `omitempty`; quantities are strings.
fn quantities(values: &BTreeMap<String, proto::Quantity>) -> Option<Value> {
    if values.is_empty() {
        return None;
    }
    let map: Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.string.clone().unwrap_or_default())))
        .collect();
    Some(Value::Object(map))
}

fn resource_requirements(resources: &proto::ResourceRequirements) -> Value {
    Fields::default()
        .nested("limits", quantities(&resources.limits))
        .nested("requests", quantities(&resources.requests))
        .done()
}

fn container_port(port: &proto::ContainerPort) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("name", &port.name)
        .nonzero("hostPort", &port.host_port)
        .put("containerPort", port.container_port.unwrap_or(0))
        .text("protocol", &port.protocol)
        .text("hostIP", &port.host_ip)
        .done())
}

fn env_var(var: &proto::EnvVar) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text_always("name", &var.name)
        .text("value", &var.value)
        .done())
}

fn container(container: &proto::Container) -> Result<Value, ConvError> {
    let resources = container.resources.as_ref().map(resource_requirements);
    Ok(Fields::default()
        .text_always("name", &container.name)
        .text("image", &container.image)
        .strings("command", &container.command)
        .strings("args", &container.args)
        .text("workingDir", &container.working_dir)
        .list("ports", convert_all(&container.ports, container_port)?)
        .list("env", convert_all(&container.env, env_var)?)
        .nested("resources", resources)
        .text("terminationMessagePath", &container.termination_message_path)
        .text("terminationMessagePolicy", &container.termination_message_policy)
        .text("imagePullPolicy", &container.image_pull_policy)
        .done())
}

fn toleration(toleration: &proto::Toleration) -> Result<Value, ConvError> {
    Ok(Fields::default()
        .text("key", &toleration.key)
        .text("operator", &toleration.operator)
        .text("value", &toleration.value)
        .text("effect", &toleration.effect)
        .present("tolerationSeconds", &toleration.toleration_seconds)
        .done())
}

fn pod_spec(spec: &proto::PodSpec) -> Result<Value, ConvError> {
    // The security context's own fields are not modelled; its presence is.
    let security_context = spec.security_context.as_ref().map(|_| Fields::default().done());
    Ok(Fields::default()
        .list("initContainers", convert_all(&spec.init_containers, container)?)
        .list("containers", convert_all(&spec.containers, container)?)
        .text("restartPolicy", &spec.restart_policy)
        .present("terminationGracePeriodSeconds", &spec.termination_grace_period_seconds)
        .text("dnsPolicy", &spec.dns_policy)
        .string_map("nodeSelector", &spec.node_selector)
        .text("serviceAccountName", &spec.service_account_name)
        .text("nodeName", &spec.node_name)
        .nested("securityContext", security_context)
        .text("hostname", &spec.hostname)
        .text("subdomain", &spec.subdomain)
        .text("schedulerName", &spec.scheduler_name)
        .list("tolerations", convert_all(&spec.tolerations, toleration)?)
        .done())
}

fn pod_template_spec(template: &proto::PodTemplateSpec) -> Result<Value, ConvError> {
    let metadata = template.metadata.as_ref().map(object_meta).transpose()?;
    let spec = template.spec.as_ref().map(pod_spec).transpose()?;
    Ok(Fields::default()
        .nested("metadata", metadata)
        .nested("spec", spec)
        .done())
}

fn deployment_strategy(strategy: &proto::DeploymentStrategy) -> Value {
    let rolling_update = strategy.rolling_update.as_ref().map(|update| {
        Fields::default()
            .nested(
                "maxUnavailable",
                update.max_unavailable.as_ref().map(int_or_string_pointer),
            )
            .nested("maxSurge", update.max_surge.as_ref().map(int_or_string_pointer))
            .done()
    });
    Fields::default()
        .text("type", &strategy.r#type)
        .nested("rollingUpdate", rolling_update)
        .done()
}

pub(crate) fn deployment_spec(spec: &proto::DeploymentSpec) -> Result<Value, ConvError> {
    let selector = spec.selector.as_ref().map(label_selector).transpose()?;
    let template = spec.template.as_ref().map(pod_template_spec).transpose()?;
    Ok(Fields::default()
        .present("replicas", &spec.replicas)
        .nested("selector", selector)
        .nested("template", template)
        .nested("strategy", spec.strategy.as_ref().map(deployment_strategy))
        .nonzero("minReadySeconds", &spec.min_ready_seconds)
        .present("revisionHistoryLimit", &spec.revision_history_limit)
        .flag("paused", &spec.paused)
        .present("progressDeadlineSeconds", &spec.progress_deadline_seconds)
        .done())
}

/// Deployment status is owned by the server; clients send it empty on create.
pub(crate) fn deployment_status(_status: &proto::DeploymentStatus) -> Result<Value, ConvError> {
    Ok(Fields::default().done())
}

/// Assembles a top-level object. Go always writes metadata, spec and status
/// (they are non-pointer structs), so they are present even when empty.
pub(crate) fn top_level(api_version: &str, kind: &str, metadata: Value, spec: Value, status: Value) -> Value {
    Fields::default()
        .put("kind", kind)
        .put("apiVersion", api_version)
        .put("metadata", metadata)
        .put("spec", spec)
        .put("status", status)
        .done()
}
