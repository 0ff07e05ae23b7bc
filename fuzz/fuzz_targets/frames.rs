//! Frame splitting and every method's arguments, as the connection task decodes them.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_fuzz::parsers::on_worker_stack(data, warren_fuzz::parsers::decode_frames)
});
