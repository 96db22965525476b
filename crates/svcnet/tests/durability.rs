//! Every acknowledged write survives `kill -9` of the server, and watches resume across restarts.

mod common;

use common::{Kubectl, Server};

#[test]
fn acknowledged_writes_survive_kill_9() {
    let server = Server::start();
    let k = Kubectl::new(33, &server);
    for i in 0..20 {
        k.ok(&["create", "service", "clusterip", &format!("s{i}"), "--tcp=80"]);
    }
    k.ok(&["label", "svc", "s3", "kept=yes"]);
    k.ok(&["delete", "svc", "s4"]);
    let before: serde_json::Value = serde_json::from_str(&k.ok(&["get", "svc", "-o", "json"])).unwrap();

    let data_dir = server.kill();
    let server = Server::start_in(data_dir);
    let k = Kubectl::new(33, &server);
    let after: serde_json::Value = serde_json::from_str(&k.ok(&["get", "svc", "-o", "json"])).unwrap();
    assert_eq!(
        before["items"], after["items"],
        "the same objects, byte for byte, with the same resourceVersions"
    );
    assert_eq!(
        after["items"].as_array().unwrap().len(),
        20,
        "19 created and kept, and default/kubernetes"
    );
    assert!(k.ok(&["get", "svc", "s3", "--show-labels"]).contains("kept=yes"));
    let missing = k.fails(&["get", "svc", "s4"]);
    assert!(missing.contains("NotFound"));
    // The revision counter continues: a new write gets a newer resourceVersion.
    let newest = after["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .max()
        .unwrap();
    let created: serde_json::Value =
        serde_json::from_str(&k.ok(&["create", "service", "clusterip", "fresh", "--tcp=80", "-o", "json"])).unwrap();
    assert!(
        created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            > newest
    );
}
