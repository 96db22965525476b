//! Hand-written prost messages mirroring the upstream Kubernetes protobuf schema.
//!
//! Field numbers follow `k8s.io/apimachinery/pkg/runtime/generated.proto`,
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`,
//! `k8s.io/apimachinery/pkg/util/intstr/generated.proto` and
//! `k8s.io/api/core/v1/generated.proto` and `k8s.io/api/apps/v1/generated.proto`. Upstream uses proto2, so every
//! scalar is `optional` and presence is observable; the JSON conversion uses
//! that presence only where the Go type is a pointer (see `json.rs`).
//!
//! Only the messages reachable from `v1.Service`, `v1.Namespace` and
//! `apps/v1.Deployment` are modelled (for Deployment, the pod template fields
//! that `kubectl create deployment` and typical typed clients fill in). Fields left out here are skipped by prost as unknown fields,
//! which keeps the decoder tolerant of newer clients.

use std::collections::BTreeMap;

/// `runtime.TypeMeta`: apiVersion and kind of the wrapped object.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub kind: Option<String>,
}

/// `runtime.Unknown`: the envelope that follows the `k8s\0` magic prefix.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unknown {
    #[prost(message, optional, tag = "1")]
    pub type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub raw: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    pub content_encoding: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub content_type: Option<String>,
}

/// `meta/v1.Time`: a protobuf Timestamp with second precision in JSON.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Time {
    #[prost(int64, optional, tag = "1")]
    pub seconds: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub nanos: Option<i32>,
}

/// `intstr.IntOrString`: `type` 0 selects `int_val`, 1 selects `str_val`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IntOrString {
    #[prost(int64, optional, tag = "1")]
    pub r#type: Option<i64>,
    #[prost(int32, optional, tag = "2")]
    pub int_val: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub str_val: Option<String>,
}

/// `meta/v1.OwnerReference`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct OwnerReference {
    #[prost(string, optional, tag = "5")]
    pub api_version: Option<String>,
    #[prost(string, optional, tag = "1")]
    pub kind: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub uid: Option<String>,
    #[prost(bool, optional, tag = "6")]
    pub controller: Option<bool>,
    #[prost(bool, optional, tag = "7")]
    pub block_owner_deletion: Option<bool>,
}

/// `meta/v1.FieldsV1`: raw JSON of the managed field set.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FieldsV1 {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub raw: Option<Vec<u8>>,
}

/// `meta/v1.ManagedFieldsEntry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ManagedFieldsEntry {
    #[prost(string, optional, tag = "1")]
    pub manager: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operation: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub api_version: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub time: Option<Time>,
    #[prost(string, optional, tag = "6")]
    pub fields_type: Option<String>,
    #[prost(message, optional, tag = "7")]
    pub fields_v1: Option<FieldsV1>,
    #[prost(string, optional, tag = "8")]
    pub subresource: Option<String>,
}

/// `meta/v1.ObjectMeta`. Maps use `BTreeMap` so JSON keys come out sorted,
/// as Go's encoder does.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ObjectMeta {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub generate_name: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub namespace: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub self_link: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub uid: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub resource_version: Option<String>,
    #[prost(int64, optional, tag = "7")]
    pub generation: Option<i64>,
    #[prost(message, optional, tag = "8")]
    pub creation_timestamp: Option<Time>,
    #[prost(message, optional, tag = "9")]
    pub deletion_timestamp: Option<Time>,
    #[prost(int64, optional, tag = "10")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[prost(btree_map = "string, string", tag = "11")]
    pub labels: BTreeMap<String, String>,
    #[prost(btree_map = "string, string", tag = "12")]
    pub annotations: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "13")]
    pub owner_references: Vec<OwnerReference>,
    #[prost(string, repeated, tag = "14")]
    pub finalizers: Vec<String>,
    #[prost(message, repeated, tag = "17")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// `meta/v1.Condition`, used by `ServiceStatus.conditions`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Condition {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    #[prost(int64, optional, tag = "3")]
    pub observed_generation: Option<i64>,
    #[prost(message, optional, tag = "4")]
    pub last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub message: Option<String>,
}

/// `core/v1.ServicePort`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServicePort {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub protocol: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub app_protocol: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub port: Option<i32>,
    #[prost(message, optional, tag = "4")]
    pub target_port: Option<IntOrString>,
    #[prost(int32, optional, tag = "5")]
    pub node_port: Option<i32>,
}

/// `core/v1.ClientIPConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClientIpConfig {
    #[prost(int32, optional, tag = "1")]
    pub timeout_seconds: Option<i32>,
}

/// `core/v1.SessionAffinityConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionAffinityConfig {
    #[prost(message, optional, tag = "1")]
    pub client_ip: Option<ClientIpConfig>,
}

/// `core/v1.ServiceSpec`. Tag 6 (portalIP) and 15/16 (removed fields) are
/// intentionally absent.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceSpec {
    #[prost(message, repeated, tag = "1")]
    pub ports: Vec<ServicePort>,
    #[prost(btree_map = "string, string", tag = "2")]
    pub selector: BTreeMap<String, String>,
    #[prost(string, optional, tag = "3")]
    pub cluster_ip: Option<String>,
    #[prost(string, repeated, tag = "18")]
    pub cluster_ips: Vec<String>,
    #[prost(string, optional, tag = "4")]
    pub r#type: Option<String>,
    #[prost(string, repeated, tag = "5")]
    pub external_ips: Vec<String>,
    #[prost(string, optional, tag = "7")]
    pub session_affinity: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub load_balancer_ip: Option<String>,
    #[prost(string, repeated, tag = "9")]
    pub load_balancer_source_ranges: Vec<String>,
    #[prost(string, optional, tag = "10")]
    pub external_name: Option<String>,
    #[prost(string, optional, tag = "11")]
    pub external_traffic_policy: Option<String>,
    #[prost(int32, optional, tag = "12")]
    pub health_check_node_port: Option<i32>,
    #[prost(bool, optional, tag = "13")]
    pub publish_not_ready_addresses: Option<bool>,
    #[prost(message, optional, tag = "14")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    #[prost(string, repeated, tag = "19")]
    pub ip_families: Vec<String>,
    #[prost(string, optional, tag = "17")]
    pub ip_family_policy: Option<String>,
    #[prost(bool, optional, tag = "20")]
    pub allocate_load_balancer_node_ports: Option<bool>,
    #[prost(string, optional, tag = "21")]
    pub load_balancer_class: Option<String>,
    #[prost(string, optional, tag = "22")]
    pub internal_traffic_policy: Option<String>,
    #[prost(string, optional, tag = "23")]
    pub traffic_distribution: Option<String>,
}

/// `core/v1.PortStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PortStatus {
    #[prost(int32, optional, tag = "1")]
    pub port: Option<i32>,
    #[prost(string, optional, tag = "2")]
    pub protocol: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub error: Option<String>,
}

/// `core/v1.LoadBalancerIngress`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoadBalancerIngress {
    #[prost(string, optional, tag = "1")]
    pub ip: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub hostname: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub ip_mode: Option<String>,
    #[prost(message, repeated, tag = "4")]
    pub ports: Vec<PortStatus>,
}

/// `core/v1.LoadBalancerStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LoadBalancerStatus {
    #[prost(message, repeated, tag = "1")]
    pub ingress: Vec<LoadBalancerIngress>,
}

/// `core/v1.ServiceStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ServiceStatus {
    #[prost(message, optional, tag = "1")]
    pub load_balancer: Option<LoadBalancerStatus>,
    #[prost(message, repeated, tag = "2")]
    pub conditions: Vec<Condition>,
}

/// `core/v1.Service`. Note that the message carries no TypeMeta: apiVersion
/// and kind travel only in the envelope.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Service {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<ServiceSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<ServiceStatus>,
}

/// `core/v1.NamespaceSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceSpec {
    #[prost(string, repeated, tag = "1")]
    pub finalizers: Vec<String>,
}

/// `core/v1.NamespaceCondition` (tag 3 is unused upstream).
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceCondition {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub status: Option<String>,
    #[prost(message, optional, tag = "4")]
    pub last_transition_time: Option<Time>,
    #[prost(string, optional, tag = "5")]
    pub reason: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub message: Option<String>,
}

/// `core/v1.NamespaceStatus`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct NamespaceStatus {
    #[prost(string, optional, tag = "1")]
    pub phase: Option<String>,
    #[prost(message, repeated, tag = "2")]
    pub conditions: Vec<NamespaceCondition>,
}

/// `core/v1.Namespace`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Namespace {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<NamespaceSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<NamespaceStatus>,
}

/// `meta/v1.LabelSelectorRequirement`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelSelectorRequirement {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
}

/// `meta/v1.LabelSelector`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LabelSelector {
    #[prost(btree_map = "string, string", tag = "1")]
    pub match_labels: BTreeMap<String, String>,
    #[prost(message, repeated, tag = "2")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `resource.Quantity`: carried as its canonical string form.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Quantity {
    #[prost(string, optional, tag = "1")]
    pub string: Option<String>,
}

/// `core/v1.ContainerPort`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ContainerPort {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(int32, optional, tag = "2")]
    pub host_port: Option<i32>,
    #[prost(int32, optional, tag = "3")]
    pub container_port: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub protocol: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub host_ip: Option<String>,
}

/// `core/v1.EnvVar` (tag 3, valueFrom, is not modelled).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnvVar {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// `core/v1.ResourceRequirements` (tag 3, claims, is not modelled).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResourceRequirements {
    #[prost(btree_map = "string, message", tag = "1")]
    pub limits: BTreeMap<String, Quantity>,
    #[prost(btree_map = "string, message", tag = "2")]
    pub requests: BTreeMap<String, Quantity>,
}

/// `core/v1.Container`, restricted to the commonly sent fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Container {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub image: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub command: Vec<String>,
    #[prost(string, repeated, tag = "4")]
    pub args: Vec<String>,
    #[prost(string, optional, tag = "5")]
    pub working_dir: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub ports: Vec<ContainerPort>,
    #[prost(message, repeated, tag = "7")]
    pub env: Vec<EnvVar>,
    #[prost(message, optional, tag = "8")]
    pub resources: Option<ResourceRequirements>,
    #[prost(string, optional, tag = "13")]
    pub termination_message_path: Option<String>,
    #[prost(string, optional, tag = "20")]
    pub termination_message_policy: Option<String>,
    #[prost(string, optional, tag = "14")]
    pub image_pull_policy: Option<String>,
}

/// `core/v1.PodSecurityContext`: only its presence is kept.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSecurityContext {}

/// `core/v1.Toleration`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Toleration {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub operator: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub value: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub effect: Option<String>,
    #[prost(int64, optional, tag = "5")]
    pub toleration_seconds: Option<i64>,
}

/// `core/v1.PodSpec`, restricted to the commonly sent fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodSpec {
    #[prost(message, repeated, tag = "20")]
    pub init_containers: Vec<Container>,
    #[prost(message, repeated, tag = "2")]
    pub containers: Vec<Container>,
    #[prost(string, optional, tag = "3")]
    pub restart_policy: Option<String>,
    #[prost(int64, optional, tag = "4")]
    pub termination_grace_period_seconds: Option<i64>,
    #[prost(string, optional, tag = "6")]
    pub dns_policy: Option<String>,
    #[prost(btree_map = "string, string", tag = "7")]
    pub node_selector: BTreeMap<String, String>,
    #[prost(string, optional, tag = "8")]
    pub service_account_name: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub node_name: Option<String>,
    #[prost(message, optional, tag = "14")]
    pub security_context: Option<PodSecurityContext>,
    #[prost(string, optional, tag = "16")]
    pub hostname: Option<String>,
    #[prost(string, optional, tag = "17")]
    pub subdomain: Option<String>,
    #[prost(string, optional, tag = "19")]
    pub scheduler_name: Option<String>,
    #[prost(message, repeated, tag = "22")]
    pub tolerations: Vec<Toleration>,
}

/// `core/v1.PodTemplateSpec`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PodTemplateSpec {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<PodSpec>,
}

/// `apps/v1.RollingUpdateDeployment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RollingUpdateDeployment {
    #[prost(message, optional, tag = "1")]
    pub max_unavailable: Option<IntOrString>,
    #[prost(message, optional, tag = "2")]
    pub max_surge: Option<IntOrString>,
}

/// `apps/v1.DeploymentStrategy`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeploymentStrategy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// `apps/v1.DeploymentSpec` (tag 8 is unused in apps/v1).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeploymentSpec {
    #[prost(int32, optional, tag = "1")]
    pub replicas: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub selector: Option<LabelSelector>,
    #[prost(message, optional, tag = "3")]
    pub template: Option<PodTemplateSpec>,
    #[prost(message, optional, tag = "4")]
    pub strategy: Option<DeploymentStrategy>,
    #[prost(int32, optional, tag = "5")]
    pub min_ready_seconds: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    pub revision_history_limit: Option<i32>,
    #[prost(bool, optional, tag = "7")]
    pub paused: Option<bool>,
    #[prost(int32, optional, tag = "9")]
    pub progress_deadline_seconds: Option<i32>,
}

/// `apps/v1.DeploymentStatus`. Clients do not set status on create, and the
/// server recomputes it, so its fields (counters, conditions) are skipped.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeploymentStatus {}

/// `apps/v1.Deployment`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Deployment {
    #[prost(message, optional, tag = "1")]
    pub metadata: Option<ObjectMeta>,
    #[prost(message, optional, tag = "2")]
    pub spec: Option<DeploymentSpec>,
    #[prost(message, optional, tag = "3")]
    pub status: Option<DeploymentStatus>,
}
