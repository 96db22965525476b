//! The desired nftables state as a plain value: named sets and maps with their elements, and
//! chains with their rules, all as nft text. Rendering it gives the script `nft -f -` loads; the
//! applier diffs two values of it to send only what changed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The nftables family and table every svcnet rule lives in (one per node namespace).
pub const FAMILY: &str = "ip";
/// The table's name.
pub const TABLE: &str = "svcnet";

/// A whole table: what `desired` computes and the applier loads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Sets and maps by name.
    pub sets: BTreeMap<String, Set>,
    /// Chains by name.
    pub chains: BTreeMap<String, Chain>,
}

/// A named set (no `data`) or map (`data` is the value type, e.g. `verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Key type, e.g. `ipv4_addr . inet_proto . inet_service`.
    pub key: String,
    /// Value type for a map.
    pub data: Option<String>,
    /// `flags ...` (e.g. `interval`, `dynamic,timeout`), empty for none.
    pub flags: String,
    /// Extra declaration lines such as `timeout 3h` or `size 1048576`.
    pub options: Vec<String>,
    /// Dynamic sets are filled by the data path (affinity): the applier never rewrites their
    /// elements, so a resync keeps every client's stickiness.
    pub dynamic: bool,
    /// Elements: key text to value text (empty for a set).
    pub elements: BTreeMap<String, String>,
}

/// A chain: a base chain has a hook line, a regular one is only reached by jump/goto.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// e.g. `type nat hook prerouting priority -100; policy accept;`
    pub hook: Option<String>,
    /// Rules in order, as nft text.
    pub rules: Vec<String>,
}

impl Set {
    /// A set or map with the given key (and value) type and no elements.
    pub fn new(key: &str, data: Option<&str>) -> Set {
        Set {
            key: key.to_string(),
            data: data.map(str::to_string),
            flags: String::new(),
            options: Vec::new(),
            dynamic: false,
            elements: BTreeMap::new(),
        }
    }

    /// The same set or map without its elements.
    pub fn without_elements(&self) -> Set {
        Set {
            key: self.key.clone(),
            data: self.data.clone(),
            flags: self.flags.clone(),
            options: self.options.clone(),
            dynamic: self.dynamic,
            elements: BTreeMap::new(),
        }
    }

    /// Same, with flags.
    pub fn with_flags(mut self, flags: &str) -> Set {
        self.flags = flags.to_string();
        self
    }

    /// The `{ type ...; flags ...; }` body of an `add set`/`add map` command.
    pub fn declaration(&self) -> String {
        let mut out = format!("{{ type {}", self.key);
        if let Some(data) = &self.data {
            let _ = write!(out, " : {data}");
        }
        out.push(';');
        if !self.flags.is_empty() {
            let _ = write!(out, " flags {};", self.flags);
        }
        for option in &self.options {
            let _ = write!(out, " {option};");
        }
        out.push_str(" }");
        out
    }

    /// `add set` or `add map`.
    pub fn kind(&self) -> &'static str {
        if self.data.is_some() {
            "map"
        } else {
            "set"
        }
    }
}

/// One table put together from many small parts (a Service's share of the table each). Each
/// set's elements are gathered first and its map built once at the end, sorted: inserting the
/// 200,000 elements of 10,000 Services one by one into maps that already hold the others was
/// about a third of the model's time. A later part wins on equal keys, as inserting in order
/// would; a later chain of the same name replaces the earlier one.
#[derive(Debug, Default)]
pub struct Union {
    table: Ruleset,
    pending: BTreeMap<String, Vec<(String, String)>>,
}

impl Union {
    /// Starts from `base` (its elements stay; the parts' are added to them).
    pub fn new(base: Ruleset) -> Union {
        Union {
            table: base,
            pending: BTreeMap::new(),
        }
    }

    /// Adds elements to set `name`, declared like `declared` if the table lacks it.
    fn gather(&mut self, name: &str, declared: &Set, elements: impl IntoIterator<Item = (String, String)>) {
        if !self.table.sets.contains_key(name) {
            self.table.sets.insert(name.to_string(), declared.without_elements());
        }
        match self.pending.get_mut(name) {
            Some(pending) => pending.extend(elements),
            None => {
                self.pending.insert(name.to_string(), elements.into_iter().collect());
            }
        }
    }

    /// Moves `part`'s elements and chains in, leaving its set declarations (so one work table
    /// can be filled and moved again without declaring its sets anew).
    pub fn take(&mut self, part: &mut Ruleset) {
        for (name, set) in part.sets.iter_mut() {
            if !set.elements.is_empty() {
                let elements = std::mem::take(&mut set.elements);
                self.gather(name, set, elements);
            }
        }
        for (name, chain) in std::mem::take(&mut part.chains) {
            self.table.chains.insert(name, chain);
        }
    }

    /// Copies `part`'s sets (declarations too) and chains in.
    pub fn add(&mut self, part: &Ruleset) {
        for (name, set) in &part.sets {
            let elements = set.elements.iter().map(|(k, v)| (k.clone(), v.clone()));
            self.gather(name, set, elements);
        }
        for (name, chain) in &part.chains {
            self.table.chains.insert(name.clone(), chain.clone());
        }
    }

    /// Adds one element to a set the table already declares (ignored otherwise, as
    /// [`Ruleset::element`] does).
    pub fn element(&mut self, set: &str, key: String, value: String) {
        if let Some(pending) = self.pending.get_mut(set) {
            pending.push((key, value));
        } else if self.table.sets.contains_key(set) {
            self.pending.insert(set.to_string(), vec![(key, value)]);
        }
    }

    /// The table, each set's elements built in one go.
    pub fn finish(mut self) -> Ruleset {
        for (name, gathered) in std::mem::take(&mut self.pending) {
            if let Some(set) = self.table.sets.get_mut(&name) {
                let before = std::mem::take(&mut set.elements);
                set.elements = before.into_iter().chain(gathered).collect();
            }
        }
        self.table
    }
}

/// One element as it appears inside `{ ... }`.
pub fn element_text(key: &str, value: &str) -> String {
    if value.is_empty() {
        key.to_string()
    } else {
        format!("{key} : {value}")
    }
}

impl Ruleset {
    /// Adds (or replaces) a set.
    pub fn set(&mut self, name: &str, set: Set) {
        self.sets.insert(name.to_string(), set);
    }

    /// Adds an element to an existing set or map; unknown names are ignored by design of the
    /// callers, who declare every set first.
    pub fn element(&mut self, set: &str, key: impl Into<String>, value: impl Into<String>) {
        if let Some(set) = self.sets.get_mut(set) {
            set.elements.insert(key.into(), value.into());
        }
    }

    /// The chain, created empty when missing.
    pub fn chain(&mut self, name: &str) -> &mut Chain {
        self.chains.entry(name.to_string()).or_default()
    }

    /// Number of rules over all chains (a metric upstream also reports).
    pub fn rule_count(&self) -> usize {
        self.chains.values().map(|c| c.rules.len()).sum()
    }

    /// Number of set and map elements (dynamic sets excluded: the kernel owns those).
    pub fn element_count(&self) -> usize {
        self.sets
            .values()
            .filter(|s| !s.dynamic)
            .map(|s| s.elements.len())
            .sum()
    }

    /// The table in `nft list` style, for golden tests and humans.
    pub fn render(&self) -> String {
        let mut out = format!("table {FAMILY} {TABLE} {{\n");
        for (name, set) in &self.sets {
            let _ = writeln!(out, "\t{} {name} {{", set.kind());
            match &set.data {
                Some(data) => {
                    let _ = writeln!(out, "\t\ttype {} : {data}", set.key);
                }
                None => {
                    let _ = writeln!(out, "\t\ttype {}", set.key);
                }
            }
            if !set.flags.is_empty() {
                let _ = writeln!(out, "\t\tflags {}", set.flags);
            }
            for option in &set.options {
                let _ = writeln!(out, "\t\t{option}");
            }
            if !set.elements.is_empty() && !set.dynamic {
                out.push_str("\t\telements = {\n");
                for (key, value) in &set.elements {
                    let _ = writeln!(out, "\t\t\t{},", element_text(key, value));
                }
                out.push_str("\t\t}\n");
            }
            out.push_str("\t}\n");
        }
        for (name, chain) in &self.chains {
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some(hook) = &chain.hook {
                let _ = writeln!(out, "\t\t{hook}");
            }
            for rule in &chain.rules {
                let _ = writeln!(out, "\t\t{rule}");
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(set: &str, elements: &[(&str, &str)], chain: Option<(&str, &str)>) -> Ruleset {
        let mut rules = Ruleset::default();
        rules.set(set, Set::new("ipv4_addr", Some("verdict")));
        for (key, value) in elements {
            rules.element(set, *key, *value);
        }
        if let Some((name, rule)) = chain {
            rules.chain(name).rules = vec![rule.to_string()];
        }
        rules
    }

    #[test]
    fn a_union_equals_inserting_its_parts_in_order() {
        let base = table("m", &[("10.0.0.9", "accept")], Some(("c", "base rule")));
        let first = table(
            "m",
            &[("10.0.0.2", "drop"), ("10.0.0.1", "accept")],
            Some(("c", "first")),
        );
        let mut second = table("m", &[("10.0.0.2", "accept")], Some(("d", "second")));
        second.set("n", Set::new("ipv4_addr", None));
        second.element("n", "10.0.0.3", "");

        let mut expected = base.clone();
        for part in [&first, &second] {
            for (name, set) in &part.sets {
                expected
                    .sets
                    .entry(name.clone())
                    .or_insert_with(|| set.without_elements());
                for (key, value) in &set.elements {
                    expected.element(name, key.clone(), value.clone());
                }
            }
            for (name, chain) in &part.chains {
                expected.chains.insert(name.clone(), chain.clone());
            }
        }

        let mut union = Union::new(base);
        union.add(&first);
        let mut work = second.clone();
        union.take(&mut work);
        union.element("n", "10.0.0.4".into(), String::new());
        union.element("undeclared", "10.0.0.5".into(), String::new());
        expected.element("n", "10.0.0.4", "");
        assert_eq!(union.finish(), expected);
        assert_eq!(expected.sets["m"].elements["10.0.0.2"], "accept", "the later part wins");
        assert!(work.chains.is_empty() && work.sets.values().all(|s| s.elements.is_empty()));
        assert!(work.sets.contains_key("n"), "taking leaves the declarations");
    }
}
