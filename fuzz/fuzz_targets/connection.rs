//! A whole client session against an in-process broker: a structured session (valid
//! handshake, then methods with fuzzed arguments, publishes with fuzzed properties and
//! bodies, raw frames and bytes) written on a fresh TCP connection.
#![no_main]
use libfuzzer_sys::fuzz_target;
use warren_fuzz::session::Session;

fuzz_target!(|session: Session| {
    if std::env::var_os("WARREN_FUZZ_TRACE").is_some() {
        eprintln!("{session:#?}");
    }
    warren_fuzz::broker::run_session(&session.bytes());
});
