//! Support for warren's fuzz targets: the parser entry points each target drives, the
//! in-process broker the `connection` target talks to, and the structured client session
//! that target turns into bytes.
//!
//! Built only by the fuzz crate (its own workspace), never by `cargo build` or `cargo test`
//! at the top. Nothing here may swallow a panic: a panic anywhere, broker threads
//! included, must abort the process so that libFuzzer records it as a crash.

pub mod broker;
pub mod encode;
pub mod overflow;
pub mod parsers;
pub mod session;
pub mod values;

/// Makes every panic, on any thread, abort the process after printing it.
///
/// libFuzzer's hook does the same, but the broker (or a later change to it) may install
/// its own hook or contain panics per connection; calling this after the broker has
/// started puts the abort back on top of whatever hook is there.
pub fn abort_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        std::process::abort();
    }));
}
