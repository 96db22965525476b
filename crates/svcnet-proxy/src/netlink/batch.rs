//! Message framing: netlink attributes into a byte buffer, and the nf_tables batch (one
//! transaction) of table, set, chain, rule and element messages.

use super::consts::*;
use super::rule::{compile_rule, AnonSet, SetLookup};
use super::types::{self, SetType};
use super::EncodeError;
use crate::ruleset::{Chain, Set, TABLE};

/// Largest payload of one element list attribute: its length field is 16 bits, so the
/// elements of a big set are spread over several messages.
const ELEMENTS_NEST_LIMIT: usize = 60_000;

/// Netlink attributes appended to a buffer; nests are closed in order.
#[derive(Debug, Default)]
pub(crate) struct Attrs {
    pub(crate) buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Attrs {
    pub(crate) fn put(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    /// A NUL-terminated string, as the kernel's nla_strcmp expects.
    pub(crate) fn str(&mut self, kind: u16, text: &str) {
        let mut data = Vec::with_capacity(text.len() + 1);
        data.extend_from_slice(text.as_bytes());
        data.push(0);
        self.put(kind, &data);
    }

    /// nf_tables numbers are big-endian on the wire.
    pub(crate) fn u32(&mut self, kind: u16, value: u32) {
        self.put(kind, &value.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, kind: u16, value: u64) {
        self.put(kind, &value.to_be_bytes());
    }

    pub(crate) fn begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    pub(crate) fn end(&mut self) {
        let start = self.nests.pop().expect("nest begun");
        let len = (self.buf.len() - start).min(usize::from(u16::MAX)) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// Bytes written since the innermost open nest began.
    fn nest_len(&self) -> usize {
        self.nests.last().map_or(0, |start| self.buf.len() - start)
    }

    /// `NFTA_DATA_VALUE` inside a nest of `kind`.
    pub(crate) fn data_value(&mut self, kind: u16, value: &[u8]) {
        self.begin(kind);
        self.put(NFTA_DATA_VALUE, value);
        self.end();
    }

    /// `NFTA_DATA_VERDICT` inside a nest of `kind`.
    pub(crate) fn data_verdict(&mut self, kind: u16, code: i32, chain: Option<&str>) {
        self.begin(kind);
        self.begin(NFTA_DATA_VERDICT);
        self.u32(NFTA_VERDICT_CODE, code as u32);
        if let Some(chain) = chain {
            self.str(NFTA_VERDICT_CHAIN, chain);
        }
        self.end();
        self.end();
    }
}

/// One nf_tables transaction: `BATCH_BEGIN`, the messages, `BATCH_END`. Each message's
/// description is kept by sequence number, so a kernel error names the object it is about.
#[derive(Debug)]
pub struct Batch {
    attrs: Attrs,
    first_seq: u32,
    descriptions: Vec<String>,
    message_start: usize,
    last_message: Option<usize>,
    next_set_id: u32,
}

impl Batch {
    /// An empty batch whose messages are numbered from `first_seq`.
    pub fn new(first_seq: u32) -> Batch {
        let mut batch = Batch {
            attrs: Attrs::default(),
            first_seq,
            descriptions: Vec::new(),
            message_start: 0,
            last_message: None,
            next_set_id: 1,
        };
        batch.header(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        batch.descriptions.push("committing the transaction".into());
        batch.close_message();
        batch.last_message = None;
        batch
    }

    fn header(&mut self, kind: u16, flags: u16, family: u8, res_id: u16) {
        let seq = self.first_seq.wrapping_add(self.descriptions.len() as u32);
        self.message_start = self.attrs.buf.len();
        let buf = &mut self.attrs.buf;
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&[family, 0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn open(&mut self, message: u16, flags: u16, description: String) {
        self.header(
            (NFNL_SUBSYS_NFTABLES << 8) | message,
            NLM_F_REQUEST | flags,
            NFPROTO_IPV4,
            0,
        );
        self.descriptions.push(description);
    }

    fn close_message(&mut self) {
        let len = (self.attrs.buf.len() - self.message_start) as u32;
        let start = self.message_start;
        self.attrs.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.last_message = Some(start);
    }

    /// Room for `bytes` more: a full sync's batch is tens of megabytes, grown once instead of
    /// by doubling.
    pub fn reserve(&mut self, bytes: usize) {
        self.attrs.buf.reserve(bytes);
    }

    /// Number of messages between begin and end.
    pub fn len(&self) -> usize {
        self.descriptions.len() - 1
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to send: `BATCH_END` appended, and an ACK asked of the last message so that
    /// the sender can tell a processed batch from one the kernel never saw.
    pub fn finish(mut self) -> (Vec<u8>, u32, Vec<String>) {
        if let Some(last) = self.last_message {
            let flags = u16::from_ne_bytes([self.attrs.buf[last + 6], self.attrs.buf[last + 7]]) | NLM_F_ACK;
            self.attrs.buf[last + 6..last + 8].copy_from_slice(&flags.to_ne_bytes());
        }
        self.header(NFNL_MSG_BATCH_END, NLM_F_REQUEST, 0, NFNL_SUBSYS_NFTABLES);
        self.descriptions.push("ending the batch".into());
        self.close_message();
        (self.attrs.buf, self.first_seq, self.descriptions)
    }

    /// Sequence number of the last message added (the one `finish` asks an ACK of).
    pub fn last_seq(&self) -> u32 {
        self.first_seq.wrapping_add(self.len() as u32)
    }

    /// `add table ip svcnet`.
    pub fn add_table(&mut self) {
        self.open(NFT_MSG_NEWTABLE, NLM_F_CREATE, format!("add table {TABLE}"));
        self.attrs.str(NFTA_TABLE_NAME, TABLE);
        self.attrs.u32(NFTA_TABLE_FLAGS, 0);
        self.close_message();
    }

    /// `delete table ip svcnet`.
    pub fn delete_table(&mut self) {
        self.open(NFT_MSG_DELTABLE, 0, format!("delete table {TABLE}"));
        self.attrs.str(NFTA_TABLE_NAME, TABLE);
        self.close_message();
    }

    /// `add set`/`add map` with the declaration of `set`.
    pub fn add_set(&mut self, name: &str, set: &Set) -> Result<(), EncodeError> {
        let kind = SetType::parse(set)?;
        let id = self.set_id();
        self.open(NFT_MSG_NEWSET, NLM_F_CREATE, format!("add {} {name}", set.kind()));
        self.attrs.str(NFTA_SET_TABLE, TABLE);
        self.attrs.str(NFTA_SET_NAME, name);
        kind.write(&mut self.attrs, id);
        self.close_message();
        Ok(())
    }

    fn set_id(&mut self) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        id
    }

    /// `flush set`: every element goes, the declaration stays.
    pub fn flush_set(&mut self, name: &str) {
        self.open(NFT_MSG_DELSETELEM, 0, format!("flush set {name}"));
        self.attrs.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        self.attrs.str(NFTA_SET_ELEM_LIST_SET, name);
        self.close_message();
    }

    /// `delete set`.
    pub fn delete_set(&mut self, name: &str) {
        self.open(NFT_MSG_DELSET, 0, format!("delete set {name}"));
        self.attrs.str(NFTA_SET_TABLE, TABLE);
        self.attrs.str(NFTA_SET_NAME, name);
        self.close_message();
    }

    /// `add chain`, with its hook when it is a base chain.
    pub fn add_chain(&mut self, name: &str, chain: &Chain) -> Result<(), EncodeError> {
        let hook = chain.hook.as_deref().map(types::Hook::parse).transpose()?;
        self.open(NFT_MSG_NEWCHAIN, NLM_F_CREATE, format!("add chain {name}"));
        self.attrs.str(NFTA_CHAIN_TABLE, TABLE);
        self.attrs.str(NFTA_CHAIN_NAME, name);
        if let Some(hook) = hook {
            hook.write(&mut self.attrs);
        }
        self.close_message();
        Ok(())
    }

    /// `flush chain`: a rule delete without a handle removes all of the chain's rules.
    pub fn flush_chain(&mut self, name: &str) {
        self.open(NFT_MSG_DELRULE, 0, format!("flush chain {name}"));
        self.attrs.str(NFTA_RULE_TABLE, TABLE);
        self.attrs.str(NFTA_RULE_CHAIN, name);
        self.close_message();
    }

    /// `delete chain`.
    pub fn delete_chain(&mut self, name: &str) {
        self.open(NFT_MSG_DELCHAIN, 0, format!("delete chain {name}"));
        self.attrs.str(NFTA_CHAIN_TABLE, TABLE);
        self.attrs.str(NFTA_CHAIN_NAME, name);
        self.close_message();
    }

    /// `add rule CHAIN TEXT`; `sets` resolves the named sets the rule uses (their key types
    /// decide constants' byteorder and interval lookups' conversions).
    pub fn add_rule(&mut self, chain: &str, text: &str, sets: &SetLookup<'_>) -> Result<(), EncodeError> {
        let compiled = compile_rule(text, sets, &mut self.next_set_id)?;
        for anon in &compiled.anon_sets {
            self.add_anon_set(chain, anon);
        }
        self.open(
            NFT_MSG_NEWRULE,
            NLM_F_CREATE | NLM_F_APPEND,
            format!("add rule {chain} {text}"),
        );
        self.attrs.str(NFTA_RULE_TABLE, TABLE);
        self.attrs.str(NFTA_RULE_CHAIN, chain);
        self.attrs.begin(NFTA_RULE_EXPRESSIONS);
        self.attrs.buf.extend_from_slice(&compiled.expressions);
        self.attrs.end();
        self.close_message();
        Ok(())
    }

    fn add_anon_set(&mut self, chain: &str, anon: &AnonSet) {
        self.open(
            NFT_MSG_NEWSET,
            NLM_F_CREATE,
            format!("add anonymous set for a rule in {chain}"),
        );
        self.attrs.str(NFTA_SET_TABLE, TABLE);
        anon.write_declaration(&mut self.attrs);
        self.close_message();
        self.open(
            NFT_MSG_NEWSETELEM,
            NLM_F_CREATE,
            format!("add elements to the anonymous set of a rule in {chain}"),
        );
        self.attrs.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
        anon.write_elements(&mut self.attrs);
        self.close_message();
    }

    /// `add element` (values included) or `delete element` (keys only), as many messages as
    /// the element list needs.
    pub fn elements<'a>(
        &mut self,
        name: &str,
        set: &Set,
        items: impl IntoIterator<Item = (&'a String, &'a String)>,
        delete: bool,
    ) -> Result<(), EncodeError> {
        let kind = SetType::parse(set)?;
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let (message, verb) = if delete {
                (NFT_MSG_DELSETELEM, "delete")
            } else {
                (NFT_MSG_NEWSETELEM, "add")
            };
            let first = items.peek().map(|(k, _)| k.as_str()).unwrap_or_default();
            let flags = if delete { 0 } else { NLM_F_CREATE };
            self.open(message, flags, format!("{verb} elements of {name} (from {first})"));
            self.attrs.str(NFTA_SET_ELEM_LIST_TABLE, TABLE);
            self.attrs.str(NFTA_SET_ELEM_LIST_SET, name);
            self.attrs.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            while self.attrs.nest_len() < ELEMENTS_NEST_LIMIT {
                let Some((key, value)) = items.next() else { break };
                let value = (!delete).then_some(value.as_str());
                kind.write_element(&mut self.attrs, key, value)?;
            }
            self.attrs.end();
            self.close_message();
        }
        Ok(())
    }
}
