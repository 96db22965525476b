//! Where objects live in the store and how their metadata is stamped: keys, resourceVersion
//! injection, uid, timestamps, generateName and the metadata rules every kind shares.

use serde_json::{json, Map, Value};

use svcnet_core::resources::ResourceInfo;
use svcnet_core::selector;
use svcnet_store::KeyValue;

use crate::status::Cause;

/// Root of every key, as in kube-apiserver's etcd layout.
const ROOT: &str = "/registry/";

/// The key of one object: `/registry/services/default/web`, `/registry/nodes/n1`.
pub fn key(resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("{ROOT}{}/{ns}/{name}", resource.qualified_plural()),
        _ => format!("{ROOT}{}/{name}", resource.qualified_plural()),
    }
}

/// The prefix holding a resource, in one namespace or in all.
pub fn prefix(resource: &ResourceInfo, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if resource.namespaced => format!("{ROOT}{}/{ns}/", resource.qualified_plural()),
        _ => format!("{ROOT}{}/", resource.qualified_plural()),
    }
}

/// Decodes a stored object and stamps its resourceVersion (the key's mod revision), which is never
/// stored inside the value, as with etcd.
pub fn from_kv(kv: &KeyValue) -> Value {
    from_bytes(&kv.value, kv.mod_revision)
}

pub fn from_bytes(bytes: &[u8], revision: u64) -> Value {
    let mut object: Value = serde_json::from_slice(bytes).unwrap_or_else(|_| json!({}));
    set_resource_version(&mut object, revision);
    object
}

/// The stored bytes with `"resourceVersion":"N"` spliced into the top-level metadata, without
/// decoding: lists and watches send thousands of objects, and decoding each one to add a field
/// costs more than everything else they do. None when the bytes have no top-level metadata object.
pub fn splice_resource_version(bytes: &[u8], revision: u64) -> Option<Vec<u8>> {
    let open = top_level_metadata_start(bytes)?;
    let empty = bytes[open + 1..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
    let field = format!("\"resourceVersion\":\"{revision}\"{}", if empty { "" } else { "," });
    let mut out = Vec::with_capacity(bytes.len() + field.len());
    out.extend_from_slice(&bytes[..=open]);
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(&bytes[open + 1..]);
    Some(out)
}

/// Index of the `{` that opens the value of the top-level `"metadata"` key, found by a scan that
/// tracks strings and nesting (so nested `metadata` keys, as in pod templates, are skipped).
fn top_level_metadata_start(bytes: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let end = string_end(bytes, i)?;
                if depth == 1 && &bytes[i + 1..end] == b"metadata" {
                    let colon = next_non_space(bytes, end + 1)?;
                    if bytes[colon] == b':' {
                        let value = next_non_space(bytes, colon + 1)?;
                        return (bytes[value] == b'{').then_some(value);
                    }
                }
                i = end;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.checked_sub(1)?,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote closing the string that opens at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn next_non_space(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len()).find(|&i| !bytes[i].is_ascii_whitespace())
}

/// Encodes an object for storage without its resourceVersion.
pub fn to_bytes(object: &Value) -> Vec<u8> {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&object).expect("JSON values always encode")
}

pub fn set_resource_version(object: &mut Value, revision: u64) {
    metadata_mut(object).insert("resourceVersion".into(), Value::from(revision.to_string()));
}

/// `metadata` as a map, created if missing.
pub fn metadata_mut(object: &mut Value) -> &mut Map<String, Value> {
    let map = object.as_object_mut().expect("objects are JSON objects");
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    meta.as_object_mut().expect("just made an object")
}

pub fn meta_str<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

pub fn name(object: &Value) -> Option<&str> {
    meta_str(object, "name")
}

pub fn resource_version(object: &Value) -> Option<&str> {
    meta_str(object, "resourceVersion")
}

pub fn finalizers(object: &Value) -> Vec<String> {
    object
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(|f| f.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

pub fn is_deleting(object: &Value) -> bool {
    object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// RFC 3339 to the second, as Kubernetes writes metav1.Time.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The five-character suffix alphabet of upstream's name generator (no vowels, no confusables).
const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `generateName` + 5 random characters, truncated like upstream so the result fits 63 chars.
pub fn generate_name(base: &str) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let base = if base.len() > 58 { &base[..58] } else { base };
    let suffix: String = (0..5)
        .map(|_| GENERATE_ALPHABET[rng.random_range(0..GENERATE_ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}

/// Metadata stamped on create: uid, creationTimestamp, generation; server-owned fields reset.
pub fn stamp_create(object: &mut Value, namespace: Option<&str>, tracks_generation: bool) {
    let meta = metadata_mut(object);
    if let Some(ns) = namespace {
        meta.insert("namespace".into(), Value::from(ns));
    } else {
        meta.remove("namespace");
    }
    meta.insert("uid".into(), Value::from(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), Value::from(now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    if tracks_generation {
        meta.insert("generation".into(), Value::from(1));
    } else {
        meta.remove("generation");
    }
}

/// Carries server-owned metadata from the stored object onto an update.
pub fn keep_server_metadata(new: &mut Value, old: &Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = metadata_mut(new);
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old_meta.get(field) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
}

/// Which name rule a kind's names follow (upstream's ValidateXName functions).
fn name_rule(kind: &str) -> fn(&str) -> Vec<String> {
    match kind {
        "Service" => selector::is_dns1035_label,
        "Namespace" => selector::is_dns1123_label,
        _ => selector::is_dns1123_subdomain,
    }
}

/// Validates the metadata every kind shares (name, generateName, labels, annotations), as
/// ValidateObjectMeta does; one cause per problem.
pub fn validate_metadata(resource: &ResourceInfo, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let rule = name_rule(resource.kind);
    match name(object) {
        Some(name) => {
            for msg in rule(name) {
                causes.push(invalid("metadata.name", name, &msg));
            }
        }
        None => causes.push(Cause::new(
            "FieldValueRequired",
            "metadata.name",
            "Required value: name or generateName is required",
        )),
    }
    let meta = object.get("metadata");
    if let Some(labels) = meta.and_then(|m| m.get("labels")).and_then(Value::as_object) {
        causes.extend(selector::validate_labels(labels).into_iter().map(field_cause));
    }
    if let Some(annotations) = meta.and_then(|m| m.get("annotations")).and_then(Value::as_object) {
        causes.extend(selector::validate_annotations(annotations).into_iter().map(field_cause));
    }
    causes
}

fn field_cause(err: selector::FieldError) -> Cause {
    Cause::new(err.kind.reason(), &err.field, err.body())
}

fn invalid(field: &str, value: &str, message: &str) -> Cause {
    Cause::new(
        "FieldValueInvalid",
        field,
        format!("Invalid value: \"{value}\": {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_core::resources::by_kind;

    #[test]
    fn keys_follow_the_registry_layout() {
        let svc = by_kind("Service").unwrap();
        let node = by_kind("Node").unwrap();
        let deploy = by_kind("Deployment").unwrap();
        assert_eq!(key(svc, Some("default"), "web"), "/registry/services/default/web");
        assert_eq!(key(node, Some("ignored"), "n1"), "/registry/nodes/n1");
        assert_eq!(prefix(deploy, None), "/registry/deployments.apps/");
        assert_eq!(prefix(svc, Some("a")), "/registry/services/a/");
    }

    #[test]
    fn resource_version_is_not_stored() {
        let mut object = json!({"metadata": {"name": "a"}});
        set_resource_version(&mut object, 42);
        let bytes = to_bytes(&object);
        assert!(!String::from_utf8_lossy(&bytes).contains("42"));
        assert_eq!(from_bytes(&bytes, 43)["metadata"]["resourceVersion"], "43");
    }

    #[test]
    fn splicing_matches_decoding() {
        let cases = [
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {}}),
            json!({"kind": "Event", "involvedObject": {"name": "metadata"}, "message": "\"metadata\":{", "metadata": {}}),
            json!({"spec": {"template": {"metadata": {"labels": {}}}}, "metadata": {"name": "d"}}),
        ];
        for object in cases {
            let bytes = serde_json::to_vec(&object).unwrap();
            let spliced: Value = serde_json::from_slice(&splice_resource_version(&bytes, 42).unwrap()).unwrap();
            assert_eq!(spliced, from_bytes(&bytes, 42), "{object}");
        }
        assert_eq!(splice_resource_version(b"{\"kind\":\"X\"}", 1), None);
        assert_eq!(splice_resource_version(b"{\"metadata\":\"x\"}", 1), None);
    }

    #[test]
    fn generated_names_fit_and_differ() {
        let a = generate_name("web-");
        assert_eq!(a.len(), 9);
        assert!(a.starts_with("web-"));
        assert_ne!(a, generate_name("web-"));
    }

    #[test]
    fn bad_names_and_labels_are_causes() {
        let svc = by_kind("Service").unwrap();
        let causes = validate_metadata(
            svc,
            &json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "bad value!"}}}),
        );
        assert!(causes
            .iter()
            .any(|c| c.field == "metadata.name" && c.message.starts_with("Invalid value: \"Bad_Name\"")));
        assert!(causes.iter().any(|c| c.field == "metadata.labels"));
        assert!(validate_metadata(svc, &json!({"metadata": {"name": "web"}})).is_empty());
    }
}
