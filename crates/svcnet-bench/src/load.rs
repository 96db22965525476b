//! The load both servers get: concurrent creates over pre-built bodies, watchers that record
//! when each object reaches them, and repeated full lists. The server-specific parts (how one
//! create, one watch and one list are done) live in `svcnet.rs` and `etcd.rs`.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::report::{CreateReport, ListReport, WatchReport};
use crate::summary::Summary;
use crate::workload::Timeline;

/// One client connection that creates objects.
pub(crate) trait Creator: Send + 'static {
    /// Creates object `index` with `body`; the error text is kept for the report.
    fn create(&mut self, index: usize, body: Bytes) -> impl Future<Output = Result<(), String>> + Send;
}

/// Creates every body once, `creators.len()` at a time, each creator taking the next index.
pub(crate) async fn create_all<C: Creator>(
    creators: Vec<C>,
    bodies: Arc<[Bytes]>,
    timeline: Arc<Timeline>,
    limit: Duration,
) -> anyhow::Result<CreateReport> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for mut creator in creators {
        let (next, bodies, timeline) = (next.clone(), bodies.clone(), timeline.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(bodies.len() / 8 + 1);
            let mut errors = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(index) else { break };
                timeline.mark_sent(index);
                let sent = Instant::now();
                let result = creator.create(index, body.clone()).await;
                let took = sent.elapsed();
                timeline.mark_acked(index);
                match result {
                    Ok(()) => latencies.push(took),
                    Err(err) => errors.push(err),
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::with_capacity(bodies.len());
    let mut errors = Vec::new();
    tokio::time::timeout(limit, async {
        while let Some(joined) = tasks.join_next().await {
            let (l, e) = joined.context("a creating task failed")?;
            latencies.extend(l);
            errors.extend(e);
        }
        anyhow::Ok(())
    })
    .await
    .map_err(|_| anyhow!("the creates did not finish within {limit:?}"))??;
    let elapsed = started.elapsed();
    Ok(CreateReport {
        ok: latencies.len(),
        errors: errors.len(),
        first_error: errors.into_iter().next(),
        elapsed,
        latency: Summary::from_samples(latencies),
    })
}

/// What one watcher saw: `(object index, received at)` per ADDED/PUT event.
#[derive(Default)]
pub(crate) struct Watched {
    pub received: Vec<(usize, u64)>,
    pub error: Option<String>,
}

/// Watchers running in the background until each has seen `expected` events or is stopped.
pub(crate) struct Watchers {
    tasks: JoinSet<Watched>,
    stop: watch::Sender<bool>,
}

impl Watchers {
    pub(crate) fn new() -> Self {
        Watchers {
            tasks: JoinSet::new(),
            stop: watch::channel(false).0,
        }
    }

    /// The signal a watcher's task ends on (its `changed()` resolves).
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    pub(crate) fn spawn(&mut self, task: impl Future<Output = Watched> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Waits up to `limit` for every watcher to finish, stops the rest and measures deliveries
    /// against the creates' timeline.
    pub(crate) async fn finish(mut self, expected: usize, timeline: &Timeline, limit: Duration) -> WatchReport {
        let watchers = self.tasks.len();
        let drain_started = Instant::now();
        let deadline = tokio::time::Instant::now() + limit;
        let mut results = Vec::with_capacity(watchers);
        let mut stopped = false;
        loop {
            let joined = if stopped {
                self.tasks.join_next().await
            } else {
                match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                    Ok(joined) => joined,
                    Err(_) => {
                        let _ = self.stop.send(true);
                        stopped = true;
                        continue;
                    }
                }
            };
            match joined {
                Some(Ok(watched)) => results.push(watched),
                Some(Err(err)) => results.push(Watched {
                    received: Vec::new(),
                    error: Some(format!("watcher task failed: {err}")),
                }),
                None => break,
            }
        }
        let drain = drain_started.elapsed();
        let errors: Vec<String> = results.iter().filter_map(|w| w.error.clone()).collect();
        let deliveries = timeline.deliveries(results.into_iter().flat_map(|w| w.received));
        WatchReport {
            watchers,
            expected: expected * watchers,
            delivered: deliveries.from_send.len(),
            drain_after_creates: drain,
            timed_out: stopped,
            errors: errors.len(),
            first_error: errors.into_iter().next(),
            from_send: Summary::from_samples(deliveries.from_send),
            from_ack: Summary::from_samples(deliveries.from_ack),
            before_ack: deliveries.before_ack,
        }
    }
}

/// One full list as the client received it.
pub(crate) struct Listed {
    pub took: Duration,
    pub items: usize,
    pub bytes: usize,
}

/// Fetches the full list `times` times, one after another, within `limit` in all.
pub(crate) async fn time_lists<F, Fut>(times: u32, limit: Duration, mut fetch: F) -> anyhow::Result<ListReport>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Listed>>,
{
    tokio::time::timeout(limit, async {
        let mut latencies = Vec::with_capacity(times as usize);
        let (mut items, mut bytes) = (usize::MAX, 0);
        for _ in 0..times {
            let listed = fetch().await?;
            tracing::debug!(took = ?listed.took, items = listed.items, "list timed");
            latencies.push(listed.took);
            items = items.min(listed.items);
            bytes = listed.bytes;
        }
        Ok(ListReport {
            items: if latencies.is_empty() { 0 } else { items },
            bytes,
            latency: Summary::from_samples(latencies),
        })
    })
    .await
    .map_err(|_| anyhow!("{times} lists did not finish within {limit:?}"))?
}
