//! Transports. UDP: one blocking thread per core, each with its own `SO_REUSEPORT` socket,
//! reading and writing batches with `recvmmsg`/`sendmmsg`, answering from the current zone
//! snapshot (one atomic load per batch, no lock). TCP (RFC 7766): tokio, queries on a
//! connection answered in order, 10 s idle timeout. Queries that need the upstream go to a
//! tokio task so the UDP loop never waits on the network.

use std::io;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::answer::{self, complete_chase, Outcome, Transport};
use crate::metrics::{reply_rcode, Metrics, WorkerStats};
use crate::upstream::Upstream;
use crate::wire;
use crate::zone::Zone;

/// Queries read per `recvmmsg`.
const BATCH: usize = 32;
/// Largest query accepted over UDP (a query is one question plus an OPT).
const MAX_UDP_QUERY: usize = 1500;
/// TCP idle timeout between queries (CoreDNS: 10 s).
const TCP_IDLE: Duration = Duration::from_secs(10);

/// What the transports share.
#[derive(Clone)]
pub struct Shared {
    pub zone: Arc<ArcSwap<Zone>>,
    pub metrics: Arc<Metrics>,
    pub upstream: Option<Arc<Upstream>>,
    /// Where UDP threads hand queries that need the upstream.
    pub runtime: tokio::runtime::Handle,
}

/// Binds one `SO_REUSEPORT` UDP socket per thread. Bound sockets queue queries in the kernel
/// until `start_udp` reads them, so a restarting server can bind first and load the zone after
/// without refusing clients meanwhile.
pub fn bind_udp(address: SocketAddr, threads: usize) -> io::Result<Vec<UdpSocket>> {
    let first = reuseport_udp(address)?;
    // Port 0: the first socket picks it, the others join it.
    let bound = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..threads.max(1) {
        sockets.push(reuseport_udp(bound)?);
    }
    Ok(sockets)
}

/// Starts one answering thread per socket.
pub fn start_udp(sockets: Vec<UdpSocket>, shared: &Shared) -> io::Result<()> {
    for (index, socket) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let stats = shared.metrics.worker("udp");
        std::thread::Builder::new()
            .name(format!("dns-udp-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || udp_loop(Arc::new(socket), shared, stats))?;
    }
    Ok(())
}

fn reuseport_udp(address: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(address), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    Ok(socket.into())
}

/// Receive and send buffers of one UDP thread, with the `mmsghdr` arrays pointing into them.
struct Batch {
    queries: Vec<[u8; MAX_UDP_QUERY]>,
    replies: Vec<[u8; wire::OWN_UDP_PAYLOAD as usize]>,
    peers: Vec<libc::sockaddr_storage>,
    rx_iov: Vec<libc::iovec>,
    tx_iov: Vec<libc::iovec>,
    rx: Vec<libc::mmsghdr>,
    tx: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Box<Batch> {
        // SAFETY: all-zero is a valid value for these plain C structs.
        let zeroed_storage: libc::sockaddr_storage = unsafe { MaybeUninit::zeroed().assume_init() };
        let zeroed_hdr: libc::mmsghdr = unsafe { MaybeUninit::zeroed().assume_init() };
        let empty_iov = libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        };
        let mut batch = Box::new(Batch {
            queries: vec![[0; MAX_UDP_QUERY]; BATCH],
            replies: vec![[0; wire::OWN_UDP_PAYLOAD as usize]; BATCH],
            peers: vec![zeroed_storage; BATCH],
            rx_iov: vec![empty_iov; BATCH],
            tx_iov: vec![empty_iov; BATCH],
            rx: vec![zeroed_hdr; BATCH],
            tx: vec![zeroed_hdr; BATCH],
        });
        for i in 0..BATCH {
            batch.rx_iov[i] = libc::iovec {
                iov_base: batch.queries[i].as_mut_ptr().cast(),
                iov_len: MAX_UDP_QUERY,
            };
            let iov = &mut batch.rx_iov[i] as *mut libc::iovec;
            let peer = &mut batch.peers[i] as *mut libc::sockaddr_storage;
            batch.rx[i].msg_hdr.msg_iov = iov;
            batch.rx[i].msg_hdr.msg_iovlen = 1;
            batch.rx[i].msg_hdr.msg_name = peer.cast();
        }
        batch
    }

    /// Resets the lengths the kernel overwrote on the previous receive.
    fn rearm(&mut self) {
        for hdr in &mut self.rx {
            hdr.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            hdr.msg_len = 0;
        }
    }

    /// Queues reply `slot` (already written into `replies[slot]`) to the peer of query `from`.
    fn queue_reply(&mut self, out: usize, slot: usize, from: usize, len: usize) {
        self.tx_iov[out] = libc::iovec {
            iov_base: self.replies[slot].as_mut_ptr().cast(),
            iov_len: len,
        };
        let iov = &mut self.tx_iov[out] as *mut libc::iovec;
        let hdr = &mut self.tx[out].msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        hdr.msg_name = (&mut self.peers[from] as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = self.rx[from].msg_hdr.msg_namelen;
    }
}

fn udp_loop(socket: Arc<UdpSocket>, shared: Shared, stats: Arc<WorkerStats>) {
    let fd = socket.as_raw_fd();
    let mut batch = Batch::new();
    loop {
        batch.rearm();
        // SAFETY: the headers point into `batch`, which outlives the call; BATCH entries.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                batch.rx.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if received < 0 {
            let error = io::Error::last_os_error();
            if error.kind() != io::ErrorKind::Interrupted {
                tracing::warn!(%error, "recvmmsg failed");
                std::thread::sleep(Duration::from_millis(10));
            }
            continue;
        }
        let zone = shared.zone.load();
        let mut queued = 0;
        for i in 0..received as usize {
            let started = Instant::now();
            let len = (batch.rx[i].msg_len as usize).min(MAX_UDP_QUERY);
            let (queries, replies) = (&batch.queries, &mut batch.replies);
            let outcome = answer::answer(&zone, &queries[i][..len], &mut replies[queued], Transport::Udp);
            match outcome {
                Outcome::Reply(reply_len) => {
                    stats.record(reply_rcode(&batch.replies[queued]), started.elapsed());
                    batch.queue_reply(queued, queued, i, reply_len);
                    queued += 1;
                }
                Outcome::Drop => stats.record(None, started.elapsed()),
                Outcome::Forward | Outcome::Chase { .. } => {
                    let Some(peer) = peer_address(&batch.peers[i]) else {
                        continue;
                    };
                    let packet = batch.queries[i][..len].to_vec();
                    let replies = ReplyTo::Udp {
                        socket: socket.clone(),
                        peer,
                    };
                    spawn_upstream(&shared, packet, replies, stats.clone(), started);
                }
            }
        }
        send_all(fd, &mut batch.tx[..queued]);
    }
}

/// Sends every queued reply; `sendmmsg` may stop early, and a failed datagram is skipped.
fn send_all(fd: i32, headers: &mut [libc::mmsghdr]) {
    let mut sent = 0;
    while sent < headers.len() {
        let rest = &mut headers[sent..];
        // SAFETY: the headers point into the live batch buffers.
        let n = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
        if n <= 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // The datagram at `sent` cannot go (e.g. the peer address is bad): skip it.
            sent += 1;
        } else {
            sent += n as usize;
        }
    }
}

fn peer_address(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    // SAFETY: the kernel filled a sockaddr_in or sockaddr_in6 according to ss_family.
    unsafe {
        match storage.ss_family as i32 {
            libc::AF_INET => {
                let sin = &*(storage as *const _ as *const libc::sockaddr_in);
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::from((ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(storage as *const _ as *const libc::sockaddr_in6);
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::from((ip, u16::from_be(sin6.sin6_port))))
            }
            _ => None,
        }
    }
}

/// Where an upstream-bound query's reply goes.
enum ReplyTo {
    Udp { socket: Arc<UdpSocket>, peer: SocketAddr },
}

fn spawn_upstream(shared: &Shared, packet: Vec<u8>, reply_to: ReplyTo, stats: Arc<WorkerStats>, started: Instant) {
    let shared = shared.clone();
    shared.runtime.clone().spawn(async move {
        let Some(reply) = resolve_outside(&shared, &packet, Transport::Udp).await else {
            return;
        };
        stats.record(reply_rcode(&reply), started.elapsed());
        match reply_to {
            ReplyTo::Udp { socket, peer } => {
                let _ = socket.send_to(&reply, peer);
            }
        }
    });
}

/// Answers a query whose answer involves the upstream (forward or ExternalName chase).
async fn resolve_outside(shared: &Shared, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let query = wire::parse_query(packet).ok()?;
    let upstream = shared.upstream.as_ref()?;
    let mut out = vec![0u8; u16::MAX as usize];
    let zone = shared.zone.load_full();
    match answer::respond(&zone, &query, &mut out, transport) {
        Outcome::Reply(len) => Some(out[..len].to_vec()),
        Outcome::Drop => None,
        Outcome::Forward => Some(upstream.forward(&query, packet, transport).await),
        Outcome::Chase { len, target } => {
            let chased = upstream.resolve(&target, query.qtype).await.unwrap_or_default();
            let len = complete_chase(&mut out, len, &query, transport, &chased);
            Some(out[..len].to_vec())
        }
    }
}

/// Accepts TCP connections and serves each on its own task.
pub async fn serve_tcp(listener: tokio::net::TcpListener, shared: Shared) {
    let stats = shared.metrics.worker("tcp");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let _ = serve_connection(stream, shared, stats).await;
        });
    }
}

/// Length-prefixed queries, answered in order; the connection closes after the idle timeout,
/// on EOF, or when a message cannot be read.
async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    shared: Shared,
    stats: Arc<WorkerStats>,
) -> io::Result<()> {
    let mut query = vec![0u8; u16::MAX as usize];
    let mut out = vec![0u8; u16::MAX as usize + 2];
    loop {
        let Ok(len) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
            return Ok(());
        };
        let len = len? as usize;
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut query[..len])).await??;
        let started = Instant::now();
        let packet = &query[..len];
        let zone = shared.zone.load_full();
        let reply_len = match answer::answer(&zone, packet, &mut out[2..], Transport::Tcp) {
            Outcome::Reply(n) => n,
            Outcome::Drop => {
                stats.record(None, started.elapsed());
                continue;
            }
            Outcome::Forward | Outcome::Chase { .. } => match resolve_outside(&shared, packet, Transport::Tcp).await {
                Some(reply) => {
                    let n = reply.len().min(u16::MAX as usize);
                    out[2..2 + n].copy_from_slice(&reply[..n]);
                    n
                }
                None => continue,
            },
        };
        stats.record(reply_rcode(&out[2..2 + reply_len]), started.elapsed());
        // Length and message in one write (RFC 7766 §8).
        out[..2].copy_from_slice(&(reply_len as u16).to_be_bytes());
        stream.write_all(&out[..2 + reply_len]).await?;
    }
}
