//! The etcd side: runs a single-member etcd (Debian etcd-server 3.4) on a fresh data dir on the
//! same disk and gives it the same create workload over gRPC: the same JSON bytes under
//! `/registry/services/specs/default/<name>`, written as kube-apiserver creates (a txn that puts
//! only when the key is absent), the same concurrency, the same number of prefix watches, and a
//! range get of the prefix as the list.

use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, KvClient, Txn, TxnOp, WatchOptions,
};

use crate::load::{self, Creator, Listed, Watched, Watchers};
use crate::options::ApiBenchOptions;
use crate::process::{self, Spawned};
use crate::report::TargetReport;
use crate::workload::{index_of, name, Timeline, ETCD_PREFIX};

/// Responses this large fit a range get of every object (tonic's default limit is 4 MiB).
const MAX_MESSAGE: usize = 1 << 30;

/// Runs the create workload against a fresh etcd under `work`.
pub(crate) async fn run(opts: &ApiBenchOptions, work: &Path, bodies: Arc<[Bytes]>) -> anyhow::Result<TargetReport> {
    let server_version = match process::version_of(&opts.etcd_binary) {
        Ok(version) => version,
        Err(err)
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == ErrorKind::NotFound) =>
        {
            bail!(
                "{} not found: install Debian's etcd-server (apt-get install -y etcd-server), pass --etcd-binary, or --no-etcd",
                opts.etcd_binary.display()
            )
        }
        Err(err) => return Err(err),
    };
    let data_dir = work.join("etcd-data");
    let client_url = format!("http://127.0.0.1:{}", process::free_port()?);
    let peer_url = format!("http://127.0.0.1:{}", process::free_port()?);
    let mut command = Command::new(&opts.etcd_binary);
    command
        .arg("--name")
        .arg("bench")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(format!("bench={peer_url}"))
        .arg("--initial-cluster-state")
        .arg("new");
    // Only the flags above configure it.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD_") {
            command.env_remove(key);
        }
    }
    let mut server = Spawned::start("etcd", command, &work.join("etcd.log"))?;
    server
        .wait_ready(opts.phase_timeout().min(Duration::from_secs(60)), || {
            let url = client_url.clone();
            async move {
                match connect(&url).await {
                    Ok(mut client) => client.status().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await?;
    tracing::info!(url = %client_url, "etcd ready");

    let mut client = connect(&client_url).await?;
    let start_revision = client
        .get(ETCD_PREFIX, Some(GetOptions::new().with_prefix().with_count_only()))
        .await?
        .header()
        .map(|h| h.revision())
        .context("etcd answered without a header")?;
    let timeline = Arc::new(Timeline::new(bodies.len()));
    let watchers = tokio::time::timeout(
        opts.phase_timeout(),
        open_watchers(opts.watchers, &client_url, start_revision + 1, bodies.len(), &timeline),
    )
    .await
    .context("opening the etcd watches timed out")??;
    tracing::info!(
        watchers = opts.watchers,
        revision = start_revision,
        "etcd watchers open"
    );

    server.check_running()?;
    let rss_before = server.rss()?;
    let (server_cpu_before, client_cpu_before) = (server.cpu()?, process::cpu_time("self")?);
    let mut creators = Vec::with_capacity(opts.concurrency as usize);
    for _ in 0..opts.concurrency {
        creators.push(EtcdCreator {
            kv: connect(&client_url).await?.kv_client(),
        });
    }
    let creates = load::create_all(creators, bodies.clone(), timeline.clone(), opts.phase_timeout()).await?;
    tracing::info!(
        ok = creates.ok,
        errors = creates.errors,
        rate = format!("{:.0}/s", creates.rate()),
        "etcd creates done"
    );
    let watch = watchers.finish(bodies.len(), &timeline, opts.phase_timeout()).await;
    tracing::info!(
        delivered = watch.delivered,
        expected = watch.expected,
        "etcd watches drained"
    );
    server.check_running()?;
    let server_cpu = server.cpu()?.saturating_sub(server_cpu_before);
    let client_cpu = process::cpu_time("self")?.saturating_sub(client_cpu_before);
    let rss_after = server.rss()?;
    let disk_bytes = process::dir_size(&data_dir);

    let kv = client.kv_client().max_decoding_message_size(MAX_MESSAGE);
    let list = load::time_lists(opts.lists, opts.phase_timeout(), || {
        let mut kv = kv.clone();
        async move {
            let sent = Instant::now();
            let response = kv.get(ETCD_PREFIX, Some(GetOptions::new().with_prefix())).await?;
            let took = sent.elapsed();
            Ok(Listed {
                took,
                items: response.kvs().len(),
                bytes: response.kvs().iter().map(|kv| kv.value().len()).sum(),
            })
        }
    })
    .await?;
    tracing::info!(p99 = ?list.latency.p99, items = list.items, "etcd lists done");
    server.check_running()?;
    Ok(TargetReport {
        server: server_version,
        creates,
        list,
        table_list: None,
        watch,
        rss_before,
        rss_after,
        disk_bytes,
        server_cpu,
        client_cpu,
    })
}

/// A client on its own gRPC connection.
async fn connect(url: &str) -> anyhow::Result<Client> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(30));
    Ok(Client::connect([url], Some(options)).await?)
}

/// Opens `count` prefix watches from `revision`, each on its own connection, and returns once
/// etcd has confirmed every one.
async fn open_watchers(
    count: u32,
    url: &str,
    revision: i64,
    expected: usize,
    timeline: &Arc<Timeline>,
) -> anyhow::Result<Watchers> {
    let mut watchers = Watchers::new();
    for _ in 0..count {
        let client = connect(url).await?;
        let mut stream = client
            .watch_client()
            .max_decoding_message_size(MAX_MESSAGE)
            .watch(
                ETCD_PREFIX,
                Some(WatchOptions::new().with_prefix().with_start_revision(revision)),
            )
            .await?;
        match stream.message().await? {
            Some(response) if response.created() => {}
            other => bail!("etcd did not confirm the watch: {other:?}"),
        }
        let (timeline, mut stop) = (timeline.clone(), watchers.stop_signal());
        watchers.spawn(async move {
            // The client owns the connection the stream runs on.
            let _client = client;
            let mut watched = Watched::default();
            watched.received.reserve(expected);
            while watched.received.len() < expected {
                let message = tokio::select! {
                    message = stream.message() => message,
                    _ = stop.changed() => break,
                };
                let response = match message {
                    Ok(Some(response)) => response,
                    Ok(None) => {
                        watched.error = Some("etcd ended the watch".into());
                        break;
                    }
                    Err(err) => {
                        watched.error = Some(format!("reading the watch: {err}"));
                        break;
                    }
                };
                let at = timeline.now();
                if response.canceled() {
                    watched.error = Some(format!("etcd cancelled the watch: {}", response.cancel_reason()));
                    break;
                }
                for event in response.events() {
                    if event.event_type() != EventType::Put {
                        continue;
                    }
                    let index = event.kv().and_then(|kv| kv.key_str().ok()).and_then(index_of);
                    if let Some(index) = index {
                        watched.received.push((index, at));
                    }
                }
            }
            watched
        });
    }
    Ok(watchers)
}

/// Creates over one gRPC connection, as kube-apiserver's etcd3 store does: put only if the key
/// has never been written (mod revision 0).
struct EtcdCreator {
    kv: KvClient,
}

impl Creator for EtcdCreator {
    async fn create(&mut self, index: usize, body: Bytes) -> Result<(), String> {
        let key = format!("{ETCD_PREFIX}{}", name(index));
        let txn = Txn::new()
            .when([Compare::mod_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, body.to_vec(), None)]);
        let response = self.kv.txn(txn).await.map_err(|e| e.to_string())?;
        if !response.succeeded() {
            return Err(format!("{} already exists", name(index)));
        }
        Ok(())
    }
}
