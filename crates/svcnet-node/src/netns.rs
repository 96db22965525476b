//! Named network namespaces (the `ip netns` kind, bind-mounted under /run/netns) and running code
//! inside one. Sockets keep the namespace they were opened in, so a listener opened here serves
//! that namespace while the process lives anywhere.

use std::fs::File;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use nix::sched::{setns, CloneFlags};

/// Where `ip netns` keeps its namespaces.
pub const NETNS_DIR: &str = "/run/netns";

pub fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

pub fn exists(name: &str) -> bool {
    path(name).exists()
}

/// Creates the namespace (idempotent) with its loopback up.
pub fn add(name: &str) -> anyhow::Result<()> {
    if !exists(name) {
        ip(&["netns", "add", name])?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"])
}

/// Removes the namespace if it is there; its links and routes go with it.
pub fn delete(name: &str) -> anyhow::Result<()> {
    if exists(name) {
        ip(&["netns", "delete", name])?;
    }
    Ok(())
}

/// Runs `ip ARGS...` and turns a failure into one clear error line.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

/// Runs many `ip` commands in one process (`ip -batch -`), optionally inside a namespace.
pub fn ip_batch(namespace: Option<&str>, lines: &[String]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut command = Command::new("ip");
    if let Some(ns) = namespace {
        command.args(["-n", ns]);
    }
    let mut child = command
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting ip (is iproute2 installed?)")?;
    child
        .stdin
        .take()
        .context("ip stdin")?
        .write_all(lines.join("\n").as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "ip -batch in {}: {}",
            namespace.unwrap_or("host namespace"),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("starting {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Runs `f` on a fresh thread that has entered the namespace, so the caller's namespace is never
/// touched.
pub fn run_in<T, F>(name: &str, f: F) -> anyhow::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let file = File::open(path(name)).with_context(|| format!("network namespace {name}"))?;
    let name = name.to_string();
    std::thread::spawn(move || -> anyhow::Result<T> {
        setns(&file, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering network namespace {name}"))?;
        Ok(f())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("thread inside the namespace panicked"))?
}

/// A TCP listener bound inside the namespace; it keeps serving that namespace from any thread.
pub fn tcp_listener_in(name: &str, addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpListener> {
    let listener = run_in(name, move || std::net::TcpListener::bind(addr))?
        .with_context(|| format!("listening on {addr} in {name}"))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// The pids of processes whose network namespace is the named one (compared by inode, as
/// `ip netns pids` does): what must be stopped before a namespace is really gone.
pub fn pids_in(name: &str) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path(name)).map(|m| m.ino()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::metadata(format!("/proc/{pid}/ns/net")).is_ok_and(|m| m.ino() == target))
        .collect()
}

/// SIGKILL to every process in the named namespace (teardown: nothing may keep it alive).
pub fn kill_all_in(name: &str) {
    for pid in pids_in(name) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}
