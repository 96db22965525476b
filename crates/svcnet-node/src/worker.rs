//! One task per pod (the kubelet's pod worker): it makes or adopts the sandbox, starts or
//! adopts each container (see [`crate::container`]) under a shim, restarts them by the restart
//! policy, runs the probes, writes the pod status when it changes, and on deletion stops
//! everything and releases the pod object.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::container::{backoff, container_files, observe, restarts_after, stop_containers, Ctr, Seen};
use crate::env::{container_argv, container_env, PodFacts};
use crate::ipam::{Cidr, Ipam};
use crate::pool::Pool;
use crate::probe::{self, Kind};
use crate::routes::Cni;
use crate::sandbox::{self, HostMounts, PodFiles, SandboxSpec};
use crate::sandboxer::Sandboxer;
use crate::shim::{signal_file, write_atomic, LEAN_ALLOCATOR};
use crate::status::{pod_status, ContainerView, Inputs, State};

/// What every pod worker shares.
pub struct Shared {
    pub client: kube::Client,
    pub node: String,
    pub node_ip: Ipv4Addr,
    pub cni: Cni,
    pub prefix: String,
    pub data_dir: PathBuf,
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub exe: PathBuf,
    pub mounts: HostMounts,
    pub pod_cidr: Cidr,
    pub ipam: std::sync::Mutex<Ipam>,
    /// Makes and removes sandboxes (one thread, in-process).
    pub sandboxer: Sandboxer,
    /// Blank sandboxes made ahead of time.
    pub pool: Arc<Pool>,
}

impl Shared {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.data_dir.join("pods").join(uid)
    }
}

/// The latest pod object; None once it is gone from the API.
pub type PodRx = watch::Receiver<Option<Pod>>;

/// How often a worker looks at its containers while they start, and later.
const FAST_TICK: Duration = Duration::from_millis(10);
const SLOW_TICK: Duration = Duration::from_millis(100);
const FAST_FOR: Duration = Duration::from_secs(3);
/// Written in the pod directory once its sandbox is complete.
const SANDBOX_MARKER: &str = "sandbox";
/// Status write retries: doubling from the first, capped.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(5);
/// How long a new pod's first status waits for its containers to start.
const FIRST_START_WAIT: Duration = Duration::from_millis(100);
pub fn is_deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// A running pod as its worker holds it.
struct PodRun {
    shared: Arc<Shared>,
    uid: String,
    dir: PathBuf,
    netns: String,
    veth: String,
    ip: Option<Ipv4Addr>,
    ctrs: Vec<Ctr>,
    start_time: Timestamp,
    born: Instant,
    last_status: Option<Value>,
    /// Something the status depends on changed since the last status was written.
    dirty: bool,
    /// After a failed status write: not before this instant (so a down API server is not
    /// hammered by every pod at tick rate), with the delay doubling up to [`RETRY_CAP`].
    retry_at: Option<Instant>,
    retry_delay: Duration,
}

/// The worker of pod `uid` until its pod is gone; `seen` is when the agent first saw the pod.
pub async fn run_pod(shared: Arc<Shared>, uid: String, mut rx: PodRx, seen: Instant) {
    tracing::debug!(uid, queued = ?seen.elapsed(), "pod worker running");
    let Some(pod) = rx.borrow_and_update().clone() else {
        cleanup_orphan(&shared, &uid).await;
        return;
    };
    let dir = shared.pod_dir(&uid);
    let start_time = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now);
    let mut run = PodRun {
        // Empty for hostNetwork pods: their processes and probes run in the agent's namespace.
        netns: if host_network(&pod) {
            String::new()
        } else {
            crate::names::pod_netns(&shared.prefix, &uid)
        },
        veth: crate::names::pod_veth(&uid),
        shared,
        uid,
        dir,
        ip: None,
        ctrs: Vec::new(),
        start_time,
        born: seen,
        last_status: None,
        dirty: true,
        retry_at: None,
        retry_delay: RETRY_FIRST,
    };
    let mut pod = pod;
    if !is_deleting(&pod) {
        if let Err(err) = run.setup(&pod).await {
            tracing::warn!(pod = ?pod.metadata.name, error = %format!("{err:#}"), "pod sandbox failed; retrying");
        }
    }
    loop {
        if is_deleting(&pod) {
            run.terminate(&pod, true).await;
            return;
        }
        if run.ip.is_none() {
            if let Err(err) = run.setup(&pod).await {
                tracing::warn!(pod = ?pod.metadata.name, error = %format!("{err:#}"), "pod sandbox failed; retrying");
            }
        } else {
            run.step(&pod).await;
        }
        let tick = run.next_tick();
        tokio::select! {
            changed = rx.changed() => {
                let latest = if changed.is_ok() { rx.borrow_and_update().clone() } else { None };
                match latest {
                    Some(latest) => {
                        pod = latest;
                        run.dirty = true;
                    }
                    None => {
                        run.terminate(&pod, false).await;
                        return;
                    }
                }
            }
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

impl PodRun {
    /// How long to sleep: briefly while a container is starting or due to restart (that is
    /// what pod start latency waits on), longer otherwise, never past a due probe.
    fn next_tick(&self) -> Duration {
        if self.ip.is_none() {
            return Duration::from_secs(1);
        }
        let busy = self
            .ctrs
            .iter()
            .any(|c| matches!(c.seen, Seen::NotStarted | Seen::Starting) || c.restart_at.is_some());
        let tick = if busy || self.born.elapsed() < FAST_FOR / 10 {
            FAST_TICK
        } else {
            SLOW_TICK
        };
        let now = Instant::now();
        let next_probe = self
            .ctrs
            .iter()
            .flat_map(|c| [&c.readiness, &c.liveness, &c.startup])
            .flatten()
            .map(|p| p.next_at.saturating_duration_since(now))
            .min()
            .unwrap_or(tick);
        tick.min(next_probe.max(Duration::from_millis(1)))
    }

    /// Makes (or adopts) the sandbox and starts (or adopts) the containers.
    async fn setup(&mut self, pod: &Pod) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let held = self
            .shared
            .ipam
            .lock()
            .map_err(|_| anyhow::anyhow!("ipam lock"))?
            .get(&self.uid);
        // Adopted only when complete: an agent killed halfway through a sandbox leaves no
        // marker, and the half-made one is replaced.
        let complete = self.dir.join(SANDBOX_MARKER).exists() && crate::netns::exists(&self.netns);
        let ip = match held {
            _ if host_network(pod) => self.shared.node_ip,
            Some(ip) if complete => ip,
            _ => {
                // Containers left from an incomplete sandbox run in a namespace that is about to
                // go: they start again in the new one.
                stop_containers(&self.dir, Duration::ZERO).await;
                for files in container_files(&self.dir) {
                    for stale in [files.pid(), files.exit(), files.shim()] {
                        let _ = std::fs::remove_file(stale);
                    }
                }
                self.create_sandbox(pod).await?
            }
        };
        self.ip = Some(ip);
        let sandbox_done = self.born.elapsed();
        let containers = pod.spec.as_ref().map(|s| s.containers.clone()).unwrap_or_default();
        self.ctrs = containers.into_iter().map(|c| Ctr::new(c, &self.dir)).collect();
        let began = Instant::now();
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].seen == Seen::NotStarted {
                self.start(pod, i)?;
            }
        }
        let spawned = began.elapsed();
        self.await_first_start().await;
        tracing::debug!(
            pod = ?pod.metadata.name,
            ?sandbox_done,
            shims_spawned_in = ?spawned,
            containers_started_in = ?began.elapsed(),
            "pod set up"
        );
        self.step(pod).await;
        Ok(())
    }

    /// Waits briefly for fresh shims to report their containers, so the first status written
    /// already says Running (one write per pod start instead of Pending, then Running).
    async fn await_first_start(&self) {
        let deadline = Instant::now() + FIRST_START_WAIT;
        while Instant::now() < deadline
            && self
                .ctrs
                .iter()
                .any(|c| matches!(observe(&c.files), Seen::NotStarted | Seen::Starting))
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn create_sandbox(&self, pod: &Pod) -> anyhow::Result<Ipv4Addr> {
        let _ = std::fs::remove_file(self.dir.join(SANDBOX_MARKER));
        let ip = self
            .shared
            .ipam
            .lock()
            .map_err(|_| anyhow::anyhow!("ipam lock"))?
            .allocate(&self.uid)?;
        let spec = SandboxSpec {
            cni: self.shared.cni,
            netns: self.netns.clone(),
            veth: self.veth.clone(),
            ip,
            pod_cidr: self.shared.pod_cidr,
        };
        let namespace = pod.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let pod_spec = pod.spec.as_ref();
        let hostname = pod_spec
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        let subdomain = pod_spec.and_then(|s| s.subdomain.clone());
        let domain = &self.shared.cluster_domain;
        let files = PodFiles {
            resolv_conf: sandbox::resolv_conf(&self.shared.cluster_dns, &namespace, domain),
            hosts: sandbox::hosts(&hostname, subdomain.as_deref(), &namespace, domain, ip),
        };
        let began = Instant::now();
        let pooled = make_sandbox(&self.shared, spec, files).await?;
        std::fs::write(self.dir.join(SANDBOX_MARKER), ip.to_string())?;
        tracing::debug!(netns = %self.netns, pooled, took = ?began.elapsed(), "pod sandbox made");
        Ok(ip)
    }

    /// Starts container `i` under a new shim.
    fn start(&mut self, pod: &Pod, i: usize) -> anyhow::Result<()> {
        let ip = self.ip.context("no pod IP yet")?;
        let shared = &self.shared;
        let ctr = &mut self.ctrs[i];
        for stale in [ctr.files.pid(), ctr.files.exit(), ctr.files.shim()] {
            let _ = std::fs::remove_file(stale);
        }
        let facts = PodFacts {
            pod,
            pod_ip: ip,
            node_name: &shared.node,
            host_ip: shared.node_ip,
        };
        let env = container_env(&facts, &ctr.spec);
        let mut command = tokio::process::Command::new(&shared.exe);
        command
            .arg("shim")
            .arg("--dir")
            .arg(&self.dir)
            .args(["--container", &ctr.spec.name, "--netns", &self.netns, "--"])
            .args(container_argv(&shared.exe, &ctr.spec, &env))
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            )
            .env(LEAN_ALLOCATOR.0, LEAN_ALLOCATOR.1)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = command.spawn().context("starting the shim")?;
        // The agent reaps the shims it started; adopted ones belong to init.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        ctr.seen = Seen::Starting;
        ctr.restart_at = None;
        ctr.reset_probes();
        Ok(())
    }

    /// One look at the containers: exits and restarts, probes, then the status.
    async fn step(&mut self, pod: &Pod) {
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        let now = Instant::now();
        for i in 0..self.ctrs.len() {
            let seen = observe(&self.ctrs[i].files);
            if seen != self.ctrs[i].seen {
                self.dirty = true;
                self.ctrs[i].seen = seen;
            }
            let ctr = &mut self.ctrs[i];
            if let Seen::Exited {
                code,
                started_at,
                finished_at,
            } = ctr.seen.clone()
            {
                if !restarts_after(&policy, code) {
                    continue;
                }
                if ctr.restart_at.is_none() {
                    self.dirty = true;
                }
                let at = *ctr.restart_at.get_or_insert(now + backoff(ctr.restarts));
                ctr.last = Some(State::Terminated {
                    exit_code: code,
                    started_at,
                    finished_at,
                });
                if now >= at {
                    ctr.restarts += 1;
                    let _ = write_atomic(&ctr.files.restarts(), &ctr.restarts.to_string());
                    self.dirty = true;
                    if let Err(err) = self.start(pod, i) {
                        tracing::warn!(error = %format!("{err:#}"), "restarting a container failed");
                    }
                }
            }
        }
        self.probe(now).await;
        self.report(pod).await;
    }

    /// Runs the due probes of running containers, all at once; a failed liveness or startup
    /// probe kills the container (the restart policy then applies).
    async fn probe(&mut self, now: Instant) {
        let (Some(ip), netns) = (self.ip, self.netns.clone()) else {
            return;
        };
        let mut due = Vec::new();
        for (i, ctr) in self.ctrs.iter().enumerate() {
            if !matches!(ctr.seen, Seen::Running { .. }) {
                continue;
            }
            let started = ctr.startup.as_ref().is_none_or(|p| p.result);
            let candidates = [
                (Kind::Startup, &ctr.startup),
                (Kind::Readiness, &ctr.readiness),
                (Kind::Liveness, &ctr.liveness),
            ];
            for (kind, prober) in candidates {
                let Some(p) = prober else { continue };
                // Readiness and liveness wait for the startup probe (upstream).
                let allowed = if kind == Kind::Startup { !p.result } else { started };
                if allowed && p.due(now) {
                    due.push((i, kind, p.action.clone(), p.timeout));
                }
            }
        }
        if due.is_empty() {
            return;
        }
        let checks = due
            .iter()
            .map(|(_, _, action, timeout)| probe::check(action, ip, &netns, *timeout));
        let results = futures::future::join_all(checks).await;
        let done = Instant::now();
        for ((i, kind, _, _), ok) in due.into_iter().zip(results) {
            let ctr = &mut self.ctrs[i];
            let prober = match kind {
                Kind::Readiness => ctr.readiness.as_mut(),
                Kind::Liveness => ctr.liveness.as_mut(),
                Kind::Startup => ctr.startup.as_mut(),
            };
            let Some(p) = prober else { continue };
            if p.record(ok, done) {
                self.dirty = true;
            }
            let kill = match kind {
                Kind::Liveness => !p.result,
                Kind::Startup => !p.result && p.failed_out(),
                Kind::Readiness => false,
            };
            if kill {
                tracing::info!(container = %ctr.spec.name, ?kind, "probe failed; killing the container");
                signal_file(&ctr.files.pid(), Signal::SIGKILL);
                p.reset(done);
            }
        }
    }

    /// Writes the status if it differs from the last one written.
    async fn report(&mut self, pod: &Pod) {
        if !self.dirty || self.retry_at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let views: Vec<ContainerView> = self.ctrs.iter().map(|c| c.view(&self.uid)).collect();
        let status = pod_status(&Inputs {
            pod,
            pod_ip: self.ip,
            host_ip: self.shared.node_ip,
            start_time: self.start_time,
            containers: &views,
            now: Timestamp::now(),
        });
        // Unchanged only if the API's copy still shows it too: another writer (the node
        // lifecycle controller) may have changed it since.
        if self.last_status.as_ref() == Some(&status) && crate::status::api_shows(pod, &status) {
            self.dirty = false;
            return;
        }
        let (Some(name), namespace) = (pod.metadata.name.as_deref(), pod.metadata.namespace.as_deref()) else {
            return;
        };
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), namespace.unwrap_or("default"));
        let patch = json!({"status": status});
        let began = Instant::now();
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::debug!(
                    pod = name,
                    phase = %status["phase"],
                    patch_took = ?began.elapsed(),
                    since_seen = ?self.born.elapsed(),
                    "pod status written"
                );
                self.last_status = Some(status);
                self.dirty = false;
                self.retry_at = None;
                self.retry_delay = RETRY_FIRST;
            }
            Err(err) => {
                tracing::warn!(pod = name, error = %err, retry_in = ?self.retry_delay, "writing pod status failed");
                self.retry_at = Some(Instant::now() + self.retry_delay);
                self.retry_delay = (self.retry_delay * 2).min(RETRY_CAP);
            }
        }
    }

    /// Stops the containers (SIGTERM, SIGKILL after the grace period), removes the sandbox and,
    /// when the pod object is still there, releases it.
    async fn terminate(&mut self, pod: &Pod, release: bool) {
        let grace = if release { grace_period(pod) } else { Duration::ZERO };
        stop_containers(&self.dir, grace).await;
        remove_sandbox(&self.shared, &self.uid).await;
        if release {
            release_pod(&self.shared.client, pod).await;
        }
    }
}

/// The pod's sandbox from a pooled blank one if there is one, else a fresh one. True when it
/// came from the pool.
async fn make_sandbox(shared: &Shared, spec: SandboxSpec, files: PodFiles) -> anyhow::Result<bool> {
    if let Some(blank) = shared.pool.take() {
        let claimed = shared.sandboxer.claim(blank.clone(), spec.clone(), files.clone()).await;
        shared.pool.claimed(&blank);
        match claimed {
            Ok(()) => return Ok(true),
            Err(err) => {
                tracing::warn!(netns = %blank.netns, error = %format!("{err:#}"), "claiming a pooled sandbox failed; making a fresh one");
                let _ = shared.sandboxer.remove(&blank.netns, &blank.veth).await;
            }
        }
    }
    shared.sandboxer.create(spec, files).await?;
    Ok(false)
}

/// A hostNetwork pod runs in the node's namespace: no sandbox, the node's address.
pub fn host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network).unwrap_or(false)
}

/// The grace period of a pod being deleted: deletionGracePeriodSeconds, else the spec's.
pub fn grace_period(pod: &Pod) -> Duration {
    let seconds = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref().and_then(|s| s.termination_grace_period_seconds))
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

/// Tries to remove a sandbox this many times (a busy machine can fail a fork or a netlink
/// call) before giving up and leaving it to the next agent start or `svcnet down`.
const REMOVE_ATTEMPTS: u32 = 8;

/// Removes the sandbox, the address and the pod directory of `uid`. The directory (the record a
/// restarted agent cleans up from) goes only once the sandbox is gone.
pub async fn remove_sandbox(shared: &Arc<Shared>, uid: &str) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=REMOVE_ATTEMPTS {
        let (netns, veth) = (
            crate::names::pod_netns(&shared.prefix, uid),
            crate::names::pod_veth(uid),
        );
        match shared.sandboxer.remove(&netns, &veth).await {
            Ok(()) => {
                if let Ok(mut ipam) = shared.ipam.lock() {
                    let _ = ipam.release(uid);
                }
                let _ = std::fs::remove_dir_all(shared.pod_dir(uid));
                return;
            }
            Err(err) => {
                tracing::warn!(uid, attempt, error = %format!("{err:#}"), "removing a pod sandbox failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// A pod directory whose pod no longer exists: stop and remove everything.
pub async fn cleanup_orphan(shared: &Arc<Shared>, uid: &str) {
    stop_containers(&shared.pod_dir(uid), Duration::ZERO).await;
    remove_sandbox(shared, uid).await;
}

/// Deletes the pod object for good (grace 0, only this incarnation).
async fn release_pod(client: &kube::Client, pod: &Pod) {
    let (Some(name), Some(uid)) = (pod.metadata.name.as_deref(), pod.metadata.uid.clone()) else {
        return;
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), pod.metadata.namespace.as_deref().unwrap_or("default"));
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(err) => tracing::warn!(pod = name, error = %err, "releasing the pod failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_comes_from_the_deletion_then_the_spec() {
        let mut pod: Pod = serde_json::from_value(
            json!({"metadata": {"name": "p"}, "spec": {"containers": [], "terminationGracePeriodSeconds": 7}}),
        )
        .unwrap();
        assert_eq!(grace_period(&pod), Duration::from_secs(7));
        pod.metadata.deletion_grace_period_seconds = Some(2);
        assert_eq!(grace_period(&pod), Duration::from_secs(2));
    }
}
