//! Rule texts to nf_tables expressions, the way nft 1.0.6 compiles them (checked against
//! `nft --debug=netlink`): each statement loads into registers from reg 1 up, concatenation
//! fields take consecutive 32-bit registers, and matches end in `cmp`, `lookup` or a verdict.
//!
//! Only the forms `desired.rs` writes are known; anything else is an [`EncodeError`], never
//! a guess.

use super::batch::Attrs;
use super::consts::*;
use super::types::{self, padded, SetType};
use super::EncodeError;
use crate::ruleset::{Set, TABLE};

/// Resolves a set name to its declaration (the key types decide how constants are encoded).
pub type SetLookup<'a> = dyn Fn(&str) -> Option<&'a Set> + 'a;

const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFT_META_MARK: u32 = 3;
const NFT_META_L4PROTO: u32 = 16;
const NFT_CT_STATE: u32 = 0;
const NFT_CT_STATUS: u32 = 2;
const NFT_CT_MARK: u32 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFT_CMP_LT: u32 = 2;
const NFT_CMP_LTE: u32 = 3;
const NFT_CMP_GT: u32 = 4;
const NFT_CMP_GTE: u32 = 5;
const NFT_LOOKUP_F_INV: u32 = 1;
const NFT_BYTEORDER_HTON: u32 = 1;
const NFT_DYNSET_OP_UPDATE: u32 = 1;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;
const NFTA_FIB_F_SADDR: u32 = 1;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const RTN_LOCAL: u32 = 2;
const NFT_REJECT_ICMP_UNREACH: u32 = 0;
const ICMP_PORT_UNREACH: u8 = 3;

/// A compiled rule: the contents of NFTA_RULE_EXPRESSIONS and the anonymous sets it uses
/// (sent just before the rule, in the same batch).
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub(crate) expressions: Vec<u8>,
    pub(crate) anon_sets: Vec<AnonSet>,
}

/// `meta l4proto { tcp, udp }`: a constant anonymous set bound to the rule.
#[derive(Debug)]
pub(crate) struct AnonSet {
    id: u32,
    protocols: Vec<u8>,
}

impl AnonSet {
    /// NEWSET attributes after the table, as nft sends them for a `meta l4proto` set
    /// (including the user data that records the key expression).
    pub(crate) fn write_declaration(&self, attrs: &mut Attrs) {
        const META_L4PROTO_UDATA: [u8; 22] = [0, 4, 1, 0, 0, 0, 3, 14, 0, 4, 9, 0, 0, 0, 1, 6, 0, 4, 16, 0, 0, 0];
        attrs.str(NFTA_SET_NAME, "__set%d");
        attrs.u32(NFTA_SET_FLAGS, NFT_SET_ANONYMOUS | NFT_SET_CONSTANT);
        attrs.u32(NFTA_SET_KEY_TYPE, 12);
        attrs.u32(NFTA_SET_KEY_LEN, 1);
        attrs.u32(NFTA_SET_ID, self.id);
        attrs.begin(NFTA_SET_DESC);
        attrs.u32(NFTA_SET_DESC_SIZE, self.protocols.len() as u32);
        attrs.end();
        attrs.put(NFTA_SET_USERDATA, &META_L4PROTO_UDATA);
    }

    /// NEWSETELEM attributes after the table.
    pub(crate) fn write_elements(&self, attrs: &mut Attrs) {
        attrs.str(NFTA_SET_ELEM_LIST_SET, "__set%d");
        attrs.u32(NFTA_SET_ELEM_LIST_SET_ID, self.id);
        attrs.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for protocol in &self.protocols {
            attrs.begin(NFTA_LIST_ELEM);
            attrs.data_value(NFTA_SET_ELEM_KEY, &[*protocol]);
            attrs.end();
        }
        attrs.end();
    }
}

/// A value source: packet payload, meta or conntrack key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selector {
    IpSaddr,
    IpDaddr,
    ThSport,
    ThDport,
    MetaL4proto,
    MetaMark,
    CtMark,
    CtState,
    CtStatus,
}

impl Selector {
    fn parse(first: &str, second: &str) -> Option<Selector> {
        Some(match (first, second) {
            ("ip", "saddr") => Selector::IpSaddr,
            ("ip", "daddr") => Selector::IpDaddr,
            ("th", "sport") => Selector::ThSport,
            ("th", "dport") => Selector::ThDport,
            ("meta", "l4proto") => Selector::MetaL4proto,
            ("meta", "mark") => Selector::MetaMark,
            ("ct", "mark") => Selector::CtMark,
            ("ct", "state") => Selector::CtState,
            ("ct", "status") => Selector::CtStatus,
            _ => return None,
        })
    }

    fn len(self) -> usize {
        match self {
            Selector::IpSaddr | Selector::IpDaddr => 4,
            Selector::ThSport | Selector::ThDport => 2,
            Selector::MetaL4proto => 1,
            Selector::MetaMark | Selector::CtMark | Selector::CtState | Selector::CtStatus => 4,
        }
    }

    /// Values in host byteorder (compared after conversion in ranges and interval sets).
    fn host_order(self) -> bool {
        matches!(
            self,
            Selector::MetaL4proto | Selector::MetaMark | Selector::CtMark | Selector::CtState | Selector::CtStatus
        )
    }

    fn load(self, attrs: &mut Attrs, dreg: u32) {
        let payload = |attrs: &mut Attrs, base: u32, offset: u32, len: u32| {
            expr(attrs, "payload", |a| {
                a.u32(1, dreg);
                a.u32(2, base);
                a.u32(3, offset);
                a.u32(4, len);
            })
        };
        let key = |attrs: &mut Attrs, name: &str, key: u32| {
            expr(attrs, name, |a| {
                a.u32(2, key);
                a.u32(1, dreg);
            })
        };
        match self {
            Selector::IpSaddr => payload(attrs, NFT_PAYLOAD_NETWORK_HEADER, 12, 4),
            Selector::IpDaddr => payload(attrs, NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
            Selector::ThSport => payload(attrs, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 2),
            Selector::ThDport => payload(attrs, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
            Selector::MetaL4proto => key(attrs, "meta", NFT_META_L4PROTO),
            Selector::MetaMark => key(attrs, "meta", NFT_META_MARK),
            Selector::CtMark => key(attrs, "ct", NFT_CT_MARK),
            Selector::CtState => key(attrs, "ct", NFT_CT_STATE),
            Selector::CtStatus => key(attrs, "ct", NFT_CT_STATUS),
        }
    }
}

/// One expression: `{ name, data { ... } }` in the rule's list.
fn expr(attrs: &mut Attrs, name: &str, data: impl FnOnce(&mut Attrs)) {
    attrs.begin(NFTA_LIST_ELEM);
    attrs.str(NFTA_EXPR_NAME, name);
    attrs.begin(NFTA_EXPR_DATA);
    data(attrs);
    attrs.end();
    attrs.end();
}

/// The register number for 32-bit register `index` (0 = NFT_REG32_00): nft names a register
/// that starts a 16-byte one by its 16-byte number (reg 1, reg 2, ...), the others by their
/// 32-bit number (reg 9, reg 10, ...).
fn reg(index: usize) -> u32 {
    if index.is_multiple_of(4) {
        1 + (index / 4) as u32
    } else {
        8 + index as u32
    }
}

fn cmp(attrs: &mut Attrs, op: u32, value: &[u8]) {
    expr(attrs, "cmp", |a| {
        a.u32(1, 1);
        a.u32(2, op);
        a.data_value(3, value);
    });
}

/// `reg 1 = (reg 1 & mask) ^ xor`; nft writes the operation attribute only for arithmetic on
/// values, not for flag tests.
fn bitwise(attrs: &mut Attrs, mask: u32, xor: u32, with_op: bool) {
    expr(attrs, "bitwise", |a| {
        a.u32(1, 1);
        a.u32(2, 1);
        if with_op {
            a.u32(6, 0);
        }
        a.u32(3, 4);
        a.data_value(4, &mask.to_ne_bytes());
        a.data_value(5, &xor.to_ne_bytes());
    });
}

fn byteorder_hton(attrs: &mut Attrs, reg: u32, len: u32, size: u32) {
    expr(attrs, "byteorder", |a| {
        a.u32(1, reg);
        a.u32(2, reg);
        a.u32(3, NFT_BYTEORDER_HTON);
        a.u32(4, len);
        a.u32(5, size);
    });
}

fn immediate(attrs: &mut Attrs, dreg: u32, value: &[u8]) {
    expr(attrs, "immediate", |a| {
        a.u32(1, dreg);
        a.data_value(2, value);
    });
}

fn lookup(attrs: &mut Attrs, set: &str, dreg: Option<u32>, inverted: bool) {
    expr(attrs, "lookup", |a| {
        a.u32(2, 1);
        if let Some(dreg) = dreg {
            a.u32(3, dreg);
        }
        a.str(1, set);
        if inverted {
            a.u32(5, NFT_LOOKUP_F_INV);
        }
    });
}

fn ct_set_mark(attrs: &mut Attrs) {
    expr(attrs, "ct", |a| {
        a.u32(2, NFT_CT_MARK);
        a.u32(4, 1);
    });
}

/// Compiles one rule text.
pub(crate) fn compile_rule(text: &str, sets: &SetLookup<'_>, next_set_id: &mut u32) -> Result<Compiled, EncodeError> {
    let mut parser = Parser {
        words: text.split_whitespace().collect(),
        pos: 0,
        text,
        sets,
        out: Compiled::default(),
        next_set_id,
    };
    let mut attrs = Attrs::default();
    while parser.peek().is_some() {
        parser.statement(&mut attrs)?;
    }
    parser.out.expressions = attrs.buf;
    Ok(parser.out)
}

struct Parser<'t, 's, 'l, 'i> {
    words: Vec<&'t str>,
    pos: usize,
    text: &'t str,
    sets: &'s SetLookup<'l>,
    out: Compiled,
    next_set_id: &'i mut u32,
}

/// A comparison operator and whether it was written.
fn comparison(word: &str) -> Option<u32> {
    Some(match word {
        "==" => NFT_CMP_EQ,
        "!=" => NFT_CMP_NEQ,
        "<" => NFT_CMP_LT,
        "<=" => NFT_CMP_LTE,
        ">" => NFT_CMP_GT,
        ">=" => NFT_CMP_GTE,
        _ => return None,
    })
}

impl<'t> Parser<'t, '_, '_, '_> {
    fn fail<T>(&self, why: impl Into<String>) -> Result<T, EncodeError> {
        Err(EncodeError::new(format!("rule `{}`", self.text), why))
    }

    fn peek(&self) -> Option<&'t str> {
        self.words.get(self.pos).copied()
    }

    fn peek_at(&self, ahead: usize) -> Option<&'t str> {
        self.words.get(self.pos + ahead).copied()
    }

    fn next(&mut self) -> Result<&'t str, EncodeError> {
        let word = self.peek();
        self.pos += 1;
        word.map_or_else(|| self.fail("unexpected end"), Ok)
    }

    fn expect(&mut self, words: &[&str]) -> Result<(), EncodeError> {
        for word in words {
            let got = self.next()?;
            if got != *word {
                return self.fail(format!("expected `{word}`, found `{got}`"));
            }
        }
        Ok(())
    }

    fn number(&mut self) -> Result<u32, EncodeError> {
        let word = self.next()?;
        types::number(word).map_or_else(|| self.fail(format!("expected a number, found `{word}`")), Ok)
    }

    /// `@name` of a set the context knows, with its parsed declaration.
    fn named_set(&mut self) -> Result<(&'t str, SetType), EncodeError> {
        let word = self.next()?;
        let Some(name) = word.strip_prefix('@') else {
            return self.fail(format!("expected @set, found `{word}`"));
        };
        let Some(set) = (self.sets)(name) else {
            return self.fail(format!("unknown set {name} (in table {TABLE})"));
        };
        Ok((name, SetType::parse(set)?))
    }

    fn selector(&mut self) -> Option<Selector> {
        let selector = Selector::parse(self.peek()?, self.peek_at(1)?)?;
        self.pos += 2;
        Some(selector)
    }

    /// `a . b . c` of selectors.
    fn selectors(&mut self) -> Result<Vec<Selector>, EncodeError> {
        let mut out = Vec::new();
        loop {
            let Some(selector) = self.selector() else {
                return self.fail(format!("unknown expression at `{}`", self.peek().unwrap_or("")));
            };
            out.push(selector);
            if self.peek() != Some(".") {
                return Ok(out);
            }
            self.pos += 1;
        }
    }

    fn statement(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        let word = self.peek().unwrap_or_default();
        match word {
            "jump" | "goto" | "drop" | "accept" | "return" => self.verdict(attrs),
            "masquerade" => {
                self.expect(&["masquerade", "fully-random"])?;
                expr(attrs, "masq", |a| a.u32(1, NF_NAT_RANGE_PROTO_RANDOM_FULLY));
                Ok(())
            }
            "reject" => {
                self.pos += 1;
                expr(attrs, "reject", |a| {
                    a.u32(1, NFT_REJECT_ICMP_UNREACH);
                    a.put(2, &[ICMP_PORT_UNREACH]);
                });
                Ok(())
            }
            "dnat" => self.dnat(attrs),
            "update" => self.update(attrs),
            "fib" => {
                self.expect(&["fib", "saddr", "type", "local"])?;
                expr(attrs, "fib", |a| {
                    a.u32(3, NFTA_FIB_F_SADDR);
                    a.u32(2, NFT_FIB_RESULT_ADDRTYPE);
                    a.u32(1, 1);
                });
                cmp(attrs, NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
                Ok(())
            }
            "ct" if self.peek_at(2) == Some("set") => self.ct_mark_set(attrs),
            "meta" if self.peek_at(2) == Some("set") => self.meta_mark_set(attrs),
            _ => self.relational(attrs),
        }
    }

    /// A verdict ends the rule.
    fn verdict(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        let start = self.pos;
        let word = self.next()?;
        if matches!(word, "jump" | "goto") {
            self.next()?;
        }
        let text = self.words[start..self.pos].join(" ");
        let Some((code, chain)) = types::verdict(&text) else {
            return self.fail(format!("bad verdict {text}"));
        };
        if self.peek().is_some() {
            return self.fail("statements after the verdict");
        }
        expr(attrs, "immediate", |a| {
            a.u32(1, 0);
            a.data_verdict(2, code, chain);
        });
        Ok(())
    }

    /// `dnat ip addr . port to ct mark map @endpoints`.
    fn dnat(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["dnat", "ip", "addr", ".", "port", "to", "ct", "mark", "map"])?;
        let (set, _) = self.named_set()?;
        Selector::CtMark.load(attrs, 1);
        lookup(attrs, set, Some(1), false);
        expr(attrs, "nat", |a| {
            a.u32(1, NFT_NAT_DNAT);
            a.u32(2, u32::from(NFPROTO_IPV4));
            a.u32(3, 1);
            a.u32(5, reg(1));
        });
        Ok(())
    }

    /// `update @set { key . fields timeout T : ct mark }`.
    fn update(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["update"])?;
        let (set, kind) = self.named_set()?;
        self.expect(&["{"])?;
        let mut index = 0;
        for ty in kind.key().0.clone() {
            if index > 0 {
                self.expect(&["."])?;
            }
            match self.selector() {
                Some(selector) => selector.load(attrs, reg(index)),
                None => {
                    let word = self.next()?;
                    let value = ty.value(word).or_else(|why| self.fail(why))?.0;
                    immediate(attrs, reg(index), &value);
                }
            }
            index += padded(ty.len()) / 4;
        }
        let timeout = if self.peek() == Some("timeout") {
            self.pos += 1;
            let word = self.next()?;
            Some(types::duration_ms(word).map_or_else(|| self.fail(format!("bad timeout {word}")), Ok)?)
        } else {
            None
        };
        self.expect(&[":"])?;
        let Some(data) = self.selector() else {
            return self.fail("unknown value expression");
        };
        self.expect(&["}"])?;
        // The value goes to the next 16-byte register after the key.
        let data_reg = reg(index.div_ceil(4) * 4);
        data.load(attrs, data_reg);
        expr(attrs, "dynset", |a| {
            a.u32(4, 1);
            a.u32(5, data_reg);
            a.u32(3, NFT_DYNSET_OP_UPDATE);
            if let Some(timeout) = timeout {
                a.u64(6, timeout);
            }
            a.str(1, set);
        });
        Ok(())
    }

    /// `ct mark set <constant | numgen ... | jhash ... | concat map @set>`.
    fn ct_mark_set(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["ct", "mark", "set"])?;
        match self.peek() {
            Some("numgen") => self.numgen(attrs)?,
            Some("jhash") => self.jhash(attrs)?,
            Some(word) if types::number(word).is_some() => {
                let value = self.number()?;
                immediate(attrs, 1, &value.to_ne_bytes());
            }
            _ => {
                let fields = self.selectors()?;
                self.expect(&["map"])?;
                let (set, _) = self.named_set()?;
                load_concat(attrs, &fields, 0);
                lookup(attrs, set, Some(1), false);
            }
        }
        ct_set_mark(attrs);
        Ok(())
    }

    /// `numgen inc|random mod N offset B` into reg 1.
    fn numgen(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["numgen"])?;
        let kind = match self.next()? {
            "inc" => 0,
            "random" => 1,
            other => return self.fail(format!("unknown numgen {other}")),
        };
        self.expect(&["mod"])?;
        let modulus = self.number()?;
        self.expect(&["offset"])?;
        let offset = self.number()?;
        expr(attrs, "numgen", |a| {
            a.u32(1, 1);
            a.u32(2, modulus);
            a.u32(3, kind);
            a.u32(4, offset);
        });
        Ok(())
    }

    /// `jhash FIELDS mod N seed S offset B` into reg 1; the fields are loaded from reg 2 on.
    fn jhash(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["jhash"])?;
        let fields = self.selectors()?;
        self.expect(&["mod"])?;
        let modulus = self.number()?;
        self.expect(&["seed"])?;
        let seed = self.number()?;
        self.expect(&["offset"])?;
        let offset = self.number()?;
        let len = load_concat(attrs, &fields, 4);
        expr(attrs, "hash", |a| {
            a.u32(1, reg(4));
            a.u32(2, 1);
            a.u32(3, len as u32);
            a.u32(4, modulus);
            a.u32(5, seed);
            a.u32(6, offset);
            a.u32(7, 0);
        });
        Ok(())
    }

    /// `meta mark set meta mark (| ^ &) C`, or `meta mark set C`.
    fn meta_mark_set(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        self.expect(&["meta", "mark", "set"])?;
        if self.peek() == Some("meta") {
            self.expect(&["meta", "mark"])?;
            let op = self.next()?;
            let value = self.number()?;
            let (mask, xor) = match op {
                "|" => (!value, value),
                "^" => (u32::MAX, value),
                "&" => (value, 0),
                other => return self.fail(format!("unknown operator {other}")),
            };
            Selector::MetaMark.load(attrs, 1);
            bitwise(attrs, mask, xor, true);
        } else {
            let value = self.number()?;
            immediate(attrs, 1, &value.to_ne_bytes());
        }
        expr(attrs, "meta", |a| {
            a.u32(2, NFT_META_MARK);
            a.u32(3, 1);
        });
        Ok(())
    }

    /// `FIELDS [op] (value | @set | vmap @set | { list })`, `ct state new`, `meta mark & M == V`.
    fn relational(&mut self, attrs: &mut Attrs) -> Result<(), EncodeError> {
        let fields = self.selectors()?;
        let mask = if self.peek() == Some("&") {
            self.pos += 1;
            Some(self.number()?)
        } else {
            None
        };
        let op = self.peek().and_then(comparison);
        if op.is_some() {
            self.pos += 1;
        }
        match self.peek() {
            Some("vmap") if op.is_none() && mask.is_none() => {
                self.pos += 1;
                self.set_lookup(attrs, &fields, Some(0), false)
            }
            Some(word) if word.starts_with('@') && mask.is_none() => {
                let inverted = match op {
                    None | Some(NFT_CMP_EQ) => false,
                    Some(NFT_CMP_NEQ) => true,
                    _ => return self.fail("ordering against a set"),
                };
                self.set_lookup(attrs, &fields, None, inverted)
            }
            Some("{") if op.is_none() && mask.is_none() => self.anonymous_set(attrs, &fields),
            Some(_) => match (fields.as_slice(), mask) {
                ([field], None) => self.compare(attrs, *field, op),
                ([field @ (Selector::MetaMark | Selector::CtMark)], Some(mask)) => {
                    let value = self.number()?;
                    if !matches!(op, None | Some(NFT_CMP_EQ) | Some(NFT_CMP_NEQ)) {
                        return self.fail("ordering after a mask");
                    }
                    field.load(attrs, 1);
                    bitwise(attrs, mask, 0, true);
                    cmp(attrs, op.unwrap_or(NFT_CMP_EQ), &value.to_ne_bytes());
                    Ok(())
                }
                _ => self.fail("a concatenation compared with a value"),
            },
            None => self.fail("unexpected end"),
        }
    }

    /// A lookup of concatenated fields in a named set or map.
    fn set_lookup(
        &mut self,
        attrs: &mut Attrs,
        fields: &[Selector],
        dreg: Option<u32>,
        inverted: bool,
    ) -> Result<(), EncodeError> {
        let (set, kind) = self.named_set()?;
        if kind.key().0.len() != fields.len() {
            return self.fail(format!("set {set} has another number of fields"));
        }
        let mut index = 0;
        for field in fields {
            field.load(attrs, reg(index));
            // nft converts host-order fields to network order before an interval lookup.
            if kind.is_interval() && field.host_order() {
                if *field != Selector::MetaL4proto {
                    return self.fail("a host-order field other than meta l4proto in an interval lookup");
                }
                byteorder_hton(attrs, reg(index), 1, 2);
            }
            index += padded(field.len()) / 4;
        }
        lookup(attrs, set, dreg, inverted);
        Ok(())
    }

    /// `meta l4proto { tcp, udp, sctp }`.
    fn anonymous_set(&mut self, attrs: &mut Attrs, fields: &[Selector]) -> Result<(), EncodeError> {
        if fields != [Selector::MetaL4proto] {
            return self.fail("an anonymous set of something else than meta l4proto");
        }
        self.expect(&["{"])?;
        let mut protocols = Vec::new();
        loop {
            let word = self.next()?;
            if word == "}" {
                break;
            }
            for name in word.split(',').filter(|w| !w.is_empty()) {
                let Some(protocol) = types::protocol(name) else {
                    return self.fail(format!("unknown protocol {name}"));
                };
                protocols.push(protocol);
            }
        }
        let id = *self.next_set_id;
        *self.next_set_id += 1;
        Selector::MetaL4proto.load(attrs, 1);
        expr(attrs, "lookup", |a| {
            a.u32(2, 1);
            a.str(1, "__set%d");
            a.u32(4, id);
        });
        self.out.anon_sets.push(AnonSet { id, protocols });
        Ok(())
    }

    /// One field against one value.
    fn compare(&mut self, attrs: &mut Attrs, field: Selector, op: Option<u32>) -> Result<(), EncodeError> {
        let word = self.next()?;
        let op_or_eq = op.unwrap_or(NFT_CMP_EQ);
        let ordered = !matches!(op_or_eq, NFT_CMP_EQ | NFT_CMP_NEQ);
        match field {
            Selector::CtState | Selector::CtStatus => {
                if op.is_some() {
                    return self.fail("an operator on a flag test");
                }
                let bits = flag_bits(field, word).map_or_else(|| self.fail(format!("unknown flag {word}")), Ok)?;
                field.load(attrs, 1);
                bitwise(attrs, bits, 0, false);
                cmp(attrs, NFT_CMP_NEQ, &0u32.to_ne_bytes());
            }
            Selector::IpSaddr | Selector::IpDaddr if !ordered => {
                let (address, len) = match word.split_once('/') {
                    Some((address, len)) => (address, len.parse::<u32>().ok()),
                    None => (word, Some(32)),
                };
                let (Ok(address), Some(len @ 0..=32)) = (address.parse::<std::net::Ipv4Addr>(), len) else {
                    return self.fail(format!("bad address {word}"));
                };
                let bytes = u32::from(address).to_be_bytes();
                if len.is_multiple_of(8) && len > 0 {
                    // Whole bytes: load only those and compare them.
                    let selector_offset = if field == Selector::IpSaddr { 12 } else { 16 };
                    expr(attrs, "payload", |a| {
                        a.u32(1, 1);
                        a.u32(2, NFT_PAYLOAD_NETWORK_HEADER);
                        a.u32(3, selector_offset);
                        a.u32(4, len / 8);
                    });
                    cmp(attrs, op_or_eq, &bytes[..(len / 8) as usize]);
                } else {
                    let mask = types::prefix_mask(len);
                    field.load(attrs, 1);
                    bitwise(attrs, u32::from_ne_bytes(mask.to_be_bytes()), 0, false);
                    cmp(attrs, op_or_eq, &(u32::from(address) & mask).to_be_bytes());
                }
            }
            Selector::MetaL4proto if !ordered => {
                let protocol =
                    types::protocol(word).map_or_else(|| self.fail(format!("unknown protocol {word}")), Ok)?;
                field.load(attrs, 1);
                cmp(attrs, op_or_eq, &[protocol]);
            }
            Selector::ThSport | Selector::ThDport => {
                let Ok(port) = word.parse::<u16>() else {
                    return self.fail(format!("bad port {word}"));
                };
                field.load(attrs, 1);
                cmp(attrs, op_or_eq, &port.to_be_bytes());
            }
            Selector::MetaMark | Selector::CtMark => {
                let value = types::number(word).map_or_else(|| self.fail(format!("bad number {word}")), Ok)?;
                field.load(attrs, 1);
                if ordered {
                    // Ordering compares bytes: host-order values are converted first.
                    byteorder_hton(attrs, 1, 4, 4);
                    cmp(attrs, op_or_eq, &value.to_be_bytes());
                } else {
                    cmp(attrs, op_or_eq, &value.to_ne_bytes());
                }
            }
            _ => return self.fail(format!("cannot compare with {word}")),
        }
        Ok(())
    }
}

/// Loads `fields` into consecutive 32-bit registers from `first`; returns their total length.
fn load_concat(attrs: &mut Attrs, fields: &[Selector], first: usize) -> usize {
    let mut index = first;
    for field in fields {
        field.load(attrs, reg(index));
        index += padded(field.len()) / 4;
    }
    (index - first) * 4
}

/// `ct state new`, `ct status dnat`: the bit(s) tested.
fn flag_bits(field: Selector, word: &str) -> Option<u32> {
    let bit = |name: &str| -> Option<u32> {
        Some(match (field, name) {
            (Selector::CtState, "invalid") => 1,
            (Selector::CtState, "established") => 2,
            (Selector::CtState, "related") => 4,
            (Selector::CtState, "new") => 8,
            (Selector::CtState, "untracked") => 64,
            (Selector::CtStatus, "expected") => 1,
            (Selector::CtStatus, "seen-reply") => 2,
            (Selector::CtStatus, "assured") => 4,
            (Selector::CtStatus, "confirmed") => 8,
            (Selector::CtStatus, "snat") => 0x10,
            (Selector::CtStatus, "dnat") => 0x20,
            _ => return None,
        })
    };
    word.split(',').try_fold(0, |bits, name| Some(bits | bit(name)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiles(text: &str) -> Result<Compiled, EncodeError> {
        let sets: std::collections::BTreeMap<String, Set> = [
            (
                "s".to_string(),
                Set::new("ipv4_addr . inet_proto . inet_service", Some("verdict")),
            ),
            ("a".to_string(), Set::new("ipv4_addr . mark", Some("mark"))),
        ]
        .into_iter()
        .collect();
        let lookup = |name: &str| sets.get(name);
        compile_rule(text, &lookup, &mut 1)
    }

    #[test]
    fn known_and_unknown_forms() {
        assert!(compiles("ip daddr . meta l4proto . th dport vmap @s").is_ok());
        assert!(compiles("ct mark set 0x10000 ct mark set ip saddr . ct mark map @a").is_ok());
        assert!(compiles("update @a { ip saddr . 0x10000 timeout 30s : ct mark } goto x").is_ok());
        assert_eq!(compiles("meta l4proto { tcp, udp }").unwrap().anon_sets.len(), 1);
        assert!(compiles("tcp dport 80 accept").is_err());
        assert!(compiles("jump x counter").is_err());
        assert!(compiles("ip daddr @missing drop").is_err());
        assert!(compiles("log prefix x").is_err());
    }

    #[test]
    fn registers_as_nft_names_them() {
        assert_eq!([reg(0), reg(1), reg(2), reg(3), reg(4), reg(5)], [1, 9, 10, 11, 2, 13]);
    }
}
