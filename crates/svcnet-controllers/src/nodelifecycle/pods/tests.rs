use super::*;
use serde_json::json;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn pod(tweak: impl FnOnce(&mut serde_json::Value)) -> Pod {
    let mut pod = json!({
        "metadata": {"name": "p", "namespace": "default", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
        "status": {"phase": "Running", "conditions": [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"},
        ]},
    });
    tweak(&mut pod);
    serde_json::from_value(pod).unwrap()
}

fn taint(key: &str, added: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: "NoExecute".into(),
        value: None,
        time_added: Some(Time(at(added))),
    }
}

fn tolerating(tolerations: serde_json::Value) -> impl FnOnce(&mut serde_json::Value) {
    move |p| p["spec"]["tolerations"] = tolerations
}

const DEFAULT: Duration = Duration::from_secs(300);

#[test]
fn ready_pods_turn_not_ready() {
    let now = at("2026-01-01T00:05:00Z");
    let conditions = not_ready_conditions(&pod(|_| {}), now).unwrap();
    assert_eq!(conditions[1].status, "False");
    assert_eq!(conditions[1].last_transition_time, Some(Time(now)));
    assert_eq!(conditions[0].status, "True", "other conditions untouched");
    let not_ready = pod(|p| p["status"]["conditions"][1]["status"] = json!("False"));
    assert_eq!(not_ready_conditions(&not_ready, now), None);
    assert_eq!(not_ready_conditions(&pod(|p| p["status"] = json!({})), now), None);
}

#[test]
fn eviction_waits_for_the_shortest_toleration() {
    let unreachable = [taint(TAINT_UNREACHABLE, "2026-01-01T00:10:00Z")];
    let explicit = pod(tolerating(json!([
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 2},
        {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 60},
    ])));
    assert_eq!(
        eviction_at(&explicit, &unreachable, DEFAULT),
        Some(at("2026-01-01T00:10:02Z"))
    );

    let forever = pod(tolerating(json!([{"key": TAINT_UNREACHABLE, "operator": "Exists"}])));
    assert_eq!(eviction_at(&forever, &unreachable, DEFAULT), None);

    // No toleration for the taint at all: the admission default applies.
    assert_eq!(
        eviction_at(&pod(|_| {}), &unreachable, Duration::from_secs(3)),
        Some(at("2026-01-01T00:10:03Z"))
    );

    // Someone else's NoExecute taint, not tolerated: at once (from when it was added).
    let other = [taint("example.com/drain", "2026-01-01T00:10:00Z")];
    assert_eq!(
        eviction_at(&pod(|_| {}), &other, DEFAULT),
        Some(at("2026-01-01T00:10:00Z"))
    );
    let negative = pod(tolerating(
        json!([{"key": "example.com/drain", "operator": "Exists", "tolerationSeconds": -5}]),
    ));
    assert_eq!(
        eviction_at(&negative, &other, DEFAULT),
        Some(at("2026-01-01T00:10:00Z"))
    );

    // NoSchedule taints never evict; a pod newer than the taint counts from its creation.
    let soft = [Taint {
        effect: "NoSchedule".into(),
        ..taint(TAINT_UNREACHABLE, "2026-01-01T00:10:00Z")
    }];
    assert_eq!(eviction_at(&pod(|_| {}), &soft, DEFAULT), None);
    let young = pod(|p| {
        p["metadata"]["creationTimestamp"] = json!("2026-01-01T00:20:00Z");
        p["spec"]["tolerations"] = json!([{"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": 5}]);
    });
    assert_eq!(
        eviction_at(&young, &unreachable, DEFAULT),
        Some(at("2026-01-01T00:20:05Z"))
    );
}

#[test]
fn removal_of_terminating_and_orphaned_pods() {
    let terminating = pod(|p| {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    });
    let deadline = Some(at("2026-01-01T00:00:30Z"));
    assert_eq!(removal_at(&terminating, NodeState::NotReady), deadline);
    assert_eq!(
        removal_at(&terminating, NodeState::Missing(at("2026-01-01T00:00:00Z"))),
        deadline
    );
    assert_eq!(
        removal_at(&terminating, NodeState::Ready),
        COLLECT_EXPIRED_ON_READY_NODES.then_some(at("2026-01-01T00:00:30Z"))
    );

    let running = pod(|_| {});
    assert_eq!(removal_at(&running, NodeState::Ready), None);
    assert_eq!(removal_at(&running, NodeState::NotReady), None);
    assert_eq!(
        removal_at(&running, NodeState::Missing(at("2026-01-01T00:01:00Z"))),
        Some(at("2026-01-01T00:01:40Z")),
        "orphans wait out the quarantine"
    );

    let finalized = pod(|p| {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
        p["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        p["metadata"]["finalizers"] = json!(["example.com/keep"]);
    });
    assert_eq!(
        removal_at(&finalized, NodeState::NotReady),
        None,
        "only finalizers hold it"
    );
}
