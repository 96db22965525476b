//! A work queue of keys with client-go's workqueue guarantees, shared by the controllers: a key
//! waits in the queue at most once, one worker at a time holds it, and a key added while it is
//! being processed is processed again afterwards. Failed keys come back after a per-key
//! exponential backoff (5 ms doubling up to a ceiling, 30 s by default), so a persistent error
//! never hot-loops.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::ObjectKey;

/// First retry delay after a failure.
const BASE_DELAY: Duration = Duration::from_millis(5);
/// Longest retry delay unless the queue is built with another.
pub const MAX_DELAY: Duration = Duration::from_secs(30);

struct State<T> {
    ready: VecDeque<T>,
    /// Keys waiting to be processed (in `ready`, or queued behind a worker holding them).
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
    /// The earliest pending delayed add of each key.
    delayed: HashMap<T, Instant>,
}

/// The queue; share it as `Arc<WorkQueue<T>>`.
pub struct WorkQueue<T = ObjectKey> {
    state: Mutex<State<T>>,
    notify: Notify,
    /// Ceiling of the retry backoff.
    max_delay: Duration,
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    pub fn new() -> Arc<Self> {
        Self::with_max_delay(MAX_DELAY)
    }

    /// A queue whose retry backoff grows up to `max_delay`.
    pub fn with_max_delay(max_delay: Duration) -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
                delayed: HashMap::new(),
            }),
            notify: Notify::new(),
            max_delay,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues a key unless it is already waiting.
    pub fn add(&self, key: T) {
        let mut state = self.lock();
        if !state.dirty.insert(key.clone()) {
            return;
        }
        if !state.processing.contains(&key) {
            state.ready.push_back(key);
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues a key after `delay`; of several delayed adds of one key only the earliest runs.
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let at = Instant::now() + delay;
        {
            let mut state = self.lock();
            match state.delayed.get(&key) {
                Some(existing) if *existing <= at => return,
                _ => {
                    state.delayed.insert(key.clone(), at);
                }
            }
        }
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let due = {
                let mut state = queue.lock();
                // A later, earlier-scheduled add may have replaced this one.
                if state.delayed.get(&key) == Some(&at) {
                    state.delayed.remove(&key);
                    true
                } else {
                    false
                }
            };
            if due {
                queue.add(key);
            }
        });
    }

    /// Waits for the next key; the caller owns it until [`WorkQueue::done`].
    pub async fn next(&self) -> T {
        loop {
            {
                let mut state = self.lock();
                if let Some(key) = state.ready.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    if !state.ready.is_empty() {
                        // One stored permit may stand for several adds: pass it on.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Releases a key; if it was added meanwhile it is queued again.
    pub fn done(&self, key: &T) {
        let mut state = self.lock();
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.ready.push_back(key.clone());
            drop(state);
            self.notify.notify_one();
        }
    }

    /// Queues a key that failed again after its backoff, which grows with each consecutive
    /// call; the worker still releases it with [`WorkQueue::done`].
    pub fn retry(self: &Arc<Self>, key: &T) {
        let delay = {
            let mut state = self.lock();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = backoff(*failures, self.max_delay);
            *failures = failures.saturating_add(1);
            delay
        };
        self.add_after(key.clone(), delay);
    }

    /// Resets a key's backoff after a success.
    pub fn forget(&self, key: &T) {
        self.lock().failures.remove(key);
    }

    /// Keys waiting or held, for tests and metrics.
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.ready.len() + state.processing.len()
    }

    /// Keys waiting to be handed out.
    pub fn waiting(&self) -> usize {
        self.lock().ready.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The delay before retry number `failures` (0-based), at most `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    BASE_DELAY
        .checked_mul(1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX))
        .map_or(max, |d| d.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    #[tokio::test]
    async fn a_key_waits_once_and_is_held_by_one_worker() {
        let queue = WorkQueue::new();
        queue.add(key("a"));
        queue.add(key("a"));
        queue.add(key("b"));
        assert_eq!(queue.next().await, key("a"));
        // Added while held: not handed out until done.
        queue.add(key("a"));
        assert_eq!(queue.next().await, key("b"));
        let pending = tokio::time::timeout(Duration::from_millis(20), queue.next()).await;
        assert!(pending.is_err(), "a is still held");
        queue.done(&key("a"));
        assert_eq!(queue.next().await, key("a"));
        queue.done(&key("a"));
        queue.done(&key("b"));
        assert!(queue.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially() {
        assert_eq!(backoff(0, MAX_DELAY), Duration::from_millis(5));
        assert_eq!(backoff(3, MAX_DELAY), Duration::from_millis(40));
        assert_eq!(backoff(40, MAX_DELAY), MAX_DELAY);
        assert_eq!(backoff(100, Duration::from_secs(300)), Duration::from_secs(300));
        let queue = WorkQueue::new();
        queue.add(key("a"));
        let k = queue.next().await;
        queue.retry(&k);
        queue.done(&k);
        let start = Instant::now();
        let k = queue.next().await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
        queue.retry(&k);
        queue.done(&k);
        let start = Instant::now();
        let k = queue.next().await;
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        queue.forget(&k);
        queue.retry(&k);
        queue.done(&k);
        let start = Instant::now();
        queue.next().await;
        assert_eq!(start.elapsed(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_earliest_delayed_add_runs() {
        let queue = WorkQueue::new();
        queue.add_after(key("a"), Duration::from_secs(10));
        queue.add_after(key("a"), Duration::from_secs(1));
        queue.add_after(key("a"), Duration::from_secs(5));
        let start = Instant::now();
        let k = queue.next().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        queue.done(&k);
        let later = tokio::time::timeout(Duration::from_secs(30), queue.next()).await;
        assert!(later.is_err(), "the later adds were dropped");
    }

    #[tokio::test]
    async fn keys_wait_once_and_rerun_after_processing() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.waiting(), 2);
        let first = queue.next().await;
        assert_eq!(first, "a");
        // Added while processing: not handed out again until done.
        queue.add("a");
        assert_eq!(queue.next().await, "b");
        assert_eq!(queue.waiting(), 0);
        queue.done(&"a");
        assert_eq!(queue.next().await, "a");
    }
}
