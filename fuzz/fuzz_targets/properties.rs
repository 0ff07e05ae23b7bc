//! Content-header property bytes, as the broker reads them: raw bytes, or
//! (input starting with `~`) structured values encoded well-formed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use warren_fuzz::parsers::{properties_bytes, parse_properties, on_worker_stack};
    if let Some(bytes) = properties_bytes(data) {
        on_worker_stack(&bytes, parse_properties);
    }
});
