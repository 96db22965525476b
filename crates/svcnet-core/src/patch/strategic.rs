//! Strategic merge patch and the minimal server-side apply built on it.
//!
//! Follows upstream k8s.io/apimachinery/pkg/util/strategicpatch (the server half: applying a
//! patch, not computing one):
//! - maps merge recursively and `null` deletes a key;
//! - lists tagged `merge` with a key merge element-wise by that key, lists tagged `merge`
//!   without a key merge as ordered sets of primitives, every other list is replaced;
//! - directives: `$patch` (`replace` or `delete` on a map, `replace`/`delete` elements in a
//!   list), `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//!
//! Two deliberate differences: new list elements are appended (upstream puts them in front
//! when the patch carries no `$setElementOrder`; kubectl apply always sends one, so kubectl
//! sees no difference), and directives are consumed everywhere, including inside values that
//! are new to the object, where upstream may leave some in place. Any other `$` key is
//! rejected, so nothing starting with `$` is ever stored.

use serde_json::{Map, Value};

use super::strategy::{KindStrategy, MergeStrategy};
use super::{json_type, PatchError};

type Object = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

/// Upstream's error texts (k8s.io/apimachinery/pkg/util/mergepatch).
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";

pub(super) fn apply_strategic_merge_patch(original: &Value, patch: &Value, kind: &str) -> Result<Value, PatchError> {
    let Value::Object(original) = original else {
        return Err(PatchError::Unprocessable(format!(
            "cannot patch a JSON {}: the object must be a JSON object",
            json_type(original)
        )));
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::InvalidPatch(format!(
            "invalid strategic merge patch: expected a JSON object, got {}",
            json_type(patch)
        )));
    };
    let merger = Merger::new(kind);
    Ok(Value::Object(
        merger
            .merge_object(original.clone(), patch.clone(), "")?
            .unwrap_or_default(),
    ))
}

pub(super) fn apply_server_side(original: &Value, applied: &Value, kind: &str) -> Result<Value, PatchError> {
    // A missing object is created from the configuration, as apply does.
    let original = match original {
        Value::Null => Value::Object(Object::new()),
        other => other.clone(),
    };
    if !applied.is_object() {
        return Err(PatchError::InvalidPatch(format!(
            "invalid apply configuration: expected an object, got {}",
            json_type(applied)
        )));
    }
    // An apply configuration states the desired object; patch directives have no meaning
    // there and would otherwise be interpreted by the merge.
    reject_directives(applied, "")?;
    apply_strategic_merge_patch(&original, applied, kind)
}

/// Fails on any object key starting with `$` anywhere in `value`.
fn reject_directives(value: &Value, path: &str) -> Result<(), PatchError> {
    match value {
        Value::Object(map) => map.iter().try_for_each(|(key, child)| {
            let child_path = join(path, key);
            if key.starts_with('$') {
                return Err(PatchError::InvalidPatch(format!(
                    "invalid apply configuration: field {child_path:?} is a patch directive, \
                     which an apply configuration cannot contain"
                )));
            }
            reject_directives(child, &child_path)
        }),
        Value::Array(items) => items
            .iter()
            .try_for_each(|item| reject_directives(item, &format!("{path}[*]"))),
        _ => Ok(()),
    }
}

/// The dotted path of a map entry, used to look up its strategy.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The path of a list's elements: `[*]` keeps them distinct from map entries in messages.
fn items_path(path: &str) -> String {
    format!("{path}[*]")
}

/// Walks the original object and the patch together, consulting the kind's strategy table
/// for every list it meets.
struct Merger {
    strategy: KindStrategy,
}

/// The `$patch` / `replace` / `delete` elements of a patch list, split from its items.
#[derive(Default)]
struct ListDirectives {
    replace: bool,
    deletes: Vec<Object>,
}

/// What a list holds, which decides between merging by key and merging as a set.
#[derive(PartialEq, Eq)]
enum Elements {
    None,
    Objects,
    Scalars,
}

impl Merger {
    fn new(kind: &str) -> Merger {
        Merger {
            strategy: KindStrategy::for_kind(kind),
        }
    }

    /// Merges a patch map into an original map. `None` means the map is deleted
    /// (`$patch: delete`), which the caller applies by removing the field.
    fn merge_object(&self, original: Object, mut patch: Object, path: &str) -> Result<Option<Object>, PatchError> {
        let Some(directive) = patch.shift_remove(PATCH) else {
            return self.merge_fields(original, patch, path).map(Some);
        };
        match directive.as_str() {
            // Replace means "the patch is the whole map"; it is still merged into an empty
            // map so that directives nested inside it are processed rather than stored.
            Some("replace") => self.merge_fields(Object::new(), patch, path).map(Some),
            Some("delete") => Ok(None),
            _ => Err(bad_patch_type(&directive, &patch)),
        }
    }

    /// Merges a patch map without a `$patch` directive into an original map. The order of
    /// the steps is upstream's: `$retainKeys` first, then the lists that carry a
    /// `$setElementOrder`, then every other field.
    fn merge_fields(&self, mut original: Object, mut patch: Object, path: &str) -> Result<Object, PatchError> {
        apply_retain_keys(&mut original, &mut patch)?;
        self.merge_ordered_lists(&mut original, &mut patch, path)?;
        for (key, value) in patch {
            self.merge_field(&mut original, key, value, path)?;
        }
        Ok(original)
    }

    /// Merges one patch entry into `original`, keeping the field's position in the map.
    fn merge_field(&self, original: &mut Object, key: String, value: Value, path: &str) -> Result<(), PatchError> {
        if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            let field = directive_field(&key, DELETE_FROM_PRIMITIVE_LIST, BAD_PRIMITIVE_LIST)?;
            return delete_from_primitive_list(original, field, value);
        }
        if key.starts_with('$') {
            let at = if path.is_empty() { "the object root" } else { path };
            return Err(PatchError::BadStrategicMergePatch(format!(
                "unknown directive {key:?} in strategic merge patch at {at}"
            )));
        }
        let child_path = join(path, &key);
        // Take the old value out (leaving a placeholder in place) instead of cloning it.
        let current = original.get_mut(&key).map(Value::take);
        match self.merge_value(current, value, &child_path)? {
            Some(merged) => original.insert(key, merged),
            None => original.shift_remove(&key),
        };
        Ok(())
    }

    /// Merges a patch value into the current value of a field (`None` when absent). Returns
    /// `None` when the field must be removed.
    fn merge_value(&self, current: Option<Value>, patch: Value, path: &str) -> Result<Option<Value>, PatchError> {
        match (current, patch) {
            (_, Value::Null) => Ok(None),
            (current, Value::Object(patch)) => {
                // A map patch over a missing or non-map value starts from an empty map.
                let base = match current {
                    Some(Value::Object(map)) => map,
                    _ => Object::new(),
                };
                Ok(self.merge_object(base, patch, path)?.map(Value::Object))
            }
            (Some(Value::Array(current)), Value::Array(patch)) => {
                self.merge_list(current, patch, path).map(|l| Some(Value::Array(l)))
            }
            (_, Value::Array(patch)) => self.new_list(patch, path).map(|l| Some(Value::Array(l))),
            (_, scalar) => Ok(Some(scalar)),
        }
    }

    /// Merges a patch list into an existing list according to the field's strategy.
    fn merge_list(&self, original: Vec<Value>, patch: Vec<Value>, path: &str) -> Result<Vec<Value>, PatchError> {
        let key = match self.strategy.lookup(path).strategy {
            MergeStrategy::Default => return self.new_list(patch, path),
            MergeStrategy::MergeByKey(key) => Some(key),
            MergeStrategy::MergeSet => None,
        };
        let (items, directives) = split_list_directives(patch)?;
        match element_kind(&original, &items)? {
            Elements::None if directives.replace => Ok(Vec::new()),
            Elements::None => Ok(original),
            Elements::Scalars => merge_set(original, items, directives),
            Elements::Objects => {
                let Some(key) = key else {
                    return Err(PatchError::Unprocessable(format!(
                        "cannot merge lists without merge key for {path}"
                    )));
                };
                if directives.replace {
                    return self.new_list(items, path);
                }
                self.merge_by_key(original, items, &directives.deletes, key, path)
            }
        }
    }

    /// Merges a list of objects element-wise by `key`: `$patch: delete` elements remove every
    /// original element with their key, patch elements merge into the first original element
    /// with the same key, and elements with a new key are appended in patch order.
    fn merge_by_key(
        &self,
        mut merged: Vec<Value>,
        items: Vec<Value>,
        deletes: &[Object],
        key: &str,
        path: &str,
    ) -> Result<Vec<Value>, PatchError> {
        for delete in deletes {
            let value = delete.get(key).ok_or_else(|| no_merge_key(delete, key))?;
            merged.retain(|element| !has_key_value(element, key, value));
        }
        let element_path = items_path(path);
        for item in items {
            let Value::Object(item) = item else {
                unreachable!("element_kind checked that every item is an object");
            };
            let value = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
            match merged.iter().position(|e| has_key_value(e, key, value)) {
                Some(i) => {
                    let base = match merged[i].take() {
                        Value::Object(map) => map,
                        _ => Object::new(),
                    };
                    merged[i] = Value::Object(self.merge_fields(base, item, &element_path)?);
                }
                None => merged.push(Value::Object(self.merge_fields(Object::new(), item, &element_path)?)),
            }
        }
        Ok(merged)
    }

    /// A list that replaces whatever was there (atomic lists, or a merge list that is new
    /// or replaced). `$patch` elements are dropped and objects are merged into empty maps so
    /// that no directive survives and `null` fields are left out.
    fn new_list(&self, patch: Vec<Value>, path: &str) -> Result<Vec<Value>, PatchError> {
        let element_path = items_path(path);
        let mut list = Vec::with_capacity(patch.len());
        for element in patch {
            match element {
                Value::Object(mut map) => {
                    if let Some(directive) = map.shift_remove(PATCH) {
                        check_list_directive(&directive, &map)?;
                        continue;
                    }
                    list.push(Value::Object(self.merge_fields(Object::new(), map, &element_path)?));
                }
                other => list.push(other),
            }
        }
        Ok(list)
    }

    /// Merges the lists named by `$setElementOrder/<field>` and puts them in the requested
    /// order (upstream's mergePatchIntoOriginal). The list and its directive are removed from
    /// `patch` so the main loop does not merge them again.
    fn merge_ordered_lists(&self, original: &mut Object, patch: &mut Object, path: &str) -> Result<(), PatchError> {
        let directives: Vec<String> = patch
            .keys()
            .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
            .cloned()
            .collect();
        for directive in directives {
            let order = patch.shift_remove(&directive).unwrap_or_default();
            let field = directive_field(&directive, SET_ELEMENT_ORDER, BAD_SET_ELEMENT_ORDER)?;
            let Value::Array(order) = order else {
                return Err(bad_format(BAD_SET_ELEMENT_ORDER));
            };
            self.merge_ordered_list(original, patch, field, &order, path)?;
        }
        Ok(())
    }

    fn merge_ordered_list(
        &self,
        original: &mut Object,
        patch: &mut Object,
        field: &str,
        order: &[Value],
        path: &str,
    ) -> Result<(), PatchError> {
        let list_path = join(path, field);
        let strategy = self.strategy.lookup(&list_path).strategy;
        let key = ordering_key(strategy, order);
        let patch_list = match patch.shift_remove(field) {
            None => None,
            Some(Value::Array(list)) => Some(list),
            Some(_) => return Err(bad_format(BAD_SET_ELEMENT_ORDER)),
        };
        validate_order(patch_list.as_deref().unwrap_or_default(), order, key)?;
        let current = match original.get_mut(field) {
            Some(Value::Array(list)) => Some(std::mem::take(list)),
            _ => None,
        };
        let server_order = current.clone().unwrap_or_default();
        let merged = match (current, patch_list) {
            (None, None) => return Ok(()),
            (Some(current), None) => current,
            (None, Some(list)) => self.new_list(list, &list_path)?,
            (Some(current), Some(list)) => self.merge_list(current, list, &list_path)?,
        };
        let merged = match strategy {
            // An atomic list is the patch's list as sent; there is nothing to reorder.
            MergeStrategy::Default => merged,
            _ => order_elements(merged, order, &server_order, key),
        };
        original.insert(field.to_string(), Value::Array(merged));
        Ok(())
    }
}

/// Applies `$retainKeys`: every key of `original` not listed is cleared before the merge.
/// Upstream also rejects a patch that sets a field it does not list, since the field would
/// be cleared and set at once.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<(), PatchError> {
    let Some(retain) = patch.shift_remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(bad_format(BAD_RETAIN_KEYS));
    };
    let retain: Vec<String> = retain
        .into_iter()
        .map(|k| match k {
            Value::String(k) => Ok(k),
            _ => Err(bad_format(BAD_RETAIN_KEYS)),
        })
        .collect::<Result<_, _>>()?;
    for (key, value) in patch.iter() {
        let directive = key.starts_with(DELETE_FROM_PRIMITIVE_LIST) || key.starts_with(SET_ELEMENT_ORDER);
        if !value.is_null() && !directive && !retain.contains(key) {
            return Err(PatchError::BadStrategicMergePatch(format!(
                "{BAD_RETAIN_KEYS}: field {key:?} is patched but not listed in $retainKeys"
            )));
        }
    }
    original.retain(|key, _| retain.contains(key));
    Ok(())
}

/// Applies `$deleteFromPrimitiveList/<field>`: removes every occurrence of the listed values
/// from the original list. A missing list has nothing to delete.
fn delete_from_primitive_list(original: &mut Object, field: &str, values: Value) -> Result<(), PatchError> {
    let Value::Array(values) = values else {
        return Err(bad_format(BAD_PRIMITIVE_LIST));
    };
    if values.iter().any(|v| v.is_object() || v.is_array()) {
        return Err(bad_format(BAD_PRIMITIVE_LIST));
    }
    if let Some(Value::Array(list)) = original.get_mut(field) {
        list.retain(|item| !values.iter().any(|v| scalar_eq(v, item)));
    }
    Ok(())
}

/// The field named by a `<prefix>/<field>` directive key.
fn directive_field<'a>(key: &'a str, prefix: &str, error: &str) -> Result<&'a str, PatchError> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|field| !field.is_empty())
        .ok_or_else(|| bad_format(error))
}

/// Splits the `$patch` elements off a patch list.
fn split_list_directives(patch: Vec<Value>) -> Result<(Vec<Value>, ListDirectives), PatchError> {
    let mut items = Vec::with_capacity(patch.len());
    let mut directives = ListDirectives::default();
    for element in patch {
        let directive = element.as_object().and_then(|m| m.get(PATCH)).cloned();
        let Some(directive) = directive else {
            items.push(element);
            continue;
        };
        let Value::Object(mut map) = element else {
            unreachable!("only objects carry a $patch key");
        };
        map.shift_remove(PATCH);
        check_list_directive(&directive, &map)?;
        match directive.as_str() {
            Some("replace") => directives.replace = true,
            _ => directives.deletes.push(map),
        }
    }
    Ok((items, directives))
}

/// Accepts the `$patch` values a list element may carry: `replace` and `delete`.
fn check_list_directive(directive: &Value, element: &Object) -> Result<(), PatchError> {
    match directive.as_str() {
        Some("replace") | Some("delete") => Ok(()),
        Some("merge") => Err(PatchError::BadStrategicMergePatch(
            "merging lists cannot yet be specified in the patch".into(),
        )),
        _ => Err(bad_patch_type(directive, element)),
    }
}

/// Whether the lists hold objects or scalars. Mixing them, or nesting lists, cannot be
/// merged (upstream: "lists of lists are not supported").
fn element_kind(original: &[Value], items: &[Value]) -> Result<Elements, PatchError> {
    let mut kind = Elements::None;
    for element in original.iter().chain(items) {
        if element.is_array() {
            return Err(PatchError::Unprocessable("lists of lists are not supported".into()));
        }
        let this = if element.is_object() {
            Elements::Objects
        } else {
            Elements::Scalars
        };
        if kind != Elements::None && kind != this {
            return Err(PatchError::Unprocessable(format!(
                "list element types are not identical: {}",
                Value::Array(original.iter().chain(items).cloned().collect())
            )));
        }
        kind = this;
    }
    Ok(kind)
}

/// Merges a list of primitives as an ordered set: original order first, new values appended,
/// duplicates dropped.
fn merge_set(original: Vec<Value>, items: Vec<Value>, directives: ListDirectives) -> Result<Vec<Value>, PatchError> {
    if !directives.deletes.is_empty() {
        return Err(PatchError::BadStrategicMergePatch(
            "delete patch type with no merge key defined".into(),
        ));
    }
    let base = if directives.replace { Vec::new() } else { original };
    let mut merged: Vec<Value> = Vec::with_capacity(base.len() + items.len());
    for value in base.into_iter().chain(items) {
        if !merged.iter().any(|m| scalar_eq(m, &value)) {
            merged.push(value);
        }
    }
    Ok(merged)
}

/// The key that identifies elements for ordering: the merge key for lists of objects, none
/// (the value itself) for lists of primitives.
fn ordering_key(strategy: MergeStrategy, order: &[Value]) -> Option<&'static str> {
    match strategy {
        MergeStrategy::MergeByKey(key) if order.iter().any(Value::is_object) => Some(key),
        _ => None,
    }
}

/// What identifies an element: its merge key's value, or the element itself.
fn identity<'a>(element: &'a Value, key: Option<&str>) -> Option<&'a Value> {
    match key {
        Some(key) => element.as_object()?.get(key),
        None => Some(element),
    }
}

/// Like [`identity`], but a missing merge key in patch input is an error.
fn required_identity<'a>(element: &'a Value, key: Option<&str>) -> Result<&'a Value, PatchError> {
    identity(element, key).ok_or_else(|| match (element, key) {
        (Value::Object(map), Some(key)) => no_merge_key(map, key),
        _ => bad_format(BAD_SET_ELEMENT_ORDER),
    })
}

fn position(list: &[Value], element: &Value, key: Option<&str>) -> Option<usize> {
    let id = identity(element, key)?;
    list.iter()
        .position(|e| identity(e, key).is_some_and(|other| scalar_eq(other, id)))
}

/// Checks that the patch list's items appear in `$setElementOrder` in the same relative
/// order (upstream's validatePatchWithSetOrderList); deletions are not checked.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), PatchError> {
    for element in order {
        required_identity(element, key)?;
    }
    let items: Vec<&Value> = patch
        .iter()
        .filter(|e| !e.as_object().is_some_and(|m| m.contains_key(PATCH)))
        .collect();
    if order.is_empty() || items.is_empty() {
        return Ok(());
    }
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if scalar_eq(required_identity(items[p], key)?, required_identity(&order[o], key)?) {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(PatchError::BadStrategicMergePatch(format!(
            "the order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}",
            Value::Array(patch.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

/// Puts a merged list in the order of `$setElementOrder` (upstream's normalizeElementOrder):
/// listed elements in the listed order, and the others (elements only the server has) slotted
/// in by their position in the original list, so they stay next to their old neighbours.
fn order_elements(merged: Vec<Value>, order: &[Value], server_order: &[Value], key: Option<&str>) -> Vec<Value> {
    let (mut listed, server_only): (Vec<_>, Vec<_>) = merged
        .into_iter()
        .map(|e| (position(order, &e, key), e))
        .partition(|(pos, _)| pos.is_some());
    listed.sort_by_key(|(pos, _)| *pos);
    let mut server_only: Vec<(Option<usize>, Value)> = server_only
        .into_iter()
        .map(|(_, e)| (position(server_order, &e, key), e))
        .collect();
    server_only.sort_by_key(|(pos, _)| pos.unwrap_or(usize::MAX));
    let listed: Vec<(Option<usize>, Value)> = listed
        .into_iter()
        .map(|(_, e)| (position(server_order, &e, key), e))
        .collect();
    interleave(server_only, listed)
}

/// Merges server-only elements into the ordered listed elements (upstream's
/// mergeSortedSlice): a server-only element goes first only when both elements were in the
/// original list and it came first there; otherwise the listed element goes first.
fn interleave(server_only: Vec<(Option<usize>, Value)>, listed: Vec<(Option<usize>, Value)>) -> Vec<Value> {
    let mut out = Vec::with_capacity(server_only.len() + listed.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = listed.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((l, _)), Some((r, _))) => matches!((l, r), (Some(l), Some(r)) if l < r),
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next.map(|(_, e)| e));
    }
    out
}

/// Whether `element` is an object whose `key` equals `value`.
fn has_key_value(element: &Value, key: &str, value: &Value) -> bool {
    element
        .as_object()
        .and_then(|m| m.get(key))
        .is_some_and(|v| scalar_eq(v, value))
}

/// Equality of merge keys and set members. Numbers compare by value, since `80` and `80.0`
/// are the same port (Go decodes both to float64).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn bad_format(message: &str) -> PatchError {
    PatchError::BadStrategicMergePatch(message.to_string())
}

fn bad_patch_type(directive: &Value, map: &Object) -> PatchError {
    let directive = directive.as_str().map_or_else(|| directive.to_string(), str::to_string);
    PatchError::BadStrategicMergePatch(format!(
        "unknown patch type: {directive} in map: {}",
        Value::Object(map.clone())
    ))
}

fn no_merge_key(map: &Object, key: &str) -> PatchError {
    PatchError::BadStrategicMergePatch(format!(
        "map: {} does not contain declared merge key: {key}",
        Value::Object(map.clone())
    ))
}
