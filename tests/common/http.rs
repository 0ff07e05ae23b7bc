//! A small HTTP client for the management API tests: one connection per request
//! (hyper's HTTP/1 client over a fresh TCP stream), basic auth, JSON in and out.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::net::TcpStream;

/// The management API of a test broker, called as one user.
#[derive(Clone, Debug)]
pub struct Http {
    pub addr: SocketAddr,
    /// (user, password) sent with every request; None sends no credentials.
    pub credentials: Option<(String, String)>,
}

/// What came back.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (Null when empty); panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `name` of each object of a JSON list body, in order.
    pub fn names(&self) -> Vec<String> {
        self.json()
            .as_array()
            .expect("a JSON list")
            .iter()
            .filter_map(|item| item["name"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Http {
    /// As guest/guest.
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            credentials: Some(("guest".into(), "guest".into())),
        }
    }

    /// The same API, as another user (None: without credentials).
    pub fn as_user(&self, user: Option<(&str, &str)>) -> Http {
        Http {
            addr: self.addr,
            credentials: user.map(|(u, p)| (u.to_owned(), p.to_owned())),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path, &[], None).await
    }

    /// DELETE `path` twice: the first removes the object (204), the second finds
    /// nothing (404), as RabbitMQ answers.
    pub async fn delete_once(&self, path: &str) {
        assert_eq!(
            self.delete(path).await.status,
            StatusCode::NO_CONTENT,
            "{path}"
        );
        assert_eq!(
            self.delete(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::PUT, path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.request(Method::POST, path, &[], Some(body.to_string().into_bytes()))
            .await
    }

    /// Any request: extra headers, and a raw body (sent as application/json unless the
    /// headers name another content type).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let stream = TcpStream::connect(self.addr)
            .await
            .expect("connect to the API");
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        if let Some((user, password)) = &self.credentials {
            request = request.header("authorization", basic(user, password));
        }
        let typed = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if body.is_some() && !typed {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(
                HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                HeaderValue::from_str(value).expect("header value"),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("request");
        let response = sender.send_request(request).await.expect("HTTP response");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("HTTP body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// An `Authorization: Basic` value.
pub fn basic(user: &str, password: &str) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

/// A path segment percent-encoded (connection and channel names hold spaces, `>`, `()`).
pub fn segment(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
