//! Who is logged in: each user's open connections (to close them when the user is
//! deleted) and open channels, counted against the user's `max-connections` and
//! `max-channels` with RabbitMQ's refusals.
//!
//! A connection takes a `UserSlot` at connection.open (`admit`) and holds it until it
//! ends; the slot counts its channels and gives everything back when dropped, however
//! the connection ends. The map lock is taken at open, at close and at user deletion,
//! never per frame; channel counting is one atomic. Never blocks and never waits on a
//! connection: closing one is its `CloseSignal` (the one its vhost also holds), sent
//! after the lock is released.

use crate::broker::vhost::CloseSignal;
use crate::error::Exception;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The open connections of every user that has one.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Live>>,
}

#[derive(Debug, Default)]
struct Live {
    connections: HashMap<u64, Arc<CloseSignal>>,
    /// Channels open on all of them.
    channels: Arc<AtomicU64>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // Plain maps, each change one step: consistent even if a holder panicked.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// connection.open by `user` on connection `id` (closed by `signal`): a slot, or
    /// RabbitMQ's NOT_ALLOWED when `max_connections` of theirs are open already (0: none
    /// at all).
    pub fn admit(
        self: &Arc<Self>,
        user: &str,
        id: u64,
        signal: &Arc<CloseSignal>,
        max_connections: Option<u64>,
    ) -> Result<UserSlot, Exception> {
        let mut live = self.lock();
        let open = live.get(user).map_or(0, |l| l.connections.len() as u64);
        if let Some(max) = max_connections.filter(|&max| open >= max) {
            return Err(Exception::not_allowed(format!(
                "connection refused for user '{user}': user connection limit ({max}) is reached"
            )));
        }
        let entry = live.entry(user.to_owned()).or_default();
        entry.connections.insert(id, signal.clone());
        Ok(UserSlot {
            sessions: self.clone(),
            user: user.to_owned(),
            connection: id,
            channels: entry.channels.clone(),
            mine: 0,
        })
    }

    /// Asks every open connection of `user` to close with `reason` (each sends
    /// connection.close itself); returns how many were asked.
    pub fn close_all(&self, user: &str, reason: &Exception) -> usize {
        let signals: Vec<Arc<CloseSignal>> = self
            .lock()
            .get(user)
            .map(|l| l.connections.values().cloned().collect())
            .unwrap_or_default();
        for s in &signals {
            s.close(reason.clone());
        }
        signals.len()
    }

    /// Connections `user` has open now.
    pub fn connections(&self, user: &str) -> usize {
        self.lock().get(user).map_or(0, |l| l.connections.len())
    }

    /// Channels `user` has open now, on all their connections.
    pub fn channels(&self, user: &str) -> u64 {
        self.lock()
            .get(user)
            .map_or(0, |l| l.channels.load(Ordering::Acquire))
    }
}

/// One connection's place among its user's connections, and its channels in the
/// user's count. Dropped when the connection ends.
#[derive(Debug)]
pub struct UserSlot {
    sessions: Arc<Sessions>,
    user: String,
    connection: u64,
    channels: Arc<AtomicU64>,
    /// This connection's channels in `channels`.
    mine: u64,
}

impl UserSlot {
    /// channel.open: counted, or RabbitMQ's NOT_ALLOWED when the user has
    /// `max_channels` open already on all their connections (0: none at all).
    pub fn open_channel(&mut self, max_channels: Option<u64>) -> Result<(), Exception> {
        let max = max_channels.unwrap_or(u64::MAX);
        self.channels
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                Exception::not_allowed(format!(
                    "number of channels opened for user '{}' has reached the maximum allowed user limit of ({max})",
                    self.user
                ))
            })?;
        self.mine += 1;
        Ok(())
    }

    /// A channel of this connection is gone.
    pub fn close_channel(&mut self) {
        if self.mine > 0 {
            self.mine -= 1;
            self.channels.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.channels.fetch_sub(self.mine, Ordering::AcqRel);
        let mut live = self.sessions.lock();
        if let Some(l) = live.get_mut(&self.user) {
            l.connections.remove(&self.connection);
            if l.connections.is_empty() {
                live.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::vhost::CloseListener;

    fn signal() -> (Arc<CloseSignal>, CloseListener) {
        CloseSignal::new()
    }

    #[test]
    fn connections_and_channels_are_counted_per_user_until_dropped() {
        let s = Arc::new(Sessions::default());
        let (sig, _listener) = signal();
        let mut a = s.admit("u", 1, &sig, Some(2)).expect("first");
        let mut b = s.admit("u", 2, &sig, Some(2)).expect("second");
        let refused = s.admit("u", 3, &sig, Some(2)).unwrap_err();
        assert_eq!(
            refused.text,
            "NOT_ALLOWED - connection refused for user 'u': user connection limit (2) is reached"
        );
        a.open_channel(Some(2)).expect("a's channel");
        b.open_channel(Some(2)).expect("b's channel");
        assert_eq!(
            b.open_channel(Some(2)).unwrap_err().text,
            "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of (2)"
        );
        assert_eq!(s.channels("u"), 2);
        drop(a);
        assert_eq!((s.connections("u"), s.channels("u")), (1, 1));
        b.close_channel();
        b.close_channel();
        assert_eq!(
            s.channels("u"),
            0,
            "never below what this connection opened"
        );
        drop(b);
        assert_eq!(s.connections("u"), 0);
        assert!(
            s.lock().is_empty(),
            "no entry left for a user with no connection"
        );
        assert_eq!(
            s.admit("u", 3, &sig, Some(0)).unwrap_err().text,
            "NOT_ALLOWED - connection refused for user 'u': user connection limit (0) is reached"
        );
    }

    #[test]
    fn close_all_reaches_every_connection_of_the_user() {
        let s = Arc::new(Sessions::default());
        let (s1, r1) = signal();
        let (s2, r2) = signal();
        let (s3, r3) = signal();
        let _a = s.admit("u", 1, &s1, None).expect("admit");
        let _b = s.admit("u", 2, &s2, None).expect("admit");
        let _c = s.admit("other", 3, &s3, None).expect("admit");
        let reason = Exception::new(crate::error::ReplyCode::ConnectionForced, "bye");
        assert_eq!(s.close_all("u", &reason), 2);
        for r in [&r1, &r2] {
            assert_eq!(*r.borrow(), Some(reason.clone()));
        }
        assert_eq!(*r3.borrow(), None);
    }
}
