//! The registry of API resources that svcnet serves: one entry per kind, shared by routing,
//! discovery, OpenAPI documents and table printing so that the names are declared once.

/// One served resource (a kind under a group/version), as discovery describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; "" for the legacy core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    /// Plural resource name used in URLs ("services").
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    /// Whether a `/status` subresource is served.
    pub has_status: bool,
}

impl ResourceInfo {
    /// `v1` for the core group, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `services` or `deployments.apps`, the form kubectl and error messages use.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// URL prefix of the group/version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

const NONE: &[&str] = &[];
const ALL: &[&str] = &["all"];

macro_rules! resource {
    ($group:expr, $kind:expr, $plural:expr, $singular:expr, $namespaced:expr, $short:expr, $cat:expr, $status:expr) => {
        ResourceInfo {
            group: $group,
            version: "v1",
            kind: $kind,
            plural: $plural,
            singular: $singular,
            namespaced: $namespaced,
            short_names: $short,
            categories: $cat,
            has_status: $status,
        }
    };
}

/// Every resource svcnet serves, in discovery order.
pub const RESOURCES: &[ResourceInfo] = &[
    resource!("", "Namespace", "namespaces", "namespace", false, &["ns"], NONE, true),
    resource!("", "Node", "nodes", "node", false, &["no"], NONE, true),
    resource!("", "Pod", "pods", "pod", true, &["po"], ALL, true),
    resource!("", "Service", "services", "service", true, &["svc"], ALL, true),
    resource!("", "Endpoints", "endpoints", "endpoints", true, &["ep"], NONE, false),
    resource!("", "Event", "events", "event", true, &["ev"], NONE, false),
    resource!(
        "discovery.k8s.io",
        "EndpointSlice",
        "endpointslices",
        "endpointslice",
        true,
        NONE,
        NONE,
        false
    ),
    resource!(
        "coordination.k8s.io",
        "Lease",
        "leases",
        "lease",
        true,
        NONE,
        NONE,
        false
    ),
    resource!(
        "apps",
        "Deployment",
        "deployments",
        "deployment",
        true,
        &["deploy"],
        ALL,
        true
    ),
    resource!(
        "apps",
        "ReplicaSet",
        "replicasets",
        "replicaset",
        true,
        &["rs"],
        ALL,
        true
    ),
    resource!(
        "apps",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        ALL,
        true
    ),
    resource!(
        "apps",
        "ControllerRevision",
        "controllerrevisions",
        "controllerrevision",
        true,
        NONE,
        NONE,
        false
    ),
    resource!(
        "networking.k8s.io",
        "ServiceCIDR",
        "servicecidrs",
        "servicecidr",
        false,
        NONE,
        NONE,
        true
    ),
    resource!(
        "networking.k8s.io",
        "IPAddress",
        "ipaddresses",
        "ipaddress",
        false,
        &["ip"],
        NONE,
        false
    ),
];

/// The groups served under `/apis`, in discovery order.
pub const GROUPS: &[&str] = &["apps", "discovery.k8s.io", "coordination.k8s.io", "networking.k8s.io"];

/// Looks a resource up by group and plural name.
pub fn by_plural(group: &str, plural: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.group == group && r.plural == plural)
}

/// Looks a resource up by kind.
pub fn by_kind(kind: &str) -> Option<&'static ResourceInfo> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The resources of one group/version.
pub fn in_group_version<'a>(group: &'a str, version: &'a str) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree() {
        let svc = by_plural("", "services").unwrap();
        assert_eq!(svc.kind, "Service");
        assert_eq!(by_kind("Deployment").unwrap().api_version(), "apps/v1");
        assert_eq!(
            by_kind("EndpointSlice").unwrap().qualified_plural(),
            "endpointslices.discovery.k8s.io"
        );
        assert_eq!(in_group_version("apps", "v1").count(), 4);
        assert!(by_plural("apps", "services").is_none());
    }
}
