//! The applier: loads a [`Ruleset`] into the kernel with `nft -f -`, one atomic transaction per
//! sync, so packets never see a half-written or missing table.
//!
//! A full sync reads the names in the live table (`nft -j list table`), declares everything
//! desired, flushes and refills it, and deletes what is no longer desired, all in one
//! transaction: it works the same on a fresh namespace, after a proxy restart (the old table is
//! reused in place, so no established connection loses its NAT state and the affinity map keeps
//! its entries) and as the periodic resync. An incremental sync sends only the elements and
//! chains that differ from the last applied value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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

fn add_set(out: &mut String, name: &str, set: &Set) {
    let _ = writeln!(out, "add {} {FAMILY} {TABLE} {name} {}", set.kind(), set.declaration());
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

fn add_rules(out: &mut String, name: &str, chain: &Chain) {
    for rule in &chain.rules {
        let _ = writeln!(out, "add rule {FAMILY} {TABLE} {name} {rule}");
    }
}

fn element_commands<'a>(
    out: &mut String,
    verb: &str,
    set_name: &str,
    elements: impl Iterator<Item = (&'a String, &'a String)>,
    keys_only: bool,
) {
    let elements: Vec<String> = elements
        .map(|(k, v)| if keys_only { k.clone() } else { element_text(k, v) })
        .collect();
    for chunk in elements.chunks(ELEMENTS_PER_COMMAND) {
        let _ = writeln!(
            out,
            "{verb} element {FAMILY} {TABLE} {set_name} {{ {} }}",
            chunk.join(", ")
        );
    }
}

/// The one-transaction script that makes the live table (with these object names) equal to
/// `desired`, leaving dynamic sets' elements alone.
pub fn full_script(desired: &Ruleset, live: &LiveObjects) -> String {
    let mut out = format!("add table {FAMILY} {TABLE}\n");
    for (name, set) in &desired.sets {
        add_set(&mut out, name, set);
        if !set.dynamic && live.sets.contains(name) {
            let _ = writeln!(out, "flush {} {FAMILY} {TABLE} {name}", set.kind());
        }
    }
    for (name, chain) in &desired.chains {
        add_chain(&mut out, name, chain);
    }
    // Empty every live chain first, so nothing refers to the chains deleted below.
    for name in &live.chains {
        let _ = writeln!(out, "flush chain {FAMILY} {TABLE} {name}");
    }
    for name in live.chains.iter().filter(|n| !desired.chains.contains_key(*n)) {
        let _ = writeln!(out, "delete chain {FAMILY} {TABLE} {name}");
    }
    for (name, chain) in &desired.chains {
        add_rules(&mut out, name, chain);
    }
    for name in live.sets.iter().filter(|n| !desired.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete set {FAMILY} {TABLE} {name}");
    }
    for (name, set) in desired.sets.iter().filter(|(_, s)| !s.dynamic) {
        element_commands(&mut out, "add", name, set.elements.iter(), false);
    }
    out
}

/// The script that turns the applied `old` into `new`, or None when nothing differs. Order
/// matters inside the transaction: new chains exist before elements point at them, and chains
/// go only after the elements and rules that named them.
pub fn diff_script(old: &Ruleset, new: &Ruleset) -> Option<String> {
    let mut out = String::new();
    for (name, set) in new.sets.iter().filter(|(n, _)| !old.sets.contains_key(*n)) {
        add_set(&mut out, name, set);
    }
    for (name, chain) in new.chains.iter().filter(|(n, _)| !old.chains.contains_key(*n)) {
        add_chain(&mut out, name, chain);
    }
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(previous) if previous == chain => {}
            Some(_) => {
                let _ = writeln!(out, "flush chain {FAMILY} {TABLE} {name}");
                add_rules(&mut out, name, chain);
            }
            None => add_rules(&mut out, name, chain),
        }
    }
    let empty = BTreeMap::new();
    for (name, set) in new.sets.iter().filter(|(_, s)| !s.dynamic) {
        let before = old.sets.get(name).map_or(&empty, |s| &s.elements);
        let (gone, added) = element_changes(before, &set.elements);
        element_commands(&mut out, "delete", name, gone.into_iter(), true);
        element_commands(&mut out, "add", name, added.into_iter(), false);
    }
    for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
        let _ = writeln!(out, "flush chain {FAMILY} {TABLE} {name}");
    }
    for name in old.chains.keys().filter(|n| !new.chains.contains_key(*n)) {
        let _ = writeln!(out, "delete chain {FAMILY} {TABLE} {name}");
    }
    for (name, set) in old.sets.iter().filter(|(n, _)| !new.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete {} {FAMILY} {TABLE} {name}", set.kind());
    }
    (!out.is_empty()).then_some(out)
}

type Elements = BTreeMap<String, String>;
/// Borrowed elements (key, value) picked out of an [`Elements`].
type ElementRefs<'a> = Vec<(&'a String, &'a String)>;

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
    /// Wall time of the `nft` transaction.
    pub duration: Duration,
    /// Whether anything was sent at all.
    pub changed: bool,
}

/// Keeps the live table equal to the desired value: full sync first and when asked, increments
/// after that.
#[derive(Debug)]
pub struct Applier {
    nft: Nft,
    applied: Option<Ruleset>,
}

impl Applier {
    /// An applier that starts with a full sync.
    pub fn new(nft: Nft) -> Applier {
        Applier { nft, applied: None }
    }

    /// The last value applied successfully.
    pub fn applied(&self) -> Option<&Ruleset> {
        self.applied.as_ref()
    }

    /// Forces the next sync to be a full one (periodic resync, or after an error).
    pub fn need_full_sync(&mut self) {
        self.applied = None;
    }

    /// Brings the live table to `desired`. On error the next sync is a full one, so a failed
    /// increment never leaves work behind.
    pub fn sync(&mut self, desired: &Ruleset) -> Result<SyncReport> {
        let start = Instant::now();
        let (script, full) = match &self.applied {
            Some(applied) => match diff_script(applied, desired) {
                Some(script) => (script, false),
                None => {
                    return Ok(SyncReport {
                        full: false,
                        duration: start.elapsed(),
                        changed: false,
                    })
                }
            },
            None => (full_script(desired, &self.nft.live_objects()?), true),
        };
        self.applied = None;
        self.nft.run_script(&script)?;
        self.applied = Some(desired.clone());
        Ok(SyncReport {
            full,
            duration: start.elapsed(),
            changed: true,
        })
    }

    /// Removes the table (used by tests and by `--no-proxy` cleanup).
    pub fn delete_table(&mut self) -> Result<()> {
        self.applied = None;
        if self.nft.list_table()?.is_some() {
            self.nft.run_script(&format!("delete table {FAMILY} {TABLE}\n"))?;
        }
        Ok(())
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
