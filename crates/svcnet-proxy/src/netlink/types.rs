//! nft data types as the kernel stores them: set declarations (type ids, lengths, flags and the
//! user data nft reads back to print elements), element keys and values, and chain hooks.

use std::net::Ipv4Addr;

use super::batch::Attrs;
use super::consts::*;
use super::EncodeError;
use crate::ruleset::Set;

/// The nft data types svcnet's sets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Ipv4,
    Proto,
    Service,
    Mark,
}

/// nft's byteorder numbers in set user data.
const BYTEORDER_NONE: u32 = 0;
const BYTEORDER_HOST: u32 = 1;
const BYTEORDER_BIG: u32 = 2;

impl Ty {
    pub(crate) fn parse(name: &str) -> Option<Ty> {
        Some(match name {
            "ipv4_addr" => Ty::Ipv4,
            "inet_proto" => Ty::Proto,
            "inet_service" => Ty::Service,
            "mark" => Ty::Mark,
            _ => return None,
        })
    }

    /// nft's datatype id (TYPE_IPADDR, TYPE_INET_PROTOCOL, ...).
    fn id(self) -> u32 {
        match self {
            Ty::Ipv4 => 7,
            Ty::Proto => 12,
            Ty::Service => 13,
            Ty::Mark => 19,
        }
    }

    pub(crate) fn len(self) -> usize {
        match self {
            Ty::Ipv4 | Ty::Mark => 4,
            Ty::Proto => 1,
            Ty::Service => 2,
        }
    }

    fn byteorder(self) -> u32 {
        match self {
            Ty::Ipv4 | Ty::Service => BYTEORDER_BIG,
            Ty::Proto | Ty::Mark => BYTEORDER_HOST,
        }
    }

    /// A value of this type; `(start, end)` differ only for a prefix (interval sets).
    pub(crate) fn value(self, text: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
        let bytes = match self {
            Ty::Ipv4 => return ipv4_range(text),
            Ty::Proto => vec![protocol(text).ok_or_else(|| format!("unknown protocol {text}"))?],
            Ty::Service => text
                .parse::<u16>()
                .map_err(|_| format!("bad port {text}"))?
                .to_be_bytes()
                .to_vec(),
            Ty::Mark => number(text)
                .ok_or_else(|| format!("bad mark {text}"))?
                .to_ne_bytes()
                .to_vec(),
        };
        Ok((bytes.clone(), bytes))
    }
}

/// A decimal or `0x` hexadecimal u32.
pub(crate) fn number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// An IP protocol by name or number.
pub(crate) fn protocol(text: &str) -> Option<u8> {
    Some(match text {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" => 1,
        _ => return text.parse().ok(),
    })
}

/// `a.b.c.d` or `a.b.c.d/len` as first and last address.
pub(crate) fn ipv4_range(text: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (address, len) = match text.split_once('/') {
        Some((address, len)) => (address, len.parse::<u32>().map_err(|_| format!("bad prefix {text}"))?),
        None => (text, 32),
    };
    let address: Ipv4Addr = address.parse().map_err(|_| format!("bad address {text}"))?;
    if len > 32 {
        return Err(format!("bad prefix {text}"));
    }
    let mask = prefix_mask(len);
    let start = u32::from(address) & mask;
    Ok((start.to_be_bytes().to_vec(), (start | !mask).to_be_bytes().to_vec()))
}

pub(crate) fn prefix_mask(len: u32) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

/// Concatenation fields are padded to 4 bytes each (a 32-bit register per field).
pub(crate) fn padded(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// A key or value type: one type or a concatenation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Types(pub(crate) Vec<Ty>);

impl Types {
    pub(crate) fn parse(text: &str) -> Result<Types, String> {
        text.split(" . ")
            .map(|name| Ty::parse(name.trim()).ok_or_else(|| format!("unknown type {name}")))
            .collect::<Result<Vec<_>, _>>()
            .map(Types)
    }

    fn is_concat(&self) -> bool {
        self.0.len() > 1
    }

    /// nft composes a concatenation's id 6 bits per field.
    fn id(&self) -> u32 {
        self.0.iter().fold(0, |id, ty| (id << 6) | ty.id())
    }

    pub(crate) fn len(&self) -> usize {
        match self.0.as_slice() {
            [one] => one.len(),
            many => many.iter().map(|t| padded(t.len())).sum(),
        }
    }

    fn byteorder(&self) -> u32 {
        match self.0.as_slice() {
            [one] => one.byteorder(),
            _ => BYTEORDER_NONE,
        }
    }

    /// Key or value bytes (start, end) of `text`, fields separated by ` . `.
    pub(crate) fn value(&self, text: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
        let fields: Vec<&str> = text.split(" . ").map(str::trim).collect();
        if fields.len() != self.0.len() {
            return Err(format!("{text} does not have {} fields", self.0.len()));
        }
        if let [one] = self.0.as_slice() {
            return one.value(fields[0]);
        }
        let (mut start, mut end) = (Vec::new(), Vec::new());
        for (ty, field) in self.0.iter().zip(fields) {
            let (s, e) = ty.value(field)?;
            start.extend_from_slice(&s);
            end.extend_from_slice(&e);
            start.resize(padded(start.len()), 0);
            end.resize(padded(end.len()), 0);
        }
        Ok((start, end))
    }
}

/// A map's value type.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    Verdict,
    Values(Types),
}

/// A verdict as element value or rule statement.
pub(crate) fn verdict(text: &str) -> Option<(i32, Option<&str>)> {
    let mut words = text.split_whitespace();
    let verdict = match (words.next()?, words.next()) {
        ("jump", Some(chain)) => (NFT_JUMP, Some(chain)),
        ("goto", Some(chain)) => (NFT_GOTO, Some(chain)),
        ("drop", None) => (NF_DROP, None),
        ("accept", None) => (NF_ACCEPT, None),
        ("return", None) => (NFT_RETURN, None),
        _ => return None,
    };
    words.next().is_none().then_some(verdict)
}

/// A set's declaration, parsed once per set and batch.
#[derive(Debug, Clone)]
pub(crate) struct SetType {
    key: Types,
    data: Option<Data>,
    flags: u32,
    timeout_ms: Option<u64>,
    size: Option<u32>,
}

impl SetType {
    pub(crate) fn parse(set: &Set) -> Result<SetType, EncodeError> {
        let fail = |why: String| EncodeError::new(format!("set {}", set.declaration()), why);
        let key = Types::parse(&set.key).map_err(fail)?;
        let data = match set.data.as_deref() {
            None => None,
            Some("verdict") => Some(Data::Verdict),
            Some(types) => Some(Data::Values(Types::parse(types).map_err(fail)?)),
        };
        let mut flags = if data.is_some() { NFT_SET_MAP } else { 0 };
        for flag in set.flags.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            flags |= match flag {
                "interval" => NFT_SET_INTERVAL,
                "dynamic" => NFT_SET_EVAL,
                "timeout" => NFT_SET_TIMEOUT,
                other => return Err(fail(format!("unknown flag {other}"))),
            };
        }
        if flags & NFT_SET_INTERVAL != 0 && key.is_concat() {
            flags |= NFT_SET_CONCAT;
        }
        let (mut timeout_ms, mut size) = (None, None);
        for option in &set.options {
            match option.split_once(' ') {
                Some(("timeout", time)) => timeout_ms = Some(duration_ms(time).ok_or_else(|| fail(option.clone()))?),
                Some(("size", n)) => size = Some(n.parse().map_err(|_| fail(option.clone()))?),
                _ => return Err(fail(format!("unknown option {option}"))),
            }
        }
        Ok(SetType {
            key,
            data,
            flags,
            timeout_ms,
            size,
        })
    }

    pub(crate) fn key(&self) -> &Types {
        &self.key
    }

    pub(crate) fn is_interval(&self) -> bool {
        self.flags & NFT_SET_INTERVAL != 0
    }

    /// The NEWSET attributes after table and name.
    pub(crate) fn write(&self, attrs: &mut Attrs, id: u32) {
        attrs.u32(NFTA_SET_FLAGS, self.flags);
        attrs.u32(NFTA_SET_KEY_TYPE, self.key.id());
        attrs.u32(NFTA_SET_KEY_LEN, self.key.len() as u32);
        match &self.data {
            Some(Data::Verdict) => {
                attrs.u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
                attrs.u32(NFTA_SET_DATA_LEN, 0);
            }
            Some(Data::Values(types)) => {
                attrs.u32(NFTA_SET_DATA_TYPE, types.id());
                attrs.u32(NFTA_SET_DATA_LEN, types.len() as u32);
            }
            None => {}
        }
        attrs.u32(NFTA_SET_ID, id);
        self.write_desc(attrs);
        if let Some(timeout) = self.timeout_ms {
            attrs.u64(NFTA_SET_TIMEOUT, timeout);
        }
        attrs.put(NFTA_SET_USERDATA, &self.user_data());
    }

    /// Size, and for a concatenated interval set the field lengths its backend needs.
    fn write_desc(&self, attrs: &mut Attrs) {
        let concat = self.flags & NFT_SET_CONCAT != 0;
        if self.size.is_none() && !concat {
            return;
        }
        attrs.begin(NFTA_SET_DESC);
        if let Some(size) = self.size {
            attrs.u32(NFTA_SET_DESC_SIZE, size);
        }
        if concat {
            attrs.begin(NFTA_SET_DESC_CONCAT);
            for ty in &self.key.0 {
                attrs.begin(NFTA_LIST_ELEM);
                attrs.u32(NFTA_SET_FIELD_LEN, ty.len() as u32);
                attrs.end();
            }
            attrs.end();
        }
        attrs.end();
    }

    /// What nft 1.0.6 stores in NFTA_SET_USERDATA for a `type ...` declaration: key (and
    /// value) byteorder, a "concatenation" marker for concatenated types, and for maps
    /// "value is not an interval". nft reads it back to print elements.
    fn user_data(&self) -> Vec<u8> {
        /// nft's udata for a concatenation declared by type: expression kind only, no fields.
        const CONCAT_TYPEOF: [u8; 8] = [0, 4, 13, 0, 0, 0, 1, 0];
        let mut out = Vec::new();
        let mut put = |kind: u8, value: &[u8]| {
            out.push(kind);
            out.push(value.len() as u8);
            out.extend_from_slice(value);
        };
        put(0, &self.key.byteorder().to_ne_bytes());
        if let Some(data) = &self.data {
            let order = match data {
                Data::Verdict => BYTEORDER_NONE,
                Data::Values(types) => types.byteorder(),
            };
            put(1, &order.to_ne_bytes());
        }
        if self.key.is_concat() {
            put(3, &CONCAT_TYPEOF);
        }
        if let Some(Data::Values(types)) = &self.data {
            if types.is_concat() {
                put(4, &CONCAT_TYPEOF);
            }
        }
        if self.data.is_some() {
            put(6, &0u32.to_ne_bytes());
        }
        out
    }

    /// One element: key (and key end for interval sets), and the value unless deleting.
    pub(crate) fn write_element(&self, attrs: &mut Attrs, key: &str, value: Option<&str>) -> Result<(), EncodeError> {
        let element = || match value {
            Some(value) => crate::ruleset::element_text(key, value),
            None => key.to_string(),
        };
        let fail = |why: String| EncodeError::new(format!("element {}", element()), why);
        let (start, end) = self.key.value(key).map_err(fail)?;
        if !self.is_interval() && start != end {
            return Err(fail("a prefix in a set without the interval flag".into()));
        }
        attrs.begin(NFTA_LIST_ELEM);
        attrs.data_value(NFTA_SET_ELEM_KEY, &start);
        if self.is_interval() {
            attrs.data_value(NFTA_SET_ELEM_KEY_END, &end);
        }
        match (&self.data, value) {
            (Some(Data::Verdict), Some(value)) => {
                let (code, chain) = verdict(value).ok_or_else(|| fail(format!("bad verdict {value}")))?;
                attrs.data_verdict(NFTA_SET_ELEM_DATA, code, chain);
            }
            (Some(Data::Values(types)), Some(value)) => {
                let (data, data_end) = types.value(value).map_err(fail)?;
                if data != data_end {
                    return Err(fail("a prefix as map value".into()));
                }
                attrs.data_value(NFTA_SET_ELEM_DATA, &data);
            }
            (None, Some(value)) if !value.is_empty() => return Err(fail("a value in a set".into())),
            _ => {}
        }
        attrs.end();
        Ok(())
    }
}

/// `3h`, `30s`, `1h30m`, `100ms` in milliseconds.
pub(crate) fn duration_ms(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let value: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total += value * unit;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// A base chain's `type T hook H priority P; policy X;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    kind: String,
    hook: u32,
    priority: i32,
    policy: u32,
}

impl Hook {
    pub(crate) fn parse(text: &str) -> Result<Hook, EncodeError> {
        let fail = |why: &str| EncodeError::new(format!("chain hook {text}"), why);
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || c == ';')
            .filter(|w| !w.is_empty())
            .collect();
        let (mut kind, mut hook, mut priority, mut policy) = (None, None, None, 1);
        let mut i = 0;
        while i + 1 < words.len() {
            let value = words[i + 1];
            match words[i] {
                "type" => kind = Some(value.to_string()),
                "hook" => hook = Some(hook_number(value).ok_or_else(|| fail("unknown hook"))?),
                "priority" => priority = Some(priority_number(value).ok_or_else(|| fail("unknown priority"))?),
                "policy" => {
                    policy = match value {
                        "accept" => 1,
                        "drop" => 0,
                        _ => return Err(fail("unknown policy")),
                    }
                }
                _ => return Err(fail("unknown word")),
            }
            i += 2;
        }
        if i != words.len() {
            return Err(fail("dangling word"));
        }
        Ok(Hook {
            kind: kind.ok_or_else(|| fail("no type"))?,
            hook: hook.ok_or_else(|| fail("no hook"))?,
            priority: priority.ok_or_else(|| fail("no priority"))?,
            policy,
        })
    }

    /// NEWCHAIN attributes in nft's order: type, policy, hook.
    pub(crate) fn write(&self, attrs: &mut Attrs) {
        attrs.str(NFTA_CHAIN_TYPE, &self.kind);
        attrs.u32(NFTA_CHAIN_POLICY, self.policy);
        attrs.begin(NFTA_CHAIN_HOOK);
        attrs.u32(NFTA_HOOK_HOOKNUM, self.hook);
        attrs.u32(NFTA_HOOK_PRIORITY, self.priority as u32);
        attrs.end();
    }
}

fn hook_number(name: &str) -> Option<u32> {
    Some(match name {
        "prerouting" => 0,
        "input" => 1,
        "forward" => 2,
        "output" => 3,
        "postrouting" => 4,
        _ => return None,
    })
}

/// A number, or one of the standard priority names of the ip family.
fn priority_number(text: &str) -> Option<i32> {
    Some(match text {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        _ => return text.parse().ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NFTA_SET_USERDATA as nft 1.0.6 sent it for the model's declarations (from
    /// `nft --debug=mnl`): the bytes `nft list` reads to print elements back.
    #[test]
    fn user_data_as_nft_writes_it() {
        let udata = |key: &str, data: Option<&str>| SetType::parse(&Set::new(key, data)).unwrap().user_data();
        assert_eq!(udata("ipv4_addr", None), [0, 4, 2, 0, 0, 0]);
        assert_eq!(
            udata("ipv4_addr . inet_proto . inet_service", Some("verdict")),
            [0, 4, 0, 0, 0, 0, 1, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]
        );
        assert_eq!(
            udata("mark", Some("ipv4_addr . inet_service")),
            [0, 4, 1, 0, 0, 0, 1, 4, 0, 0, 0, 0, 4, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]
        );
        assert_eq!(
            udata("ipv4_addr . mark", Some("mark")),
            [0, 4, 0, 0, 0, 0, 1, 4, 1, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0, 6, 4, 0, 0, 0, 0]
        );
        assert_eq!(
            udata("ipv4_addr . ipv4_addr", None),
            [0, 4, 0, 0, 0, 0, 3, 8, 0, 4, 13, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn durations_and_values() {
        assert_eq!(duration_ms("3h"), Some(10_800_000));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("3x"), None);
        let types = Types::parse("ipv4_addr . inet_proto . inet_service . ipv4_addr").unwrap();
        assert_eq!(types.id(), 0x1c_c347);
        let (start, end) = types.value("203.0.113.10 . tcp . 80 . 198.51.100.0/24").unwrap();
        assert_eq!(start[..12], [203, 0, 113, 10, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(start[12..], [198, 51, 100, 0]);
        assert_eq!(end[12..], [198, 51, 100, 255]);
        assert_eq!(
            Types::parse("mark").unwrap().value("0x19c10001").unwrap().0,
            0x19c1_0001u32.to_ne_bytes()
        );
    }
}
