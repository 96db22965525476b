use super::*;
use serde_json::json;

fn node(name: &str, tweak: impl FnOnce(&mut serde_json::Value)) -> Node {
    let mut node = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    });
    tweak(&mut node);
    serde_json::from_value(node).unwrap()
}

fn pod(name: &str, tweak: impl FnOnce(&mut serde_json::Value)) -> Pod {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending"},
    });
    tweak(&mut pod);
    serde_json::from_value(pod).unwrap()
}

fn tainted(key: &'static str, value: &'static str, effect: &'static str) -> impl FnOnce(&mut serde_json::Value) {
    move |n| n["spec"]["taints"] = json!([{"key": key, "value": value, "effect": effect}])
}

fn cordoned(n: &mut serde_json::Value) {
    n["spec"]["unschedulable"] = json!(true);
}

fn on(node: &'static str) -> impl FnOnce(&mut serde_json::Value) {
    move |p| p["spec"]["nodeName"] = json!(node)
}

#[test]
fn pending_means_unbound_ours_and_alive() {
    assert!(is_pending(&pod("a", |_| {})));
    assert!(is_pending(
        &pod("a", |p| p["spec"]["schedulerName"] = json!("default-scheduler"))
    ));
    assert!(!is_pending(&pod("a", on("n1"))));
    assert!(!is_pending(&pod("a", |p| p["spec"]["schedulerName"] = json!("other"))));
    assert!(!is_pending(
        &pod("a", |p| p["spec"]["schedulingGates"] = json!([{"name": "g"}]))
    ));
    assert!(!is_pending(&pod("a", |p| p["metadata"]["deletionTimestamp"] =
        json!("2026-01-01T00:00:00Z"))));
    assert!(!is_pending(&pod("a", |p| p["status"]["phase"] = json!("Failed"))));
}

#[test]
fn tolerations_match_as_upstream() {
    let taint = Taint {
        key: "dedicated".into(),
        value: Some("db".into()),
        effect: "NoSchedule".into(),
        time_added: None,
    };
    let t = |v: serde_json::Value| -> Toleration { serde_json::from_value(v).unwrap() };
    assert!(tolerates(&t(json!({"key": "dedicated", "value": "db"})), &taint));
    assert!(tolerates(
        &t(json!({"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"})),
        &taint
    ));
    assert!(!tolerates(&t(json!({"key": "dedicated", "value": "web"})), &taint));
    assert!(tolerates(&t(json!({"key": "dedicated", "operator": "Exists"})), &taint));
    assert!(!tolerates(
        &t(json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"})),
        &taint
    ));
    assert!(tolerates(&t(json!({"operator": "Exists"})), &taint));
    assert!(!tolerates(&t(json!({"key": "other", "operator": "Exists"})), &taint));
    assert!(!tolerates(
        &t(json!({"key": "dedicated", "operator": "Gt", "value": "db"})),
        &taint
    ));
}

#[test]
fn spreads_by_pod_count_with_ties_by_name() {
    let nodes = [node("n2", |_| {}), node("n1", |_| {}), node("n3", |_| {})];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let running = [
        pod("r1", on("n1")),
        pod("r2", on("n1")),
        pod("r3", on("n2")),
        pod("done", |p| {
            p["spec"]["nodeName"] = json!("n3");
            p["status"]["phase"] = json!("Succeeded");
        }),
    ];
    let load = load(running.iter());
    assert_eq!(load.get("n3"), None, "finished pods do not count");
    let pending: Vec<Pod> = (0..5).map(|i| pod(&format!("p{i}"), |_| {})).collect();
    let pending: Vec<&Pod> = pending.iter().collect();
    let placed: Vec<String> = plan(&pending, &nodes, load)
        .into_iter()
        .map(|(_, outcome)| outcome.unwrap())
        .collect();
    // n3 (0) -> n2 and n3 tie at 1, n2 wins by name -> n3 (1) -> all at 2, n1 by name.
    assert_eq!(placed, ["n3", "n2", "n3", "n1", "n2"]);
}

#[test]
fn plan_goes_by_priority_then_age() {
    let nodes = [node("n1", |_| {}), node("n2", |_| {})];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let old = pod("old", |p| {
        p["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z")
    });
    let young = pod("young", |_| {});
    let urgent = pod("urgent", |p| p["spec"]["priority"] = json!(1000));
    let order: Vec<_> = plan(&[&young, &old, &urgent], &nodes, Load::new())
        .into_iter()
        .map(|(p, node)| (p.metadata.name.clone().unwrap(), node.unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            ("urgent".into(), "n1".into()),
            ("old".into(), "n2".into()),
            ("young".to_string(), "n1".to_string())
        ]
    );
}

#[test]
fn filters_selector_taints_cordon_and_readiness() {
    let ssd = node("ssd", |n| n["metadata"]["labels"]["disk"] = json!("ssd"));
    let hdd = node("hdd", |n| n["metadata"]["labels"]["disk"] = json!("hdd"));
    let wants_ssd = pod("p", |p| p["spec"]["nodeSelector"] = json!({"disk": "ssd"}));
    assert_eq!(pick(&wants_ssd, &[&hdd, &ssd], &Load::new()), Ok("ssd".into()));
    assert_eq!(check(&wants_ssd, &hdd), Err(Unfit::Selector));

    let db = node("db", tainted("dedicated", "db", "NoSchedule"));
    let plain = pod("p", |_| {});
    assert_eq!(
        check(&plain, &db),
        Err(Unfit::Taint {
            key: "dedicated".into(),
            value: "db".into()
        })
    );
    let tolerant = pod("p", |p| {
        p["spec"]["tolerations"] = json!([{"key": "dedicated", "operator": "Exists"}])
    });
    assert_eq!(check(&tolerant, &db), Ok(()));
    let soft = node("soft", tainted("dedicated", "db", "PreferNoSchedule"));
    assert_eq!(check(&plain, &soft), Ok(()), "PreferNoSchedule does not filter");
    let evicting = node("x", tainted("node.kubernetes.io/unreachable", "", "NoExecute"));
    assert!(matches!(check(&plain, &evicting), Err(Unfit::Taint { .. })));

    let cordon = node("c", cordoned);
    assert_eq!(check(&plain, &cordon), Err(Unfit::Unschedulable));
    let tolerates_cordon =
        pod(
            "p",
            |p| {
                p["spec"]["tolerations"] =
                    json!([{"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}])
            },
        );
    assert_eq!(check(&tolerates_cordon, &cordon), Ok(()));

    let not_ready = node("nr", |n| n["status"]["conditions"][0]["status"] = json!("Unknown"));
    assert_eq!(check(&plain, &not_ready), Err(Unfit::NotReady));
    let no_status = node("ns", |n| n["status"] = json!({}));
    assert_eq!(check(&plain, &no_status), Err(Unfit::NotReady));
}

#[test]
fn fit_errors_read_like_upstream() {
    let a = node("a", tainted("node.kubernetes.io/unreachable", "", "NoSchedule"));
    let b = node("b", cordoned);
    let c = node("c", cordoned);
    let err = pick(&pod("p", |_| {}), &[&a, &b, &c], &Load::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 2 node(s) were unschedulable."
    );
    let d = node("d", |_| {});
    let err = pick(
        &pod("p", |p| p["spec"]["nodeSelector"] = json!({"disk": "none"})),
        &[&b, &d],
        &Load::new(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0/2 nodes are available: 1 node(s) didn't match Node's node affinity/selector, 1 node(s) were unschedulable."
    );
    let err = pick(&pod("p", |_| {}), &[], &Load::new()).unwrap_err();
    assert_eq!(err.to_string(), "no nodes available to schedule pods");
}

#[test]
fn unschedulable_condition_is_written_once_per_message() {
    let now: jiff::Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
    let fresh = pod("p", |_| {});
    let conditions =
        unschedulable_conditions(&fresh, "0/1 nodes are available: 1 node(s) were unschedulable.", now).unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_, "PodScheduled");
    assert_eq!(conditions[0].status, "False");
    assert_eq!(conditions[0].reason.as_deref(), Some("Unschedulable"));

    let mut with = fresh.clone();
    with.status.as_mut().unwrap().conditions = Some(conditions.clone());
    assert_eq!(
        unschedulable_conditions(&with, "0/1 nodes are available: 1 node(s) were unschedulable.", now),
        None
    );
    let later: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
    let changed = unschedulable_conditions(&with, "no nodes available to schedule pods", later).unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0].message.as_deref(),
        Some("no nodes available to schedule pods")
    );
    assert_eq!(
        changed[0].last_transition_time,
        Some(Time(now)),
        "still False since the first write"
    );
}
