//! The parsers of client bytes, called the way the broker calls them.
//!
//! Thin calls into `warren::fuzzing` (the broker's own entry points for its parsers of
//! client bytes), run on a stack the size of a runtime worker's. Each function only
//! parses: results are dropped.

use crate::session::Session;
use crate::values::{Props, Table};
use arbitrary::{Arbitrary, Unstructured};
use warren::fuzzing;

/// The stack of the broker's runtime workers (tokio's default), where these parsers run.
const WORKER_STACK: usize = 2 << 20;
/// Below this many bytes nesting is too shallow to matter, and a thread per input would
/// cost most of the fuzzer's speed.
const DEEP_INPUT: usize = 4096;

/// Runs `parse` on a thread with a worker's stack when the input is large enough to nest
/// deeply, so that recursion which would overflow a broker worker overflows here too
/// (see `overflow`: the fault is reported and the process aborts, which libFuzzer records).
pub fn on_worker_stack(data: &[u8], parse: fn(&[u8])) {
    if data.len() < DEEP_INPUT {
        return parse(data);
    }
    crate::overflow::remember_fuzzer_thread();
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .stack_size(WORKER_STACK)
            .spawn_scoped(s, || {
                crate::overflow::guard_this_thread();
                parse(data)
            })
            .unwrap_or_else(|e| panic!("fuzz harness: no thread: {e}"));
        if let Err(panic) = worker.join() {
            std::panic::resume_unwind(panic);
        }
    });
}

/// First byte of an input that is structured (decoded with `arbitrary` and encoded
/// well-formed: nesting of any depth, lengths that agree) rather than raw bytes. Raw
/// tables never start with it (it would announce a table over 2 GiB).
pub const STRUCTURED: u8 = b'~';

/// The bytes to parse: `data` itself, or, if it starts with STRUCTURED, the encoding of
/// the `T` the rest decodes to (`encode` turns it into bytes).
pub fn raw_or_structured<'a, T: Arbitrary<'a>>(
    data: &'a [u8],
    encode: impl FnOnce(&T) -> Vec<u8>,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    match data.split_first() {
        Some((&STRUCTURED, rest)) => {
            let value = T::arbitrary_take_rest(Unstructured::new(rest)).ok()?;
            Some(encode(&value).into())
        }
        _ => Some(data.into()),
    }
}

/// A structured input's bytes for each parser target.
pub fn table_bytes(data: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    raw_or_structured(data, Table::encode)
}

pub fn properties_bytes(data: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    raw_or_structured(data, Props::encode)
}

/// For frames the structured form is a whole client session (with a knob byte first).
pub fn frames_bytes(data: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    raw_or_structured(data, |session: &(u8, Session)| {
        let mut bytes = vec![session.0];
        bytes.extend(session.1.bytes());
        bytes
    })
}

/// frame_max values the broker decodes with: the protocol minimum (before tune-ok, and
/// the least a client may negotiate), the default, and two in between. Never 0: the
/// broker refuses "no limit", and the codec would then reserve whatever size a frame
/// header announces.
const FRAME_MAX: [u32; 4] = [4096, 131072, 8192, 65536];

/// Splits `data` into frames as the connection task does, fed in chunks so that partial
/// frames are exercised too. The first byte picks frame_max and the chunk size.
pub fn decode_frames(data: &[u8]) {
    let Some((&knob, data)) = data.split_first() else {
        return;
    };
    let frame_max = FRAME_MAX[(knob & 3) as usize];
    let chunk = 1 + (knob >> 2) as usize * 37;
    fuzzing::decode_frames_in_chunks(data, frame_max, chunk);
}

/// Content-header property bytes, as the broker reads them (checked, decoded, single
/// fields looked up).
pub fn parse_properties(data: &[u8]) {
    fuzzing::parse_properties(data);
}

/// A field table as it arrives in method arguments (queue, exchange and consume
/// arguments, client properties) or in the headers property: the depth walk, then the
/// full decode.
pub fn parse_table(data: &[u8]) {
    fuzzing::parse_table(data);
}
