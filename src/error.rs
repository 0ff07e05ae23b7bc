//! Errors: the AMQP exceptions a client sees, and the transport failures it does not.
//!
//! `Exception` carries a reply code, RabbitMQ's text and the failing method; every handler
//! returns one, and `Exception::closes_connection` is the one place that decides whether
//! it becomes a channel.close (soft codes on a channel) or a connection.close (hard codes,
//! or anything on channel 0). Nothing here does I/O.

use std::fmt;

/// AMQP reply codes, with the names RabbitMQ prints in front of its reply texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyCode {
    ContentTooLarge = 311,
    NoRoute = 312,
    NoConsumers = 313,
    ConnectionForced = 320,
    InvalidPath = 402,
    AccessRefused = 403,
    NotFound = 404,
    ResourceLocked = 405,
    PreconditionFailed = 406,
    FrameError = 501,
    SyntaxError = 502,
    CommandInvalid = 503,
    ChannelError = 504,
    UnexpectedFrame = 505,
    ResourceError = 506,
    NotAllowed = 530,
    NotImplemented = 540,
    InternalError = 541,
}

impl ReplyCode {
    /// The code with this number, if it is one.
    pub fn from_u16(n: u16) -> Option<ReplyCode> {
        use ReplyCode::*;
        [
            ContentTooLarge,
            NoRoute,
            NoConsumers,
            ConnectionForced,
            InvalidPath,
            AccessRefused,
            NotFound,
            ResourceLocked,
            PreconditionFailed,
            FrameError,
            SyntaxError,
            CommandInvalid,
            ChannelError,
            UnexpectedFrame,
            ResourceError,
            NotAllowed,
            NotImplemented,
            InternalError,
        ]
        .into_iter()
        .find(|c| *c as u16 == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            ReplyCode::ContentTooLarge => "CONTENT_TOO_LARGE",
            ReplyCode::NoRoute => "NO_ROUTE",
            ReplyCode::NoConsumers => "NO_CONSUMERS",
            ReplyCode::ConnectionForced => "CONNECTION_FORCED",
            ReplyCode::InvalidPath => "INVALID_PATH",
            ReplyCode::AccessRefused => "ACCESS_REFUSED",
            ReplyCode::NotFound => "NOT_FOUND",
            ReplyCode::ResourceLocked => "RESOURCE_LOCKED",
            ReplyCode::PreconditionFailed => "PRECONDITION_FAILED",
            ReplyCode::FrameError => "FRAME_ERROR",
            ReplyCode::SyntaxError => "SYNTAX_ERROR",
            ReplyCode::CommandInvalid => "COMMAND_INVALID",
            ReplyCode::ChannelError => "CHANNEL_ERROR",
            ReplyCode::UnexpectedFrame => "UNEXPECTED_FRAME",
            ReplyCode::ResourceError => "RESOURCE_ERROR",
            ReplyCode::NotAllowed => "NOT_ALLOWED",
            ReplyCode::NotImplemented => "NOT_IMPLEMENTED",
            ReplyCode::InternalError => "INTERNAL_ERROR",
        }
    }

    /// Hard errors close the whole connection even when raised on a channel.
    pub fn is_hard(self) -> bool {
        !matches!(
            self,
            ReplyCode::ContentTooLarge
                | ReplyCode::NoRoute
                | ReplyCode::NoConsumers
                | ReplyCode::AccessRefused
                | ReplyCode::NotFound
                | ReplyCode::ResourceLocked
                | ReplyCode::PreconditionFailed
        )
    }
}

/// An AMQP exception: what the client is told in channel.close or connection.close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    pub code: ReplyCode,
    /// The full reply text, `"NOT_FOUND - no queue 'q' in vhost '/'"`, at most 255 bytes.
    pub text: String,
    pub class_id: u16,
    pub method_id: u16,
}

impl Exception {
    /// Builds the exception; the text gets RabbitMQ's `NAME - ` prefix and is cut to fit a
    /// short string (on a character boundary, so it stays valid UTF-8).
    pub fn new(code: ReplyCode, detail: impl fmt::Display) -> Self {
        let mut text = format!("{} - {}", code.name(), detail);
        if text.len() > 255 {
            let mut end = 255;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        Exception {
            code,
            text,
            class_id: 0,
            method_id: 0,
        }
    }

    /// Records the method that failed (sent back in the close method).
    pub fn on(mut self, class_id: u16, method_id: u16) -> Self {
        self.class_id = class_id;
        self.method_id = method_id;
        self
    }

    /// Sets the failing method only where no handler has set it yet.
    pub fn or_on(self, class_id: u16, method_id: u16) -> Self {
        if self.class_id == 0 && self.method_id == 0 {
            self.on(class_id, method_id)
        } else {
            self
        }
    }

    pub fn not_found(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotFound, detail)
    }
    pub fn access_refused(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::AccessRefused, detail)
    }
    pub fn resource_locked(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::ResourceLocked, detail)
    }
    pub fn precondition_failed(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::PreconditionFailed, detail)
    }
    pub fn frame_error(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::FrameError, detail)
    }
    pub fn syntax_error(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::SyntaxError, detail)
    }
    pub fn command_invalid(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::CommandInvalid, detail)
    }
    pub fn channel_error(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::ChannelError, detail)
    }
    pub fn unexpected_frame(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::UnexpectedFrame, detail)
    }
    pub fn not_allowed(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotAllowed, detail)
    }
    pub fn not_implemented(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::NotImplemented, detail)
    }
    pub fn internal_error(detail: impl fmt::Display) -> Self {
        Self::new(ReplyCode::InternalError, detail)
    }

    /// The single rule for channel versus connection close.
    pub fn closes_connection(&self, channel: u16) -> bool {
        channel == 0 || self.code.is_hard()
    }
}

impl fmt::Display for Exception {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.code as u16)
    }
}

impl std::error::Error for Exception {}

/// Why a connection ended without (or after) an orderly AMQP close.
#[derive(Debug)]
pub enum ConnectionError {
    Io(std::io::Error),
    PeerClosed,
    MissedHeartbeats,
    HandshakeTimeout,
    /// A method RabbitMQ does not know: it drops the connection without a close method.
    UnknownMethod,
}

impl fmt::Display for ConnectionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionError::Io(e) => write!(f, "i/o error: {e}"),
            ConnectionError::PeerClosed => f.write_str("peer closed the socket"),
            ConnectionError::MissedHeartbeats => f.write_str("missed heartbeats from client"),
            ConnectionError::HandshakeTimeout => f.write_str("handshake timeout"),
            ConnectionError::UnknownMethod => f.write_str("unknown method"),
        }
    }
}

impl From<std::io::Error> for ConnectionError {
    fn from(e: std::io::Error) -> Self {
        ConnectionError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_prefix_and_fits_a_short_string() {
        let e = Exception::not_found(format!("no queue '{}' in vhost '/'", "q"));
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        let long = Exception::not_found("é".repeat(300));
        assert!(long.text.len() <= 255);
    }

    #[test]
    fn soft_codes_close_the_channel_hard_codes_the_connection() {
        assert!(!Exception::not_found("x").closes_connection(1));
        assert!(Exception::not_found("x").closes_connection(0));
        assert!(Exception::channel_error("x").closes_connection(1));
    }
}
