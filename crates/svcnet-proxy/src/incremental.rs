//! The model kept up to date one Service at a time. [`crate::desired::desired`] defines the
//! table; recomputing it for every change costs about half a second at 10,000 Services, so the
//! proxy keeps each Service's share of the table (its fragment) and, when a Service or one of
//! its slices changes, recomputes only that fragment and hands the applier the old and new
//! fragments: exactly what must change in the kernel.
//!
//! A fragment holds the Service's chains and its elements in the shared maps. Elements that
//! several Services can share (the `hairpin` pairs of an endpoint that backs two Services) are
//! counted, and only the first user adds them and the last one removes them. The union of the
//! base table and every fragment equals `desired` for the same objects (a test checks it).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::config::{ModelConfig, NodeInfo};
use crate::desired::{add_service_port, base_ruleset, declarations, preferred_id, HAIRPIN};
use crate::ruleset::{Ruleset, Union};
use crate::services::{ports_of_service, slice_service, ServicePort, ServicePortName};

/// `(namespace, name)` of a Service.
pub type ServiceKey = (String, String);

/// What one or more updates change: the fragments as they were and as they are now. Both sides
/// declare the same sets, so the applier never creates or drops a shared set because of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// The changed Services' share of the table before.
    pub before: Ruleset,
    /// The same after.
    pub after: Ruleset,
}

impl Delta {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.before == self.after
    }

    /// Adds empty declarations so that both sides name the same sets.
    fn align(&mut self) {
        for (name, set) in &self.before.sets {
            self.after
                .sets
                .entry(name.clone())
                .or_insert_with(|| set.without_elements());
        }
        for (name, set) in &self.after.sets {
            self.before
                .sets
                .entry(name.clone())
                .or_insert_with(|| set.without_elements());
        }
    }
}

/// Sizes of a table, as the proxy's metrics report them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    /// Chains.
    pub chains: usize,
    /// Rules over all chains.
    pub rules: usize,
    /// Set and map elements (the kernel-owned affinity entries excluded).
    pub elements: usize,
}

/// The model of one node's table, updated per Service.
#[derive(Debug)]
pub struct IncrementalModel {
    node: NodeInfo,
    config: ModelConfig,
    /// The table without Services.
    base: Ruleset,
    /// Every set of the base table, without elements: the start of each fragment.
    declarations: Ruleset,
    ids: PortIds,
    services: HashMap<ServiceKey, ServiceEntry>,
    /// `hairpin` element → number of Service ports that need it.
    hairpin: HashMap<String, u32>,
    /// Sizes of every fragment together (the base and hairpin added when asked).
    fragment_counts: TableCounts,
    port_count: usize,
    /// Services with a port that has side effects beyond the table (a UDP port, whose stale
    /// conntrack entries are cleared, or a healthCheckNodePort server).
    with_side_effects: HashSet<ServiceKey>,
}

#[derive(Debug, Default)]
struct ServiceEntry {
    ports: Vec<ServicePort>,
    /// Only the sets the Service has elements in, and its chains.
    fragment: Ruleset,
    hairpin: Vec<String>,
}

impl IncrementalModel {
    /// An empty model (no Services) for this node and config.
    pub fn new(node: NodeInfo, config: ModelConfig) -> IncrementalModel {
        let base = base_ruleset(&node, &config);
        let declarations = declarations(&base);
        IncrementalModel {
            node,
            config,
            base,
            declarations,
            ids: PortIds::default(),
            services: HashMap::new(),
            hairpin: HashMap::new(),
            fragment_counts: TableCounts::default(),
            port_count: 0,
            with_side_effects: HashSet::new(),
        }
    }

    /// A model of every Service; port ids are assigned in port name order first, as `desired`
    /// assigns them.
    pub fn build(
        node: NodeInfo,
        config: ModelConfig,
        services: &[&Service],
        slices: &[&EndpointSlice],
    ) -> IncrementalModel {
        let mut model = IncrementalModel::new(node, config);
        let mut by_service: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            if let Some(key) = slice_service(slice) {
                by_service.entry(key).or_default().push(slice);
            }
        }
        let none = Vec::new();
        // Ids in the order `desired` gives them: every port name sorted, then assigned.
        let mut ports: Vec<(ServiceKey, Vec<ServicePort>)> = services
            .iter()
            .map(|service| {
                let key = service_key(service);
                let own = by_service.get(&key).unwrap_or(&none);
                let ports = ports_of_service(service, own, &model.node, &model.config);
                (key, ports)
            })
            .collect();
        let mut names: Vec<&ServicePortName> = ports.iter().flat_map(|(_, p)| p.iter().map(|p| &p.name)).collect();
        names.sort();
        for name in names {
            model.ids.assign(name);
        }
        // No delta: the whole table is what a build is for, so the per-Service differences
        // (every element of every Service, copied) would only be thrown away.
        for (key, ports) in ports.drain(..) {
            model.replace(key, ports, None);
        }
        model
    }

    /// The node and config the model was built for (a change of either means a rebuild).
    pub fn inputs(&self) -> (&NodeInfo, &ModelConfig) {
        (&self.node, &self.config)
    }

    /// Recomputes one Service from its current object (None: deleted) and slices, adding what
    /// changes to `delta`. Returns whether anything changed.
    pub fn update(
        &mut self,
        key: ServiceKey,
        service: Option<&Service>,
        slices: &[&EndpointSlice],
        delta: &mut Delta,
    ) -> bool {
        let ports = match service {
            Some(service) => ports_of_service(service, slices, &self.node, &self.config),
            None => Vec::new(),
        };
        if self.services.get(&key).map_or(ports.is_empty(), |e| e.ports == ports) {
            return false;
        }
        self.replace(key, ports, Some(&mut *delta));
        delta.align();
        true
    }

    /// The whole table: base, every fragment and the shared elements.
    pub fn ruleset(&self) -> Ruleset {
        let mut union = Union::new(self.base.clone());
        for entry in self.services.values() {
            union.add(&entry.fragment);
        }
        for element in self.hairpin.keys() {
            union.element(HAIRPIN, element.clone(), String::new());
        }
        union.finish()
    }

    /// Every programmed Service port, in no particular order.
    pub fn ports(&self) -> impl Iterator<Item = &ServicePort> {
        self.services.values().flat_map(|e| e.ports.iter())
    }

    /// Chains, rules and elements of the whole table (for metrics), without building it.
    pub fn counts(&self) -> TableCounts {
        TableCounts {
            chains: self.base.chains.len() + self.fragment_counts.chains,
            rules: self.base.rule_count() + self.fragment_counts.rules,
            elements: self.base.element_count() + self.hairpin.len() + self.fragment_counts.elements,
        }
    }

    /// The ports of Services with UDP ports or healthCheckNodePorts: all that the conntrack
    /// cleanup and the health-check servers need, without walking every port.
    pub fn ports_with_side_effects(&self) -> impl Iterator<Item = &ServicePort> {
        self.with_side_effects
            .iter()
            .filter_map(|key| self.services.get(key))
            .flat_map(|e| e.ports.iter())
    }

    /// Number of programmed Service ports.
    pub fn port_count(&self) -> usize {
        self.port_count
    }

    /// Number of Services with at least one programmed port.
    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    /// Puts `ports` in place of the Service's, adding the change to `delta` when one is given.
    fn replace(&mut self, key: ServiceKey, ports: Vec<ServicePort>, mut delta: Option<&mut Delta>) {
        let old = self.services.remove(&key).unwrap_or_default();
        let kept: HashSet<&ServicePortName> = ports.iter().map(|p| &p.name).collect();
        for port in old.ports.iter().filter(|p| !kept.contains(&p.name)) {
            self.ids.release(&port.name);
        }
        let mut fragment = self.declarations.clone();
        for port in &ports {
            if let Some(id) = self.ids.assign(&port.name) {
                add_service_port(&mut fragment, port, id, &self.config);
            }
        }
        let hairpin: Vec<String> = fragment
            .sets
            .get_mut(HAIRPIN)
            .map(|set| std::mem::take(&mut set.elements).into_keys().collect())
            .unwrap_or_default();
        fragment.sets.retain(|_, set| !set.elements.is_empty());

        if let Some(delta) = delta.as_deref_mut() {
            merge(&mut delta.before, &old.fragment);
            merge(&mut delta.after, &fragment);
        }
        self.fragment_counts.subtract(TableCounts::of(&old.fragment));
        self.fragment_counts.add(TableCounts::of(&fragment));
        self.port_count = self.port_count - old.ports.len() + ports.len();
        if ports.iter().any(has_side_effects) {
            self.with_side_effects.insert(key.clone());
        } else {
            self.with_side_effects.remove(&key);
        }
        self.count_hairpin(&old.hairpin, &hairpin, delta);
        if !ports.is_empty() {
            self.services.insert(
                key,
                ServiceEntry {
                    ports,
                    fragment,
                    hairpin,
                },
            );
        }
    }

    /// Moves the shared hairpin elements whose first user arrives or last user leaves into the
    /// delta. An element that leaves one Service and joins another lands on both sides, which is
    /// no change.
    fn count_hairpin(&mut self, old: &[String], new: &[String], mut delta: Option<&mut Delta>) {
        let declaration = || self.declarations.sets[HAIRPIN].without_elements();
        for element in old {
            let Some(count) = self.hairpin.get_mut(element) else {
                continue;
            };
            *count -= 1;
            if *count == 0 {
                self.hairpin.remove(element);
                if let Some(delta) = delta.as_deref_mut() {
                    let set = delta.before.sets.entry(HAIRPIN.to_string()).or_insert_with(declaration);
                    set.elements.insert(element.clone(), String::new());
                }
            }
        }
        for element in new {
            let count = self.hairpin.entry(element.clone()).or_insert(0);
            *count += 1;
            if *count == 1 {
                if let Some(delta) = delta.as_deref_mut() {
                    let set = delta.after.sets.entry(HAIRPIN.to_string()).or_insert_with(declaration);
                    set.elements.insert(element.clone(), String::new());
                }
            }
        }
    }
}

fn has_side_effects(port: &ServicePort) -> bool {
    port.name.protocol == "udp" || port.health_check_node_port.is_some()
}

impl TableCounts {
    fn of(rules: &Ruleset) -> TableCounts {
        TableCounts {
            chains: rules.chains.len(),
            rules: rules.rule_count(),
            elements: rules.element_count(),
        }
    }

    fn add(&mut self, other: TableCounts) {
        self.chains += other.chains;
        self.rules += other.rules;
        self.elements += other.elements;
    }

    fn subtract(&mut self, other: TableCounts) {
        self.chains -= other.chains;
        self.rules -= other.rules;
        self.elements -= other.elements;
    }
}

/// The key of a Service object.
pub fn service_key(service: &Service) -> ServiceKey {
    (
        service.metadata.namespace.clone().unwrap_or_default(),
        service.metadata.name.clone().unwrap_or_default(),
    )
}

/// Adds `part`'s elements and chains to `into`, declaring its sets there when missing.
fn merge(into: &mut Ruleset, part: &Ruleset) {
    for (name, set) in &part.sets {
        let target = into.sets.entry(name.clone()).or_insert_with(|| set.without_elements());
        target
            .elements
            .extend(set.elements.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for (name, chain) in &part.chains {
        into.chains.insert(name.clone(), chain.clone());
    }
}

/// Port ids that stay with their port while it exists: a new port takes its preferred id
/// (`desired`'s hash) or the next free one up.
#[derive(Debug, Default)]
struct PortIds {
    by_name: HashMap<ServicePortName, u16>,
    taken: HashSet<u16>,
}

impl PortIds {
    /// The port's id, assigning one when it has none (None when all 65,535 are taken).
    fn assign(&mut self, name: &ServicePortName) -> Option<u16> {
        if let Some(id) = self.by_name.get(name) {
            return Some(*id);
        }
        if self.taken.len() >= 0xffff {
            return None;
        }
        let mut id = preferred_id(name);
        while !self.taken.insert(id) {
            id = if id == 0xffff { 1 } else { id + 1 };
        }
        self.by_name.insert(name.clone(), id);
        Some(id)
    }

    fn release(&mut self, name: &ServicePortName) {
        if let Some(id) = self.by_name.remove(name) {
            self.taken.remove(&id);
        }
    }
}
