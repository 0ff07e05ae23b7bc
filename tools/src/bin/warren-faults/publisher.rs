//! A confirmed publisher: one connection, one channel in confirm mode, at most `window`
//! messages unconfirmed, each body stamped with its id and the id's complement (so a
//! consumer can tell a stored message from a damaged one). What happens to each message
//! is reported to a `Books` implementation: the kill -9 ledger, the disk-full test's list
//! of confirmed ids, or the hostile test's counters.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use crate::amqp::*;
use crate::wire::*;

pub trait Books {
    fn sent(&mut self, id: u64);
    /// Confirmed (`ok`) or nacked; `sent_at` is when the message was written.
    fn settled(&mut self, id: u64, ok: bool, sent_at: Instant);
    fn blocked(&mut self, _blocked: bool) {}
}

pub struct Publisher {
    c: Conn,
    one: Vec<u8>,
    body: usize,
    window: usize,
    inflight: BTreeMap<u64, (u64, Instant)>,
    next_tag: u64,
    /// The id the next message gets; ids go up by one.
    pub next_id: u64,
}

/// Write `id` and its check into the first 16 bytes of a body.
pub fn stamp(body: &mut [u8], id: u64) {
    body[..8].copy_from_slice(&id.to_be_bytes());
    body[8..16].copy_from_slice(&(!id).to_be_bytes());
}

/// The id of a stamped body, if the check matches.
pub fn read_stamp(body: &[u8]) -> Option<u64> {
    let id = u64::from_be_bytes(body.get(..8)?.try_into().ok()?);
    let check = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    (check == !id).then_some(id)
}

/// Whether a publisher that sent `sent` messages since `since` may send another at
/// `rate` messages per second (always, when `rate` is 0).
pub fn due(sent: u64, rate: f64, since: Instant) -> bool {
    rate <= 0.0 || (sent as f64) < rate * since.elapsed().as_secs_f64()
}

impl Publisher {
    pub async fn open(
        t: &Target,
        queue: &str,
        size: usize,
        persistent: bool,
        window: usize,
        next_id: u64,
    ) -> Res<Publisher> {
        let mut c = Conn::open(t, 1 << 16).await?;
        c.open_channel(1).await?;
        confirm_select(&mut c, 1).await?;
        let (one, body) = publish_message(1, "", queue, size.max(16), persistent, c.frame_max);
        Ok(Publisher {
            c,
            one,
            body,
            window: window.max(1),
            inflight: BTreeMap::new(),
            next_tag: 1,
            next_id,
        })
    }

    pub fn unconfirmed(&self) -> usize {
        self.inflight.len()
    }

    /// Publish (while `publish` says so) and read confirms until `done` holds; both are
    /// asked at least every 100 ms. Messages unconfirmed when an error ends it stay
    /// unsettled in the books.
    pub async fn pump<B: Books>(
        &mut self,
        books: &mut B,
        publish: impl Fn(&B) -> bool,
        mut done: impl FnMut(&Publisher, &B) -> bool,
    ) -> Res<()> {
        let mut out = Vec::new();
        while !done(self, books) {
            out.clear();
            if publish(books) && self.inflight.len() < self.window {
                // Stamped before the write: "sent after" some instant errs on the safe side.
                let now = Instant::now();
                while self.inflight.len() < self.window {
                    let id = self.next_id;
                    self.next_id += 1;
                    stamp(&mut self.one[self.body..], id);
                    out.extend_from_slice(&self.one);
                    books.sent(id);
                    self.inflight.insert(self.next_tag, (id, now));
                    self.next_tag += 1;
                }
            }
            if !out.is_empty() {
                self.c.wr.write_all(&out).await?;
            }
            let read = Frame::read(&mut self.c);
            let f = match tokio::time::timeout(Duration::from_millis(100), read).await {
                Ok(f) => f?,
                Err(_) => continue,
            };
            match f.class_method {
                ACK | NACK => {
                    let (tag, multiple) = f
                        .tag_multiple()
                        .ok_or_else(|| err("short basic.ack from the broker"))?;
                    let tags: Vec<u64> = if multiple {
                        self.inflight.range(..=tag).map(|(t, _)| *t).collect()
                    } else {
                        vec![tag]
                    };
                    for t in tags {
                        if let Some((id, at)) = self.inflight.remove(&t) {
                            books.settled(id, f.class_method == ACK, at);
                        }
                    }
                }
                BLOCKED => books.blocked(true),
                UNBLOCKED => books.blocked(false),
                _ => {}
            }
        }
        Ok(())
    }

    pub async fn close(self) {
        self.c.close().await
    }
}
