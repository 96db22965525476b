//! `svcnet echo`: the built-in workload of containers without a command. It serves every given
//! port and answers with who it is (pod, namespace, node, pod IP from the environment the agent
//! sets) and the client address it saw, so tests can check load balancing and source-IP
//! preservation. TCP ports speak HTTP/1.1 with keep-alive; a TCP connection whose first bytes are
//! not HTTP gets the JSON line and then its bytes echoed back; UDP answers each datagram.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// `svcnet echo` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct EchoArgs {
    /// A port to serve, `P`, `P/tcp` or `P/udp` (repeatable; default 8080/tcp).
    #[arg(long = "port", env = "SVCNET_ECHO_PORTS", value_delimiter = ',')]
    pub ports: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Parses `P`, `P/tcp` or `P/udp` (protocol case-insensitive).
pub fn parse_port(text: &str) -> anyhow::Result<(u16, Proto)> {
    let (port, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let port: u16 = port.trim().parse().with_context(|| format!("port {text:?}"))?;
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        other => bail!("port {text:?}: protocol {other:?} is not tcp or udp"),
    };
    Ok((port, proto))
}

/// Who answers: from POD_NAME, POD_NAMESPACE, NODE_NAME and POD_IP.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub pod: String,
    pub namespace: String,
    pub node: String,
    pub pod_ip: String,
}

impl Identity {
    pub fn from_env() -> Identity {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        Identity {
            pod: var("POD_NAME"),
            namespace: var("POD_NAMESPACE"),
            node: var("NODE_NAME"),
            pod_ip: var("POD_IP"),
        }
    }
}

/// What a request is answered with. Later tests read these field names: keep them.
pub fn answer(me: &Identity, client: SocketAddr, server_port: u16, protocol: &str, method: &str, path: &str) -> Value {
    json!({
        "pod": me.pod,
        "namespace": me.namespace,
        "node": me.node,
        "podIP": me.pod_ip,
        "client": client.to_string(),
        "clientIP": client.ip().to_canonical().to_string(),
        "clientPort": client.port(),
        "serverPort": server_port,
        "protocol": protocol,
        "method": method,
        "path": path,
    })
}

/// Serves every port until the process ends.
pub async fn run(args: EchoArgs) -> anyhow::Result<()> {
    let me = Identity::from_env();
    let specs = if args.ports.is_empty() {
        vec!["8080/tcp".to_string()]
    } else {
        args.ports
    };
    let mut tasks = tokio::task::JoinSet::new();
    for spec in specs.iter().filter(|s| !s.trim().is_empty()) {
        let (port, proto) = parse_port(spec)?;
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
        match proto {
            Proto::Tcp => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}/tcp"))?;
                tasks.spawn(serve_tcp(listener, me.clone()));
            }
            Proto::Udp => {
                let socket = UdpSocket::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}/udp"))?;
                tasks.spawn(serve_udp(socket, me.clone()));
            }
        }
    }
    // One line for `svcnet logs`, once every port listens.
    println!(
        "svcnet echo: pod {:?} on node {:?} serving {}",
        me.pod,
        me.node,
        specs.join(", ")
    );
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

async fn serve_tcp(listener: TcpListener, me: Identity) -> anyhow::Result<()> {
    let port = listener.local_addr()?.port();
    loop {
        let (stream, client) = listener.accept().await?;
        let me = me.clone();
        tokio::spawn(async move {
            if let Err(err) = serve_connection(stream, client, port, &me).await {
                tracing::debug!(%client, error = %err, "echo connection ended");
            }
        });
    }
}

async fn serve_udp(socket: UdpSocket, me: Identity) -> anyhow::Result<()> {
    let port = socket.local_addr()?.port();
    let mut buf = vec![0u8; 65536];
    loop {
        let (_, client) = socket.recv_from(&mut buf).await?;
        let mut line = answer(&me, client, port, "UDP", "", "").to_string();
        line.push('\n');
        let _ = socket.send_to(line.as_bytes(), client).await;
    }
}

const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Whether the first bytes of a connection start an HTTP request; None while undecided.
pub fn looks_like_http(first: &[u8]) -> Option<bool> {
    let possible = METHODS.iter().any(|m| {
        let candidate = format!("{m} ");
        let n = first.len().min(candidate.len());
        first[..n] == candidate.as_bytes()[..n]
    });
    if !possible {
        return Some(false);
    }
    let decided = METHODS.iter().any(|m| first.starts_with(format!("{m} ").as_bytes()));
    decided.then_some(true)
}

async fn serve_connection(mut stream: TcpStream, client: SocketAddr, port: u16, me: &Identity) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let http = loop {
        if let Some(decided) = looks_like_http(&buf) {
            break decided;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if http {
        serve_http(stream, buf, client, port, me).await
    } else {
        let mut line = answer(me, client, port, "TCP", "", "").to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).await?;
        stream.write_all(&buf).await?;
        let (mut reader, mut writer) = stream.split();
        tokio::io::copy(&mut reader, &mut writer).await?;
        Ok(())
    }
}

/// The parts of a request head the echo needs.
#[derive(Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    pub content_length: usize,
    pub keep_alive: bool,
    /// Bytes the head took, including the blank line.
    pub len: usize,
}

/// Parses a request head from the start of `buf`; None until the blank line is there.
pub fn parse_head(buf: &[u8]) -> Option<RequestHead> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let mut request = lines.next()?.split(' ');
    let method = request.next()?.to_string();
    let path = request.next().unwrap_or("/").to_string();
    let version = request.next().unwrap_or("HTTP/1.1");
    let mut content_length = 0;
    let mut keep_alive = version != "HTTP/1.0";
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().unwrap_or(0),
            "connection" if value.eq_ignore_ascii_case("close") => keep_alive = false,
            "connection" if value.eq_ignore_ascii_case("keep-alive") => keep_alive = true,
            _ => {}
        }
    }
    Some(RequestHead {
        method,
        path,
        content_length,
        keep_alive,
        len: end,
    })
}

/// A whole HTTP/1.1 response carrying `body`.
pub fn http_response(body: &str, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

const MAX_HEAD: usize = 64 * 1024;

async fn serve_http(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
    client: SocketAddr,
    port: u16,
    me: &Identity,
) -> anyhow::Result<()> {
    loop {
        let head = loop {
            if let Some(head) = parse_head(&buf) {
                break head;
            }
            if buf.len() > MAX_HEAD {
                bail!("request head over {MAX_HEAD} bytes");
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        // The body is read and dropped so the next request on the connection starts clean.
        let mut rest = buf.split_off(head.len.min(buf.len()));
        while rest.len() < head.content_length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        buf = rest.split_off(head.content_length);
        let mut body = answer(me, client, port, "HTTP", &head.method, &head.path).to_string();
        body.push('\n');
        stream
            .write_all(&http_response(&body, head.keep_alive, head.method == "HEAD"))
            .await?;
        if !head.keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_parse() {
        assert_eq!(parse_port("8080").unwrap(), (8080, Proto::Tcp));
        assert_eq!(parse_port("53/UDP").unwrap(), (53, Proto::Udp));
        assert!(parse_port("53/sctp").is_err());
        assert!(parse_port("x").is_err());
    }

    #[test]
    fn answer_has_the_fields_tests_read() {
        let me = Identity {
            pod: "web-1".into(),
            namespace: "default".into(),
            node: "node1".into(),
            pod_ip: "10.244.1.5".into(),
        };
        let v = answer(&me, "10.244.2.7:40000".parse().unwrap(), 8080, "HTTP", "GET", "/x");
        assert_eq!(v["pod"], "web-1");
        assert_eq!(v["namespace"], "default");
        assert_eq!(v["node"], "node1");
        assert_eq!(v["podIP"], "10.244.1.5");
        assert_eq!(v["client"], "10.244.2.7:40000");
        assert_eq!(v["clientIP"], "10.244.2.7");
        assert_eq!(v["clientPort"], 40000);
        assert_eq!(v["serverPort"], 8080);
        assert_eq!(v["protocol"], "HTTP");
        assert_eq!(v["method"], "GET");
        assert_eq!(v["path"], "/x");
    }

    #[test]
    fn http_is_told_from_raw_bytes() {
        assert_eq!(looks_like_http(b""), None);
        assert_eq!(looks_like_http(b"GE"), None);
        assert_eq!(looks_like_http(b"GET /"), Some(true));
        assert_eq!(looks_like_http(b"hello"), Some(false));
        assert_eq!(looks_like_http(b"GETX"), Some(false));
    }

    #[test]
    fn request_heads_parse() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
        let head = parse_head(b"POST /a HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.path, "/a");
        assert_eq!(head.content_length, 3);
        assert!(!head.keep_alive);
        assert_eq!(head.len, 58);
        assert!(!parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        let response = String::from_utf8(http_response("{}\n", true, false)).unwrap();
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(response.contains("Content-Length: 3\r\n"));
        assert!(response.ends_with("\r\n\r\n{}\n"));
    }
}
