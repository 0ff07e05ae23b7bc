//! Reading a queue's head back from its page files without the queue lock touching the
//! disk: basic.get's answer when the head is on its way (`Get::Wait`), the waker a page
//! file's read-ahead calls when it is done, and what the queue does then (serve its
//! consumers, tell waiting basic.gets to ask again).
//!
//! Called by channels (`get`) and, through the runtime, by the page I/O thread
//! (`read_back`). Never blocks: the waker only spawns a task.

use super::paging::Wake;
use super::{Queue, QueueState, Queued};
use crate::broker::consumer::{ConnectionHandle, Outgoing};
use std::sync::{Arc, Weak};

/// What basic.get finds.
#[derive(Debug)]
pub enum Get {
    /// The head message and how many remain after it.
    Message(Queued, u32),
    Empty,
    /// The head is being read back from a page file (see `Queue::get`).
    Wait,
}

/// What a page file's read-ahead calls when it is done (on the I/O thread): the queue's
/// `read_back`, on the runtime, never on the I/O thread (which may run it under this
/// queue's lock while the page directory is dropped). Without a runtime (unit tests that
/// drive refills themselves) there is nothing to wake.
pub(super) fn read_back_waker(me: &Weak<Queue>) -> Option<Wake> {
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let me = me.clone();
    Some(Wake(Arc::new(move || {
        if let Some(q) = me.upgrade() {
            rt.spawn(async move { q.read_back() });
        }
    })))
}

impl QueueState {
    pub(super) fn wake_getters(&mut self) {
        for (getter, channel) in self.getters.take().into_iter().flat_map(|g| *g) {
            let _ = getter.outbox.send(Outgoing::GetReady { channel });
        }
    }
}

impl Queue {
    /// basic.get: the head message and how many remain after it; or, when the head waits
    /// for a read-back from a page file, `Wait`: `getter` is told (`Outgoing::GetReady`)
    /// once it is done, to ask again. `ack`: the message waits for an acknowledgement
    /// (counted as unacked until then).
    pub fn get(&self, getter: &ConnectionHandle, channel: u16, ack: bool) -> Get {
        if let Some(r) = self.replica().filter(|r| !r.serves()) {
            // The leader's copy holds the messages.
            return r.get(self, getter, channel, ack);
        }
        self.touch();
        let mut st = self.lock();
        self.drop_expired(&mut st, self.clock.now_ms());
        match st.ready.pop_front() {
            Some(item) => {
                if ack {
                    st.handed.out(&item);
                }
                Get::Message(self.outgoing(item), st.ready.len() as u32)
            }
            None if st.ready.is_empty() => Get::Empty,
            None => {
                st.getters
                    .get_or_insert_with(Box::default)
                    .push((getter.clone(), channel));
                Get::Wait
            }
        }
    }

    /// A read-back from a page file is done (on the runtime, woken by the I/O thread):
    /// consumers are served and waiting basic.gets asked again.
    fn read_back(self: &Arc<Self>) {
        let mut st = self.lock();
        self.dispatch_locked(&mut st);
        st.wake_getters();
    }
}
