//! Field tables (arguments, client properties, headers), as the broker reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_fuzz::parsers::on_worker_stack(data, warren_fuzz::parsers::parse_table)
});
