//! `svcnet shim`: the small parent of one container process (containerd-shim's job). It
//! detaches itself (`setsid`) so it outlives agent restarts, it runs the container inside the pod's
//! namespaces (see [`crate::enter`]: what `ip netns exec` does, without that process), sends
//! its output to the log file, forwards SIGTERM and records the pid and the exit code in files
//! the agent reads:
//!
//! `<pod dir>/<container>.shim` (shim pid), `.pid` (container pid), `.exit` (exit code),
//! `.log` (stdout + stderr).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::Context;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::unistd::Pid;

/// `svcnet shim` flags (hidden: only the agent starts it).
#[derive(clap::Args, Debug, Clone)]
pub struct ShimArgs {
    /// The pod's state directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// The container's name (file names in the directory).
    #[arg(long)]
    pub container: String,
    /// The pod's network namespace; empty for a hostNetwork pod (the shim's own namespace).
    #[arg(long, default_value = "")]
    pub netns: String,
    /// The container's argv.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

/// The files of one container in its pod's directory.
#[derive(Debug, Clone)]
pub struct Files {
    pub dir: PathBuf,
    pub name: String,
}

impl Files {
    pub fn new(dir: &Path, name: &str) -> Files {
        Files {
            dir: dir.to_path_buf(),
            name: name.to_string(),
        }
    }
    fn file(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("{}.{ext}", self.name))
    }
    pub fn log(&self) -> PathBuf {
        self.file("log")
    }
    pub fn pid(&self) -> PathBuf {
        self.file("pid")
    }
    pub fn shim(&self) -> PathBuf {
        self.file("shim")
    }
    pub fn exit(&self) -> PathBuf {
        self.file("exit")
    }
    pub fn restarts(&self) -> PathBuf {
        self.file("restarts")
    }
}

/// Writes `text` so readers see all of it or nothing.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

pub fn read_number<T: std::str::FromStr>(path: &Path) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The container's pid, for the SIGTERM handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signo: i32) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        if let Ok(sig) = Signal::try_from(signo) {
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
    }
}

/// The shim's whole life; returns the exit code to leave with.
pub fn run(args: ShimArgs) -> anyhow::Result<i32> {
    // Out of the agent's session and process group, so it outlives the agent. Done here rather
    // than between fork and exec in the agent: a spawn with nothing to run in the child is a
    // vfork-like posix_spawn, not a copy of the agent's page tables per container.
    let _ = nix::unistd::setsid();
    let files = Files::new(&args.dir, &args.container);
    write_atomic(&files.shim(), &std::process::id().to_string())?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(files.log())
        .with_context(|| format!("opening {}", files.log().display()))?;
    // SAFETY: the handler only loads an atomic and calls kill(2), both async-signal-safe.
    unsafe {
        signal::signal(Signal::SIGTERM, SigHandler::Handler(forward))?;
        signal::signal(Signal::SIGINT, SigHandler::Handler(forward))?;
    }
    let spawned = crate::enter::command(&args.netns, &args.argv).and_then(|mut command| {
        if !is_own_binary(&args.argv) {
            command.env_remove(LEAN_ALLOCATOR.0);
        }
        Ok(command
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
    });
    let code = match spawned {
        Ok(mut child) => {
            CHILD.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
            write_atomic(&files.pid(), &child.id().to_string())?;
            loop {
                match child.wait() {
                    Ok(status) => break exit_code(status),
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break 255,
                }
            }
        }
        // Nothing to run: recorded like a process that failed at once (exit 127, as a shell).
        Err(_) => 127,
    };
    write_atomic(&files.exit(), &code.to_string())?;
    Ok(code)
}

/// Set for the svcnet processes the agent starts per container (the shim, the built-in echo
/// workload). The binary's allocator (mimalloc) otherwise commits its arenas up front: while it
/// still used transparent huge pages, every such short-lived process zeroed several 2 MiB pages,
/// a third of the machine's CPU in a burst of pod starts. Built without them now, committing up
/// front costs less, and a small process still has no use for it. A user's command does not get
/// it (its environment is exactly its pod's).
pub const LEAN_ALLOCATOR: (&str, &str) = ("MIMALLOC_ARENA_EAGER_COMMIT", "0");

/// Whether the container runs this binary (the built-in workload).
fn is_own_binary(argv: &[String]) -> bool {
    let own = std::env::current_exe().ok();
    argv.first().map(Path::new) == own.as_deref()
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Sends `sig` to the process recorded in `path`, if it lives.
pub fn signal_file(path: &Path, sig: Signal) {
    if let Some(pid) = read_number::<i32>(path).filter(|p| alive(*p)) {
        let _ = signal::kill(Pid::from_raw(pid), sig);
    }
}

/// Kills every container and shim recorded under `data_dir/pods` (test and lab teardown).
pub fn kill_all(data_dir: &Path) {
    let Ok(pods) = std::fs::read_dir(data_dir.join("pods")) else {
        return;
    };
    for pod in pods.flatten() {
        let Ok(files) = std::fs::read_dir(pod.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "pid" || ext == "shim" {
                signal_file(&path, Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_files_are_named_after_the_container() {
        let f = Files::new(Path::new("/d/pods/u"), "web");
        assert_eq!(f.log(), Path::new("/d/pods/u/web.log"));
        assert_eq!(f.exit(), Path::new("/d/pods/u/web.exit"));
    }

    #[test]
    fn liveness_of_pids() {
        assert!(alive(i32::try_from(std::process::id()).unwrap()));
        assert!(!alive(0));
        assert!(!alive(i32::MAX));
    }

    #[test]
    fn atomic_writes_and_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pid");
        write_atomic(&path, "42").unwrap();
        assert_eq!(read_number::<i32>(&path), Some(42));
        assert_eq!(read_number::<i32>(&dir.path().join("none")), None);
    }
}
