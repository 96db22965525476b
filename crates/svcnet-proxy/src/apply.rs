//! The applier: loads a [`Ruleset`] into the kernel as one nf_tables netlink batch per sync (one
//! atomic transaction), so packets never see a half-written or missing table. A sync whose
//! rules the encoder in [`crate::netlink`] does not know goes through `nft -f -` instead, with
//! the same steps (and a warning naming the form).
//!
//! A full sync reads the names in the live table (a netlink dump of chains and sets), declares
//! everything desired, flushes and refills it, and deletes what is no longer desired, all in one
//! transaction: it works the same on a fresh namespace, after a proxy restart (the old table is
//! reused in place, so no established connection loses its NAT state and the affinity map keeps
//! its entries) and as the periodic resync. An incremental sync sends only the elements and
//! chains that differ from the last applied value; [`Applier::apply_delta`] does the same from
//! the old and new fragment of a few Services, without comparing the whole table.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::netlink::{Batch, EncodeError, NetlinkError, SetLookup, Socket};
use crate::ruleset::{element_text, Chain, Ruleset, Set, FAMILY, TABLE};

/// What failed while talking to nftables.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be started.
    #[error("starting nft (is the nftables package installed?): {0}")]
    StartNft(#[source] std::io::Error),
    /// `nft` rejected a script or a listing.
    #[error("nft {what}: {stderr}")]
    NftFailed {
        /// What was asked.
        what: &'static str,
        /// nft's message.
        stderr: String,
    },
    /// `nft -j` printed something that is not the expected JSON.
    #[error("reading nft -j output: {0}")]
    ParseListing(#[from] serde_json::Error),
    /// The kernel refused the netlink transaction (nothing of it was applied), or the socket
    /// failed.
    #[error("nf_tables: {0}")]
    Netlink(#[from] NetlinkError),
    /// [`Applier::apply_delta`] before any full sync: there is no applied table to change.
    #[error("no table applied yet: a full sync must come first")]
    NeedFullSync,
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs `nft`, optionally inside a named network namespace (tests, `svcnet proxy rules`).
#[derive(Debug, Clone, Default)]
pub struct Nft {
    /// `ip netns exec <netns> nft ...` when set.
    pub netns: Option<String>,
}

impl Nft {
    fn command(&self) -> Command {
        match &self.netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns, "nft"]);
                command
            }
            None => Command::new("nft"),
        }
    }

    /// Runs a script as one transaction.
    pub fn run_script(&self, script: &str) -> Result<()> {
        let mut child = self
            .command()
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::StartNft)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(script.as_bytes()).map_err(Error::StartNft)?;
        }
        let output = child.wait_with_output().map_err(Error::StartNft)?;
        if !output.status.success() {
            return Err(Error::NftFailed {
                what: "-f",
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    fn list(&self, json: bool) -> Result<Option<String>> {
        let mut command = self.command();
        if json {
            command.arg("-j");
        }
        let output = command
            .args(["list", "table", FAMILY, TABLE])
            .output()
            .map_err(Error::StartNft)?;
        if output.status.success() {
            return Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()));
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains("No such file or directory") {
            return Ok(None);
        }
        Err(Error::NftFailed {
            what: "list table",
            stderr: stderr.trim().to_string(),
        })
    }

    /// The live table in nft syntax (None when there is no table).
    pub fn list_table(&self) -> Result<Option<String>> {
        self.list(false)
    }

    /// Names of the live table's chains and sets (empty when there is no table).
    pub fn live_objects(&self) -> Result<LiveObjects> {
        let Some(text) = self.list(true)? else {
            return Ok(LiveObjects::default());
        };
        LiveObjects::from_json(&text)
    }
}

/// The names in a live table: enough to know what a full sync must delete.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LiveObjects {
    /// Chain names.
    pub chains: BTreeSet<String>,
    /// Set and map names.
    pub sets: BTreeSet<String>,
}

impl LiveObjects {
    /// Reads `nft -j list table` output.
    pub fn from_json(text: &str) -> Result<LiveObjects> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let mut live = LiveObjects::default();
        for object in value["nftables"].as_array().into_iter().flatten() {
            if let Some(name) = object["chain"]["name"].as_str() {
                live.chains.insert(name.to_string());
            }
            for kind in ["set", "map"] {
                if let Some(name) = object[kind]["name"].as_str() {
                    live.sets.insert(name.to_string());
                }
            }
        }
        Ok(live)
    }
}

/// Elements per `add element` command: keeps single lines at a size nft parses quickly.
const ELEMENTS_PER_COMMAND: usize = 2_000;

type Elements = BTreeMap<String, String>;
/// The elements of a set a fragment does not name.
static NO_ELEMENTS: Elements = BTreeMap::new();
/// Borrowed elements (key, value) picked out of an [`Elements`].
type ElementRefs<'a> = Vec<(&'a String, &'a String)>;

/// One step of a transaction. A sync is planned once as steps, then sent as one netlink batch
/// or, when the encoder does not know a form, written as one `nft -f` script: both ways do the
/// same thing in the same order.
#[derive(Debug)]
enum Op<'a> {
    AddTable,
    AddSet(&'a str, &'a Set),
    FlushSet(&'a str, &'a Set),
    DeleteSet(&'a str, &'static str),
    AddChain(&'a str, &'a Chain),
    FlushChain(&'a str),
    DeleteChain(&'a str),
    AddRules(&'a str, &'a Chain),
    AddElements(&'a str, &'a Set, ElementRefs<'a>),
    DeleteElements(&'a str, &'a Set, ElementRefs<'a>),
}

fn add_chain(out: &mut String, name: &str, chain: &Chain) {
    match &chain.hook {
        Some(hook) => {
            let _ = writeln!(out, "add chain {FAMILY} {TABLE} {name} {{ {hook} }}");
        }
        None => {
            let _ = writeln!(out, "add chain {FAMILY} {TABLE} {name}");
        }
    }
}

fn element_commands(out: &mut String, verb: &str, set_name: &str, elements: &ElementRefs<'_>, keys_only: bool) {
    let elements: Vec<String> = elements
        .iter()
        .map(|(k, v)| if keys_only { k.to_string() } else { element_text(k, v) })
        .collect();
    for chunk in elements.chunks(ELEMENTS_PER_COMMAND) {
        let _ = writeln!(
            out,
            "{verb} element {FAMILY} {TABLE} {set_name} {{ {} }}",
            chunk.join(", ")
        );
    }
}

/// The steps as an nft script.
fn script(ops: &[Op<'_>]) -> String {
    let mut out = String::new();
    for op in ops {
        match op {
            Op::AddTable => {
                let _ = writeln!(out, "add table {FAMILY} {TABLE}");
            }
            Op::AddSet(name, set) => {
                let _ = writeln!(out, "add {} {FAMILY} {TABLE} {name} {}", set.kind(), set.declaration());
            }
            Op::FlushSet(name, set) => {
                let _ = writeln!(out, "flush {} {FAMILY} {TABLE} {name}", set.kind());
            }
            Op::DeleteSet(name, kind) => {
                let _ = writeln!(out, "delete {kind} {FAMILY} {TABLE} {name}");
            }
            Op::AddChain(name, chain) => add_chain(&mut out, name, chain),
            Op::FlushChain(name) => {
                let _ = writeln!(out, "flush chain {FAMILY} {TABLE} {name}");
            }
            Op::DeleteChain(name) => {
                let _ = writeln!(out, "delete chain {FAMILY} {TABLE} {name}");
            }
            Op::AddRules(name, chain) => {
                for rule in &chain.rules {
                    let _ = writeln!(out, "add rule {FAMILY} {TABLE} {name} {rule}");
                }
            }
            Op::AddElements(name, _, items) => element_commands(&mut out, "add", name, items, false),
            Op::DeleteElements(name, _, items) => element_commands(&mut out, "delete", name, items, true),
        }
    }
    out
}

/// The steps as netlink messages; an error names the first text the encoder does not know.
fn encode(ops: &[Op<'_>], batch: &mut Batch, sets: &SetLookup<'_>) -> Result<(), EncodeError> {
    batch.reserve(ops.iter().map(encoded_size_estimate).sum());
    for op in ops {
        match op {
            Op::AddTable => batch.add_table(),
            Op::AddSet(name, set) => batch.add_set(name, set)?,
            Op::FlushSet(name, _) => batch.flush_set(name),
            Op::DeleteSet(name, _) => batch.delete_set(name),
            Op::AddChain(name, chain) => batch.add_chain(name, chain)?,
            Op::FlushChain(name) => batch.flush_chain(name),
            Op::DeleteChain(name) => batch.delete_chain(name),
            Op::AddRules(name, chain) => {
                for rule in &chain.rules {
                    batch.add_rule(name, rule, sets)?;
                }
            }
            Op::AddElements(name, set, items) => batch.elements(name, set, items.iter().copied(), false)?,
            Op::DeleteElements(name, set, items) => batch.elements(name, set, items.iter().copied(), true)?,
        }
    }
    Ok(())
}

/// Roughly the bytes a step encodes to (elements about 50, rules about 300).
fn encoded_size_estimate(op: &Op<'_>) -> usize {
    match op {
        Op::AddRules(_, chain) => 300 * chain.rules.len(),
        Op::AddElements(_, _, items) | Op::DeleteElements(_, _, items) => 56 * items.len() + 64,
        _ => 128,
    }
}

/// Steps that make the live table (with these object names) equal to `desired`, leaving
/// dynamic sets' elements alone.
fn full_ops<'a>(desired: &'a Ruleset, live: &'a LiveObjects) -> Vec<Op<'a>> {
    let mut ops = vec![Op::AddTable];
    for (name, set) in &desired.sets {
        ops.push(Op::AddSet(name, set));
        if !set.dynamic && live.sets.contains(name) {
            ops.push(Op::FlushSet(name, set));
        }
    }
    for (name, chain) in &desired.chains {
        ops.push(Op::AddChain(name, chain));
    }
    // Empty every live chain first, so nothing refers to the chains deleted below.
    ops.extend(live.chains.iter().map(|name| Op::FlushChain(name)));
    for name in live.chains.iter().filter(|n| !desired.chains.contains_key(*n)) {
        ops.push(Op::DeleteChain(name));
    }
    for (name, chain) in &desired.chains {
        ops.push(Op::AddRules(name, chain));
    }
    for name in live.sets.iter().filter(|n| !desired.sets.contains_key(*n)) {
        ops.push(Op::DeleteSet(name, "set"));
    }
    for (name, set) in desired.sets.iter().filter(|(_, s)| !s.dynamic) {
        if !set.elements.is_empty() {
            ops.push(Op::AddElements(name, set, set.elements.iter().collect()));
        }
    }
    ops
}

/// Steps that turn the applied `old` into `new`. Order matters inside the transaction: new
/// chains exist before elements point at them, and chains go only after the elements and
/// rules that named them.
fn diff_ops<'a>(old: &'a Ruleset, new: &'a Ruleset) -> Vec<Op<'a>> {
    let mut ops = Vec::new();
    for (name, set) in new.sets.iter().filter(|(n, _)| !old.sets.contains_key(*n)) {
        ops.push(Op::AddSet(name, set));
    }
    for (name, chain) in new.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
        ops.push(Op::AddChain(name, chain));
    }
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(previous) if previous == chain => {}
            Some(_) => {
                ops.push(Op::FlushChain(name));
                ops.push(Op::AddRules(name, chain));
            }
            None => ops.push(Op::AddRules(name, chain)),
        }
    }
    for (name, set) in new.sets.iter().filter(|(_, s)| !s.dynamic) {
        let before = old.sets.get(name).map_or(&NO_ELEMENTS, |s| &s.elements);
        push_element_changes(&mut ops, name, set, before, &set.elements);
    }
    let gone: Vec<&String> = old.chains.keys().filter(|n| !new.chains.contains_key(*n)).collect();
    ops.extend(gone.iter().map(|name| Op::FlushChain(name)));
    ops.extend(gone.iter().map(|name| Op::DeleteChain(name)));
    for (name, set) in old.sets.iter().filter(|(n, _)| !new.sets.contains_key(*n)) {
        ops.push(Op::DeleteSet(name, set.kind()));
    }
    ops
}

fn push_element_changes<'a>(
    ops: &mut Vec<Op<'a>>,
    name: &'a str,
    set: &'a Set,
    before: &'a Elements,
    after: &'a Elements,
) {
    let (gone, added) = element_changes(before, after);
    if !gone.is_empty() {
        ops.push(Op::DeleteElements(name, set, gone));
    }
    if !added.is_empty() {
        ops.push(Op::AddElements(name, set, added));
    }
}

/// Steps for a fragment change (see [`Applier::apply_delta`]): sets are declared when the
/// applied table lacks them but never deleted (other Services share them); a chain is flushed
/// only when the applied table has it.
fn delta_ops<'a>(before: &'a Ruleset, after: &'a Ruleset, applied: &'a Ruleset) -> Vec<Op<'a>> {
    let mut ops = Vec::new();
    for (name, set) in after.sets.iter().filter(|(n, _)| !applied.sets.contains_key(*n)) {
        ops.push(Op::AddSet(name, set));
    }
    for (name, chain) in &after.chains {
        let previous = before.chains.get(name);
        if previous.is_none_or(|p| p.hook != chain.hook) {
            ops.push(Op::AddChain(name, chain));
        }
    }
    for (name, chain) in &after.chains {
        if before.chains.get(name) == Some(chain) {
            continue;
        }
        if applied.chains.contains_key(name) {
            ops.push(Op::FlushChain(name));
        }
        ops.push(Op::AddRules(name, chain));
    }
    for (name, set) in fragment_sets(before, after) {
        let old = before.sets.get(name).map_or(&NO_ELEMENTS, |s| &s.elements);
        let new = after.sets.get(name).map_or(&NO_ELEMENTS, |s| &s.elements);
        push_element_changes(&mut ops, name, set, old, new);
    }
    let gone: Vec<&String> = before
        .chains
        .keys()
        .filter(|n| !after.chains.contains_key(*n) && applied.chains.contains_key(*n))
        .collect();
    ops.extend(gone.iter().map(|name| Op::FlushChain(name)));
    ops.extend(gone.iter().map(|name| Op::DeleteChain(name)));
    ops
}

/// The non-dynamic sets named in either fragment, with the newest declaration.
fn fragment_sets<'a>(before: &'a Ruleset, after: &'a Ruleset) -> impl Iterator<Item = (&'a String, &'a Set)> {
    let only_before = before.sets.iter().filter(|(n, _)| !after.sets.contains_key(*n));
    after.sets.iter().chain(only_before).filter(|(_, s)| !s.dynamic)
}

/// Makes `applied` what the table is after [`delta_ops`] ran: only the fragment's sets and
/// chains are touched.
fn apply_fragment(applied: &mut Ruleset, before: &Ruleset, after: &Ruleset) {
    for (name, set) in &after.sets {
        applied.sets.entry(name.clone()).or_insert_with(|| Set {
            elements: BTreeMap::new(),
            ..set.clone()
        });
    }
    for (name, _) in fragment_sets(before, after) {
        let old = before.sets.get(name).map_or(&NO_ELEMENTS, |s| &s.elements);
        let new = after.sets.get(name).map_or(&NO_ELEMENTS, |s| &s.elements);
        let Some(target) = applied.sets.get_mut(name) else {
            continue;
        };
        for key in old.keys().filter(|k| !new.contains_key(*k)) {
            target.elements.remove(key);
        }
        for (key, value) in new {
            target.elements.insert(key.clone(), value.clone());
        }
    }
    for (name, chain) in &after.chains {
        applied.chains.insert(name.clone(), chain.clone());
    }
    for name in before.chains.keys().filter(|n| !after.chains.contains_key(*n)) {
        applied.chains.remove(name);
    }
}

/// The one-transaction script that makes the live table (with these object names) equal to
/// `desired`, leaving dynamic sets' elements alone.
pub fn full_script(desired: &Ruleset, live: &LiveObjects) -> String {
    script(&full_ops(desired, live))
}

/// The script that turns the applied `old` into `new`, or None when nothing differs.
pub fn diff_script(old: &Ruleset, new: &Ruleset) -> Option<String> {
    let ops = diff_ops(old, new);
    (!ops.is_empty()).then(|| script(&ops))
}

/// Elements to delete (gone, or with a new value) and to add (new, or with a new value), by one
/// merge walk over the two sorted maps: linear, which matters at 200,000 elements.
fn element_changes<'a>(before: &'a Elements, after: &'a Elements) -> (ElementRefs<'a>, ElementRefs<'a>) {
    let (mut gone, mut added) = (Vec::new(), Vec::new());
    if before == after {
        return (gone, added);
    }
    let mut old = before.iter().peekable();
    let mut new = after.iter().peekable();
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => gone.extend(old.by_ref()),
            (None, Some(_)) => added.extend(new.by_ref()),
            (Some((ok, ov)), Some((nk, nv))) => match ok.cmp(nk) {
                std::cmp::Ordering::Less => gone.extend(old.next()),
                std::cmp::Ordering::Greater => added.extend(new.next()),
                std::cmp::Ordering::Equal => {
                    if ov != nv {
                        gone.push((ok, ov));
                        added.push((nk, nv));
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    (gone, added)
}

/// How a sync went (for logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// Whether it was a full sync.
    pub full: bool,
    /// Wall time of planning and the transaction.
    pub duration: Duration,
    /// Whether anything was sent at all.
    pub changed: bool,
    /// Whether it went over netlink (false: `nft -f`, because the encoder did not know a form,
    /// or nothing was sent).
    pub netlink: bool,
}

/// Keeps the live table equal to the desired value: full sync first and when asked, increments
/// after that. Talks to nf_tables on one netlink socket opened in the target namespace at the
/// first sync.
#[derive(Debug)]
pub struct Applier {
    nft: Nft,
    applied: Option<Ruleset>,
    socket: Option<Socket>,
}

/// Sends `ops` as one netlink batch; when the encoder refuses a text, runs them as one nft
/// script instead (logged). Returns whether netlink carried them.
fn transmit(socket: &mut Option<Socket>, nft: &Nft, ops: &[Op<'_>], sets: &SetLookup<'_>) -> Result<bool> {
    let socket = open_socket(socket, nft)?;
    let mut batch = socket.batch();
    let began = Instant::now();
    match encode(ops, &mut batch, sets) {
        // Steps can come out as no message at all (a new chain that stays empty was declared
        // by an earlier step): an empty batch would never be acknowledged.
        Ok(()) if batch.is_empty() => Ok(true),
        Ok(()) => {
            let encoded = began.elapsed();
            socket.send(batch)?;
            tracing::debug!(ops = ops.len(), ?encoded, sent = ?began.elapsed() - encoded, "netlink batch");
            Ok(true)
        }
        Err(error) => {
            tracing::warn!(%error, "the netlink encoder does not know a form; loading this sync with nft -f");
            nft.run_script(&script(ops))?;
            Ok(false)
        }
    }
}

fn open_socket<'s>(socket: &'s mut Option<Socket>, nft: &Nft) -> Result<&'s mut Socket> {
    if socket.is_none() {
        *socket = Some(Socket::open(nft.netns.as_deref()).map_err(NetlinkError::Io)?);
    }
    Ok(socket.as_mut().expect("opened above"))
}

impl Applier {
    /// An applier that starts with a full sync.
    pub fn new(nft: Nft) -> Applier {
        Applier {
            nft,
            applied: None,
            socket: None,
        }
    }

    /// The last value applied successfully.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Forces the next sync to be a full one (periodic resync, or after an error).
    pub fn need_full_sync(&mut self) {
        self.applied = None;
    }

    /// Names of the live table's chains and sets, from a netlink dump (cheap: no rules or
    /// elements are read).
    pub fn live_objects(&mut self) -> Result<LiveObjects> {
        let (chains, sets) = open_socket(&mut self.socket, &self.nft)?.live_names()?;
        Ok(LiveObjects { chains, sets })
    }

    /// Brings the live table to `desired`, keeping a copy of it as the applied state. On error
    /// the next sync is a full one, so a failed increment never leaves work behind.
    pub fn sync(&mut self, desired: &Ruleset) -> Result<SyncReport> {
        self.sync_owned(desired.clone())
    }

    /// [`Applier::sync`] to a ruleset the caller no longer needs: it becomes the applied state
    /// as it is (a copy of 200,000 elements costs about 80 ms).
    pub fn sync_owned(&mut self, desired: Ruleset) -> Result<SyncReport> {
        let start = Instant::now();
        let live = match self.applied {
            Some(_) => None,
            None => Some(self.live_objects()?),
        };
        let Applier { nft, applied, socket } = self;
        let ops = match (&*applied, &live) {
            (Some(applied), _) => diff_ops(applied, &desired),
            (None, Some(live)) => full_ops(&desired, live),
            (None, None) => unreachable!("live objects are read for a full sync"),
        };
        let full = live.is_some();
        if ops.is_empty() {
            return Ok(unchanged(start));
        }
        let lookup = |name: &str| desired.sets.get(name);
        let result = transmit(socket, nft, &ops, &lookup);
        drop(ops);
        let netlink = match result {
            Ok(netlink) => netlink,
            Err(error) => {
                *applied = None;
                return Err(error);
            }
        };
        *applied = Some(desired);
        Ok(SyncReport {
            full,
            duration: start.elapsed(),
            changed: true,
            netlink,
        })
    }

    /// Applies the change of a part of the table: `before` and `after` hold the sets a few
    /// Services touch (with their declarations) and only those Services' elements and chains.
    /// Sends exactly the difference as one transaction: elements gone or changed are deleted,
    /// new and changed ones added, chains whose rules changed flushed and refilled, chains only
    /// in `before` deleted after the elements that pointed at them. Sets are declared when new
    /// but never deleted here. `applied()` is updated by the same difference, without walking
    /// the whole table.
    ///
    /// Needs a full [`Applier::sync`] first ([`Error::NeedFullSync`] otherwise); on error the
    /// next sync is a full one.
    pub fn apply_delta(&mut self, before: &Ruleset, after: &Ruleset) -> Result<SyncReport> {
        let start = Instant::now();
        let Applier { nft, applied, socket } = self;
        let Some(current) = applied.as_ref() else {
            return Err(Error::NeedFullSync);
        };
        let ops = delta_ops(before, after, current);
        if ops.is_empty() {
            return Ok(unchanged(start));
        }
        let lookup = |name: &str| after.sets.get(name).or_else(|| current.sets.get(name));
        let result = transmit(socket, nft, &ops, &lookup);
        drop(ops);
        match result {
            Ok(netlink) => {
                if let Some(current) = applied.as_mut() {
                    apply_fragment(current, before, after);
                }
                Ok(SyncReport {
                    full: false,
                    duration: start.elapsed(),
                    changed: true,
                    netlink,
                })
            }
            Err(error) => {
                *applied = None;
                Err(error)
            }
        }
    }

    /// Removes the table (used by tests and by `--no-proxy` cleanup).
    pub fn delete_table(&mut self) -> Result<()> {
        self.applied = None;
        let socket = open_socket(&mut self.socket, &self.nft)?;
        let mut batch = socket.batch();
        batch.delete_table();
        match socket.send(batch) {
            Err(NetlinkError::Rejected { error, .. }) if error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            other => Ok(other?),
        }
    }
}

fn unchanged(start: Instant) -> SyncReport {
    SyncReport {
        full: false,
        duration: start.elapsed(),
        changed: false,
        netlink: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elements(pairs: &[(&str, &str)]) -> Elements {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn element_changes_merge_walk() {
        let before = elements(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let after = elements(&[("b", "2"), ("c", "4"), ("d", "5")]);
        let (gone, added) = element_changes(&before, &after);
        let keys = |v: ElementRefs<'_>| v.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>();
        assert_eq!(keys(gone), vec!["a=1", "c=3"]);
        assert_eq!(keys(added), vec!["c=4", "d=5"]);
        assert_eq!(element_changes(&after, &after), (vec![], vec![]));
    }

    #[test]
    fn equal_rulesets_need_no_script() {
        let mut rules = Ruleset::default();
        rules.set("s", Set::new("ipv4_addr", None));
        rules.element("s", "10.0.0.1", "");
        assert_eq!(diff_script(&rules, &rules.clone()), None);
    }
}
