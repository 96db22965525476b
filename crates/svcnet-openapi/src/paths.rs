//! REST paths and operations of the served resources, shared by the v2 and v3 documents.
//!
//! kubectl reads these: PATCH operations tell it (via `x-kubernetes-group-version-kind` and
//! the `fieldValidation` query parameter) that the server validates fields itself, and the
//! GVK on operations maps paths to kinds. PATCH has no request body on purpose: with one
//! declaring `application/strategic-merge-patch+json`, kubectl apply would compute its
//! patches from the v3 schema instead of its built-in struct metadata.

use serde_json::{json, Map, Value};
use svcnet_core::resources::ResourceInfo;

use crate::schemas::{self, DELETE_OPTIONS, PATCH};

/// Which OpenAPI version to spell operations for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dialect {
    /// Swagger 2.0: `#/definitions/`, `type` on parameters, body parameters.
    V2,
    /// OpenAPI 3.0: `#/components/schemas/`, `schema` on parameters, `requestBody`.
    V3,
}

impl Dialect {
    pub fn schema_ref(self, name: &str) -> Value {
        match self {
            Dialect::V2 => json!({"$ref": format!("{}{name}", schemas::REF_PREFIX)}),
            Dialect::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }

    fn param(self, p: &Param, location: &str) -> Value {
        self.param_raw(p.name, p.ty, p.description, location)
    }

    fn param_raw(self, name: &str, ty: &str, description: &str, location: &str) -> Value {
        let mut v = json!({"name": name, "in": location, "description": description});
        match self {
            Dialect::V2 => {
                v["type"] = ty.into();
                v["uniqueItems"] = true.into();
            }
            Dialect::V3 => v["schema"] = json!({"type": ty, "uniqueItems": true}),
        }
        if location == "path" {
            v["required"] = true.into();
        }
        v
    }

    fn response(self, schema: &str, description: &str) -> Value {
        match self {
            Dialect::V2 => json!({"description": description, "schema": self.schema_ref(schema)}),
            Dialect::V3 => json!({
                "description": description,
                "content": {"application/json": {"schema": self.schema_ref(schema)}}
            }),
        }
    }
}

/// A parameter: name, JSON type, description.
struct Param {
    name: &'static str,
    ty: &'static str,
    description: &'static str,
}

const fn p(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param { name, ty, description }
}

const DRY_RUN: Param = p("dryRun", "string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed");
const FIELD_MANAGER: Param = p("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.");
const FIELD_VALIDATION: Param = p("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered.");
const FORCE: Param = p("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.");
const PRETTY: Param = p("pretty", "string", "If 'true', then the output is pretty printed.");
const NAMESPACE: Param = p(
    "namespace",
    "string",
    "object name and auth scope, such as for teams and projects",
);

const LIST_PARAMS: &[Param] = &[
    p("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag."),
    p("continue", "string", "The continue option should be set when retrieving more results from the server."),
    p("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
    p("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
    p("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    p("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
    p("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    p("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
    p("timeoutSeconds", "integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
    p("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
];
const WRITE_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION];
const PATCH_PARAMS: &[Param] = &[DRY_RUN, FIELD_MANAGER, FIELD_VALIDATION, FORCE];
const DELETE_PARAMS: &[Param] = &[
    DRY_RUN,
    p("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer."),
    p("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error."),
    p("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned."),
    p("propagationPolicy", "string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
];

/// The patch content types the server accepts (declared in v2 only, see the module docs).
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];

/// The names operations are built from.
struct Names {
    /// `CoreV1`, `AppsV1`, `DiscoveryV1` as in upstream operation ids.
    id_group: String,
    /// `core_v1`, `apps_v1`: the operation tag.
    tag: String,
    kind: String,
    list: String,
}

fn names(r: &ResourceInfo) -> Names {
    let short = if r.group.is_empty() {
        "core"
    } else {
        r.group.split('.').next().unwrap_or(r.group)
    };
    Names {
        id_group: format!("{}{}", capitalize(short), capitalize(r.version)),
        tag: format!("{short}_{}", r.version),
        kind: schemas::kind_name(r),
        list: schemas::list_name(r),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// One operation before dialect-specific rendering.
struct Op<'a> {
    verb: &'static str,
    action: &'static str,
    id: String,
    description: String,
    params: &'a [Param],
    body: Option<&'a str>,
    responses: Vec<(&'static str, &'a str)>,
}

fn render_op(op: &Op, r: &ResourceInfo, n: &Names, d: Dialect) -> Value {
    let mut v = Map::new();
    v.insert("description".into(), op.description.clone().into());
    v.insert("operationId".into(), op.id.clone().into());
    v.insert("tags".into(), json!([n.tag]));
    let mut params: Vec<Value> = op.params.iter().map(|p| d.param(p, "query")).collect();
    if let Some(body) = op.body {
        add_body(&mut v, &mut params, op, body, d);
    }
    v.insert("parameters".into(), params.into());
    let mut responses = Map::new();
    for (code, schema) in &op.responses {
        responses.insert((*code).into(), d.response(schema, "OK"));
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    v.insert("responses".into(), responses.into());
    if d == Dialect::V2 {
        v.insert("produces".into(), json!(["application/json"]));
        v.insert("schemes".into(), json!(["https"]));
    }
    v.insert("x-kubernetes-action".into(), op.action.into());
    v.insert(
        "x-kubernetes-group-version-kind".into(),
        json!({"group": r.group, "kind": r.kind, "version": r.version}),
    );
    Value::Object(v)
}

/// v2 carries the body as a parameter, v3 as `requestBody`; a v3 PATCH gets none (see module
/// docs).
fn add_body(v: &mut Map<String, Value>, params: &mut Vec<Value>, op: &Op, body: &str, d: Dialect) {
    let required = op.verb != "delete";
    match d {
        Dialect::V2 => {
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": required, "schema": d.schema_ref(body)}),
            );
            let consumes: Vec<&str> = if op.verb == "patch" {
                PATCH_TYPES.to_vec()
            } else {
                vec!["application/json"]
            };
            v.insert("consumes".into(), json!(consumes));
        }
        Dialect::V3 if op.verb == "patch" => {}
        Dialect::V3 => {
            v.insert(
                "requestBody".into(),
                json!({
                    "required": required,
                    "content": {"application/json": {"schema": d.schema_ref(body)}}
                }),
            );
        }
    }
}

fn list_op<'a>(r: &ResourceInfo, n: &'a Names, all_namespaces: bool) -> Op<'a> {
    let scope = scope_word(r, all_namespaces);
    let suffix = if all_namespaces { "ForAllNamespaces" } else { "" };
    Op {
        verb: "get",
        action: "list",
        id: format!("list{}{scope}{}{suffix}", n.id_group, r.kind),
        description: format!("list or watch objects of kind {}", r.kind),
        params: LIST_PARAMS,
        body: None,
        responses: vec![("200", &n.list)],
    }
}

fn create_op<'a>(r: &ResourceInfo, n: &'a Names) -> Op<'a> {
    let kind = n.kind.as_str();
    Op {
        verb: "post",
        action: "post",
        id: format!("create{}{}{}", n.id_group, scope_word(r, false), r.kind),
        description: format!("create a {}", r.kind),
        params: WRITE_PARAMS,
        body: Some(kind),
        responses: vec![("200", kind), ("201", kind), ("202", kind)],
    }
}

/// `Namespaced` in operation ids of namespaced resources addressed within a namespace.
fn scope_word(r: &ResourceInfo, all_namespaces: bool) -> &'static str {
    if r.namespaced && !all_namespaces {
        "Namespaced"
    } else {
        ""
    }
}

fn item_ops<'a>(r: &ResourceInfo, n: &'a Names, status: bool) -> Vec<Op<'a>> {
    let scope = scope_word(r, false);
    let (sub_id, sub_desc) = if status {
        ("Status", "status of the specified ")
    } else {
        ("", "the specified ")
    };
    let id = |verb: &str| format!("{verb}{}{scope}{}{sub_id}", n.id_group, r.kind);
    let desc = |what: &str| format!("{what} {sub_desc}{}", r.kind);
    let kind = n.kind.as_str();
    let mut ops = vec![
        Op {
            verb: "get",
            action: "get",
            id: id("read"),
            description: desc("read"),
            params: &[],
            body: None,
            responses: vec![("200", kind)],
        },
        Op {
            verb: "put",
            action: "put",
            id: id("replace"),
            description: desc("replace"),
            params: WRITE_PARAMS,
            body: Some(kind),
            responses: vec![("200", kind), ("201", kind)],
        },
        Op {
            verb: "patch",
            action: "patch",
            id: id("patch"),
            description: desc("partially update"),
            params: PATCH_PARAMS,
            body: Some(PATCH),
            responses: vec![("200", kind), ("201", kind)],
        },
    ];
    if !status {
        ops.push(Op {
            verb: "delete",
            action: "delete",
            id: id("delete"),
            description: desc("delete"),
            params: DELETE_PARAMS,
            body: Some(DELETE_OPTIONS),
            responses: vec![("200", kind), ("202", kind)],
        });
    }
    ops
}

fn path_item(ops: &[Op], path_params: &[Value], r: &ResourceInfo, n: &Names, d: Dialect) -> Value {
    let mut item = Map::new();
    for op in ops {
        item.insert(op.verb.into(), render_op(op, r, n, d));
    }
    item.insert("parameters".into(), path_params.to_vec().into());
    Value::Object(item)
}

/// All paths of one resource, in the order upstream lists them.
pub fn resource_paths(r: &ResourceInfo, d: Dialect) -> Vec<(String, Value)> {
    let n = names(r);
    let pretty = d.param(&PRETTY, "query");
    let name = d.param_raw("name", "string", &format!("name of the {}", r.kind), "path");
    let scope = if r.namespaced {
        vec![d.param(&NAMESPACE, "path")]
    } else {
        Vec::new()
    };
    let collection = if r.namespaced {
        format!("{}/namespaces/{{namespace}}/{}", r.gv_path(), r.plural)
    } else {
        format!("{}/{}", r.gv_path(), r.plural)
    };
    let item = format!("{collection}/{{name}}");
    let collection_params = [scope.clone(), vec![pretty.clone()]].concat();
    let item_params = [vec![name], scope, vec![pretty.clone()]].concat();

    let collection_ops = [list_op(r, &n, false), create_op(r, &n)];
    let mut out = vec![(collection, path_item(&collection_ops, &collection_params, r, &n, d))];
    if r.namespaced {
        let all = path_item(&[list_op(r, &n, true)], &[pretty], r, &n, d);
        out.push((format!("{}/{}", r.gv_path(), r.plural), all));
    }
    out.push((item.clone(), path_item(&item_ops(r, &n, false), &item_params, r, &n, d)));
    if r.has_status {
        let ops = item_ops(r, &n, true);
        out.push((format!("{item}/status"), path_item(&ops, &item_params, r, &n, d)));
    }
    out
}
