//! svcnet-openapi: the OpenAPI documents svcnet serves.
//!
//! kubectl needs them for client-side validation (`/openapi/v2` protobuf on 1.27/1.28),
//! for learning that the server validates fields (`fieldValidation` on PATCH, v3), for
//! `kubectl explain` (v3) and for apply's strategic-merge-patch metadata (v2). All documents
//! are generated at first use from k8s-openapi's schemas and the resource registry, then
//! served as pre-encoded bytes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

pub mod gnostic;
mod patch_meta;
mod paths;
mod schemas;
mod v2;
mod v3;

/// Media type kubectl sends in `Accept` when it wants `/openapi/v2` as protobuf.
pub const V2_PROTOBUF_CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// `Content-Type` of the protobuf `/openapi/v2` answer. Not [`V2_PROTOBUF_CONTENT_TYPE`]:
/// client-go parses the response type with Go's `mime.ParseMediaType`, which rejects the `@`
/// and fails the request ("mime: unexpected content after media subtype"). Upstream sends
/// `application/octet-stream` too (Go's content sniffing of the body).
pub const V2_PROTOBUF_RESPONSE_CONTENT_TYPE: &str = "application/octet-stream";

/// Every document, pre-encoded.
pub struct OpenApi {
    v3_index: Vec<u8>,
    v3_documents: BTreeMap<String, v3::Document>,
    v2_json: Vec<u8>,
    v2_protobuf: Vec<u8>,
}

/// The documents, built on first call.
pub fn openapi() -> &'static OpenApi {
    static DOCS: OnceLock<OpenApi> = OnceLock::new();
    DOCS.get_or_init(OpenApi::build)
}

impl OpenApi {
    fn build() -> OpenApi {
        let defs = schemas::definitions();
        let docs = v3::documents(&defs);
        let v3_index = v3::index(&docs);
        let v2 = v2::document(&defs);
        let v2_protobuf = gnostic::encode(&v2).expect("generated swagger uses only encodable keywords");
        OpenApi {
            v3_index,
            v3_documents: docs.into_iter().map(|d| (d.key.clone(), d)).collect(),
            v2_json: serde_json::to_vec(&v2).expect("serializing a JSON value cannot fail"),
            v2_protobuf,
        }
    }

    /// `GET /openapi/v3`: the index of per-group/version documents with their hashes.
    pub fn v3_index(&self) -> &[u8] {
        &self.v3_index
    }

    /// `GET /openapi/v3/<gv_path>`, e.g. `api/v1`, `apis/apps/v1`, `api`, `apis`. A leading
    /// slash is tolerated.
    pub fn v3_document(&self, gv_path: &str) -> Option<&[u8]> {
        let key = gv_path.trim_start_matches('/');
        self.v3_documents.get(key).map(|d| d.json.as_slice())
    }

    /// The hash the index advertises for a v3 document (usable as an ETag).
    pub fn v3_hash(&self, gv_path: &str) -> Option<&str> {
        let key = gv_path.trim_start_matches('/');
        self.v3_documents.get(key).map(|d| d.hash.as_str())
    }

    /// The keys the index lists (`api/v1`, `apis/apps/v1`, ..., `api`, `apis`).
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.v3_documents.keys().map(String::as_str)
    }

    /// `GET /openapi/v2` as JSON (Swagger 2.0).
    pub fn v2_json(&self) -> &[u8] {
        &self.v2_json
    }

    /// `GET /openapi/v2` as gnostic `openapi_v2.Document` protobuf, for requests whose
    /// `Accept` names [`V2_PROTOBUF_CONTENT_TYPE`]; answer with
    /// [`V2_PROTOBUF_RESPONSE_CONTENT_TYPE`].
    pub fn v2_protobuf(&self) -> &[u8] {
        &self.v2_protobuf
    }
}

/// Whether an `Accept` header asks for the protobuf form of `/openapi/v2`.
pub fn wants_v2_protobuf(accept: &str) -> bool {
    // Older clients spelled the version `v2.v1.0`; both name the same encoding.
    accept.contains("application/com.github.proto-openapi.spec.v2")
}

#[cfg(test)]
mod tests;
