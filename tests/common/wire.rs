//! A bare AMQP client that writes and reads frames as bytes (no codec in between), for what
//! lapin cannot send or show: exact property bytes, every basic.ack as sent, odd arguments.

use super::{within, TestBroker};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The frame_max a `Wire` connection tunes to.
pub const WIRE_FRAME_MAX: u32 = 131072;

/// A bare AMQP connection with its channels open.
pub struct Wire {
    stream: TcpStream,
}

/// A frame: type, channel, payload, frame-end.
pub fn encode_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![kind];
    frame.extend(channel.to_be_bytes());
    frame.extend((payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame.push(0xCE);
    frame
}

/// A method frame: class and method ids, then the encoded arguments.
pub fn encode_method(channel: u16, class: u16, method: u16, args: &[u8]) -> Vec<u8> {
    let mut payload = class.to_be_bytes().to_vec();
    payload.extend(method.to_be_bytes());
    payload.extend_from_slice(args);
    encode_frame(1, channel, &payload)
}

pub fn short_str(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

pub fn long_str(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// reply-code, reply-text and failing (class, method) of a connection/channel.close.
pub fn close_fields(args: &[u8]) -> (u16, String, (u16, u16)) {
    let code = u16::from_be_bytes([args[0], args[1]]);
    let len = args[2] as usize;
    let text = String::from_utf8(args[3..3 + len].to_vec()).unwrap();
    let rest = &args[3 + len..];
    (
        code,
        text,
        (
            u16::from_be_bytes([rest[0], rest[1]]),
            u16::from_be_bytes([rest[2], rest[3]]),
        ),
    )
}

/// The next frame on `r` (bounded): type, channel, payload; the frame-end is checked.
pub async fn read_frame(r: &mut (impl AsyncRead + Unpin)) -> (u8, u16, Vec<u8>) {
    let mut header = [0u8; 7];
    within(r.read_exact(&mut header)).await.expect("a frame");
    let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
    let mut payload = vec![0u8; size + 1];
    within(r.read_exact(&mut payload))
        .await
        .expect("a frame payload");
    assert_eq!(payload.pop(), Some(0xCE), "frame end");
    (
        header[0],
        u16::from_be_bytes([header[1], header[2]]),
        payload,
    )
}

impl Wire {
    /// A handshake as guest on "/" (no heartbeats, `WIRE_FRAME_MAX`) and channel 1 open.
    pub async fn open(broker: &TestBroker) -> Wire {
        Wire::open_channels(broker, 1).await
    }

    /// A handshake as guest on "/" (no heartbeats, `WIRE_FRAME_MAX`) and channels 1..=n open.
    pub async fn open_channels(broker: &TestBroker, channels: u16) -> Wire {
        let stream = within(TcpStream::connect(broker.addr)).await.unwrap();
        Wire::open_on(stream, channels).await
    }

    /// `open_channels` on a socket the caller connected (with its own socket options).
    pub async fn open_on(stream: TcpStream, channels: u16) -> Wire {
        let mut wire = Wire { stream };
        wire.bytes(b"AMQP\x00\x00\x09\x01").await;
        wire.expect_method(0, 10, 10).await; // start
        let mut start_ok = 0u32.to_be_bytes().to_vec(); // empty client properties
        start_ok.extend(short_str("PLAIN"));
        start_ok.extend(long_str(b"\0guest\0guest"));
        start_ok.extend(short_str("en_US"));
        wire.method(0, 10, 11, &start_ok).await;
        wire.expect_method(0, 10, 30).await; // tune
        let mut tune_ok = 2047u16.to_be_bytes().to_vec();
        tune_ok.extend(WIRE_FRAME_MAX.to_be_bytes());
        tune_ok.extend(0u16.to_be_bytes());
        wire.method(0, 10, 31, &tune_ok).await;
        let mut open = short_str("/");
        open.extend(short_str(""));
        open.push(0);
        wire.method(0, 10, 40, &open).await;
        wire.expect_method(0, 10, 41).await;
        for ch in 1..=channels {
            wire.method(ch, 20, 10, &short_str("")).await;
            wire.expect_method(ch, 20, 11).await;
        }
        wire
    }

    /// The socket's halves, to read and write from different tasks.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        self.stream.into_split()
    }

    pub async fn bytes(&mut self, bytes: &[u8]) {
        within(self.stream.write_all(bytes)).await.expect("write");
    }

    pub async fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        self.bytes(&encode_frame(kind, channel, payload)).await;
    }

    /// Writes a frame; false if the broker has closed the socket.
    pub async fn try_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> bool {
        within(self.stream.write_all(&encode_frame(kind, channel, payload)))
            .await
            .is_ok()
    }

    pub async fn method(&mut self, channel: u16, class: u16, method: u16, args: &[u8]) {
        self.bytes(&encode_method(channel, class, method, args))
            .await;
    }

    /// The next frame: type, channel, payload.
    pub async fn next_frame(&mut self) -> (u8, u16, Vec<u8>) {
        read_frame(&mut self.stream).await
    }

    /// The next method frame (other frames skipped): channel, class, method, args.
    pub async fn next_method(&mut self) -> (u16, u16, u16, Vec<u8>) {
        loop {
            let (kind, channel, payload) = self.next_frame().await;
            if kind == 1 {
                let class = u16::from_be_bytes([payload[0], payload[1]]);
                let method = u16::from_be_bytes([payload[2], payload[3]]);
                return (channel, class, method, payload[4..].to_vec());
            }
        }
    }

    pub async fn expect_method(&mut self, channel: u16, class: u16, method: u16) {
        let (ch, c, m, _) = self.next_method().await;
        assert_eq!((ch, c, m), (channel, class, method), "unexpected method");
    }
}
