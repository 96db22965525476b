//! Counters with CoreDNS's metric names, kept per worker (no shared cache line on the query
//! path) and summed when `/metrics` is scraped; also `/health` and `/ready`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// CoreDNS's `coredns_dns_request_duration_seconds` buckets.
const DURATION_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192,
];
/// Buckets for change → answer latency (the goal is p99 under 10 ms).
const PROGRAMMING_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 1.0,
];

/// A Prometheus histogram made of atomics.
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: [f64; N],
    buckets: [AtomicU64; N],
    count: AtomicU64,
    /// Sum in nanoseconds.
    sum_nanos: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: [f64; N]) -> Self {
        Histogram {
            bounds,
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|bound| seconds <= *bound) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(elapsed.as_nanos() as u64, Relaxed);
    }

    fn add_into(&self, buckets: &mut [u64; N], count: &mut u64, sum_nanos: &mut u64) {
        for (total, bucket) in buckets.iter_mut().zip(&self.buckets) {
            *total += bucket.load(Relaxed);
        }
        *count += self.count.load(Relaxed);
        *sum_nanos += self.sum_nanos.load(Relaxed);
    }
}

fn render_histogram<const N: usize>(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64; N],
    buckets: &[u64; N],
    count: u64,
    sum_nanos: u64,
) {
    let mut cumulative = 0;
    let sep = if labels.is_empty() { "" } else { "," };
    for (bound, bucket) in bounds.iter().zip(buckets) {
        cumulative += bucket;
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", sum_nanos as f64 / 1e9);
    let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
}

/// One query worker's counters (a UDP thread, or all TCP connections together).
#[derive(Debug)]
pub struct WorkerStats {
    proto: &'static str,
    requests: AtomicU64,
    /// Index = RCODE (0..=15), 16 = BADVERS.
    responses: [AtomicU64; 17],
    duration: Histogram<16>,
}

impl WorkerStats {
    /// Counts one request and the RCODE of its reply (`None`: no reply was sent).
    pub fn record(&self, rcode: Option<u16>, elapsed: Duration) {
        self.requests.fetch_add(1, Relaxed);
        if let Some(rcode) = rcode {
            self.responses[(rcode as usize).min(16)].fetch_add(1, Relaxed);
        }
        self.duration.observe(elapsed);
    }
}

/// The header RCODE of a reply (BADVERS, whose upper bits sit in the OPT, counts as NOERROR).
pub fn reply_rcode(reply: &[u8]) -> Option<u16> {
    reply.get(3).map(|flags| u16::from(flags & 0xF))
}

/// All metrics of one `svcnet dns` process.
#[derive(Debug)]
pub struct Metrics {
    workers: Mutex<Vec<Arc<WorkerStats>>>,
    pub cache_hits_success: AtomicU64,
    pub cache_hits_denial: AtomicU64,
    pub cache_misses: AtomicU64,
    programming: Histogram<12>,
    /// Recent change → answer latencies in microseconds, for the p50/p99 gauges and the bench.
    recent: Mutex<Vec<u32>>,
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            workers: Mutex::new(Vec::new()),
            cache_hits_success: AtomicU64::new(0),
            cache_hits_denial: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            programming: Histogram::new(PROGRAMMING_BUCKETS),
            recent: Mutex::new(Vec::new()),
            ready: AtomicBool::new(false),
        }
    }
}

/// How many recent programming latencies are kept for the quantile gauges.
const RECENT: usize = 4096;

impl Metrics {
    pub fn worker(&self, proto: &'static str) -> Arc<WorkerStats> {
        let stats = Arc::new(WorkerStats {
            proto,
            requests: AtomicU64::new(0),
            responses: std::array::from_fn(|_| AtomicU64::new(0)),
            duration: Histogram::new(DURATION_BUCKETS),
        });
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats.clone());
        stats
    }

    /// Records how long a watched change took to reach the answers.
    pub fn programmed(&self, elapsed: Duration) {
        self.programming.observe(elapsed);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() >= RECENT {
            recent.remove(0);
        }
        recent.push(elapsed.as_micros().min(u32::MAX as u128) as u32);
    }

    /// p50 and p99 of the recent programming latencies, in microseconds.
    pub fn programming_quantiles(&self) -> Option<(u32, u32)> {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if recent.is_empty() {
            return None;
        }
        recent.sort_unstable();
        let at = |q: f64| recent[((recent.len() - 1) as f64 * q).round() as usize];
        Some((at(0.5), at(0.99)))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        out.push_str("# TYPE coredns_dns_requests_total counter\n");
        for proto in ["udp", "tcp"] {
            let total: u64 = workers
                .iter()
                .filter(|w| w.proto == proto)
                .map(|w| w.requests.load(Relaxed))
                .sum();
            let _ = writeln!(out, "coredns_dns_requests_total{{proto=\"{proto}\"}} {total}");
        }
        out.push_str("# TYPE coredns_dns_responses_total counter\n");
        for (rcode, name) in RCODE_NAMES.iter().enumerate() {
            let total: u64 = workers.iter().map(|w| w.responses[rcode].load(Relaxed)).sum();
            if total > 0 || rcode <= 5 {
                let _ = writeln!(out, "coredns_dns_responses_total{{rcode=\"{name}\"}} {total}");
            }
        }
        out.push_str("# TYPE coredns_dns_request_duration_seconds histogram\n");
        for proto in ["udp", "tcp"] {
            let (mut buckets, mut count, mut sum) = ([0u64; 16], 0, 0);
            for worker in workers.iter().filter(|w| w.proto == proto) {
                worker.duration.add_into(&mut buckets, &mut count, &mut sum);
            }
            let labels = format!("proto=\"{proto}\"");
            render_histogram(
                &mut out,
                "coredns_dns_request_duration_seconds",
                &labels,
                &DURATION_BUCKETS,
                &buckets,
                count,
                sum,
            );
        }
        out.push_str("# TYPE coredns_cache_hits_total counter\n");
        let _ = writeln!(
            out,
            "coredns_cache_hits_total{{type=\"success\"}} {}",
            self.cache_hits_success.load(Relaxed)
        );
        let _ = writeln!(
            out,
            "coredns_cache_hits_total{{type=\"denial\"}} {}",
            self.cache_hits_denial.load(Relaxed)
        );
        out.push_str("# TYPE coredns_cache_misses_total counter\n");
        let _ = writeln!(out, "coredns_cache_misses_total {}", self.cache_misses.load(Relaxed));
        out.push_str("# HELP svcnet_dns_programming_duration_seconds Watch event received to new answers served.\n");
        out.push_str("# TYPE svcnet_dns_programming_duration_seconds histogram\n");
        let (mut buckets, mut count, mut sum) = ([0u64; 12], 0, 0);
        self.programming.add_into(&mut buckets, &mut count, &mut sum);
        render_histogram(
            &mut out,
            "svcnet_dns_programming_duration_seconds",
            "",
            &PROGRAMMING_BUCKETS,
            &buckets,
            count,
            sum,
        );
        if let Some((p50, p99)) = self.programming_quantiles() {
            out.push_str("# TYPE svcnet_dns_programming_latency_seconds gauge\n");
            let _ = writeln!(
                out,
                "svcnet_dns_programming_latency_seconds{{quantile=\"0.5\"}} {}",
                p50 as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "svcnet_dns_programming_latency_seconds{{quantile=\"0.99\"}} {}",
                p99 as f64 / 1e6
            );
        }
        out
    }
}

const RCODE_NAMES: [&str; 17] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH",
    "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15", "BADVERS",
];

/// Reads up to the blank line that ends an HTTP request head (at most 8 KiB, 5 s): answering
/// before the client has finished writing would reset its connection.
async fn read_request_head(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    use tokio::io::AsyncReadExt;
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    Some(request)
}

/// Serves `/metrics`, `/health` and `/ready` over plain HTTP/1.x, one request per connection.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use tokio::io::AsyncWriteExt;
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let Some(request) = read_request_head(&mut stream).await else {
                return;
            };
            let line = String::from_utf8_lossy(&request);
            let path = line.split_whitespace().nth(1).unwrap_or("/");
            let (status, body) = match path {
                "/metrics" => ("200 OK", metrics.render()),
                "/health" => ("200 OK", "OK".to_string()),
                "/ready" if metrics.ready.load(Relaxed) => ("200 OK", "OK".to_string()),
                "/ready" => ("503 Service Unavailable", "not synced".to_string()),
                _ => ("404 Not Found", "not found".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
