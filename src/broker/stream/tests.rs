//! Unit tests of the stream log.
