//! A connection's write buffer: the bytes to send, in order, as one inline buffer with
//! shared message bodies spliced in between its bytes.
//!
//! Everything the connection sends is encoded into the inline `BytesMut` (methods,
//! content headers, frame headers and ends, small bodies: one write carries many small
//! deliveries). A large body (`Message::shared_body`) is not copied in: its frames' parts
//! are recorded as `Bytes` slices of the message's body at the inline position where they
//! belong, and a write hands the socket the inline runs and those slices as one vectored
//! write (writev; rustls takes the slices as one plaintext write). Partial writes resume
//! exactly where the socket stopped, inside an inline run or a body.
//!
//! Owned by the connection task (channels write through `Ctx::out`, which derefs to the
//! inline buffer for the codec). Never blocks; the only await is the socket write. The
//! inline buffer is only ever appended to (or patched where a frame's size goes) and
//! consumed from the front: splice positions count from its first byte ever written.

use crate::broker::message::Message;
use crate::codec;
use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;
use std::ops::{Deref, DerefMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Most slices one write hands the socket: 64 × 16 bytes of iovec on the task's state;
/// with shared bodies of 16 KiB or more that is 512 KiB or more per syscall, more than a socket
/// buffer takes at once.
const MAX_SLICES: usize = 64;

#[derive(Debug, Default)]
pub struct Out {
    inline: BytesMut,
    spliced: VecDeque<Splice>,
    /// Inline bytes consumed (written) since this buffer was made; a splice's `at` is
    /// counted in the same terms, so consuming never has to touch the splices.
    taken: u64,
    /// Body bytes in `spliced` not written yet.
    shared: usize,
}

/// Body bytes to send before the inline byte at `at`.
#[derive(Debug)]
struct Splice {
    at: u64,
    body: Bytes,
}

impl Out {
    pub fn with_capacity(capacity: usize) -> Out {
        Out {
            inline: BytesMut::with_capacity(capacity),
            ..Out::default()
        }
    }

    /// Bytes not written yet, inline and shared (what the high-water mark counts).
    pub fn len(&self) -> usize {
        self.inline.len() + self.shared
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Body bytes waiting to be written that are not in the inline buffer (they belong
    /// to messages; the connection counts them as its memory while it holds them).
    pub fn shared_len(&self) -> usize {
        self.shared
    }

    /// Drops everything not written yet.
    pub fn clear(&mut self) {
        self.taken += self.inline.len() as u64;
        self.inline.clear();
        self.spliced.clear();
        self.shared = 0;
    }

    /// A message's content header and body frames. A shared body is spliced in as
    /// slices of itself; a small one is copied into the inline buffer.
    pub fn put_content(&mut self, channel: u16, msg: &Message, frame_max: u32) {
        let Some(body) = msg.shared_body() else {
            codec::encode_content(
                &mut self.inline,
                channel,
                msg.properties(),
                msg.body(),
                frame_max,
            );
            return;
        };
        let (spliced, taken, shared) = (&mut self.spliced, self.taken, &mut self.shared);
        let properties = msg.properties();
        codec::encode_content_with(
            &mut self.inline,
            channel,
            properties,
            body.len(),
            frame_max,
            |buf, part| {
                *shared += part.len();
                spliced.push_back(Splice {
                    at: taken + buf.len() as u64,
                    body: body.slice(part),
                });
            },
        );
    }

    /// Fills `dst` with the next bytes to write, in order; returns how many slices.
    fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        let mut from = 0;
        for s in &self.spliced {
            // `at` is never behind `taken`: inline bytes before a splice are consumed
            // before its body (`advance`).
            let to = (s.at - self.taken) as usize;
            if to > from {
                if count == dst.len() {
                    return count;
                }
                dst[count] = IoSlice::new(&self.inline[from..to]);
                count += 1;
                from = to;
            }
            if count == dst.len() {
                return count;
            }
            dst[count] = IoSlice::new(&s.body);
            count += 1;
        }
        if from < self.inline.len() && count < dst.len() {
            dst[count] = IoSlice::new(&self.inline[from..]);
            count += 1;
        }
        count
    }

    /// Consumes `n` written bytes from the front, across inline runs and bodies.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let inline_run = match self.spliced.front() {
                Some(s) => (s.at - self.taken) as usize,
                None => self.inline.len(),
            };
            if inline_run > 0 {
                let k = inline_run.min(n);
                self.inline.advance(k);
                self.taken += k as u64;
                n -= k;
                continue;
            }
            let Some(s) = self.spliced.front_mut() else {
                return;
            };
            let k = s.body.len().min(n);
            s.body.advance(k);
            self.shared -= k;
            n -= k;
            if s.body.is_empty() {
                self.spliced.pop_front();
            }
        }
    }

    /// One write of what is waiting (vectored when bodies are spliced in); the bytes
    /// written are consumed. Cancel-safe: nothing is consumed unless the write completed.
    pub async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<usize> {
        let written = if self.spliced.is_empty() {
            // The common case (small messages): a plain write of the inline buffer.
            writer.write(&self.inline).await?
        } else {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = self.slices(&mut slices);
            writer.write_vectored(&slices[..count]).await?
        };
        self.advance(written);
        Ok(written)
    }
}

/// The inline buffer, for the codec's encoders (they append frames to it).
impl Deref for Out {
    type Target = BytesMut;
    fn deref(&self) -> &BytesMut {
        &self.inline
    }
}

impl DerefMut for Out {
    fn deref_mut(&mut self) -> &mut BytesMut {
        &mut self.inline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::SHARED_BODY_MIN;
    use bytes::BufMut;

    /// Everything `out` would send, drained through writes of at most `step` bytes.
    fn drain(out: &mut Out, step: usize) -> Vec<u8> {
        let mut sent = Vec::new();
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = out.slices(&mut slices);
            let mut budget = step;
            for s in &slices[..count] {
                let k = s.len().min(budget);
                sent.extend_from_slice(&s[..k]);
                budget -= k;
            }
            let n = step - budget;
            assert!(n > 0, "a write made no progress");
            out.advance(n);
        }
        sent
    }

    fn large(body: &[u8]) -> Message {
        Message::with_body("x", "rk", &[0x10, 0], Bytes::copy_from_slice(body))
    }

    #[test]
    fn a_shared_body_goes_out_as_its_own_bytes() {
        let body = vec![9u8; SHARED_BODY_MIN + 10];
        let msg = large(&body);
        let mut out = Out::default();
        out.put_content(1, &msg, 131_072);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let count = out.slices(&mut slices);
        assert_eq!(count, 3, "header + frame header, body, frame end");
        // The iovec points into the message's body: no copy on the way out.
        assert_eq!(slices[1].as_ptr(), msg.body().as_ptr());
        assert_eq!(slices[1].len(), body.len());
        assert_eq!(out.len(), out.inline.len() + body.len());
        assert_eq!(out.shared_len(), body.len());
    }

    #[test]
    fn bytes_come_out_as_the_copying_encoder_writes_them_whatever_the_partial_writes() {
        let bodies: Vec<Vec<u8>> = [5000usize, SHARED_BODY_MIN, 300_000, 10, 70_000]
            .iter()
            .enumerate()
            .map(|(i, n)| (0..*n).map(|b| (b * 7 + i) as u8).collect())
            .collect();
        for frame_max in [4096u32, 131_072, 0] {
            let mut expected = BytesMut::new();
            let mut out = Out::default();
            for (ch, body) in bodies.iter().enumerate() {
                let msg = large(body);
                expected.put_slice(b"method");
                out.put_slice(b"method");
                codec::encode_content(&mut expected, ch as u16, msg.properties(), body, frame_max);
                out.put_content(ch as u16, &msg, frame_max);
            }
            expected.put_slice(b"tail");
            out.put_slice(b"tail");
            for step in [1, 7, 4096, 65_536, usize::MAX / 2] {
                let mut copy = Out::default();
                // The same queue again, rebuilt for each step size.
                for (ch, body) in bodies.iter().enumerate() {
                    copy.put_slice(b"method");
                    copy.put_content(ch as u16, &large(body), frame_max);
                }
                copy.put_slice(b"tail");
                let sent = drain(&mut copy, step);
                assert!(sent == expected[..], "frame_max {frame_max}, step {step}");
                assert_eq!((copy.len(), copy.shared_len()), (0, 0));
            }
            // Written halfway, then more is queued behind: positions still line up.
            let total = out.len();
            let mut first = drain_some(&mut out, total / 2);
            out.put_slice(b"more");
            first.extend(drain(&mut out, 1000));
            let mut want = expected.to_vec();
            want.extend_from_slice(b"more");
            assert!(first == want, "frame_max {frame_max}");
        }
    }

    fn drain_some(out: &mut Out, mut n: usize) -> Vec<u8> {
        let mut sent = Vec::new();
        while n > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let count = out.slices(&mut slices);
            let mut written = 0;
            for s in &slices[..count] {
                let k = s.len().min(n - written);
                sent.extend_from_slice(&s[..k]);
                written += k;
            }
            out.advance(written);
            n -= written;
        }
        sent
    }

    #[test]
    fn more_bodies_than_one_write_takes_are_sent_over_several() {
        let mut out = Out::default();
        let mut expected = BytesMut::new();
        for _ in 0..MAX_SLICES {
            let msg = large(&[3u8; SHARED_BODY_MIN]);
            out.put_content(1, &msg, 131_072);
            codec::encode_content(&mut expected, 1, msg.properties(), msg.body(), 131_072);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(out.slices(&mut slices), MAX_SLICES);
        assert!(drain(&mut out, usize::MAX / 2) == expected[..]);
    }

    #[test]
    fn clear_drops_the_bodies_too() {
        let mut out = Out::default();
        out.put_content(1, &large(&[1u8; 8192]), 131_072);
        out.clear();
        assert!(out.is_empty());
        out.put_slice(b"after");
        assert_eq!(drain(&mut out, 3), b"after");
    }
}
