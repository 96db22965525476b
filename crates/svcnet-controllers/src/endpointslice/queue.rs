//! A work queue of keys with client-go's workqueue guarantees: a key waits at most once, a key
//! is never handed to two workers at a time, a key added while being processed runs again after,
//! and failed keys come back after a per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// First retry delay; doubled per consecutive failure of the same key.
const RETRY_BASE: Duration = Duration::from_millis(5);
/// Longest retry delay, so a key keeps converging once the API recovers.
const RETRY_MAX: Duration = Duration::from_secs(300);

struct State<T> {
    queue: VecDeque<T>,
    /// Keys waiting in `queue` or re-added while processing.
    dirty: HashSet<T>,
    processing: HashSet<T>,
    failures: HashMap<T, u32>,
}

pub struct WorkQueue<T> {
    state: Mutex<State<T>>,
    ready: Notify,
}

impl<T: Clone + Eq + Hash + Send + 'static> WorkQueue<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(WorkQueue {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                dirty: HashSet::new(),
                processing: HashSet::new(),
                failures: HashMap::new(),
            }),
            ready: Notify::new(),
        })
    }

    pub fn add(&self, key: T) {
        let mut state = self.state.lock().expect("queue lock");
        if !state.dirty.insert(key.clone()) {
            return;
        }
        // A key being processed is queued again when its worker is done.
        if !state.processing.contains(&key) {
            state.queue.push_back(key);
            self.ready.notify_one();
        }
    }

    /// Adds `key` once `delay` has passed.
    pub fn add_after(self: &Arc<Self>, key: T, delay: Duration) {
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(key);
        });
    }

    /// Adds `key` again after its backoff, which grows with each consecutive call.
    pub fn retry(self: &Arc<Self>, key: T) {
        let failures = {
            let mut state = self.state.lock().expect("queue lock");
            let count = state.failures.entry(key.clone()).or_insert(0);
            *count += 1;
            *count
        };
        self.add_after(key, backoff(failures));
    }

    /// Resets the backoff of `key` after a success.
    pub fn forget(&self, key: &T) {
        self.state.lock().expect("queue lock").failures.remove(key);
    }

    /// The next key to process; call [`WorkQueue::done`] with it afterwards.
    pub async fn next(&self) -> T {
        loop {
            {
                let mut state = self.state.lock().expect("queue lock");
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    if !state.queue.is_empty() {
                        // One stored permit may stand for several adds: pass it on.
                        self.ready.notify_one();
                    }
                    return key;
                }
            }
            self.ready.notified().await;
        }
    }

    pub fn done(&self, key: &T) {
        let mut state = self.state.lock().expect("queue lock");
        state.processing.remove(key);
        if state.dirty.contains(key) {
            state.queue.push_back(key.clone());
            self.ready.notify_one();
        }
    }

    /// Keys waiting to be handed out.
    pub fn len(&self) -> usize {
        self.state.lock().expect("queue lock").queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn backoff(failures: u32) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
    RETRY_BASE.saturating_mul(factor).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_wait_once_and_rerun_after_processing() {
        let queue = WorkQueue::new();
        queue.add("a");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.len(), 2);
        let first = queue.next().await;
        assert_eq!(first, "a");
        // Added while processing: not handed out again until done.
        queue.add("a");
        assert_eq!(queue.next().await, "b");
        assert_eq!(queue.len(), 0);
        queue.done(&"a");
        assert_eq!(queue.next().await, "a");
    }

    #[tokio::test]
    async fn retries_back_off_exponentially() {
        let queue = WorkQueue::new();
        for expected in [5u64, 10, 20, 40] {
            let at = tokio::time::Instant::now();
            queue.retry("a");
            let key = queue.next().await;
            queue.done(&key);
            assert!(at.elapsed() >= Duration::from_millis(expected));
        }
        queue.forget(&"a");
        assert_eq!(backoff(1), Duration::from_millis(5));
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(1), RETRY_BASE);
        assert_eq!(backoff(100), RETRY_MAX);
    }
}
