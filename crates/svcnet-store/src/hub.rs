//! Fan-out of committed changes to watchers, with a bounded in-memory history so that most watches
//! replay from memory. Appending and subscribing happen under one lock, so a watcher sees every
//! event exactly once: the replayed part ends where its live subscription begins.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::Event;

/// Events kept in memory for replay; older ones come from the store's log.
const HISTORY: usize = 20_000;
/// Events a slow watcher may fall behind before its stream ends (the client then resumes).
const LAG_LIMIT: usize = 1 << 16;

pub(crate) struct Hub {
    inner: Mutex<HubState>,
}

struct HubState {
    history: VecDeque<Arc<Event>>,
    sender: broadcast::Sender<Arc<Event>>,
}

impl Hub {
    pub(crate) fn new(preload: Vec<Event>) -> Self {
        let (sender, _) = broadcast::channel(LAG_LIMIT);
        let mut history: VecDeque<Arc<Event>> = preload.into_iter().map(Arc::new).collect();
        while history.len() > HISTORY {
            history.pop_front();
        }
        Hub {
            inner: Mutex::new(HubState { history, sender }),
        }
    }

    /// Records committed events and hands them to live watchers.
    pub(crate) fn publish(&self, events: Vec<Event>) {
        let mut state = self.inner.lock().expect("hub lock");
        for event in events {
            let event = Arc::new(event);
            if state.history.len() == HISTORY {
                state.history.pop_front();
            }
            state.history.push_back(event.clone());
            // No receivers is fine: nobody is watching.
            let _ = state.sender.send(event);
        }
    }

    /// Subscribes and returns the remembered events after `after`, or `None` when memory does not
    /// reach back that far (the caller reads the older part from the log via `older`).
    pub(crate) fn subscribe(
        &self,
        prefix: &str,
        after: u64,
        older: impl FnOnce(u64) -> crate::Result<Vec<Event>>,
    ) -> crate::Result<WatchStream> {
        let state = self.inner.lock().expect("hub lock");
        let receiver = state.sender.subscribe();
        let oldest_in_memory = state.history.front().map(|e| e.revision());
        let mut replay: VecDeque<Arc<Event>> = VecDeque::new();
        match oldest_in_memory {
            Some(oldest) if after + 1 < oldest => {
                // The log read happens under the lock so no event can slip between it and the
                // live subscription; it is rare (a watch resuming from far back).
                replay.extend(
                    older(after)?
                        .into_iter()
                        .filter(|e| e.revision() < oldest)
                        .map(Arc::new),
                );
                replay.extend(state.history.iter().cloned());
            }
            _ => replay.extend(state.history.iter().filter(|e| e.revision() > after).cloned()),
        }
        replay.retain(|e| e.kv.key.starts_with(prefix));
        Ok(WatchStream {
            prefix: prefix.to_string(),
            replay,
            receiver,
        })
    }
}

/// A stream of changes under one prefix, in revision order.
pub struct WatchStream {
    prefix: String,
    replay: VecDeque<Arc<Event>>,
    receiver: broadcast::Receiver<Arc<Event>>,
}

impl WatchStream {
    /// The next change; `None` when the store is gone or this watcher fell too far behind, in
    /// which case the client resumes from the last revision it saw, as with etcd.
    pub async fn next(&mut self) -> Option<Arc<Event>> {
        if let Some(event) = self.replay.pop_front() {
            return Some(event);
        }
        loop {
            match self.receiver.recv().await {
                Ok(event) if event.kv.key.starts_with(&self.prefix) => return Some(event),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// A change that is already available, without waiting.
    pub fn try_next(&mut self) -> Option<Arc<Event>> {
        if let Some(event) = self.replay.pop_front() {
            return Some(event);
        }
        loop {
            match self.receiver.try_recv() {
                Ok(event) if event.kv.key.starts_with(&self.prefix) => return Some(event),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}
