//! The benchmark's figures and their markdown rendering (svcnet and etcd side by side, then the
//! goals from the issue with met / missed).

use std::fmt;
use std::time::Duration;

use crate::summary::{Millis, Summary};

/// Everything one `svcnet bench api` run measured.
#[derive(Debug, Clone)]
pub struct ApiBenchReport {
    /// The command line of the run.
    pub command: String,
    /// CPU, memory, kernel and the disk under the data dirs.
    pub machine: String,
    /// When the run finished (UTC, RFC 3339).
    pub finished: String,
    pub services: usize,
    pub concurrency: usize,
    pub watchers: usize,
    pub svcnet: TargetReport,
    /// The same create workload against etcd, unless skipped.
    pub etcd: Option<TargetReport>,
}

/// The figures of one server.
#[derive(Debug, Clone)]
pub struct TargetReport {
    /// What `--version` printed.
    pub server: String,
    pub creates: CreateReport,
    pub list: ListReport,
    /// Lists as a meta.k8s.io Table (svcnet only).
    pub table_list: Option<ListReport>,
    pub watch: WatchReport,
    /// Resident set size once started and watched, before any create, in bytes.
    pub rss_before: u64,
    /// Resident set size after the creates and the watch deliveries, in bytes.
    pub rss_after: u64,
    /// Bytes in the data dir after the creates.
    pub disk_bytes: u64,
    /// CPU the server used from the first create until the watchers had every event.
    pub server_cpu: Duration,
    /// CPU the benchmark itself (creating clients and watchers) used over the same span.
    pub client_cpu: Duration,
}

#[derive(Debug, Clone)]
pub struct CreateReport {
    pub ok: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    /// From the first create sent to the last one answered.
    pub elapsed: Duration,
    /// Of successful creates, request sent to response read.
    pub latency: Summary,
}

impl CreateReport {
    /// Successful creates per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

#[derive(Debug, Clone)]
pub struct ListReport {
    /// Items in the smallest list received.
    pub items: usize,
    /// Size of a list response (JSON body, or the sum of etcd values).
    pub bytes: usize,
    pub latency: Summary,
}

#[derive(Debug, Clone)]
pub struct WatchReport {
    pub watchers: usize,
    /// Events all watchers together should see (objects x watchers).
    pub expected: usize,
    pub delivered: usize,
    /// From the last create answered until every watcher had every event (or gave up).
    pub drain_after_creates: Duration,
    /// Some watcher had not seen every event within the time limit.
    pub timed_out: bool,
    pub errors: usize,
    pub first_error: Option<String>,
    /// Event received minus create sent.
    pub from_send: Summary,
    /// Event received minus create answered (zero when the event came first).
    pub from_ack: Summary,
    /// Deliveries that came before the creating client had its answer.
    pub before_ack: usize,
}

impl TargetReport {
    /// RSS growth per stored object, in bytes.
    pub fn rss_per_object(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.creates.ok.max(1) as f64
    }
}

/// One goal of the issue, checked against the figures.
#[derive(Debug, Clone)]
pub struct Goal {
    pub what: &'static str,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

/// Create and watch p99 limit, and the list limit, from the issue.
const CREATE_P99_LIMIT: Duration = Duration::from_millis(20);
const LIST_P99_LIMIT: Duration = Duration::from_millis(100);
const WATCH_P99_LIMIT: Duration = Duration::from_millis(20);

impl ApiBenchReport {
    /// The goals for svcnet (the rate goal only when etcd ran).
    pub fn goals(&self) -> Vec<Goal> {
        let s = &self.svcnet;
        let mut goals = Vec::new();
        if let Some(etcd) = &self.etcd {
            goals.push(Goal {
                what: "creates/s at least etcd's put rate",
                target: format!(">= {:.0}/s", etcd.creates.rate()),
                measured: format!("{:.0}/s", s.creates.rate()),
                met: s.creates.rate() >= etcd.creates.rate(),
            });
        }
        goals.push(Goal {
            what: "create p99",
            target: format!("< {}", Millis(CREATE_P99_LIMIT)),
            measured: Millis(s.creates.latency.p99).to_string(),
            met: s.creates.latency.p99 < CREATE_P99_LIMIT,
        });
        goals.push(Goal {
            what: "list p99",
            target: format!("< {} for {} objects", Millis(LIST_P99_LIMIT), thousands(s.list.items)),
            measured: Millis(s.list.latency.p99).to_string(),
            met: s.list.latency.p99 < LIST_P99_LIMIT,
        });
        if s.watch.watchers > 0 {
            goals.push(Goal {
                what: "watch delivery p99 (from create sent)",
                target: format!("< {}", Millis(WATCH_P99_LIMIT)),
                measured: Millis(s.watch.from_send.p99).to_string(),
                met: s.watch.from_send.p99 < WATCH_P99_LIMIT && s.watch.delivered == s.watch.expected,
            });
        }
        goals.push(Goal {
            what: "every create succeeded and reached every watcher",
            target: format!(
                "{} creates, {} events",
                thousands(self.services),
                thousands(s.watch.expected)
            ),
            measured: format!(
                "{} creates, {} events",
                thousands(s.creates.ok),
                thousands(s.watch.delivered)
            ),
            met: s.creates.errors == 0 && s.creates.ok == self.services && s.watch.delivered == s.watch.expected,
        });
        goals
    }

    /// The report as markdown: run notes, the side-by-side table and the goals.
    pub fn to_markdown(&self) -> String {
        self.to_string()
    }
}

fn pair(s: &Summary) -> String {
    format!("{} / {}", Millis(s.p50), Millis(s.p99))
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for ApiBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.svcnet;
        let e = self.etcd.as_ref();
        let etcd = |cell: &dyn Fn(&TargetReport) -> String| e.map(cell).unwrap_or_default();
        writeln!(f, "Command: `{}`  ", self.command)?;
        writeln!(f, "Finished: {}  ", self.finished)?;
        writeln!(f, "Machine: {}  ", self.machine)?;
        writeln!(
            f,
            "Workload: {} Services, {} concurrent clients (one connection each), {} watchers open during the creates",
            thousands(self.services),
            self.concurrency,
            self.watchers
        )?;
        writeln!(f)?;
        match e {
            Some(t) => {
                writeln!(f, "| | svcnet (`{}`) | etcd (`{}`) |", s.server, t.server)?;
                writeln!(f, "|---|---:|---:|")?;
            }
            None => {
                writeln!(f, "| | svcnet (`{}`) |", s.server)?;
                writeln!(f, "|---|---:|")?;
            }
        }
        let with_etcd = e.is_some();
        let mut row = |label: String, svc: String, etc: String| {
            if with_etcd {
                writeln!(f, "| {label} | {svc} | {etc} |")
            } else {
                writeln!(f, "| {label} | {svc} |")
            }
        };
        row(
            "creates/s (POST Service / etcd txn put-if-absent)".into(),
            format!("{:.0}", s.creates.rate()),
            etcd(&|t| format!("{:.0}", t.creates.rate())),
        )?;
        row(
            "create latency p50 / p99".into(),
            pair(&s.creates.latency),
            etcd(&|t| pair(&t.creates.latency)),
        )?;
        row(
            "create latency max".into(),
            Millis(s.creates.latency.max).to_string(),
            etcd(&|t| Millis(t.creates.latency.max).to_string()),
        )?;
        row(
            "failed creates".into(),
            s.creates.errors.to_string(),
            etcd(&|t| t.creates.errors.to_string()),
        )?;
        row(
            format!(
                "list of {} p50 / p99 ({} times; etcd: range get of the prefix)",
                thousands(s.list.items),
                s.list.latency.count
            ),
            pair(&s.list.latency),
            etcd(&|t| pair(&t.list.latency)),
        )?;
        if let Some(table) = &s.table_list {
            row(
                format!("list as Table p50 / p99 ({} times)", table.latency.count),
                pair(&table.latency),
                "n/a".into(),
            )?;
        }
        row(
            "list response size".into(),
            mib(s.list.bytes as f64),
            etcd(&|t| format!("{} (values only)", mib(t.list.bytes as f64))),
        )?;
        if self.watchers > 0 {
            row(
                "watch delivery p50 / p99, from create sent".into(),
                pair(&s.watch.from_send),
                etcd(&|t| pair(&t.watch.from_send)),
            )?;
            row(
                "watch delivery p50 / p99, from create answered".into(),
                pair(&s.watch.from_ack),
                etcd(&|t| pair(&t.watch.from_ack)),
            )?;
            row(
                "watch delivery max, from create sent".into(),
                Millis(s.watch.from_send.max).to_string(),
                etcd(&|t| Millis(t.watch.from_send.max).to_string()),
            )?;
            let delivered = |t: &TargetReport| {
                format!(
                    "{} of {} ({} watchers)",
                    thousands(t.watch.delivered),
                    thousands(t.watch.expected),
                    t.watch.watchers
                )
            };
            row("watch events delivered".into(), delivered(s), etcd(&|t| delivered(t)))?;
            let early = |t: &TargetReport| {
                format!(
                    "{:.0} %",
                    100.0 * t.watch.before_ack as f64 / t.watch.delivered.max(1) as f64
                )
            };
            row(
                "events delivered before the create was answered".into(),
                early(s),
                etcd(&|t| early(t)),
            )?;
            row(
                "watch drain after the last create".into(),
                Millis(s.watch.drain_after_creates).to_string(),
                etcd(&|t| Millis(t.watch.drain_after_creates).to_string()),
            )?;
        }
        let cpu = |t: &TargetReport| {
            format!(
                "{:.1} s / {:.1} s",
                t.server_cpu.as_secs_f64(),
                t.client_cpu.as_secs_f64()
            )
        };
        row(
            "CPU during creates and watch drain: server / benchmark client".into(),
            cpu(s),
            etcd(&|t| cpu(t)),
        )?;
        let rss = |t: &TargetReport| format!("{} -> {}", mib(t.rss_before as f64), mib(t.rss_after as f64));
        row(
            "server RSS before -> after the creates".into(),
            rss(s),
            etcd(&|t| rss(t)),
        )?;
        row(
            "RSS per stored object".into(),
            format!("{:.0} B", s.rss_per_object()),
            etcd(&|t| format!("{:.0} B", t.rss_per_object())),
        )?;
        row(
            "data dir after the creates".into(),
            mib(s.disk_bytes as f64),
            etcd(&|t| mib(t.disk_bytes as f64)),
        )?;
        writeln!(f)?;
        writeln!(f, "| goal (svcnet) | target | measured | |")?;
        writeln!(f, "|---|---|---:|---|")?;
        for goal in self.goals() {
            writeln!(
                f,
                "| {} | {} | {} | {} |",
                goal.what,
                goal.target,
                goal.measured,
                if goal.met { "met" } else { "**missed**" }
            )?;
        }
        for (name, t) in std::iter::once(("svcnet", s)).chain(e.map(|t| ("etcd", t))) {
            if let Some(err) = &t.creates.first_error {
                writeln!(f, "\n{name}: first failed create: {err}")?;
            }
            if let Some(err) = &t.watch.first_error {
                writeln!(f, "\n{name}: first watch error: {err}")?;
            }
            if t.watch.timed_out {
                writeln!(
                    f,
                    "\n{name}: some watchers had not seen every event when the time limit ran out"
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
