//! svcnet-bench: whole-system benchmarks run as `svcnet bench ...`. `svcnet bench api` creates
//! Services over HTTP with concurrent clients while watchers are open, lists them, and runs the
//! same create workload against a single-member etcd on the same disk, side by side.
//!
//! Start with [`run_api_bench`]; its [`ApiBenchReport`] renders as markdown for
//! `docs/benchmarks.md`. Benchmark traffic stays on loopback, every count is bounded and every
//! phase has a time limit; the servers it starts are killed and their data dirs removed when it
//! ends, fails or is interrupted.

mod etcd;
mod load;
mod options;
mod process;
mod report;
mod summary;
mod svcnet;
mod workload;

use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;

pub use options::ApiBenchOptions;
pub use report::{ApiBenchReport, CreateReport, Goal, ListReport, TargetReport, WatchReport};
pub use summary::{percentile, Summary};

/// Runs `svcnet bench api`: svcnet first, then etcd (unless `--no-etcd`), one after the other so
/// that they do not share the CPUs. Ctrl-C stops the run and cleans up.
pub async fn run_api_bench(opts: ApiBenchOptions) -> anyhow::Result<ApiBenchReport> {
    tokio::select! {
        report = run_api(opts) => report,
        _ = tokio::signal::ctrl_c() => bail!("interrupted"),
    }
}

async fn run_api(opts: ApiBenchOptions) -> anyhow::Result<ApiBenchReport> {
    std::fs::create_dir_all(&opts.work_dir).with_context(|| format!("creating {}", opts.work_dir.display()))?;
    // Dropped last: both servers are gone before their data dirs are removed.
    let work = tempfile::Builder::new()
        .prefix("svcnet-bench-")
        .tempdir_in(&opts.work_dir)
        .with_context(|| format!("creating a work dir under {}", opts.work_dir.display()))?;
    let machine = process::machine_notes(&opts.work_dir);
    let bodies: Arc<[Bytes]> = (0..opts.services as usize).map(workload::service_json).collect();
    tracing::info!(services = bodies.len(), concurrency = opts.concurrency, watchers = opts.watchers, work_dir = %work.path().display(), "svcnet bench api");
    let svcnet = svcnet::run(&opts, work.path(), bodies.clone())
        .await
        .context("svcnet run")?;
    let etcd = if opts.no_etcd {
        None
    } else {
        Some(
            etcd::run(&opts, work.path(), bodies.clone())
                .await
                .context("etcd run")?,
        )
    };
    Ok(ApiBenchReport {
        command: opts.command_line(),
        machine,
        finished: jiff::Timestamp::now().round(jiff::Unit::Second)?.to_string(),
        services: bodies.len(),
        concurrency: opts.concurrency as usize,
        watchers: opts.watchers as usize,
        svcnet,
        etcd,
    })
}
