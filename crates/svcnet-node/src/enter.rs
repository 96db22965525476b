//! Entering a pod the way `ip netns exec` does, without the extra `ip` process per container
//! or exec probe: between fork and exec the child joins the pod's network namespace, takes a
//! private mount namespace (a slave of the parent's, so nothing propagates back), mounts a
//! /sys that shows the pod's devices and bind-mounts the pod's `/etc/netns/<pod netns>/*`
//! files over /etc (resolv.conf, hosts). Unlike `ip netns exec`, it also leaves out
//! /run/netns (the node's namespace mounts).
//!
//! Everything the child needs (the namespace file, the paths) is prepared before the fork:
//! the agent is multi-threaded, so the child may only make system calls.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// What a child needs to enter one pod.
#[derive(Debug)]
pub struct PodEntry {
    netns: File,
    /// The sysfs mount's source (cosmetic: `ip netns exec` names it after the namespace).
    sys_source: CString,
    /// (file under /etc/netns/<pod netns>/, the /etc path it covers).
    binds: Vec<(CString, CString)>,
}

fn c_path(path: &Path) -> anyhow::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).with_context(|| format!("NUL in {}", path.display()))
}

impl PodEntry {
    /// Opens the pod's namespace and lists its /etc files.
    pub fn prepare(netns: &str) -> anyhow::Result<PodEntry> {
        let netns_file = File::open(crate::netns::path(netns)).with_context(|| format!("network namespace {netns}"))?;
        let mut binds = Vec::new();
        let etc = crate::sandbox::etc_dir(netns);
        for entry in std::fs::read_dir(&etc).into_iter().flatten().flatten() {
            let target = Path::new("/etc").join(entry.file_name());
            binds.push((c_path(&entry.path())?, c_path(&target)?));
        }
        binds.sort();
        Ok(PodEntry {
            netns: netns_file,
            sys_source: CString::new(netns).context("NUL in a namespace name")?,
            binds,
        })
    }

    /// The child's side, after fork: system calls only (no allocation).
    fn enter(&self) -> nix::Result<()> {
        setns(&self.netns, CloneFlags::CLONE_NEWNET)?;
        unshare(CloneFlags::CLONE_NEWNS)?;
        let none: Option<&CStr> = None;
        mount(none, c"/", none, MsFlags::MS_SLAVE | MsFlags::MS_REC, none)?;
        // The pod has no use for the node's namespace mounts, and every namespace mount made
        // later would otherwise propagate into this mount namespace too: with hundreds of pods
        // that made each new sandbox cost as much again as there were containers running.
        let _ = umount2(c"/run/netns", MntFlags::MNT_DETACH);
        // statfs(2), not glibc's statvfs, which reads the whole mount table for the flags.
        let read_only =
            nix::sys::statfs::statfs(c"/sys").is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));
        // No sysfs there is fine: a new one is mounted either way.
        let _ = umount2(c"/sys", MntFlags::MNT_DETACH);
        let flags = if read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        mount(Some(self.sys_source.as_c_str()), c"/sys", Some(c"sysfs"), flags, none)?;
        for (source, target) in &self.binds {
            mount(Some(source.as_c_str()), target.as_c_str(), none, MsFlags::MS_BIND, none)?;
        }
        Ok(())
    }
}

/// `argv` as a command that runs inside `netns` (as `ip netns exec` would run it), or as it is
/// when `netns` is empty (hostNetwork pods).
pub fn command(netns: &str, argv: &[String]) -> anyhow::Result<Command> {
    let mut command = Command::new(argv.first().map(String::as_str).unwrap_or("true"));
    command.args(argv.iter().skip(1));
    if !netns.is_empty() {
        let entry = PodEntry::prepare(netns)?;
        // SAFETY: `enter` only makes system calls on data prepared before the fork.
        unsafe {
            command.pre_exec(move || entry.enter().map_err(std::io::Error::from));
        }
    }
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_network_commands_run_as_they_are() {
        let command = command("", &["echo".to_string(), "hi".to_string()]).unwrap();
        assert_eq!(command.get_program(), "echo");
        assert_eq!(command.get_args().collect::<Vec<_>>(), ["hi"]);
    }

    #[test]
    fn a_missing_namespace_is_an_error_before_any_fork() {
        assert!(command("svcnet-test-no-such-namespace", &["true".to_string()]).is_err());
    }
}
