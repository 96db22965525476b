//! OpenAPI 3.0 documents, one per group/version as upstream serves them under
//! `/openapi/v3/<gv>`, plus the index at `/openapi/v3`.
//!
//! kubectl (1.27+) uses these for `explain` and to learn that the server validates fields
//! (`fieldValidation` on PATCH).

use serde_json::{json, Map, Value};
use svcnet_core::resources::{ResourceInfo, RESOURCES};

use crate::paths::{self, Dialect};
use crate::schemas::{self, Definitions, REF_PREFIX};

/// Version reported in `info`; matches what `/version` reports.
pub const INFO: (&str, &str) = ("Kubernetes", "v1.33.0");

/// One served document: its index key (`api/v1`) and JSON body.
pub struct Document {
    pub key: String,
    pub hash: String,
    pub json: Vec<u8>,
}

/// Documents for every served group/version plus the `api` and `apis` discovery documents.
pub fn documents(defs: &Definitions) -> Vec<Document> {
    let mut keys: Vec<String> = Vec::new();
    for r in RESOURCES {
        let key = gv_key(r);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut docs: Vec<Document> = keys.iter().map(|k| gv_document(k, defs)).collect();
    docs.push(discovery_document(
        "api",
        "/api/",
        "getCoreAPIVersions",
        "APIVersions",
        defs,
    ));
    docs.push(discovery_document(
        "apis",
        "/apis/",
        "getAPIVersions",
        "APIGroupList",
        defs,
    ));
    docs
}

/// `api/v1` or `apis/apps/v1`: the path without the leading slash.
pub fn gv_key(r: &ResourceInfo) -> String {
    r.gv_path().trim_start_matches('/').to_string()
}

fn gv_document(key: &str, defs: &Definitions) -> Document {
    let mut paths = Map::new();
    // Status is the body of every error answer.
    let mut roots = vec![schemas::DELETE_OPTIONS.to_string(), schemas::STATUS.to_string()];
    for r in RESOURCES.iter().filter(|r| gv_key(r) == key) {
        paths.extend(paths::resource_paths(r, Dialect::V3));
        roots.push(schemas::kind_name(r));
        roots.push(schemas::list_name(r));
    }
    finish(key, paths, &roots, defs)
}

/// The `/api/` and `/apis/` version listings, as upstream's `api` and `apis` documents.
fn discovery_document(key: &str, path: &str, id: &str, kind: &str, defs: &Definitions) -> Document {
    let schema = format!("io.k8s.apimachinery.pkg.apis.meta.v1.{kind}");
    let op = json!({
        "description": "get available API versions",
        "operationId": id,
        "tags": [key],
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": Dialect::V3.schema_ref(&schema)}}
            },
            "401": {"description": "Unauthorized"}
        }
    });
    let mut paths = Map::new();
    paths.insert(path.into(), json!({"get": op}));
    finish(key, paths, &[schema], defs)
}

fn finish(key: &str, paths: Map<String, Value>, roots: &[String], defs: &Definitions) -> Document {
    let mut components = Map::new();
    for (name, schema) in schemas::closure(defs, roots) {
        components.insert(name.clone(), to_v3(&name, schema));
    }
    let doc = json!({
        "openapi": "3.0.0",
        "info": {"title": INFO.0, "version": INFO.1},
        "paths": paths,
        "components": {"schemas": components},
    });
    let json = serde_json::to_vec(&doc).expect("serializing a JSON value cannot fail");
    Document {
        key: key.to_string(),
        hash: content_hash(&json),
        json,
    }
}

/// Rewrites one neutral definition into OpenAPI 3 form.
fn to_v3(name: &str, mut schema: Value) -> Value {
    schemas::v3_scalar_override(name, &mut schema);
    rewrite_refs(&mut schema);
    schema
}

/// Points refs at `#/components/schemas/`. A `$ref` with siblings becomes
/// `allOf: [{$ref}]` as upstream does, because OpenAPI 3.0 ignores the siblings of `$ref`
/// and kubectl explain would lose the field's description.
fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.remove("$ref") {
                let target = r.replace(REF_PREFIX, "#/components/schemas/");
                if map.is_empty() {
                    map.insert("$ref".into(), target.into());
                } else {
                    map.insert("allOf".into(), json!([{"$ref": target}]));
                }
                return;
            }
            map.values_mut().for_each(rewrite_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

/// `{"paths":{"api/v1":{"serverRelativeURL":"/openapi/v3/api/v1?hash=..."}}}`
pub fn index(docs: &[Document]) -> Vec<u8> {
    let mut paths = Map::new();
    for d in docs {
        let url = format!("/openapi/v3/{}?hash={}", d.key, d.hash);
        paths.insert(d.key.clone(), json!({"serverRelativeURL": url}));
    }
    serde_json::to_vec(&json!({ "paths": paths })).expect("serializing a JSON value cannot fail")
}

/// A stable content hash (two FNV-1a 64 lanes, uppercase hex). kubectl only compares it to
/// decide whether its cached copy is current, so it need not be cryptographic.
pub fn content_hash(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut lanes = [0xcbf2_9ce4_8422_2325_u64, 0x6c62_272e_07bb_0142_u64];
    for (i, b) in bytes.iter().enumerate() {
        let lane = &mut lanes[i & 1];
        *lane = (*lane ^ u64::from(*b)).wrapping_mul(PRIME);
    }
    format!("{:016X}{:016X}", lanes[0], lanes[1])
}
