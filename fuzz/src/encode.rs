//! AMQP 0-9-1 encoding by hand, for the fuzz session: frames, methods, strings and field
//! tables written byte by byte so that a session can say anything a client could, valid
//! or not (lengths that lie, invalid UTF-8, unknown type tags, frames without 0xCE).

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

/// A frame: type, channel, payload size, payload, frame-end.
pub fn frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out.push(0xCE);
}

/// A method frame with its class and method ids before the arguments.
pub fn method(out: &mut Vec<u8>, channel: u16, class: u16, method: u16, args: &[u8]) {
    let mut payload = Vec::with_capacity(args.len() + 4);
    payload.extend_from_slice(&class.to_be_bytes());
    payload.extend_from_slice(&method.to_be_bytes());
    payload.extend_from_slice(args);
    frame(out, 1, channel, &payload);
}

/// Argument bytes, appended in protocol order.
#[derive(Default)]
pub struct Args(pub Vec<u8>);

impl Args {
    pub fn u8(mut self, v: u8) -> Self {
        self.0.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Consecutive bits share one octet, lowest first, as the protocol packs them.
    pub fn bits(self, bits: &[bool]) -> Self {
        let packed = bits
            .iter()
            .enumerate()
            .fold(0u8, |acc, (i, &b)| acc | (u8::from(b) << i));
        self.u8(packed)
    }
    /// A short string: the length octet is the byte count cut to 255 (the content is cut
    /// too, so the frame stays well formed; wrong lengths come from raw frames).
    pub fn short(mut self, s: &[u8]) -> Self {
        let s = &s[..s.len().min(255)];
        self.0.push(s.len() as u8);
        self.0.extend_from_slice(s);
        self
    }
    pub fn long(mut self, s: &[u8]) -> Self {
        self.0.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.0.extend_from_slice(s);
        self
    }
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}
