//! Who is calling: HTTP basic auth checked against warren's users, and what their tags
//! let them do, as RabbitMQ's management plugin decides it.
//!
//! Every handler that needs a login takes a `Caller` argument; the extractor answers
//! 401 for missing or wrong credentials and for `loopback_users` calling from another
//! machine (with `WWW-Authenticate`, except to the web UI: `login_failed`), and for
//! users without a management tag (without it, as RabbitMQ). The checks
//! by tag and by vhost are methods here, so every endpoint words its refusals alike.
//! Never holds a lock of the broker beyond the user lookup.

use super::error::ApiError;
use super::Api;
use crate::access::attempts::Protocol;
use crate::broker::vhosts::VhostInfo;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use std::net::SocketAddr;

/// A user who logged in to the API, with their tags.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub tags: Vec<String>,
}

/// The tags that open the management API, from least to most (RabbitMQ's order).
const MANAGEMENT_TAGS: [&str; 4] = ["management", "policymaker", "monitoring", "administrator"];

impl Caller {
    /// While the guard lives (never across an `.await`), events name this caller as
    /// `user_who_performed_action`; `None` with the event exchange off.
    pub fn acting(&self, broker: &crate::broker::Broker) -> Option<crate::broker::events::Acting> {
        broker
            .events
            .as_ref()
            .map(|_| crate::broker::events::acting_as(&self.name))
    }

    /// Reports events this caller caused, with the event exchange on.
    pub fn notify(
        &self,
        broker: &crate::broker::Broker,
        f: impl FnOnce(&crate::broker::events::Events),
    ) {
        if let Some(e) = &broker.events {
            let _acting = crate::broker::events::acting_as(&self.name);
            f(e);
        }
    }

    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// administrator: everything.
    pub fn is_administrator(&self) -> bool {
        self.has("administrator")
    }

    /// monitoring (or administrator): reads every vhost, connection and node.
    pub fn is_monitoring(&self) -> bool {
        self.is_administrator() || self.has("monitoring")
    }

    /// policymaker (or administrator): policies and parameters in their vhosts.
    pub fn is_policymaker(&self) -> bool {
        self.is_administrator() || self.has("policymaker")
    }

    pub fn require_administrator(&self) -> Result<(), ApiError> {
        self.is_administrator()
            .then_some(())
            .ok_or_else(|| ApiError::not_authorised("Not administrator user"))
    }

    pub fn require_monitoring(&self) -> Result<(), ApiError> {
        self.is_monitoring()
            .then_some(())
            .ok_or_else(|| ApiError::not_authorised("Not monitor user"))
    }

    /// May this caller see `vhost` at all: administrators and monitoring users see every
    /// vhost; the others those they have permissions in (as RabbitMQ's management
    /// plugin lists them).
    pub fn sees_vhost(&self, api: &Api, vhost: &str) -> bool {
        self.is_monitoring() || api.broker.permissions.may_enter(&self.name, vhost)
    }

    /// The vhosts this caller sees (`sees_vhost`), sorted by name.
    pub fn seen_vhosts(&self, api: &Api) -> Vec<VhostInfo> {
        let mut all = api.broker.list_vhosts();
        all.retain(|v| self.sees_vhost(api, &v.name));
        all
    }

    /// May this caller act in `vhost` (declare, delete, publish, get...): any user with
    /// permissions there; administrators without permissions may not, as in RabbitMQ.
    pub fn may_act_in(&self, api: &Api, vhost: &str) -> bool {
        api.broker.permissions.may_enter(&self.name, vhost)
    }

    /// `sees_vhost`, or RabbitMQ's refusal.
    pub fn require_vhost(&self, api: &Api, vhost: &str) -> Result<(), ApiError> {
        self.sees_vhost(api, vhost)
            .then_some(())
            .ok_or_else(|| ApiError::not_authorised("User not authorised to access virtual host"))
    }

    /// `may_act_in`, or RabbitMQ's refusal.
    pub fn require_act_in(&self, api: &Api, vhost: &str) -> Result<(), ApiError> {
        self.may_act_in(api, vhost)
            .then_some(())
            .ok_or_else(|| ApiError::not_authorised("User not authorised to access virtual host"))
    }
}

impl FromRequestParts<Api> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, api: &Api) -> Result<Self, ApiError> {
        if let Some(r) = parts.extensions.get::<super::replicate::Replayed>() {
            // A write the cluster's log replays: the proposing node authenticated it.
            let tags = api
                .broker
                .users()
                .get(&r.user)
                .map(|u| u.tags)
                .unwrap_or_default();
            return Ok(Caller {
                name: r.user.clone(),
                tags,
            });
        }
        let Some((name, password)) = basic_credentials(parts) else {
            api.broker.auth_attempts.record(Protocol::Http, false);
            return Err(login_failed(parts));
        };
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            // Without the peer (a router driven in-process), only the loopback rule
            // could differ: treat the call as remote, the stricter case.
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        let login = api.broker.authenticate(&name, &password, peer);
        api.broker
            .auth_attempts
            .record(Protocol::Http, login.is_ok());
        login.map_err(|_| login_failed(parts))?;
        let tags = api
            .broker
            .users()
            .get(&name)
            .map(|u| u.tags)
            .unwrap_or_default();
        let caller = Caller { name, tags };
        if !MANAGEMENT_TAGS.iter().any(|t| caller.has(t)) {
            return Err(ApiError::not_authorised("Not management user"));
        }
        Ok(caller)
    }
}

/// A failed login's 401. A script in a page (the web UI sends `X-Requested-With:
/// XMLHttpRequest`, as jQuery and RabbitMQ's own UI frameworks did) gets it without the
/// `WWW-Authenticate` challenge: with it, a browser opens its native login dialog over
/// the page's own form on a wrong password (and headless Chromium holds the request
/// forever). Every other client gets RabbitMQ's challenge.
fn login_failed(parts: &Parts) -> ApiError {
    let from_page = parts
        .headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"XMLHttpRequest"));
    ApiError {
        challenge: !from_page,
        ..ApiError::login_failed()
    }
}

/// The user and password of an `Authorization: Basic ...` header.
fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    basic(parts.headers.get(AUTHORIZATION)?.to_str().ok()?)
}

/// An `Authorization` value's user and password, when it is `Basic` with both.
pub(crate) fn basic(value: &str) -> Option<(String, String)> {
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}
