//! The plumbing every controller shares: a work queue of keys with per-key backoff
//! ([`queue`]), watch-fed caches and the loops around them ([`cache`], [`informer`]), and the
//! memory of the controller's own writes ([`written`]).

pub mod cache;
pub mod events;
pub mod informer;
pub mod queue;
pub mod written;

use std::fmt;

/// `namespace/name` of an object (an empty namespace for cluster-scoped kinds): the unit of
/// work of the queue-driven controllers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The key of an object from its metadata (empty parts when the metadata lacks them).
    pub fn of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Self {
        ObjectKey::new(
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The HTTP status of an API error (None for transport and decoding errors).
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Logs a failed controller pass before its retry. A 409 Conflict only means another writer
/// got there first (optimistic concurrency, e.g. the node agent renewing its status): the retry
/// with fresh state resolves it, so it is not worth a warning on the user's terminal.
pub fn log_retry(what: &str, err: &anyhow::Error, delay: std::time::Duration) {
    let conflict = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<kube::Error>())
        .any(|cause| api_code(cause) == Some(409));
    if conflict {
        tracing::debug!(error = %err, ?delay, "{what} pass hit a write conflict; retrying");
    } else {
        tracing::warn!(error = %err, ?delay, "{what} pass failed; retrying");
    }
}
