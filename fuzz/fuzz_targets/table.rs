//! Field tables (arguments, client properties, headers), as the broker reads them: raw bytes, or
//! (input starting with `~`) structured values encoded well-formed.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use warren_fuzz::parsers::{table_bytes, parse_table, on_worker_stack};
    if let Some(bytes) = table_bytes(data) {
        on_worker_stack(&bytes, parse_table);
    }
});
