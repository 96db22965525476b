//! DNS wire format without allocation: a query parser that borrows the packet, and a bounded
//! response writer that keeps whole records and reports what did not fit (RFC 1035 §4.1).

/// Record types the server knows by number.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const SRV: u16 = 33;
    pub const OPT: u16 = 41;
    pub const IXFR: u16 = 251;
    pub const AXFR: u16 = 252;
    pub const ANY: u16 = 255;
}

/// Response codes (the low four bits; BADVERS goes through the OPT extended RCODE).
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
    /// Extended RCODE 16: the header carries 0, the OPT carries 1 in its upper bits.
    pub const BADVERS: u16 = 16;
}

pub const CLASS_IN: u16 = 1;
pub const HEADER_LEN: usize = 12;
/// Longest name on the wire (RFC 1035 §2.3.4), terminal zero included.
pub const MAX_NAME_LEN: usize = 255;
/// At most 127 labels fit in 255 octets.
pub const MAX_LABELS: usize = 128;
/// The size of the OPT record this server writes (root owner, no options).
pub const OPT_LEN: usize = 11;
/// The largest UDP reply this server sends and states in its OPT (RFC 6891 §6.2.4: the
/// responder's own size); a client's larger advertisement is honoured up to this.
pub const OWN_UDP_PAYLOAD: u16 = 4096;

/// The OPT pseudo-record of a query (RFC 6891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size, already raised to 512 when smaller (RFC 6891 §6.2.3).
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
}

/// A parsed query. `qname` borrows the packet as sent (case preserved), `lower` is its
/// lower-cased copy used for every comparison (names match without regard to case).
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub id: u16,
    /// Opcode, RD and CD as received; copied into the reply.
    pub flags: u16,
    pub qname: &'a [u8],
    pub lower: Name,
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
}

/// Why a packet cannot be answered normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Too short to carry a header, or a response: no reply at all.
    Drop,
    /// Reply with this RCODE, header and (when present) question echoed.
    Reply { id: u16, flags: u16, rcode: u8 },
}

/// A wire-format name in a fixed buffer with its label offsets, so suffix tests and label
/// access need no allocation.
#[derive(Clone)]
pub struct Name {
    bytes: [u8; MAX_NAME_LEN],
    len: u8,
    /// Offset of each label's length octet, leftmost first (the root is not counted).
    starts: [u8; MAX_LABELS],
    labels: u8,
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&presentation(self.wire()))
    }
}

impl Name {
    /// Reads an uncompressed name at the start of `packet`, lower-casing it. Returns the name
    /// and the octets it took. `None` for pointers, bad label types, or names over 255 octets.
    pub fn parse_lower(packet: &[u8]) -> Option<(Name, usize)> {
        let mut name = Name {
            bytes: [0; MAX_NAME_LEN],
            len: 0,
            starts: [0; MAX_LABELS],
            labels: 0,
        };
        let mut pos = 0usize;
        loop {
            let len = *packet.get(pos)? as usize;
            if len == 0 {
                if pos + 1 > MAX_NAME_LEN {
                    return None;
                }
                name.bytes[pos] = 0;
                name.len = (pos + 1) as u8;
                return Some((name, pos + 1));
            }
            // 0x40 and 0x80 label types are obsolete, 0xC0 is a pointer: a question has none.
            if len > 63 || pos + 1 + len >= MAX_NAME_LEN {
                return None;
            }
            let label = packet.get(pos + 1..pos + 1 + len)?;
            name.starts[name.labels as usize] = pos as u8;
            name.labels += 1;
            name.bytes[pos] = len as u8;
            for (dst, src) in name.bytes[pos + 1..pos + 1 + len].iter_mut().zip(label) {
                *dst = src.to_ascii_lowercase();
            }
            pos += 1 + len;
        }
    }

    /// The whole name in wire form, terminal zero included.
    pub fn wire(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    pub fn label_count(&self) -> usize {
        self.labels as usize
    }

    /// The `i`-th label, leftmost first, without its length octet.
    pub fn label(&self, i: usize) -> &[u8] {
        let start = self.starts[i] as usize;
        let len = self.bytes[start] as usize;
        &self.bytes[start + 1..start + 1 + len]
    }

    /// Offset of label `i` from the start of the name (`len()` minus one for the root).
    pub fn offset(&self, i: usize) -> usize {
        if i >= self.label_count() {
            self.len as usize - 1
        } else {
            self.starts[i] as usize
        }
    }

    /// Labels `from..to` in wire form (length octets included, no terminal zero).
    pub fn span(&self, from: usize, to: usize) -> &[u8] {
        &self.bytes[self.offset(from)..self.offset(to)]
    }

    /// If the name ends with `suffix` (wire form, lower case, terminal zero included), the
    /// number of labels in front of it.
    pub fn strip_suffix(&self, suffix: &[u8]) -> Option<usize> {
        let wire = self.wire();
        if suffix.len() > wire.len() {
            return None;
        }
        let cut = wire.len() - suffix.len();
        if &wire[cut..] != suffix {
            return None;
        }
        // The suffix must start on a label boundary.
        (0..=self.label_count()).find(|&i| self.offset(i) == cut)
    }
}

/// Parses a query packet. Messages that cannot be answered normally come back as `Reject`.
pub fn parse_query(packet: &[u8]) -> Result<Query<'_>, Reject> {
    if packet.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let raw_flags = u16::from_be_bytes([packet[2], packet[3]]);
    if raw_flags & 0x8000 != 0 {
        return Err(Reject::Drop);
    }
    // Opcode, RD and CD go back in the reply.
    let flags = raw_flags & (0x7800 | 0x0100 | 0x0010);
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (qd, an, ns, ar) = (count(4), count(6), count(8), count(10));
    let formerr = Reject::Reply {
        id,
        flags,
        rcode: rcode::FORMERR,
    };
    if (raw_flags >> 11) & 0xF != 0 {
        return Err(Reject::Reply {
            id,
            flags,
            rcode: rcode::NOTIMP,
        });
    }
    if qd != 1 || an > 1 || ns > 1 || ar > 2 {
        return Err(formerr);
    }
    let (lower, name_len) = Name::parse_lower(&packet[HEADER_LEN..]).ok_or(formerr)?;
    let mut pos = HEADER_LEN + name_len;
    let fixed = packet.get(pos..pos + 4).ok_or(formerr)?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let qname = &packet[HEADER_LEN..HEADER_LEN + name_len];
    pos += 4;
    let mut edns = None;
    for index in 0..(an + ns + ar) {
        let record = read_record(packet, pos).ok_or(formerr)?;
        let additional = index >= an + ns;
        if record.rtype == rtype::OPT {
            // One OPT, in the additional section, owned by the root (RFC 6891 §6.1.1).
            if !additional || edns.is_some() || !record.owner_is_root {
                return Err(formerr);
            }
            edns = Some(read_opt(packet, &record).ok_or(formerr)?);
        }
        pos = record.end;
    }
    Ok(Query {
        id,
        flags,
        qname,
        lower,
        qtype,
        qclass,
        edns,
    })
}

/// The parts of a resource record the parser looks at.
struct RawRecord {
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    end: usize,
    owner_is_root: bool,
}

fn read_record(packet: &[u8], pos: usize) -> Option<RawRecord> {
    let owner_is_root = *packet.get(pos)? == 0;
    let after_name = skip_name(packet, pos)?;
    let fixed = packet.get(after_name..after_name + 10)?;
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let rdata_start = after_name + 10;
    let end = rdata_start + rdlen;
    if end > packet.len() {
        return None;
    }
    Some(RawRecord {
        rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
        ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        rdata_start,
        end,
        owner_is_root,
    })
}

fn read_opt(packet: &[u8], record: &RawRecord) -> Option<Edns> {
    // Options must tile the RDATA exactly; a malformed option is a FORMERR (RFC 6891 §7).
    let mut at = record.rdata_start;
    while at < record.end {
        let header = packet.get(at..at + 4)?;
        let len = u16::from_be_bytes([header[2], header[3]]) as usize;
        at += 4 + len;
    }
    if at != record.end {
        return None;
    }
    Some(Edns {
        udp_size: record.class.max(512),
        version: (record.ttl >> 16) as u8,
        dnssec_ok: record.ttl & 0x8000 != 0,
    })
}

/// Skips a possibly compressed name; returns the offset after it.
pub fn skip_name(packet: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *packet.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => return Some(pos + 1),
            0x00 => pos += 1 + len as usize,
            0xC0 => {
                packet.get(pos + 1)?;
                return Some(pos + 2);
            }
            _ => return None,
        }
    }
}

/// Copies a possibly compressed name out of `packet` into uncompressed wire form in `out`.
/// Pointers must go backwards (no loops); the name must fit in 255 octets.
pub fn read_name(packet: &[u8], mut pos: usize, out: &mut Vec<u8>) -> Option<usize> {
    let start_len = out.len();
    let mut end = None;
    loop {
        let len = *packet.get(pos)?;
        match len & 0xC0 {
            0x00 if len == 0 => {
                out.push(0);
                if out.len() - start_len > MAX_NAME_LEN {
                    return None;
                }
                return Some(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let label = packet.get(pos..pos + 1 + len as usize)?;
                out.extend_from_slice(label);
                if out.len() - start_len > MAX_NAME_LEN {
                    return None;
                }
                pos += 1 + len as usize;
            }
            0xC0 => {
                let target = (((len & 0x3F) as usize) << 8) | *packet.get(pos + 1)? as usize;
                if target >= pos {
                    return None;
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return None,
        }
    }
}

/// Records of an upstream answer, for the forwarder's cache: (type, ttl offset) pairs are
/// visited so TTLs can be counted down in place.
pub fn for_each_ttl(packet: &[u8], mut visit: impl FnMut(u16, usize)) -> Option<()> {
    if packet.len() < HEADER_LEN {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]) as usize;
    let (qd, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(packet, pos)? + 4;
    }
    for _ in 0..records {
        let after_name = skip_name(packet, pos)?;
        let record = read_record(packet, pos)?;
        visit(record.rtype, after_name + 4);
        pos = record.end;
    }
    Some(())
}

/// A bounded response buffer. Records are appended whole or not at all; `fits` tells which.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
}

impl<'a> Writer<'a> {
    /// `limit` is the largest message the transport allows (clamped to the buffer).
    pub fn new(buf: &'a mut [u8], limit: usize) -> Writer<'a> {
        let limit = limit.min(buf.len());
        Writer { buf, len: 0, limit }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Shrinks the limit, e.g. to keep room for the OPT record.
    pub fn reserve_tail(&mut self, octets: usize) {
        self.limit = self.limit.saturating_sub(octets);
    }

    pub fn release_tail(&mut self, octets: usize) {
        self.limit = (self.limit + octets).min(self.buf.len());
    }

    pub fn truncate(&mut self, len: usize) {
        self.len = len.min(self.len);
    }

    /// Appends raw octets if they fit under the limit.
    pub fn put(&mut self, bytes: &[u8]) -> bool {
        let end = self.len + bytes.len();
        if end > self.limit {
            return false;
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        true
    }

    pub fn put_u16(&mut self, value: u16) -> bool {
        self.put(&value.to_be_bytes())
    }

    pub fn put_u32(&mut self, value: u32) -> bool {
        self.put(&value.to_be_bytes())
    }

    /// Overwrites two octets already written (header counts, RDLENGTH).
    pub fn set_u16(&mut self, at: usize, value: u16) {
        self.buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
    }

    pub fn get_u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.buf[at], self.buf[at + 1]])
    }

    /// A compression pointer to an earlier name (offset < 0x4000).
    pub fn put_pointer(&mut self, offset: usize) -> bool {
        self.put_u16(0xC000 | (offset as u16 & 0x3FFF))
    }
}

/// Header counts by section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Answer = 6,
    Authority = 8,
    Additional = 10,
}

/// Presentation form of a wire name (`web.default.svc.cluster.local.`), for logs and tests.
pub fn presentation(wire: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let label = wire.get(pos + 1..pos + 1 + len as usize).unwrap_or_default();
        out.push_str(&String::from_utf8_lossy(label));
        out.push('.');
        pos += 1 + len as usize;
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

/// Wire form of a dotted name (`cluster.local` → `\x07cluster\x05local\x00`), lower-cased.
/// `None` when a label is empty or longer than 63 octets, or the name is too long.
pub fn wire_name(dotted: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(dotted.len() + 2);
    let trimmed = dotted.trim_end_matches('.');
    if !trimmed.is_empty() {
        for label in trimmed.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        packet.extend(wire_name(name).unwrap());
        packet.extend(qtype.to_be_bytes());
        packet.extend(CLASS_IN.to_be_bytes());
        packet
    }

    #[test]
    fn parses_a_plain_query_and_lowercases_the_name() {
        let packet = query("Web.Default.SVC.cluster.local", rtype::A);
        let q = parse_query(&packet).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.flags, 0x0100);
        assert_eq!(q.qtype, rtype::A);
        assert_eq!(q.lower.label_count(), 5);
        assert_eq!(q.lower.label(0), b"web");
        assert_eq!(q.lower.strip_suffix(&wire_name("cluster.local").unwrap()), Some(3));
        assert_eq!(q.lower.strip_suffix(&wire_name("luster.local").unwrap()), None);
        assert!(q.edns.is_none());
    }

    #[test]
    fn short_packets_and_responses_are_dropped() {
        assert_eq!(parse_query(&[0; 11]).unwrap_err(), Reject::Drop);
        let mut packet = query("a", rtype::A);
        packet[2] |= 0x80;
        assert_eq!(parse_query(&packet).unwrap_err(), Reject::Drop);
    }

    #[test]
    fn bad_counts_and_names_are_formerr() {
        let mut packet = query("a", rtype::A);
        packet[5] = 2;
        assert!(matches!(
            parse_query(&packet),
            Err(Reject::Reply {
                rcode: rcode::FORMERR,
                ..
            })
        ));
        let mut packet = query("a", rtype::A);
        packet[12] = 0xC0;
        assert!(matches!(
            parse_query(&packet),
            Err(Reject::Reply {
                rcode: rcode::FORMERR,
                ..
            })
        ));
    }

    #[test]
    fn reads_edns() {
        let mut packet = query("a", rtype::A);
        packet[11] = 1;
        packet.extend([0, 0, 41, 0x10, 0x00, 0, 0, 0x80, 0, 0, 0]);
        let q = parse_query(&packet).unwrap();
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true
            })
        );
    }

    #[test]
    fn read_name_follows_backward_pointers_only() {
        let packet = [3, b'f', b'o', b'o', 0, 1, b'a', 0xC0, 0];
        let mut out = Vec::new();
        assert_eq!(read_name(&packet, 5, &mut out), Some(9));
        assert_eq!(out, b"\x01a\x03foo\x00");
        let looping = [0xC0, 0];
        assert_eq!(read_name(&looping, 0, &mut Vec::new()), None);
    }
}
