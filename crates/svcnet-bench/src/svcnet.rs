//! The svcnet side: runs `svcnet server` on a fresh data dir and drives it over HTTP/1.1 the way
//! kubectl and client-go do (POST, list GET, `?watch=true` streams of JSON lines).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde::Deserialize;

use crate::load::{self, Creator, Listed, Watched, Watchers};
use crate::options::ApiBenchOptions;
use crate::process::{self, Spawned};
use crate::report::TargetReport;
use crate::workload::{index_of, Timeline};

const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Runs the whole workload against a fresh svcnet server under `work`.
pub(crate) async fn run(opts: &ApiBenchOptions, work: &Path, bodies: Arc<[Bytes]>) -> anyhow::Result<TargetReport> {
    let binary = match &opts.svcnet_binary {
        Some(binary) => binary.clone(),
        None => std::env::current_exe().context("finding the svcnet executable")?,
    };
    let server_version = process::version_of(&binary).unwrap_or_else(|_| "svcnet".into());
    let data_dir = work.join("svcnet-data");
    let address = format!("127.0.0.1:{}", process::free_port()?);
    let mut command = Command::new(&binary);
    command
        .arg("server")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg(&address)
        .env("SVCNET_LOG", "info")
        .env(
            "SVCNET_NO_CONTROLLERS",
            if opts.with_controllers { "false" } else { "true" },
        );
    let mut server = Spawned::start("svcnet server", command, &work.join("svcnet.log"))?;
    let base = format!("http://{address}");
    let services = format!("{base}/api/v1/namespaces/default/services");
    let client = http_client()?;
    server
        .wait_ready(opts.phase_timeout().min(std::time::Duration::from_secs(60)), || {
            let request = client.get(format!("{base}/readyz"));
            async move { request.send().await.is_ok_and(|r| r.status().is_success()) }
        })
        .await?;
    tracing::info!(%address, binary = %binary.display(), "svcnet server ready");

    let start_revision = list_revision(&client, &services).await?;
    let timeline = Arc::new(Timeline::new(bodies.len()));
    let watchers = open_watchers(opts, &client, &services, &start_revision, bodies.len(), &timeline).await?;
    tracing::info!(watchers = opts.watchers, revision = %start_revision, "svcnet watchers open");

    server.check_running()?;
    let rss_before = server.rss()?;
    let (server_cpu_before, client_cpu_before) = (server.cpu()?, process::cpu_time("self")?);
    let creators = (0..opts.concurrency)
        .map(|_| {
            Ok(HttpCreator {
                client: http_client()?,
                url: services.clone(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let creates = load::create_all(creators, bodies.clone(), timeline.clone(), opts.phase_timeout()).await?;
    tracing::info!(
        ok = creates.ok,
        errors = creates.errors,
        rate = format!("{:.0}/s", creates.rate()),
        "svcnet creates done"
    );
    let watch = watchers.finish(bodies.len(), &timeline, opts.phase_timeout()).await;
    tracing::info!(
        delivered = watch.delivered,
        expected = watch.expected,
        "svcnet watches drained"
    );
    server.check_running()?;
    let server_cpu = server.cpu()?.saturating_sub(server_cpu_before);
    let client_cpu = process::cpu_time("self")?.saturating_sub(client_cpu_before);
    let rss_after = server.rss()?;
    let disk_bytes = process::dir_size(&data_dir);

    let list = load::time_lists(opts.lists, opts.phase_timeout(), || list_once(&client, &services, None)).await?;
    let table_list = if opts.table_lists > 0 {
        Some(
            load::time_lists(opts.table_lists, opts.phase_timeout(), || {
                list_once(&client, &services, Some(TABLE_ACCEPT))
            })
            .await?,
        )
    } else {
        None
    };
    tracing::info!(p99 = ?list.latency.p99, items = list.items, "svcnet lists done");
    server.check_running()?;
    Ok(TargetReport {
        server: server_version,
        creates,
        list,
        table_list,
        watch,
        rss_before,
        rss_after,
        disk_bytes,
        server_cpu,
        client_cpu,
    })
}

/// A plain-HTTP/1.1 client that keeps its connections (one per concurrent request).
fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// The resourceVersion of the (still empty) Service list, where the watchers start.
async fn list_revision(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct List {
        metadata: ListMeta,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ListMeta {
        resource_version: String,
    }
    let response = client.get(url).send().await?.error_for_status()?;
    let list: List = serde_json::from_slice(&response.bytes().await?).context("decoding the Service list")?;
    Ok(list.metadata.resource_version)
}

/// Opens every watch (each on its own connection) and returns once all have answered 200.
async fn open_watchers(
    opts: &ApiBenchOptions,
    client: &reqwest::Client,
    url: &str,
    revision: &str,
    expected: usize,
    timeline: &Arc<Timeline>,
) -> anyhow::Result<Watchers> {
    let watch_url = format!("{url}?watch=true&resourceVersion={revision}");
    let opened = tokio::time::timeout(
        opts.phase_timeout(),
        futures::future::try_join_all((0..opts.watchers).map(|_| async {
            let response = client.get(&watch_url).header(ACCEPT, "application/json").send().await?;
            if !response.status().is_success() {
                bail!("watch answered {}", response.status());
            }
            anyhow::Ok(response)
        })),
    )
    .await
    .context("opening the watches timed out")??;
    let mut watchers = Watchers::new();
    for response in opened {
        watchers.spawn(watch_lines(
            response,
            expected,
            timeline.clone(),
            watchers.stop_signal(),
        ));
    }
    Ok(watchers)
}

/// Reads one watch stream until it has seen `expected` ADDED events, fails, or is stopped.
async fn watch_lines(
    response: reqwest::Response,
    expected: usize,
    timeline: Arc<Timeline>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Watched {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "type")]
        kind: String,
        object: Object,
    }
    #[derive(Deserialize)]
    struct Object {
        #[serde(default)]
        metadata: Meta,
    }
    #[derive(Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        name: String,
    }
    let mut watched = Watched::default();
    watched.received.reserve(expected);
    let mut stream = response.bytes_stream();
    let mut pending: Vec<u8> = Vec::new();
    while watched.received.len() < expected {
        let chunk = tokio::select! {
            chunk = stream.next() => chunk,
            _ = stop.changed() => break,
        };
        let chunk = match chunk {
            Some(Ok(chunk)) => chunk,
            Some(Err(err)) => {
                watched.error = Some(format!("reading the watch: {err}"));
                break;
            }
            None => {
                watched.error = Some("the server ended the watch".into());
                break;
            }
        };
        let at = timeline.now();
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(end) = memchr::memchr(b'\n', &pending[start..]) {
            let line = &pending[start..start + end];
            start += end + 1;
            if let Some(index) = scan_added(line) {
                watched.received.push((index, at));
                continue;
            }
            match serde_json::from_slice::<Event>(line) {
                Ok(event) if event.kind == "ADDED" => {
                    if let Some(index) = index_of(&event.object.metadata.name) {
                        watched.received.push((index, at));
                    }
                }
                Ok(event) if event.kind == "ERROR" => {
                    watched.error = Some(format!("watch ERROR event: {}", String::from_utf8_lossy(line)));
                }
                Ok(_) => {}
                Err(err) => watched.error = Some(format!("undecodable watch line: {err}")),
            }
        }
        pending.drain(..start);
    }
    watched
}

/// The object index of an ADDED line, found by scanning instead of decoding: the etcd watchers
/// read only the key of each event, so decoding every 700-byte object here would charge the
/// svcnet side with client CPU that the etcd side does not pay (both share two cores with the
/// server). The name is the first `"name"` key in the object's metadata (the workload's labels
/// have no such key; the ports' names come after the metadata). Lines that do not have the
/// expected shape take the decoding path.
fn scan_added(line: &[u8]) -> Option<usize> {
    const METADATA: &[u8] = br#""metadata":{"#;
    const NAME: &[u8] = br#""name":""#;
    let rest = line.strip_prefix(br#"{"type":"ADDED","object":"#)?;
    let metadata = &rest[memchr::memmem::find(rest, METADATA)? + METADATA.len()..];
    let at = memchr::memmem::find(metadata, NAME)?;
    // A key, not a value that happens to end in "name": the key follows `{` or `,`.
    if at > 0 && !matches!(metadata[at - 1], b'{' | b',') {
        return None;
    }
    let name = &metadata[at + NAME.len()..];
    let name_len = memchr::memchr(b'"', name)?;
    index_of(std::str::from_utf8(&name[..name_len]).ok()?)
}

/// Creates over one HTTP/1.1 connection.
struct HttpCreator {
    client: reqwest::Client,
    url: String,
}

impl Creator for HttpCreator {
    async fn create(&mut self, _index: usize, body: Bytes) -> Result<(), String> {
        let response = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let answer = response.bytes().await.map_err(|e| e.to_string())?;
        if status != reqwest::StatusCode::CREATED {
            return Err(format!("{status}: {}", String::from_utf8_lossy(&answer)));
        }
        Ok(())
    }
}

/// One GET of the whole collection, timed from sending to the last body byte; the items (or
/// Table rows) are counted afterwards.
async fn list_once(client: &reqwest::Client, url: &str, accept: Option<&str>) -> anyhow::Result<Listed> {
    #[derive(Deserialize)]
    struct Counted {
        #[serde(default)]
        items: Vec<serde::de::IgnoredAny>,
        #[serde(default)]
        rows: Vec<serde::de::IgnoredAny>,
    }
    let sent = Instant::now();
    let response = client
        .get(url)
        .header(ACCEPT, accept.unwrap_or("application/json"))
        .send()
        .await?
        .error_for_status()?;
    let body = response.bytes().await?;
    let took = sent.elapsed();
    let counted: Counted = serde_json::from_slice(&body).context("decoding the list")?;
    Ok(Listed {
        took,
        items: counted.items.len().max(counted.rows.len()),
        bytes: body.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::scan_added;

    #[test]
    fn added_lines_are_scanned_and_others_left_to_the_decoder() {
        let added = br#"{"type":"ADDED","object":{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc-00042","namespace":"default"}}}"#;
        assert_eq!(scan_added(added), Some(42));
        let spliced =
            br#"{"type":"ADDED","object":{"apiVersion":"v1","metadata":{"resourceVersion":"7","name":"svc-00042"}}}"#;
        assert_eq!(scan_added(spliced), Some(42));
        let modified = br#"{"type":"MODIFIED","object":{"metadata":{"name":"svc-00042"}}}"#;
        assert_eq!(scan_added(modified), None);
        // As the workload's bodies are written (serde_json orders the keys).
        let sorted = br#"{"type":"ADDED","object":{"apiVersion":"v1","kind":"Service","metadata":{"creationTimestamp":"2026-12-02T00:00:00Z","labels":{"app":"bench-42","tier":"backend"},"name":"svc-00042","namespace":"default","resourceVersion":"9"},"spec":{"ports":[{"name":"http"}]}}}"#;
        assert_eq!(scan_added(sorted), Some(42));
        let no_name = br#"{"type":"ADDED","object":{"metadata":{"generateName":"svc-00042"},"spec":{"ports":[{"name":"http"}]}}}"#;
        assert_eq!(scan_added(no_name), None);
    }
}
