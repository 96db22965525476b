//! Server-side table printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`): the
//! column definitions and row cells kube-apiserver produces for each kind, as in upstream
//! pkg/printers/internalversion/printers.go. The server always prints with `Wide: true`,
//! so rows carry every column and kubectl hides priority-1 columns unless `-o wide`.

use crate::selector::{from_label_selector_json, pod_ip, LabelSelector};
use jiff::Timestamp;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Column definitions
// ---------------------------------------------------------------------------------------

// Descriptions are the API field docs upstream takes from the types' SwaggerDoc.
const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const CONTAINERS_DESC: &str = "Names of each container in the template.";
const IMAGES_DESC: &str = "Images referenced by each container in the template.";
const READY_REPLICAS_DESC: &str = "Number of the pod with ready state";

const POD_IP_DESC: &str =
    "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.";
const POD_NODE_DESC: &str = "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename";
const POD_NOMINATED_DESC: &str = "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.";
const POD_GATES_DESC: &str = "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates";

const SVC_TYPE_DESC: &str = "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types";
const SVC_CLUSTER_IP_DESC: &str = "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_EXTERNAL_IPS_DESC: &str = "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.";
const SVC_PORTS_DESC: &str = "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies";
const SVC_SELECTOR_DESC: &str = "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/";

const ENDPOINTS_SUBSETS_DESC: &str = "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.";

const NODE_VERSION_DESC: &str = "Kubelet Version reported by the node.";
const NODE_ADDRESSES_DESC: &str = "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses Note: This field is declared as mergeable, but the merge key is not sufficiently unique, which can cause data corruption when it is merged. Callers should instead use a full-replacement patch. See https://pr.k8s.io/79391 for an example. Consumers should assume that addresses can change during the lifetime of a Node. However, there are some exceptions where this may not be possible, such as Pods that inherit a Node's address in its own status or consumers of the downward API (status.hostIP).";
const NODE_OS_DESC: &str = "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).";
const NODE_KERNEL_DESC: &str = "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).";
const NODE_RUNTIME_DESC: &str =
    "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).";

const EVENT_LAST_DESC: &str = "The time at which the most recent occurrence of this event was recorded.";
const EVENT_TYPE_DESC: &str = "Type of this event (Normal, Warning), new types could be added in the future";
const EVENT_REASON_DESC: &str = "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.";
const EVENT_OBJECT_DESC: &str = "The object that this event is about.";
const EVENT_SUBOBJECT_DESC: &str = "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.";
const EVENT_SOURCE_DESC: &str = "The component reporting this event. Should be a short machine understandable string.";
const EVENT_MESSAGE_DESC: &str = "A human-readable description of the status of this operation.";
const EVENT_FIRST_DESC: &str =
    "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)";
const EVENT_COUNT_DESC: &str = "The number of times this event has occurred.";

// Deployment and ReplicaSet columns are documented from the extensions/v1beta1 types.
const DEPLOY_UPDATED_DESC: &str =
    "Total number of non-terminated pods targeted by this deployment that have the desired template spec.";
const DEPLOY_AVAILABLE_DESC: &str =
    "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.";
const DEPLOY_SELECTOR_DESC: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";
const RS_DESIRED_DESC: &str = "Replicas is the number of desired replicas. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const RS_CURRENT_DESC: &str = "Replicas is the most recently oberved number of replicas. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicationcontroller/#what-is-a-replicationcontroller";
const RS_READY_DESC: &str = "The number of ready replicas for this replica set.";
const RS_SELECTOR_DESC: &str = "Selector is a label query over pods that should match the replica count. If the selector is empty, it is defaulted to the labels present on the pod template. Label keys and values that must match in order to be controlled by this replica set. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

const SLICE_ADDRESS_TYPE_DESC: &str = "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.";
const SLICE_PORTS_DESC: &str = "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.";
const SLICE_ENDPOINTS_DESC: &str =
    "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.";

const LEASE_HOLDER_DESC: &str = "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.";

/// One `metav1.TableColumnDefinition`.
struct Column {
    name: &'static str,
    kind: &'static str,
    format: &'static str,
    description: &'static str,
    priority: i32,
}

const fn col(name: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind: "string",
        format: "",
        description,
        priority: 0,
    }
}

/// A column kubectl shows only with `-o wide`.
const fn wide(name: &'static str, description: &'static str) -> Column {
    Column {
        priority: 1,
        ..col(name, description)
    }
}

const fn integer(name: &'static str, description: &'static str) -> Column {
    Column {
        kind: "integer",
        ..col(name, description)
    }
}

const NAME: Column = Column {
    format: "name",
    ..col("Name", NAME_DESC)
};
const AGE: Column = col("Age", AGE_DESC);

fn columns(kind: &str) -> Vec<Column> {
    match kind {
        "Pod" => vec![
            NAME,
            col(
                "Ready",
                "The aggregate readiness state of this pod for accepting traffic.",
            ),
            col(
                "Status",
                "The aggregate status of the containers in this pod.",
            ),
            col("Restarts", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            AGE,
            wide("IP", POD_IP_DESC),
            wide("Node", POD_NODE_DESC),
            wide("Nominated Node", POD_NOMINATED_DESC),
            wide("Readiness Gates", POD_GATES_DESC),
        ],
        "Service" => vec![
            NAME,
            col("Type", SVC_TYPE_DESC),
            col("Cluster-IP", SVC_CLUSTER_IP_DESC),
            col("External-IP", SVC_EXTERNAL_IPS_DESC),
            col("Port(s)", SVC_PORTS_DESC),
            AGE,
            wide("Selector", SVC_SELECTOR_DESC),
        ],
        "Node" => vec![
            NAME,
            col("Status", "The status of the node"),
            col("Roles", "The roles of the node"),
            AGE,
            col("Version", NODE_VERSION_DESC),
            wide("Internal-IP", NODE_ADDRESSES_DESC),
            wide("External-IP", NODE_ADDRESSES_DESC),
            wide("OS-Image", NODE_OS_DESC),
            wide("Kernel-Version", NODE_KERNEL_DESC),
            wide("Container-Runtime", NODE_RUNTIME_DESC),
        ],
        "Endpoints" => vec![NAME, col("Endpoints", ENDPOINTS_SUBSETS_DESC), AGE],
        "EndpointSlice" => vec![
            NAME,
            col("AddressType", SLICE_ADDRESS_TYPE_DESC),
            col("Ports", SLICE_PORTS_DESC),
            col("Endpoints", SLICE_ENDPOINTS_DESC),
            AGE,
        ],
        "Namespace" => vec![NAME, col("Status", "The status of the namespace"), AGE],
        "Event" => vec![
            col("Last Seen", EVENT_LAST_DESC),
            col("Type", EVENT_TYPE_DESC),
            col("Reason", EVENT_REASON_DESC),
            col("Object", EVENT_OBJECT_DESC),
            wide("Subobject", EVENT_SUBOBJECT_DESC),
            wide("Source", EVENT_SOURCE_DESC),
            col("Message", EVENT_MESSAGE_DESC),
            wide("First Seen", EVENT_FIRST_DESC),
            wide("Count", EVENT_COUNT_DESC),
            Column {
                priority: 1,
                ..NAME
            },
        ],
        "Deployment" => vec![
            NAME,
            col("Ready", READY_REPLICAS_DESC),
            col("Up-to-date", DEPLOY_UPDATED_DESC),
            col("Available", DEPLOY_AVAILABLE_DESC),
            AGE,
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", DEPLOY_SELECTOR_DESC),
        ],
        "ReplicaSet" => vec![
            NAME,
            integer("Desired", RS_DESIRED_DESC),
            integer("Current", RS_CURRENT_DESC),
            integer("Ready", RS_READY_DESC),
            AGE,
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
            wide("Selector", RS_SELECTOR_DESC),
        ],
        "StatefulSet" => vec![
            NAME,
            col("Ready", READY_REPLICAS_DESC),
            AGE,
            wide("Containers", CONTAINERS_DESC),
            wide("Images", IMAGES_DESC),
        ],
        "ControllerRevision" => vec![
            NAME,
            col("Controller", "Controller of the object"),
            integer("Revision", "Revision indicates the revision of the state represented by Data."),
            AGE,
        ],
        "Lease" => vec![NAME, col("Holder", LEASE_HOLDER_DESC), AGE],
        "ServiceCIDR" => vec![NAME, col("CIDRs", "list of IP prefixes (CIDRs) assigned to this ServiceCIDR"), AGE],
        "IPAddress" => vec![NAME, col("ParentRef", "the object the IP address is assigned to")],
        _ => vec![NAME, AGE],
    }
}

/// The `columnDefinitions` of a Table for `kind`, in upstream order. Kinds without a
/// printer get Name and Age.
pub fn column_definitions(kind: &str) -> Vec<Value> {
    columns(kind)
        .into_iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

/// The cells of one Table row for `obj`, one per column of `column_definitions(kind)`;
/// ages are measured against `now`.
pub fn row_cells(kind: &str, obj: &Value, now: Timestamp) -> Vec<Value> {
    match kind {
        "Pod" => pod_cells(obj, now),
        "Service" => service_cells(obj, now),
        "Node" => node_cells(obj, now),
        "Endpoints" => vec![name(obj), Value::from(format_endpoints(obj)), age(obj, now)],
        "EndpointSlice" => endpoint_slice_cells(obj, now),
        "Namespace" => vec![name(obj), text(obj, "/status/phase"), age(obj, now)],
        "Event" => event_cells(obj, now),
        "Deployment" => deployment_cells(obj, now),
        "ReplicaSet" => replica_set_cells(obj, now),
        "StatefulSet" => stateful_set_cells(obj, now),
        "ControllerRevision" => vec![
            name(obj),
            Value::from(controller_of(obj)),
            obj.get("revision").cloned().unwrap_or(Value::from(0)),
            age(obj, now),
        ],
        "Lease" => vec![name(obj), text(obj, "/spec/holderIdentity"), age(obj, now)],
        "ServiceCIDR" => vec![
            name(obj),
            Value::from(join_strings(array_at(obj, "/spec/cidrs"))),
            age(obj, now),
        ],
        "IPAddress" => vec![name(obj), Value::from(parent_ref(obj))],
        _ => vec![name(obj), age(obj, now)],
    }
}

/// `statefulset.apps/db`: the controller owner as `kind.group/name`, or `<none>`.
fn controller_of(obj: &Value) -> String {
    let owner = array_at(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true));
    let Some(owner) = owner else {
        return "<none>".into();
    };
    let field = |f: &str| owner.get(f).and_then(Value::as_str).unwrap_or("");
    let kind = field("kind").to_lowercase();
    match field("apiVersion").rsplit_once('/') {
        Some((group, _)) => format!("{kind}.{group}/{}", field("name")),
        None => format!("{kind}/{}", field("name")),
    }
}

fn join_strings(items: &[Value]) -> String {
    items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(",")
}

/// Upstream printIPAddress: `resource.group/namespace/name` (group omitted when empty).
fn parent_ref(obj: &Value) -> String {
    let resource = str_at(obj, "/spec/parentRef/resource");
    let group = str_at(obj, "/spec/parentRef/group");
    let kind = if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    };
    format!(
        "{kind}/{}/{}",
        str_at(obj, "/spec/parentRef/namespace"),
        str_at(obj, "/spec/parentRef/name")
    )
}

fn str_at<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn array_at<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text(obj: &Value, pointer: &str) -> Value {
    Value::from(str_at(obj, pointer))
}

fn name(obj: &Value) -> Value {
    text(obj, "/metadata/name")
}

fn age(obj: &Value, now: Timestamp) -> Value {
    Value::from(since(time_at(obj, "/metadata/creationTimestamp"), now))
}

/// A `metav1.Time` or `MicroTime`; absent, unparsable and Go's zero time all read as unset.
fn time_at(obj: &Value, pointer: &str) -> Option<Timestamp> {
    let t: Timestamp = str_at(obj, pointer).parse().ok()?;
    // Go's zero time.Time, which upstream prints as "<unknown>".
    let zero: Timestamp = "0001-01-01T00:00:00Z".parse().ok()?;
    (t != zero).then_some(t)
}

/// Upstream `translateTimestampSince`.
fn since(t: Option<Timestamp>, now: Timestamp) -> String {
    match t {
        Some(t) => human_nanos(now.as_nanosecond() - t.as_nanosecond()),
        None => "<unknown>".to_string(),
    }
}

/// `k8s.io/apimachinery/pkg/util/duration.HumanDuration`: about 2-3 significant figures.
pub fn human_duration(d: Duration) -> String {
    human_nanos(d.as_nanos() as i128)
}

/// `HumanDuration` on a signed span: a little clock skew reads as "0s", more as "<invalid>".
fn human_nanos(d: i128) -> String {
    const SECOND: i128 = 1_000_000_000;
    let seconds = d / SECOND;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d / (60 * SECOND);
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d / (3600 * SECOND);
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            dy => format!("{}y{dy}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: sorted `k=v` pairs, or `<none>`.
fn format_labels(map: Option<&Map<String, Value>>) -> String {
    let s = map.map(|m| LabelSelector::from_set(m).to_string()).unwrap_or_default();
    if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    }
}

/// `layoutContainerCells`: container names and images of a pod template, comma-joined.
fn container_cells(obj: &Value) -> [Value; 2] {
    let containers = array_at(obj, "/spec/template/spec/containers");
    let join = |key: &str| containers.iter().map(|c| str_at(c, key)).collect::<Vec<_>>().join(",");
    [Value::from(join("/name")), Value::from(join("/image"))]
}

/// `spec.replicas`, which API defaulting sets to 1 when omitted.
fn desired_replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

// --- Pod ---------------------------------------------------------------------------------

/// The READY, STATUS and RESTARTS summary of `printPod`.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    a.max(b)
}

/// When the container last terminated, which dates its most recent restart.
fn last_terminated(status: &Value) -> Option<Timestamp> {
    time_at(status, "/lastState/terminated/finishedAt")
}

/// `Signal:9` / `ExitCode:1` for a termination without a reason.
fn exit_description(terminated: &Value) -> String {
    match int_at(terminated, "/signal") {
        0 => format!("ExitCode:{}", int_at(terminated, "/exitCode")),
        signal => format!("Signal:{signal}"),
    }
}

fn condition_true(pod: &Value, kind: &str) -> bool {
    array_at(pod, "/status/conditions")
        .iter()
        .find(|c| str_at(c, "/type") == kind)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

fn pod_summary(pod: &Value) -> PodSummary {
    let init_specs = array_at(pod, "/spec/initContainers");
    // Sidecars (restartable init containers) count as regular containers once started.
    let sidecars: HashSet<&str> = init_specs
        .iter()
        .filter(|c| str_at(c, "/restartPolicy") == "Always")
        .map(|c| str_at(c, "/name"))
        .collect();
    let mut summary = PodSummary {
        ready: 0,
        total: array_at(pod, "/spec/containers").len() + sidecars.len(),
        reason: initial_pod_reason(pod),
        restarts: 0,
        last_restart: None,
    };
    let init = summarize_init_containers(pod, &sidecars, init_specs.len(), &mut summary);
    if !init.initializing || condition_true(pod, "Initialized") {
        // Regular containers are counted from scratch, keeping only sidecar restarts.
        summary.restarts = init.sidecar_restarts;
        summary.last_restart = init.sidecar_last_restart;
        summarize_containers(pod, &mut summary);
    }
    let phase = str_at(pod, "/status/phase");
    if pod.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
        if str_at(pod, "/status/reason") == "NodeLost" {
            summary.reason = "Unknown".to_string();
        } else if phase != "Succeeded" && phase != "Failed" {
            summary.reason = "Terminating".to_string();
        }
    }
    summary
}

/// The phase, overridden by `status.reason`, and by a scheduling gate still in place.
fn initial_pod_reason(pod: &Value) -> String {
    let mut reason = match str_at(pod, "/status/reason") {
        "" => str_at(pod, "/status/phase"),
        r => r,
    };
    let gated = array_at(pod, "/status/conditions")
        .iter()
        .any(|c| str_at(c, "/type") == "PodScheduled" && str_at(c, "/reason") == "SchedulingGated");
    if gated {
        reason = "SchedulingGated";
    }
    reason.to_string()
}

/// What the init containers leave for the regular containers' pass.
struct InitSummary {
    initializing: bool,
    sidecar_restarts: i64,
    sidecar_last_restart: Option<Timestamp>,
}

/// Walks init container statuses up to the first one still blocking initialization;
/// restarts of sidecars are kept apart since they carry over once the pod is initialized.
fn summarize_init_containers(
    pod: &Value,
    sidecars: &HashSet<&str>,
    init_count: usize,
    summary: &mut PodSummary,
) -> InitSummary {
    let mut sidecar_restarts = 0;
    let mut sidecar_last = None;
    let mut initializing = false;
    for (i, c) in array_at(pod, "/status/initContainerStatuses").iter().enumerate() {
        let restarts = int_at(c, "/restartCount");
        summary.restarts += restarts;
        summary.last_restart = later(summary.last_restart, last_terminated(c));
        let is_sidecar = sidecars.contains(str_at(c, "/name"));
        if is_sidecar {
            sidecar_restarts += restarts;
            sidecar_last = later(sidecar_last, last_terminated(c));
        }
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        if terminated.is_some_and(|t| int_at(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && c.get("started").and_then(Value::as_bool) == Some(true) {
            if c.get("ready").and_then(Value::as_bool) == Some(true) {
                summary.ready += 1;
            }
            continue;
        }
        let waiting = str_at(c, "/state/waiting/reason");
        summary.reason = match terminated {
            Some(t) if str_at(t, "/reason").is_empty() => format!("Init:{}", exit_description(t)),
            Some(t) => format!("Init:{}", str_at(t, "/reason")),
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                format!("Init:{waiting}")
            }
            None => format!("Init:{i}/{init_count}"),
        };
        initializing = true;
        break;
    }
    InitSummary {
        initializing,
        sidecar_restarts,
        sidecar_last_restart: sidecar_last,
    }
}

/// Regular containers, last first so that the first container's state wins the reason.
fn summarize_containers(pod: &Value, summary: &mut PodSummary) {
    let mut has_running = false;
    for c in array_at(pod, "/status/containerStatuses").iter().rev() {
        summary.restarts += int_at(c, "/restartCount");
        summary.last_restart = later(summary.last_restart, last_terminated(c));
        let waiting = str_at(c, "/state/waiting/reason");
        let terminated = c.pointer("/state/terminated").filter(|t| t.is_object());
        if !waiting.is_empty() {
            summary.reason = waiting.to_string();
        } else if let Some(t) = terminated {
            summary.reason = match str_at(t, "/reason") {
                "" => exit_description(t),
                r => r.to_string(),
            };
        } else if c.get("ready").and_then(Value::as_bool) == Some(true)
            && c.pointer("/state/running").is_some_and(Value::is_object)
        {
            has_running = true;
            summary.ready += 1;
        }
    }
    // A completed container next to a running one leaves the pod running.
    if summary.reason == "Completed" && has_running {
        summary.reason = if condition_true(pod, "Ready") {
            "Running".to_string()
        } else {
            "NotReady".to_string()
        };
    }
}

/// `n/m` readiness gates whose condition is True, or `<none>`.
fn readiness_gates(pod: &Value) -> String {
    let gates = array_at(pod, "/spec/readinessGates");
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let passing = gates
        .iter()
        .filter(|g| condition_true(pod, str_at(g, "/conditionType")))
        .count();
    format!("{passing}/{}", gates.len())
}

fn or_none(s: &str) -> Value {
    Value::from(if s.is_empty() { "<none>" } else { s })
}

fn pod_cells(pod: &Value, now: Timestamp) -> Vec<Value> {
    let s = pod_summary(pod);
    let restarts = match s.last_restart {
        Some(t) if s.restarts != 0 => format!("{} ({} ago)", s.restarts, since(Some(t), now)),
        _ => s.restarts.to_string(),
    };
    vec![
        name(pod),
        Value::from(format!("{}/{}", s.ready, s.total)),
        Value::from(s.reason),
        Value::from(restarts),
        age(pod, now),
        or_none(pod_ip(pod)),
        or_none(str_at(pod, "/spec/nodeName")),
        or_none(str_at(pod, "/status/nominatedNodeName")),
        Value::from(readiness_gates(pod)),
    ]
}

// --- Service -----------------------------------------------------------------------------

fn service_type(svc: &Value) -> &str {
    match str_at(svc, "/spec/type") {
        "" => "ClusterIP", // the API default
        t => t,
    }
}

/// The primary cluster IP (`None` for headless), or `<none>` when there is none.
fn service_cluster_ip(svc: &Value) -> String {
    let first = str_at(svc, "/spec/clusterIPs/0");
    let ip = if first.is_empty() {
        str_at(svc, "/spec/clusterIP")
    } else {
        first
    };
    if ip.is_empty() { "<none>" } else { ip }.to_string()
}

fn strings_at(obj: &Value, pointer: &str) -> Vec<String> {
    array_at(obj, pointer)
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// Load balancer ingress points, sorted and deduplicated (IP preferred over hostname).
fn load_balancer_ingress(svc: &Value) -> Vec<String> {
    let set: BTreeSet<String> = array_at(svc, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| match str_at(i, "/ip") {
            "" => str_at(i, "/hostname"),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    set.into_iter().collect()
}

/// Upstream `getServiceExternalIP` in wide form (the server never truncates).
fn service_external_ip(svc: &Value) -> String {
    let external = strings_at(svc, "/spec/externalIPs");
    match service_type(svc) {
        "ClusterIP" | "NodePort" if external.is_empty() => "<none>".to_string(),
        "ClusterIP" | "NodePort" => external.join(","),
        "LoadBalancer" => {
            let mut all = load_balancer_ingress(svc);
            all.extend(external);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").to_string(),
        _ => "<unknown>".to_string(),
    }
}

/// `80/TCP` or `80:30080/TCP` per port, comma-joined, or `<none>`.
fn service_ports(svc: &Value) -> String {
    let pieces: Vec<String> = array_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port");
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            match int_at(p, "/nodePort") {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if pieces.is_empty() {
        "<none>".to_string()
    } else {
        pieces.join(",")
    }
}

fn service_cells(svc: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(svc),
        Value::from(service_type(svc)),
        Value::from(service_cluster_ip(svc)),
        Value::from(service_external_ip(svc)),
        Value::from(service_ports(svc)),
        age(svc, now),
        Value::from(format_labels(svc.pointer("/spec/selector").and_then(Value::as_object))),
    ]
}

// --- Node --------------------------------------------------------------------------------

/// `Ready`, `NotReady` or `Unknown` (no Ready condition), plus `SchedulingDisabled`.
fn node_status(node: &Value) -> String {
    // The last Ready condition wins, as upstream indexes conditions by type.
    let ready = array_at(node, "/status/conditions")
        .iter()
        .rfind(|c| str_at(c, "/type") == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, "/status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

/// Roles from `node-role.kubernetes.io/<role>` labels and the legacy
/// `kubernetes.io/role=<role>` label, sorted.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(labels) = node.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// The first address of a type, or `<none>`.
fn node_address(node: &Value, kind: &str) -> Value {
    let found = array_at(node, "/status/addresses")
        .iter()
        .find(|a| str_at(a, "/type") == kind)
        .map(|a| str_at(a, "/address"))
        .unwrap_or("<none>");
    Value::from(found)
}

fn or_unknown(s: &str) -> Value {
    Value::from(if s.is_empty() { "<unknown>" } else { s })
}

fn node_cells(node: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(node),
        Value::from(node_status(node)),
        Value::from(node_roles(node)),
        age(node, now),
        text(node, "/status/nodeInfo/kubeletVersion"),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        or_unknown(str_at(node, "/status/nodeInfo/osImage")),
        or_unknown(str_at(node, "/status/nodeInfo/kernelVersion")),
        or_unknown(str_at(node, "/status/nodeInfo/containerRuntimeVersion")),
    ]
}

// --- Endpoints and EndpointSlice -----------------------------------------------------------

/// At most this many endpoints are listed before "+ N more...".
const MAX_LISTED: usize = 3;

/// `net.JoinHostPort`: IPv6 addresses are bracketed.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Upstream `formatEndpoints`: ready `ip:port` pairs across subsets (bare IPs for
/// port-less headless subsets), the first three listed and the rest counted.
fn format_endpoints(ep: &Value) -> String {
    let subsets = array_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = array_at(ss, "/addresses");
        let ports = array_at(ss, "/ports");
        let mut add = |entries: Vec<String>| {
            count += entries.len();
            for e in entries {
                if list.len() == MAX_LISTED {
                    more = true;
                    break;
                }
                list.push(e);
            }
        };
        if ports.is_empty() {
            add(addresses.iter().map(|a| str_at(a, "/ip").to_string()).collect());
            continue;
        }
        for port in ports {
            let port = int_at(port, "/port");
            add(addresses
                .iter()
                .map(|a| join_host_port(str_at(a, "/ip"), port))
                .collect());
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count - MAX_LISTED)
    } else {
        joined
    }
}

/// Upstream `listWithMoreString`: the first three entries, the rest counted, `<unset>` if none.
fn list_with_more(items: Vec<String>) -> String {
    let count = items.len();
    let listed = items.into_iter().take(MAX_LISTED).collect::<Vec<_>>().join(",");
    if count > MAX_LISTED {
        format!("{listed} + {} more...", count - MAX_LISTED)
    } else if listed.is_empty() {
        "<unset>".to_string()
    } else {
        listed
    }
}

/// Port numbers, else port names, else `*`.
fn slice_ports(slice: &Value) -> String {
    let ports = array_at(slice, "/ports")
        .iter()
        .map(|p| match (p.get("port").and_then(Value::as_i64), p.get("name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(Value::String(name))) => name.clone(),
            _ => "*".to_string(),
        })
        .collect();
    list_with_more(ports)
}

fn slice_endpoints(slice: &Value) -> String {
    let addresses = array_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| strings_at(e, "/addresses"))
        .collect();
    list_with_more(addresses)
}

fn endpoint_slice_cells(slice: &Value, now: Timestamp) -> Vec<Value> {
    vec![
        name(slice),
        text(slice, "/addressType"),
        Value::from(slice_ports(slice)),
        Value::from(slice_endpoints(slice)),
        age(slice, now),
    ]
}

// --- Event -------------------------------------------------------------------------------

/// `component, host`, falling back to the reporting controller and instance of events
/// written through the events.k8s.io API.
fn event_source(ev: &Value) -> String {
    let first_non_empty = |a: &'static str, b: &'static str| match str_at(ev, a) {
        "" => str_at(ev, b),
        s => s,
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    match first_non_empty("/source/host", "/reportingInstance") {
        "" => component.to_string(),
        host => format!("{component}, {host}"),
    }
}

/// `kind/name` of the involved object, lower-cased kind.
fn event_target(ev: &Value) -> String {
    let kind = str_at(ev, "/involvedObject/kind").to_lowercase();
    match str_at(ev, "/involvedObject/name") {
        "" => kind,
        name => format!("{kind}/{name}"),
    }
}

fn event_cells(ev: &Value, now: Timestamp) -> Vec<Value> {
    let first = match time_at(ev, "/firstTimestamp") {
        Some(t) => since(Some(t), now),
        None => since(time_at(ev, "/eventTime"), now),
    };
    let mut last = match time_at(ev, "/lastTimestamp") {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = int_at(ev, "/count");
    if ev.get("series").is_some_and(Value::is_object) {
        last = since(time_at(ev, "/series/lastObservedTime"), now);
        count = int_at(ev, "/series/count");
    } else if count == 0 {
        count = 1; // singleton events from the new API carry no count
    }
    vec![
        Value::from(last),
        text(ev, "/type"),
        text(ev, "/reason"),
        Value::from(event_target(ev)),
        text(ev, "/involvedObject/fieldPath"),
        Value::from(event_source(ev)),
        Value::from(str_at(ev, "/message").trim()),
        Value::from(first),
        Value::from(count),
        name(ev),
    ]
}

// --- Workloads ---------------------------------------------------------------------------

fn deployment_cells(d: &Value, now: Timestamp) -> Vec<Value> {
    let selector = match from_label_selector_json(d.pointer("/spec/selector").unwrap_or(&Value::Null)) {
        Ok(s) => s.to_string(),
        Err(_) => "<invalid>".to_string(),
    };
    let [containers, images] = container_cells(d);
    vec![
        name(d),
        Value::from(format!(
            "{}/{}",
            int_at(d, "/status/readyReplicas"),
            desired_replicas(d)
        )),
        Value::from(int_at(d, "/status/updatedReplicas")),
        Value::from(int_at(d, "/status/availableReplicas")),
        age(d, now),
        containers,
        images,
        Value::from(selector),
    ]
}

/// `metav1.FormatLabelSelector`: `<none>` for an empty rendering, `<error>` if invalid.
fn format_label_selector(sel: Option<&Value>) -> String {
    match from_label_selector_json(sel.unwrap_or(&Value::Null)) {
        Ok(s) if s.to_string().is_empty() => "<none>".to_string(),
        Ok(s) => s.to_string(),
        Err(_) => "<error>".to_string(),
    }
}

fn replica_set_cells(rs: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(rs);
    vec![
        name(rs),
        Value::from(desired_replicas(rs)),
        Value::from(int_at(rs, "/status/replicas")),
        Value::from(int_at(rs, "/status/readyReplicas")),
        age(rs, now),
        containers,
        images,
        Value::from(format_label_selector(rs.pointer("/spec/selector"))),
    ]
}

fn stateful_set_cells(sts: &Value, now: Timestamp) -> Vec<Value> {
    let [containers, images] = container_cells(sts);
    vec![
        name(sts),
        Value::from(format!(
            "{}/{}",
            int_at(sts, "/status/readyReplicas"),
            desired_replicas(sts)
        )),
        age(sts, now),
        containers,
        images,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2024-05-01T12:00:00Z";

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    /// An RFC 3339 time `secs` seconds before NOW.
    fn ago(secs: i64) -> String {
        now()
            .checked_sub(jiff::SignedDuration::from_secs(secs))
            .unwrap()
            .to_string()
    }

    fn strs(cells: &[Value]) -> Vec<String> {
        cells
            .iter()
            .map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect()
    }

    fn cells(kind: &str, obj: Value) -> Vec<String> {
        let row = row_cells(kind, &obj, now());
        assert_eq!(row.len(), column_definitions(kind).len(), "{kind} row width");
        strs(&row)
    }

    fn d(secs: u64) -> String {
        human_duration(Duration::from_secs(secs))
    }

    #[test]
    fn human_duration_boundaries() {
        assert_eq!(d(0), "0s");
        assert_eq!(human_duration(Duration::from_millis(999)), "0s");
        assert_eq!(d(59), "59s");
        assert_eq!(d(119), "119s");
        assert_eq!(d(120), "2m");
        assert_eq!(d(302), "5m2s");
        assert_eq!(d(599), "9m59s");
        assert_eq!(d(600), "10m");
        assert_eq!(d(3 * 3600 - 1), "179m");
        assert_eq!(d(3 * 3600), "3h");
        assert_eq!(d(3 * 3600 + 4 * 60 + 59), "3h4m");
        assert_eq!(d(8 * 3600 - 1), "7h59m");
        assert_eq!(d(8 * 3600), "8h");
        assert_eq!(d(48 * 3600 - 1), "47h");
        assert_eq!(d(48 * 3600), "2d");
        assert_eq!(d(51 * 3600), "2d3h");
        assert_eq!(d(8 * 86400 - 1), "7d23h");
        assert_eq!(d(8 * 86400), "8d");
        assert_eq!(d(2 * 365 * 86400 - 1), "729d");
        assert_eq!(d(2 * 365 * 86400), "2y");
        assert_eq!(d(2 * 365 * 86400 + 5 * 86400), "2y5d");
        assert_eq!(d(8 * 365 * 86400), "8y");
        assert_eq!(d(9 * 365 * 86400 + 100 * 86400), "9y");
    }

    #[test]
    fn skewed_and_missing_timestamps() {
        assert_eq!(human_nanos(-1_500_000_000), "0s");
        assert_eq!(human_nanos(-2_000_000_000), "<invalid>");
        let future = json!({"metadata": {"name": "a", "creationTimestamp": "2024-05-01T12:00:01Z"}});
        assert_eq!(cells("Lease", future)[2], "0s");
        assert_eq!(cells("Lease", json!({"metadata": {"name": "a"}}))[2], "<unknown>");
        let zero = json!({"metadata": {"name": "a", "creationTimestamp": "0001-01-01T00:00:00Z"}});
        assert_eq!(cells("Lease", zero)[2], "<unknown>");
    }

    #[test]
    fn column_definitions_follow_upstream() {
        let pod = column_definitions("Pod");
        let names: Vec<&str> = pod.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        assert_eq!(pod[0]["format"], "name");
        assert_eq!(pod[1]["format"], "");
        assert_eq!(pod[3]["type"], "string");
        assert_eq!(pod[4]["priority"], 0);
        assert_eq!(pod[5]["priority"], 1);
        assert!(pod[4]["description"]
            .as_str()
            .unwrap()
            .starts_with("CreationTimestamp is a timestamp"));

        let rs = column_definitions("ReplicaSet");
        assert_eq!(rs[1]["type"], "integer");
        assert_eq!(rs[7]["name"], "Selector");
        assert_eq!(rs[7]["priority"], 1);

        let ev = column_definitions("Event");
        let names: Vec<&str> = ev.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let wide: Vec<i64> = ev.iter().map(|c| c["priority"].as_i64().unwrap()).collect();
        assert_eq!(wide, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        assert_eq!(ev[9]["format"], "name");

        let svc: Vec<String> = column_definitions("Service")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            svc,
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age",
                "Selector"
            ]
        );
        let node: Vec<String> = column_definitions("Node")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            node,
            [
                "Name",
                "Status",
                "Roles",
                "Age",
                "Version",
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime"
            ]
        );
        let unknown: Vec<String> = column_definitions("ConfigMap")
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(unknown, ["Name", "Age"]);
        assert_eq!(column_definitions("Lease")[1]["name"], "Holder");
        assert_eq!(column_definitions("EndpointSlice")[1]["name"], "AddressType");
        assert_eq!(column_definitions("StatefulSet").len(), 5);
        assert_eq!(column_definitions("Deployment")[2]["name"], "Up-to-date");
    }

    fn svc(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": ago(302)}, "spec": spec, "status": status})
    }

    #[test]
    fn service_cluster_ip_with_selector() {
        let s = svc(
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                   "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                   "selector": {"tier": "web", "app": "x"}}),
            json!({}),
        );
        assert_eq!(
            cells("Service", s),
            [
                "web",
                "ClusterIP",
                "10.96.0.10",
                "<none>",
                "80/TCP,53/UDP",
                "5m2s",
                "app=x,tier=web"
            ]
        );
    }

    #[test]
    fn service_headless_and_without_ports_or_selector() {
        let s = svc(json!({"clusterIP": "None", "clusterIPs": ["None"]}), json!({}));
        assert_eq!(
            cells("Service", s),
            ["web", "ClusterIP", "None", "<none>", "<none>", "5m2s", "<none>"]
        );
    }

    #[test]
    fn service_node_port_and_external_ips() {
        let s = svc(
            json!({"type": "NodePort", "clusterIPs": ["10.96.1.1"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
                   "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 443, "nodePort": 30443}]}),
            json!({}),
        );
        let c = cells("Service", s);
        assert_eq!(c[3], "1.2.3.4,5.6.7.8");
        assert_eq!(c[4], "80:30080/TCP,443:30443/TCP");
    }

    #[test]
    fn service_load_balancer_pending_and_with_ingress() {
        let pending = svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.2.2"], "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]}),
            json!({}),
        );
        assert_eq!(cells("Service", pending)[3], "<pending>");
        let ready = svc(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.2.2"], "externalIPs": ["9.9.9.9"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"}, {"ip": "203.0.113.10"}]}}),
        );
        assert_eq!(
            cells("Service", ready)[3],
            "203.0.113.10,203.0.113.9,lb.example.com,9.9.9.9"
        );
    }

    #[test]
    fn service_external_name() {
        let s = svc(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(
            cells("Service", s),
            [
                "web",
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "5m2s",
                "<none>"
            ]
        );
    }

    fn running_container(name: &str, restarts: i64) -> Value {
        json!({"name": name, "ready": true, "restartCount": restarts, "started": true,
               "state": {"running": {"startedAt": ago(100)}}})
    }

    #[test]
    fn pod_running_with_ip_and_node() {
        let pod = json!({
            "metadata": {"name": "web-1", "creationTimestamp": ago(3 * 86400)},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "podIPs": [{"ip": "10.0.0.7"}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [running_container("a", 0), running_container("b", 0)]}
        });
        assert_eq!(
            cells("Pod", pod),
            ["web-1", "2/2", "Running", "0", "3d", "10.0.0.7", "n1", "<none>", "<none>"]
        );
    }

    #[test]
    fn pod_pending_unscheduled() {
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(5)},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Pending"}
        });
        assert_eq!(
            cells("Pod", pod),
            ["p", "0/1", "Pending", "0", "5s", "<none>", "<none>", "<none>", "<none>"]
        );
    }

    #[test]
    fn pod_restarts_show_when_the_last_one_happened() {
        let mut c = running_container("a", 3);
        c["lastState"] = json!({"terminated": {"exitCode": 1, "finishedAt": ago(300)}});
        let pod = json!({
            "metadata": {"name": "p", "creationTimestamp": ago(3600)},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [c]}
        });
        assert_eq!(cells("Pod", pod)[3], "3 (5m ago)");
    }

    #[test]
    fn pod_waiting_and_terminated_reasons() {
        let crash = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let c = cells("Pod", crash);
        assert_eq!(
            (c[1].as_str(), c[2].as_str(), c[3].as_str()),
            ("0/1", "CrashLoopBackOff", "4")
        );
        let killed = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}
            ]}
        });
        assert_eq!(cells("Pod", killed)[2], "Signal:9");
        let exited = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "a", "state": {"terminated": {"exitCode": 2}}}]}
        });
        assert_eq!(cells("Pod", exited)[2], "ExitCode:2");
    }

    #[test]
    fn pod_completed_container_beside_a_running_one() {
        let pod = |ready: &str| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": ready}],
                    "containerStatuses": [
                        {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                        running_container("b", 0)
                    ]}
            })
        };
        assert_eq!(cells("Pod", pod("True"))[2], "Running");
        assert_eq!(cells("Pod", pod("False"))[2], "NotReady");
    }

    #[test]
    fn pod_init_containers() {
        let init = |statuses: Value| {
            json!({
                "metadata": {"name": "p"},
                "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]},
                "status": {"phase": "Pending", "initContainerStatuses": statuses,
                    "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}
            })
        };
        let first_running = init(
            json!([{"name": "i1", "state": {"running": {}}}, {"name": "i2", "state": {"waiting": {"reason": "PodInitializing"}}}]),
        );
        assert_eq!(cells("Pod", first_running)[2], "Init:0/2");
        let second = init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"running": {}}}]),
        );
        assert_eq!(cells("Pod", second)[2], "Init:1/2");
        let failed = init(
            json!([{"name": "i1", "restartCount": 2, "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]),
        );
        let c = cells("Pod", failed);
        assert_eq!((c[2].as_str(), c[3].as_str()), ("Init:Error", "2"));
        let backoff = init(json!([{"name": "i1", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]));
        assert_eq!(cells("Pod", backoff)[2], "Init:ImagePullBackOff");
        let done = init(
            json!([{"name": "i1", "state": {"terminated": {"exitCode": 0}}}, {"name": "i2", "state": {"terminated": {"exitCode": 0}}}]),
        );
        assert_eq!(cells("Pod", done)[2], "PodInitializing");
    }

    #[test]
    fn pod_sidecar_counts_as_a_container() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1, "state": {"running": {}}}],
                "containerStatuses": [running_container("a", 2)]}
        });
        let c = cells("Pod", pod);
        assert_eq!((c[1].as_str(), c[2].as_str(), c[3].as_str()), ("2/2", "Running", "3"));
    }

    #[test]
    fn pod_terminating_unknown_and_gated() {
        let base = |phase: &str, reason: &str| {
            json!({
                "metadata": {"name": "p", "deletionTimestamp": ago(1)},
                "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": phase, "reason": reason, "containerStatuses": [running_container("a", 0)]}
            })
        };
        assert_eq!(cells("Pod", base("Running", ""))[2], "Terminating");
        assert_eq!(cells("Pod", base("Running", "NodeLost"))[2], "Unknown");
        assert_eq!(cells("Pod", base("Succeeded", ""))[2], "Succeeded");
        let gated = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}], "schedulingGates": [{"name": "g"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}
        });
        assert_eq!(cells("Pod", gated)[2], "SchedulingGated");
        let evicted = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                             "status": {"phase": "Failed", "reason": "Evicted"}});
        assert_eq!(cells("Pod", evicted)[2], "Evicted");
    }

    #[test]
    fn pod_readiness_gates_and_nomination() {
        let pod = json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "readinessGates": [{"conditionType": "a.io/x"}, {"conditionType": "a.io/y"}]},
            "status": {"phase": "Pending", "nominatedNodeName": "n2",
                       "conditions": [{"type": "a.io/x", "status": "True"}, {"type": "a.io/y", "status": "False"}]}
        });
        let c = cells("Pod", pod);
        assert_eq!((c[7].as_str(), c[8].as_str()), ("n2", "1/2"));
    }

    fn node(conditions: Value, unschedulable: bool, labels: Value) -> Value {
        json!({
            "metadata": {"name": "n1", "creationTimestamp": ago(10 * 86400), "labels": labels},
            "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions,
                "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.5"}],
                "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.0"}}
        })
    }

    #[test]
    fn node_ready_with_roles() {
        let n = node(
            json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]),
            false,
            json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "", "kubernetes.io/role": "etcd"}),
        );
        assert_eq!(
            cells("Node", n),
            [
                "n1",
                "Ready",
                "control-plane,etcd",
                "10d",
                "v1.33.0",
                "192.168.1.5",
                "<none>",
                "Debian GNU/Linux 12 (bookworm)",
                "6.1.0",
                "containerd://1.7.0"
            ]
        );
    }

    #[test]
    fn node_not_ready_cordoned_and_unknown() {
        let not_ready = node(json!([{"type": "Ready", "status": "Unknown"}]), false, json!({}));
        let c = cells("Node", not_ready);
        assert_eq!((c[1].as_str(), c[2].as_str()), ("NotReady", "<none>"));
        let cordoned = node(json!([{"type": "Ready", "status": "True"}]), true, json!({}));
        assert_eq!(cells("Node", cordoned)[1], "Ready,SchedulingDisabled");
        let bare = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
        assert_eq!(
            cells("Node", bare),
            [
                "n",
                "Unknown,SchedulingDisabled",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        );
    }

    #[test]
    fn endpoints_listing_and_truncation() {
        let ep =
            |subsets: Value| json!({"metadata": {"name": "web", "creationTimestamp": ago(60)}, "subsets": subsets});
        assert_eq!(cells("Endpoints", ep(json!([]))), ["web", "<none>", "60s"]);
        assert_eq!(cells("Endpoints", json!({"metadata": {"name": "web"}}))[1], "<none>");
        let two = ep(json!([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}]}]));
        assert_eq!(cells("Endpoints", two)[1], "10.0.0.1:80,10.0.0.2:80");
        let many = ep(json!([
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "10.0.0.3"}], "ports": [{"port": 80}]}
        ]));
        assert_eq!(
            cells("Endpoints", many)[1],
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."
        );
        let four =
            ep(json!([{"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}, {"ip": "d"}], "ports": [{"port": 1}]}]));
        assert_eq!(cells("Endpoints", four)[1], "a:1,b:1,c:1 + 1 more...");
        let headless = ep(json!([{"addresses": [{"ip": "10.0.0.9"}, {"ip": "fd00::1"}]}]));
        assert_eq!(cells("Endpoints", headless)[1], "10.0.0.9,fd00::1");
        let v6 = ep(json!([{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 8080}]}]));
        assert_eq!(cells("Endpoints", v6)[1], "[fd00::1]:8080");
        let not_ready = ep(json!([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]));
        assert_eq!(cells("Endpoints", not_ready)[1], "");
    }

    #[test]
    fn endpoint_slice_cells() {
        let slice = json!({
            "metadata": {"name": "web-abc", "creationTimestamp": ago(90)},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 80}, {"name": "named"}, {}, {"port": 9090}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]
        });
        assert_eq!(
            cells("EndpointSlice", slice),
            [
                "web-abc",
                "IPv4",
                "80,named,* + 1 more...",
                "10.0.0.1,10.0.0.2,10.0.0.3",
                "90s"
            ]
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(cells("EndpointSlice", empty)[2..4], ["<unset>", "<unset>"]);
    }

    #[test]
    fn namespace_and_lease_cells() {
        let ns = json!({"metadata": {"name": "dev", "creationTimestamp": ago(7200), "deletionTimestamp": ago(1)},
                        "status": {"phase": "Terminating"}});
        assert_eq!(cells("Namespace", ns), ["dev", "Terminating", "120m"]);
        let lease = json!({"metadata": {"name": "kube-scheduler", "creationTimestamp": ago(30)},
                           "spec": {"holderIdentity": "node-1_abc"}});
        assert_eq!(cells("Lease", lease), ["kube-scheduler", "node-1_abc", "30s"]);
        assert_eq!(cells("Lease", json!({"metadata": {"name": "l"}, "spec": {}}))[1], "");
    }

    #[test]
    fn event_cells_core_and_series() {
        let ev = json!({
            "metadata": {"name": "web-1.17a", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
            "reason": "Pulled", "type": "Normal", "message": "  Container image pulled \n",
            "source": {"component": "kubelet", "host": "n1"},
            "firstTimestamp": ago(600), "lastTimestamp": ago(65), "count": 3
        });
        assert_eq!(
            cells("Event", ev),
            [
                "65s",
                "Normal",
                "Pulled",
                "pod/web-1",
                "spec.containers{app}",
                "kubelet, n1",
                "Container image pulled",
                "10m",
                "3",
                "web-1.17a"
            ]
        );
        let new_api = json!({
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "Node"},
            "reason": "Ready", "type": "Normal", "message": "m",
            "eventTime": "2024-05-01T11:59:00.000000Z",
            "reportingComponent": "node-controller", "reportingInstance": "cp-1"
        });
        assert_eq!(
            cells("Event", new_api),
            [
                "60s",
                "Normal",
                "Ready",
                "node",
                "",
                "node-controller, cp-1",
                "m",
                "60s",
                "1",
                "e2"
            ]
        );
        let series = json!({
            "metadata": {"name": "e3"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "eventTime": "2024-05-01T11:00:00.000000Z",
            "series": {"count": 7, "lastObservedTime": "2024-05-01T11:59:50.000000Z"},
            "reportingComponent": "c"
        });
        let c = cells("Event", series);
        assert_eq!(
            (c[0].as_str(), c[5].as_str(), c[7].as_str(), c[8].as_str()),
            ("10s", "c", "60m", "7")
        );
        let row = row_cells("Event", &json!({"metadata": {"name": "x"}}), now());
        assert_eq!(row[0], "<unknown>");
        assert_eq!(row[8], json!(1));
    }

    fn workload(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "web", "creationTimestamp": ago(3 * 3600 + 240)}, "spec": spec, "status": status})
    }

    fn template() -> Value {
        json!({"metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}})
    }

    #[test]
    fn deployment_cells_with_integer_counts() {
        let dep = workload(
            json!({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template()}),
            json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}),
        );
        let row = row_cells("Deployment", &dep, now());
        assert_eq!(row[2], json!(3));
        assert_eq!(row[3], json!(2));
        assert_eq!(
            strs(&row),
            [
                "web",
                "2/3",
                "3",
                "2",
                "3h4m",
                "app,log",
                "nginx:1.27,busybox",
                "app=web"
            ]
        );
        let bare = workload(json!({}), json!({}));
        assert_eq!(cells("Deployment", bare), ["web", "0/1", "0", "0", "3h4m", "", "", ""]);
        let bad = workload(
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}),
            json!({}),
        );
        assert_eq!(cells("Deployment", bad)[7], "<invalid>");
    }

    #[test]
    fn replica_set_cells_with_selector_formatting() {
        let rs = workload(
            json!({"replicas": 2, "template": template(),
                   "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod", "dev"]}]}}),
            json!({"replicas": 2, "readyReplicas": 1}),
        );
        let row = row_cells("ReplicaSet", &rs, now());
        assert_eq!(&row[1..4], &[json!(2), json!(2), json!(1)]);
        assert_eq!(strs(&row)[7], "app=web,env notin (dev,prod)");
        assert_eq!(
            cells("ReplicaSet", workload(json!({"selector": {}}), json!({})))[7],
            "<none>"
        );
        assert_eq!(cells("ReplicaSet", workload(json!({}), json!({})))[7], "<none>");
        let bad = workload(json!({"selector": {"matchLabels": {"-x": "y"}}}), json!({}));
        assert_eq!(cells("ReplicaSet", bad)[7], "<error>");
    }

    #[test]
    fn stateful_set_cells() {
        let sts = workload(
            json!({"replicas": 3, "template": template()}),
            json!({"readyReplicas": 3}),
        );
        assert_eq!(
            cells("StatefulSet", sts),
            ["web", "3/3", "3h4m", "app,log", "nginx:1.27,busybox"]
        );
    }

    #[test]
    fn unknown_kinds_get_name_and_age() {
        let cm = json!({"metadata": {"name": "cfg", "creationTimestamp": ago(45)}});
        assert_eq!(cells("ConfigMap", cm), ["cfg", "45s"]);
    }
}
