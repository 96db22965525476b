//! The Swagger 2.0 document served at `/openapi/v2`.
//!
//! kubectl 1.27 and 1.28 load it (as gnostic protobuf) before every create/apply/replace and
//! validate manifests against it when the server does not declare `fieldValidation`; every
//! kubectl version also reads it during `apply` to compute strategic merge patches, which is
//! why the definitions carry patch metadata.

use serde_json::{json, Map, Value};
use svcnet_core::resources::RESOURCES;

use crate::paths::{self, Dialect};
use crate::schemas::{self, Definitions};
use crate::v3::INFO;

pub fn document(defs: &Definitions) -> Value {
    let mut paths = Map::new();
    for r in RESOURCES {
        paths.extend(paths::resource_paths(r, Dialect::V2));
    }
    let mut definitions = Map::new();
    for (name, schema) in defs {
        let mut schema = schema.clone();
        schemas::v2_scalar_override(name, &mut schema);
        definitions.insert(name.clone(), schema);
    }
    json!({
        "swagger": "2.0",
        "info": {"title": INFO.0, "version": INFO.1},
        "paths": paths,
        "definitions": definitions,
    })
}
