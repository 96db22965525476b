//! Watch over HTTP: newline-delimited JSON events, flushed one by one, replayed from a
//! resourceVersion or started with synthetic ADDED events, filtered by selectors (an object that
//! leaves the selection is reported DELETED, one that enters it ADDED), with bookmarks, timeouts,
//! 410 Expired as an ERROR event, and one-row Tables when the client asked for a Table.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::time::Instant;

use svcnet_core::resources::ResourceInfo;
use svcnet_store::{EventType, WatchStream};

use crate::objects::{self, prefix};
use crate::registry::{Registry, Selection};
use crate::status::ApiError;
use crate::tables::{self, IncludeObject};

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// Upper bound of a watch without timeoutSeconds (upstream picks 30-60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// What the client asked of a watch.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    pub namespace: Option<String>,
    pub selection: Selection,
    pub resource_version: Option<String>,
    pub timeout: Option<Duration>,
    pub bookmarks: bool,
    pub send_initial_events: bool,
    pub table: Option<IncludeObject>,
}

/// One event ready to be written.
struct Pending {
    kind: &'static str,
    object: Value,
}

struct WatchState {
    resource: &'static ResourceInfo,
    request: WatchRequest,
    initial: std::collections::VecDeque<Pending>,
    stream: Option<WatchStream>,
    deadline: Instant,
    last_revision: u64,
    columns_sent: bool,
    done: bool,
}

/// Starts a watch and returns the streaming response.
pub async fn watch(
    registry: &Registry,
    resource: &'static ResourceInfo,
    request: WatchRequest,
) -> Result<Response, ApiError> {
    let namespace = request.namespace.clone();
    let mut initial = std::collections::VecDeque::new();
    let start = match request.resource_version.as_deref() {
        None | Some("") | Some("0") => {
            let (items, revision) = registry
                .list(resource, namespace.as_deref(), &request.selection)
                .await?;
            initial.extend(items.into_iter().map(|object| Pending { kind: "ADDED", object }));
            if request.send_initial_events {
                initial.push_back(Pending {
                    kind: "BOOKMARK",
                    object: initial_events_end(resource, revision),
                });
            }
            revision
        }
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version: {raw}")))?,
    };
    let mut done = false;
    let stream = match registry.store.watch(&prefix(resource, namespace.as_deref()), start) {
        Ok(stream) => Some(stream),
        Err(err) => {
            // Upstream answers 200 and sends the 410 as the stream's only event.
            let status = ApiError::from(err).to_status();
            initial.push_back(Pending {
                kind: "ERROR",
                object: status,
            });
            done = true;
            None
        }
    };
    let timeout = request.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let state = WatchState {
        resource,
        request,
        initial,
        stream,
        deadline: Instant::now() + timeout,
        last_revision: start,
        columns_sent: false,
        done,
    };
    let body = futures::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<Bytes, std::convert::Infallible>(chunk), state))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        "application/json".parse().expect("static"),
    );
    Ok(response)
}

fn initial_events_end(resource: &ResourceInfo, revision: u64) -> Value {
    json!({
        "kind": resource.kind,
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": revision.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}},
    })
}

/// The event line of an unfiltered JSON watch, built from the stored bytes without decoding
/// them, once per change and shared by every watcher (an empty line marks bytes that could not
/// be spliced, which then take the decoding path).
fn raw_line(event: &svcnet_store::Event) -> Option<Bytes> {
    let line = event
        .rendered
        .get_or_init(|| encode_raw_line(event).map(Bytes::from).unwrap_or_default());
    (!line.is_empty()).then(|| line.clone())
}

fn encode_raw_line(event: &svcnet_store::Event) -> Option<Vec<u8>> {
    let kind = match event.kind {
        EventType::Delete => "DELETED",
        EventType::Put if event.created => "ADDED",
        EventType::Put => "MODIFIED",
    };
    let object = objects::splice_resource_version(&event.kv.value, event.revision())?;
    let mut line = Vec::with_capacity(object.len() + 32);
    line.extend_from_slice(b"{\"type\":\"");
    line.extend_from_slice(kind.as_bytes());
    line.extend_from_slice(b"\",\"object\":");
    line.extend_from_slice(&object);
    line.extend_from_slice(b"}\n");
    Some(line)
}

/// Bytes gathered into one chunk at most: events already waiting go out in one write instead
/// of one each, which keeps a busy watch from paying a system call per event.
const MAX_CHUNK: usize = 256 * 1024;

impl WatchState {
    /// The next line, followed by every line that is ready without waiting.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let first = self.next_line().await?;
        if !self.initial.is_empty() || self.done {
            return Some(first);
        }
        let mut chunk: Option<Vec<u8>> = None;
        while chunk.as_ref().map_or(first.len(), Vec::len) < MAX_CHUNK {
            let Some(line) = self.ready_line() else { break };
            chunk.get_or_insert_with(|| first.to_vec()).extend_from_slice(&line);
        }
        Some(chunk.map(Bytes::from).unwrap_or(first))
    }

    /// A line for an event that has already arrived, if any.
    fn ready_line(&mut self) -> Option<Bytes> {
        loop {
            let event = self.stream.as_mut()?.try_next()?;
            self.last_revision = event.revision();
            if self.request.table.is_none() && self.request.selection.is_everything() {
                if let Some(line) = raw_line(&event) {
                    return Some(line);
                }
            }
            if let Some(pending) = self.classify(&event) {
                return Some(self.encode(pending));
            }
        }
    }

    /// The next line of the stream, or None when it ends.
    async fn next_line(&mut self) -> Option<Bytes> {
        if let Some(pending) = self.initial.pop_front() {
            return Some(self.encode(pending));
        }
        if self.done {
            return None;
        }
        loop {
            let stream = self.stream.as_mut()?;
            let bookmark_at = Instant::now() + BOOKMARK_INTERVAL;
            let wake = if self.request.bookmarks {
                bookmark_at.min(self.deadline)
            } else {
                self.deadline
            };
            let event = tokio::select! {
                event = stream.next() => event,
                _ = tokio::time::sleep_until(wake) => {
                    if Instant::now() >= self.deadline {
                        return None;
                    }
                    let bookmark = json!({"kind": self.resource.kind, "apiVersion": self.resource.api_version(), "metadata": {"resourceVersion": self.last_revision.to_string()}});
                    return Some(self.encode(Pending { kind: "BOOKMARK", object: bookmark }));
                }
            };
            let event = event?;
            self.last_revision = event.revision();
            if self.request.table.is_none() && self.request.selection.is_everything() {
                if let Some(line) = raw_line(&event) {
                    return Some(line);
                }
            }
            if let Some(pending) = self.classify(&event) {
                return Some(self.encode(pending));
            }
        }
    }

    /// Turns a store event into the watch event this client should see, if any.
    fn classify(&self, event: &svcnet_store::Event) -> Option<Pending> {
        let kind = self.resource.kind;
        let selection = &self.request.selection;
        let object = objects::from_bytes(&event.kv.value, event.revision());
        let now_matches = selection.matches(kind, &object);
        let before_matched = match &event.prev_value {
            Some(prev) => selection.matches(kind, &objects::from_bytes(prev, 0)),
            // Replayed from the log: assume membership did not change.
            None => now_matches,
        };
        let kind = match event.kind {
            EventType::Delete if before_matched => "DELETED",
            EventType::Delete => return None,
            EventType::Put if event.created => {
                if !now_matches {
                    return None;
                }
                "ADDED"
            }
            EventType::Put => match (before_matched, now_matches) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return None,
            },
        };
        Some(Pending { kind, object })
    }

    fn encode(&mut self, pending: Pending) -> Bytes {
        let object = match (self.request.table, pending.kind) {
            (Some(include), "ADDED" | "MODIFIED" | "DELETED") => {
                let revision = objects::resource_version(&pending.object)
                    .and_then(|rv| rv.parse().ok())
                    .unwrap_or(0);
                let with_columns = !self.columns_sent;
                self.columns_sent = true;
                tables::table(
                    self.resource,
                    std::slice::from_ref(&pending.object),
                    revision,
                    include,
                    with_columns,
                )
            }
            _ => pending.object,
        };
        let mut line = serde_json::to_vec(&json!({"type": pending.kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }
}
