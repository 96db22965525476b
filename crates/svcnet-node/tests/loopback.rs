//! The agent's parts that need no namespaces, against real sockets on loopback and an
//! in-process API server: the echo workload, Node registration, status and Lease.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use serde_json::Value;
use svcnet_node::echo::{self, EchoArgs};
use svcnet_node::node::{self, NodeFacts};
use svcnet_node::routes::Cni;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the echo on a free TCP and UDP port with a known identity.
async fn start_echo() -> (u16, u16) {
    std::env::set_var("POD_NAME", "echo-0");
    std::env::set_var("POD_NAMESPACE", "shop");
    std::env::set_var("NODE_NAME", "node9");
    std::env::set_var("POD_IP", "127.0.0.1");
    let (tcp, udp) = (free_port(), free_port());
    let args = EchoArgs {
        ports: vec![tcp.to_string(), format!("{udp}/udp")],
    };
    tokio::spawn(async move { echo::run(args).await.unwrap() });
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", tcp)).is_ok() {
            return (tcp, udp);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("echo did not listen on {tcp}");
}

/// Reads one HTTP response (head + Content-Length body) from `reader`.
fn read_response(reader: &mut BufReader<TcpStream>) -> (String, Value) {
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    (head, serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_http_with_keep_alive_raw_tcp_and_udp() {
    let (tcp, udp) = start_echo().await;
    tokio::task::spawn_blocking(move || {
        // Two requests on one connection (keep-alive), the second with a body.
        let stream = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = stream.local_addr().unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        writer.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (head, first) = read_response(&mut reader);
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert_eq!(first["pod"], "echo-0");
        assert_eq!(first["namespace"], "shop");
        assert_eq!(first["node"], "node9");
        assert_eq!(first["podIP"], "127.0.0.1");
        assert_eq!(first["client"], local.to_string());
        assert_eq!(first["clientPort"], local.port());
        assert_eq!(first["serverPort"], tcp);
        assert_eq!(first["protocol"], "HTTP");
        assert_eq!(first["method"], "GET");
        assert_eq!(first["path"], "/a");
        writer
            .write_all(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap();
        let (_, second) = read_response(&mut reader);
        assert_eq!(second["method"], "POST");
        assert_eq!(second["path"], "/b");
        assert_eq!(second["clientPort"], local.port(), "same connection");

        // Not HTTP: the JSON line, then an echo of the bytes.
        let mut raw = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        raw.write_all(b"ping\n").unwrap();
        let mut reader = BufReader::new(raw.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["protocol"], "TCP");
        let mut echoed = String::new();
        reader.read_line(&mut echoed).unwrap();
        assert_eq!(echoed, "ping\n");
        raw.write_all(b"more\n").unwrap();
        echoed.clear();
        reader.read_line(&mut echoed).unwrap();
        assert_eq!(echoed, "more\n");

        // UDP: one JSON answer per datagram.
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let target: SocketAddr = format!("127.0.0.1:{udp}").parse().unwrap();
        socket.send_to(b"x", target).unwrap();
        let mut buf = [0u8; 2048];
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        let answer: Value = serde_json::from_slice(&buf[..n]).unwrap();
        assert_eq!(answer["protocol"], "UDP");
        assert_eq!(answer["serverPort"], udp);
        assert_eq!(answer["clientPort"], socket.local_addr().unwrap().port());
    })
    .await
    .unwrap();
}

/// An API server on a loopback port with a fresh data dir.
async fn api_server() -> (kube::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let listener = svcnet_apiserver::Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let config = svcnet_apiserver::Config {
        data_dir: dir.path().to_path_buf(),
        listen: address,
        service_network: Default::default(),
    };
    tokio::spawn(async move { svcnet_apiserver::serve(config, listener).await.unwrap() });
    let client = svcnet_node::client_for(&format!("http://{address}")).unwrap();
    for _ in 0..200 {
        if client.apiserver_version().await.is_ok() {
            return (client, dir);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("API server did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_registers_reports_status_and_renews_its_lease() {
    let (client, _dir) = api_server().await;
    let facts = NodeFacts {
        name: "node7".into(),
        ip: "192.168.77.17".parse().unwrap(),
        cni: Cni::FlannelVxlan,
        zone: Some("zone-b".into()),
        cpus: 2,
        memory_kib: 2048,
    };
    let registered = node::register(&client, &facts).await.unwrap();
    // Registering again (an agent restart) updates instead of failing.
    node::register(&client, &facts).await.unwrap();
    let since = jiff::Timestamp::now();
    node::post_status(&client, &facts, true, since).await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    let stored = nodes.get("node7").await.unwrap();
    let labels = stored.metadata.labels.clone().unwrap();
    assert_eq!(labels["topology.kubernetes.io/zone"], "zone-b");
    assert_eq!(labels["kubernetes.io/hostname"], "node7");
    let status = stored.status.clone().unwrap();
    let ready = status
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "True");
    assert_eq!(status.capacity.unwrap()["pods"].0, "110");

    // What other agents read back from this Node for their routes.
    let mut with_cidr = stored.clone();
    with_cidr.spec.get_or_insert_with(Default::default).pod_cidr = Some("10.244.7.0/24".into());
    let info = svcnet_node::agent::node_info(&with_cidr);
    assert_eq!(info.ip, Some("192.168.77.17".parse().unwrap()));
    assert_eq!(info.public_ip, Some("192.168.77.17".parse().unwrap()));
    assert_eq!(info.vtep_mac.as_deref(), Some("0e:f1:c0:a8:4d:11"));
    assert_eq!(info.pod_cidr.unwrap().to_string(), "10.244.7.0/24");

    // The lease is created, then renewed every quarter of its duration.
    let uid = registered.metadata.uid.clone();
    let lease_task = tokio::spawn(node::renew_lease(
        client.clone(),
        "node7".into(),
        uid.clone(),
        Duration::from_secs(1),
    ));
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    let mut renewals = std::collections::BTreeSet::new();
    for _ in 0..300 {
        if let Ok(lease) = leases.get("node7").await {
            let spec = lease.spec.clone().unwrap();
            assert_eq!(spec.holder_identity.as_deref(), Some("node7"));
            assert_eq!(spec.lease_duration_seconds, Some(1));
            let owner = &lease.metadata.owner_references.clone().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str()),
                ("Node", uid.as_deref().unwrap())
            );
            renewals.insert(spec.renew_time.unwrap().0);
            if renewals.len() >= 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lease_task.abort();
    assert!(renewals.len() >= 3, "lease renewals seen: {renewals:?}");
}
