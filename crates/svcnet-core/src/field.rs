//! Field-level validation errors with the semantics of k8s.io/apimachinery/pkg/util/validation/field.
//!
//! An error carries its kind, the field path (`spec.ports[0].nodePort`, `metadata.annotations[key]`),
//! the offending value already rendered the way upstream's `ErrorBody` prints it (strings quoted as
//! Go's `%q`, integers bare, composite values in Go's `%#v` syntax as the v1.33 API server does), and a
//! detail. The API server maps one error onto one `StatusCause`
//! `{reason: kind.reason(), message: body(), field}`; kubectl prints `field: body`.

use std::fmt;

/// The kinds of field error (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
}

impl FieldErrorKind {
    /// The `StatusCause.reason` value (`metav1.CauseType`).
    pub fn reason(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "FieldValueNotFound",
            FieldErrorKind::Required => "FieldValueRequired",
            FieldErrorKind::Duplicate => "FieldValueDuplicate",
            FieldErrorKind::Invalid => "FieldValueInvalid",
            FieldErrorKind::NotSupported => "FieldValueNotSupported",
            FieldErrorKind::Forbidden => "FieldValueForbidden",
            FieldErrorKind::TooLong => "FieldValueTooLong",
            FieldErrorKind::TooMany => "FieldValueTooMany",
            FieldErrorKind::Internal => "InternalError",
        }
    }

    /// The canonical text that starts the message (`ErrorType.String()`).
    pub fn label(self) -> &'static str {
        match self {
            FieldErrorKind::NotFound => "Not found",
            FieldErrorKind::Required => "Required value",
            FieldErrorKind::Duplicate => "Duplicate value",
            FieldErrorKind::Invalid => "Invalid value",
            FieldErrorKind::NotSupported => "Unsupported value",
            FieldErrorKind::Forbidden => "Forbidden",
            FieldErrorKind::TooLong => "Too long",
            FieldErrorKind::TooMany => "Too many",
            FieldErrorKind::Internal => "Internal error",
        }
    }

    /// Kinds whose message never shows the value.
    fn omits_value(self) -> bool {
        matches!(
            self,
            FieldErrorKind::Required | FieldErrorKind::Forbidden | FieldErrorKind::TooLong | FieldErrorKind::Internal
        )
    }
}

/// A bad value as upstream's `ErrorBody` would print it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GoValue {
    /// A string (or a named string type): `%q`.
    Str(String),
    /// Any integer: bare digits.
    Int(i64),
    Bool(bool),
    /// A nil pointer or nil interface: `null`.
    Null,
    /// A slice of a string type, as `%#v` prints it: `[]string{"a", "b"}`, `[]string(nil)` when nil.
    /// The first field is the Go element type (`string`, `core.IPFamily`).
    StringSlice(&'static str, Option<Vec<String>>),
    /// Text already in its final form (`%#v` of a struct, for instance).
    Raw(String),
    /// No value at all (upstream's `omitValue`): the message shows only the kind.
    Omit,
}

impl GoValue {
    /// The value as it appears in the message.
    pub fn render(&self) -> String {
        match self {
            GoValue::Str(s) => go_quote(s),
            GoValue::Int(n) => n.to_string(),
            GoValue::Bool(b) => b.to_string(),
            GoValue::Null => "null".to_string(),
            GoValue::StringSlice(ty, None) => format!("[]{ty}(nil)"),
            GoValue::StringSlice(ty, Some(items)) => {
                let items: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
                format!("[]{ty}{{{}}}", items.join(", "))
            }
            GoValue::Raw(s) => s.clone(),
            GoValue::Omit => String::new(),
        }
    }
}

impl From<&str> for GoValue {
    fn from(s: &str) -> Self {
        GoValue::Str(s.to_string())
    }
}

impl From<String> for GoValue {
    fn from(s: String) -> Self {
        GoValue::Str(s)
    }
}

impl From<&String> for GoValue {
    fn from(s: &String) -> Self {
        GoValue::Str(s.clone())
    }
}

impl From<Option<&str>> for GoValue {
    /// A `*string`-like pointer: nil prints as `null`.
    fn from(s: Option<&str>) -> Self {
        s.map_or(GoValue::Null, GoValue::from)
    }
}

impl From<bool> for GoValue {
    fn from(b: bool) -> Self {
        GoValue::Bool(b)
    }
}

macro_rules! go_value_from_int {
    ($($t:ty),*) => {
        $(impl From<$t> for GoValue {
            fn from(n: $t) -> Self {
                GoValue::Int(n as i64)
            }
        })*
    };
}
go_value_from_int!(i8, i16, i32, i64, u8, u16, u32, usize);

/// A field path as upstream's `field.Path` renders it: children joined by dots, list indexes and
/// map keys in brackets (keys are not quoted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FieldPath> for String {
    fn from(p: FieldPath) -> String {
        p.0
    }
}

impl From<&FieldPath> for String {
    fn from(p: &FieldPath) -> String {
        p.0.clone()
    }
}

/// One field-level validation error, shaped like upstream `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub kind: FieldErrorKind,
    pub field: String,
    /// The offending value already rendered as `ErrorBody` prints it; empty when there is none.
    pub bad_value: String,
    pub detail: String,
}

impl FieldError {
    fn new(kind: FieldErrorKind, field: impl Into<String>, value: GoValue, detail: impl Into<String>) -> Self {
        FieldError {
            kind,
            field: field.into(),
            bad_value: value.render(),
            detail: detail.into(),
        }
    }

    /// `field.NotFound`.
    pub fn not_found(field: impl Into<String>, value: impl Into<GoValue>) -> Self {
        Self::new(FieldErrorKind::NotFound, field, value.into(), "")
    }

    /// `field.Required`: "Required value", plus the detail if any.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, GoValue::Omit, detail)
    }

    /// `field.Duplicate`: "Duplicate value: <value>".
    pub fn duplicate(field: impl Into<String>, value: impl Into<GoValue>) -> Self {
        Self::new(FieldErrorKind::Duplicate, field, value.into(), "")
    }

    /// `field.Invalid`: "Invalid value: <value>: <detail>".
    pub fn invalid(field: impl Into<String>, value: impl Into<GoValue>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Invalid, field, value.into(), detail)
    }

    /// `field.NotSupported`: "Unsupported value: <value>: supported values: "A", "B"" (the
    /// supported values in the order given; upstream usually passes them sorted).
    pub fn not_supported(field: impl Into<String>, value: impl Into<GoValue>, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(FieldErrorKind::NotSupported, field, value.into(), detail)
    }

    /// `field.Forbidden`: "Forbidden: <detail>".
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, GoValue::Omit, detail)
    }

    /// `field.TooLong` with a byte limit ("Too long: may not be more than N bytes").
    pub fn too_long(field: impl Into<String>, max_bytes: Option<usize>) -> Self {
        let detail = match max_bytes {
            Some(1) => "may not be more than 1 byte".to_string(),
            Some(n) => format!("may not be more than {n} bytes"),
            None => "value is too long".to_string(),
        };
        Self::new(FieldErrorKind::TooLong, field, GoValue::Omit, detail)
    }

    /// `field.TooMany`: "Too many: <actual>: must have at most N items".
    pub fn too_many(field: impl Into<String>, actual: Option<usize>, max: Option<usize>) -> Self {
        let detail = match max {
            Some(n) => format!("must have at most {n} items"),
            None => "has too many items".to_string(),
        };
        let value = actual.map_or(GoValue::Omit, GoValue::from);
        Self::new(FieldErrorKind::TooMany, field, value, detail)
    }

    /// `field.InternalError`: "Internal error: <detail>".
    pub fn internal(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Internal, field, GoValue::Omit, detail)
    }

    /// The message without the field name (upstream `ErrorBody`).
    pub fn body(&self) -> String {
        let mut s = self.kind.label().to_string();
        if !self.kind.omits_value() && !self.bad_value.is_empty() {
            s.push_str(": ");
            s.push_str(&self.bad_value);
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

/// A field error used as a `StatusCause.message` is its body.
impl From<FieldError> for String {
    fn from(e: FieldError) -> String {
        e.body()
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

impl std::error::Error for FieldError {}

/// Joins errors like `ErrorList.ToAggregate().Error()`: identical messages once, a single error
/// bare, several in brackets; `None` when there are none. This is the text after
/// `The Service "x" is invalid: ` in a Status message.
pub fn aggregate_message(errs: &[FieldError]) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    for e in errs {
        let msg = e.to_string();
        if !seen.contains(&msg) {
            seen.push(msg);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

/// Quotes a string the way Go's `%q` / `strconv.Quote` does for the characters that matter
/// in API input: backslash escapes for quotes, backslashes and control characters.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_match_upstream() {
        let p = FieldPath::new("spec").child("ports").index(0);
        let e = FieldError::invalid(p.child("port"), 0, "must be between 1 and 65535, inclusive");
        assert_eq!(
            e.to_string(),
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        );
        assert_eq!(e.kind.reason(), "FieldValueInvalid");

        let e = FieldError::required("spec.ports", "");
        assert_eq!(e.body(), "Required value");
        assert_eq!(e.kind.reason(), "FieldValueRequired");
        let e = FieldError::required("spec.sessionAffinityConfig", "when session affinity type is ClientIP");
        assert_eq!(e.body(), "Required value: when session affinity type is ClientIP");

        let e = FieldError::forbidden("spec.clusterIPs", "may not be set for ExternalName services");
        assert_eq!(e.body(), "Forbidden: may not be set for ExternalName services");
        assert_eq!(e.kind.reason(), "FieldValueForbidden");

        let e = FieldError::duplicate("spec.ports[1].name", "http");
        assert_eq!(e.body(), "Duplicate value: \"http\"");
        assert_eq!(e.kind.reason(), "FieldValueDuplicate");

        let e = FieldError::not_supported("spec.type", "Foo", &["ClusterIP", "ExternalName"]);
        assert_eq!(
            e.body(),
            "Unsupported value: \"Foo\": supported values: \"ClusterIP\", \"ExternalName\""
        );
        assert_eq!(e.kind.reason(), "FieldValueNotSupported");

        let e = FieldError::too_long("metadata.annotations", Some(262144));
        assert_eq!(e.body(), "Too long: may not be more than 262144 bytes");
        assert_eq!(e.kind.reason(), "FieldValueTooLong");

        let e = FieldError::too_many("spec.externalIPs", Some(3), Some(2));
        assert_eq!(e.body(), "Too many: 3: must have at most 2 items");
        assert_eq!(e.kind.reason(), "FieldValueTooMany");
        assert_eq!(
            FieldError::too_many("x", None, None).body(),
            "Too many: has too many items"
        );

        let e = FieldError::internal("spec.clusterIPs", "boom");
        assert_eq!(e.body(), "Internal error: boom");
        assert_eq!(e.kind.reason(), "InternalError");

        let e = FieldError::invalid("spec.loadBalancerClass", None::<&str>, "may not change once set");
        assert_eq!(e.body(), "Invalid value: null: may not change once set");

        let e = FieldError::invalid(
            "spec.clusterIPs",
            GoValue::StringSlice("string", Some(vec!["10.0.0.1".into(), "10.0.0.2".into()])),
            "may specify no more than one IP for each IP family",
        );
        assert_eq!(
            e.body(),
            "Invalid value: []string{\"10.0.0.1\", \"10.0.0.2\"}: may specify no more than one IP for each IP family"
        );
        assert_eq!(GoValue::StringSlice("string", None).render(), "[]string(nil)");
        assert_eq!(
            GoValue::StringSlice("core.IPFamily", Some(vec![])).render(),
            "[]core.IPFamily{}"
        );
    }

    #[test]
    fn paths() {
        let p = FieldPath::new("metadata").child("annotations").key("a.b/c");
        assert_eq!(p.as_str(), "metadata.annotations[a.b/c]");
        assert_eq!(FieldPath::default().child("x").index(2).as_str(), "x[2]");
    }

    #[test]
    fn aggregate() {
        let a = FieldError::required("spec.ports", "");
        let b = FieldError::forbidden("spec.x", "no");
        assert_eq!(aggregate_message(&[]), None);
        assert_eq!(
            aggregate_message(&[a.clone(), a.clone()]).unwrap(),
            "spec.ports: Required value"
        );
        assert_eq!(
            aggregate_message(&[a.clone(), b, a]).unwrap(),
            "[spec.ports: Required value, spec.x: Forbidden: no]"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
    }
}
