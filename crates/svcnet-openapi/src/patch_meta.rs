//! Strategic-merge-patch metadata of the served types.
//!
//! k8s-openapi's schemas do not carry `x-kubernetes-patch-strategy` /
//! `x-kubernetes-patch-merge-key`, but kubectl apply computes its patch from the
//! `/openapi/v2` schema whenever that document knows the kind: without these keys it would
//! treat `spec.ports` or `containers` as atomic lists and, for instance, never delete a port
//! that was removed from a manifest. The values are upstream's `patchStrategy` /
//! `patchMergeKey` struct tags (Kubernetes 1.33) for every type reachable from a served kind.

use serde_json::Value;

use crate::schemas::Definitions;

/// (definition, property, strategy, merge key)
type Row = (&'static str, &'static str, &'static str, Option<&'static str>);

const CORE: &str = "io.k8s.api.core.v1.";
const APPS: &str = "io.k8s.api.apps.v1.";
const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

const MERGE: &str = "merge";
const MERGE_RETAIN: &str = "merge,retainKeys";

pub const TABLE: &[(&str, Row)] = &[
    (CORE, ("Container", "env", MERGE, Some("name"))),
    (CORE, ("Container", "ports", MERGE, Some("containerPort"))),
    (CORE, ("Container", "volumeDevices", MERGE, Some("devicePath"))),
    (CORE, ("Container", "volumeMounts", MERGE, Some("mountPath"))),
    (CORE, ("EphemeralContainer", "env", MERGE, Some("name"))),
    (CORE, ("EphemeralContainer", "ports", MERGE, Some("containerPort"))),
    (CORE, ("EphemeralContainer", "volumeDevices", MERGE, Some("devicePath"))),
    (CORE, ("EphemeralContainer", "volumeMounts", MERGE, Some("mountPath"))),
    (CORE, ("NamespaceStatus", "conditions", MERGE, Some("type"))),
    (CORE, ("NodeSpec", "podCIDRs", MERGE, None)),
    (CORE, ("NodeStatus", "addresses", MERGE, Some("type"))),
    (CORE, ("NodeStatus", "conditions", MERGE, Some("type"))),
    (CORE, ("PersistentVolumeClaimStatus", "conditions", MERGE, Some("type"))),
    (CORE, ("PodSpec", "containers", MERGE, Some("name"))),
    (CORE, ("PodSpec", "ephemeralContainers", MERGE, Some("name"))),
    (CORE, ("PodSpec", "hostAliases", MERGE, Some("ip"))),
    (CORE, ("PodSpec", "imagePullSecrets", MERGE, Some("name"))),
    (CORE, ("PodSpec", "initContainers", MERGE, Some("name"))),
    (CORE, ("PodSpec", "resourceClaims", MERGE_RETAIN, Some("name"))),
    (CORE, ("PodSpec", "schedulingGates", MERGE, Some("name"))),
    (
        CORE,
        ("PodSpec", "topologySpreadConstraints", MERGE, Some("topologyKey")),
    ),
    (CORE, ("PodSpec", "volumes", MERGE_RETAIN, Some("name"))),
    (CORE, ("PodStatus", "conditions", MERGE, Some("type"))),
    (CORE, ("PodStatus", "hostIPs", MERGE, Some("ip"))),
    (CORE, ("PodStatus", "podIPs", MERGE, Some("ip"))),
    (CORE, ("PodStatus", "resourceClaimStatuses", MERGE_RETAIN, Some("name"))),
    (CORE, ("ServiceSpec", "ports", MERGE, Some("port"))),
    (CORE, ("ServiceStatus", "conditions", MERGE, Some("type"))),
    (APPS, ("DeploymentSpec", "strategy", "retainKeys", None)),
    (APPS, ("DeploymentStatus", "conditions", MERGE, Some("type"))),
    (APPS, ("ReplicaSetStatus", "conditions", MERGE, Some("type"))),
    (APPS, ("StatefulSetStatus", "conditions", MERGE, Some("type"))),
    (META, ("ObjectMeta", "finalizers", MERGE, None)),
    (META, ("ObjectMeta", "ownerReferences", MERGE, Some("uid"))),
];

/// Adds the extensions to the property schemas. Rows whose definition is not served are
/// skipped; a unit test checks that every row names an existing property.
pub fn apply(defs: &mut Definitions) {
    for (prefix, (def, prop, strategy, key)) in TABLE {
        let Some(schema) = property_mut(defs, &format!("{prefix}{def}"), prop) else {
            continue;
        };
        schema.insert("x-kubernetes-patch-strategy".into(), (*strategy).into());
        if let Some(key) = key {
            schema.insert("x-kubernetes-patch-merge-key".into(), (*key).into());
        }
    }
}

pub fn property_mut<'a>(
    defs: &'a mut Definitions,
    def: &str,
    prop: &str,
) -> Option<&'a mut serde_json::Map<String, Value>> {
    defs.get_mut(def)?.get_mut("properties")?.get_mut(prop)?.as_object_mut()
}
