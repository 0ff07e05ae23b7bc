//! SASL mechanisms: which ones connection.start offers on a connection, and the
//! EXTERNAL login (the user named by the client certificate's CN).
//!
//! Used by the handshake. As RabbitMQ: the mechanisms offered are those configured
//! (`auth_mechanisms`), EXTERNAL only on TLS connections (rabbitmq_auth_mechanism_ssl's
//! `should_offer`), whether or not the client sent a certificate: a client without one
//! is then refused with a reason in the log rather than left without a mechanism.

use super::TlsPeer;
use crate::access::LoginRefused;
use crate::broker::Broker;
use crate::tls;
use std::net::IpAddr;
use tracing::info;

/// A SASL mechanism warren knows (RabbitMQ's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Mechanism {
    /// User name and password.
    #[cfg_attr(feature = "cli", value(name = "PLAIN"))]
    Plain,
    /// User name and password in a field table (RabbitMQ's own).
    #[cfg_attr(feature = "cli", value(name = "AMQPLAIN"))]
    Amqplain,
    /// The TLS client certificate's CN names the user; no password.
    #[cfg_attr(feature = "cli", value(name = "EXTERNAL"))]
    External,
}

impl Mechanism {
    /// The mechanism's name on the wire and in RabbitMQ's `auth_mechanisms`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Amqplain => "AMQPLAIN",
            Mechanism::External => "EXTERNAL",
        }
    }

    /// The mechanism called `name` (case matters, as on the wire).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::Amqplain, Mechanism::External]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// Whether this mechanism is offered on a connection (TLS or not).
    pub fn offered_on(self, tls: bool) -> bool {
        self != Mechanism::External || tls
    }
}

/// connection.start's `mechanisms`: the configured ones this connection can use,
/// space-separated, in RabbitMQ's order whatever the configured order (its registry's:
/// "AMQPLAIN PLAIN" by default, "AMQPLAIN PLAIN EXTERNAL" on TLS with all three).
pub fn offered(configured: &[Mechanism], tls: bool) -> String {
    let names: Vec<&str> = [Mechanism::Amqplain, Mechanism::Plain, Mechanism::External]
        .into_iter()
        .filter(|m| configured.contains(m) && m.offered_on(tls))
        .map(Mechanism::name)
        .collect();
    names.join(" ")
}

/// EXTERNAL: the user is the verified client certificate's CN, and must exist; None
/// when refused (the reason goes to the log only, as RabbitMQ does).
pub fn external_login(broker: &Broker, tls: Option<&TlsPeer>, peer: IpAddr) -> Option<String> {
    let refused = |reason: &str| {
        info!(reason, "EXTERNAL login refused");
        None
    };
    let Some(tls) = tls else {
        return refused("not a TLS-enabled connection");
    };
    let Some(certificate) = &tls.certificate else {
        return refused("connection peer presented no TLS (x.509) certificate");
    };
    let Some(user) = tls::common_name(certificate) else {
        return refused("no name found");
    };
    match broker.authenticate_external(&user, peer) {
        Ok(()) => Some(user),
        Err(LoginRefused::BadCredentials) => {
            info!(user, "EXTERNAL login refused: no such user");
            None
        }
        Err(LoginRefused::LoopbackOnly) => {
            info!(user, "login refused: user can only connect via localhost");
            None
        }
    }
}
