//! The schema definitions shared by the v2 and v3 documents.
//!
//! Schemas come from k8s-openapi's `schemars` derivations, so names, descriptions and field
//! types are upstream's. They are produced once in a neutral form (refs as
//! `#/definitions/<name>`, `$ref` siblings kept) that `v2` uses as-is and `v3` rewrites.

use k8s_openapi::api::{apps, coordination, core, discovery, networking};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use svcnet_core::resources::{ResourceInfo, RESOURCES};

use crate::patch_meta;

/// Prefix of every `$ref` in the neutral form.
pub const REF_PREFIX: &str = "#/definitions/";

pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Definitions keyed by upstream name, in name order.
pub type Definitions = Map<String, Value>;

/// Maps each served group/kind to its k8s-openapi type. With a generator, the type's schema
/// (and everything it refers to) is added to it. A new served kind must be listed here; a unit
/// test checks that every entry of `RESOURCES` is.
fn with_kind(gen: Option<&mut SchemaGenerator>, group: &str, kind: &str) -> Option<String> {
    let name = match (group, kind) {
        ("", "Namespace") => add::<core::v1::Namespace>(gen),
        ("", "Node") => add::<core::v1::Node>(gen),
        ("", "Pod") => add::<core::v1::Pod>(gen),
        ("", "Service") => add::<core::v1::Service>(gen),
        ("", "Endpoints") => add::<core::v1::Endpoints>(gen),
        ("", "Event") => add::<core::v1::Event>(gen),
        ("discovery.k8s.io", "EndpointSlice") => add::<discovery::v1::EndpointSlice>(gen),
        ("coordination.k8s.io", "Lease") => add::<coordination::v1::Lease>(gen),
        ("apps", "Deployment") => add::<apps::v1::Deployment>(gen),
        ("apps", "ReplicaSet") => add::<apps::v1::ReplicaSet>(gen),
        ("apps", "StatefulSet") => add::<apps::v1::StatefulSet>(gen),
        ("apps", "ControllerRevision") => add::<apps::v1::ControllerRevision>(gen),
        ("networking.k8s.io", "ServiceCIDR") => add::<networking::v1::ServiceCIDR>(gen),
        ("networking.k8s.io", "IPAddress") => add::<networking::v1::IPAddress>(gen),
        _ => return None,
    };
    Some(name)
}

fn add<T: JsonSchema>(gen: Option<&mut SchemaGenerator>) -> String {
    if let Some(gen) = gen {
        gen.subschema_for::<T>();
    }
    T::schema_name().into_owned()
}

/// Definition name of a resource's kind, e.g. `io.k8s.api.core.v1.Service`.
pub fn kind_name(r: &ResourceInfo) -> String {
    with_kind(None, r.group, r.kind).unwrap_or_else(|| panic!("no schema registered for {}/{}", r.group, r.kind))
}

/// Definition name of a resource's list kind, e.g. `io.k8s.api.core.v1.ServiceList`.
pub fn list_name(r: &ResourceInfo) -> String {
    format!("{}List", kind_name(r))
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft07()
        .with(|s| {
            s.definitions_path = "/definitions".into();
            // Transforms would drop the `$ref` siblings that carry field descriptions.
            s.transforms.clear();
            s.meta_schema = None;
        })
        .into_generator()
}

/// All served kinds, their lists and the meta/v1 types operations refer to.
pub fn definitions() -> Definitions {
    let mut gen = generator();
    let mut kinds = Vec::new();
    for r in RESOURCES {
        with_kind(Some(&mut gen), r.group, r.kind);
        kinds.push((r, kind_name(r)));
    }
    add::<meta::DeleteOptions>(Some(&mut gen));
    add::<meta::Patch>(Some(&mut gen));
    add::<meta::Status>(Some(&mut gen));
    // The `/api/` and `/apis/` discovery documents answer with these.
    add::<meta::APIVersions>(Some(&mut gen));
    add::<meta::APIGroupList>(Some(&mut gen));
    let mut defs = gen.take_definitions(false);
    for (r, name) in kinds {
        mark_kind(&mut defs, &name, r);
        let list = list_schema(&name, r);
        defs.insert(format!("{name}List"), list);
    }
    patch_meta::apply(&mut defs);
    sorted(defs)
}

/// Upstream marks only the kind's own fields required; k8s-openapi adds `metadata` because
/// its Rust field is not optional, which would make kubectl reject manifests without it.
fn mark_kind(defs: &mut Definitions, name: &str, r: &ResourceInfo) {
    let Some(Value::Object(schema)) = defs.get_mut(name) else {
        panic!("definition {name} missing");
    };
    if let Some(Value::Array(req)) = schema.get_mut("required") {
        req.retain(|f| f != "metadata");
        if req.is_empty() {
            schema.remove("required");
        }
    }
    schema.insert("x-kubernetes-group-version-kind".into(), gvk_list(r, r.kind));
}

/// k8s-openapi has no schema for list kinds: build upstream's shape.
fn list_schema(item: &str, r: &ResourceInfo) -> Value {
    let list_kind = r.list_kind();
    json!({
        "description": format!("{list_kind} is a list of {} objects.", r.kind),
        "type": "object",
        "properties": {
            "apiVersion": {
                "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources",
                "type": "string"
            },
            "items": {
                "description": format!("List of {}.", r.plural),
                "type": "array",
                "items": {"$ref": format!("{REF_PREFIX}{item}")}
            },
            "kind": {
                "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds",
                "type": "string"
            },
            "metadata": {
                "$ref": format!("{REF_PREFIX}{LIST_META}"),
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
            }
        },
        "required": ["items"],
        "x-kubernetes-group-version-kind": gvk_list(r, &list_kind),
    })
}

/// Schemas carry the GVK as a one-element list (operations carry a single object).
fn gvk_list(r: &ResourceInfo, kind: &str) -> Value {
    json!([{"group": r.group, "kind": kind, "version": r.version}])
}

fn sorted(defs: Definitions) -> Definitions {
    let mut entries: Vec<_> = defs.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// The definition names a schema refers to directly.
pub fn refs_of(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                if let Some(name) = r.strip_prefix(REF_PREFIX) {
                    out.push(name.to_string());
                }
            }
            map.values().for_each(|v| refs_of(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs_of(v, out)),
        _ => {}
    }
}

/// The definitions reachable from `roots`, so that a per-group document carries only what its
/// kinds use (as upstream's per-group v3 documents do).
pub fn closure(defs: &Definitions, roots: &[String]) -> Definitions {
    let mut seen = std::collections::BTreeSet::new();
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(schema) = defs.get(&name) {
            refs_of(schema, &mut todo);
        }
    }
    seen.into_iter()
        .filter_map(|n| defs.get(&n).map(|s| (n, s.clone())))
        .collect()
}

/// Swagger 2.0 spelling of the int-or-string types, as upstream's `/openapi/v2` has them:
/// kubectl's validator treats `type: string` as accepting any scalar.
pub fn v2_scalar_override(name: &str, schema: &mut Value) {
    let extra = match name {
        INT_OR_STRING => json!({"type": "string", "format": "int-or-string"}),
        QUANTITY => json!({"type": "string"}),
        _ => return,
    };
    set_scalar(schema, extra);
}

/// OpenAPI 3 spelling of the int-or-string types, as upstream's `/openapi/v3` has them.
pub fn v3_scalar_override(name: &str, schema: &mut Value) {
    let extra = match name {
        INT_OR_STRING => json!({
            "format": "int-or-string",
            "oneOf": [{"type": "integer"}, {"type": "string"}]
        }),
        QUANTITY => json!({"oneOf": [{"type": "string"}, {"type": "number"}]}),
        _ => return,
    };
    set_scalar(schema, extra);
}

fn set_scalar(schema: &mut Value, extra: Value) {
    let (Value::Object(s), Value::Object(extra)) = (schema, extra) else {
        return;
    };
    s.remove("x-kubernetes-int-or-string");
    s.extend(extra);
}
