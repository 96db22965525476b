//! Names outside the cluster zone: relayed to `--upstream` (UDP, then TCP when truncated for a
//! TCP client) with a cache that honours the records' TTLs, positive and negative (RFC 2308 §5:
//! the SOA's TTL capped by its MINIMUM). Without an upstream the query path answers REFUSED, so
//! the server is never an open resolver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::answer::{size_limit, Transport};
use crate::metrics::Metrics;
use crate::wire::{self, rcode, rtype, Query, HEADER_LEN};

/// CoreDNS `forward`'s read timeout per upstream.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Entries kept at most; the oldest half goes when full.
const CACHE_ENTRIES: usize = 10_000;
/// TTLs are capped like CoreDNS `cache` (3600 s).
const MAX_TTL: u32 = 3600;

/// `(lower-case qname, qtype, qclass, DO)`.
type CacheKey = (Box<[u8]>, u16, u16, bool);

struct Entry {
    reply: Vec<u8>,
    stored: Instant,
    ttl: u32,
    negative: bool,
}

/// The forwarder with its cache.
pub struct Upstream {
    address: SocketAddr,
    cache: Mutex<HashMap<CacheKey, Entry>>,
    metrics: Arc<Metrics>,
    next_id: AtomicU16,
}

impl Upstream {
    pub fn new(address: SocketAddr, metrics: Arc<Metrics>) -> Upstream {
        let seed = Instant::now().elapsed().subsec_nanos() as u16 ^ std::process::id() as u16;
        Upstream {
            address,
            cache: Mutex::new(HashMap::new()),
            metrics,
            next_id: AtomicU16::new(seed),
        }
    }

    /// The reply to a query outside the zone, with the client's ID, sized for its transport.
    /// SERVFAIL when the upstream does not answer.
    pub async fn forward(&self, query: &Query<'_>, packet: &[u8], transport: Transport) -> Vec<u8> {
        let key: CacheKey = (
            query.lower.wire().into(),
            query.qtype,
            query.qclass,
            query.edns.is_some_and(|e| e.dnssec_ok),
        );
        let mut reply = match self.cached(&key) {
            Some(reply) => reply,
            None => {
                self.metrics.cache_misses.fetch_add(1, Relaxed);
                match self.exchange(packet, transport).await {
                    Some(reply) => {
                        self.store(key, &reply);
                        reply
                    }
                    None => return servfail(query, packet),
                }
            }
        };
        reply[0..2].copy_from_slice(&query.id.to_be_bytes());
        fit(reply, query, transport)
    }

    /// Looks up `name` (wire) for `qtype` upstream, for an ExternalName chase.
    pub async fn resolve(&self, name: &[u8], qtype: u16) -> Option<Vec<u8>> {
        let mut packet = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(name);
        packet.extend_from_slice(&qtype.to_be_bytes());
        packet.extend_from_slice(&wire::CLASS_IN.to_be_bytes());
        let query = wire::parse_query(&packet).ok()?;
        let reply = self.forward(&query, &packet, Transport::Tcp).await;
        (reply.len() > HEADER_LEN).then_some(reply)
    }

    fn cached(&self, key: &CacheKey) -> Option<Vec<u8>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(key)?;
        let age = entry.stored.elapsed().as_secs() as u32;
        if age >= entry.ttl {
            return None;
        }
        let mut reply = entry.reply.clone();
        count_down(&mut reply, age);
        let counter = if entry.negative {
            &self.metrics.cache_hits_denial
        } else {
            &self.metrics.cache_hits_success
        };
        counter.fetch_add(1, Relaxed);
        Some(reply)
    }

    fn store(&self, key: CacheKey, reply: &[u8]) {
        let Some((ttl, negative)) = cache_ttl(reply) else {
            return;
        };
        if ttl == 0 {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, e| now.duration_since(e.stored).as_secs() < e.ttl as u64);
            if cache.len() >= CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Entry {
                reply: reply.to_vec(),
                stored: Instant::now(),
                ttl,
                negative,
            },
        );
    }

    /// One exchange with the upstream under a fresh ID: UDP, then TCP if the reply was
    /// truncated and the client came over TCP.
    async fn exchange(&self, packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut outgoing = packet.to_vec();
        let id = self.next_id.fetch_add(0x9E37, Relaxed);
        outgoing[0..2].copy_from_slice(&id.to_be_bytes());
        let reply = tokio::time::timeout(UPSTREAM_TIMEOUT, self.over_udp(&outgoing))
            .await
            .ok()??;
        if reply[2] & 0x02 != 0 && transport == Transport::Tcp {
            return tokio::time::timeout(UPSTREAM_TIMEOUT, self.over_tcp(&outgoing))
                .await
                .ok()?;
        }
        Some(reply)
    }

    async fn over_udp(&self, outgoing: &[u8]) -> Option<Vec<u8>> {
        let local: SocketAddr = if self.address.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
            .parse()
            .ok()?;
        let socket = tokio::net::UdpSocket::bind(local).await.ok()?;
        socket.connect(self.address).await.ok()?;
        socket.send(outgoing).await.ok()?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = socket.recv(&mut buf).await.ok()?;
            // Only a reply with our ID and our question counts (spoofing, stale replies).
            if matches_question(outgoing, &buf[..n]) {
                buf.truncate(n);
                return Some(buf);
            }
        }
    }

    async fn over_tcp(&self, outgoing: &[u8]) -> Option<Vec<u8>> {
        let mut stream = tokio::net::TcpStream::connect(self.address).await.ok()?;
        let mut framed = (outgoing.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(outgoing);
        stream.write_all(&framed).await.ok()?;
        let len = stream.read_u16().await.ok()? as usize;
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).await.ok()?;
        matches_question(outgoing, &reply).then_some(reply)
    }
}

/// Same ID, QR set, and the same question (case-insensitively).
fn matches_question(query: &[u8], reply: &[u8]) -> bool {
    if reply.len() < HEADER_LEN || reply[0..2] != query[0..2] || reply[2] & 0x80 == 0 {
        return false;
    }
    let Some(end) = wire::skip_name(query, HEADER_LEN).map(|e| e + 4) else {
        return false;
    };
    reply
        .get(HEADER_LEN..end)
        .is_some_and(|q| q.eq_ignore_ascii_case(&query[HEADER_LEN..end]))
}

/// How long a reply may be cached, and whether it is negative. Only NOERROR and NXDOMAIN are
/// cached; a negative reply without an SOA is not (RFC 2308 §5).
fn cache_ttl(reply: &[u8]) -> Option<(u32, bool)> {
    let code = reply.get(3)? & 0xF;
    let answers = u16::from_be_bytes([*reply.get(6)?, *reply.get(7)?]);
    let negative = code == rcode::NXDOMAIN || answers == 0;
    if code != rcode::NOERROR && code != rcode::NXDOMAIN {
        return None;
    }
    let mut ttl = MAX_TTL;
    let mut soa = false;
    wire::for_each_ttl(reply, |rtype, at| {
        if rtype == rtype::OPT {
            return;
        }
        let value = u32::from_be_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]]);
        ttl = ttl.min(value);
        if rtype == rtype::SOA {
            soa = true;
            // MINIMUM is the last field of the RDATA.
            let rdlen = u16::from_be_bytes([reply[at + 4], reply[at + 5]]) as usize;
            let end = at + 6 + rdlen;
            if let Some(minimum) = reply.get(end - 4..end) {
                ttl = ttl.min(u32::from_be_bytes([minimum[0], minimum[1], minimum[2], minimum[3]]));
            }
        }
    })?;
    if negative && !soa {
        return None;
    }
    Some((ttl, negative))
}

/// Lowers every TTL (OPT excepted) by `age` seconds.
fn count_down(reply: &mut [u8], age: u32) {
    let mut offsets = Vec::new();
    let _ = wire::for_each_ttl(reply, |rtype, at| {
        if rtype != rtype::OPT {
            offsets.push(at);
        }
    });
    for at in offsets {
        let ttl = u32::from_be_bytes([reply[at], reply[at + 1], reply[at + 2], reply[at + 3]]);
        reply[at..at + 4].copy_from_slice(&ttl.saturating_sub(age).to_be_bytes());
    }
}

/// A reply too large for the client's UDP size becomes header + question with TC.
fn fit(mut reply: Vec<u8>, query: &Query<'_>, transport: Transport) -> Vec<u8> {
    if reply.len() <= size_limit(query, transport) {
        return reply;
    }
    let end = wire::skip_name(&reply, HEADER_LEN)
        .map_or(HEADER_LEN, |e| e + 4)
        .min(reply.len());
    reply.truncate(end);
    reply[2] |= 0x02;
    reply[6..12].fill(0);
    reply
}

/// SERVFAIL with the question echoed (AA clear, no SOA: not an authoritative answer).
fn servfail(query: &Query<'_>, packet: &[u8]) -> Vec<u8> {
    let end = HEADER_LEN + query.qname.len() + 4;
    let mut reply = packet[..end.min(packet.len())].to_vec();
    let flags = 0x8000 | query.flags | 0x0080 | rcode::SERVFAIL as u16;
    reply[2..4].copy_from_slice(&flags.to_be_bytes());
    reply[6..12].fill(0);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_with(rcode: u8, records: &[(u16, u32, &[u8])]) -> Vec<u8> {
        let mut packet = vec![0, 1, 0x81, 0x80 | rcode, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend(b"\x07example\x03com\x00\x00\x01\x00\x01");
        for (rtype, ttl, rdata) in records {
            packet.extend([0xC0, 12]);
            packet.extend(rtype.to_be_bytes());
            packet.extend([0, 1]);
            packet.extend(ttl.to_be_bytes());
            packet.extend((rdata.len() as u16).to_be_bytes());
            packet.extend(*rdata);
        }
        let count = records.len() as u16;
        // All records in the answer section except SOA, which goes to authority.
        let soa = records.iter().filter(|r| r.0 == rtype::SOA).count() as u16;
        packet[6..8].copy_from_slice(&(count - soa).to_be_bytes());
        packet[8..10].copy_from_slice(&soa.to_be_bytes());
        packet
    }

    #[test]
    fn positive_ttl_is_the_smallest_record_ttl() {
        let reply = reply_with(0, &[(rtype::A, 300, &[1, 2, 3, 4]), (rtype::A, 60, &[1, 2, 3, 5])]);
        assert_eq!(cache_ttl(&reply), Some((60, false)));
    }

    #[test]
    fn negative_ttl_is_capped_by_the_soa_minimum() {
        let mut soa = b"\x00\x00".to_vec();
        soa.extend([0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 30]);
        let reply = reply_with(3, &[(rtype::SOA, 900, &soa)]);
        assert_eq!(cache_ttl(&reply), Some((30, true)));
        assert_eq!(cache_ttl(&reply_with(3, &[])), None);
        assert_eq!(cache_ttl(&reply_with(2, &[])), None);
    }

    #[test]
    fn cached_replies_count_down() {
        let mut reply = reply_with(0, &[(rtype::A, 300, &[1, 2, 3, 4])]);
        count_down(&mut reply, 100);
        assert_eq!(cache_ttl(&reply), Some((200, false)));
    }
}
