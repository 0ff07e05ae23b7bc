//! `ShortStr`: an AMQP short string kept as a slice of the read buffer.
//!
//! Exchange names and routing keys of every publish travel with the message; keeping them
//! as `Bytes` slices of the frame they arrived in avoids an allocation per message. The
//! UTF-8 check is done once, when the value is built; the codec is the only producer of
//! slices from the wire.

use bytes::Bytes;
use std::fmt;

/// A UTF-8 string of at most 255 bytes, sharing the buffer it was parsed from.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// Wraps bytes that must be valid UTF-8; `None` when they are not.
    pub fn from_bytes(bytes: Bytes) -> Option<Self> {
        std::str::from_utf8(&bytes).ok()?;
        Some(ShortStr(bytes))
    }

    pub fn from_static(s: &'static str) -> Self {
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor checks (or receives a `str`) that the bytes are UTF-8,
        // and `Bytes` is immutable.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        // A copy: only for names that do not come from the wire (tests, server names).
        ShortStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        ShortStr(Bytes::from(s.into_bytes()))
    }
}

// Hashes like `str`, so maps keyed by `ShortStr` can be searched with a `&str`.
impl std::hash::Hash for ShortStr {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl std::borrow::Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::ops::Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
