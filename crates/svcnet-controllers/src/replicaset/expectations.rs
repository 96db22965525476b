//! Creates and deletes a ReplicaSet has made but not yet seen on its pod watch (upstream
//! `ControllerExpectations`). Until they show up, a sync must not count pods again, or a slow
//! watch would make it create or delete twice. Expectations expire after [`TIMEOUT`] so a lost
//! event cannot stall a ReplicaSet for good.
//!
//! Upstream counts; this tracks names, which also tells when a pod in the cache settles one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::ObjectKey;

/// How long unobserved writes hold back a ReplicaSet (upstream: 5 minutes).
pub const TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Pending {
    /// Names of created pods not yet seen.
    creates: HashSet<String>,
    /// Uids of deleted pods still seen alive.
    deletes: HashSet<String>,
    since: Instant,
}

#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<ObjectKey, Pending>>,
}

impl Expectations {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Pending>> {
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records writes just made for `owner`.
    pub fn expect(&self, owner: &ObjectKey, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut pending = self.lock();
        let entry = pending.entry(owner.clone()).or_insert_with(|| Pending {
            creates: HashSet::new(),
            deletes: HashSet::new(),
            since: Instant::now(),
        });
        entry.creates.extend(created);
        entry.deletes.extend(deleted);
        entry.since = Instant::now();
    }

    /// A pod event: `name` exists (created) or `uid` is gone or terminating (deleted).
    pub fn observe(&self, owner: &ObjectKey, name: &str, uid: &str, gone: bool) {
        let mut pending = self.lock();
        if let Some(entry) = pending.get_mut(owner) {
            entry.creates.remove(name);
            if gone {
                entry.deletes.remove(uid);
            }
            if entry.creates.is_empty() && entry.deletes.is_empty() {
                pending.remove(owner);
            }
        }
    }

    /// Whether `owner` may count its pods: every expected write observed (checked against the
    /// cache with `alive`, which says whether a pod name is present and whether a uid is still
    /// alive), or the expectations expired.
    pub fn satisfied(&self, owner: &ObjectKey, present: impl Fn(&str) -> bool, alive: impl Fn(&str) -> bool) -> bool {
        let mut pending = self.lock();
        let Some(entry) = pending.get_mut(owner) else {
            return true;
        };
        entry.creates.retain(|name| !present(name));
        entry.deletes.retain(|uid| alive(uid));
        if (entry.creates.is_empty() && entry.deletes.is_empty()) || entry.since.elapsed() >= TIMEOUT {
            pending.remove(owner);
            return true;
        }
        false
    }

    /// How long until the expectations of `owner` expire, if it has any.
    pub fn expires_in(&self, owner: &ObjectKey) -> Option<Duration> {
        self.lock()
            .get(owner)
            .map(|entry| TIMEOUT.saturating_sub(entry.since.elapsed()))
    }

    /// Drops whatever `owner` expected (it was deleted).
    pub fn forget(&self, owner: &ObjectKey) {
        self.lock().remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_hold_back_until_observed_or_expired() {
        let e = Expectations::default();
        let rs = ObjectKey::new("default", "web-1");
        assert!(e.satisfied(&rs, |_| false, |_| false));
        e.expect(
            &rs,
            vec!["web-1-aaaaa".into(), "web-1-bbbbb".into()],
            vec!["uid-c".into()],
        );
        assert!(!e.satisfied(&rs, |_| false, |_| true));
        e.observe(&rs, "web-1-aaaaa", "uid-a", false);
        // The other create is in the cache already, the delete is gone from it.
        assert!(e.satisfied(&rs, |name| name == "web-1-bbbbb", |_| false));
        e.expect(&rs, vec!["web-1-ddddd".into()], vec![]);
        assert!(!e.satisfied(&rs, |_| false, |_| true));
        tokio::time::advance(TIMEOUT).await;
        assert!(e.satisfied(&rs, |_| false, |_| true), "expired");
    }
}
