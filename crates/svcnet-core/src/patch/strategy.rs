//! Per-kind patch strategies, as static tables of field paths.
//!
//! Upstream derives strategic-merge behaviour from the `patchStrategy` / `patchMergeKey`
//! struct tags of the Go types (k8s.io/api core/v1 and apps/v1). We have no Go types, so the
//! tags that matter for the served kinds are written down here as dotted field paths. A list
//! element is written `[*]` (`containers[*].ports`), and matching ignores `[*]` so a path is
//! found whether or not the caller spells out the list items.
//!
//! Anything not listed keeps the default: maps merge recursively, lists are atomic (replaced
//! whole). Some atomic lists are listed anyway, because people expect them to merge and the
//! table is the place a reader looks (Service `clusterIPs`, Pod `tolerations`, Node `taints`).

/// How a field is patched by strategic merge patch and by apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeStrategy {
    /// No patch tag upstream: maps merge recursively, lists are replaced whole.
    Default,
    /// `patchStrategy:"merge"` with a `patchMergeKey`: a list of objects merged element-wise
    /// by the value of that key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a key: a list of primitives merged as an ordered set.
    MergeSet,
}

/// The patch metadata of one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldPatchMeta {
    pub strategy: MergeStrategy,
    /// Upstream `retainKeys`: clients send `$retainKeys` for this map (or for each element of
    /// this list) so that switching a union member (a volume source, a deployment strategy
    /// type) clears the old one. The merge honours `$retainKeys` wherever it appears, like
    /// upstream; the flag documents where kubectl sends it.
    pub retain_keys: bool,
}

impl FieldPatchMeta {
    pub const DEFAULT: FieldPatchMeta = FieldPatchMeta {
        strategy: MergeStrategy::Default,
        retain_keys: false,
    };
}

/// One row of a strategy table: a path relative to the table's mount point.
#[derive(Clone, Copy, Debug)]
struct Rule {
    path: &'static str,
    meta: FieldPatchMeta,
}

const fn rule(path: &'static str, strategy: MergeStrategy, retain_keys: bool) -> Rule {
    Rule {
        path,
        meta: FieldPatchMeta { strategy, retain_keys },
    }
}

const fn by_key(path: &'static str, key: &'static str) -> Rule {
    rule(path, MergeStrategy::MergeByKey(key), false)
}

const fn by_key_retain(path: &'static str, key: &'static str) -> Rule {
    rule(path, MergeStrategy::MergeByKey(key), true)
}

const fn set(path: &'static str) -> Rule {
    rule(path, MergeStrategy::MergeSet, false)
}

const fn atomic(path: &'static str) -> Rule {
    rule(path, MergeStrategy::Default, false)
}

const fn retain(path: &'static str) -> Rule {
    rule(path, MergeStrategy::Default, true)
}

/// A table of rules that applies below `at` (a dotted path, empty for the object root).
/// Shared tables (ObjectMeta, PodSpec) are mounted wherever the type appears.
#[derive(Clone, Copy, Debug)]
struct Mount {
    at: &'static str,
    rules: &'static [Rule],
}

const fn mount(at: &'static str, rules: &'static [Rule]) -> Mount {
    Mount { at, rules }
}

/// ObjectMeta, wherever it appears (object metadata, pod templates).
const OBJECT_META: &[Rule] = &[by_key("ownerReferences", "uid"), set("finalizers")];

/// Status types whose only tagged field is `conditions`.
const CONDITIONS: &[Rule] = &[by_key("conditions", "type")];

/// PodSpec, including the per-container lists of Container and EphemeralContainer.
const POD_SPEC: &[Rule] = &[
    by_key("containers", "name"),
    by_key("initContainers", "name"),
    by_key("ephemeralContainers", "name"),
    by_key_retain("volumes", "name"),
    by_key("imagePullSecrets", "name"),
    by_key("hostAliases", "ip"),
    by_key("topologySpreadConstraints", "topologyKey"),
    by_key("schedulingGates", "name"),
    by_key_retain("resourceClaims", "name"),
    atomic("tolerations"),
    by_key("containers[*].ports", "containerPort"),
    by_key("containers[*].env", "name"),
    by_key("containers[*].volumeMounts", "mountPath"),
    by_key("containers[*].volumeDevices", "devicePath"),
    by_key("initContainers[*].ports", "containerPort"),
    by_key("initContainers[*].env", "name"),
    by_key("initContainers[*].volumeMounts", "mountPath"),
    by_key("initContainers[*].volumeDevices", "devicePath"),
    by_key("ephemeralContainers[*].ports", "containerPort"),
    by_key("ephemeralContainers[*].env", "name"),
    by_key("ephemeralContainers[*].volumeMounts", "mountPath"),
    by_key("ephemeralContainers[*].volumeDevices", "devicePath"),
];

const POD_STATUS: &[Rule] = &[
    by_key("conditions", "type"),
    by_key("podIPs", "ip"),
    by_key("hostIPs", "ip"),
    by_key_retain("resourceClaimStatuses", "name"),
];

const SERVICE_SPEC: &[Rule] = &[
    by_key("ports", "port"),
    atomic("clusterIPs"),
    atomic("ipFamilies"),
    atomic("externalIPs"),
    atomic("loadBalancerSourceRanges"),
];

const SERVICE_STATUS: &[Rule] = &[by_key("conditions", "type"), atomic("loadBalancer.ingress")];

const NODE_SPEC: &[Rule] = &[set("podCIDRs"), atomic("taints")];

const NODE_STATUS: &[Rule] = &[by_key("addresses", "type"), by_key("conditions", "type")];

const DEPLOYMENT_SPEC: &[Rule] = &[retain("strategy")];

const STATEFULSET_SPEC: &[Rule] = &[atomic("volumeClaimTemplates")];

const META_ONLY: &[Mount] = &[mount("metadata", OBJECT_META)];

const SERVICE: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec", SERVICE_SPEC),
    mount("status", SERVICE_STATUS),
];

const POD: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec", POD_SPEC),
    mount("status", POD_STATUS),
];

const NODE: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec", NODE_SPEC),
    mount("status", NODE_STATUS),
];

const NAMESPACE: &[Mount] = &[mount("metadata", OBJECT_META), mount("status", CONDITIONS)];

const DEPLOYMENT: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec", DEPLOYMENT_SPEC),
    mount("spec.template.metadata", OBJECT_META),
    mount("spec.template.spec", POD_SPEC),
    mount("status", CONDITIONS),
];

const REPLICASET: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec.template.metadata", OBJECT_META),
    mount("spec.template.spec", POD_SPEC),
    mount("status", CONDITIONS),
];

const STATEFULSET: &[Mount] = &[
    mount("metadata", OBJECT_META),
    mount("spec", STATEFULSET_SPEC),
    mount("spec.template.metadata", OBJECT_META),
    mount("spec.template.spec", POD_SPEC),
    mount("status", CONDITIONS),
];

/// The strategy tables of one kind; unknown kinds get none (maps merge, lists atomic).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KindStrategy {
    mounts: &'static [Mount],
}

impl KindStrategy {
    pub(crate) fn for_kind(kind: &str) -> KindStrategy {
        let mounts: &'static [Mount] = match kind {
            "Service" => SERVICE,
            "Pod" => POD,
            "Node" => NODE,
            "Namespace" => NAMESPACE,
            // Endpoints subsets and every EndpointSlice list are atomic upstream;
            // Event and Lease carry no patch tags beyond ObjectMeta.
            "Endpoints" | "EndpointSlice" | "Event" | "Lease" => META_ONLY,
            "Deployment" => DEPLOYMENT,
            "ReplicaSet" => REPLICASET,
            "StatefulSet" => STATEFULSET,
            _ => &[],
        };
        KindStrategy { mounts }
    }

    /// The metadata of the field at `path` (dotted, list items as `[*]` or omitted).
    pub(crate) fn lookup(&self, path: &str) -> FieldPatchMeta {
        let path = without_items(path);
        self.mounts
            .iter()
            .find_map(|m| find_in_mount(m, &path))
            .unwrap_or(FieldPatchMeta::DEFAULT)
    }
}

fn find_in_mount(mount: &Mount, path: &str) -> Option<FieldPatchMeta> {
    let at = without_items(mount.at);
    let rest = if at.is_empty() {
        path
    } else {
        path.strip_prefix(at.as_str())?.strip_prefix('.')?
    };
    mount
        .rules
        .iter()
        .find(|r| without_items(r.path) == rest)
        .map(|r| r.meta)
}

/// Drops list-item markers so `containers[*].ports` and `containers.ports` compare equal.
fn without_items(path: &str) -> String {
    path.replace("[*]", "")
}

/// The patch metadata of the field at `path` of an object of `kind`, as used by strategic
/// merge patch and apply. `path` is dotted from the object root; list items may be written
/// `[*]` or left out (`spec.template.spec.containers[*].ports`).
pub fn field_patch_meta(kind: &str, path: &str) -> FieldPatchMeta {
    KindStrategy::for_kind(kind).lookup(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(kind: &str, path: &str) -> MergeStrategy {
        field_patch_meta(kind, path).strategy
    }

    #[test]
    fn service_ports_merge_by_port_and_ip_lists_are_atomic() {
        assert_eq!(strategy("Service", "spec.ports"), MergeStrategy::MergeByKey("port"));
        assert_eq!(
            strategy("Service", "status.conditions"),
            MergeStrategy::MergeByKey("type")
        );
        assert_eq!(strategy("Service", "spec.clusterIPs"), MergeStrategy::Default);
        assert_eq!(strategy("Service", "spec.externalIPs"), MergeStrategy::Default);
        assert_eq!(
            strategy("Service", "status.loadBalancer.ingress"),
            MergeStrategy::Default
        );
    }

    #[test]
    fn metadata_rules_apply_to_every_known_kind() {
        for kind in [
            "Service",
            "Pod",
            "Node",
            "Namespace",
            "Endpoints",
            "EndpointSlice",
            "Event",
            "Lease",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
        ] {
            assert_eq!(strategy(kind, "metadata.finalizers"), MergeStrategy::MergeSet, "{kind}");
            assert_eq!(
                strategy(kind, "metadata.ownerReferences"),
                MergeStrategy::MergeByKey("uid"),
                "{kind}"
            );
        }
    }

    #[test]
    fn pod_spec_lists() {
        assert_eq!(strategy("Pod", "spec.containers"), MergeStrategy::MergeByKey("name"));
        assert_eq!(
            strategy("Pod", "spec.containers[*].ports"),
            MergeStrategy::MergeByKey("containerPort")
        );
        assert_eq!(
            strategy("Pod", "spec.initContainers[*].volumeMounts"),
            MergeStrategy::MergeByKey("mountPath")
        );
        assert_eq!(
            strategy("Pod", "spec.ephemeralContainers[*].volumeDevices"),
            MergeStrategy::MergeByKey("devicePath")
        );
        assert_eq!(strategy("Pod", "spec.hostAliases"), MergeStrategy::MergeByKey("ip"));
        assert_eq!(
            strategy("Pod", "spec.topologySpreadConstraints"),
            MergeStrategy::MergeByKey("topologyKey")
        );
        assert_eq!(strategy("Pod", "spec.tolerations"), MergeStrategy::Default);
        assert!(field_patch_meta("Pod", "spec.volumes").retain_keys);
        assert_eq!(strategy("Pod", "status.podIPs"), MergeStrategy::MergeByKey("ip"));
        assert_eq!(strategy("Pod", "status.hostIPs"), MergeStrategy::MergeByKey("ip"));
        // Container status lists are atomic upstream.
        assert_eq!(strategy("Pod", "status.containerStatuses"), MergeStrategy::Default);
    }

    #[test]
    fn list_items_are_transparent_in_paths() {
        assert_eq!(
            strategy("Pod", "spec.containers.env"),
            MergeStrategy::MergeByKey("name")
        );
        assert_eq!(
            strategy("Deployment", "spec.template.spec.containers[*].env"),
            MergeStrategy::MergeByKey("name")
        );
    }

    #[test]
    fn workloads_mount_the_pod_spec_under_the_template() {
        for kind in ["Deployment", "ReplicaSet", "StatefulSet"] {
            assert_eq!(
                strategy(kind, "spec.template.spec.containers"),
                MergeStrategy::MergeByKey("name")
            );
            assert_eq!(
                strategy(kind, "spec.template.metadata.finalizers"),
                MergeStrategy::MergeSet
            );
            assert_eq!(strategy(kind, "status.conditions"), MergeStrategy::MergeByKey("type"));
            // The pod spec is not mounted at the object's own spec.
            assert_eq!(strategy(kind, "spec.containers"), MergeStrategy::Default);
        }
        assert!(field_patch_meta("Deployment", "spec.strategy").retain_keys);
        assert_eq!(
            strategy("StatefulSet", "spec.volumeClaimTemplates"),
            MergeStrategy::Default
        );
    }

    #[test]
    fn node_and_namespace() {
        assert_eq!(strategy("Node", "spec.podCIDRs"), MergeStrategy::MergeSet);
        assert_eq!(strategy("Node", "spec.taints"), MergeStrategy::Default);
        assert_eq!(strategy("Node", "status.addresses"), MergeStrategy::MergeByKey("type"));
        assert_eq!(strategy("Node", "status.conditions"), MergeStrategy::MergeByKey("type"));
        assert_eq!(
            strategy("Namespace", "status.conditions"),
            MergeStrategy::MergeByKey("type")
        );
        // Namespace spec.finalizers has no patch tag, unlike metadata.finalizers.
        assert_eq!(strategy("Namespace", "spec.finalizers"), MergeStrategy::Default);
    }

    #[test]
    fn endpoints_lists_and_unknown_kinds_are_atomic() {
        assert_eq!(strategy("EndpointSlice", "endpoints"), MergeStrategy::Default);
        assert_eq!(strategy("Endpoints", "subsets"), MergeStrategy::Default);
        assert_eq!(strategy("Widget", "metadata.finalizers"), MergeStrategy::Default);
        assert_eq!(strategy("Widget", "spec.ports"), MergeStrategy::Default);
    }

    #[test]
    fn prefix_matching_needs_a_whole_segment() {
        // "specx.ports" must not match the "spec" mount.
        assert_eq!(strategy("Service", "specx.ports"), MergeStrategy::Default);
        assert_eq!(strategy("Service", "spec.portsx"), MergeStrategy::Default);
    }
}
