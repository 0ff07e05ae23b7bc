//! Just enough HTTP/1.1 and JSON to read the management API: `GET` with basic auth
//! (guest:guest) and `Connection: close`, the body read to its end (plain or chunked), and
//! a small JSON parser for the fields the script looks at (`leader`, `online`, `members`,
//! `messages`, `running`, ...). The tools package has no HTTP client or JSON library, and
//! these few lines keep it that way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::amqp::{err, Res};

/// `GET path` on `addr`; returns (status, body). Bounded by `patience` end to end.
pub async fn get(addr: SocketAddr, path: &str, patience: Duration) -> Res<(u16, String)> {
    let fut = async {
        let mut s = TcpStream::connect(addr).await?;
        // base64("guest:guest")
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        parse_response(&raw)
    };
    match tokio::time::timeout(patience, fut).await {
        Ok(r) => r,
        Err(_) => Err(err(format!(
            "GET {path} on {addr}: no answer within {patience:?}"
        ))),
    }
}

fn parse_response(raw: &[u8]) -> Res<(u16, String)> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| err("HTTP answer without a header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| err(format!("bad HTTP status line: {head:.60}")))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn dechunk(mut b: &[u8]) -> Res<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| err("bad chunk"))?;
        let size_txt = String::from_utf8_lossy(&b[..eol]);
        let size_txt = size_txt.split(';').next().unwrap_or("").trim();
        let n = usize::from_str_radix(size_txt, 16).map_err(|_| err("bad chunk size"))?;
        b = &b[eol + 2..];
        if n == 0 {
            return Ok(out);
        }
        let chunk = b.get(..n).ok_or_else(|| err("short chunk"))?;
        out.extend_from_slice(chunk);
        b = b.get(n + 2..).unwrap_or(&[]);
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(BTreeMap<String, Json>),
}

impl Json {
    pub fn parse(s: &str) -> Res<Json> {
        let mut p = Parser {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.b.len() {
            return Err(err("trailing bytes after the JSON value"));
        }
        Ok(v)
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(m) => m.get(key),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => &[],
        }
    }

    /// A list of strings (e.g. `online`); other elements are skipped.
    pub fn strings(&self) -> Vec<String> {
        self.arr()
            .iter()
            .filter_map(|j| j.str().map(str::to_string))
            .collect()
    }

    /// The first number found under `key` anywhere inside (depth first).
    pub fn find_num(&self, key: &str) -> Option<f64> {
        match self {
            Json::Obj(m) => {
                if let Some(n) = m.get(key).and_then(Json::num) {
                    return Some(n);
                }
                m.values().find_map(|v| v.find_num(key))
            }
            Json::Arr(a) => a.iter().find_map(|v| v.find_num(key)),
            _ => None,
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Res<()> {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(err(format!("JSON: expected '{}' at {}", c as char, self.i)))
        }
    }

    fn lit(&mut self, word: &str, v: Json) -> Res<Json> {
        if self.b[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(err(format!("JSON: bad literal at {}", self.i)))
        }
    }

    fn value(&mut self) -> Res<Json> {
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.i += 1;
                let mut m = BTreeMap::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Ok(Json::Obj(m));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.eat(b':')?;
                    let v = self.value()?;
                    m.insert(k, v);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Obj(m));
                        }
                        _ => return Err(err(format!("JSON: bad object at {}", self.i))),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(Json::Arr(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Arr(a));
                        }
                        _ => return Err(err(format!("JSON: bad array at {}", self.i))),
                    }
                }
            }
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b't') => self.lit("true", Json::Bool(true)),
            Some(b'f') => self.lit("false", Json::Bool(false)),
            Some(b'n') => self.lit("null", Json::Null),
            Some(c) if c == b'-' || c.is_ascii_digit() => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || b"+-.eE".contains(&c))
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
                t.parse()
                    .map(Json::Num)
                    .map_err(|_| err(format!("JSON: bad number {t}")))
            }
            _ => Err(err(format!("JSON: unexpected byte at {}", self.i))),
        }
    }

    fn string(&mut self) -> Res<String> {
        if self.peek() != Some(b'"') {
            return Err(err(format!("JSON: expected a string at {}", self.i)));
        }
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek().ok_or_else(|| err("JSON: open string"))?;
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = self.peek().ok_or_else(|| err("JSON: open escape"))?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self
                                .b
                                .get(self.i..self.i + 4)
                                .ok_or_else(|| err("JSON: short \\u"))?;
                            let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                                .map_err(|_| err("JSON: bad \\u"))?;
                            self.i += 4;
                            let ch = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_queue() {
        let j = Json::parse(
            r#"{"name":"q1","type":"quorum","leader":"rabbit@n1","members":["rabbit@n1","rabbit@n2", "rabbit@n3"],
               "online":["rabbit@n1"],"messages":12,"x":{"warren_raft":{"raft_term":3}},"e":[],"n":null,"t":true,"s":"a\"b\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(j.get("leader").and_then(Json::str), Some("rabbit@n1"));
        assert_eq!(j.get("members").unwrap().strings().len(), 3);
        assert_eq!(j.get("online").unwrap().strings(), vec!["rabbit@n1"]);
        assert_eq!(j.get("messages").and_then(Json::num), Some(12.0));
        assert_eq!(j.find_num("raft_term"), Some(3.0));
        assert_eq!(j.get("t"), Some(&Json::Bool(true)));
        assert_eq!(j.get("s").and_then(Json::str), Some("a\"bé"));
        assert!(Json::parse("{\"a\":1,}").is_err());
    }

    #[test]
    fn reads_chunked_and_plain_answers() {
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]";
        assert_eq!(parse_response(plain).unwrap(), (200, "[]".to_string()));
        let chunked =
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (404, "{\"a\":1}".to_string())
        );
    }
}
