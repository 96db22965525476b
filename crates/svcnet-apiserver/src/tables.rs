//! `meta.k8s.io/v1` Table responses: kubectl builds its `get` output from these, so the columns
//! and cells come from the shared printers in svcnet-core and each row carries the object's
//! metadata (needed for `-A` and `--show-labels`).

use serde_json::{json, Value};

use svcnet_core::resources::ResourceInfo;
use svcnet_core::table;

/// What a row carries besides its cells (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn from_query(value: Option<&str>) -> Self {
        match value {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// A Table of `objects`; `with_columns` is false for watch events after the first.
pub fn table(
    resource: &ResourceInfo,
    objects: &[Value],
    revision: u64,
    include: IncludeObject,
    with_columns: bool,
) -> Value {
    let now = jiff::Timestamp::now();
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| row(resource, object, now, include))
        .collect();
    let columns = if with_columns {
        Value::from(table::column_definitions(resource.kind))
    } else {
        Value::Null
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": revision.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row(resource: &ResourceInfo, object: &Value, now: jiff::Timestamp, include: IncludeObject) -> Value {
    let cells = table::row_cells(resource.kind, object, now);
    let object = match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => object.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    };
    json!({"cells": cells, "object": object})
}

#[cfg(test)]
mod tests {
    use super::*;
    use svcnet_core::resources::by_kind;

    #[test]
    fn rows_carry_partial_metadata() {
        let svc = by_kind("Service").unwrap();
        let object = json!({"metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}}, "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.2", "ports": [{"port": 80, "protocol": "TCP"}]}});
        let t = table(svc, &[object], 7, IncludeObject::Metadata, true);
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["rows"][0]["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(t["rows"][0]["cells"][0], "web");
        assert!(t["columnDefinitions"].as_array().is_some_and(|c| !c.is_empty()));
        assert!(table(svc, &[], 7, IncludeObject::Metadata, false)["columnDefinitions"].is_null());
    }
}
