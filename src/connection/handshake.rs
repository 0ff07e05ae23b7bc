//! The connection handshake: connection.start with RabbitMQ-like server properties,
//! start-ok and SASL (PLAIN, AMQPLAIN, EXTERNAL on TLS), tune / tune-ok negotiation, connection.open.
//!
//! The free functions build methods or check what the client sent and touch no socket;
//! `Connection::handshake_frame` drives the phases with them. Refusals that RabbitMQ
//! does not explain end the connection silently, after its delay.

use super::mechanism::{self, Mechanism};
use super::server_properties::ServerProperties;
use super::{Phase, TlsPeer};
use crate::access::attempts::Protocol;
use crate::access::LoginRefused;
use crate::broker::Broker;
use crate::codec::{self, Frame, Method};
use crate::error::Exception;
use amq_protocol::protocol::{connection as amqp_connection, AMQPClass};
use amq_protocol::types::parsing::parse_field_table;
use amq_protocol::types::{AMQPValue, FieldTable, ShortString};
use std::net::IpAddr;
use tracing::info;

pub const CHANNEL_MAX: u16 = 2047;
pub const FRAME_MAX: u32 = 131_072;
/// RabbitMQ's FRAME_MIN_SIZE: smaller frame_max values are refused.
pub const FRAME_MIN: u32 = 4096;
pub const HEARTBEAT: u16 = 60;

/// What the server advertises in connection.start's `capabilities`: only what works.
const CAPABILITIES: [&str; 9] = [
    "direct_reply_to",
    "exchange_exchange_bindings",
    "connection.blocked",
    "consumer_priorities",
    "publisher_confirms",
    "basic.nack",
    "consumer_cancel_notify",
    "authentication_failure_close",
    "per_consumer_qos",
];

/// connection.start, offering `mechanisms` (space-separated), advertising
/// `properties` and the capabilities.
pub fn start(mechanisms: &str, properties: &ServerProperties, cluster_name: &str) -> AMQPClass {
    let mut capabilities = FieldTable::default();
    for c in CAPABILITIES {
        capabilities.insert(ShortString::from(c), AMQPValue::Boolean(true));
    }
    AMQPClass::Connection(amqp_connection::AMQPMethod::Start(amqp_connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: properties.table(cluster_name, capabilities),
        mechanisms: mechanisms.into(),
        locales: "en_US".into(),
    }))
}

/// What the client told us about itself.
#[derive(Debug, Default)]
pub struct ClientInfo {
    pub user: String,
    pub consumer_cancel_notify: bool,
    pub connection_blocked: bool,
}

/// Checks start-ok: mechanism (one offered on this connection), credentials, and the
/// guest-from-loopback rule. `tls` is what the TLS handshake told, on a TLS connection.
/// `attempted` gets the user name the client gave, once known (for the login events).
pub fn start_ok(
    broker: &Broker,
    m: &amqp_connection::StartOk,
    (peer, tls): (IpAddr, Option<&TlsPeer>),
    attempted: &mut String,
) -> Result<ClientInfo, Exception> {
    let name = m.mechanism.as_str();
    let refused = || {
        Exception::access_refused(format!(
            "Login was refused using authentication mechanism {name}. For details see the broker logfile."
        ))
    };
    let mechanism = match Mechanism::from_name(name) {
        Some(known)
            if broker.auth_mechanisms.contains(&known) && known.offered_on(tls.is_some()) =>
        {
            known
        }
        // As RabbitMQ: a mechanism it knows but did not offer here is "invalid".
        Some(_) => {
            return Err(Exception::command_invalid(format!(
                "invalid authentication mechanism '{name}'"
            )))
        }
        None => {
            return Err(Exception::command_invalid(format!(
                "unknown authentication mechanism '{name}'"
            )))
        }
    };
    let user = match mechanism {
        // The response is not read: the certificate says who the client is.
        Mechanism::External => mechanism::external_login(broker, tls, peer).ok_or_else(refused)?,
        Mechanism::Plain | Mechanism::Amqplain => {
            let (user, password) = if mechanism == Mechanism::Plain {
                parse_plain(m.response.as_bytes())
            } else {
                parse_amqplain(m.response.as_bytes())
            }
            .ok_or_else(refused)?;
            attempted.clone_from(&user);
            match broker.authenticate(&user, &password, peer) {
                Ok(()) => {}
                Err(LoginRefused::BadCredentials) => return Err(refused()),
                Err(LoginRefused::LoopbackOnly) => {
                    // RabbitMQ logs the reason but tells the client only its usual text.
                    tracing::info!(user, "login refused: user can only connect via localhost");
                    return Err(refused());
                }
            }
            user
        }
    };
    let consumer_cancel_notify = client_capability(&m.client_properties, "consumer_cancel_notify");
    let connection_blocked = client_capability(&m.client_properties, "connection.blocked");
    Ok(ClientInfo {
        user,
        consumer_cancel_notify,
        connection_blocked,
    })
}

/// PLAIN: `[authzid] NUL user NUL password`.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    let password = std::str::from_utf8(parts.next()?).ok()?.to_owned();
    parts.next().is_none().then_some((user, password))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
    framed.extend_from_slice(response);
    // A client-controlled table: walked for depth before the recursive parser reads it.
    codec::fieldscan::check_table(&framed).ok()?;
    let (_, table) = parse_field_table(&framed[..]).ok()?;
    let text = |key: &str| match table.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_owned),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

/// Whether the client announced `authentication_failure_close` (then a refused login
/// gets connection.close 403 instead of a closed socket).
pub fn wants_failure_close(m: &amqp_connection::StartOk) -> bool {
    client_capability(&m.client_properties, "authentication_failure_close")
}

fn client_capability(props: &FieldTable, name: &str) -> bool {
    match props.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// connection.tune. On a manual clock warren suggests no heartbeats: a client's own
/// timer runs on real time, so it would send none while a test moves the clock an hour
/// and be dropped for it; a client that asks for heartbeats gets them, on the clock.
pub fn tune(manual_clock: bool) -> AMQPClass {
    AMQPClass::Connection(amqp_connection::AMQPMethod::Tune(amqp_connection::Tune {
        channel_max: CHANNEL_MAX,
        frame_max: FRAME_MAX,
        heartbeat: if manual_clock { 0 } else { HEARTBEAT },
    }))
}

/// The negotiated (channel_max, frame_max, heartbeat), with RabbitMQ's refusals.
pub fn tune_ok(m: &amqp_connection::TuneOk) -> Result<(u16, u32, u16), Exception> {
    check_negotiated(
        "frame_max",
        m.frame_max as u64,
        FRAME_MIN as u64,
        FRAME_MAX as u64,
    )?;
    check_negotiated("channel_max", m.channel_max as u64, 1, CHANNEL_MAX as u64)?;
    Ok((m.channel_max, m.frame_max, m.heartbeat))
}

fn check_negotiated(field: &str, value: u64, min: u64, max: u64) -> Result<(), Exception> {
    if value != 0 && value < min {
        return Err(Exception::not_allowed(format!(
            "negotiated {field} = {value} is lower than the minimum allowed value ({min})"
        ))
        .on(10, 31));
    }
    if value == 0 || value > max {
        let detail = if value == 0 { " (no limit)" } else { "" };
        return Err(Exception::not_allowed(format!(
            "negotiated {field} = {value}{detail} is higher than the maximum allowed value ({max})"
        ))
        .on(10, 31));
    }
    Ok(())
}

pub fn open_ok() -> AMQPClass {
    AMQPClass::Connection(amqp_connection::AMQPMethod::OpenOk(
        amqp_connection::OpenOk {},
    ))
}

/// The connection's side of the handshake: one method per phase, in order.
impl super::Connection {
    pub(super) fn handshake_frame(&mut self, frame: Frame) -> Result<(), Exception> {
        use amqp_connection::AMQPMethod as C;
        let class = match frame {
            Frame::Heartbeat { .. } => return Ok(()),
            Frame::Method {
                channel: 0,
                method: Method::Other(class),
            } => *class,
            _ => {
                return Err(Exception::command_invalid(
                    "only connection methods are allowed during the handshake",
                ))
            }
        };
        match (&self.phase, class) {
            (Phase::StartOk, AMQPClass::Connection(C::StartOk(m))) => {
                let mut attempted = String::new();
                let login = start_ok(
                    &self.broker,
                    &m,
                    (self.peer.ip(), self.tls.as_ref()),
                    &mut attempted,
                );
                self.broker
                    .auth_attempts
                    .record(Protocol::Amqp, login.is_ok());
                if !attempted.is_empty() {
                    let failure = login
                        .is_err()
                        .then(|| format!("user '{attempted}' - invalid credentials"));
                    self.login_event(&attempted, m.mechanism.as_str(), failure.as_deref());
                }
                let client = match login {
                    Ok(client) => client,
                    // RabbitMQ tells only clients that announce authentication_failure_close;
                    // the others (and unknown mechanisms) just see the socket close.
                    Err(e)
                        if e.code == crate::error::ReplyCode::AccessRefused
                            && wants_failure_close(&m) =>
                    {
                        return Err(e)
                    }
                    Err(e) => {
                        info!(text = %e.text, "login refused");
                        self.silent_close();
                        return Ok(());
                    }
                };
                tracing::Span::current().record("user", client.user.as_str());
                self.consumer_cancel_notify = client.consumer_cancel_notify;
                self.blocked_notify = client.connection_blocked;
                self.user = client.user;
                self.client_properties = crate::stats::fieldtable::to_json(&m.client_properties);
                self.keep_client_properties(&m.client_properties);
                self.auth_mechanism = m.mechanism.to_string();
                codec::encode_method(&mut self.out, 0, &tune(self.broker.clock.is_manual()));
                self.phase = Phase::TuneOk;
                Ok(())
            }
            (Phase::TuneOk, AMQPClass::Connection(C::TuneOk(m))) => {
                let (channel_max, frame_max, heartbeat) = match tune_ok(&m) {
                    Ok(tuned) => tuned,
                    Err(e) => {
                        // As RabbitMQ: no close method before the connection is open.
                        info!(text = %e.text, "negotiation refused");
                        self.silent_close();
                        return Ok(());
                    }
                };
                self.channel_max = channel_max;
                self.frame_max = frame_max;
                self.heartbeat = heartbeat;
                self.phase = Phase::Open;
                Ok(())
            }
            (Phase::Open, AMQPClass::Connection(C::Open(m))) => {
                let name = m.virtual_host.as_str();
                let vhost = self.broker.vhost(name).ok_or_else(|| {
                    Exception::not_allowed(format!("vhost {name} not found")).on(10, 40)
                })?;
                // RabbitMQ's vhost access check: any permissions there let the user in.
                if !self.broker.permissions().may_enter(&self.user, name) {
                    return Err(Exception::not_allowed(format!(
                        "access to vhost '{name}' refused for user '{}'",
                        self.user
                    ))
                    .on(10, 40));
                }
                // The vhost's max-connections, counted until this connection ends.
                let slot = vhost
                    .admit_connection(&self.user, self.id, &self.close_signal)
                    .map_err(|e| e.on(10, 40))?;
                self.vhost_slot = Some(slot);
                // Then the user's max-connections, as RabbitMQ orders the checks.
                let user_slot = self
                    .broker
                    .users()
                    .admit(&self.user, self.id, &self.close_signal)
                    .map_err(|e| e.on(10, 40))?;
                self.user_slot = Some(user_slot);
                let info = self.conn_info(name);
                self.opened_event(&info);
                let registration =
                    self.broker
                        .stats
                        .register(self.id, info, self.close_signal.clone());
                self.registration = Some(registration);
                tracing::Span::current().record("vhost", name);
                self.vhost = Some(vhost);
                codec::encode_method(&mut self.out, 0, &open_ok());
                self.phase = Phase::Running;
                Ok(())
            }
            (_, AMQPClass::Connection(C::Close(_))) => {
                self.send_close_ok();
                Ok(())
            }
            (_, other) => Err(Exception::command_invalid(format!(
                "unexpected method {}.{} during the handshake",
                other.get_amqp_class_id(),
                other.get_amqp_method_id()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_amqplain_responses_parse() {
        assert_eq!(
            parse_plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"guest"), None);
        let mut t = Vec::new();
        for (k, v) in [("LOGIN", "guest"), ("PASSWORD", "guest")] {
            t.push(k.len() as u8);
            t.extend_from_slice(k.as_bytes());
            t.push(b'S');
            t.extend_from_slice(&(v.len() as u32).to_be_bytes());
            t.extend_from_slice(v.as_bytes());
        }
        assert_eq!(parse_amqplain(&t), Some(("guest".into(), "guest".into())));
    }

    #[test]
    fn tune_ok_values_are_checked_like_rabbitmq() {
        let ok = amqp_connection::TuneOk {
            channel_max: 2047,
            frame_max: 4096,
            heartbeat: 0,
        };
        assert_eq!(tune_ok(&ok), Ok((2047, 4096, 0)));
        let small = amqp_connection::TuneOk {
            frame_max: 1024,
            ..ok.clone()
        };
        assert!(tune_ok(&small).is_err_and(|e| e.text.contains("lower than the minimum")));
        let big = amqp_connection::TuneOk {
            frame_max: 1 << 20,
            ..ok
        };
        assert!(tune_ok(&big).is_err());
    }
}
