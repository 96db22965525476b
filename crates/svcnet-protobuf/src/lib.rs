//! Decoding of Kubernetes protobuf request bodies.
//!
//! kubectl 1.32 and later send `Content-Type: application/vnd.kubernetes.protobuf`
//! bodies for `kubectl create service ...`, `kubectl create namespace` and
//! `kubectl create deployment`, and never fall back to JSON when the server
//! refuses them. This crate turns
//! such a body back into the JSON object an older kubectl would have sent,
//! so the server keeps a single JSON code path.
//!
//! Wire format: the magic prefix `k8s\0`, then a `runtime.Unknown` message
//! whose `typeMeta` names the kind and whose `raw` field holds the object.

use prost::Message;
use serde_json::Value;

mod json;
pub mod proto;

/// Prefix that marks a Kubernetes protobuf payload.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Media type kubectl uses for protobuf request bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The body does not begin with `k8s\0`, so it is not Kubernetes protobuf.
    #[error("protobuf body does not start with the Kubernetes magic prefix \"k8s\\0\"")]
    MissingMagic,
    /// The `runtime.Unknown` envelope is malformed or incomplete.
    #[error("malformed protobuf envelope (runtime.Unknown): {0}")]
    Envelope(String),
    /// The envelope names a kind this decoder does not know.
    #[error("unsupported kind \"{api_version}, Kind={kind}\" in protobuf body")]
    UnsupportedKind { api_version: String, kind: String },
    /// The wrapped object failed to decode or convert.
    #[error("malformed {kind} protobuf message: {detail}")]
    Message { kind: String, detail: String },
}

/// Decodes a protobuf request body into the object's Kubernetes JSON form
/// (`kind`, `apiVersion`, `metadata`, `spec`, `status`).
pub fn decode_object(body: &[u8]) -> Result<Value, DecodeError> {
    let envelope = decode_envelope(body)?;
    let type_meta = envelope.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    if kind.is_empty() {
        return Err(DecodeError::Envelope("typeMeta.kind is missing".into()));
    }
    // contentEncoding and contentType are ignored on purpose: upstream clients
    // leave them empty and the apiserver does not look at them either.
    let raw = envelope.raw.unwrap_or_default();
    let converted = match (api_version.as_str(), kind.as_str()) {
        ("v1", "Service") => service(&raw),
        ("v1", "Namespace") => namespace(&raw),
        ("apps/v1", "Deployment") => deployment(&raw),
        _ => return Err(DecodeError::UnsupportedKind { api_version, kind }),
    };
    converted.map_err(|detail| DecodeError::Message { kind, detail })
}

/// Strips the magic prefix and parses the `runtime.Unknown` envelope.
fn decode_envelope(body: &[u8]) -> Result<proto::Unknown, DecodeError> {
    let payload = body.strip_prefix(MAGIC).ok_or(DecodeError::MissingMagic)?;
    proto::Unknown::decode(payload).map_err(|e| DecodeError::Envelope(e.to_string()))
}

fn service(raw: &[u8]) -> Result<Value, json::ConvError> {
    let svc = proto::Service::decode(raw).map_err(|e| e.to_string())?;
    Ok(json::top_level(
        "v1",
        "Service",
        json::object_meta(&svc.metadata.unwrap_or_default())?,
        json::service_spec(&svc.spec.unwrap_or_default())?,
        json::service_status(&svc.status.unwrap_or_default())?,
    ))
}

fn namespace(raw: &[u8]) -> Result<Value, json::ConvError> {
    let ns = proto::Namespace::decode(raw).map_err(|e| e.to_string())?;
    Ok(json::top_level(
        "v1",
        "Namespace",
        json::object_meta(&ns.metadata.unwrap_or_default())?,
        json::namespace_spec(&ns.spec.unwrap_or_default())?,
        json::namespace_status(&ns.status.unwrap_or_default())?,
    ))
}

fn deployment(raw: &[u8]) -> Result<Value, json::ConvError> {
    let deploy = proto::Deployment::decode(raw).map_err(|e| e.to_string())?;
    Ok(json::top_level(
        "apps/v1",
        "Deployment",
        json::object_meta(&deploy.metadata.unwrap_or_default())?,
        json::deployment_spec(&deploy.spec.unwrap_or_default())?,
        json::deployment_status(&deploy.status.unwrap_or_default())?,
    ))
}
