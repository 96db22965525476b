//! HTTP handlers: the fixed endpoints (version, health, discovery, OpenAPI) and the generic
//! resource handler that maps verbs onto the [`Registry`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use svcnet_core::patch::PatchType;
use svcnet_core::resources::ResourceInfo;

use crate::body::{self, FieldValidation};
use crate::discovery;
use crate::http::{self as h, Query};
use crate::namespaces;
use crate::registry::{Registry, Selection, WriteOptions, Written};
use crate::routes::{self, Target};
use crate::status::{ApiError, ApiResult};
use crate::tables::{self, IncludeObject};
use crate::watch::{self, WatchRequest};

/// The Kubernetes version svcnet reports; kubectl's dispatcher picks its client by the minor.
pub const KUBERNETES_MINOR: &str = "33";

pub struct AppState {
    pub registry: Registry,
    /// host:port clients reach the server at (reported in `/api`).
    pub server_address: String,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/version/", get(version))
        .route("/healthz", get(ok))
        .route("/livez", get(ok))
        .route("/readyz", get(ok))
        .route("/api", get(api))
        .route("/api/", get(api))
        .route("/apis", get(apis))
        .route("/apis/", get(apis))
        .route("/openapi/v3", get(openapi_v3_index))
        .route("/openapi/v3/{*gv}", get(openapi_v3_document))
        .route("/openapi/v2", get(openapi_v2))
        .fallback(resource_handler)
        .with_state(state)
}

async fn version() -> Response {
    h::json_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": KUBERNETES_MINOR,
            "gitVersion": format!("v1.{KUBERNETES_MINOR}.0"),
            "gitCommit": "svcnet",
            "gitTreeState": "clean",
            "buildDate": "2026-12-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": format!("linux/{}", std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64")),
        }),
    )
}

async fn ok() -> Response {
    h::bytes_response(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec())
}

async fn api(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    match h::aggregated_discovery_version(&headers) {
        Some(_) => aggregated(discovery::aggregated(true)),
        None => h::json_response(StatusCode::OK, &discovery::api_versions(&state.server_address)),
    }
}

async fn apis(headers: HeaderMap) -> Response {
    match h::aggregated_discovery_version(&headers) {
        Some(_) => aggregated(discovery::aggregated(false)),
        None => h::json_response(StatusCode::OK, &discovery::api_group_list()),
    }
}

fn aggregated(value: Value) -> Response {
    let mut response = h::bytes_response(
        StatusCode::OK,
        discovery::AGGREGATED_V2,
        serde_json::to_vec(&value).unwrap_or_default(),
    );
    response
        .headers_mut()
        .insert(axum::http::header::VARY, "Accept".parse().expect("static"));
    response
}

async fn openapi_v3_index() -> Response {
    h::bytes_response(
        StatusCode::OK,
        "application/json",
        svcnet_openapi::openapi().v3_index().to_vec(),
    )
}

async fn openapi_v3_document(axum::extract::Path(gv): axum::extract::Path<String>) -> Response {
    match svcnet_openapi::openapi().v3_document(&gv) {
        Some(doc) => h::bytes_response(StatusCode::OK, "application/json", doc.to_vec()),
        None => ApiError::path_not_found().into_response(),
    }
}

async fn openapi_v2(headers: HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let openapi = svcnet_openapi::openapi();
    if svcnet_openapi::wants_v2_protobuf(accept) {
        h::bytes_response(
            StatusCode::OK,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            openapi.v2_protobuf().to_vec(),
        )
    } else {
        h::bytes_response(StatusCode::OK, "application/json", openapi.v2_json().to_vec())
    }
}

/// Every `/api/...` and `/apis/...` request that is not a fixed endpoint.
async fn resource_handler(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let query = Query::parse(parts.uri.query());
    let result = dispatch(&state, &parts.method, parts.uri.path(), &parts.headers, &query, body).await;
    let response = match result {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    tracing::debug!(method = %parts.method, path = %parts.uri.path(), code = response.status().as_u16(), "request");
    response
}

async fn dispatch(
    state: &AppState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    if let Some(group) = path
        .strip_prefix("/apis/")
        .filter(|g| !g.trim_end_matches('/').contains('/'))
    {
        return match discovery::api_group(group.trim_end_matches('/')) {
            Some(doc) => Ok(h::json_response(StatusCode::OK, &doc)),
            None => Err(ApiError::path_not_found()),
        };
    }
    let target = routes::parse(path).ok_or_else(ApiError::path_not_found)?;
    match target {
        Target::GroupVersion { group, version } => match discovery::api_resource_list(&group, &version) {
            Some(doc) if method == Method::GET => Ok(h::json_response(StatusCode::OK, &doc)),
            _ => Err(ApiError::path_not_found()),
        },
        Target::Collection { resource, namespace } => {
            collection(state, method, resource, namespace.as_deref(), headers, query, body).await
        }
        Target::Object {
            resource,
            namespace,
            name,
            subresource,
        } => {
            if let (Some("binding"), "Pod", Some(namespace)) =
                (subresource.as_deref(), resource.kind, namespace.as_deref())
            {
                return binding(state, method, namespace, &name, headers, query, body).await;
            }
            if subresource.as_deref() == Some("scale") && crate::scale::has_scale(resource) {
                return scale(
                    state,
                    method,
                    resource,
                    namespace.as_deref(),
                    &name,
                    headers,
                    query,
                    body,
                )
                .await;
            }
            if subresource
                .as_deref()
                .is_some_and(|s| s != "status" || !resource.has_status)
            {
                return Err(ApiError::path_not_found());
            }
            let ctx = ObjectRequest {
                resource,
                namespace: namespace.as_deref(),
                name: &name,
                subresource: subresource.as_deref(),
            };
            object(state, method, ctx, headers, query, body).await
        }
    }
}

/// GET, PUT and PATCH of `{deployments,replicasets,statefulsets}/{name}/scale`.
#[allow(clippy::too_many_arguments)]
async fn scale(
    state: &AppState,
    method: &Method,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    name: &str,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    use crate::scale::ScaleChange;
    let registry = &state.registry;
    let change = match *method {
        Method::GET => {
            return Ok(h::json_response(
                StatusCode::OK,
                &crate::scale::get(registry, resource, namespace, name).await?,
            ))
        }
        Method::PUT => ScaleChange::Replace(body::decode(&h::content_type(headers), &body::read(body).await?)?),
        Method::PATCH => {
            let content_type = h::content_type(headers);
            let patch_type = PatchType::from_content_type(&content_type)
                .ok_or_else(|| ApiError::unsupported_patch(&content_type))?;
            let bytes = body::read(body).await?;
            let patch = match patch_type {
                PatchType::Apply => body::parse_yaml(&bytes)?,
                _ => body::parse_json(&bytes)?,
            };
            ScaleChange::Patch(patch_type, patch)
        }
        _ => {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method})"
            )))
        }
    };
    let scale = crate::scale::write(registry, resource, namespace, name, change, write_options(query)?).await?;
    Ok(h::json_response(StatusCode::OK, &scale))
}

/// POST `pods/{name}/binding`: the scheduler's way of setting `spec.nodeName`.
async fn binding(
    state: &AppState,
    method: &Method,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    if *method != Method::POST {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        )));
    }
    let options = write_options(query)?;
    let binding = body::decode(&h::content_type(headers), &body::read(body).await?)?;
    let status = crate::pods::bind(&state.registry, namespace, name, &binding, options.dry_run).await?;
    Ok(h::json_response(StatusCode::CREATED, &status))
}

fn write_options(query: &Query) -> ApiResult<WriteOptions> {
    if let Some(dry_run) = query.get("dryRun").filter(|d| !d.is_empty() && *d != "All") {
        return Err(ApiError::bad_request(format!(
            "Unsupported value: \"{dry_run}\": supported values: \"All\""
        )));
    }
    Ok(WriteOptions {
        dry_run: query.dry_run(),
        validation: FieldValidation::from_query(query.get("fieldValidation"))?,
    })
}

fn written_response(written: Written, ok_code: StatusCode) -> Response {
    let code = if written.created { StatusCode::CREATED } else { ok_code };
    h::with_warnings(h::json_response(code, &written.object), &written.warnings)
}

fn table_include(headers: &HeaderMap, query: &Query) -> Option<IncludeObject> {
    h::wants_table(headers).then(|| IncludeObject::from_query(query.get("includeObject")))
}

#[allow(clippy::too_many_arguments)]
async fn collection(
    state: &AppState,
    method: &Method,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    let registry = &state.registry;
    match *method {
        Method::GET => {
            let selection = Selection::parse(resource, query.get("labelSelector"), query.get("fieldSelector"))?;
            if query.is_watch() {
                return watch::watch(registry, resource, watch_request(namespace, selection, headers, query)?).await;
            }
            let table = table_include(headers, query);
            if table.is_none() && selection.is_everything() {
                let (items, revision) = registry.list_raw(resource, namespace).await?;
                return Ok(raw_list(resource, &items, revision));
            }
            let (items, revision) = registry.list(resource, namespace, &selection).await?;
            if let Some(include) = table {
                return Ok(h::json_response(
                    StatusCode::OK,
                    &tables::table(resource, &items, revision, include, true),
                ));
            }
            let list = json!({
                "kind": resource.list_kind(),
                "apiVersion": resource.api_version(),
                "metadata": {"resourceVersion": revision.to_string()},
                "items": items,
            });
            Ok(h::json_response(StatusCode::OK, &list))
        }
        Method::POST => {
            if resource.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed(
                    "POST is not supported on all-namespaces collections",
                ));
            }
            let options = write_options(query)?;
            let object = body::decode(&h::content_type(headers), &body::read(body).await?)?;
            let written = registry.create(resource, namespace, object, options).await?;
            Ok(written_response(written, StatusCode::CREATED))
        }
        Method::DELETE => delete_collection(state, resource, namespace, query).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

async fn delete_collection(
    state: &AppState,
    resource: &'static ResourceInfo,
    namespace: Option<&str>,
    query: &Query,
) -> ApiResult<Response> {
    let selection = Selection::parse(resource, query.get("labelSelector"), query.get("fieldSelector"))?;
    let (items, revision) = state.registry.list(resource, namespace, &selection).await?;
    let mut deleted = Vec::with_capacity(items.len());
    for item in &items {
        let (Some(name), ns) = (crate::objects::name(item), crate::objects::meta_str(item, "namespace")) else {
            continue;
        };
        match state
            .registry
            .delete(resource, ns, name, &Value::Null, query.dry_run())
            .await
        {
            Ok(done) => deleted.push(done.object),
            Err(err) if err.code == 404 => {}
            Err(err) => return Err(err),
        }
    }
    let list = json!({"kind": resource.list_kind(), "apiVersion": resource.api_version(), "metadata": {"resourceVersion": revision.to_string()}, "items": deleted});
    Ok(h::json_response(StatusCode::OK, &list))
}

fn watch_request(
    namespace: Option<&str>,
    selection: Selection,
    headers: &HeaderMap,
    query: &Query,
) -> ApiResult<WatchRequest> {
    let timeout = match query.get("timeoutSeconds").filter(|t| !t.is_empty()) {
        Some(raw) => {
            Some(Duration::from_secs(raw.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid timeoutSeconds: {raw}"))
            })?))
        }
        None => None,
    };
    Ok(WatchRequest {
        namespace: namespace.map(str::to_string),
        selection,
        resource_version: query.get("resourceVersion").map(str::to_string),
        timeout,
        bookmarks: query.flag("allowWatchBookmarks"),
        send_initial_events: query.flag("sendInitialEvents"),
        table: table_include(headers, query),
    })
}

struct ObjectRequest<'a> {
    resource: &'static ResourceInfo,
    namespace: Option<&'a str>,
    name: &'a str,
    subresource: Option<&'a str>,
}

async fn object(
    state: &AppState,
    method: &Method,
    ctx: ObjectRequest<'_>,
    headers: &HeaderMap,
    query: &Query,
    body: Body,
) -> ApiResult<Response> {
    let registry = &state.registry;
    let ObjectRequest {
        resource,
        namespace,
        name,
        subresource,
    } = ctx;
    match *method {
        Method::GET => {
            let object = registry.get(resource, namespace, name).await?;
            if let Some(include) = table_include(headers, query) {
                let revision = crate::objects::resource_version(&object)
                    .and_then(|rv| rv.parse().ok())
                    .unwrap_or(0);
                return Ok(h::json_response(
                    StatusCode::OK,
                    &tables::table(resource, &[object], revision, include, true),
                ));
            }
            Ok(h::json_response(StatusCode::OK, &object))
        }
        Method::PUT => {
            let options = write_options(query)?;
            let object = body::decode(&h::content_type(headers), &body::read(body).await?)?;
            let written = registry
                .update(resource, namespace, name, subresource, object, options)
                .await?;
            Ok(written_response(written, StatusCode::OK))
        }
        Method::PATCH => {
            let options = write_options(query)?;
            let content_type = h::content_type(headers);
            let patch_type = PatchType::from_content_type(&content_type)
                .ok_or_else(|| ApiError::unsupported_patch(&content_type))?;
            if patch_type == PatchType::Apply && query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::field_manager_required());
            }
            let bytes = body::read(body).await?;
            let patch = match patch_type {
                PatchType::Apply => body::parse_yaml(&bytes)?,
                _ => body::parse_json(&bytes)?,
            };
            let written = registry
                .patch(resource, namespace, name, subresource, patch_type, patch, options)
                .await?;
            Ok(written_response(written, StatusCode::OK))
        }
        Method::DELETE => {
            let bytes = body::read(body).await?;
            let mut options = if bytes.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                body::parse_json(&bytes)?
            };
            delete_options_from_query(&mut options, query);
            let dry_run = query.dry_run()
                || options
                    .get("dryRun")
                    .and_then(Value::as_array)
                    .is_some_and(|d| d.iter().any(|v| v == "All"));
            let deleted = registry.delete(resource, namespace, name, &options, dry_run).await?;
            if resource.kind == "Namespace" && !dry_run && !deleted.gone {
                namespaces::spawn_finalizer(registry.clone(), name.to_string());
            }
            Ok(h::json_response(StatusCode::OK, &delete_result(resource, &deleted)))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

/// DeleteOptions may also come as query parameters (`?propagationPolicy=Orphan`,
/// `?gracePeriodSeconds=0`); the body wins where both name a field.
fn delete_options_from_query(options: &mut Value, query: &Query) {
    let Some(options) = options.as_object_mut() else {
        return;
    };
    if let Some(policy) = query.get("propagationPolicy").filter(|p| !p.is_empty()) {
        options
            .entry("propagationPolicy")
            .or_insert_with(|| Value::from(policy));
    }
    if let Some(grace) = query.get("gracePeriodSeconds").and_then(|g| g.parse::<i64>().ok()) {
        options
            .entry("gracePeriodSeconds")
            .or_insert_with(|| Value::from(grace));
    }
    if let Some(orphan) = query.get("orphanDependents").and_then(|o| o.parse::<bool>().ok()) {
        options.entry("orphanDependents").or_insert_with(|| Value::from(orphan));
    }
}

/// Upstream returns the deleted object for the kinds whose storage asks for it (pods, services,
/// namespaces) and for objects that still exist (finalizers pending); others get a Success Status.
fn delete_result(resource: &ResourceInfo, deleted: &crate::registry::Deleted) -> Value {
    if !deleted.gone || matches!(resource.kind, "Pod" | "Service" | "Namespace") {
        return deleted.object.clone();
    }
    let mut details = json!({
        "name": crate::objects::name(&deleted.object).unwrap_or(""),
        "kind": resource.plural,
        "uid": crate::objects::meta_str(&deleted.object, "uid").unwrap_or(""),
    });
    if !resource.group.is_empty() {
        details["group"] = json!(resource.group);
    }
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details})
}

/// A list response assembled from undecoded items (the common unfiltered JSON list).
fn raw_list(resource: &ResourceInfo, items: &[Vec<u8>], revision: u64) -> Response {
    let head = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":{{\"resourceVersion\":\"{revision}\"}},\"items\":[",
        resource.list_kind(),
        resource.api_version()
    );
    let size = head.len() + items.iter().map(|i| i.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(size);
    body.extend_from_slice(head.as_bytes());
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    h::bytes_response(StatusCode::OK, "application/json", body)
}
