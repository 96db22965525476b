//! Container probes (readiness, liveness, startup) as the kubelet runs them: httpGet and
//! tcpSocket from the node to the pod IP, exec inside the pod's namespaces, with the thresholds
//! deciding when a result flips. [`Prober`] is the state machine (pure, on given instants);
//! [`check`] does one probe.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Readiness,
    Liveness,
    Startup,
}

/// What one probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Http {
        port: u16,
        path: String,
        https: bool,
    },
    Tcp {
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
    /// A probe the agent cannot run (gRPC, an unknown named port): it always fails, so the
    /// problem shows as an unready pod instead of a silently ready one.
    Unsupported(String),
}

/// A probe and its progress.
#[derive(Debug, Clone)]
pub struct Prober {
    pub kind: Kind,
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    successes: u32,
    failures: u32,
    /// The probe's verdict: liveness starts as not failed; readiness and startup start false
    /// (not ready, not started yet).
    pub result: bool,
    pub next_at: Instant,
}

fn secs(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(u64::try_from(v.unwrap_or(default).max(0)).unwrap_or(0))
}

/// A port given by number or by the name of one of the container's ports.
fn resolve_port(port: &IntOrString, container: &Container) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok()),
    }
}

pub fn action(probe: &Probe, container: &Container) -> Action {
    if let Some(http) = &probe.http_get {
        return match resolve_port(&http.port, container) {
            Some(port) => Action::Http {
                port,
                path: http
                    .path
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "/".into()),
                https: http.scheme.as_deref() == Some("HTTPS"),
            },
            None => Action::Unsupported(format!("port {:?}", http.port)),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        return match resolve_port(&tcp.port, container) {
            Some(port) => Action::Tcp { port },
            None => Action::Unsupported(format!("port {:?}", tcp.port)),
        };
    }
    if let Some(exec) = &probe.exec {
        return Action::Exec {
            command: exec.command.clone().unwrap_or_default(),
        };
    }
    Action::Unsupported("no handler".into())
}

impl Prober {
    /// The prober for `probe`, first due `initialDelaySeconds` after `started`.
    pub fn new(kind: Kind, probe: &Probe, container: &Container, started: Instant) -> Prober {
        let initial_delay = secs(probe.initial_delay_seconds, 0);
        Prober {
            kind,
            action: action(probe, container),
            initial_delay,
            period: secs(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: secs(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            // Liveness and startup must succeed once (upstream validation forces 1).
            success_threshold: match kind {
                Kind::Readiness => u32::try_from(probe.success_threshold.unwrap_or(1).max(1)).unwrap_or(1),
                _ => 1,
            },
            failure_threshold: u32::try_from(probe.failure_threshold.unwrap_or(3).max(1)).unwrap_or(3),
            successes: 0,
            failures: 0,
            result: kind == Kind::Liveness,
            next_at: started + initial_delay,
        }
    }

    /// Records one result at `now`; true when the verdict changed.
    pub fn record(&mut self, ok: bool, now: Instant) -> bool {
        self.next_at = now + self.period;
        if ok {
            self.failures = 0;
            self.successes += 1;
            if !self.result && self.successes >= self.success_threshold {
                self.result = true;
                return true;
            }
        } else {
            self.successes = 0;
            self.failures += 1;
            if self.result && self.failures >= self.failure_threshold {
                self.result = false;
                return true;
            }
        }
        false
    }

    /// Whether failures reached the threshold (a startup probe that gives up).
    pub fn failed_out(&self) -> bool {
        self.failures >= self.failure_threshold
    }

    /// Starts over (a restarted container).
    pub fn reset(&mut self, started: Instant) {
        self.successes = 0;
        self.failures = 0;
        self.result = self.kind == Kind::Liveness;
        self.next_at = started + self.initial_delay;
    }

    pub fn due(&self, now: Instant) -> bool {
        now >= self.next_at
    }
}

/// Runs one probe against the pod at `ip` (exec: inside `netns`); false on failure or timeout.
pub async fn check(action: &Action, ip: Ipv4Addr, netns: &str, timeout: Duration) -> bool {
    let attempt = async {
        match action {
            Action::Http { port, path, https } => !*https && http_ok(SocketAddr::from((ip, *port)), path).await,
            Action::Tcp { port } => tokio::net::TcpStream::connect(SocketAddr::from((ip, *port)))
                .await
                .is_ok(),
            Action::Exec { command } => exec_ok(netns, command).await,
            Action::Unsupported(_) => false,
        }
    };
    tokio::time::timeout(timeout, attempt).await.unwrap_or(false)
}

/// GET `path`; success is a status in 200..400, as upstream.
async fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return false;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < 8192 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    status_ok(&head)
}

/// Whether a response's status line says 2xx or 3xx.
pub fn status_ok(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    matches!(code, Some(200..=399))
}

async fn exec_ok(netns: &str, command: &[String]) -> bool {
    if command.is_empty() {
        return false;
    }
    let Ok(command) = crate::enter::command(netns, command) else {
        return false;
    };
    let status = tokio::process::Command::from(command)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    matches!(status, Ok(s) if s.success())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container() -> Container {
        serde_json::from_value(json!({"name": "c", "ports": [{"name": "http", "containerPort": 8080}]})).unwrap()
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn actions_resolve_named_ports() {
        let c = container();
        assert_eq!(
            action(&probe(json!({"httpGet": {"port": "http", "path": "/healthz"}})), &c),
            Action::Http {
                port: 8080,
                path: "/healthz".into(),
                https: false
            }
        );
        assert_eq!(
            action(&probe(json!({"tcpSocket": {"port": 53}})), &c),
            Action::Tcp { port: 53 }
        );
        assert!(matches!(
            action(&probe(json!({"tcpSocket": {"port": "dns"}})), &c),
            Action::Unsupported(_)
        ));
        assert_eq!(
            action(&probe(json!({"exec": {"command": ["true"]}})), &c),
            Action::Exec {
                command: vec!["true".into()]
            }
        );
    }

    #[test]
    fn thresholds_decide_flips() {
        let start = Instant::now();
        let spec = probe(
            json!({"tcpSocket": {"port": 1}, "initialDelaySeconds": 2, "periodSeconds": 1,
                                 "successThreshold": 2, "failureThreshold": 2}),
        );
        let mut p = Prober::new(Kind::Readiness, &spec, &container(), start);
        assert!(!p.result);
        assert!(!p.due(start));
        assert!(p.due(start + Duration::from_secs(2)));
        assert!(!p.record(true, start));
        assert!(p.record(true, start), "second success makes it ready");
        assert!(p.result);
        assert!(!p.record(false, start));
        assert!(!p.record(true, start), "a success resets the failure count");
        assert!(!p.record(false, start));
        assert!(p.record(false, start), "two failures in a row make it unready");
        assert!(!p.result);
        assert_eq!(p.next_at, start + Duration::from_secs(1));

        let mut live = Prober::new(
            Kind::Liveness,
            &probe(json!({"exec": {"command": ["x"]}})),
            &container(),
            start,
        );
        assert!(live.result);
        assert!(!live.record(false, start) && !live.record(false, start));
        assert!(live.record(false, start), "default failureThreshold is 3");
        live.reset(start);
        assert!(live.result);
    }

    #[test]
    fn http_status_lines() {
        assert!(status_ok(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_ok(b"HTTP/1.1 302 Found\r\n"));
        assert!(!status_ok(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!status_ok(b""));
    }
}
