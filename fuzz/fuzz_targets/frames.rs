//! Frame splitting and every method's arguments, as the connection task decodes them: raw
//! bytes, or (input starting with `~`) a structured client session.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use warren_fuzz::parsers::{frames_bytes, decode_frames, on_worker_stack};
    if let Some(bytes) = frames_bytes(data) {
        on_worker_stack(&bytes, decode_frames);
    }
});
