//! Small HTTP helpers shared by the handlers: JSON responses, content negotiation and the query
//! parameters that kubectl and the client libraries send.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// Writes a JSON value with the given status.
pub fn json_response(code: StatusCode, value: &Value) -> Response {
    bytes_response(code, "application/json", serde_json::to_vec(value).unwrap_or_default())
}

pub fn bytes_response(code: StatusCode, content_type: &str, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = code;
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}

/// Adds `Warning: 299 - "..."` headers, which kubectl prints as `Warning: ...`.
pub fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

/// The media types a request accepts, split on commas.
fn accept_entries(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect()
}

/// Whether the client asks for a `meta.k8s.io/v1` Table (kubectl get does).
pub fn wants_table(headers: &HeaderMap) -> bool {
    accept_entries(headers).iter().any(|entry| {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        params.contains(&"as=table") && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1")
    })
}

/// Which aggregated discovery version, if any, the client accepts (`v2` preferred).
pub fn aggregated_discovery_version(headers: &HeaderMap) -> Option<&'static str> {
    let entries = accept_entries(headers);
    let wants = |version: &str| {
        entries.iter().any(|entry| {
            let params: Vec<&str> = entry.split(';').map(str::trim).collect();
            params.contains(&"as=apigroupdiscoverylist")
                && params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&format!("v={version}").as_str())
        })
    };
    if wants("v2") {
        Some("v2")
    } else {
        None
    }
}

/// Whether the Accept header asks for protobuf before JSON (used for OpenAPI v2).
pub fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    accept_entries(headers)
        .iter()
        .any(|entry| entry.split(';').next().map(str::trim) == Some(media_type))
}

/// The request's media type without parameters; a missing Content-Type means JSON (the Python
/// client posts without one).
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "application/json".to_string())
}

/// Parsed query parameters.
#[derive(Debug, Default, Clone)]
pub struct Query {
    params: HashMap<String, String>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut params = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode_component(key), decode_component(value));
        }
        Query { params }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "True" | "1"))
    }

    pub fn is_watch(&self) -> bool {
        self.flag("watch")
    }

    pub fn dry_run(&self) -> bool {
        self.get("dryRun") == Some("All")
    }
}

/// Percent-decoding for query components (`+` is a space, as in form encoding).
pub fn decode_component(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_selectors() {
        let q = Query::parse(Some("labelSelector=app%3Dweb%2Ctier+in+%28a%29&watch=true&dryRun=All"));
        assert_eq!(q.get("labelSelector"), Some("app=web,tier in (a)"));
        assert!(q.is_watch());
        assert!(q.dry_run());
        assert_eq!(decode_component("a%2"), "a%2");
    }

    #[test]
    fn table_accept_is_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
                .parse()
                .unwrap(),
        );
        assert!(wants_table(&headers));
        headers.insert(header::ACCEPT, "application/json".parse().unwrap());
        assert!(!wants_table(&headers));
    }
}
