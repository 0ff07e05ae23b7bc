//! `warren ctl`'s HTTP client: one request per TCP connection to the management API
//! named by `--url`, with basic auth, JSON in and out, and a deadline per request.
//!
//! Only the command modules call it. It never retries and never interprets a status
//! beyond turning "nobody answers" and 401 into the exit codes rabbitmqctl uses; what a
//! 404 or 400 means is the command's business.

use super::{CtlError, EX_NOPERM, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};
use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;

/// Where the API is and who calls it.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    /// "host:port" as given, for connecting and the Host header.
    authority: String,
    /// The URL's path without its trailing slash ("" for the root), put before "/api/...".
    prefix: String,
    /// The URL as given, for error messages.
    url: String,
    authorization: String,
    /// Bounds each request, connect included.
    pub(crate) timeout: Duration,
}

/// A status and its body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
}

impl Response {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; Null when empty or not JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// RabbitMQ's error body's `reason` (or the raw body) for messages.
    pub(crate) fn reason(&self) -> String {
        match self.json().get("reason") {
            Some(Value::String(reason)) => reason.clone(),
            Some(other) => other.to_string(),
            None => String::from_utf8_lossy(&self.body).trim().to_owned(),
        }
    }
}

impl Client {
    /// Parses `http://host[:port][/prefix]`; https is not spoken (say so rather than
    /// send plain text to a TLS port).
    pub(crate) fn new(
        url: &str,
        user: &str,
        password: &str,
        timeout: Duration,
    ) -> Result<Client, CtlError> {
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            CtlError::new(
                EX_USAGE,
                format!("--url {url}: only http:// URLs are supported"),
            )
        })?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() {
            return Err(CtlError::new(EX_USAGE, format!("--url {url}: no host")));
        }
        // IPv6 literals keep their brackets; a port after them or after a plain host.
        let has_port = match authority.rfind(']') {
            Some(end) => authority[end..].contains(':'),
            None => authority.contains(':'),
        };
        let authority = if has_port {
            let port = authority.rsplit(':').next().unwrap_or("");
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(CtlError::new(
                    EX_USAGE,
                    format!("--url {url}: the port is not a number from 1 to 65535"),
                ));
            }
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let credentials =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Client {
            authority,
            prefix: path.trim_end_matches('/').to_owned(),
            url: url.to_owned(),
            authorization: format!("Basic {credentials}"),
            timeout,
        })
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Response, CtlError> {
        self.request(Method::GET, path, &[], None).await
    }

    pub(crate) async fn delete(&self, path: &str) -> Result<Response, CtlError> {
        self.request(Method::DELETE, path, &[], None).await
    }

    pub(crate) async fn put(&self, path: &str, body: &Value) -> Result<Response, CtlError> {
        self.request(Method::PUT, path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub(crate) async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<Response, CtlError> {
        self.request(Method::POST, path, &[], Some(body)).await
    }

    /// GET that must succeed (2xx), as JSON.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, CtlError> {
        let response = self.get(path).await?;
        if !response.ok() {
            return Err(self.unexpected(&response));
        }
        Ok(response.json())
    }

    /// The error for a status the command did not expect.
    pub(crate) fn unexpected(&self, response: &Response) -> CtlError {
        CtlError::new(
            EX_UNAVAILABLE,
            format!(
                "the API answered {}: {}",
                response.status,
                response.reason()
            ),
        )
    }

    /// Any request; the timeout covers connecting, sending and reading the body.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, CtlError> {
        let attempt = self.exchange(method, path, headers, body);
        let response = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result?,
            Err(_) => {
                return Err(CtlError::new(
                    EX_TEMPFAIL,
                    format!(
                        "the management API at {} did not answer within {:?}",
                        self.url, self.timeout
                    ),
                ))
            }
        };
        if response.status == 401 {
            return Err(CtlError::new(
                EX_NOPERM,
                format!("access refused by {}: {}", self.url, response.reason()),
            ));
        }
        Ok(response)
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Response, CtlError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            CtlError::new(
                EX_UNAVAILABLE,
                format!("unable to reach the management API at {}: {e}", self.url),
            )
        };
        let stream = TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|e| unreachable(&e))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| unreachable(&e))?;
        // The connection task ends with the exchange; its error, if any, shows in the
        // response's.
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header("host", self.authority.as_str())
            .header("authorization", self.authorization.as_str());
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| CtlError::new(EX_USAGE, format!("cannot build the request: {e}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| unreachable(&e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok(Response { status, body })
    }
}

/// Percent-encodes one path segment (a vhost, a user, a queue name): everything but
/// RFC 3986's unreserved characters, so "/" becomes %2F as the API expects.
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<Client, CtlError> {
        Client::new(url, "guest", "guest", Duration::from_secs(1))
    }

    #[test]
    fn urls_with_and_without_port_and_prefix() {
        let c = client("http://localhost").expect("no port");
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("localhost:80", "")
        );
        let c = client("http://127.0.0.1:15672/").expect("root");
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("127.0.0.1:15672", "")
        );
        let c = client("http://[::1]:8080/rabbit/").expect("prefix");
        assert_eq!(
            (c.authority.as_str(), c.prefix.as_str()),
            ("[::1]:8080", "/rabbit")
        );
        assert_eq!(c.authorization, "Basic Z3Vlc3Q6Z3Vlc3Q=");
        for bad in [
            "https://h:1",
            "ftp://h",
            "http://",
            "http://h:",
            "http://h:0",
            "http://h:99999",
        ] {
            assert_eq!(client(bad).expect_err(bad).code, EX_USAGE, "{bad}");
        }
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(seg("/"), "%2F");
        assert_eq!(seg("a b/c~d%e"), "a%20b%2Fc~d%25e");
        assert_eq!(seg("é"), "%C3%A9");
    }
}
