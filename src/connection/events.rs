//! The connection's side of the event exchange: logins, connection.created/closed and
//! channel.created/closed, and who acts while a channel's method runs.
//!
//! Called by the handshake, the channel open/close paths and `release`. With the event
//! exchange off (`Broker::events` is `None`) each hook is one branch and nothing is
//! kept; when on, the facts RabbitMQ reports about a connection are kept from
//! connection.open to the end, for connection.closed and the channel events.

use super::registry::connection_name;
use super::Connection;
use crate::broker::events::{ConnectionFacts, LoginFacts};
use crate::stats::ConnInfo;
use amq_protocol::types::FieldTable;

impl Connection {
    /// user.authentication.success, or .failure with RabbitMQ's reason.
    pub(super) fn login_event(&self, user: &str, mechanism: &str, failure: Option<&str>) {
        let Some(e) = &self.broker.events else { return };
        let local = self.local.unwrap_or(self.peer);
        let name = connection_name(self.peer, local);
        let facts = LoginFacts {
            user,
            peer: self.peer,
            local,
            connection_name: &name,
            ssl: self.tls.is_some(),
            mechanism,
        };
        e.login(facts, failure);
    }

    /// Keeps what start-ok said about the client, for connection.created (only when the
    /// event exchange is on).
    pub(super) fn keep_client_properties(&mut self, props: &FieldTable) {
        if self.broker.events.is_some() {
            self.client_table = props.clone();
        }
    }

    /// connection.open succeeded: connection.created, from what the registry is told.
    pub(super) fn opened_event(&mut self, info: &ConnInfo) {
        let Some(e) = &self.broker.events else { return };
        let facts = ConnectionFacts {
            id: self.id,
            info: info.clone(),
            client_properties: std::mem::take(&mut self.client_table),
        };
        e.connection_created(&facts);
        self.event_facts = Some(Box::new(facts));
    }

    /// While the guard lives, events name this connection's user as the actor; `None`
    /// with the event exchange off. Taken around the methods that change things (not
    /// publish, ack or qos: the hot path pays nothing).
    pub(super) fn acting(&self) -> Option<crate::broker::events::Acting> {
        self.broker
            .events
            .as_ref()
            .map(|_| crate::broker::events::acting_as(&self.user))
    }

    /// channel.created (`open`) or channel.closed.
    pub(super) fn channel_event(&self, number: u16, open: bool) {
        let (Some(e), Some(facts)) = (&self.broker.events, &self.event_facts) else {
            return;
        };
        if open {
            e.channel_created(facts, number);
        } else {
            e.channel_closed(facts, number);
        }
    }

    /// The connection ends: connection.closed, once.
    pub(super) fn closed_event(&mut self) {
        if let (Some(e), Some(facts)) = (&self.broker.events, self.event_facts.take()) {
            e.connection_closed(&facts);
        }
    }
}
