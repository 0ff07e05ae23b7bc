//! The management API's errors, as RabbitMQ's management plugin writes them: a status
//! code and a JSON body `{"error": ..., "reason": ...}`; a failed login's 401 also
//! carries the `WWW-Authenticate` header that makes a browser or a client ask for
//! credentials (a refusal of a logged-in user does not, as in RabbitMQ).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// One failed API call. Handlers return `Result<_, ApiError>`; nothing on the way
/// panics or answers without a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// RabbitMQ's short error kind: "not_authorised", "bad_request", "Object Not Found"...
    pub error: String,
    /// The sentence a user reads.
    pub reason: String,
    /// Where RabbitMQ sends an Erlang term as the reason (`["not_boolean", "yes"]`):
    /// that term, sent instead of `reason`.
    pub term: Option<Value>,
    /// Send `WWW-Authenticate` (a failed login): a browser then opens its own login
    /// dialog, so the web UI's calls go without it (`auth::login_failed`).
    pub challenge: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError {
            status,
            error: error.into(),
            reason: reason.into(),
            term: None,
            challenge: false,
        }
    }

    /// 400 whose reason is RabbitMQ's `[kind, value]` term, sent as a JSON array.
    pub fn bad_request_term(kind: &str, value: Value) -> Self {
        Self::bad_request_reason(Value::Array(vec![Value::String(kind.to_owned()), value]))
    }

    /// 400 whose reason is any JSON value (a term, or an import's sentence), sent as is.
    pub fn bad_request_reason(reason: Value) -> Self {
        let text = match &reason {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        ApiError {
            term: Some(reason),
            ..Self::bad_request(text)
        }
    }

    /// 404 for an object (vhost, queue, user, ...) that does not exist, in RabbitMQ's words.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
    }

    /// 404 for a vhost named in the path of an endpoint that changes something in it
    /// (declare, publish, limits, policies, import): RabbitMQ's `vhost_not_found`.
    pub fn vhost_not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "vhost_not_found")
    }

    /// 400 with RabbitMQ's "bad_request" kind.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    /// 401 for a caller who logged in but may not do this ("Not administrator user",
    /// "User not authorised to access virtual host", ...).
    pub fn not_authorised(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "not_authorised", reason)
    }

    /// 401 for a failed login (RabbitMQ spells this one "not_authorized").
    pub fn login_failed() -> Self {
        ApiError {
            challenge: true,
            ..Self::new(StatusCode::UNAUTHORIZED, "not_authorized", "Login failed")
        }
    }

    /// 500 for a failure inside the broker (a write that failed, ...): the reason says
    /// which; the client did nothing wrong.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.term.unwrap_or(Value::String(self.reason));
        let body = json!({"error": self.error, "reason": reason});
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""),
            );
        }
        response
    }
}

/// A handler's result: JSON, or RabbitMQ's error.
pub type ApiResult<T = Response> = Result<T, ApiError>;
