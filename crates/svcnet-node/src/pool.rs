//! Blank pod sandboxes made ahead of time (see [`crate::sandboxer`]): a new namespace and veth
//! pair is most of a sandbox's kernel work, so a pod that takes a ready one only renames,
//! addresses and routes it. The pool holds at least `min` blank sandboxes and grows with recent
//! demand (the pods that took one lately) up to `max`, refilled in the background at a lower
//! priority than pods' own sandbox work; it shrinks back as that demand ages out.
//!
//! Blank sandboxes carry pod-like names (`<prefix>-p-<12 hex>`, veth `veth<8 hex>`), so
//! `svcnet down` and the lab's teardown remove them with the pods' namespaces. Each one is also
//! recorded (an empty file `<data dir>/pool/<id>`, written before it is made), so a restarted
//! agent removes those its predecessor left.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::routes::Cni;
use crate::sandboxer::{Blank, Sandboxer};

/// Pods claimed within this window count as recent demand.
const DEMAND_WINDOW: Duration = Duration::from_secs(30);
/// The pool refills only after pods' sandbox jobs have paused this long (a burst's CPU goes to
/// the burst's pods).
const REFILL_AFTER_QUIET: Duration = Duration::from_millis(200);
/// After a failure to make a blank sandbox, wait this long before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Bounds of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSize {
    pub min: usize,
    pub max: usize,
}

impl PoolSize {
    /// How many blank sandboxes to hold, given how many pods took one within the demand
    /// window: as many as that (a burst like the last one is served from the pool), within the
    /// bounds.
    pub fn target(&self, recent_claims: usize) -> usize {
        recent_claims.clamp(self.min, self.max.max(self.min))
    }

    /// How many more to make now.
    pub fn deficit(&self, idle: usize, recent_claims: usize) -> usize {
        self.target(recent_claims).saturating_sub(idle)
    }

    /// How many to remove now: after a burst the pool shrinks back as its demand ages out.
    pub fn surplus(&self, idle: usize, recent_claims: usize) -> usize {
        idle.saturating_sub(self.target(recent_claims))
    }
}

/// The blank sandboxes of one agent.
pub struct Pool {
    sandboxer: Sandboxer,
    cni: Cni,
    prefix: String,
    records: PathBuf,
    size: PoolSize,
    state: Mutex<State>,
    wake: Notify,
}

#[derive(Default)]
struct State {
    idle: Vec<Blank>,
    claims: VecDeque<Instant>,
}

impl State {
    fn recent_claims(&mut self, now: Instant) -> usize {
        while self
            .claims
            .front()
            .is_some_and(|at| now.duration_since(*at) > DEMAND_WINDOW)
        {
            self.claims.pop_front();
        }
        self.claims.len()
    }
}

impl Pool {
    /// Removes what an earlier agent left in the pool and starts filling it.
    pub async fn start(sandboxer: Sandboxer, cni: Cni, prefix: String, records: PathBuf, size: PoolSize) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            sandboxer,
            cni,
            prefix,
            records,
            size,
            state: Mutex::new(State::default()),
            wake: Notify::new(),
        });
        pool.remove_leftovers().await;
        tokio::spawn(pool.clone().fill());
        pool
    }

    /// A blank sandbox, if one is ready; the caller claims it, then calls [`Pool::claimed`].
    pub fn take(&self) -> Option<Blank> {
        let mut state = self.state.lock().ok()?;
        state.claims.push_back(Instant::now());
        let blank = state.idle.pop();
        drop(state);
        self.wake.notify_one();
        blank
    }

    /// The blank sandbox is the pod's now (or gone): its pool record goes.
    pub fn claimed(&self, blank: &Blank) {
        let _ = std::fs::remove_file(self.record(blank));
    }

    /// Ready blank sandboxes.
    pub fn idle(&self) -> usize {
        self.state.lock().map(|s| s.idle.len()).unwrap_or(0)
    }

    fn record(&self, blank: &Blank) -> PathBuf {
        let id = crate::names::pod_netns_id(&self.prefix, &blank.netns).unwrap_or(&blank.netns);
        self.records.join(id)
    }

    async fn remove_leftovers(&self) {
        let entries = std::fs::read_dir(&self.records).into_iter().flatten().flatten();
        for entry in entries {
            let id = entry.file_name().to_string_lossy().into_owned();
            let blank = blank_named(&self.prefix, &id);
            match self.sandboxer.remove(&blank.netns, &blank.veth).await {
                Ok(()) => {
                    let _ = std::fs::remove_file(entry.path());
                }
                Err(err) => {
                    tracing::warn!(netns = %blank.netns, error = %format!("{err:#}"), "removing a pooled sandbox failed")
                }
            }
        }
    }

    /// Keeps the pool at its target, one blank sandbox at a time.
    async fn fill(self: Arc<Pool>) {
        if let Err(err) = std::fs::create_dir_all(&self.records) {
            tracing::warn!(error = %err, "no pool records directory; pooling off");
            return;
        }
        loop {
            let Ok((idle, recent, next_expiry)) = self.state.lock().map(|mut state| {
                let recent = state.recent_claims(Instant::now());
                let next_expiry = state.claims.front().map(|at| *at + DEMAND_WINDOW);
                (state.idle.len(), recent, next_expiry)
            }) else {
                return;
            };
            if self.size.deficit(idle, recent) > 0 {
                self.sandboxer.pods_quiet_for(REFILL_AFTER_QUIET).await;
                if let Err(err) = self.make_one().await {
                    tracing::warn!(error = %format!("{err:#}"), "making a pooled sandbox failed");
                    tokio::time::sleep(RETRY_AFTER).await;
                }
            } else if self.size.surplus(idle, recent) > 0 {
                self.trim_one().await;
            } else {
                // Look again at a claim, or when the oldest claim leaves the demand window.
                let until = next_expiry.unwrap_or_else(|| Instant::now() + DEMAND_WINDOW);
                let _ = tokio::time::timeout_at(until, self.wake.notified()).await;
            }
        }
    }

    /// Removes one idle blank sandbox.
    async fn trim_one(&self) {
        let Some(blank) = self.state.lock().ok().and_then(|mut s| s.idle.pop()) else {
            return;
        };
        match self.sandboxer.remove(&blank.netns, &blank.veth).await {
            Ok(()) => self.claimed(&blank),
            Err(err) => {
                tracing::warn!(netns = %blank.netns, error = %format!("{err:#}"), "removing a pooled sandbox failed");
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }

    async fn make_one(&self) -> anyhow::Result<()> {
        let blank = blank_named(&self.prefix, &random_id());
        std::fs::write(self.record(&blank), "")?;
        let began = Instant::now();
        if let Err(err) = self.sandboxer.blank_in_background(blank.clone(), self.cni).await {
            if self.sandboxer.remove(&blank.netns, &blank.veth).await.is_ok() {
                self.claimed(&blank);
            }
            return Err(err);
        }
        tracing::debug!(netns = %blank.netns, took = ?began.elapsed(), "pooled sandbox made");
        if let Ok(mut state) = self.state.lock() {
            state.idle.push(blank);
        }
        Ok(())
    }
}

/// A blank sandbox's names from its id (12 hex digits, like a pod UID's).
pub fn blank_named(prefix: &str, id: &str) -> Blank {
    Blank {
        netns: crate::names::pod_netns(prefix, id),
        veth: crate::names::pod_veth(id),
    }
}

/// 12 random hex digits (std's hasher keys are random per process and call).
fn random_id() -> String {
    let random = std::collections::hash_map::RandomState::new().hash_one(std::time::SystemTime::now());
    format!("{:012x}", random & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_follows_recent_demand_within_bounds() {
        let size = PoolSize { min: 4, max: 32 };
        assert_eq!(size.target(0), 4);
        assert_eq!(size.target(10), 10);
        assert_eq!(size.target(500), 32);
        assert_eq!(size.deficit(4, 0), 0);
        assert_eq!(size.deficit(1, 0), 3);
        assert_eq!(size.deficit(0, 100), 32);
        assert_eq!(size.deficit(40, 100), 0);
        // After a burst, back down to what recent demand asks for.
        assert_eq!(size.surplus(32, 0), 28);
        assert_eq!(size.surplus(32, 10), 22);
        assert_eq!(size.surplus(3, 0), 0);
        assert_eq!(size.surplus(4, 0), 0);
        // A max below the min (a misconfiguration) holds the min.
        assert_eq!(PoolSize { min: 4, max: 0 }.target(9), 4);
        assert_eq!(PoolSize { min: 0, max: 0 }.deficit(0, 9), 0);
    }

    #[test]
    fn demand_is_the_claims_within_the_window() {
        let now = Instant::now();
        let mut state = State::default();
        state.claims.extend([now, now + Duration::from_secs(1)]);
        assert_eq!(state.recent_claims(now + Duration::from_secs(2)), 2);
        assert_eq!(state.recent_claims(now + DEMAND_WINDOW + Duration::from_millis(500)), 1);
        assert_eq!(state.recent_claims(now + DEMAND_WINDOW * 2), 0);
    }

    #[test]
    fn blank_sandboxes_are_named_like_pods() {
        let id = random_id();
        assert_eq!(id.len(), 12);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, random_id());
        let blank = blank_named("sn12", &id);
        assert_eq!(crate::names::pod_netns_id("sn12", &blank.netns), Some(id.as_str()));
        assert_eq!(blank.veth, format!("veth{}", &id[..8]));
    }
}
