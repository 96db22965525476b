//! Kubernetes `Status` errors: the one place where failures become HTTP responses, worded as
//! kube-apiserver words them so that kubectl prints the same lines as against a real cluster.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use svcnet_core::resources::ResourceInfo;

/// One field-level cause of an Invalid error (`details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`, ...
    pub reason: String,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn new(reason: &str, field: &str, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.into(),
            field: field.into(),
            message: message.into(),
        }
    }
}

/// An API error, ready to be written as a Status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(resource: &ResourceInfo, name: &str) -> Value {
    let mut details = json!({"name": name, "kind": resource.plural});
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    details
}

impl ApiError {
    pub fn not_found(resource: &ResourceInfo, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} \"{}\" not found", resource.qualified_plural(), name),
            details: Some(details(resource, name)),
        }
    }

    /// A missing namespace, reported the way upstream reports it for writes into it.
    pub fn namespace_not_found(namespace: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("namespaces \"{namespace}\" not found"),
            details: Some(json!({"name": namespace, "kind": "namespaces"})),
        }
    }

    pub fn already_exists(resource: &ResourceInfo, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} \"{}\" already exists", resource.qualified_plural(), name),
            details: Some(details(resource, name)),
        }
    }

    pub fn conflict(resource: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on {} \"{}\": {}",
                resource.qualified_plural(),
                name,
                why
            ),
            details: Some(details(resource, name)),
        }
    }

    /// The stale-resourceVersion conflict that `kubectl replace` and retries know.
    pub fn modified(resource: &ResourceInfo, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with one cause per field. kubectl ignores `message` and rebuilds the text from
    /// `details.kind`, `details.name` and the causes, so those carry the wording.
    pub fn invalid(resource: &ResourceInfo, name: &str, causes: Vec<Cause>) -> Self {
        // Identical errors once, as upstream's ErrorList.ToAggregate.
        let mut summary: Vec<String> = Vec::new();
        for text in causes.iter().map(cause_text) {
            if !summary.contains(&text) {
                summary.push(text);
            }
        }
        // Upstream names the kind with its group: `Deployment.apps "web" is invalid`.
        let kind = if resource.group.is_empty() {
            resource.kind.to_string()
        } else {
            format!("{}.{}", resource.kind, resource.group)
        };
        let message = if summary.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", summary[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", summary.join(", "))
        };
        let mut d = json!({"name": name, "kind": resource.kind});
        if !resource.group.is_empty() {
            d["group"] = json!(resource.group);
        }
        d["causes"] = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect::<Vec<_>>()
            .into();
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: Some(d),
        }
    }

    /// Server-side apply needs a field manager.
    pub fn field_manager_required() -> Self {
        ApiError {
            code: 422,
            reason: "Invalid",
            message:
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
                    .into(),
            details: Some(json!({
                "group": "meta.k8s.io",
                "kind": "PatchOptions",
                "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}],
            })),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: None,
        }
    }

    pub fn forbidden(resource: &ResourceInfo, name: &str, why: &str) -> Self {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!("{} \"{}\" is forbidden: {}", resource.qualified_plural(), name, why),
            details: Some(details(resource, name)),
        }
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: message.into(),
            details: None,
        }
    }

    pub fn too_large(limit: usize) -> Self {
        ApiError {
            code: 413,
            reason: "RequestEntityTooLarge",
            message: format!("Request entity too large: limit is {limit}"),
            details: None,
        }
    }

    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {content_type})"),
            details: None,
        }
    }

    pub fn unsupported_patch(content_type: &str) -> Self {
        ApiError {
            code: 415,
            reason: "UnsupportedMediaType",
            message: format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"),
            details: None,
        }
    }

    /// 410 for a watch or list from a compacted resourceVersion.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError {
            code: 410,
            reason: "Expired",
            message: message.into(),
            details: None,
        }
    }

    /// The generic 404 for paths that name no resource.
    pub fn path_not_found() -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: "the server could not find the requested resource".into(),
            details: Some(json!({})),
        }
    }

    /// upstream NewInternalError: "Internal error occurred: ..." with the cause repeated.
    pub fn internal_error(cause: &str) -> Self {
        ApiError {
            code: 500,
            reason: "InternalError",
            message: format!("Internal error occurred: {cause}"),
            details: Some(json!({"causes": [{"message": cause}]})),
        }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            code: 500,
            reason: "InternalError",
            message: message.into(),
            details: None,
        }
    }

    /// The Status object as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status["code"] = json!(self.code);
        status
    }
}

fn cause_text(cause: &Cause) -> String {
    match cause.field.as_str() {
        "" => cause.message.clone(),
        field => format!("{}: {}", field, cause.message),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::http::json_response(code, &self.to_status())
    }
}

impl From<svcnet_store::Error> for ApiError {
    fn from(err: svcnet_store::Error) -> Self {
        match err {
            svcnet_store::Error::Compacted { requested, compacted } => {
                ApiError::expired(format!("too old resource version: {requested} ({compacted})"))
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_core::resources::by_kind;

    #[test]
    fn invalid_carries_causes_for_kubectl() {
        let svc = by_kind("Service").unwrap();
        let err = ApiError::invalid(
            svc,
            "bad",
            vec![Cause::new("FieldValueRequired", "spec.ports", "Required value")],
        );
        let status = err.to_status();
        assert_eq!(status["code"], 422);
        assert_eq!(
            status["message"],
            "Service \"bad\" is invalid: spec.ports: Required value"
        );
        assert_eq!(status["details"]["causes"][0]["field"], "spec.ports");
        assert_eq!(status["details"]["kind"], "Service");
    }

    #[test]
    fn not_found_names_the_qualified_resource() {
        let deploy = by_kind("Deployment").unwrap();
        let status = ApiError::not_found(deploy, "web").to_status();
        assert_eq!(status["message"], "deployments.apps \"web\" not found");
        assert_eq!(status["details"]["group"], "apps");
    }
}
