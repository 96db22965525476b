//! Removing a lab: stop a running `svcnet up`, kill every process that lives in a lab network
//! namespace (agents, container shims, containers), delete the namespaces, their `/etc/netns`
//! directories and the host routes. Every step tolerates what is already gone, so `svcnet down`
//! can run any number of times and after any crash.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use svcnet_node::netns;

use crate::build;
use crate::plan;
use crate::state::LabState;

/// What a teardown removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// A running `svcnet up` was asked to stop (it removes its lab itself).
    pub stopped_up: bool,
    pub processes: usize,
    pub namespaces: usize,
}

/// How long a running `svcnet up` gets to tear down its own lab after SIGTERM.
const UP_EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long processes in lab namespaces get to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Removes everything `state` records and every pod namespace of its prefix. `stop_up`: first
/// ask a still running `svcnet up` of this lab to stop (when called from `svcnet down`).
pub fn teardown(state: &LabState, stop_up: bool) -> Report {
    let stopped_up = stop_up && stop_running_up(state.up_pid);
    let namespaces = lab_namespaces(&state.prefix, &state.namespaces);
    let mut extra_pids: Vec<u32> = state.agents.iter().map(|a| a.pid).collect();
    extra_pids.extend(pid_files(&state.data_dir.join("nodes")));
    let processes = kill_lab_processes(&namespaces, &extra_pids);
    // Look again: an agent's sandbox thread may have added a pod namespace (or its bare mount
    // point, when killed between the two) after the first look and before it died.
    let namespaces = lab_namespaces(&state.prefix, &state.namespaces);
    let lines: Vec<String> = namespaces.iter().map(|ns| format!("netns delete {ns}")).collect();
    build::force_batch(None, &lines);
    remove_etc_netns(&state.prefix, &namespaces);
    build::delete_host_routes(&state.host_routes, state.route_metric);
    Report {
        stopped_up,
        processes,
        namespaces: namespaces.len(),
    }
}

/// The recorded namespaces plus whatever exists under /run/netns with this lab's names (pods
/// the agents made, or namespaces of a lab whose state was lost).
fn lab_namespaces(prefix: &str, recorded: &[String]) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = recorded.iter().cloned().collect();
    if let Ok(entries) = std::fs::read_dir(netns::NETNS_DIR) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if plan::is_lab_namespace(prefix, &name) {
                names.insert(name);
            }
        }
    }
    names.retain(|name| netns::exists(name) || Path::new("/etc/netns").join(name).exists());
    names
}

/// SIGTERM to a `svcnet up` still running for this lab, then wait for it to finish its own
/// teardown (a bounded wait: whatever it leaves, the caller removes). True when there was one.
fn stop_running_up(pid: u32) -> bool {
    if pid == 0 || pid == std::process::id() || !is_svcnet(pid) {
        return false;
    }
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
    let deadline = Instant::now() + UP_EXIT_TIMEOUT;
    while is_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// Kills (SIGKILL) every process whose network namespace is one of `namespaces`, and the
/// recorded `pids` that are still svcnet processes, until none is left or the time is up.
/// Returns how many were killed.
fn kill_lab_processes(namespaces: &BTreeSet<String>, pids: &[u32]) -> usize {
    let inodes: BTreeSet<u64> = namespaces
        .iter()
        .filter_map(|ns| std::fs::metadata(netns::path(ns)).ok())
        .map(|meta| meta.ino())
        .collect();
    let me = std::process::id();
    let mut killed = BTreeSet::new();
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let mut victims = processes_in(&inodes);
        victims.extend(pids.iter().copied().filter(|pid| is_svcnet(*pid)));
        victims.retain(|pid| *pid != me && is_alive(*pid));
        if victims.is_empty() || Instant::now() > deadline {
            break;
        }
        for pid in victims {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            killed.insert(pid);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.len()
}

/// Pids of processes whose network namespace has one of these inodes.
pub fn processes_in(inodes: &BTreeSet<u64>) -> BTreeSet<u32> {
    let mut pids = BTreeSet::new();
    if inodes.is_empty() {
        return pids;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(link) = std::fs::read_link(entry.path().join("ns/net")) else {
            continue;
        };
        if netns_inode(&link.to_string_lossy()).is_some_and(|ino| inodes.contains(&ino)) {
            pids.insert(pid);
        }
    }
    pids
}

/// `net:[4026532281]` -> 4026532281.
fn netns_inode(link: &str) -> Option<u64> {
    link.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Pids in `*.pid` and `*.shim` files under the agents' state (container shims write their own
/// pid and their container's there).
fn pid_files(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut stack: Vec<(PathBuf, u32)> = vec![(dir.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && depth < 5 {
                stack.push((path, depth + 1));
            } else if path.extension().is_some_and(|e| e == "pid" || e == "shim") {
                if let Some(pid) = std::fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok()) {
                    pids.push(pid);
                }
            }
        }
    }
    pids
}

fn remove_etc_netns(prefix: &str, namespaces: &BTreeSet<String>) {
    let etc = Path::new("/etc/netns");
    let mut dirs: BTreeSet<String> = namespaces.clone();
    if let Ok(entries) = std::fs::read_dir(etc) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if plan::is_lab_namespace(prefix, &name) {
                dirs.insert(name);
            }
        }
    }
    for name in dirs {
        let _ = std::fs::remove_dir_all(etc.join(name));
    }
}

pub fn is_alive(pid: u32) -> bool {
    // A zombie has no namespace links and no longer runs: count it as gone. Every thread is
    // looked at, since a leader that has exited leaves its other threads running until they
    // reach their own exit (an agent's sandbox thread finishing a system call).
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .is_ok_and(|mut tasks| tasks.any(|task| task.is_ok_and(|t| t.path().join("ns/net").read_link().is_ok())))
}

/// Whether the process runs svcnet (guards against a recorded pid that was reused).
pub fn is_svcnet(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|cmd| {
            cmd.split(|b| *b == 0)
                .next()
                .is_some_and(|exe| String::from_utf8_lossy(exe).contains("svcnet"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_namespace_links() {
        assert_eq!(netns_inode("net:[4026532281]"), Some(4026532281));
        assert_eq!(netns_inode("mnt:[1]"), None);
        assert_eq!(netns_inode("net:[x]"), None);
    }

    #[test]
    fn finds_pid_files_below_the_node_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("node1/pods/abc");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::write(pod.join("web.pid"), "1234\n").unwrap();
        std::fs::write(pod.join("web.log"), "5678").unwrap();
        std::fs::write(pod.join("web.shim"), "1233").unwrap();
        std::fs::write(dir.path().join("node1/agent.pid"), "junk").unwrap();
        let mut pids = pid_files(dir.path());
        pids.sort();
        assert_eq!(pids, [1233, 1234]);
    }

    #[test]
    fn this_process_is_alive_and_not_svcnet_named_unless_it_is() {
        let me = std::process::id();
        assert!(is_alive(me));
        assert!(!is_alive(u32::MAX - 1));
    }
}
