//! The `endpoints.kubernetes.io/last-change-trigger-time` value, after upstream's
//! TriggerTimeTracker: the earliest pod or Service change not yet reflected in a write, so that
//! a watcher can measure network-programming latency from it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};

use super::util::ObjectKey;

/// What the last sync of one Service saw.
#[derive(Debug, Default)]
struct Seen {
    pods: HashMap<String, Timestamp>,
    service: Option<Timestamp>,
}

/// Per-Service memory of the trigger times seen by the previous sync.
#[derive(Debug, Default)]
pub struct TriggerTimeTracker {
    services: Mutex<HashMap<ObjectKey, Seen>>,
}

impl TriggerTimeTracker {
    /// The trigger time for a sync of `service` over `pods` (the pods its selector picks), and
    /// remembers them. A Service seen for the first time reports its creation; afterwards the
    /// earliest trigger time that moved since the last call, or none when nothing did (a pod
    /// deletion, say, has no trigger time of its own).
    pub fn compute(&self, service: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = ObjectKey::of(&service.metadata);
        let mut services = self.services.lock().expect("trigger tracker lock");
        let previous = services.remove(&key);
        let known = previous.is_some();
        let previous = previous.unwrap_or_default();

        let mut earliest: Option<Timestamp> = None;
        let mut seen = Seen::default();
        for pod in pods {
            let Some(time) = pod_trigger_time(pod) else { continue };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if previous.pods.get(&name).is_none_or(|before| time > *before) {
                earliest = Some(earliest.map_or(time, |e| e.min(time)));
            }
            seen.pods.insert(name, time);
        }
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(time) = created {
            if previous.service.is_none_or(|before| time > before) {
                earliest = Some(earliest.map_or(time, |e| e.min(time)));
            }
        }
        seen.service = created;
        services.insert(key, seen);

        if known {
            earliest
        } else {
            created
        }
    }

    /// Drops what was remembered for a deleted Service.
    pub fn forget(&self, key: &ObjectKey) {
        self.services.lock().expect("trigger tracker lock").remove(key);
    }
}

/// A pod's trigger time is its last readiness transition (upstream `getPodTriggerTime`).
fn pod_trigger_time(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// RFC 3339 with as many fractional digits as needed (Go's `time.RFC3339Nano`), in UTC.
pub fn format(time: Timestamp) -> String {
    time.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service() -> Service {
        serde_json::from_value(json!({"metadata": {"namespace": "ns", "name": "web",
            "creationTimestamp": "2024-01-01T00:00:00Z"}}))
        .unwrap()
    }

    fn pod(name: &str, ready_at: &str) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name}, "status": {"conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": ready_at}]}}))
            .unwrap(),
        )
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn first_sync_reports_the_service_creation() {
        let tracker = TriggerTimeTracker::default();
        let pods = [pod("a", "2024-01-01T00:00:05Z")];
        assert_eq!(tracker.compute(&service(), &pods), Some(ts("2024-01-01T00:00:00Z")));
    }

    #[test]
    fn later_syncs_report_the_earliest_changed_pod() {
        let tracker = TriggerTimeTracker::default();
        tracker.compute(
            &service(),
            &[pod("a", "2024-01-01T00:00:05Z"), pod("b", "2024-01-01T00:00:06Z")],
        );
        let pods = [
            pod("a", "2024-01-01T00:00:09Z"),
            pod("b", "2024-01-01T00:00:08Z"),
            pod("c", "2024-01-01T00:00:07Z"),
        ];
        assert_eq!(tracker.compute(&service(), &pods), Some(ts("2024-01-01T00:00:07Z")));
        // Nothing moved since: no trigger time, so the annotation is cleared.
        assert_eq!(tracker.compute(&service(), &pods), None);
        tracker.forget(&ObjectKey::new("ns", "web"));
        assert_eq!(tracker.compute(&service(), &pods), Some(ts("2024-01-01T00:00:00Z")));
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(format(ts("2024-01-01T00:00:07Z")), "2024-01-01T00:00:07Z");
        assert_eq!(format(ts("2024-01-01T00:00:07.120Z")), "2024-01-01T00:00:07.12Z");
    }
}
