//! Patch application for PATCH requests, as pure functions over JSON values.
//!
//! Four patch types, chosen by the request's Content-Type:
//! - RFC 6902 JSON patch (`application/json-patch+json`),
//! - RFC 7386 JSON merge patch (`application/merge-patch+json`, used by `kubectl label`),
//! - strategic merge patch (`application/strategic-merge-patch+json`, used by `kubectl apply`,
//!   `patch`, `cordon`, `taint`, `set` and the Python client), which needs per-kind knowledge of
//!   which lists merge by which key (see [`field_patch_meta`]),
//! - a minimal server-side apply (`application/apply-patch+yaml`), which merges the applied
//!   configuration with the same per-kind rules.
//!
//! Nothing here touches storage: the API server reads the object, calls one of these
//! functions and validates and stores the result.

mod json;
mod strategic;
mod strategy;

use serde_json::Value;

pub use strategy::{field_patch_meta, FieldPatchMeta, MergeStrategy};

/// The patch types a PATCH request can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PatchType {
    /// RFC 6902 JSON patch.
    Json,
    /// RFC 7386 JSON merge patch.
    Merge,
    /// Kubernetes strategic merge patch.
    StrategicMerge,
    /// Server-side apply (the body is YAML or JSON).
    Apply,
}

impl PatchType {
    /// The patch type of a request Content-Type. Parameters such as `;charset=utf-8` are
    /// ignored and the media type is compared case-insensitively, as HTTP requires.
    pub fn from_content_type(ct: &str) -> Option<PatchType> {
        let media_type = ct.split(';').next().unwrap_or_default().trim();
        [
            PatchType::Json,
            PatchType::Merge,
            PatchType::StrategicMerge,
            PatchType::Apply,
        ]
        .into_iter()
        .find(|t| t.content_type().eq_ignore_ascii_case(media_type))
    }

    /// The media type that selects this patch type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::StrategicMerge => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// Why a patch could not be applied. Messages follow upstream kube-apiserver's wording where
/// there is one, because clients and people compare them with what a real cluster says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a well-formed patch of its type: not an object for merge patches, not
    /// an array of valid operations for JSON patch. Upstream answers 400 Bad Request.
    #[error("{0}")]
    InvalidPatch(String),
    /// A JSON patch operation does not apply to the object (a `test` failed, a path is
    /// missing). Upstream answers 422.
    #[error("{0}")]
    JsonPatchFailed(String),
    /// A strategic merge patch misuses a directive or a list format, e.g. an unknown
    /// `$patch` value or a list element without its merge key. Upstream answers 400.
    #[error("{0}")]
    BadStrategicMergePatch(String),
    /// A well-formed patch cannot be merged with the object's data, e.g. lists of lists or a
    /// list that mixes objects and scalars. Upstream answers 422.
    #[error("{0}")]
    Unprocessable(String),
}

impl PatchError {
    /// The HTTP status upstream answers with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::InvalidPatch(_) | PatchError::BadStrategicMergePatch(_) => 400,
            PatchError::JsonPatchFailed(_) | PatchError::Unprocessable(_) => 422,
        }
    }

    /// The `reason` of the Status object upstream answers with.
    pub fn reason(&self) -> &'static str {
        match self.status_code() {
            400 => "BadRequest",
            _ => "Invalid",
        }
    }
}

/// Applies an RFC 6902 JSON patch. Either every operation applies or the error is returned;
/// `original` is never half-patched.
pub fn apply_json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    json::apply_json_patch(original, patch)
}

/// Applies an RFC 7386 JSON merge patch. The patch must be a JSON object.
pub fn apply_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    json::apply_merge_patch(original, patch)
}

/// Applies a strategic merge patch to an object of `kind` (Service, Pod, ...; unknown kinds
/// merge maps and replace every list). All `$` directives are consumed: none is stored.
pub fn apply_strategic_merge_patch(original: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    strategic::apply_strategic_merge_patch(original, patch, kind)
}

/// Merges an apply configuration into the live object (`Value::Null` when the object does
/// not exist yet, to create it). Lists with a merge key merge by key, other lists are
/// replaced, maps merge recursively; field ownership is not tracked.
pub fn apply_server_side(original: &Value, applied: &Value, kind: &str) -> Result<Value, PatchError> {
    strategic::apply_server_side(original, applied, kind)
}

/// Applies a patch of the given type: the one entry point a PATCH handler needs once it has
/// parsed the body (YAML for apply, JSON otherwise).
pub fn apply_patch(patch_type: PatchType, original: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => apply_json_patch(original, patch),
        PatchType::Merge => apply_merge_patch(original, patch),
        PatchType::StrategicMerge => apply_strategic_merge_patch(original, patch, kind),
        PatchType::Apply => apply_server_side(original, patch, kind),
    }
}

/// The JSON type of a value, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
