use prost::Message;
use serde_json::Value;
use svcnet_core::resources::{ResourceInfo, RESOURCES};

use crate::gnostic::{self, ParameterOneof, ParametersItemOneof};
use crate::{openapi, patch_meta, schemas, v3};

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("valid JSON")
}

fn v3_doc(r: &ResourceInfo) -> Value {
    parse(
        openapi()
            .v3_document(&v3::gv_key(r))
            .expect("document for the group/version"),
    )
}

fn v2() -> Value {
    parse(openapi().v2_json())
}

fn collection(r: &ResourceInfo) -> String {
    if r.namespaced {
        format!("{}/namespaces/{{namespace}}/{}", r.gv_path(), r.plural)
    } else {
        format!("{}/{}", r.gv_path(), r.plural)
    }
}

/// (path, verbs) every resource must have.
fn expected_paths(r: &ResourceInfo) -> Vec<(String, &'static [&'static str])> {
    let item = format!("{}/{{name}}", collection(r));
    let mut out: Vec<(String, &[&str])> = vec![
        (collection(r), &["get", "post"]),
        (item.clone(), &["get", "put", "patch", "delete"]),
    ];
    if r.namespaced {
        out.push((format!("{}/{}", r.gv_path(), r.plural), &["get"]));
    }
    if r.has_status {
        out.push((format!("{item}/status"), &["get", "put", "patch"]));
    }
    out
}

#[test]
fn index_lists_every_document_with_its_hash() {
    let index = parse(openapi().v3_index());
    let paths = index["paths"].as_object().unwrap();
    for key in [
        "api/v1",
        "apis/apps/v1",
        "apis/discovery.k8s.io/v1",
        "apis/coordination.k8s.io/v1",
        "api",
        "apis",
    ] {
        let url = paths[key]["serverRelativeURL"].as_str().unwrap();
        let doc = openapi().v3_document(key).unwrap();
        assert_eq!(url, format!("/openapi/v3/{key}?hash={}", v3::content_hash(doc)));
        let doc = parse(doc);
        assert_eq!(doc["openapi"], "3.0.0");
    }
    assert_eq!(paths.len(), openapi().v3_paths().count());
    assert!(openapi().v3_document("/api/v1").is_some());
    assert!(openapi().v3_document("apis/nope/v1").is_none());
}

fn check_operations(doc: &Value, r: &ResourceInfo, dialect: &str) {
    for (path, verbs) in expected_paths(r) {
        let item = &doc["paths"][&path];
        assert!(item.is_object(), "{dialect}: missing {path}");
        for verb in verbs {
            let op = &item[*verb];
            let gvk = &op["x-kubernetes-group-version-kind"];
            assert_eq!(gvk["kind"], r.kind, "{dialect} {verb} {path}");
            assert_eq!(gvk["group"], r.group);
            assert_eq!(gvk["version"], r.version);
            assert!(op["x-kubernetes-action"].is_string());
            if *verb == "patch" {
                check_patch(op, dialect, &path);
            }
        }
    }
}

fn check_patch(op: &Value, dialect: &str, path: &str) {
    let names: Vec<&str> = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["in"] == "query")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for want in ["fieldValidation", "dryRun", "fieldManager", "force"] {
        assert!(names.contains(&want), "{dialect} PATCH {path} lacks {want}");
    }
    if dialect == "v3" {
        assert!(
            op.get("requestBody").is_none(),
            "v3 PATCH {path} must not declare a body"
        );
    }
}

#[test]
fn every_resource_has_its_paths_and_gvk() {
    let v2 = v2();
    for r in RESOURCES {
        check_operations(&v3_doc(r), r, "v3");
        check_operations(&v2, r, "v2");
    }
}

fn kind_schemas(defs: &Value) -> impl Iterator<Item = (&'static ResourceInfo, String, &Value)> {
    RESOURCES.iter().flat_map(move |r| {
        [
            (r.kind.to_string(), schemas::kind_name(r)),
            (r.list_kind(), schemas::list_name(r)),
        ]
        .into_iter()
        .map(move |(kind, name)| (r, kind, &defs[name.as_str()]))
    })
}

#[test]
fn kind_schemas_carry_gvk_in_both_versions() {
    let v2 = v2();
    for r in RESOURCES {
        let doc = v3_doc(r);
        for defs in [&doc["components"]["schemas"], &v2["definitions"]] {
            let mine = kind_schemas(defs).filter(|(x, _, _)| x.gv_path() == r.gv_path());
            for (r, kind, schema) in mine {
                let gvk = &schema["x-kubernetes-group-version-kind"][0];
                assert_eq!(gvk["kind"], kind.as_str());
                assert_eq!(gvk["group"], r.group);
                assert!(schema["description"].is_string());
            }
        }
    }
}

#[test]
fn service_port_is_real() {
    let doc = v3_doc(svcnet_core::resources::by_kind("Service").unwrap());
    let schemas = &doc["components"]["schemas"];
    let port = &schemas["io.k8s.api.core.v1.ServicePort"]["properties"];
    assert_eq!(port["port"]["type"], "integer");
    let target = &port["targetPort"];
    assert!(target["description"].as_str().unwrap().contains("Number or name"));
    let target_ref = target["allOf"][0]["$ref"].as_str().unwrap();
    assert_eq!(
        target_ref,
        "#/components/schemas/io.k8s.apimachinery.pkg.util.intstr.IntOrString"
    );
    assert_eq!(
        schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"],
        "int-or-string"
    );
    let ports = &schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"];
    assert_eq!(ports["x-kubernetes-patch-merge-key"], "port");
    assert_eq!(ports["x-kubernetes-patch-strategy"], "merge");
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"].is_object());
    assert!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.Time"].is_object());

    let v2 = v2();
    let ios = &v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"];
    assert_eq!(ios["type"], "string");
    assert_eq!(ios["format"], "int-or-string");
}

#[test]
fn metadata_is_not_required() {
    let v2 = v2();
    let svc = &v2["definitions"]["io.k8s.api.core.v1.Service"];
    assert!(svc.get("required").is_none());
    let event = &v2["definitions"]["io.k8s.api.core.v1.Event"]["required"];
    assert_eq!(event, &serde_json::json!(["involvedObject"]));
}

/// Every `$ref` in `v` names something in `defs`.
fn assert_refs_resolve(v: &Value, prefix: &str, defs: &Value, doc: &str) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref") {
                let name = r.as_str().unwrap().strip_prefix(prefix).expect(prefix);
                assert!(defs.get(name).is_some(), "{doc}: unresolved {name}");
            }
            map.values().for_each(|v| assert_refs_resolve(v, prefix, defs, doc));
        }
        Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(v, prefix, defs, doc)),
        _ => {}
    }
}

#[test]
fn refs_all_resolve() {
    for key in openapi().v3_paths() {
        let doc = parse(openapi().v3_document(key).unwrap());
        let defs = &doc["components"]["schemas"];
        assert_refs_resolve(&doc, "#/components/schemas/", defs, key);
    }
    let v2 = v2();
    assert_refs_resolve(&v2, "#/definitions/", &v2["definitions"], "v2");
}

/// What kubectl's OpenAPI v2 model parser (kube-openapi `proto.NewOpenAPIData`) rejects:
/// arrays without exactly one item schema and multiple types; the whole document fails then.
fn assert_kubectl_parsable(v: &Value, at: &str) {
    let Value::Object(map) = v else { return };
    match map.get("type") {
        Some(Value::Array(_)) => panic!("{at}: multiple types"),
        Some(Value::String(t)) if t == "array" => {
            assert!(
                map.get("items").is_some_and(Value::is_object),
                "{at}: array without items"
            )
        }
        _ => {}
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = map.get(key) {
            assert_kubectl_parsable(sub, &format!("{at}.{key}"));
        }
    }
    if let Some(Value::Object(props)) = map.get("properties") {
        for (name, sub) in props {
            assert_kubectl_parsable(sub, &format!("{at}.{name}"));
        }
    }
}

#[test]
fn v2_definitions_parse_as_kubectl_models() {
    let v2 = v2();
    for (name, schema) in v2["definitions"].as_object().unwrap() {
        assert_kubectl_parsable(schema, name);
    }
}

#[test]
fn patch_meta_rows_name_real_properties() {
    let mut defs = schemas::definitions();
    for (prefix, (def, prop, _, _)) in patch_meta::TABLE {
        let def = format!("{prefix}{def}");
        assert!(
            patch_meta::property_mut(&mut defs, &def, prop).is_some(),
            "{def}.{prop}"
        );
    }
}

#[test]
fn protobuf_round_trips() {
    let doc = gnostic::Document::decode(openapi().v2_protobuf()).expect("decodes");
    let v2 = v2();
    assert_eq!(doc.swagger, "2.0");
    let paths = doc.paths.as_ref().unwrap();
    assert_eq!(paths.path.len(), v2["paths"].as_object().unwrap().len());
    let defs = &doc.definitions.as_ref().unwrap().additional_properties;
    assert_eq!(defs.len(), v2["definitions"].as_object().unwrap().len());

    let svc = defs.iter().find(|d| d.name == "io.k8s.api.core.v1.Service").unwrap();
    let ext = &svc.value.as_ref().unwrap().vendor_extension[0];
    assert_eq!(ext.name, "x-kubernetes-group-version-kind");
    let gvk: Value = serde_json::from_str(&ext.value.as_ref().unwrap().yaml).unwrap();
    assert_eq!(
        gvk,
        serde_json::json!([{"group": "", "kind": "Service", "version": "v1"}])
    );

    let item = paths
        .path
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/services/{name}");
    let patch = item.unwrap().value.as_ref().unwrap().patch.as_ref().unwrap();
    assert!(patch
        .parameters
        .iter()
        .any(|p| query_name(p) == Some("fieldValidation")));
    // The encoding is the document: decoding and re-encoding gives the same bytes.
    assert_eq!(doc.encode_to_vec(), openapi().v2_protobuf());
}

fn query_name(p: &gnostic::ParametersItem) -> Option<&str> {
    let Some(ParametersItemOneof::Parameter(p)) = &p.oneof else {
        return None;
    };
    match p.oneof.as_ref()? {
        ParameterOneof::NonBodyParameter(nb) => match nb.oneof.as_ref()? {
            gnostic::NonBodyParameterOneof::QueryParameterSubSchema(q) => Some(&q.name),
            _ => None,
        },
        ParameterOneof::BodyParameter(_) => None,
    }
}

#[test]
fn accept_negotiation() {
    assert!(crate::wants_v2_protobuf(
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
    ));
    assert!(!crate::wants_v2_protobuf("application/json, */*"));
}
