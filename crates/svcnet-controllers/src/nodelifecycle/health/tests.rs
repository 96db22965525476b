use super::*;
use serde_json::json;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn node(tweak: impl FnOnce(&mut serde_json::Value)) -> Node {
    let mut node = json!({
        "metadata": {"name": "n1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {},
        "status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": "2026-01-01T00:00:10Z", "lastTransitionTime": "2026-01-01T00:00:10Z"},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
        ]},
    });
    tweak(&mut node);
    serde_json::from_value(node).unwrap()
}

fn lease(renewed: &str) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40, "renewTime": renewed},
    }))
    .unwrap()
}

fn ready(status: &'static str) -> impl FnOnce(&mut serde_json::Value) {
    move |n| n["status"]["conditions"][0]["status"] = json!(status)
}

fn keys(taints: &[Taint]) -> Vec<(String, String)> {
    taints.iter().map(|t| (t.key.clone(), t.effect.clone())).collect()
}

#[test]
fn heartbeat_is_the_latest_sign_of_life() {
    let start = at("2025-01-01T00:00:00Z");
    let n = node(|_| {});
    assert_eq!(last_heartbeat(&n, None, start), at("2026-01-01T00:00:10Z"));
    let renewed = lease("2026-01-01T00:01:00.250000Z");
    assert_eq!(last_heartbeat(&n, Some(&renewed), start), at("2026-01-01T00:01:00.25Z"));
    let bare = node(|n| n["status"] = json!({}));
    assert_eq!(
        last_heartbeat(&bare, None, start),
        at("2026-01-01T00:00:00Z"),
        "creation"
    );
    let restarted = at("2026-06-01T00:00:00Z");
    assert_eq!(
        last_heartbeat(&n, Some(&renewed), restarted),
        restarted,
        "a new controller waits a full grace"
    );
    assert_eq!(
        stale_at(at("2026-01-01T00:00:00Z"), Duration::from_millis(2500)),
        at("2026-01-01T00:00:02.5Z")
    );
}

#[test]
fn stale_nodes_report_unknown_once() {
    let now = at("2026-01-01T00:05:00Z");
    let conditions = stale_conditions(&node(|_| {}), now).unwrap();
    let by_type = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap();
    let ready = by_type("Ready");
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(ready.message.as_deref(), Some("Kubelet stopped posting node status."));
    assert_eq!(
        ready.last_heartbeat_time,
        Some(Time(at("2026-01-01T00:00:10Z"))),
        "heartbeat kept"
    );
    assert_eq!(ready.last_transition_time, Some(Time(now)));
    assert_eq!(by_type("MemoryPressure").reason.as_deref(), Some("NodeStatusUnknown"));
    for never in ["DiskPressure", "PIDPressure"] {
        assert_eq!(by_type(never).status, "Unknown");
        assert_eq!(by_type(never).reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            by_type(never).message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }
    let mut marked = node(|_| {});
    marked.status.as_mut().unwrap().conditions = Some(conditions);
    assert_eq!(stale_conditions(&marked, now), None);
}

#[test]
fn taints_follow_readiness_and_cordon() {
    let now = at("2026-01-01T00:05:00Z");
    assert_eq!(desired_taints(&node(|_| {}), now), None, "a Ready node needs none");

    let unknown = desired_taints(&node(ready("Unknown")), now).unwrap();
    assert_eq!(
        keys(&unknown),
        [
            (TAINT_UNREACHABLE.into(), "NoSchedule".into()),
            (TAINT_UNREACHABLE.into(), "NoExecute".into())
        ]
    );
    assert!(unknown.iter().all(|t| t.time_added == Some(Time(now))));

    // Unknown -> False swaps unreachable for not-ready and keeps others' taints.
    let was_unknown = node(|n| {
        n["status"]["conditions"][0]["status"] = json!("False");
        n["spec"]["taints"] = json!([
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:01:00Z"},
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        ]);
    });
    let swapped = desired_taints(&was_unknown, now).unwrap();
    assert_eq!(
        keys(&swapped),
        [
            ("dedicated".into(), "NoSchedule".into()),
            (TAINT_NOT_READY.into(), "NoSchedule".into()),
            (TAINT_NOT_READY.into(), "NoExecute".into())
        ]
    );

    // Already right: no change, timeAdded kept.
    let settled = node(|n| {
        n["status"]["conditions"][0]["status"] = json!("Unknown");
        n["spec"]["taints"] = json!([
            {"key": TAINT_UNREACHABLE, "effect": "NoSchedule", "timeAdded": "2026-01-01T00:01:00Z"},
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:01:00Z"},
        ]);
    });
    assert_eq!(desired_taints(&settled, now), None);

    // Recovered: managed taints go, the rest stays.
    let recovered = node(|n| {
        n["spec"]["taints"] = json!([
            {"key": TAINT_UNREACHABLE, "effect": "NoExecute", "timeAdded": "2026-01-01T00:01:00Z"},
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
        ]);
    });
    assert_eq!(
        keys(&desired_taints(&recovered, now).unwrap()),
        [("dedicated".to_string(), "NoSchedule".to_string())]
    );

    let cordoned = node(|n| n["spec"]["unschedulable"] = json!(true));
    assert_eq!(
        keys(&desired_taints(&cordoned, now).unwrap()),
        [(TAINT_UNSCHEDULABLE.to_string(), "NoSchedule".to_string())]
    );
    let uncordoned = node(|n| n["spec"]["taints"] = json!([{"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}]));
    assert_eq!(desired_taints(&uncordoned, now), Some(vec![]));
}
