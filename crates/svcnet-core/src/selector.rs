//! Label and field selectors with the semantics of k8s.io/apimachinery (`labels`, `fields`),
//! plus the metadata validation helpers whose messages kubectl prints verbatim.
//!
//! Error strings are worded exactly as the upstream API server words them, because clients
//! (kubectl, client libraries, conformance-style tests) show or compare them as text.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// A selector that failed to parse or is not usable for a kind; the message is the text
/// the API server returns in the `BadRequest` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(pub String);

// ---------------------------------------------------------------------------------------
// Field errors (k8s.io/apimachinery/pkg/util/validation/field), shared with other validators
// ---------------------------------------------------------------------------------------

use crate::field::go_quote;
pub use crate::field::{FieldError, FieldErrorKind};

/// Renders a string slice the way Go's `%#v` prints a `[]string`, which is how
/// `NewRequirement` reports a bad value set.
fn go_string_slice(values: Option<&[String]>) -> String {
    match values {
        None => "[]string(nil)".to_string(),
        Some(v) => {
            let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
            format!("[]string{{{}}}", items.join(", "))
        }
    }
}

/// Joins errors like `utilerrors.NewAggregate(..).Error()`: duplicates dropped, a single
/// error bare, several in brackets.
fn aggregate(errs: Vec<String>) -> Option<String> {
    let mut seen = Vec::new();
    for e in errs {
        if !seen.contains(&e) {
            seen.push(e);
        }
    }
    match seen.len() {
        0 => None,
        1 => seen.pop(),
        _ => Some(format!("[{}]", seen.join(", "))),
    }
}

// ---------------------------------------------------------------------------------------
// Name and label validation (k8s.io/apimachinery/pkg/util/validation)
// ---------------------------------------------------------------------------------------

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Maximum total size of keys plus values of `metadata.annotations`.
pub const TOTAL_ANNOTATION_SIZE_LIMIT_BYTES: usize = 256 * 1024;

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

/// Upstream `RegexError`; note its odd "',  or '" spacing, which kubectl users see.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut s = format!("{msg} (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            s.push_str(" or ");
        }
        s.push_str(&format!("'{e}', "));
    }
    s.push_str(&format!("regex used for validation is '{fmt}')"));
    s
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` without a regex engine.
fn matches_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty() && edge(b[0]) && edge(b[b.len() - 1]) && b.iter().all(|&c| edge(c) || c == b'-')
}

/// The subdomain regex is dot-separated labels (each label unbounded in length).
fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the qualified-name part of label keys.
fn matches_qualified_name(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && edge(b[0])
        && edge(b[b.len() - 1])
        && b.iter().all(|&c| edge(c) || c == b'-' || c == b'_' || c == b'.')
}

/// Upstream `IsDNS1123Label`.
pub fn is_dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_dns1123_label(s) {
        if matches_dns1123_subdomain(s) {
            // A valid subdomain that is not a label can only be failing on dots.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Upstream `IsDNS1123Subdomain` (object names of most kinds).
pub fn is_dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_dns1123_subdomain(s) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Upstream `IsDNS1035Label` (Service names).
pub fn is_dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push(max_len_error(63));
    }
    let starts_alpha = s.as_bytes().first().is_some_and(|c| c.is_ascii_lowercase());
    if !(starts_alpha && matches_dns1123_label(s)) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Upstream `IsQualifiedName`: the format of label keys, annotation keys and finalizers.
pub fn validate_label_key(k: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = k.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                let msgs = is_dns1123_subdomain(prefix);
                errs.extend(msgs.into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            // Wording of the v1.33 API server ("a qualified name ..."); more than one '/'
            // cannot be split into prefix and name, so nothing else is checked.
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_qualified_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Upstream `IsValidLabelValue`.
pub fn validate_label_value(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !(v.is_empty() || matches_qualified_name(v)) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Renders a JSON map value as the string Go would hold; labels and annotations are
/// `map[string]string`, so anything else is shown as its JSON text.
fn map_value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Upstream `ValidateLabels` for `metadata.labels`.
pub fn validate_labels(labels: &Map<String, Value>) -> Vec<FieldError> {
    validate_labels_at(labels, "metadata.labels")
}

/// `ValidateLabels` for labels found elsewhere (e.g. `spec.template.metadata.labels`).
pub fn validate_labels_at(labels: &Map<String, Value>, field_path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (k, v) in labels {
        for msg in validate_label_key(k) {
            errs.push(FieldError::invalid(field_path, k, &msg));
        }
        let v = map_value_str(v);
        for msg in validate_label_value(&v) {
            errs.push(FieldError::invalid(field_path, &v, &msg));
        }
    }
    errs
}

/// Upstream `ValidateAnnotations` for `metadata.annotations`: keys are qualified names
/// compared case-insensitively, and keys plus values may total at most 256 KiB.
pub fn validate_annotations(annotations: &Map<String, Value>) -> Vec<FieldError> {
    validate_annotations_at(annotations, "metadata.annotations")
}

/// `ValidateAnnotations` for annotations found elsewhere.
pub fn validate_annotations_at(annotations: &Map<String, Value>, field_path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut total = 0usize;
    for (k, v) in annotations {
        for msg in validate_label_key(&k.to_lowercase()) {
            errs.push(FieldError::invalid(field_path, k, &msg));
        }
        total += k.len() + map_value_str(v).len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES {
        errs.push(FieldError {
            kind: FieldErrorKind::TooLong,
            field: field_path.to_string(),
            bad_value: go_quote(""),
            detail: format!("may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes"),
        });
    }
    errs
}

// ---------------------------------------------------------------------------------------
// Label selectors (k8s.io/apimachinery/pkg/labels)
// ---------------------------------------------------------------------------------------

/// A label selector operator (`selection.Operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One `key op values` term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// The field path a requirement error is reported under. Parsing from a string has no
/// path (Go prints a nil path as `<nil>`, and its children as bare names).
fn child_path(base: Option<&str>, name: &str) -> String {
    match base {
        None => name.to_string(),
        Some(b) => format!("{b}.{name}"),
    }
}

impl Requirement {
    /// Upstream `NewRequirement`: validates the key, the value count for the operator and
    /// every value, reporting all problems at once.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        Self::new_at(key, operator, Some(values), None)
    }

    /// `values` is `None` when the source had no value list at all (Go's nil slice),
    /// which only changes how an error prints the bad value.
    fn new_at(
        key: &str,
        operator: Operator,
        values: Option<Vec<String>>,
        path: Option<&str>,
    ) -> Result<Self, SelectorError> {
        let mut errs = Vec::new();
        if let Some(msg) = label_key_error(key) {
            let field = child_path(path, "key");
            errs.push(format!("{field}: Invalid value: {}: {msg}", go_quote(key)));
        }
        let value_path = child_path(path, "values");
        let vals = values.as_deref().unwrap_or(&[]);
        let shown = go_string_slice(values.as_deref());
        let count_error = match operator {
            Operator::In | Operator::NotIn if vals.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals if vals.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !vals.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if vals.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(msg) = count_error {
            errs.push(format!("{value_path}: Invalid value: {shown}: {msg}"));
        }
        if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
            for (i, v) in vals.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(format!(
                        "{value_path}[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                        go_quote(v)
                    ));
                }
            }
        }
        for (i, v) in vals.iter().enumerate() {
            let msgs = validate_label_value(v);
            if !msgs.is_empty() {
                errs.push(format!(
                    "{value_path}[{i}][{key}]: Invalid value: {}: {}",
                    go_quote(v),
                    msgs.join("; ")
                ));
            }
        }
        match aggregate(errs) {
            Some(e) => Err(SelectorError(e)),
            None => Ok(Requirement {
                key: key.to_string(),
                operator,
                values: vals.to_vec(),
            }),
        }
    }

    /// Upstream `Requirement.Matches`; `!=` and `notin` match objects lacking the label.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let value = labels.and_then(|l| l.get(&self.key)).and_then(Value::as_str);
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => value.is_some_and(has),
            Operator::NotIn | Operator::NotEquals => !value.is_some_and(has),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => self.compare(value),
        }
    }

    /// `gt`/`lt` compare integers; a missing or non-integer label never matches.
    fn compare(&self, value: Option<&str>) -> bool {
        let (Some(actual), [bound]) = (value.and_then(|v| v.parse::<i64>().ok()), &self.values[..]) else {
            return false;
        };
        let Ok(bound) = bound.parse::<i64>() else {
            return false;
        };
        match self.operator {
            Operator::GreaterThan => actual > bound,
            _ => actual < bound,
        }
    }
}

/// The key check of `NewRequirement` (the qualified-name rules), joined as upstream does.
fn label_key_error(key: &str) -> Option<String> {
    let errs = validate_label_key(key);
    (!errs.is_empty()).then(|| errs.join("; "))
}

impl fmt::Display for Requirement {
    /// Upstream `Requirement.String`; set values print sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.operator == Operator::DoesNotExist {
            f.write_str("!")?;
        }
        f.write_str(&self.key)?;
        let op = match self.operator {
            Operator::Equals => "=",
            Operator::DoubleEquals => "==",
            Operator::NotEquals => "!=",
            Operator::In => " in ",
            Operator::NotIn => " notin ",
            Operator::GreaterThan => ">",
            Operator::LessThan => "<",
            Operator::Exists | Operator::DoesNotExist => return Ok(()),
        };
        f.write_str(op)?;
        let mut values = self.values.clone();
        values.sort();
        let set = matches!(self.operator, Operator::In | Operator::NotIn);
        if set {
            f.write_str("(")?;
        }
        f.write_str(&values.join(","))?;
        if set {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A parsed label selector: the AND of its requirements. `nothing` is the selector of a
/// null `metav1.LabelSelector`, which matches no object at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object (the empty string).
    pub fn everything() -> Self {
        LabelSelector::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Parses the `labelSelector` query syntax (`k=v`, `k!=v`, `k in (a,b)`, `!k`, ...).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser::new(s);
        let mut requirements = parser.parse().map_err(SelectorError)?;
        // Upstream sorts by key so that the selector prints deterministically.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// Equality on every entry of a label map (a Service or RC `spec.selector`); an empty
    /// map selects everything, as upstream `SelectorFromSet` does.
    pub fn from_set(set: &Map<String, Value>) -> Self {
        let mut requirements: Vec<Requirement> = set
            .iter()
            .map(|(k, v)| Requirement {
                key: k.clone(),
                operator: Operator::Equals,
                values: vec![map_value_str(v)],
            })
            .collect();
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector {
            requirements,
            nothing: false,
        }
    }

    /// Whether all requirements hold for the given `metadata.labels`.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector does not restrict anything (matches every object).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for the selector of a null `metav1.LabelSelector`.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// The value a selector demands for `key` by equality (`k=v` or `k in (v)`), which lets
    /// a caller narrow a lookup before matching.
    pub fn requires_exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match (r.operator, r.values.as_slice()) {
            (Operator::Equals | Operator::DoubleEquals | Operator::In, [v]) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    /// Upstream `Selector.String`: requirements joined by ','; nothing prints as "".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

/// Converts a `metav1.LabelSelector` (`{matchLabels, matchExpressions}`) as upstream
/// `LabelSelectorAsSelector` does: null selects nothing, `{}` selects everything.
pub fn from_label_selector_json(sel: &Value) -> Result<LabelSelector, SelectorError> {
    let obj = match sel {
        Value::Null => return Ok(LabelSelector::nothing()),
        Value::Object(o) => o,
        other => {
            return Err(SelectorError(format!(
                "invalid label selector: expected an object, got {other}"
            )))
        }
    };
    let mut requirements = Vec::new();
    if let Some(Value::Object(labels)) = obj.get("matchLabels") {
        for (k, v) in labels {
            let value = map_value_str(v);
            requirements.push(Requirement::new_at(k, Operator::Equals, Some(vec![value]), None)?);
        }
    }
    if let Some(Value::Array(exprs)) = obj.get("matchExpressions") {
        for expr in exprs {
            requirements.push(expression_requirement(expr)?);
        }
    }
    // Stable, so that matchLabels keep precedence over expressions on equal keys.
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LabelSelector {
        requirements,
        nothing: false,
    })
}

/// One `matchExpressions` entry; only the four set-based operators are valid here.
fn expression_requirement(expr: &Value) -> Result<Requirement, SelectorError> {
    let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
    let op_text = expr.get("operator").and_then(Value::as_str).unwrap_or("");
    let operator = match op_text {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            return Err(SelectorError(format!(
                "{} is not a valid label selector operator",
                go_quote(other)
            )))
        }
    };
    let values = expr.get("values").and_then(Value::as_array).map(|vals| {
        vals.iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect()
    });
    Requirement::new_at(key, operator, values, None)
}

// --- the label selector lexer and parser, token for token as upstream -----------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Literal tokens; everything else scanned is an identifier.
fn literal_token(s: &str) -> Option<Token> {
    Some(match s {
        ")" => Token::ClosedPar,
        "," => Token::Comma,
        "!" => Token::DoesNotExist,
        "==" => Token::DoubleEquals,
        "=" => Token::Equals,
        ">" => Token::GreaterThan,
        "in" => Token::In,
        "<" => Token::LessThan,
        "!=" => Token::NotEquals,
        "notin" => Token::NotIn,
        "(" => Token::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_special_symbol(c: u8) -> bool {
    matches!(c, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Lexer<'_> {
    /// Returns 0 at the end of input, as upstream does (so a NUL byte also ends it).
    fn read(&mut self) -> u8 {
        match self.s.get(self.pos) {
            Some(&c) => {
                self.pos += 1;
                c
            }
            None => 0,
        }
    }

    fn unread(&mut self) {
        self.pos -= 1;
    }

    fn scan_id_or_keyword(&mut self) -> (Token, String) {
        let mut buf = Vec::new();
        loop {
            match self.read() {
                0 => break,
                c if is_special_symbol(c) || is_whitespace(c) => {
                    self.unread();
                    break;
                }
                c => buf.push(c),
            }
        }
        let s = String::from_utf8_lossy(&buf).into_owned();
        match literal_token(&s) {
            Some(t) => (t, s),
            None => (Token::Identifier, s),
        }
    }

    /// Longest run of special symbols that still forms a known operator.
    fn scan_special_symbol(&mut self) -> (Token, String) {
        let mut last: Option<(Token, String)> = None;
        let mut buf = Vec::new();
        loop {
            match self.read() {
                0 => break,
                c if is_special_symbol(c) => {
                    buf.push(c);
                    let s = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(t) = literal_token(&s) {
                        last = Some((t, s));
                    } else if last.is_some() {
                        self.unread();
                        break;
                    }
                }
                _ => {
                    self.unread();
                    break;
                }
            }
        }
        last.unwrap_or_else(|| {
            let found = String::from_utf8_lossy(&buf);
            (Token::Error, format!("error expected: keyword found '{found}'"))
        })
    }

    fn lex(&mut self) -> (Token, String) {
        let mut c = self.read();
        while is_whitespace(c) {
            c = self.read();
        }
        match c {
            0 => (Token::EndOfString, String::new()),
            c if is_special_symbol(c) => {
                self.unread();
                self.scan_special_symbol()
            }
            _ => {
                self.unread();
                self.scan_id_or_keyword()
            }
        }
    }
}

/// Whether `in`/`notin` are operators (after a key) or plain identifiers (as values).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    items: Vec<(Token, String)>,
    position: usize,
}

impl Parser {
    fn new(s: &str) -> Self {
        let mut lexer = Lexer {
            s: s.as_bytes(),
            pos: 0,
        };
        let mut items = Vec::new();
        loop {
            let item = lexer.lex();
            let end = item.0 == Token::EndOfString;
            items.push(item);
            if end {
                break;
            }
        }
        Parser { items, position: 0 }
    }

    fn lookahead(&self, ctx: Context) -> (Token, String) {
        let (tok, lit) = self
            .items
            .get(self.position)
            .cloned()
            .unwrap_or((Token::EndOfString, String::new()));
        (Self::in_context(tok, ctx), lit)
    }

    fn consume(&mut self, ctx: Context) -> (Token, String) {
        let item = self.lookahead(ctx);
        self.position += 1;
        item
    }

    fn in_context(tok: Token, ctx: Context) -> Token {
        match (ctx, tok) {
            (Context::Values, Token::In | Token::NotIn) => Token::Identifier,
            _ => tok,
        }
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Token::EndOfString => return Ok(requirements),
                        Token::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Token::Identifier && t2 != Token::DoesNotExist {
                                return Err(format!("found '{l2}', expected: identifier after ','"));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Token::EndOfString => return Ok(requirements),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new_at(&key, op, Some(Vec::new()), None).map_err(|e| e.0);
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new_at(&key, operator, Some(values.into_iter().collect()), None).map_err(|e| e.0)
    }

    /// A bare key means "exists"; a leading '!' means "does not exist".
    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Token::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        if let Some(msg) = label_key_error(&lit) {
            // The parser validates with a nil field path, which Go prints as "<nil>".
            return Err(format!("<nil>: Invalid value: {}: {msg}", go_quote(&lit)));
        }
        let (t, _) = self.lookahead(Context::Values);
        if matches!(t, Token::EndOfString | Token::Comma) && operator != Some(Operator::DoesNotExist) {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Token::In => Operator::In,
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::NotIn => Operator::NotIn,
            Token::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        })
    }

    /// `(a,b,c)`; empty entries stand for the empty value, as upstream allows.
    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Token::Identifier | Token::Comma => {
                let set = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(set)
            }
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut set = BTreeSet::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Token::Identifier => {
                    set.insert(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Token::Comma => continue,
                        Token::ClosedPar => return Ok(set),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Token::Comma => {
                    if set.is_empty() {
                        set.insert(String::new()); // "(," starts with an empty value
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Token::ClosedPar {
                        set.insert(String::new()); // ",)" ends with an empty value
                        return Ok(set);
                    }
                    if tok2 == Token::Comma {
                        self.consume(Context::Values);
                        set.insert(String::new()); // ",," holds an empty value
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<`; nothing at all means "".
    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if matches!(tok, Token::EndOfString | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Token::Identifier {
            return Ok(BTreeSet::from([lit]));
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

// ---------------------------------------------------------------------------------------
// Field selectors (k8s.io/apimachinery/pkg/fields)
// ---------------------------------------------------------------------------------------

/// A field selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    DoubleEquals,
    NotEquals,
}

/// One `field op value` term; the value is already unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector: the AND of its terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses the `fieldSelector` query syntax: `f=v`, `f==v`, `f!=v`, comma separated,
    /// with `\,`, `\=` and `\\` escapes in values. Whitespace is significant, as upstream.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        // Upstream sorts the terms, which decides which bad term an error names.
        parts.sort();
        let mut requirements = Vec::new();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, raw)) = split_term(part) else {
                return Err(SelectorError(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value demanded for `field` by equality, e.g. `metadata.name=foo` on a watch.
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// Checks every field against the kind's field label conversion, failing on the first
    /// unsupported one (in sorted order) with upstream's wording.
    pub fn validate_for(&self, kind: &str) -> Result<(), SelectorError> {
        for r in &self.requirements {
            check_field_supported(kind, &r.field)?;
        }
        Ok(())
    }

    /// Whether every term holds for `obj`; a field the object lacks compares as "".
    pub fn matches(&self, kind: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = selectable_field(kind, obj, canonical_field(kind, &r.field));
            match r.operator {
                FieldOperator::Equals | FieldOperator::DoubleEquals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = match r.operator {
                    FieldOperator::Equals => "=",
                    FieldOperator::DoubleEquals => "==",
                    FieldOperator::NotEquals => "!=",
                };
                format!("{}{op}{}", r.field, escape_value(&r.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Splits on commas that are not escaped by a backslash.
fn split_terms(s: &str) -> Vec<String> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(s[start..i].to_string());
            start = i + 1;
        }
    }
    terms.push(s[start..].to_string());
    terms
}

/// Splits at the first operator, trying `!=`, then `==`, then `=` at each position.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (text, op) in OPS {
            if let Some(value) = rest.strip_prefix(text) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(SelectorError(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(SelectorError(format!(
                    "invalid field selector: unescaped character in value: {}",
                    c as u32
                )))
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=")
}

/// The fields a kind's field label conversion accepts, for kinds that register one.
/// Kinds without one accept only object metadata (upstream's default conversion).
fn supported_fields(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
            "spec.host",
        ],
        "Node" => &["metadata.name", "spec.unschedulable"],
        "Namespace" => &["status.phase", "metadata.name"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        "Service" => &["metadata.namespace", "metadata.name", "spec.clusterIP", "spec.type"],
        "Secret" => &["type", "metadata.namespace", "metadata.name"],
        "ReplicationController" | "ReplicaSet" => &["metadata.name", "metadata.namespace", "status.replicas"],
        _ => return None,
    })
}

fn check_field_supported(kind: &str, field: &str) -> Result<(), SelectorError> {
    match supported_fields(kind) {
        Some(fields) if fields.contains(&field) => Ok(()),
        Some(_) => Err(SelectorError(format!("field label not supported: {field}"))),
        None if field == "metadata.name" || field == "metadata.namespace" => Ok(()),
        None => Err(SelectorError(format!(
            "{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            go_quote(field)
        ))),
    }
}

/// Old v1 clients select pods by `spec.host`, which upstream renames to `spec.nodeName`.
fn canonical_field<'a>(kind: &str, field: &'a str) -> &'a str {
    if kind == "Pod" && field == "spec.host" {
        "spec.nodeName"
    } else {
        field
    }
}

fn str_at<'a>(obj: &'a Value, path: &[&str]) -> &'a str {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return "",
        }
    }
    cur.as_str().unwrap_or("")
}

fn bool_at(obj: &Value, path: &[&str]) -> bool {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return false,
        }
    }
    cur.as_bool().unwrap_or(false)
}

fn int_at(obj: &Value, path: &[&str]) -> i64 {
    let mut cur = obj;
    for p in path {
        match cur.get(p) {
            Some(v) => cur = v,
            None => return 0,
        }
    }
    cur.as_i64().unwrap_or(0)
}

/// The value of a selectable field, as the kind's registry strategy exposes it (Go zero
/// values for absent booleans and numbers; "" for anything the kind does not expose).
fn selectable_field(kind: &str, obj: &Value, field: &str) -> String {
    match field {
        "metadata.name" => return str_at(obj, &["metadata", "name"]).to_string(),
        "metadata.namespace" => return str_at(obj, &["metadata", "namespace"]).to_string(),
        _ => {}
    }
    match kind {
        "Pod" => pod_field(obj, field),
        "Node" if field == "spec.unschedulable" => bool_at(obj, &["spec", "unschedulable"]).to_string(),
        "Namespace" if field == "status.phase" => str_at(obj, &["status", "phase"]).to_string(),
        "Event" => event_field(obj, field),
        "Service" => match field {
            "spec.clusterIP" => str_at(obj, &["spec", "clusterIP"]).to_string(),
            "spec.type" => str_at(obj, &["spec", "type"]).to_string(),
            _ => String::new(),
        },
        "Secret" if field == "type" => str_at(obj, &["type"]).to_string(),
        "ReplicationController" | "ReplicaSet" if field == "status.replicas" => {
            int_at(obj, &["status", "replicas"]).to_string()
        }
        _ => String::new(),
    }
}

fn pod_field(obj: &Value, field: &str) -> String {
    let s = |path: &[&str]| str_at(obj, path).to_string();
    match field {
        "spec.nodeName" => s(&["spec", "nodeName"]),
        "spec.restartPolicy" => s(&["spec", "restartPolicy"]),
        "spec.schedulerName" => s(&["spec", "schedulerName"]),
        "spec.serviceAccountName" => s(&["spec", "serviceAccountName"]),
        "spec.hostNetwork" => bool_at(obj, &["spec", "hostNetwork"]).to_string(),
        "status.phase" => s(&["status", "phase"]),
        "status.podIP" => pod_ip(obj).to_string(),
        "status.nominatedNodeName" => s(&["status", "nominatedNodeName"]),
        _ => String::new(),
    }
}

/// The primary pod IP: `status.podIPs[0].ip`, falling back to `status.podIP` as the v1 to
/// internal conversion does.
pub(crate) fn pod_ip(obj: &Value) -> &str {
    let first = obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str).unwrap_or("");
    if first.is_empty() {
        str_at(obj, &["status", "podIP"])
    } else {
        first
    }
}

fn event_field(obj: &Value, field: &str) -> String {
    let s = |path: &[&str]| str_at(obj, path).to_string();
    match field {
        "involvedObject.kind" => s(&["involvedObject", "kind"]),
        "involvedObject.namespace" => s(&["involvedObject", "namespace"]),
        "involvedObject.name" => s(&["involvedObject", "name"]),
        "involvedObject.uid" => s(&["involvedObject", "uid"]),
        "involvedObject.apiVersion" => s(&["involvedObject", "apiVersion"]),
        "involvedObject.resourceVersion" => s(&["involvedObject", "resourceVersion"]),
        "involvedObject.fieldPath" => s(&["involvedObject", "fieldPath"]),
        "reason" => s(&["reason"]),
        "reportingComponent" => s(&["reportingComponent"]),
        // Events from the events.k8s.io API carry only the reporting controller.
        "source" => match str_at(obj, &["source", "component"]) {
            "" => s(&["reportingComponent"]),
            c => c.to_string(),
        },
        "type" => s(&["type"]),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        LabelSelector::parse(s).unwrap_err().0
    }

    #[test]
    fn selector_equality_forms() {
        let l = labels(json!({"app": "web", "tier": "front"}));
        assert!(sel("app=web").matches(Some(&l)));
        assert!(sel("app==web").matches(Some(&l)));
        assert!(!sel("app=db").matches(Some(&l)));
        assert!(sel("app=web,tier=front").matches(Some(&l)));
        assert!(!sel("app=web,tier=back").matches(Some(&l)));
        assert!(sel(" app = web , tier = front ").matches(Some(&l)));
    }

    #[test]
    fn selector_not_equals_and_notin_match_missing_labels() {
        let l = labels(json!({"app": "web"}));
        assert!(sel("env!=prod").matches(Some(&l)));
        assert!(sel("env notin (prod,staging)").matches(Some(&l)));
        assert!(sel("env!=prod").matches(None));
        assert!(!sel("app!=web").matches(Some(&l)));
        assert!(!sel("app notin (web)").matches(Some(&l)));
    }

    #[test]
    fn selector_set_and_existence() {
        let l = labels(json!({"app": "web", "env": ""}));
        assert!(sel("app in (db,web)").matches(Some(&l)));
        assert!(!sel("app in (db)").matches(Some(&l)));
        assert!(sel("app").matches(Some(&l)));
        assert!(sel("env").matches(Some(&l)));
        assert!(!sel("!app").matches(Some(&l)));
        assert!(sel("!missing").matches(Some(&l)));
        assert!(!sel("missing").matches(None));
        // An empty value in a set matches an empty label value.
        assert!(sel("env in (,x)").matches(Some(&l)));
        assert!(sel("env=").matches(Some(&l)));
    }

    #[test]
    fn selector_in_and_notin_are_values_inside_parentheses() {
        let l = labels(json!({"x": "in"}));
        assert!(sel("x in (in,notin)").matches(Some(&l)));
        assert_eq!(sel("x in (notin,in)").to_string(), "x in (in,notin)");
    }

    #[test]
    fn selector_greater_and_less_than() {
        let l = labels(json!({"n": "5", "s": "abc"}));
        assert!(sel("n>3").matches(Some(&l)));
        assert!(!sel("n>5").matches(Some(&l)));
        assert!(sel("n<10").matches(Some(&l)));
        assert!(!sel("s>1").matches(Some(&l)));
        assert!(!sel("missing<1").matches(Some(&l)));
        assert_eq!(
            err("n>a"),
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    }

    #[test]
    fn selector_empty_and_display() {
        assert!(sel("").is_empty());
        assert!(sel("  ").matches(None));
        let s = sel("z=1,a in (c,b),!d,e,f!=g");
        assert!(!s.is_empty());
        assert_eq!(s.to_string(), "a in (b,c),!d,e,f!=g,z=1");
        assert_eq!(s.requirements().len(), 5);
        assert_eq!(sel("a=b,c in (d)").requires_exact_match("c"), Some("d"));
        assert_eq!(sel("a!=b").requires_exact_match("a"), None);
    }

    #[test]
    fn selector_syntax_errors_are_worded_like_upstream() {
        assert_eq!(
            err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(err("a=b,"), "found '', expected: identifier after ','");
        assert_eq!(err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(err(",a"), "found ',', expected: !, identifier, or 'end of string'");
        assert_eq!(err("a in b"), "unable to parse requirement: found 'b' expected: '('");
        assert_eq!(
            err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            err("a in (="),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(
            err("a=!"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert!(sel("a==").matches(Some(&labels(json!({"a": ""})))));
        assert_eq!(
            err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert_eq!(err("!a=b"), "found '=', expected: ',' or 'end of string'");
    }

    #[test]
    fn selector_key_and_value_errors_are_worded_like_upstream() {
        assert_eq!(
            err("-a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
        assert_eq!(
            err("a=-b"),
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        let both = err("a in (x-,y-)");
        assert!(
            both.starts_with("unable to parse requirement: [values[0][a]: Invalid value: \"x-\""),
            "{both}"
        );
        assert!(both.contains(", values[1][a]: Invalid value: \"y-\""), "{both}");
        assert!(both.ends_with(")]"), "{both}");
        let long = "v".repeat(64);
        assert!(err(&format!("a={long}")).contains(": must be no more than 63 characters"));
        assert!(LabelSelector::parse("example.com/app=x").is_ok());
        assert!(err("Example.com/app=x")
            .contains("<nil>: Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn label_selector_json_conversion() {
        let s = from_label_selector_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "edge"]},
                {"key": "legacy", "operator": "DoesNotExist"}
            ]
        }))
        .unwrap();
        assert_eq!(s.to_string(), "app=web,!legacy,tier in (edge,front)");
        assert!(s.matches(Some(&labels(json!({"app": "web", "tier": "edge"})))));
        assert!(!s.matches(Some(&labels(json!({"app": "web", "tier": "edge", "legacy": "1"})))));

        let everything = from_label_selector_json(&json!({})).unwrap();
        assert!(everything.is_empty() && everything.matches(None));
        let nothing = from_label_selector_json(&Value::Null).unwrap();
        assert!(nothing.is_nothing() && !nothing.is_empty() && !nothing.matches(None));
        assert_eq!(nothing.to_string(), "");

        let bad_op = from_label_selector_json(&json!({"matchExpressions": [{"key": "a", "operator": "Equals"}]}));
        assert_eq!(
            bad_op.unwrap_err().0,
            "\"Equals\" is not a valid label selector operator"
        );
        let no_values = from_label_selector_json(&json!({"matchExpressions": [{"key": "a", "operator": "In"}]}));
        assert_eq!(
            no_values.unwrap_err().0,
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"
        );
        let extra = from_label_selector_json(
            &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        );
        assert_eq!(
            extra.unwrap_err().0,
            "values: Invalid value: []string{\"x\"}: values set must be empty for exists and does not exist"
        );
        let bad_key = from_label_selector_json(&json!({"matchLabels": {"a/b/c": "x"}}));
        assert!(bad_key
            .unwrap_err()
            .0
            .starts_with("key: Invalid value: \"a/b/c\": a qualified name must consist of"));
    }

    #[test]
    fn selector_from_set() {
        let s = LabelSelector::from_set(&labels(json!({"b": "2", "a": "1"})));
        assert_eq!(s.to_string(), "a=1,b=2");
        assert!(s.matches(Some(&labels(json!({"a": "1", "b": "2", "c": "3"})))));
        assert!(!s.matches(Some(&labels(json!({"a": "1"})))));
        assert!(LabelSelector::from_set(&Map::new()).is_empty());
    }

    #[test]
    fn validation_messages_match_upstream() {
        assert!(is_dns1123_label("my-name").is_empty());
        assert_eq!(
            is_dns1123_label("My_Name"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
        assert_eq!(
            is_dns1123_subdomain("a..b"),
            vec!["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]
        );
        assert_eq!(
            is_dns1123_subdomain(&"a".repeat(254)),
            vec!["must be no more than 253 characters"]
        );
        assert!(is_dns1035_label("web-1").is_empty());
        assert_eq!(
            is_dns1035_label("1web"),
            vec!["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert_eq!(is_dns1035_label("").len(), 1);
    }

    #[test]
    fn label_key_and_value_rules() {
        assert!(validate_label_key("app").is_empty());
        assert!(validate_label_key("app.kubernetes.io/name").is_empty());
        assert_eq!(validate_label_key("/app"), vec!["prefix part must be non-empty"]);
        assert_eq!(
            validate_label_key("a/"),
            vec![
                "name part must be non-empty".to_string(),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string(),
            ]
        );
        assert_eq!(
            validate_label_key(&"k".repeat(64)),
            vec!["name part must be no more than 63 characters"]
        );
        assert_eq!(validate_label_key("a/b/c").len(), 1);
        assert!(validate_label_value("").is_empty());
        assert!(validate_label_value("v1.2_3-x").is_empty());
        assert_eq!(validate_label_value("a b").len(), 1);
        assert_eq!(
            validate_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn annotations_and_labels_validation() {
        let ok = labels(json!({"Example.com/Note": "anything at all, spaces too"}));
        assert!(validate_annotations(&ok).is_empty());
        let bad = labels(json!({"bad key": "x"}));
        let errs = validate_annotations(&bad);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind.reason(), "FieldValueInvalid");
        assert!(errs[0]
            .to_string()
            .starts_with("metadata.annotations: Invalid value: \"bad key\": name part must consist of"));

        let big = labels(json!({"a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES)}));
        let errs = validate_annotations(&big);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].kind.reason(), "FieldValueTooLong");
        assert_eq!(
            errs[0].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
        let just_fits = labels(json!({"a": "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT_BYTES - 1)}));
        assert!(validate_annotations_at(&just_fits, "spec.template.metadata.annotations").is_empty());

        let l = labels(json!({"app": "bad value"}));
        let errs = validate_labels(&l);
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .to_string()
            .starts_with("metadata.labels: Invalid value: \"bad value\": a valid label must be"));
        assert!(errs[0].body().starts_with("Invalid value: \"bad value\": "));
        assert_eq!(String::from(errs[0].clone()), errs[0].body());
    }

    #[test]
    fn go_quoting() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
        assert_eq!(go_quote("héllo"), "\"héllo\"");
    }

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn field_selector_parse_and_match() {
        let pod = json!({
            "metadata": {"name": "p1", "namespace": "default"},
            "spec": {"nodeName": "n1", "restartPolicy": "Always"},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}]}
        });
        assert!(fsel("metadata.name=p1").matches("Pod", &pod));
        assert!(fsel("metadata.name==p1,metadata.namespace=default").matches("Pod", &pod));
        assert!(!fsel("metadata.name!=p1").matches("Pod", &pod));
        assert!(fsel("status.phase!=Pending").matches("Pod", &pod));
        assert!(fsel("status.podIP=10.0.0.5").matches("Pod", &pod));
        assert!(fsel("spec.hostNetwork=false").matches("Pod", &pod));
        assert!(fsel("spec.host=n1").matches("Pod", &pod));
        assert!(fsel("").is_empty() && fsel("").matches("Pod", &pod));
        let unscheduled = json!({"metadata": {"name": "p2"}, "spec": {}});
        assert!(fsel("spec.nodeName=").matches("Pod", &unscheduled));
        assert!(!fsel("spec.nodeName=").matches("Pod", &pod));
        // Whitespace is part of the value, exactly as upstream treats it.
        assert!(!fsel("metadata.name= p1").matches("Pod", &pod));
        assert_eq!(
            fsel("metadata.name=p1").requires_exact_match("metadata.name"),
            Some("p1")
        );
    }

    #[test]
    fn field_selector_kind_specific_fields() {
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        assert!(fsel("spec.unschedulable=true").matches("Node", &node));
        assert!(fsel("spec.unschedulable!=false").matches("Node", &node));
        let ns = json!({"metadata": {"name": "kube-system"}, "status": {"phase": "Active"}});
        assert!(fsel("status.phase=Active").matches("Namespace", &ns));
        let ev = json!({
            "metadata": {"name": "e1", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p1", "uid": "u-1"},
            "reason": "Started", "type": "Normal", "reportingComponent": "kubelet",
        });
        assert!(fsel("involvedObject.kind=Pod,involvedObject.name=p1,involvedObject.uid=u-1").matches("Event", &ev));
        assert!(fsel("source=kubelet,reason=Started,type=Normal").matches("Event", &ev));
        let rs = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
        assert!(fsel("status.replicas=3").matches("ReplicaSet", &rs));
        assert!(fsel("status.replicas!=0").matches("ReplicaSet", &rs));
        let svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.9"}});
        assert!(fsel("spec.type=NodePort,spec.clusterIP=10.96.0.9").matches("Service", &svc));
    }

    #[test]
    fn field_selector_escapes_and_errors() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let s = fsel("metadata.name=a\\,b\\=c\\\\d");
        assert_eq!(s.requirements()[0].value, "a,b=c\\d");
        assert!(s.matches("Lease", &obj));
        assert_eq!(s.to_string(), "metadata.name=a\\,b\\=c\\\\d");
        assert_eq!(
            FieldSelector::parse("metadata.name").unwrap_err().0,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'"
        );
        assert_eq!(
            FieldSelector::parse("a=b,zzz").unwrap_err().0,
            "invalid selector: 'a=b,zzz'; can't understand 'zzz'"
        );
        assert_eq!(
            FieldSelector::parse("a=b\\x").unwrap_err().0,
            "invalid field selector: invalid escape sequence: \\x"
        );
        assert_eq!(
            FieldSelector::parse("a=b=c").unwrap_err().0,
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn field_selector_validation_per_kind() {
        assert!(fsel("spec.nodeName=n1,status.phase=Running")
            .validate_for("Pod")
            .is_ok());
        assert_eq!(
            fsel("spec.foo=x").validate_for("Pod").unwrap_err().0,
            "field label not supported: spec.foo"
        );
        assert!(fsel("spec.unschedulable=true").validate_for("Node").is_ok());
        assert_eq!(
            fsel("metadata.namespace=x").validate_for("Node").unwrap_err().0,
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            fsel("spec.nodeName=x").validate_for("Namespace").unwrap_err().0,
            "field label not supported: spec.nodeName"
        );
        assert!(fsel("involvedObject.name=x,reportingComponent=y")
            .validate_for("Event")
            .is_ok());
        assert!(fsel("status.replicas=1").validate_for("ReplicaSet").is_ok());
        assert!(fsel("metadata.name=a,metadata.namespace=b")
            .validate_for("Deployment")
            .is_ok());
        assert_eq!(
            fsel("spec.replicas=1").validate_for("Deployment").unwrap_err().0,
            "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        );
        // The first unsupported term in sorted order is the one reported.
        assert_eq!(
            fsel("z.b=1,a.b=1").validate_for("Pod").unwrap_err().0,
            "field label not supported: a.b"
        );
    }
}
