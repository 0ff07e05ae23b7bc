//! Who is logged in: each user's open connections (to close them when the user is
//! deleted) and open channels, counted against the user's `max-connections` and
//! `max-channels` with RabbitMQ's refusals.
//!
//! A connection takes a `UserSlot` at connection.open (`admit`) and holds it until it
//! ends; the slot counts its channels and gives everything back when dropped, however
//! the connection ends. The map lock is taken at open, at close and at user deletion,
//! never per frame; channel counting is one atomic. Never blocks and never waits on a
//! connection: closing one is a message to its outbox.

use crate::broker::consumer::{ConnectionHandle, Outgoing};
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
    connections: HashMap<u64, ConnectionHandle>,
    /// Channels open on all of them.
    channels: Arc<AtomicU64>,
}

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // Plain maps, each change one step: consistent even if a holder panicked.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// connection.open by `user` on connection `handle`: a slot, or RabbitMQ's
    /// NOT_ALLOWED when `max_connections` of theirs are open already (0: none at all).
    pub fn admit(
        self: &Arc<Self>,
        user: &str,
        handle: ConnectionHandle,
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
        let id = handle.id;
        entry.connections.insert(id, handle);
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
        let handles: Vec<ConnectionHandle> = self
            .lock()
            .get(user)
            .map(|l| l.connections.values().cloned().collect())
            .unwrap_or_default();
        for h in &handles {
            // A connection that is ending already has closed its outbox: nothing to do.
            let _ = h.outbox.send(Outgoing::Close(reason.clone()));
        }
        handles.len()
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
    use tokio::sync::mpsc;

    fn handle(id: u64) -> (ConnectionHandle, mpsc::UnboundedReceiver<Outgoing>) {
        let (outbox, rx) = mpsc::unbounded_channel();
        (ConnectionHandle { id, outbox }, rx)
    }

    #[test]
    fn connections_and_channels_are_counted_per_user_until_dropped() {
        let s = Arc::new(Sessions::default());
        let (h1, _r1) = handle(1);
        let (h2, _r2) = handle(2);
        let (h3, _r3) = handle(3);
        let mut a = s.admit("u", h1, Some(2)).expect("first");
        let mut b = s.admit("u", h2, Some(2)).expect("second");
        let refused = s.admit("u", h3.clone(), Some(2)).unwrap_err();
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
            s.admit("u", h3, Some(0)).unwrap_err().text,
            "NOT_ALLOWED - connection refused for user 'u': user connection limit (0) is reached"
        );
    }

    #[test]
    fn close_all_reaches_every_connection_of_the_user() {
        let s = Arc::new(Sessions::default());
        let (h1, mut r1) = handle(1);
        let (h2, mut r2) = handle(2);
        let (h3, mut r3) = handle(3);
        let _a = s.admit("u", h1, None).expect("admit");
        let _b = s.admit("u", h2, None).expect("admit");
        let _c = s.admit("other", h3, None).expect("admit");
        let reason = Exception::new(crate::error::ReplyCode::ConnectionForced, "bye");
        assert_eq!(s.close_all("u", &reason), 2);
        for r in [&mut r1, &mut r2] {
            assert!(matches!(r.try_recv(), Ok(Outgoing::Close(e)) if e == reason));
        }
        assert!(r3.try_recv().is_err());
    }
}
