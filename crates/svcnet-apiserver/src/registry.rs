//! The generic REST registry: create, get, list, update, patch and delete of any served kind over
//! the [`Store`], with upstream's preconditions, no-op detection, finalizers, dry runs and
//! namespace checks. Handlers translate HTTP to these calls; nothing here knows about HTTP.

use std::sync::Arc;

use serde_json::{json, Value};

use svcnet_core::patch::{self, PatchType};
use svcnet_core::resources::{self, ResourceInfo};
use svcnet_core::selector::{FieldSelector, LabelSelector};
use svcnet_store::{Error as StoreError, Op, Precondition, Store};

use crate::body::{typed_object, FieldValidation};
use crate::objects::{self, from_kv, key, prefix};
use crate::pods::{self, PodDeletion};
use crate::services::{Reservation, ServiceAllocator};
use crate::status::{ApiError, ApiResult};
use crate::strategy::{self, prepare_for_create, prepare_for_update, strategy};

/// Options every write takes from the query string.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub validation: FieldValidation,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    /// The write created the object (201 rather than 200).
    pub created: bool,
    pub warnings: Vec<String>,
}

/// The outcome of a delete.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub object: Value,
    /// The object is gone now (200) rather than marked for deletion (202).
    pub gone: bool,
}

/// Which objects a list or watch selects.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub labels: Option<LabelSelector>,
    pub fields: Option<FieldSelector>,
}

impl Selection {
    pub fn parse(resource: &ResourceInfo, labels: Option<&str>, fields: Option<&str>) -> ApiResult<Self> {
        let labels = match labels.filter(|s| !s.is_empty()) {
            Some(raw) => Some(LabelSelector::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))?),
            None => None,
        };
        let fields = match fields.filter(|s| !s.is_empty()) {
            Some(raw) => {
                let selector = FieldSelector::parse(raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
                selector
                    .validate_for(resource.kind)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                Some(selector)
            }
            None => None,
        };
        Ok(Selection { labels, fields })
    }

    /// Selects everything (no label or field terms), so objects need no decoding to be chosen.
    pub fn is_everything(&self) -> bool {
        self.labels.as_ref().is_none_or(|s| s.is_empty()) && self.fields.as_ref().is_none_or(|s| s.is_empty())
    }

    pub fn matches(&self, kind: &str, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels").and_then(Value::as_object);
        self.labels.as_ref().is_none_or(|s| s.matches(labels))
            && self.fields.as_ref().is_none_or(|s| s.matches(kind, object))
    }
}

/// Attempts at a read-modify-write before a conflict is reported (upstream retries patches too).
const PATCH_RETRIES: usize = 5;

#[derive(Clone)]
pub struct Registry {
    pub store: Arc<dyn Store>,
    pub services: Arc<ServiceAllocator>,
}

impl Registry {
    pub fn new(store: Arc<dyn Store>, services: Arc<ServiceAllocator>) -> Self {
        Registry { store, services }
    }

    /// Writes `ops` and the reservation's allocation records in one transaction; the reservation
    /// is kept if it commits and returned to the allocator (on drop) if not.
    async fn commit(&self, mut ops: Vec<Op>, mut reservation: Reservation) -> Result<u64, StoreError> {
        ops.append(&mut reservation.plan.ops);
        let result = self.store.txn(ops).await?;
        reservation.commit();
        Ok(result.revision)
    }

    /// Allocations a write of `object` needs (Services only).
    fn reserve(
        &self,
        resource: &ResourceInfo,
        object: &mut Value,
        old: Option<&Value>,
        dry_run: bool,
    ) -> ApiResult<Reservation> {
        if resource.kind == "Service" {
            self.services.plan(object, old, dry_run)
        } else {
            Ok(Reservation::none())
        }
    }

    pub async fn get(&self, resource: &ResourceInfo, namespace: Option<&str>, name: &str) -> ApiResult<Value> {
        let kv = self.store.get(&key(resource, namespace, name)).await?;
        kv.map(|kv| from_kv(&kv))
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// Lists matching objects and the revision the list reflects.
    pub async fn list(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        selection: &Selection,
    ) -> ApiResult<(Vec<Value>, u64)> {
        let list = self.store.list(&prefix(resource, namespace)).await?;
        let items = list
            .kvs
            .iter()
            .map(from_kv)
            .filter(|object| selection.matches(resource.kind, object))
            .collect();
        Ok((items, list.revision))
    }

    /// Every object of a resource as JSON bytes with its resourceVersion, undecoded (see
    /// [`objects::splice_resource_version`]), and the revision of the snapshot.
    pub async fn list_raw(&self, resource: &ResourceInfo, namespace: Option<&str>) -> ApiResult<(Vec<Vec<u8>>, u64)> {
        let list = self.store.list(&prefix(resource, namespace)).await?;
        let items = list
            .kvs
            .iter()
            .map(|kv| {
                objects::splice_resource_version(&kv.value, kv.mod_revision)
                    .unwrap_or_else(|| serde_json::to_vec(&from_kv(kv)).unwrap_or_default())
            })
            .collect();
        Ok((items, list.revision))
    }

    pub async fn create(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        body: Value,
        options: WriteOptions,
    ) -> ApiResult<Written> {
        let (mut object, warnings) = typed_object(resource, body, options.validation)?;
        check_namespace_matches(resource, namespace, &object)?;
        if objects::name(&object).is_none() {
            if let Some(base) = objects::meta_str(&object, "generateName").map(str::to_string) {
                objects::metadata_mut(&mut object).insert("name".into(), Value::from(objects::generate_name(&base)));
            }
        }
        let name = objects::name(&object).unwrap_or("").to_string();
        let mut causes = objects::validate_metadata(resource, &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, &name, causes));
        }
        self.check_namespace_open(resource, namespace, &name).await?;
        prepare_for_create(resource, &mut object);
        objects::stamp_create(
            &mut object,
            namespace.filter(|_| resource.namespaced),
            strategy(resource).tracks_generation,
        );
        let reservation = self.reserve(resource, &mut object, None, options.dry_run)?;
        causes = strategy::validate(resource, &object, None, None);
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, &name, causes));
        }
        if options.dry_run {
            return Ok(Written {
                object,
                created: true,
                warnings,
            });
        }
        let key = key(resource, namespace, &name);
        let ops = vec![Op::Put {
            key: key.clone(),
            value: objects::to_bytes(&object),
            precondition: Precondition::MustNotExist,
        }];
        match self.commit(ops, reservation).await {
            Ok(revision) => {
                objects::set_resource_version(&mut object, revision);
                Ok(Written {
                    object,
                    created: true,
                    warnings,
                })
            }
            Err(StoreError::AlreadyExists(existing)) if existing == key => {
                Err(ApiError::already_exists(resource, &name))
            }
            Err(StoreError::AlreadyExists(allocation)) => Err(allocation_taken(resource, &name, &allocation)),
            Err(err) => Err(err.into()),
        }
    }

    /// PUT: replaces the object (or its status) under a resourceVersion precondition when given.
    pub async fn update(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        body: Value,
        options: WriteOptions,
    ) -> ApiResult<Written> {
        let (mut object, warnings) = typed_object(resource, body, options.validation)?;
        check_namespace_matches(resource, namespace, &object)?;
        match objects::name(&object) {
            None => {
                objects::metadata_mut(&mut object).insert("name".into(), Value::from(name));
            }
            Some(body_name) if body_name != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )))
            }
            Some(_) => {}
        }
        let Some(old) = self
            .store
            .get(&key(resource, namespace, name))
            .await?
            .map(|kv| from_kv(&kv))
        else {
            if strategy(resource).create_on_update && subresource.is_none() {
                return self.create(resource, namespace, object, options).await;
            }
            return Err(ApiError::not_found(resource, name));
        };
        if let Some(wanted) = objects::resource_version(&object) {
            if Some(wanted) != objects::resource_version(&old) {
                return Err(ApiError::modified(resource, name));
            }
        }
        let mut written = self
            .write_update(resource, namespace, name, subresource, object, &old, options)
            .await?;
        written.warnings = warnings;
        Ok(written)
    }

    /// PATCH in any of the four patch types, retried on conflicting concurrent writes.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        patch_type: PatchType,
        patch_body: Value,
        options: WriteOptions,
    ) -> ApiResult<Written> {
        for _ in 0..PATCH_RETRIES {
            let Some(old) = self
                .store
                .get(&key(resource, namespace, name))
                .await?
                .map(|kv| from_kv(&kv))
            else {
                if patch_type == PatchType::Apply && subresource.is_none() {
                    return self
                        .create_from_apply(resource, namespace, name, patch_body, options)
                        .await;
                }
                return Err(ApiError::not_found(resource, name));
            };
            let patched = apply_patch(&old, &patch_body, patch_type, resource.kind)?;
            if objects::resource_version(&patched) != objects::resource_version(&old) {
                // The patch carried a resourceVersion (kubectl diff does): a precondition.
                return Err(ApiError::modified(resource, name));
            }
            let (object, warnings) = typed_object(resource, patched, options.validation)?;
            match self
                .write_update(resource, namespace, name, subresource, object, &old, options)
                .await
            {
                Err(err) if err.code == 409 && err.reason == "Conflict" => continue,
                Err(err) => return Err(err),
                Ok(mut written) => {
                    written.warnings = warnings;
                    return Ok(written);
                }
            }
        }
        Err(ApiError::modified(resource, name))
    }

    async fn create_from_apply(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        mut body: Value,
        options: WriteOptions,
    ) -> ApiResult<Written> {
        if body.is_object() {
            objects::metadata_mut(&mut body)
                .entry("name")
                .or_insert_with(|| Value::from(name));
        }
        if objects::name(&body) != Some(name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                objects::name(&body).unwrap_or("")
            )));
        }
        self.create(resource, namespace, body, options).await
    }

    /// The shared tail of PUT and PATCH: merge with stored state, validate, detect no-ops,
    /// finish deletions whose finalizers are gone, and write under the old revision.
    #[allow(clippy::too_many_arguments)]
    async fn write_update(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        subresource: Option<&str>,
        mut object: Value,
        old: &Value,
        options: WriteOptions,
    ) -> ApiResult<Written> {
        objects::keep_server_metadata(&mut object, old);
        prepare_for_update(resource, subresource, &mut object, old);
        let old_revision: u64 = objects::resource_version(old)
            .and_then(|rv| rv.parse().ok())
            .unwrap_or(0);
        objects::set_resource_version(&mut object, old_revision);
        let mut reservation = match subresource {
            None => self.reserve(resource, &mut object, Some(old), options.dry_run)?,
            Some(_) => Reservation::none(),
        };
        let mut causes = objects::validate_metadata(resource, &object);
        causes.extend(strategy::validate(resource, &object, Some(old), subresource));
        if !causes.is_empty() {
            return Err(ApiError::invalid(resource, name, causes));
        }
        if &object == old {
            // Nothing changed: no write, same resourceVersion ("patched (no change)").
            return Ok(Written {
                object,
                created: false,
                warnings: Vec::new(),
            });
        }
        if options.dry_run {
            return Ok(Written {
                object,
                created: false,
                warnings: Vec::new(),
            });
        }
        let key = key(resource, namespace, name);
        let precondition = Precondition::ModRevision(old_revision);
        // A pending graceful deletion (grace > 0) ends with a DELETE, not with an update.
        let finishing = objects::is_deleting(&object)
            && objects::finalizers(&object).is_empty()
            && object
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                == 0;
        if finishing && resource.kind == "Service" {
            reservation = self.services.plan_delete(old);
        }
        let ops = vec![if finishing {
            Op::Delete { key, precondition }
        } else {
            Op::Put {
                key,
                value: objects::to_bytes(&object),
                precondition,
            }
        }];
        match self.commit(ops, reservation).await {
            Ok(revision) => {
                objects::set_resource_version(&mut object, revision);
                Ok(Written {
                    object,
                    created: false,
                    warnings: Vec::new(),
                })
            }
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => Err(ApiError::modified(resource, name)),
            Err(StoreError::AlreadyExists(allocation)) => Err(allocation_taken(resource, name, &allocation)),
            Err(err) => Err(err.into()),
        }
    }

    /// DELETE: removes the object, or marks it for deletion while finalizers remain.
    pub async fn delete(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
        delete_options: &Value,
        dry_run: bool,
    ) -> ApiResult<Deleted> {
        for _ in 0..PATCH_RETRIES {
            let old = self.get(resource, namespace, name).await?;
            check_delete_preconditions(resource, name, &old, delete_options)?;
            let propagation = propagation_finalizer(resource, delete_options)?;
            let revision: u64 = objects::resource_version(&old)
                .and_then(|rv| rv.parse().ok())
                .unwrap_or(0);
            let key = key(resource, namespace, name);
            let mut marked = old.clone();
            let keep = if resource.kind == "Namespace" {
                mark_namespace_terminating(&mut marked);
                true
            } else if resource.kind == "Pod" {
                // Pods on a node are marked and kept until the node confirms (or the grace runs out).
                match pods::graceful_deletion(&old, delete_options, jiff::Timestamp::now()) {
                    PodDeletion::Remove => false,
                    PodDeletion::Mark(graceful) => {
                        marked = graceful;
                        true
                    }
                }
            } else if let Some(finalizer) = propagation.filter(|_| !objects::is_deleting(&old)) {
                // The garbage collector orphans or deletes the dependents, then lifts it.
                add_finalizer(&mut marked, finalizer);
                mark_deleting(&mut marked);
                true
            } else if !objects::finalizers(&old).is_empty() {
                mark_deleting(&mut marked);
                true
            } else {
                false
            };
            if dry_run {
                return Ok(Deleted {
                    object: if keep { marked } else { old },
                    gone: !keep,
                });
            }
            if keep && marked == old {
                return Ok(Deleted {
                    object: old,
                    gone: false,
                });
            }
            let reservation = if keep || resource.kind != "Service" {
                Reservation::none()
            } else {
                self.services.plan_delete(&old)
            };
            let op = if keep {
                Op::Put {
                    key,
                    value: objects::to_bytes(&marked),
                    precondition: Precondition::ModRevision(revision),
                }
            } else {
                Op::Delete {
                    key,
                    precondition: Precondition::ModRevision(revision),
                }
            };
            match self.commit(vec![op], reservation).await {
                Ok(revision) => {
                    let mut object = if keep { marked } else { old };
                    objects::set_resource_version(&mut object, revision);
                    return Ok(Deleted { object, gone: !keep });
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Err(ApiError::not_found(resource, name)),
                Err(err) => return Err(err.into()),
            }
        }
        Err(ApiError::modified(resource, name))
    }

    /// Writes into a namespace need it to exist and not be terminating.
    async fn check_namespace_open(
        &self,
        resource: &ResourceInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> ApiResult<()> {
        let Some(ns) = namespace.filter(|_| resource.namespaced) else {
            return Ok(());
        };
        let namespaces = resources::by_kind("Namespace").expect("namespaces are served");
        let Some(kv) = self.store.get(&key(namespaces, None, ns)).await? else {
            return Err(ApiError::namespace_not_found(ns));
        };
        if objects::is_deleting(&from_kv(&kv)) {
            return Err(ApiError::forbidden(
                resource,
                name,
                &format!("unable to create new content in namespace {ns} because it is being terminated"),
            ));
        }
        Ok(())
    }
}

fn apply_patch(old: &Value, body: &Value, patch_type: PatchType, kind: &str) -> ApiResult<Value> {
    let result = match patch_type {
        PatchType::Json => patch::apply_json_patch(old, body),
        PatchType::Merge => patch::apply_merge_patch(old, body),
        PatchType::StrategicMerge => patch::apply_strategic_merge_patch(old, body, kind),
        PatchType::Apply => patch::apply_server_side(old, body, kind),
    };
    let patched = result.map_err(|err| ApiError {
        code: err.status_code(),
        reason: err.reason(),
        message: err.to_string(),
        details: None,
    })?;
    if !patched.is_object() {
        return Err(ApiError::bad_request(
            "the patch produced something other than an object",
        ));
    }
    Ok(patched)
}

fn check_namespace_matches(resource: &ResourceInfo, namespace: Option<&str>, object: &Value) -> ApiResult<()> {
    if !resource.namespaced {
        return Ok(());
    }
    match (objects::meta_str(object, "namespace"), namespace) {
        (Some(body_ns), Some(url_ns)) if body_ns != url_ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        _ => Ok(()),
    }
}

fn check_delete_preconditions(resource: &ResourceInfo, name: &str, object: &Value, options: &Value) -> ApiResult<()> {
    let preconditions = options.get("preconditions");
    if let Some(uid) = preconditions.and_then(|p| p.get("uid")).and_then(Value::as_str) {
        let actual = objects::meta_str(object, "uid").unwrap_or("");
        if uid != actual {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
            ));
        }
    }
    if let Some(rv) = preconditions
        .and_then(|p| p.get("resourceVersion"))
        .and_then(Value::as_str)
    {
        let actual = objects::resource_version(object).unwrap_or("");
        if rv != actual {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
            ));
        }
    }
    Ok(())
}

/// The finalizer that a DELETE's propagation policy asks for: `orphan` for Orphan (or the legacy
/// orphanDependents), `foregroundDeletion` for Foreground, none for Background. Pods and
/// namespaces have their own deletion flow and own no workloads.
fn propagation_finalizer(resource: &ResourceInfo, options: &Value) -> ApiResult<Option<&'static str>> {
    let policy = options.get("propagationPolicy").and_then(Value::as_str);
    let orphan_dependents = options.get("orphanDependents").and_then(Value::as_bool);
    if policy.is_some() && orphan_dependents.is_some() {
        return Err(ApiError::bad_request(
            "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"null\": orphanDependents and deletionPropagation cannot be both set",
        ));
    }
    let finalizer = match (policy, orphan_dependents) {
        (Some("Orphan"), _) | (None, Some(true)) => Some("orphan"),
        (Some("Foreground"), _) => Some("foregroundDeletion"),
        (Some("Background") | None, _) => None,
        (Some(other), _) => {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{other}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    Ok(finalizer.filter(|_| !matches!(resource.kind, "Pod" | "Namespace")))
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    let meta = objects::metadata_mut(object);
    let finalizers = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !finalizers.is_array() {
        *finalizers = json!([]);
    }
    let list = finalizers.as_array_mut().expect("made an array above");
    if !list.iter().any(|f| f == finalizer) {
        list.push(Value::from(finalizer));
    }
}

fn mark_deleting(object: &mut Value) {
    let meta = objects::metadata_mut(object);
    if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
        meta.insert("deletionTimestamp".into(), Value::from(objects::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
}

fn mark_namespace_terminating(object: &mut Value) {
    mark_deleting(object);
    object["status"] = json!({"phase": "Terminating"});
}

/// A concurrent writer took an allocation between our reservation and commit (only possible
/// when stored allocations and the in-memory bitmap disagree, which the repair pass fixes).
fn allocation_taken(resource: &ResourceInfo, name: &str, key: &str) -> ApiError {
    let value = key.rsplit('/').next().unwrap_or(key);
    ApiError::invalid(
        resource,
        name,
        vec![crate::status::Cause::new(
            "FieldValueInvalid",
            "spec",
            format!("Invalid value: \"{value}\": provided value is already allocated"),
        )],
    )
}
