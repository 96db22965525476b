//! One container of a pod as the agent tracks it (the kubelet's container runtime side): what
//! its shim's files say (not started, starting, running, exited), its restart count and
//! backoff, its probes, and the view the pod status is made from; plus stopping every container
//! of a pod directory.

use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Container;
use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::probe::{Kind, Prober};
use crate::shim::{alive, read_number, signal_file, Files};
use crate::status::{ContainerView, State};

/// Restart backoff: doubling from the first, capped small (the lab wants quick recovery).
const BACKOFF_FIRST: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The restart delay after `restarts` restarts.
pub fn backoff(restarts: i32) -> Duration {
    let shift = u32::try_from(restarts.clamp(0, 16)).unwrap_or(0);
    BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_CAP)
}

/// Whether a container that exited with `code` is started again.
pub fn restarts_after(policy: &str, code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => code != 0,
        _ => true,
    }
}

/// What the agent sees of one container run, from the shim's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seen {
    NotStarted,
    Starting,
    Running {
        pid: i32,
        started_at: Timestamp,
    },
    Exited {
        code: i32,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    },
}

fn mtime(path: &std::path::Path) -> Option<Timestamp> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    Timestamp::from_second(i64::try_from(since.as_secs()).ok()?).ok()
}

/// When a container that left no exit record is taken to have ended: a fixed time (its
/// files' last change), so looking again yields the same state and no new status.
fn gone_at(files: &Files) -> Timestamp {
    mtime(&files.pid())
        .or_else(|| mtime(&files.shim()))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn observe(files: &Files) -> Seen {
    let started_at = mtime(&files.pid());
    if let Some(code) = read_number::<i32>(&files.exit()) {
        let finished_at = mtime(&files.exit()).unwrap_or_else(Timestamp::now);
        return Seen::Exited {
            code,
            started_at,
            finished_at,
        };
    }
    let shim_alive = read_number::<i32>(&files.shim()).is_some_and(alive);
    match read_number::<i32>(&files.pid()) {
        Some(pid) if alive(pid) || shim_alive => Seen::Running {
            pid,
            started_at: started_at.unwrap_or_else(Timestamp::now),
        },
        // Container and shim both gone without an exit record (killed together).
        Some(_) => Seen::Exited {
            code: 137,
            started_at,
            finished_at: gone_at(files),
        },
        None if shim_alive => Seen::Starting,
        None if files.shim().exists() => Seen::Exited {
            code: 128,
            started_at: None,
            finished_at: gone_at(files),
        },
        None => Seen::NotStarted,
    }
}

/// One container of the pod and its progress.
pub(crate) struct Ctr {
    pub(crate) spec: Container,
    pub(crate) files: Files,
    pub(crate) restarts: i32,
    pub(crate) seen: Seen,
    pub(crate) last: Option<State>,
    pub(crate) restart_at: Option<Instant>,
    pub(crate) readiness: Option<Prober>,
    pub(crate) liveness: Option<Prober>,
    pub(crate) startup: Option<Prober>,
}

impl Ctr {
    pub(crate) fn new(spec: Container, dir: &std::path::Path) -> Ctr {
        let files = Files::new(dir, &spec.name);
        let restarts = read_number(&files.restarts()).unwrap_or(0);
        let now = Instant::now();
        let make = |kind, probe: &Option<k8s_openapi::api::core::v1::Probe>| {
            probe.as_ref().map(|p| Prober::new(kind, p, &spec, now))
        };
        Ctr {
            readiness: make(Kind::Readiness, &spec.readiness_probe),
            liveness: make(Kind::Liveness, &spec.liveness_probe),
            startup: make(Kind::Startup, &spec.startup_probe),
            seen: observe(&files),
            files,
            restarts,
            last: None,
            restart_at: None,
            spec,
        }
    }

    pub(crate) fn started(&self) -> bool {
        matches!(self.seen, Seen::Running { .. }) && self.startup.as_ref().is_none_or(|p| p.result)
    }

    pub(crate) fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(|p| p.result)
    }

    pub(crate) fn reset_probes(&mut self) {
        let now = Instant::now();
        for p in [&mut self.readiness, &mut self.liveness, &mut self.startup]
            .into_iter()
            .flatten()
        {
            p.reset(now);
        }
    }

    pub(crate) fn view(&self, uid: &str) -> ContainerView {
        let state = match &self.seen {
            Seen::NotStarted | Seen::Starting => State::Waiting {
                reason: if self.restart_at.is_some() {
                    "CrashLoopBackOff"
                } else {
                    "ContainerCreating"
                }
                .into(),
            },
            Seen::Running { started_at, .. } => State::Running {
                started_at: *started_at,
            },
            Seen::Exited {
                code,
                started_at,
                finished_at,
            } => State::Terminated {
                exit_code: *code,
                started_at: *started_at,
                finished_at: *finished_at,
            },
        };
        // A container waiting out its backoff shows Waiting with its last termination.
        let state = match (&state, self.restart_at) {
            (State::Terminated { .. }, Some(_)) => State::Waiting {
                reason: "CrashLoopBackOff".into(),
            },
            _ => state,
        };
        ContainerView {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            container_id: format!(
                "svcnet://{}-{}-{}",
                &uid[..uid.len().min(12)],
                self.spec.name,
                self.restarts
            ),
            state,
            last: self.last.clone(),
            restart_count: self.restarts,
            ready: self.ready(),
            started: self.started(),
        }
    }
}

/// Every container file set in a pod directory (by its `.shim` or `.pid` files).
pub(crate) fn container_files(dir: &std::path::Path) -> Vec<Files> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let ext = path.extension()?.to_str()?;
            (ext == "shim" || ext == "pid").then(|| path.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    names.dedup();
    names.iter().map(|n| Files::new(dir, n)).collect()
}

/// SIGTERM to every container (through its shim), SIGKILL to what is left after `grace`.
pub(crate) async fn stop_containers(dir: &std::path::Path, grace: Duration) {
    let files = container_files(dir);
    let running = |f: &Files| read_number::<i32>(&f.pid()).is_some_and(alive);
    for f in &files {
        // One SIGTERM per container: through its shim, or straight to it when the shim is gone.
        let shim_alive = read_number::<i32>(&f.shim()).is_some_and(alive);
        let target = if shim_alive { f.shim() } else { f.pid() };
        signal_file(&target, Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && files.iter().any(running) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for f in &files {
        signal_file(&f.pid(), Signal::SIGKILL);
        signal_file(&f.shim(), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::write_atomic;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(100), Duration::from_secs(5));
    }

    #[test]
    fn restart_policy() {
        assert!(restarts_after("Always", 0));
        assert!(!restarts_after("OnFailure", 0));
        assert!(restarts_after("OnFailure", 2));
        assert!(!restarts_after("Never", 2));
    }

    #[test]
    fn files_are_observed() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path(), "c");
        assert_eq!(observe(&files), Seen::NotStarted);
        write_atomic(&files.pid(), &std::process::id().to_string()).unwrap();
        assert!(matches!(observe(&files), Seen::Running { .. }));
        write_atomic(&files.exit(), "3").unwrap();
        assert!(matches!(observe(&files), Seen::Exited { code: 3, .. }));
        assert_eq!(container_files(dir.path()).len(), 1);
    }
}
