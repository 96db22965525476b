use super::*;

fn node(name: &str, cidrs: &[&str]) -> NodeCidrs {
    NodeCidrs {
        name: name.into(),
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
    }
}

#[test]
fn blocks_are_handed_out_in_order_and_never_twice() {
    let mut set = CidrSet::new("10.244.0.0/16").unwrap();
    assert_eq!(set.capacity(), 256);
    assert!(set.occupy("10.244.1.0/24"));
    assert!(!set.occupy("10.245.0.0/24"), "outside");
    assert!(!set.occupy("10.244.1.0/25"), "not a node block");
    assert!(!set.occupy("10.244.1.128/24"), "misaligned");
    assert_eq!(set.allocate().as_deref(), Some("10.244.0.0/24"));
    assert_eq!(set.allocate().as_deref(), Some("10.244.2.0/24"));
    assert_eq!(set.allocate().as_deref(), Some("10.244.3.0/24"));
}

#[test]
fn small_ranges_run_out_and_wrap_around() {
    let mut set = CidrSet::new("10.8.0.0/23").unwrap();
    assert_eq!(set.allocate().as_deref(), Some("10.8.0.0/24"));
    assert_eq!(set.allocate().as_deref(), Some("10.8.1.0/24"));
    assert_eq!(set.allocate(), None);
    set.clear();
    set.occupy("10.8.1.0/24");
    assert_eq!(
        set.allocate().as_deref(),
        Some("10.8.0.0/24"),
        "the freed block, after wrapping"
    );
}

#[test]
fn cluster_cidrs_parse_per_family() {
    let sets = parse_cluster_cidrs("10.244.0.0/16,fd00:10:244::/56").unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[1].capacity(), 256);
    assert!(sets[1].same_family("fd00::/64") && !sets[1].same_family("10.0.0.0/8"));
    let mut v6 = sets[1].clone();
    assert_eq!(v6.allocate().as_deref(), Some("fd00:10:244::/64"));
    assert_eq!(v6.allocate().as_deref(), Some("fd00:10:244:1::/64"));
    assert!(matches!(
        CidrSet::new("10.0.0.0/25"),
        Err(Error::ClusterCidrTooSmall { node_prefix: 24, .. })
    ));
    assert!(matches!(CidrSet::new("10.0.0.0"), Err(Error::InvalidCidr(_))));
    assert!(matches!(CidrSet::new("10.0.0.0/33"), Err(Error::InvalidCidr(_))));
    assert_eq!(
        CidrSet::new("10.1.2.3/16").unwrap().allocate().as_deref(),
        Some("10.1.0.0/24"),
        "host bits are dropped"
    );
}

#[test]
fn plan_skips_held_blocks_and_in_flight_nodes() {
    let mut sets = parse_cluster_cidrs("10.244.0.0/22").unwrap();
    let nodes = [
        node("c", &[]),
        node("a", &["10.244.1.0/24"]),
        node("b", &[]),
        node("d", &[]),
        node("e", &[]),
    ];
    let in_flight = [node("d", &["10.244.0.0/24"])];
    let assigned = plan(&mut sets, &nodes, &in_flight);
    assert_eq!(assigned, [node("b", &["10.244.2.0/24"]), node("c", &["10.244.3.0/24"])]);
    // Nothing left for e until a block is released.
    let settled = [
        node("a", &["10.244.1.0/24"]),
        node("b", &["10.244.2.0/24"]),
        node("c", &["10.244.3.0/24"]),
        node("d", &["10.244.0.0/24"]),
        node("e", &[]),
    ];
    assert_eq!(plan(&mut sets, &settled, &[]), []);
    let a_gone = &settled[1..];
    assert_eq!(plan(&mut sets, a_gone, &[]), [node("e", &["10.244.1.0/24"])]);
}

#[test]
fn dual_stack_nodes_get_one_block_per_family() {
    let mut sets = parse_cluster_cidrs("10.244.0.0/16,fd00:10:244::/56").unwrap();
    let assigned = plan(&mut sets, &[node("n1", &[])], &[]);
    assert_eq!(assigned, [node("n1", &["10.244.0.0/24", "fd00:10:244::/64"])]);
}
