//! Pod sandboxes made in-process: network namespaces by `unshare` and a bind mount (what
//! `ip netns add` does), links, addresses, routes and neighbours over rtnetlink. A burst of pod
//! starts used to run two `ip` processes per pod, which on a small machine cost more than the
//! kernel work itself.
//!
//! All of it happens on dedicated threads with a current-thread runtime each, because
//! namespace membership is per thread: the thread gives itself its own filesystem context
//! (`unshare(CLONE_FS)`) so it may join the host's mount namespace (where `/run/netns` mounts
//! must be made, see [`HostMounts`]), and it steps into each new network namespace only for as
//! long as it takes to bind-mount it and open a netlink socket there. Netlink requests are
//! handled synchronously by the kernel in the sending thread, so a few threads (not tasks) are
//! what lets sandboxes of a burst progress side by side.
//!
//! A sandbox is made in two steps, so that the first can be done ahead of time (see
//! [`crate::pool`]): a *blank* one (the namespace with loopback and `eth0` up, its veth peer
//! in the node down, already a port of the pod bridge under flannel), then its *claim* by a pod
//! (names, addresses, routes, the node side up).

use std::ffi::CString;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures::TryStreamExt;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::packet_route::neighbour::NeighbourState;
use rtnetlink::packet_route::route::RouteScope;
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::netns;
use crate::routes::Cni;
use crate::sandbox::{HostMounts, PodFiles, SandboxSpec, BRIDGE, TERWAY_GATEWAY, TERWAY_VETH_MAC};

/// The pod side of every veth.
const POD_IFNAME: &str = "eth0";
/// Every namespace's loopback has this index.
const LOOPBACK_INDEX: u32 = 1;

/// A blank sandbox: a namespace holding `eth0`, and its peer in the node (down, so that it can
/// still be renamed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blank {
    pub netns: String,
    pub veth: String,
}

enum Job {
    Blank(Blank, Cni, oneshot::Sender<anyhow::Result<()>>),
    Claim(Blank, SandboxSpec, PodFiles, oneshot::Sender<anyhow::Result<()>>),
    Remove(Blank, oneshot::Sender<anyhow::Result<()>>),
}

/// A job and when it was queued (the debug log tells queueing from work).
type Queued = (Job, Instant);

/// The handle of the sandbox threads; jobs go to them in turn.
#[derive(Debug, Clone)]
pub struct Sandboxer {
    lanes: Arc<[Lane]>,
    next: Arc<AtomicUsize>,
    pods: Arc<Activity>,
}

/// Pods' sandbox jobs in flight, and when the last one ended: the pool refills only once pods
/// have left the sandbox threads alone for a while (see [`Sandboxer::pods_quiet_for`]).
#[derive(Debug, Default)]
struct Activity(Mutex<ActivityState>);

#[derive(Debug, Default)]
struct ActivityState {
    in_flight: usize,
    /// None before the first job ended.
    last_end: Option<Instant>,
}

impl Activity {
    fn state(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long since the last job ended; None while one is in flight.
    fn idle_for(&self) -> Option<Duration> {
        let state = self.state();
        if state.in_flight > 0 {
            return None;
        }
        Some(state.last_end.map_or(Duration::MAX, |end| end.elapsed()))
    }
}

/// One pod job in flight; its end is recorded also when the asking task is dropped.
struct InFlight<'a>(&'a Activity);

impl<'a> InFlight<'a> {
    fn begin(activity: &'a Activity) -> InFlight<'a> {
        activity.state().in_flight += 1;
        InFlight(activity)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        state.last_end = Some(Instant::now());
    }
}

/// One thread's queues: pods' jobs go before background ones (the pool's).
#[derive(Debug)]
struct Lane {
    jobs: mpsc::UnboundedSender<Queued>,
    background: mpsc::UnboundedSender<Queued>,
}

impl Sandboxer {
    /// Starts `threads` sandbox threads; they run as long as a handle is alive.
    pub fn start(mounts: &HostMounts, threads: usize) -> anyhow::Result<Sandboxer> {
        let lanes = (0..threads.max(1))
            .map(|i| Lane::start(mounts, i))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Sandboxer {
            lanes: lanes.into(),
            next: Arc::default(),
            pods: Arc::default(),
        })
    }

    fn lane(&self) -> &Lane {
        &self.lanes[self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()]
    }
}

impl Lane {
    fn start(mounts: &HostMounts, i: usize) -> anyhow::Result<Lane> {
        let host = mounts.file().map(File::try_clone).transpose()?;
        let (jobs, rx) = mpsc::unbounded_channel();
        let (background, background_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("sandboxes-{i}"))
            .spawn(move || match Thread::new(host) {
                Ok((thread, runtime)) => {
                    let _ = ready_tx.send(Ok(()));
                    runtime.block_on(thread.serve(rx, background_rx));
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            })
            .context("starting the sandbox thread")?;
        ready_rx.recv().context("the sandbox thread ended")??;
        Ok(Lane { jobs, background })
    }
}

impl Sandboxer {
    async fn ask(&self, job: impl FnOnce(oneshot::Sender<anyhow::Result<()>>) -> Job) -> anyhow::Result<()> {
        let _in_flight = InFlight::begin(&self.pods);
        Self::ask_on(&self.lane().jobs, job).await
    }

    /// Returns once no pod's job has been queued or running for `quiet`. Background work
    /// (the pool's refill) waits for this: in a burst of pod starts the CPU is the limit, and
    /// blank sandboxes made then only compete with the pods' own.
    pub async fn pods_quiet_for(&self, quiet: Duration) {
        loop {
            match self.pods.idle_for() {
                Some(idle) if idle >= quiet => return,
                Some(idle) => tokio::time::sleep(quiet - idle).await,
                None => tokio::time::sleep(quiet).await,
            }
        }
    }

    async fn ask_on(
        lane: &mpsc::UnboundedSender<Queued>,
        job: impl FnOnce(oneshot::Sender<anyhow::Result<()>>) -> Job,
    ) -> anyhow::Result<()> {
        let (tx, rx) = oneshot::channel();
        lane.send((job(tx), Instant::now()))
            .map_err(|_| anyhow::anyhow!("the sandbox thread is gone"))?;
        rx.await.context("the sandbox thread dropped a job")?
    }

    /// Makes a blank sandbox (a half-made one of the same names is replaced).
    pub async fn blank(&self, blank: Blank, cni: Cni) -> anyhow::Result<()> {
        self.ask(|tx| Job::Blank(blank, cni, tx)).await
    }

    /// A blank sandbox, made after every pod's job waiting.
    pub async fn blank_in_background(&self, blank: Blank, cni: Cni) -> anyhow::Result<()> {
        Self::ask_on(&self.lane().background, |tx| Job::Blank(blank, cni, tx)).await
    }

    /// Turns a blank sandbox into the pod's: renames it to the pod's names, writes the pod's
    /// files, addresses and routes it, brings it up.
    pub async fn claim(&self, blank: Blank, spec: SandboxSpec, files: PodFiles) -> anyhow::Result<()> {
        self.ask(|tx| Job::Claim(blank, spec, files, tx)).await
    }

    /// A fresh sandbox for the pod (blank, then claimed under its own names).
    pub async fn create(&self, spec: SandboxSpec, files: PodFiles) -> anyhow::Result<()> {
        let blank = Blank {
            netns: spec.netns.clone(),
            veth: spec.veth.clone(),
        };
        self.blank(blank.clone(), spec.cni).await?;
        self.claim(blank, spec, files).await
    }

    /// Removes the namespace, the veth and the pod files; missing parts are fine.
    pub async fn remove(&self, netns: &str, veth: &str) -> anyhow::Result<()> {
        let blank = Blank {
            netns: netns.to_string(),
            veth: veth.to_string(),
        };
        self.ask(|tx| Job::Remove(blank, tx)).await
    }
}

/// The sandbox thread's state.
struct Thread {
    /// The agent's (the node's) network namespace, to come back to.
    home: File,
    /// rtnetlink in the node's namespace.
    node: Handle,
}

impl Thread {
    fn new(host: Option<File>) -> anyhow::Result<(Thread, tokio::runtime::Runtime)> {
        if let Some(host) = host {
            // setns into a mount namespace needs a filesystem context of our own.
            unshare(CloneFlags::CLONE_FS).context("unshare(CLONE_FS)")?;
            setns(&host, CloneFlags::CLONE_NEWNS).context("entering the host's mount namespace")?;
        }
        share_netns_dir()?;
        let home = File::open("/proc/thread-self/ns/net").context("opening the node's namespace")?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let node = runtime.block_on(async { connect() })?;
        Ok((Thread { home, node }, runtime))
    }

    async fn serve(self, mut jobs: mpsc::UnboundedReceiver<Queued>, mut background: mpsc::UnboundedReceiver<Queued>) {
        loop {
            let (job, queued) = tokio::select! {
                biased;
                Some(job) = jobs.recv() => job,
                Some(job) = background.recv() => job,
                else => return,
            };
            let began = Instant::now();
            let (kind, netns) = match job {
                Job::Blank(blank, cni, reply) => {
                    let _ = reply.send(self.make_blank(&blank, cni).await);
                    ("blank", blank.netns)
                }
                Job::Claim(blank, spec, files, reply) => {
                    let _ = reply.send(self.claim(&blank, &spec, &files).await);
                    ("claim", spec.netns)
                }
                Job::Remove(blank, reply) => {
                    let _ = reply.send(self.remove(&blank).await);
                    ("remove", blank.netns)
                }
            };
            tracing::debug!(
                kind,
                netns,
                queued = ?began.duration_since(queued),
                took = ?began.elapsed(),
                "sandbox job done"
            );
        }
    }

    async fn make_blank(&self, blank: &Blank, cni: Cni) -> anyhow::Result<()> {
        if netns::exists(&blank.netns) || crate::sandbox::link_exists(&blank.veth) {
            self.remove(blank).await?;
        }
        let pod = self.new_netns(&blank.netns)?;
        let mtu = SandboxSpec::mtu_of(cni);
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(POD_IFNAME.to_string())
            .mtu(mtu)
            .setns_by_fd(pod.as_raw_fd())
            .build();
        let mut veth = LinkVeth::new(&blank.veth, POD_IFNAME)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)));
        let bridged = cni != Cni::TerwayEniip;
        if bridged {
            // A port of the pod bridge from the start, so that a pod's claim does not pay for
            // joining it (a bridge does per-port work on every join).
            veth = veth.controller(bridge_index()?);
        } else {
            veth = veth.address(mac_bytes(TERWAY_VETH_MAC));
        }
        self.node
            .link()
            .add(veth.build())
            .execute()
            .await
            .with_context(|| format!("adding veth {}", blank.veth))?;
        if bridged {
            let index = link_index(&self.node, &blank.veth).await?;
            // Hairpin, as flannel's bridge plugin sets it: a pod reaching its own Service
            // address gets the DNATed packet back out of the port it came in on.
            let hairpin = LinkBridgePort::new(index).hairpin(true).build();
            self.node.link().set_port(hairpin).execute().await?;
        }
        // The pod's links can be up already: nothing reaches eth0 before its peer is up.
        links_up(&self.connect_in(&blank.netns)?).await
    }

    /// `ip netns add`: a fresh namespace bind-mounted at /run/netns/<name>. The thread steps
    /// into it only to mount it, and always steps back.
    fn new_netns(&self, name: &str) -> anyhow::Result<File> {
        let path = netns::path(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET)")?;
        // The pod network is IPv4 only: eth0, made in here next, gets no IPv6 link-local
        // address (no duplicate address detection or router solicitation per pod). Loopback,
        // already there, keeps ::1. A kernel without IPv6 has no such file.
        let _ = crate::sandbox::sysctl("net.ipv6.conf.default.disable_ipv6", "1");
        let mounted = mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        );
        let back = setns(&self.home, CloneFlags::CLONE_NEWNET);
        // Going back cannot fail for a namespace we hold open; if it did, this thread would
        // make every later sandbox inside the wrong one.
        back.expect("returning to the node's network namespace");
        if let Err(err) = mounted {
            let _ = std::fs::remove_file(&path);
            bail!("mounting {}: {err}", path.display());
        }
        File::open(&path).with_context(|| format!("opening {}", path.display()))
    }

    async fn claim(&self, blank: &Blank, spec: &SandboxSpec, files: &PodFiles) -> anyhow::Result<()> {
        let began = Instant::now();
        if blank.netns != spec.netns {
            if netns::exists(&spec.netns) || crate::sandbox::link_exists(&spec.veth) {
                self.remove(&Blank {
                    netns: spec.netns.clone(),
                    veth: spec.veth.clone(),
                })
                .await?;
            }
            rename_netns(&blank.netns, &spec.netns)?;
        }
        let renamed = began.elapsed();
        files.write(&spec.netns)?;
        let written = began.elapsed();
        let veth = link_index(&self.node, &blank.veth).await?;
        if blank.veth != spec.veth {
            let rename = LinkUnspec::new_with_index(veth).name(spec.veth.clone()).build();
            self.node
                .link()
                .set(rename)
                .execute()
                .await
                .context("renaming the veth")?;
        }
        self.node_side(spec, veth).await?;
        let node_side = began.elapsed();
        let pod = self.connect_in(&spec.netns)?;
        pod_side(&pod, spec).await?;
        tracing::debug!(netns = %spec.netns, ?renamed, ?written, ?node_side, pod_side = ?began.elapsed(), "sandbox claimed");
        Ok(())
    }

    async fn node_side(&self, spec: &SandboxSpec, veth: u32) -> anyhow::Result<()> {
        let link = self.node.link();
        match spec.cni {
            Cni::TerwayEniip => {
                link.set(LinkUnspec::new_with_index(veth).up().build())
                    .execute()
                    .await?;
                let host_route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(spec.ip, 32)
                    .output_interface(veth)
                    .scope(RouteScope::Link)
                    .build();
                self.node.route().add(host_route).replace().execute().await?;
                crate::sandbox::sysctl(&format!("net.ipv4.conf.{}.proxy_arp", spec.veth), "1")?;
            }
            _ => {
                // Already a bridge port with hairpin on (a blank sandbox is): only up. The
                // master again costs nothing and covers a port that left the bridge.
                let up = LinkUnspec::new_with_index(veth)
                    .controller(bridge_index()?)
                    .up()
                    .build();
                link.set(up).execute().await?;
            }
        }
        Ok(())
    }

    /// A netlink socket inside the named namespace (sockets keep the namespace they were
    /// opened in).
    fn connect_in(&self, name: &str) -> anyhow::Result<Handle> {
        let target = File::open(netns::path(name)).with_context(|| format!("network namespace {name}"))?;
        setns(&target, CloneFlags::CLONE_NEWNET).with_context(|| format!("entering {name}"))?;
        let handle = connect();
        setns(&self.home, CloneFlags::CLONE_NEWNET).expect("returning to the node's network namespace");
        handle
    }

    async fn remove(&self, blank: &Blank) -> anyhow::Result<()> {
        if let Ok(index) = nix::net::if_::if_nametoindex(blank.veth.as_str()) {
            match self.node.link().del(index).execute().await {
                Ok(()) => {}
                // Gone meanwhile (its namespace went away with its peer).
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => {}
                Err(err) => return Err(err).with_context(|| format!("deleting {}", blank.veth)),
            }
        }
        delete_netns(&blank.netns)?;
        let dir = crate::sandbox::etc_dir(&blank.netns);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Loopback and eth0 of a pod namespace up.
async fn links_up(pod: &Handle) -> anyhow::Result<()> {
    let link = pod.link();
    link.set(LinkUnspec::new_with_index(LOOPBACK_INDEX).up().build())
        .execute()
        .await
        .context("loopback up")?;
    let eth0 = link_index(pod, POD_IFNAME).await?;
    link.set(LinkUnspec::new_with_index(eth0).up().build())
        .execute()
        .await
        .context("eth0 up")
}

/// The pod's address and routes (its links are up since the blank sandbox was made).
async fn pod_side(pod: &Handle, spec: &SandboxSpec) -> anyhow::Result<()> {
    let eth0 = link_index(pod, POD_IFNAME).await?;
    pod.address()
        .add(eth0, IpAddr::V4(spec.ip), spec.prefix_len())
        .execute()
        .await
        .context("adding the pod address")?;
    let mut default = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(spec.gateway())
        .output_interface(eth0);
    if spec.cni == Cni::TerwayEniip {
        let gateway: Ipv4Addr = TERWAY_GATEWAY.parse()?;
        pod.neighbours()
            .add(eth0, IpAddr::V4(gateway))
            .link_layer_address(&mac_bytes(TERWAY_VETH_MAC))
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .context("adding the gateway's neighbour entry")?;
        default = default.onlink();
    }
    pod.route()
        .add(default.build())
        .execute()
        .await
        .context("adding the default route")
}

/// A connection in the calling thread's current network namespace, driven by the runtime.
fn connect() -> anyhow::Result<Handle> {
    let (connection, handle, _) = rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn link_index(handle: &Handle, name: &str) -> anyhow::Result<u32> {
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    match links.try_next().await.with_context(|| format!("finding link {name}"))? {
        Some(link) => Ok(link.header.index),
        None => bail!("no link {name}"),
    }
}

fn bridge_index() -> anyhow::Result<u32> {
    nix::net::if_::if_nametoindex(BRIDGE).context("no pod bridge")
}

/// `ip netns` needs /run/netns to be a shared mount point, so that namespace mounts made here
/// reach every other mount namespace (and their removal frees the namespace everywhere).
fn share_netns_dir() -> anyhow::Result<()> {
    std::fs::create_dir_all(netns::NETNS_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            netns::NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    if shared().is_ok() {
        return Ok(());
    }
    // Not a mount point yet: make it one, then shared.
    mount(
        Some(netns::NETNS_DIR),
        netns::NETNS_DIR,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .context("bind-mounting /run/netns")?;
    shared().context("making /run/netns shared")?;
    Ok(())
}

/// Gives the namespace mounted at `from` the name `to` (a second bind mount, then the first
/// one goes): renaming a mount point itself is not allowed.
fn rename_netns(from: &str, to: &str) -> anyhow::Result<()> {
    let (source, target) = (netns::path(from), netns::path(to));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&target)
        .with_context(|| format!("creating {}", target.display()))?;
    if let Err(err) = mount(Some(&source), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>) {
        let _ = std::fs::remove_file(&target);
        bail!("mounting {}: {err}", target.display());
    }
    delete_netns(from)
}

/// `ip netns delete`: lazily unmount (processes inside keep it alive) and remove the name.
fn delete_netns(name: &str) -> anyhow::Result<()> {
    let path = netns::path(name);
    if !path.exists() {
        return Ok(());
    }
    let c_path = CString::new(path.as_os_str().as_bytes())?;
    // Not mounted (a crash between the file and its mount) is fine: the file still goes.
    let _ = umount2(c_path.as_c_str(), MntFlags::MNT_DETACH);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// `aa:bb:...` as bytes.
fn mac_bytes(text: &str) -> Vec<u8> {
    text.split(':').filter_map(|b| u8::from_str_radix(b, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_activity_is_idle_before_any_job_busy_during_one_and_counts_from_its_end() {
        let activity = Activity::default();
        assert_eq!(activity.idle_for(), Some(Duration::MAX));
        let first = InFlight::begin(&activity);
        let second = InFlight::begin(&activity);
        assert_eq!(activity.idle_for(), None);
        drop(first);
        assert_eq!(activity.idle_for(), None, "one job is still in flight");
        drop(second);
        let idle = activity.idle_for().expect("no job in flight");
        assert!(
            idle < Duration::from_secs(1),
            "counted from the last end, not the start: {idle:?}"
        );
    }

    #[test]
    fn macs_parse() {
        assert_eq!(mac_bytes(TERWAY_VETH_MAC), [0xee; 6]);
        assert_eq!(mac_bytes("0a:1b:2c:3d:4e:5f"), [0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f]);
    }
}
