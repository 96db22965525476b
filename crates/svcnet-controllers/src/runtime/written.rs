//! Memory of our own writes, after upstream's EndpointSliceTracker and staleEndpointsTracker: a
//! sync must not run on a cache that has not yet seen what the previous sync wrote (it would
//! create the same slice twice), and the watch events of our own writes need no new sync.

use std::collections::HashMap;
use std::sync::Mutex;

use super::ObjectKey;

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Written with this resourceVersion: the cache must show it or something newer.
    Version(String),
    Deleted,
}

/// Expected object states per Service, by object name.
#[derive(Debug, Default)]
pub struct Written {
    services: Mutex<HashMap<ObjectKey, HashMap<String, Expect>>>,
}

impl Written {
    pub fn wrote(&self, service: &ObjectKey, name: &str, resource_version: Option<&str>) {
        let expect = Expect::Version(resource_version.unwrap_or_default().to_string());
        self.lock()
            .entry(service.clone())
            .or_default()
            .insert(name.to_string(), expect);
    }

    pub fn deleted(&self, service: &ObjectKey, name: &str) {
        self.lock()
            .entry(service.clone())
            .or_default()
            .insert(name.to_string(), Expect::Deleted);
    }

    /// Whether `cached` (name, resourceVersion of the objects the cache holds for `service`)
    /// still lacks one of our writes. Expectations the cache has caught up with are dropped.
    pub fn is_stale<'a>(&self, service: &ObjectKey, cached: impl IntoIterator<Item = (&'a str, &'a str)>) -> bool {
        let mut services = self.lock();
        let Some(expected) = services.get_mut(service) else {
            return false;
        };
        let cached: HashMap<&str, &str> = cached.into_iter().collect();
        expected.retain(|name, expect| match (expect, cached.get(name.as_str())) {
            (Expect::Version(written), Some(seen)) => !at_least(seen, written),
            (Expect::Version(_), None) => true,
            (Expect::Deleted, seen) => seen.is_some(),
        });
        let stale = !expected.is_empty();
        if !stale {
            services.remove(service);
        }
        stale
    }

    /// Whether a watch event (`None` for a deletion) reports one of our own writes. Once the
    /// cache has caught up with a write, or the object is gone whoever deleted it, the
    /// expectation is dropped: it can no longer be met.
    pub fn observe(&self, service: &ObjectKey, name: &str, resource_version: Option<&str>) -> bool {
        let mut services = self.lock();
        let Some(expected) = services.get_mut(service) else {
            return false;
        };
        let (own, settled) = match (expected.get(name), resource_version) {
            (Some(Expect::Version(written)), Some(seen)) => (written == seen, at_least(seen, written)),
            (Some(Expect::Deleted), None) => (true, true),
            (Some(_), None) => (false, true),
            _ => (false, false),
        };
        if settled {
            expected.remove(name);
            if expected.is_empty() {
                services.remove(service);
            }
        }
        own
    }

    /// Drops every expectation: a fresh list shows the current state, newer than our writes.
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn forget(&self, service: &ObjectKey) {
        self.lock().remove(service);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, HashMap<String, Expect>>> {
        self.services.lock().expect("write tracker lock")
    }
}

/// resourceVersions are opaque to clients, but both etcd and the svcnet store issue increasing
/// integers; anything else only matches exactly.
fn at_least(seen: &str, written: &str) -> bool {
    match (seen.parse::<u64>(), written.parse::<u64>()) {
        (Ok(seen), Ok(written)) => seen >= written,
        _ => seen == written,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_behind_our_writes_is_stale_until_it_catches_up() {
        let written = Written::default();
        let svc = ObjectKey::new("ns", "web");
        written.wrote(&svc, "web-abc", Some("10"));
        written.deleted(&svc, "web-old");
        assert!(written.is_stale(&svc, [("web-old", "3"), ("web-abc", "9")]));
        assert!(written.observe(&svc, "web-old", None));
        assert!(written.is_stale(&svc, [("web-abc", "9")]));
        assert!(!written.observe(&svc, "web-abc", Some("9")));
        assert!(!written.is_stale(&svc, [("web-abc", "11")]));
        // Satisfied expectations are gone.
        assert!(!written.observe(&svc, "web-abc", Some("10")));
        assert!(!written.is_stale(&svc, []));
    }

    #[test]
    fn objects_deleted_by_others_settle_expectations() {
        let written = Written::default();
        let svc = ObjectKey::new("ns", "web");
        written.wrote(&svc, "web-abc", Some("10"));
        assert!(!written.observe(&svc, "web-abc", None));
        assert!(!written.is_stale(&svc, []));
        written.wrote(&svc, "web-def", Some("12"));
        written.clear();
        assert!(!written.is_stale(&svc, []));
    }
}
