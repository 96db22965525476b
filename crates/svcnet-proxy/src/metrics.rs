//! Prometheus metrics under kube-proxy's names, written in the text exposition format by hand
//! (a handful of series do not justify a registry).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A cumulative histogram with fixed bounds.
#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, seconds: f64) {
        for (bound, count) in self.bounds.iter().zip(&mut self.counts) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

/// Upstream's sync buckets: exponential from 1 ms, doubling, 15 of them.
const SYNC_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384,
];
/// Network programming latency buckets (seconds).
const PROGRAMMING_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Debug)]
struct Values {
    sync: Histogram,
    full_sync: Histogram,
    partial_sync: Histogram,
    programming: Histogram,
    last_sync: f64,
    last_queued: f64,
    sync_failures: u64,
    rules: usize,
    elements: usize,
    chains: usize,
    service_ports: usize,
}

/// The proxy's metrics, shared between the sync loop and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    values: Mutex<Values>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            values: Mutex::new(Values {
                sync: Histogram::new(SYNC_BUCKETS),
                full_sync: Histogram::new(SYNC_BUCKETS),
                partial_sync: Histogram::new(SYNC_BUCKETS),
                programming: Histogram::new(PROGRAMMING_BUCKETS),
                last_sync: 0.0,
                last_queued: 0.0,
                sync_failures: 0,
                rules: 0,
                elements: 0,
                chains: 0,
                service_ports: 0,
            }),
        }
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What one successful sync programmed.
#[derive(Debug, Clone, Copy)]
pub struct SyncFigures {
    /// Full or incremental.
    pub full: bool,
    /// Time spent computing and applying.
    pub duration: Duration,
    /// Rules, elements and chains in the table.
    pub rules: usize,
    /// Set/map elements.
    pub elements: usize,
    /// Chains.
    pub chains: usize,
    /// Service ports programmed.
    pub service_ports: usize,
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Values) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update; the numbers are still usable.
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut values)
    }

    /// A change arrived and waits for a sync.
    pub fn queued(&self) {
        self.with(|v| v.last_queued = unix_now());
    }

    /// A sync succeeded.
    pub fn synced(&self, figures: SyncFigures) {
        self.with(|v| {
            let seconds = figures.duration.as_secs_f64();
            v.sync.observe(seconds);
            if figures.full {
                v.full_sync.observe(seconds);
            } else {
                v.partial_sync.observe(seconds);
            }
            v.last_sync = unix_now();
            v.rules = figures.rules;
            v.elements = figures.elements;
            v.chains = figures.chains;
            v.service_ports = figures.service_ports;
        });
    }

    /// A sync failed.
    pub fn sync_failed(&self) {
        self.with(|v| v.sync_failures += 1);
    }

    /// An endpoint change that was triggered `latency` ago is now programmed.
    pub fn programmed(&self, latency: Duration) {
        self.with(|v| v.programming.observe(latency.as_secs_f64()));
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        self.with(|v| {
            let mut out = String::new();
            v.sync.write(
                &mut out,
                "kubeproxy_sync_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds",
            );
            v.full_sync.write(
                &mut out,
                "kubeproxy_sync_full_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for full resyncs",
            );
            v.partial_sync.write(
                &mut out,
                "kubeproxy_sync_partial_proxy_rules_duration_seconds",
                "SyncProxyRules latency in seconds for partial resyncs",
            );
            v.programming.write(
                &mut out,
                "kubeproxy_network_programming_duration_seconds",
                "In Cluster Network Programming Latency in seconds",
            );
            let gauges: [(&str, &str, f64); 7] = [
                (
                    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
                    "The last time proxy rules were successfully synced",
                    v.last_sync,
                ),
                (
                    "kubeproxy_sync_proxy_rules_last_queued_timestamp_seconds",
                    "The last time a sync of proxy rules was queued",
                    v.last_queued,
                ),
                (
                    "kubeproxy_sync_proxy_rules_nftables_rules",
                    "Rules in the svcnet nftables table",
                    v.rules as f64,
                ),
                (
                    "kubeproxy_sync_proxy_rules_nftables_elements",
                    "Set and map elements in the svcnet nftables table",
                    v.elements as f64,
                ),
                (
                    "kubeproxy_sync_proxy_rules_nftables_chains",
                    "Chains in the svcnet nftables table",
                    v.chains as f64,
                ),
                (
                    "kubeproxy_sync_proxy_rules_service_ports",
                    "Service ports programmed",
                    v.service_ports as f64,
                ),
                (
                    "kubeproxy_sync_proxy_rules_nftables_sync_failures_total",
                    "Failed nftables syncs",
                    v.sync_failures as f64,
                ),
            ];
            for (name, help, value) in gauges {
                let kind = if name.ends_with("_total") { "counter" } else { "gauge" };
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
            }
            out
        })
    }
}
