//! svcnet-lab: a multi-node cluster on one machine. It builds the VPC, the nodes, the SLB host
//! and an internet client as network namespaces, starts the control plane and one node agent per
//! node, and removes all of it again (docs/lab.md has the names and addresses).
//!
//! [`plan`] computes the lab as data; [`build`] applies it; [`up`] runs a lab in the foreground
//! and [`down`] removes one, also after a crash, from what [`state`] recorded.

pub mod bench;
pub mod build;
pub mod cluster_dns;
pub mod plan;
pub mod programming;
pub mod state;
pub mod teardown;
pub mod up;
mod vpc_routes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

pub use bench::{bench_lab, BenchLabArgs};
pub use plan::Cni;
pub use programming::{bench_programming, BenchProgrammingArgs};
/// The default lab name for a data dir (docs/lab.md), shared with the agent's tools.
pub use svcnet_node::lab_prefix;
pub use up::up;

/// Where a lab keeps its state when `--data-dir` is not given.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/svcnet-lab";

/// `svcnet up`: build a lab and run its cluster in the foreground.
#[derive(clap::Args, Debug, Clone)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 2)]
    pub nodes: u32,
    /// Pod network.
    #[arg(long, value_enum, default_value_t = Cni::Flannel)]
    pub cni: Cni,
    /// Directory for the lab's state, store, kubeconfig and logs.
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Address of the API server on the host (plain HTTP), for kubectl.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Lab name, the prefix of everything it makes (default: derived from the data dir).
    #[arg(long)]
    pub name: Option<String>,
    /// Seconds without a node lease renewal before the node is NotReady.
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// Topology zones, comma-separated, given to the nodes round-robin.
    #[arg(long, value_delimiter = ',')]
    pub zones: Vec<String>,
    /// Seconds to wait for every node to be Ready.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout: u64,
    /// Build the network and the control plane but start no node agents (topology tests).
    #[arg(long, hide = true)]
    pub no_agents: bool,
    /// Run no cluster DNS (the kube-system/kube-dns Service at 10.96.0.10 and its `svcnet dns`
    /// pods).
    #[arg(long)]
    pub no_cluster_dns: bool,
}

/// `svcnet down`: remove a lab.
#[derive(clap::Args, Debug, Clone)]
pub struct DownArgs {
    /// The lab's data dir (as given to `svcnet up`).
    #[arg(long, env = "SVCNET_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Lab name, when `svcnet up` was given one and its state is lost.
    #[arg(long)]
    pub name: Option<String>,
}

/// Removes the lab recorded under the data dir, or, without a record, every namespace with the
/// lab's names. Idempotent.
pub fn down(args: DownArgs) -> anyhow::Result<()> {
    require_root("svcnet down")?;
    let data_dir = args.data_dir.canonicalize().unwrap_or(args.data_dir.clone());
    let state = match state::LabState::load(&data_dir)? {
        Some(state) => state,
        None => {
            let prefix = args.name.unwrap_or_else(|| lab_prefix(&data_dir));
            println!(
                "no lab recorded in {}; removing namespaces named {prefix}-*",
                data_dir.display()
            );
            unrecorded(&data_dir, prefix)
        }
    };
    let report = teardown::teardown(&state, true);
    state::LabState::remove(&data_dir)?;
    if report.stopped_up {
        println!(
            "svcnet up (pid {}) stopped and removed lab {}",
            state.up_pid, state.prefix
        );
    }
    if report.namespaces + report.processes > 0 {
        println!(
            "lab {} removed: {} namespaces, {} processes",
            state.prefix, report.namespaces, report.processes
        );
    } else if !report.stopped_up {
        println!("lab {}: nothing left to remove", state.prefix);
    }
    Ok(())
}

/// A state naming only the prefix, for a lab whose lab.json is gone.
fn unrecorded(data_dir: &Path, prefix: String) -> state::LabState {
    state::LabState {
        prefix,
        data_dir: data_dir.to_path_buf(),
        cni: Cni::Flannel,
        namespaces: Vec::new(),
        host_routes: Vec::new(),
        route_metric: 0,
        up_pid: 0,
        agents: Vec::new(),
        server: String::new(),
    }
}

/// One clear line when not root: everything the lab does needs CAP_SYS_ADMIN and CAP_NET_ADMIN.
pub fn require_root(what: &str) -> anyhow::Result<()> {
    if effective_uid() != Some(0) {
        anyhow::bail!("{what} needs root (it creates network namespaces); run it with sudo");
    }
    Ok(())
}

/// The effective uid, from /proc (the `Uid:` line holds real, effective, saved, fs).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A stable hash for names derived from the lab (its host route metric).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Creates the data dir and returns its canonical path (the prefix is derived from it).
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_differ_per_data_dir_and_are_stable() {
        let a = lab_prefix(Path::new("/nonexistent/a/lab"));
        let b = lab_prefix(Path::new("/nonexistent/b/lab"));
        assert_ne!(a, b);
        assert_eq!(a, lab_prefix(Path::new("/nonexistent/a/lab")));
        assert_eq!(a.len(), 6);
        assert!(a.starts_with("sn"));
        plan::validate_prefix(&a).unwrap();
    }

    #[test]
    fn fnv1a_matches_the_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
    }
}
