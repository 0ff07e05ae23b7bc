//! What the handle of a running broker ([`Server`]) gives a test beyond its addresses:
//! the AMQP and management URLs to connect with, and the broker's clock.
//!
//! Called by applications. Only reads what `server::start_with` and the builder set:
//! no lock, no I/O.

use crate::clock::Clock;
use crate::config::Config;
use crate::listen::url_host;
use crate::server::Server;

/// Who [`Server::amqp_url`] logs in as, and into which vhost.
#[derive(Clone, Debug)]
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) vhost: String,
}

impl Login {
    /// The default user, password and vhost of `config` (RabbitMQ's guest, guest, /).
    pub(crate) fn from_config(config: &Config) -> Login {
        let or = |value: &Option<String>, default: &str| {
            value.clone().unwrap_or_else(|| default.to_owned())
        };
        Login {
            user: or(&config.default_user, "guest"),
            password: or(&config.default_pass, "guest"),
            vhost: or(&config.default_vhost, "/"),
        }
    }
}

impl Server {
    /// A URL any AMQP 0-9-1 client accepts, e.g.
    /// `amqp://guest:guest@127.0.0.1:38211/%2F`: the first user named with
    /// [`Builder::user`](crate::Builder::user) and its password, or else the default
    /// user (`guest`/`guest` unless the `Config` says otherwise), and the default vhost
    /// (`/`). Names and passwords are percent-encoded. For another user or vhost, build
    /// one from [`Server::local_addr`].
    pub fn amqp_url(&self) -> String {
        let addr = self.local_addr();
        format!(
            "amqp://{}:{}@{}:{}/{}",
            encode(&self.login.user),
            encode(&self.login.password),
            url_host(addr.ip()),
            addr.port(),
            encode(&self.login.vhost)
        )
    }

    /// The management HTTP API's base URL, e.g. `http://127.0.0.1:40125`, when its
    /// listener is on (the API is under `/api/`, the web UI at `/`).
    pub fn management_url(&self) -> Option<String> {
        self.management_addr()
            .map(|addr| format!("http://{}:{}", url_host(addr.ip()), addr.port()))
    }

    /// The clock the broker reads. On a manual clock ([`Clock::manual`]),
    /// `clock().advance(d).await` moves time and fires everything that falls due on the
    /// way (message TTLs, queue expiry, delayed messages) before it returns.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// `text` percent-encoded for a URL's user, password or path segment: everything but
/// RFC 3986's unreserved characters is escaped (so `/` is `%2F`).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn url_parts_are_percent_encoded() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("guest"), "guest");
        assert_eq!(encode("a b:c@d/é"), "a%20b%3Ac%40d%2F%C3%A9");
    }
}
