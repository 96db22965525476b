//! Parsing of resource URLs into what they name: `/api/v1/namespaces/{ns}/services/{name}/status`,
//! `/apis/apps/v1/deployments`, `/api/v1/nodes/{name}` and so on.

use svcnet_core::resources::{self, ResourceInfo};

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api/v1` or `/apis/<group>/<version>`: the resource list of a group/version.
    GroupVersion { group: String, version: String },
    /// A collection: one namespace's, all namespaces', or a cluster-scoped one.
    Collection {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
    },
    /// One object, or one of its subresources.
    Object {
        resource: &'static ResourceInfo,
        namespace: Option<String>,
        name: String,
        subresource: Option<String>,
    },
}

/// Parses a path under `/api` or `/apis`; None means 404.
pub fn parse(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    // Only served group/versions have resources.
    resources::in_group_version(group, version).next()?;
    let lookup = |plural: &str| resources::by_plural(group, plural).filter(|r| r.version == version);
    let namespaced = |plural: &str| lookup(plural).filter(|r| r.namespaced);
    let object = |resource, namespace: Option<&str>, name: &str, sub: Option<&str>| {
        Some(Target::Object {
            resource,
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
            subresource: sub.map(str::to_string),
        })
    };
    match rest {
        [] => Some(Target::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        }),
        ["namespaces", ns, plural] if namespaced(plural).is_some() => Some(Target::Collection {
            resource: namespaced(plural)?,
            namespace: Some(ns.to_string()),
        }),
        ["namespaces", ns, plural, name] if namespaced(plural).is_some() => {
            object(namespaced(plural)?, Some(ns), name, None)
        }
        ["namespaces", ns, plural, name, sub] if namespaced(plural).is_some() => {
            object(namespaced(plural)?, Some(ns), name, Some(sub))
        }
        [plural] => Some(Target::Collection {
            resource: lookup(plural)?,
            namespace: None,
        }),
        [plural, name] => object(lookup(plural).filter(|r| !r.namespaced)?, None, name, None),
        [plural, name, sub] => object(lookup(plural).filter(|r| !r.namespaced)?, None, name, Some(sub)),
        _ => None,
    }
}

impl Target {
    pub fn resource(&self) -> Option<&'static ResourceInfo> {
        match self {
            Target::GroupVersion { .. } => None,
            Target::Collection { resource, .. } | Target::Object { resource, .. } => Some(resource),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(path: &str) -> (String, Option<String>, String, Option<String>) {
        match parse(path) {
            Some(Target::Object {
                resource,
                namespace,
                name,
                subresource,
            }) => (resource.plural.to_string(), namespace, name, subresource),
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths_name_their_targets() {
        assert_eq!(
            object("/api/v1/namespaces/default/services/web"),
            ("services".into(), Some("default".into()), "web".into(), None)
        );
        assert_eq!(
            object("/api/v1/namespaces/default/services/web/status").3,
            Some("status".into())
        );
        assert_eq!(
            object("/api/v1/namespaces/shop"),
            ("namespaces".into(), None, "shop".into(), None)
        );
        assert_eq!(
            object("/api/v1/namespaces/shop/status"),
            ("namespaces".into(), None, "shop".into(), Some("status".into()))
        );
        assert_eq!(object("/api/v1/nodes/n1/status").2, "n1");
        assert_eq!(object("/apis/apps/v1/namespaces/a/deployments/web").0, "deployments");
        match parse("/api/v1/services") {
            Some(Target::Collection {
                resource,
                namespace: None,
            }) => assert_eq!(resource.kind, "Service"),
            other => panic!("{other:?}"),
        }
        match parse("/apis/discovery.k8s.io/v1/namespaces/x/endpointslices") {
            Some(Target::Collection { resource, namespace }) => {
                assert_eq!((resource.kind, namespace.as_deref()), ("EndpointSlice", Some("x")))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("/api/v1"),
            Some(Target::GroupVersion {
                group: "".into(),
                version: "v1".into()
            })
        );
        assert_eq!(
            parse("/api/v1/services/web"),
            None,
            "namespaced objects need a namespace"
        );
        assert_eq!(parse("/apis/apps/v1/services"), None);
        assert_eq!(parse("/api/v2/pods"), None);
        assert_eq!(parse("/api/v1/widgets"), None);
    }
}
