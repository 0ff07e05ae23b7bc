//! What the management listener parses by hand: an `Authorization: Basic` value, a form
//! upload's content type and its multipart body (definitions uploaded from the UI or
//! rabbitmqadmin). hyper parses the HTTP itself and serde the JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren::fuzzing::parse_http(data);
});
