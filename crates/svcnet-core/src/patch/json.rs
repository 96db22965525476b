//! RFC 6902 JSON patch and RFC 7386 JSON merge patch.

use json_patch::{PatchErrorKind, PatchOperation};
use serde_json::{Map, Value};

use super::{json_type, PatchError};

/// Applies an RFC 6902 patch with the json-patch crate, which undoes every operation when
/// one fails, so a failed patch never leaves a half-patched object behind.
pub(super) fn apply_json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = decode_operations(patch)?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| describe_failure(&ops, &e))?;
    Ok(doc)
}

/// Decodes the operations one by one so that the error can say which one is malformed.
fn decode_operations(patch: &Value) -> Result<Vec<PatchOperation>, PatchError> {
    let Value::Array(items) = patch else {
        return Err(PatchError::InvalidPatch(format!(
            "invalid JSON patch: expected an array of operations, got {}",
            json_type(patch)
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_json::from_value(item.clone())
                .map_err(|e| PatchError::InvalidPatch(format!("invalid JSON patch operation {i}: {e}")))
        })
        .collect()
}

/// Words a failed operation the way upstream's JSON patch library (evanphx/json-patch)
/// does, since that is what kubectl users see from a real cluster.
fn describe_failure(ops: &[PatchOperation], err: &json_patch::PatchError) -> PatchError {
    let message = match (&ops[err.operation], &err.kind) {
        (PatchOperation::Test(op), _) => format!("testing value {} failed: test failed", op.path),
        (PatchOperation::Add(op), _) => format!(
            "add operation does not apply: doc is missing path: \"{}\": missing value",
            op.path
        ),
        (PatchOperation::Remove(op), _) => format!(
            "error in remove for path: '{}': Unable to remove nonexistent key: {}: missing value",
            op.path,
            last_token(op.path.as_str())
        ),
        (PatchOperation::Replace(op), _) => format!(
            "replace operation does not apply: doc is missing key: {}: missing value",
            op.path
        ),
        (PatchOperation::Move(op), kind) => from_failure("move", op.from.as_str(), op.path.as_str(), kind),
        (PatchOperation::Copy(op), kind) => from_failure("copy", op.from.as_str(), op.path.as_str(), kind),
    };
    PatchError::JsonPatchFailed(message)
}

/// The message of a failed `move` or `copy`, which may fail at either of its two paths.
fn from_failure(op: &str, from: &str, path: &str, kind: &PatchErrorKind) -> String {
    match kind {
        PatchErrorKind::InvalidFromPointer => {
            format!("{op} operation does not apply: doc is missing from path: {from}: missing value")
        }
        PatchErrorKind::CannotMoveInsideItself => {
            format!("{op} operation does not apply: cannot move {from} into its own child {path}")
        }
        _ => format!("{op} operation does not apply: doc is missing destination path: {path}: missing value"),
    }
}

/// The last reference token of a JSON pointer, unescaped (`~1` is `/`, `~0` is `~`).
fn last_token(pointer: &str) -> String {
    let token = pointer.rsplit('/').next().unwrap_or_default();
    token.replace("~1", "/").replace("~0", "~")
}

/// Applies an RFC 7386 merge patch. Only an object is accepted as the patch: a scalar or an
/// array would replace the whole object, which is never what a PATCH of a resource means.
pub(super) fn apply_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::InvalidPatch(format!(
            "Invalid JSON Patch: a merge patch must be a JSON object, got {}",
            json_type(patch)
        )));
    }
    let mut doc = original.clone();
    merge_into(&mut doc, patch);
    Ok(doc)
}

/// The MergePatch algorithm of RFC 7386 section 2. Keys are removed with `shift_remove` so
/// the remaining keys keep their order in the stored object.
fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        unreachable!("target was just made an object");
    };
    for (key, value) in patch {
        if value.is_null() {
            target.shift_remove(key);
        } else {
            merge_into(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_patch_applies_every_operation_kind() {
        let original = json!({"a": 1, "b": {"c": [1, 2]}, "d": "x"});
        let patch = json!([
            {"op": "test", "path": "/a", "value": 1},
            {"op": "add", "path": "/b/c/1", "value": 9},
            {"op": "replace", "path": "/a", "value": 2},
            {"op": "remove", "path": "/d"},
            {"op": "copy", "from": "/a", "path": "/e"},
            {"op": "move", "from": "/e", "path": "/f"}
        ]);
        let patched = apply_json_patch(&original, &patch).unwrap();
        assert_eq!(patched, json!({"a": 2, "b": {"c": [1, 9, 2]}, "f": 2}));
    }

    #[test]
    fn json_patch_add_appends_with_dash() {
        let original = json!({"metadata": {"finalizers": ["a"]}});
        let patch = json!([{"op": "add", "path": "/metadata/finalizers/-", "value": "b"}]);
        let patched = apply_json_patch(&original, &patch).unwrap();
        assert_eq!(patched, json!({"metadata": {"finalizers": ["a", "b"]}}));
    }

    #[test]
    fn json_patch_failed_test_is_reported_like_upstream() {
        let original = json!({"metadata": {"labels": {"app": "web"}}});
        let patch = json!([
            {"op": "replace", "path": "/metadata/labels/app", "value": "api"},
            {"op": "test", "path": "/metadata/labels/app", "value": "web"}
        ]);
        let err = apply_json_patch(&original, &patch).unwrap_err();
        assert_eq!(
            err,
            PatchError::JsonPatchFailed("testing value /metadata/labels/app failed: test failed".into())
        );
        assert_eq!(err.status_code(), 422);
    }

    #[test]
    fn json_patch_missing_paths_are_reported_per_operation() {
        let original = json!({"spec": {"type": "ClusterIP"}});
        let cases = [
            (
                json!({"op": "remove", "path": "/spec/selector"}),
                "error in remove for path: '/spec/selector': Unable to remove nonexistent key: selector: missing value",
            ),
            (
                json!({"op": "replace", "path": "/spec/ports"}),
                "replace operation does not apply: doc is missing key: /spec/ports: missing value",
            ),
            (
                json!({"op": "add", "path": "/status/x", "value": 1}),
                "add operation does not apply: doc is missing path: \"/status/x\": missing value",
            ),
            (
                json!({"op": "move", "from": "/spec/nope", "path": "/spec/x"}),
                "move operation does not apply: doc is missing from path: /spec/nope: missing value",
            ),
            (
                json!({"op": "copy", "from": "/spec/type", "path": "/nope/x"}),
                "copy operation does not apply: doc is missing destination path: /nope/x: missing value",
            ),
        ];
        for (op, message) in cases {
            // `replace` without a value is malformed, not missing; give it one.
            let mut op = op;
            if op["op"] == "replace" {
                op["value"] = json!([]);
            }
            let err = apply_json_patch(&original, &json!([op])).unwrap_err();
            assert_eq!(err, PatchError::JsonPatchFailed(message.into()));
        }
    }

    #[test]
    fn json_patch_failure_leaves_no_partial_result() {
        let original = json!({"a": 1});
        let patch = json!([
            {"op": "add", "path": "/b", "value": 2},
            {"op": "remove", "path": "/missing"}
        ]);
        assert!(apply_json_patch(&original, &patch).is_err());
        // The input is borrowed, so it cannot change; the point is that no Ok value with
        // only the first operation applied is ever produced.
        assert_eq!(original, json!({"a": 1}));
    }

    #[test]
    fn json_patch_body_must_be_an_array_of_known_operations() {
        let original = json!({});
        let err = apply_json_patch(&original, &json!({"op": "add"})).unwrap_err();
        assert!(matches!(err, PatchError::InvalidPatch(_)), "{err:?}");
        assert_eq!(err.status_code(), 400);

        let err = apply_json_patch(&original, &json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        let PatchError::InvalidPatch(message) = err else {
            panic!("expected InvalidPatch, got {err:?}");
        };
        assert!(message.starts_with("invalid JSON patch operation 0:"), "{message}");

        let err = apply_json_patch(&original, &json!([{"op": "add", "value": 1}])).unwrap_err();
        assert!(matches!(err, PatchError::InvalidPatch(_)), "{err:?}");
    }

    #[test]
    fn merge_patch_merges_and_deletes_with_null() {
        let original = json!({
            "metadata": {"labels": {"app": "web", "tier": "frontend"}, "name": "web"},
            "spec": {"ports": [{"port": 80}, {"port": 9090}]}
        });
        let patch = json!({
            "metadata": {"labels": {"tier": null, "env": "prod"}},
            "spec": {"ports": [{"port": 81}]}
        });
        let patched = apply_merge_patch(&original, &patch).unwrap();
        assert_eq!(
            patched,
            json!({
                "metadata": {"labels": {"app": "web", "env": "prod"}, "name": "web"},
                // Merge patch replaces lists whole.
                "spec": {"ports": [{"port": 81}]}
            })
        );
    }

    #[test]
    fn merge_patch_keeps_key_order_when_deleting() {
        let original = json!({"a": 1, "b": 2, "c": 3, "d": 4});
        let patched = apply_merge_patch(&original, &json!({"b": null})).unwrap();
        let keys: Vec<_> = patched.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "c", "d"]);
    }

    #[test]
    fn merge_patch_drops_nulls_inside_new_objects() {
        // RFC 7386 appendix A: {"a": {"bb": {"ccc": null}}} against {} gives {"a": {"bb": {}}}.
        let patched = apply_merge_patch(&json!({}), &json!({"a": {"bb": {"ccc": null}}})).unwrap();
        assert_eq!(patched, json!({"a": {"bb": {}}}));
    }

    #[test]
    fn merge_patch_must_be_an_object() {
        for patch in [json!([1]), json!("x"), json!(null), json!(3)] {
            let err = apply_merge_patch(&json!({"a": 1}), &patch).unwrap_err();
            assert!(matches!(err, PatchError::InvalidPatch(_)), "{patch}: {err:?}");
            assert_eq!(err.status_code(), 400);
        }
    }
}
