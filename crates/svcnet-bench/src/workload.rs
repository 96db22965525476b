//! The objects the benchmark writes and the clock that ties each write to its watch deliveries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The etcd key prefix kube-apiserver stores Services of the default namespace under.
pub(crate) const ETCD_PREFIX: &str = "/registry/services/specs/default/";

/// The name of Service number `index`: `svc-00042`.
pub(crate) fn name(index: usize) -> String {
    format!("svc-{index:05}")
}

/// The index in a name written by [`name`] (also accepts an etcd key ending in one).
pub(crate) fn index_of(name: &str) -> Option<usize> {
    let digits = name.rsplit_once("svc-")?.1;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A ClusterIP Service as `kubectl create -f` would send it: labels, a selector and two ports.
/// The same bytes are the POST body for svcnet and the value put into etcd.
pub(crate) fn service_json(index: usize) -> Bytes {
    let name = name(index);
    let app = format!("bench-{}", index % 500);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": app, "tier": "backend", "app.kubernetes.io/part-of": "svcnet-bench"},
        },
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": app, "tier": "backend"},
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "metrics"},
            ],
            "sessionAffinity": "None",
        },
    });
    Bytes::from(serde_json::to_vec(&body).expect("a JSON value serialises"))
}

/// When each create was sent and acknowledged, on one monotonic clock shared by creators and
/// watchers (nanoseconds since `base`, plus one so that zero means "not yet").
pub(crate) struct Timeline {
    base: Instant,
    sent: Box<[AtomicU64]>,
    acked: Box<[AtomicU64]>,
}

/// Watch delivery latencies of one run.
pub(crate) struct Deliveries {
    /// Event received minus create request sent.
    pub from_send: Vec<Duration>,
    /// Event received minus create response received (zero when the event came first).
    pub from_ack: Vec<Duration>,
    /// Events that arrived before the creating client had its response.
    pub before_ack: usize,
}

impl Timeline {
    pub(crate) fn new(objects: usize) -> Self {
        Timeline {
            base: Instant::now(),
            sent: (0..objects).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..objects).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64 + 1
    }

    pub(crate) fn mark_sent(&self, index: usize) {
        self.sent[index].store(self.now(), Ordering::Relaxed);
    }

    pub(crate) fn mark_acked(&self, index: usize) {
        self.acked[index].store(self.now(), Ordering::Relaxed);
    }

    /// Latencies of `(object index, received at)` deliveries; unknown indexes are skipped.
    pub(crate) fn deliveries(&self, received: impl IntoIterator<Item = (usize, u64)>) -> Deliveries {
        let mut out = Deliveries {
            from_send: Vec::new(),
            from_ack: Vec::new(),
            before_ack: 0,
        };
        for (index, at) in received {
            let (Some(sent), Some(acked)) = (self.sent.get(index), self.acked.get(index)) else {
                continue;
            };
            let (sent, acked) = (sent.load(Ordering::Relaxed), acked.load(Ordering::Relaxed));
            if sent == 0 {
                continue;
            }
            out.from_send.push(Duration::from_nanos(at.saturating_sub(sent)));
            if acked == 0 || acked > at {
                out.before_ack += 1;
            }
            out.from_ack.push(Duration::from_nanos(if acked == 0 {
                0
            } else {
                at.saturating_sub(acked)
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_keys() {
        assert_eq!(name(42), "svc-00042");
        assert_eq!(index_of("svc-00042"), Some(42));
        assert_eq!(index_of(&format!("{ETCD_PREFIX}svc-123456")), Some(123_456));
        assert_eq!(index_of("kubernetes"), None);
        assert_eq!(index_of("svc-"), None);
    }

    #[test]
    fn service_body_is_a_named_service_with_two_ports() {
        let value: serde_json::Value = serde_json::from_slice(&service_json(7)).unwrap();
        assert_eq!(value["metadata"]["name"], "svc-00007");
        assert_eq!(value["spec"]["ports"].as_array().unwrap().len(), 2);
        assert_eq!(value["spec"]["selector"]["app"], "bench-7");
    }

    #[test]
    fn deliveries_measure_from_send_and_ack() {
        let timeline = Timeline::new(2);
        timeline.sent[0].store(1_000, Ordering::Relaxed);
        timeline.acked[0].store(3_000, Ordering::Relaxed);
        let d = timeline.deliveries([(0, 2_000), (0, 5_000), (1, 9_000), (7, 1)]);
        assert_eq!(
            d.from_send,
            vec![Duration::from_nanos(1_000), Duration::from_nanos(4_000)]
        );
        assert_eq!(d.from_ack, vec![Duration::ZERO, Duration::from_nanos(2_000)]);
        assert_eq!(d.before_ack, 1);
    }
}
