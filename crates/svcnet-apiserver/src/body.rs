//! Request bodies: read within the size limit, decoded from JSON, YAML or the Kubernetes protobuf
//! envelope, checked against the URL's kind, and normalised through the typed model so that
//! unknown fields are reported (fieldValidation) and dropped, as kube-apiserver does.

use axum::body::Body;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use svcnet_core::resources::ResourceInfo;

use crate::status::{ApiError, ApiResult};

/// kube-apiserver's request body limit (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Reads the whole body, refusing more than [`MAX_BODY`] bytes with 413.
pub async fn read(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY))
}

/// Decodes an object body by its content type.
pub fn decode(content_type: &str, bytes: &[u8]) -> ApiResult<Value> {
    let value = match content_type {
        "application/json" | "" => parse_json(bytes)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => parse_yaml(bytes)?,
        "application/vnd.kubernetes.protobuf" => svcnet_protobuf::decode_object(bytes)
            .map_err(|err| ApiError::bad_request(format!("the body of the request could not be decoded: {err}")))?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the object provided is unrecognized (must be of type object): expected a JSON object",
        ));
    }
    Ok(value)
}

pub fn parse_json(bytes: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(format!(
            "the object provided is unrecognized (must be of type JSON): couldn't get version/kind; json parse error: {err}"
        ))
    })
}

pub fn parse_yaml(bytes: &[u8]) -> ApiResult<Value> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::bad_request("error converting YAML to JSON: invalid UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|err| ApiError::bad_request(format!("error converting YAML to JSON: {err}")))
}

/// What the client asked to be done with unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

impl FieldValidation {
    pub fn from_query(value: Option<&str>) -> ApiResult<Self> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}, must be one of Strict, Warn, Ignore"
            ))),
        }
    }
}

/// Checks apiVersion/kind against the URL (filling them in when absent, as upstream defaults
/// them from the URL) and normalises the object through its typed model. Returns the normalised
/// object and the warnings for unknown fields under `Warn`.
pub fn typed_object(
    resource: &ResourceInfo,
    mut object: Value,
    validation: FieldValidation,
) -> ApiResult<(Value, Vec<String>)> {
    check_kind(resource, &mut object)?;
    let (normalised, unknown) = normalise(resource.kind, object).map_err(|err| cannot_handle(resource, &err))?;
    let unknown: Vec<String> = unknown
        .into_iter()
        .map(|path| format!("unknown field \"{path}\""))
        .collect();
    match validation {
        FieldValidation::Strict if !unknown.is_empty() => Err(cannot_handle(
            resource,
            &format!("strict decoding error: {}", unknown.join(", ")),
        )),
        FieldValidation::Warn => Ok((normalised, unknown)),
        _ => Ok((normalised, Vec::new())),
    }
}

fn cannot_handle(resource: &ResourceInfo, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version \"{}\" cannot be handled as a {}: {}",
        resource.kind, resource.version, resource.kind, why
    ))
}

fn check_kind(resource: &ResourceInfo, object: &mut Value) -> ApiResult<()> {
    let expected_version = resource.api_version();
    let map = object.as_object_mut().expect("decode checked an object");
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::from(expected_version.clone()));
        }
        Some(version) if version != expected_version => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({version}) does not match the expected API version ({expected_version})"
            )))
        }
        Some(_) => {}
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::from(resource.kind));
        }
        Some(kind) if kind != resource.kind => {
            return Err(ApiError::bad_request(format!(
                "{kind} in version \"{}\" cannot be handled as a {}: the object provided is unrecognized (must be of type {})",
                resource.version, resource.kind, resource.kind
            )))
        }
        Some(_) => {}
    }
    Ok(())
}

/// Round-trips an object through its k8s-openapi type, collecting unknown field paths.
pub fn normalise(kind: &str, object: Value) -> Result<(Value, Vec<String>), String> {
    use k8s_openapi::api::{
        apps::v1 as apps, coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    };
    match kind {
        "Namespace" => round_trip::<core::Namespace>(object),
        "Node" => round_trip::<core::Node>(object),
        "Pod" => round_trip::<core::Pod>(object),
        "Service" => round_trip::<core::Service>(object),
        "Endpoints" => round_trip::<core::Endpoints>(object),
        "Event" => round_trip::<core::Event>(object),
        "EndpointSlice" => round_trip::<discovery::EndpointSlice>(object),
        "Lease" => round_trip::<coordination::Lease>(object),
        "Deployment" => round_trip::<apps::Deployment>(object),
        "ReplicaSet" => round_trip::<apps::ReplicaSet>(object),
        "StatefulSet" => round_trip::<apps::StatefulSet>(object),
        "ControllerRevision" => round_trip::<apps::ControllerRevision>(object),
        "ServiceCIDR" => round_trip::<k8s_openapi::api::networking::v1::ServiceCIDR>(object),
        "IPAddress" => round_trip::<k8s_openapi::api::networking::v1::IPAddress>(object),
        other => Err(format!("no type registered for kind {other}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(object: Value) -> Result<(Value, Vec<String>), String> {
    let mut unknown = Vec::new();
    let typed: T = serde_ignored::deserialize(object, |path| unknown.push(field_path(&path.to_string())))
        .map_err(|err| err.to_string())?;
    let value = serde_json::to_value(typed).map_err(|err| err.to_string())?;
    Ok((value, unknown))
}

/// `spec.ports.0.tragetPort` -> `spec.ports[0].tragetPort`, the form upstream reports.
fn field_path(path: &str) -> String {
    let mut out = String::new();
    // serde_ignored marks Option and newtype layers with `?`; they are not fields.
    for segment in path.split('.').filter(|s| *s != "?") {
        if !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use svcnet_core::resources::by_kind;

    fn svc() -> &'static ResourceInfo {
        by_kind("Service").unwrap()
    }

    #[test]
    fn unknown_fields_follow_field_validation() {
        let object = json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80, "tragetPort": 8080}]}});
        let strict = typed_object(svc(), object.clone(), FieldValidation::Strict).unwrap_err();
        assert_eq!(strict.code, 400);
        assert!(
            strict
                .message
                .contains("strict decoding error: unknown field \"spec.ports[0].tragetPort\""),
            "{}",
            strict.message
        );
        let (value, warnings) = typed_object(svc(), object.clone(), FieldValidation::Warn).unwrap();
        assert_eq!(warnings, ["unknown field \"spec.ports[0].tragetPort\""]);
        assert!(value["spec"]["ports"][0].get("tragetPort").is_none());
        assert_eq!(value["kind"], "Service");
        let (_, warnings) = typed_object(svc(), object, FieldValidation::Ignore).unwrap();
        assert!(warnings.is_empty());
    }

    #[test]
    fn wrong_kind_or_version_is_refused() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
        assert_eq!(typed_object(svc(), pod, FieldValidation::Strict).unwrap_err().code, 400);
        let apps = json!({"apiVersion": "apps/v1", "kind": "Service", "metadata": {"name": "a"}});
        let err = typed_object(svc(), apps, FieldValidation::Strict).unwrap_err();
        assert!(err.message.contains("does not match the expected API version (v1)"));
    }

    #[test]
    fn type_errors_are_bad_requests() {
        let object = json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": "eighty"}]}});
        assert_eq!(
            typed_object(svc(), object, FieldValidation::Strict).unwrap_err().code,
            400
        );
    }

    #[test]
    fn malformed_bodies_are_bad_requests() {
        assert_eq!(decode("application/json", b"{\"a\":").unwrap_err().code, 400);
        assert_eq!(decode("application/yaml", b"a: [1,").unwrap_err().code, 400);
        assert_eq!(decode("application/json", b"[1]").unwrap_err().code, 400);
        assert_eq!(decode("text/plain", b"{}").unwrap_err().code, 415);
        assert_eq!(
            decode("application/yaml", b"metadata:\n  name: a\n").unwrap()["metadata"]["name"],
            "a"
        );
    }
}
