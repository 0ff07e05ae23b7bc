//! What this connection tells the management API's registry when it opens: its name
//! as RabbitMQ writes it ("peer_host:peer_port -> host:port") and what the client
//! negotiated.
//!
//! Called once, at connection.open; the registration itself lives in `Connection`
//! and leaves the registry when dropped (release or the drop guard).

use super::Connection;
use crate::stats::ConnInfo;
use std::net::SocketAddr;

/// RabbitMQ's connection name.
pub(super) fn connection_name(peer: SocketAddr, local: SocketAddr) -> String {
    format!(
        "{}:{} -> {}:{}",
        peer.ip(),
        peer.port(),
        local.ip(),
        local.port()
    )
}

impl Connection {
    pub(super) fn conn_info(&self, vhost: &str) -> ConnInfo {
        let local = self.local.unwrap_or(self.peer);
        ConnInfo {
            name: connection_name(self.peer, local),
            peer: self.peer,
            local,
            user: self.user.clone(),
            vhost: vhost.to_owned(),
            ssl: self.tls.is_some(),
            tls: self
                .tls
                .as_ref()
                .map(|t| t.session.clone())
                .unwrap_or_default(),
            auth_mechanism: self.auth_mechanism.clone(),
            client_properties: self.client_properties.clone(),
            channel_max: self.channel_max,
            frame_max: self.frame_max,
            timeout: self.heartbeat,
            connected_at: self.broker.clock.unix_ms_u64(),
        }
    }
}
