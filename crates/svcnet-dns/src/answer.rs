//! The query path: one packet in, one reply out, written straight into the caller's buffer
//! from the zone snapshot. No allocation on the way for cluster names; names outside the zone
//! are handed back to the shell (forward or REFUSED).
//!
//! The decision procedure follows docs/dns.md (dns-spec.md §0): header checks, zone match,
//! name parse by the rightmost labels, then the records of §1 with RFC 2308 negative answers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{self, rcode, rtype, Name, Query, Reject, Section, Writer, CLASS_IN, HEADER_LEN};
use crate::zone::{Endpoint, PortRecord, ServiceKind, ServiceRecords, ServiceSpec, Zone};

/// The transport a query came over: it sets the size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What the shell does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A complete reply of this many octets is in the buffer.
    Reply(usize),
    /// Nothing is sent (a runt or a response).
    Drop,
    /// Outside the zone with forwarding on: relay the query upstream.
    Forward,
    /// An ExternalName whose target lies outside the zone: the reply so far (header, question,
    /// CNAME chain; no OPT) is `len` octets; `complete_chase` appends the target's records from
    /// the upstream answer to `target`.
    Chase { len: usize, target: Vec<u8> },
}

/// Answers one packet from `zone` into `out` (at least 512 octets; 65535 + for TCP).
pub fn answer(zone: &Zone, packet: &[u8], out: &mut [u8], transport: Transport) -> Outcome {
    match wire::parse_query(packet) {
        Ok(query) => respond(zone, &query, out, transport),
        Err(Reject::Drop) => Outcome::Drop,
        Err(Reject::Reply { id, flags, rcode }) => Outcome::Reply(error_reply(id, flags, rcode, out)),
    }
}

/// A header-only reply (FORMERR, NOTIMP): the question could not be trusted, so none is echoed.
pub fn error_reply(id: u16, flags: u16, rcode: u8, out: &mut [u8]) -> usize {
    out[..HEADER_LEN].fill(0);
    out[0..2].copy_from_slice(&id.to_be_bytes());
    out[2..4].copy_from_slice(&(0x8000 | flags | rcode as u16).to_be_bytes());
    HEADER_LEN
}

/// The largest reply the transport allows for this query.
pub fn size_limit(query: &Query<'_>, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => u16::MAX as usize,
        Transport::Udp => query.edns.map_or(512, |e| e.udp_size.min(wire::OWN_UDP_PAYLOAD)) as usize,
    }
}

/// Answers a parsed query.
pub fn respond(zone: &Zone, query: &Query<'_>, out: &mut [u8], transport: Transport) -> Outcome {
    let mut reply = Reply::start(out, size_limit(query, transport), query);
    // RA says whether recursion is available: it is when an upstream is configured (as
    // kube-dns; CoreDNS clears RA, which makes nslookup complain, dns-spec.md §7 row 1).
    reply.recursion = zone.forwarding;
    if query.qclass != CLASS_IN {
        return Outcome::Reply(reply.finish(rcode::REFUSED, false));
    }
    if query.edns.is_some_and(|e| e.version > 0) {
        return Outcome::Reply(reply.finish_ext(rcode::BADVERS, false));
    }
    if matches!(query.qtype, rtype::AXFR | rtype::IXFR) {
        return Outcome::Reply(reply.finish(rcode::REFUSED, false));
    }
    if let Some(n) = query.lower.strip_suffix(&zone.apex) {
        return cluster(zone, reply, n);
    }
    match reverse_ip(&query.lower) {
        Some((ip, suffix)) if zone.ptr.contains_key(&ip) => {
            let status = reverse(zone, &mut reply, ip);
            let soa_at = HEADER_LEN + query.lower.offset(suffix);
            Outcome::Reply(reply.finish_status(zone, status, soa_at, Tail::Wire(&zone.apex)))
        }
        _ if zone.forwarding => Outcome::Forward,
        _ => Outcome::Reply(reply.finish(rcode::REFUSED, false)),
    }
}

/// How a lookup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Records,
    NoData,
    NxDomain,
    /// A CNAME was written; its target name starts at this offset.
    Cname(usize),
}

/// Where the name being looked up sits in the reply: records are owned by it, and targets
/// inside the zone end with a pointer to its zone suffix.
#[derive(Debug, Clone, Copy)]
struct At {
    owner: usize,
    apex: usize,
}

/// Answers a name inside the cluster zone (`n` labels in front of the apex), following
/// ExternalName CNAMEs that stay inside the zone, at most 10 (as CoreDNS).
fn cluster(zone: &Zone, mut reply: Reply<'_, '_>, n: usize) -> Outcome {
    let query_apex = HEADER_LEN + reply.query.lower.offset(n);
    let mut name = reply.query.lower.clone();
    let mut labels = n;
    let mut at = At {
        owner: HEADER_LEN,
        apex: query_apex,
    };
    let mut status = Status::NxDomain;
    for _hop in 0..10 {
        status = lookup(zone, &mut reply, &name, labels, at);
        let Status::Cname(target_at) = status else { break };
        if reply.query.qtype == rtype::CNAME || reply.stopped {
            status = Status::Records;
            break;
        }
        let Some((target, _)) = Name::parse_lower(&reply.w.bytes()[target_at..]) else {
            break;
        };
        match target.strip_suffix(&zone.apex) {
            Some(k) => {
                at = At {
                    owner: target_at,
                    apex: target_at + target.offset(k),
                };
                labels = k;
                name = target;
            }
            None if zone.forwarding => {
                let target = target.wire().to_vec();
                return Outcome::Chase {
                    len: reply.finish_without_opt(rcode::NOERROR, true),
                    target,
                };
            }
            None => {
                status = Status::Records;
                break;
            }
        }
    }
    if let Status::Cname(_) = status {
        // The chain was cut (too long or not a name): what was written stands.
        status = Status::Records;
    }
    Outcome::Reply(reply.finish_status(zone, status, query_apex, Tail::Pointer(query_apex)))
}

fn lookup(zone: &Zone, reply: &mut Reply<'_, '_>, name: &Name, n: usize, at: At) -> Status {
    let qtype = reply.query.qtype;
    if n == 0 {
        return apex(zone, reply, at);
    }
    let last = name.label(n - 1);
    match (last, n) {
        (b"svc", 1) => Status::NoData,
        (b"svc", 2) => namespace_exists(zone, name.label(0)),
        (b"svc", 3..=5) => {
            let Some((records, spec)) = zone.service(name.span(n - 3, n - 1)) else {
                return Status::NxDomain;
            };
            let key = name.span(n - 3, n - 1);
            match n {
                3 => service(zone, reply, records, spec, key, at),
                4 => endpoint(zone, reply, records, spec, name.label(0), at),
                _ => srv(zone, reply, records, spec, key, (name.label(0), name.label(1)), at),
            }
        }
        (b"pod", 1) => Status::NoData,
        (b"pod", 2 | 3) => pod(zone, reply, name, n, at),
        (b"dns-version", 1) if qtype == rtype::TXT => {
            reply.record(Section::Answer, Owner::At(at.owner), rtype::TXT, 28800, |w| {
                w.put(b"\x051.1.0")
            });
            Status::Records
        }
        (b"dns-version", 1) => Status::NoData,
        // `dns.<zone>` is the empty non-terminal above `ns.dns.<zone>` (RFC 8020: NODATA).
        (b"dns", 1) => Status::NoData,
        (b"dns", 2) if name.label(0) == b"ns" => addresses(zone, reply, &zone.dns_ips, at.owner),
        _ => Status::NxDomain,
    }
}

fn namespace_exists(zone: &Zone, namespace: &[u8]) -> Status {
    if zone.namespaces.contains(namespace) {
        Status::NoData
    } else {
        Status::NxDomain
    }
}

/// SOA and NS at the apex; NODATA for every other type (TXT included, see docs/dns.md).
fn apex(zone: &Zone, reply: &mut Reply<'_, '_>, at: At) -> Status {
    match reply.query.qtype {
        rtype::SOA => {
            reply.soa(zone, Section::Answer, at.apex, Tail::Pointer(at.apex));
            Status::Records
        }
        rtype::NS => {
            let mut target_at = 0;
            reply.record(Section::Answer, Owner::At(at.owner), rtype::NS, zone.ttl, |w| {
                target_at = w.len();
                w.put(b"\x02ns\x03dns") && w.put_pointer(at.apex)
            });
            if target_at != 0 {
                for ip in &zone.dns_ips {
                    reply.address(Section::Additional, Owner::At(target_at), *ip, zone.ttl);
                }
            }
            Status::Records
        }
        _ => Status::NoData,
    }
}

/// A/AAAA of the addresses of the asked family; NODATA for other types or no such address.
fn addresses(zone: &Zone, reply: &mut Reply<'_, '_>, ips: &[IpAddr], owner: usize) -> Status {
    let Some(v6) = family(reply.query.qtype) else {
        return Status::NoData;
    };
    let mut any = false;
    for ip in ips.iter().filter(|ip| ip.is_ipv6() == v6) {
        reply.address(Section::Answer, Owner::At(owner), *ip, zone.ttl);
        any = true;
    }
    if any {
        Status::Records
    } else {
        Status::NoData
    }
}

/// `Some(false)` for A, `Some(true)` for AAAA.
fn family(qtype: u16) -> Option<bool> {
    match qtype {
        rtype::A => Some(false),
        rtype::AAAA => Some(true),
        _ => None,
    }
}

/// `<svc>.<ns>.svc.<zone>`.
fn service(
    zone: &Zone,
    reply: &mut Reply<'_, '_>,
    records: &ServiceRecords,
    spec: &ServiceSpec,
    key: &[u8],
    at: At,
) -> Status {
    let qtype = reply.query.qtype;
    match &spec.kind {
        ServiceKind::ClusterIp(ips) if qtype == rtype::SRV => {
            let ports: Vec<&PortRecord> = spec.ports.iter().collect();
            srv_cluster_ip(zone, reply, ips, &ports, key, at)
        }
        ServiceKind::ClusterIp(ips) => addresses(zone, reply, ips, at.owner),
        // A headless Service without ready addresses does not exist (spec §2.4.1).
        ServiceKind::Headless if records.addresses.is_empty() => Status::NxDomain,
        ServiceKind::Headless if qtype == rtype::SRV => {
            let targets: Vec<(Endpoint<'_>, &PortRecord)> = records
                .endpoints()
                .flat_map(|(endpoint, ports)| ports.iter().map(move |port| (endpoint, port)))
                .collect();
            srv_headless(zone, reply, &targets, key, at)
        }
        ServiceKind::Headless => addresses(zone, reply, &records.addresses, at.owner),
        ServiceKind::ExternalName(target) => {
            // RFC 1034 §3.6.2: the CNAME answers every type (CoreDNS: only A, AAAA, CNAME).
            let mut target_at = 0;
            reply.record(Section::Answer, Owner::At(at.owner), rtype::CNAME, zone.ttl, |w| {
                target_at = w.len();
                w.put(target)
            });
            if target_at == 0 {
                Status::Records
            } else {
                Status::Cname(target_at)
            }
        }
    }
}

/// `<ep>.<svc>.<ns>.svc.<zone>`, and the empty non-terminal `_<proto>.<svc>...`.
fn endpoint(
    zone: &Zone,
    reply: &mut Reply<'_, '_>,
    records: &ServiceRecords,
    spec: &ServiceSpec,
    label: &[u8],
    at: At,
) -> Status {
    if let ServiceKind::ExternalName(_) = spec.kind {
        return Status::NxDomain;
    }
    if let Some(protocol) = label.strip_prefix(b"_") {
        // Exists when an SRV name `_<port>._<proto>` sits below it (RFC 8020: NODATA).
        let named = |port: &PortRecord| !port.name.is_empty() && port.protocol.label() == protocol;
        let exists = match spec.kind {
            ServiceKind::Headless => records.endpoints().any(|(_, ports)| ports.iter().any(named)),
            _ => spec.ports.iter().any(named),
        };
        return if exists { Status::NoData } else { Status::NxDomain };
    }
    let mut buf = [0u8; 64];
    let mut matches: Vec<IpAddr> = Vec::new();
    for (endpoint, _) in records.endpoints() {
        if endpoint.label(&mut buf) == label && !matches.contains(&endpoint.ip) {
            matches.push(endpoint.ip);
        }
    }
    if matches.is_empty() {
        return Status::NxDomain;
    }
    addresses(zone, reply, &matches, at.owner)
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<zone>`: named ports only.
fn srv(
    zone: &Zone,
    reply: &mut Reply<'_, '_>,
    records: &ServiceRecords,
    spec: &ServiceSpec,
    key: &[u8],
    (port, protocol): (&[u8], &[u8]),
    at: At,
) -> Status {
    // CoreDNS strips one leading underscore from each label; the spec writes them.
    let port_name = port.strip_prefix(b"_").unwrap_or(port);
    let protocol = protocol.strip_prefix(b"_").unwrap_or(protocol);
    let matches =
        |p: &PortRecord| !p.name.is_empty() && p.name.as_bytes() == port_name && p.protocol.label() == protocol;
    match &spec.kind {
        ServiceKind::ExternalName(_) => Status::NxDomain,
        ServiceKind::ClusterIp(ips) => {
            let ports: Vec<&PortRecord> = spec.ports.iter().filter(|p| matches(p)).collect();
            if ports.is_empty() {
                return Status::NxDomain;
            }
            srv_cluster_ip(zone, reply, ips, &ports, key, at)
        }
        ServiceKind::Headless => {
            let targets: Vec<(Endpoint<'_>, &PortRecord)> = records
                .endpoints()
                .flat_map(|(endpoint, ports)| ports.iter().filter(|p| matches(p)).map(move |p| (endpoint, p)))
                .collect();
            if targets.is_empty() {
                return Status::NxDomain;
            }
            srv_headless(zone, reply, &targets, key, at)
        }
    }
}

/// SRV weight as CoreDNS: ⌊100 / candidates⌋, at least 1.
fn srv_weight(candidates: usize) -> u16 {
    (100 / candidates.max(1)).max(1) as u16
}

/// SRV records targeting the Service name, with its ClusterIPs as additional data.
fn srv_cluster_ip(
    zone: &Zone,
    reply: &mut Reply<'_, '_>,
    ips: &[IpAddr],
    ports: &[&PortRecord],
    key: &[u8],
    at: At,
) -> Status {
    if reply.query.qtype != rtype::SRV || ports.is_empty() {
        return Status::NoData;
    }
    let weight = srv_weight(ports.len());
    let mut target_at = 0;
    for port in ports {
        reply.record(Section::Answer, Owner::At(at.owner), rtype::SRV, zone.ttl, |w| {
            w.put_u16(0) && w.put_u16(weight) && w.put_u16(port.port) && {
                target_at = w.len();
                put_service_name(w, None, key, &zone.apex)
            }
        });
    }
    if target_at != 0 {
        for ip in ips {
            reply.address(Section::Additional, Owner::At(target_at), *ip, zone.ttl);
        }
    }
    Status::Records
}

/// SRV records per ready endpoint × port targeting endpoint names, with their addresses.
fn srv_headless(
    zone: &Zone,
    reply: &mut Reply<'_, '_>,
    targets: &[(Endpoint<'_>, &PortRecord)],
    key: &[u8],
    at: At,
) -> Status {
    if reply.query.qtype != rtype::SRV {
        return Status::NoData;
    }
    let weight = srv_weight(targets.len());
    let mut written: Vec<(usize, IpAddr)> = Vec::with_capacity(targets.len());
    let mut buf = [0u8; 64];
    for (index, (endpoint, port)) in targets.iter().enumerate() {
        let label = endpoint.label(&mut buf);
        // Duplicate (target, port) pairs are dropped (dns-spec.md §1.2).
        let duplicate = targets[..index].iter().any(|(other, other_port)| {
            other_port.port == port.port && other.ip == endpoint.ip && other.hostname == endpoint.hostname
        });
        if duplicate {
            continue;
        }
        let mut target_at = 0;
        reply.record(Section::Answer, Owner::At(at.owner), rtype::SRV, zone.ttl, |w| {
            w.put_u16(0) && w.put_u16(weight) && w.put_u16(port.port) && {
                target_at = w.len();
                put_service_name(w, Some(label), key, &zone.apex)
            }
        });
        if target_at != 0 && !written.iter().any(|(_, ip)| *ip == endpoint.ip) {
            written.push((target_at, endpoint.ip));
        }
    }
    for (target_at, ip) in written {
        reply.address(Section::Additional, Owner::At(target_at), ip, zone.ttl);
    }
    Status::Records
}

/// `<ns>.pod.<zone>` and `<ip-dashed>.<ns>.pod.<zone>` (dns-spec.md §1.4).
fn pod(zone: &Zone, reply: &mut Reply<'_, '_>, name: &Name, n: usize, at: At) -> Status {
    use crate::zone::PodsMode;
    if zone.pods == PodsMode::Disabled {
        return Status::NxDomain;
    }
    let namespace = name.label(n - 2);
    if namespace_exists(zone, namespace) == Status::NxDomain {
        return Status::NxDomain;
    }
    if n == 2 {
        return Status::NoData;
    }
    let Some(ip) = pod_label_ip(name.label(0)) else {
        return Status::NxDomain;
    };
    if zone.pods == PodsMode::Verified && !zone.pod_has_ip(namespace, ip) {
        return Status::NxDomain;
    }
    addresses(zone, reply, &[ip], at.owner)
}

/// `1-2-3-4` → 1.2.3.4 (three dashes, none doubled); anything else reads as IPv6 with every
/// dash a colon (`2001-db8--1` → 2001:db8::1).
fn pod_label_ip(label: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(label).ok()?;
    let dashes = label.iter().filter(|&&b| b == b'-').count();
    if dashes == 3 && !text.contains("--") {
        let mut octets = [0u8; 4];
        for (octet, part) in octets.iter_mut().zip(text.split('-')) {
            // `010` is not how an address prints: only canonical labels name a pod.
            if part.len() > 1 && part.starts_with('0') {
                return None;
            }
            *octet = part.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if text.len() > 45 {
        return None;
    }
    let mut buf = [0u8; 45];
    for (dst, src) in buf.iter_mut().zip(label) {
        *dst = if *src == b'-' { b':' } else { *src };
    }
    let v6: Ipv6Addr = std::str::from_utf8(&buf[..label.len()]).ok()?.parse().ok()?;
    Some(IpAddr::V6(v6))
}

/// A full reverse name (`d.c.b.a.in-addr.arpa.` or 32 nibbles under `ip6.arpa.`): the address
/// and the index of the label where `in-addr.arpa` / `ip6.arpa` starts.
fn reverse_ip(name: &Name) -> Option<(IpAddr, usize)> {
    if let Some(4) = name.strip_suffix(b"\x07in-addr\x04arpa\x00") {
        let mut octets = [0u8; 4];
        for (i, octet) in octets.iter_mut().enumerate() {
            let label = name.label(3 - i);
            if label.is_empty() || label.len() > 3 || !label.iter().all(u8::is_ascii_digit) {
                return None;
            }
            *octet = std::str::from_utf8(label).ok()?.parse().ok()?;
        }
        return Some((IpAddr::V4(Ipv4Addr::from(octets)), 4));
    }
    if let Some(32) = name.strip_suffix(b"\x03ip6\x04arpa\x00") {
        let mut value: u128 = 0;
        for i in (0..32).rev() {
            let label = name.label(i);
            let [digit] = label else { return None };
            value = (value << 4) | (*digit as char).to_digit(16)? as u128;
        }
        return Some((IpAddr::V6(Ipv6Addr::from(value)), 32));
    }
    None
}

/// PTR for a ClusterIP (one record) or the endpoints that claim the address.
fn reverse(zone: &Zone, reply: &mut Reply<'_, '_>, ip: IpAddr) -> Status {
    if reply.query.qtype != rtype::PTR {
        return Status::NoData;
    }
    let Some(targets) = zone.ptr.get(&ip) else {
        return Status::NxDomain;
    };
    let chosen: Vec<_> = match targets.iter().find(|t| t.cluster_ip) {
        Some(first) => vec![first],
        None => targets.iter().collect(),
    };
    for target in chosen {
        let label = target.hostname.as_deref().map(str::as_bytes);
        reply.record(Section::Answer, Owner::At(HEADER_LEN), rtype::PTR, zone.ttl, |w| {
            put_service_name(w, label, &target.service, &zone.apex)
        });
    }
    Status::Records
}

/// `[<label>.]<svc>.<ns>.svc.<zone>.` uncompressed (SRV targets must not be compressed, RFC
/// 2782), lower case.
fn put_service_name(w: &mut Writer<'_>, label: Option<&[u8]>, key: &[u8], apex: &[u8]) -> bool {
    let label_ok = match label {
        Some(label) => w.put(&[label.len() as u8]) && w.put(label),
        None => true,
    };
    label_ok && w.put(key) && w.put(b"\x03svc") && w.put(apex)
}

/// The end of a name: a pointer to a name already in the message, or wire octets.
#[derive(Debug, Clone, Copy)]
enum Tail<'n> {
    Pointer(usize),
    Wire(&'n [u8]),
}

impl Tail<'_> {
    fn put(self, w: &mut Writer<'_>) -> bool {
        match self {
            Tail::Pointer(offset) => w.put_pointer(offset),
            Tail::Wire(wire) => w.put(wire),
        }
    }
}

/// A record's owner: always a pointer to a name already written.
#[derive(Debug, Clone, Copy)]
enum Owner {
    At(usize),
}

/// A reply being written: header and question first, then records by section, then OPT.
struct Reply<'o, 'q> {
    w: Writer<'o>,
    query: &'q Query<'q>,
    counts: [u16; 3],
    /// An answer or authority record did not fit: TC is set and nothing more is added.
    stopped: bool,
    /// Additional records that do not fit are dropped without TC (RFC 2181 §9).
    additional_full: bool,
    section: Section,
    recursion: bool,
}

impl<'o, 'q> Reply<'o, 'q> {
    fn start(out: &'o mut [u8], limit: usize, query: &'q Query<'q>) -> Reply<'o, 'q> {
        let mut w = Writer::new(out, limit.max(512));
        // The header and question always fit: 12 + 255 + 4 < 512.
        w.put(&[0; HEADER_LEN]);
        w.set_u16(0, query.id);
        w.set_u16(4, 1);
        w.put(query.qname);
        w.put_u16(query.qtype);
        w.put_u16(query.qclass);
        if query.edns.is_some() {
            w.reserve_tail(wire::OPT_LEN);
        }
        Reply {
            w,
            query,
            counts: [0; 3],
            stopped: false,
            additional_full: false,
            section: Section::Answer,
            recursion: false,
        }
    }

    /// Appends one record; `rdata` writes the RDATA and says whether it fit.
    fn record(
        &mut self,
        section: Section,
        owner: Owner,
        rtype: u16,
        ttl: u32,
        rdata: impl FnOnce(&mut Writer<'o>) -> bool,
    ) {
        let out_of_order = section_index(section) < section_index(self.section);
        if self.stopped || (section == Section::Additional && self.additional_full) || out_of_order {
            return;
        }
        self.section = section;
        let start = self.w.len();
        let Owner::At(offset) = owner;
        let ok = self.w.put_pointer(offset)
            && self.w.put_u16(rtype)
            && self.w.put_u16(CLASS_IN)
            && self.w.put_u32(ttl)
            && self.w.put_u16(0);
        let rdata_start = self.w.len();
        if ok && rdata(&mut self.w) {
            let rdlen = self.w.len() - rdata_start;
            self.w.set_u16(rdata_start - 2, rdlen as u16);
            self.counts[section_index(section)] += 1;
            return;
        }
        self.w.truncate(start);
        match section {
            Section::Additional => self.additional_full = true,
            _ => self.stopped = true,
        }
    }

    fn address(&mut self, section: Section, owner: Owner, ip: IpAddr, ttl: u32) {
        match ip {
            IpAddr::V4(v4) => self.record(section, owner, rtype::A, ttl, |w| w.put(&v4.octets())),
            IpAddr::V6(v6) => self.record(section, owner, rtype::AAAA, ttl, |w| w.put(&v6.octets())),
        }
    }

    /// The zone's SOA, owned by the name at `owner`; MNAME `ns.dns.<zone>`, RNAME
    /// `hostmaster.<zone>` end with `zone`.
    fn soa(&mut self, zone: &Zone, section: Section, owner: usize, tail: Tail<'_>) {
        let ttl = zone.ttl.min(300);
        self.record(section, Owner::At(owner), rtype::SOA, ttl, |w| {
            w.put(b"\x02ns\x03dns")
                && tail.put(w)
                && w.put(b"\x0ahostmaster")
                && tail.put(w)
                && w.put_u32(zone.serial)
                && w.put_u32(7200)
                && w.put_u32(1800)
                && w.put_u32(86400)
                && w.put_u32(zone.ttl)
        });
    }

    /// Ends an authoritative lookup: negative answers carry the SOA in authority (RFC 2308).
    fn finish_status(mut self, zone: &Zone, status: Status, soa_owner: usize, tail: Tail<'_>) -> usize {
        let code = match status {
            Status::NxDomain => rcode::NXDOMAIN,
            _ => rcode::NOERROR,
        };
        if matches!(status, Status::NxDomain | Status::NoData) {
            self.soa(zone, Section::Authority, soa_owner, tail);
        }
        self.finish(code, true)
    }

    fn finish(self, rcode: u8, authoritative: bool) -> usize {
        self.finish_ext(rcode as u16, authoritative)
    }

    /// Writes the header, then the OPT when the query had one (RFC 6891 §7: also on errors).
    fn finish_ext(mut self, rcode: u16, authoritative: bool) -> usize {
        self.write_header(rcode, authoritative);
        if let Some(edns) = self.query.edns {
            self.w.release_tail(wire::OPT_LEN);
            put_opt(&mut self.w, rcode, edns.dnssec_ok);
            let additional = self.w.get_u16(10) + 1;
            self.w.set_u16(10, additional);
        }
        self.w.len()
    }

    fn finish_without_opt(mut self, rcode: u8, authoritative: bool) -> usize {
        self.write_header(rcode as u16, authoritative);
        self.w.len()
    }

    fn write_header(&mut self, rcode: u16, authoritative: bool) {
        let mut flags = 0x8000 | self.query.flags | (rcode & 0xF);
        if authoritative {
            flags |= 0x0400;
        }
        if self.stopped {
            flags |= 0x0200;
        }
        if self.recursion {
            flags |= 0x0080;
        }
        self.w.set_u16(2, flags);
        self.w.set_u16(6, self.counts[0]);
        self.w.set_u16(8, self.counts[1]);
        self.w.set_u16(10, self.counts[2]);
    }
}

fn section_index(section: Section) -> usize {
    match section {
        Section::Answer => 0,
        Section::Authority => 1,
        Section::Additional => 2,
    }
}

/// The reply's OPT: root owner, this server's UDP size (RFC 6891 §6.2.4), the upper bits of an
/// extended RCODE, version 0, DO copied (RFC 3225 §3), no options.
fn put_opt(w: &mut Writer<'_>, rcode: u16, dnssec_ok: bool) -> bool {
    let ttl = ((rcode as u32 >> 4) << 24) | if dnssec_ok { 0x8000 } else { 0 };
    w.put(&[0]) && w.put_u16(rtype::OPT) && w.put_u16(wire::OWN_UDP_PAYLOAD) && w.put_u32(ttl) && w.put_u16(0)
}

/// Completes a `Chase`: appends the upstream's answer records (names decompressed), passes its
/// TC on, then adds the OPT. Returns the final length.
pub fn complete_chase(out: &mut [u8], len: usize, query: &Query<'_>, transport: Transport, upstream: &[u8]) -> usize {
    let limit = size_limit(query, transport).max(512).min(out.len());
    let reserve = if query.edns.is_some() { wire::OPT_LEN } else { 0 };
    let mut records = Vec::with_capacity(512);
    let mut appended = 0u16;
    let parsed = copy_answers(upstream, &mut records, &mut appended).is_some();
    let mut truncated = upstream.len() >= 4 && upstream[2] & 0x02 != 0;
    let mut end = len;
    if parsed && len + records.len() + reserve <= limit {
        out[len..len + records.len()].copy_from_slice(&records);
        end += records.len();
        add_count(out, 6, appended);
    } else if !records.is_empty() {
        truncated = true;
    }
    if truncated {
        out[2] |= 0x02;
    }
    if let Some(edns) = query.edns {
        let mut w = Writer::new(&mut out[end..], wire::OPT_LEN);
        put_opt(&mut w, 0, edns.dnssec_ok);
        end += w.len();
        add_count(out, 10, 1);
    }
    end
}

fn add_count(out: &mut [u8], at: usize, more: u16) {
    let count = u16::from_be_bytes([out[at], out[at + 1]]).saturating_add(more);
    out[at..at + 2].copy_from_slice(&count.to_be_bytes());
}

/// Copies the address records and CNAMEs of `packet`'s answer section into `out`, names
/// uncompressed (they were compressed against the upstream message).
fn copy_answers(packet: &[u8], out: &mut Vec<u8>, appended: &mut u16) -> Option<()> {
    if packet.len() < HEADER_LEN {
        return None;
    }
    let qd = u16::from_be_bytes([packet[4], packet[5]]);
    let an = u16::from_be_bytes([packet[6], packet[7]]);
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = wire::skip_name(packet, pos)? + 4;
    }
    for _ in 0..an {
        let start = out.len();
        let after_owner = wire::read_name(packet, pos, out)?;
        let fixed = packet.get(after_owner..after_owner + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
        let rdata_at = after_owner + 10;
        let rdata = packet.get(rdata_at..rdata_at + rdlen)?;
        pos = rdata_at + rdlen;
        out.extend_from_slice(&fixed[..8]);
        match rtype {
            rtype::CNAME => {
                let len_at = out.len();
                out.extend_from_slice(&[0, 0]);
                wire::read_name(packet, rdata_at, out)?;
                let written = (out.len() - len_at - 2) as u16;
                out[len_at..len_at + 2].copy_from_slice(&written.to_be_bytes());
            }
            rtype::A | rtype::AAAA => {
                out.extend_from_slice(&fixed[8..10]);
                out.extend_from_slice(rdata);
            }
            _ => {
                out.truncate(start);
                continue;
            }
        }
        *appended += 1;
    }
    Some(())
}

#[cfg(test)]
mod tests;
