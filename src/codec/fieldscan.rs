//! The gate in front of every recursive parser of field tables: an iterative walk over
//! the raw bytes of a field table (or of everything that carries one: a method payload, a
//! content header's property list) that checks every type byte and every length against
//! the bytes actually there, and refuses nesting deeper than `MAX_DEPTH`.
//!
//! amq-protocol's parsers (parse_class, parse_properties, parse_field_table) recurse once
//! per nested table or array, so a client that nests a few thousand arrays overflows a
//! runtime worker's stack and aborts the process. The codec, the AMQPLAIN reader and
//! `Message::decode_properties` call this walk first and hand bytes to those parsers only
//! when it passes. It allocates nothing, never recurses and never panics; it accepts the
//! same shapes amq-protocol does (RabbitMQ's field types) except for the depth bound, and
//! does not check UTF-8 (the parsers that follow do where they need it).

/// How many tables and arrays may nest, the outermost table counting as one.
///
/// RabbitMQ clients send 100 levels at most (RabbitMQ itself has no bound); the limit
/// also keeps every value the broker stores within what the definitions file can read
/// back: serde_json refuses JSON nested 128 deep, and an argument table sits 3 levels
/// down in that file (document, `queues` list, queue object), so 120 leaves a margin.
/// Our own recursive code over field values (headers matching, x-death, JSON
/// conversions) is then bounded by 120 frames too.
pub const MAX_DEPTH: usize = 120;

/// Why bytes were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// A length or field runs past the end of its container.
    Truncated,
    /// A field type byte amq-protocol (and RabbitMQ) do not know.
    UnknownType(u8),
    /// Tables and arrays nest deeper than `MAX_DEPTH`.
    TooDeep,
    /// Bytes left over after the last field.
    Trailing,
}

fn u32_at(bytes: &[u8], pos: usize) -> Result<usize, Invalid> {
    match bytes.get(pos..pos.checked_add(4).ok_or(Invalid::Truncated)?) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d]) as usize),
        _ => Err(Invalid::Truncated),
    }
}

/// The end of a length-prefixed block starting at `pos`, checked against `limit`.
fn block_end(bytes: &[u8], pos: usize, limit: usize) -> Result<usize, Invalid> {
    let len = u32_at(bytes, pos)?;
    let end = (pos + 4).checked_add(len).ok_or(Invalid::Truncated)?;
    if end > limit {
        return Err(Invalid::Truncated);
    }
    Ok(end)
}

/// Size of a value of a fixed-size type (everything but strings, arrays and tables).
fn fixed_size(kind: u8) -> Option<usize> {
    Some(match kind {
        b't' | b'b' | b'B' => 1,
        b's' | b'U' | b'u' => 2,
        b'I' | b'i' | b'f' => 4,
        b'D' => 5,
        b'L' | b'l' | b'd' | b'T' => 8,
        b'V' => 0,
        _ => return None,
    })
}

/// Walks the field table whose 4-byte length starts at `pos`; returns where it ends.
///
/// The walk keeps the end of each open container in a fixed array instead of recursing:
/// at most `MAX_DEPTH` entries, on the caller's stack, never on the heap.
pub fn table_end(bytes: &[u8], pos: usize) -> Result<usize, Invalid> {
    // (end offset, is a table) of every open container, outermost first.
    let mut open = [(0usize, false); MAX_DEPTH];
    let mut depth = 1;
    let outer_end = block_end(bytes, pos, bytes.len())?;
    open[0] = (outer_end, true);
    let mut at = pos + 4;
    loop {
        let (end, is_table) = open[depth - 1];
        if at == end {
            depth -= 1;
            if depth == 0 {
                return Ok(outer_end);
            }
            continue;
        }
        if is_table {
            // A short-string key.
            let key_len = *bytes.get(at).ok_or(Invalid::Truncated)? as usize;
            at += 1 + key_len;
            if at >= end {
                return Err(Invalid::Truncated);
            }
        }
        let kind = *bytes
            .get(at)
            .filter(|_| at < end)
            .ok_or(Invalid::Truncated)?;
        at += 1;
        match kind {
            b'A' | b'F' => {
                let inner_end = block_end(bytes, at, end)?;
                if depth == MAX_DEPTH {
                    return Err(Invalid::TooDeep);
                }
                open[depth] = (inner_end, kind == b'F');
                depth += 1;
                at += 4;
            }
            b'S' | b'x' => at = block_end(bytes, at, end)?,
            other => {
                let size = fixed_size(other).ok_or(Invalid::UnknownType(other))?;
                at += size;
                if at > end {
                    return Err(Invalid::Truncated);
                }
            }
        }
    }
}

/// Where the field value whose type byte is at `at` ends, at most at `limit`. Nested
/// tables and arrays are skipped whole, not walked: for bytes a check above accepted.
pub fn value_end(bytes: &[u8], at: usize, limit: usize) -> Result<usize, Invalid> {
    let kind = *bytes
        .get(at)
        .filter(|_| at < limit)
        .ok_or(Invalid::Truncated)?;
    match kind {
        b'A' | b'F' | b'S' | b'x' => block_end(bytes, at + 1, limit),
        other => {
            let end = at + 1 + fixed_size(other).ok_or(Invalid::UnknownType(other))?;
            match end <= limit {
                true => Ok(end),
                false => Err(Invalid::Truncated),
            }
        }
    }
}

/// Checks a whole field table (4-byte length first) with nothing after it.
pub fn check_table(bytes: &[u8]) -> Result<(), Invalid> {
    match table_end(bytes, 0)? {
        end if end == bytes.len() => Ok(()),
        _ => Err(Invalid::Trailing),
    }
}

/// Checks a basic content header's property flags and list: every field present is whole,
/// the headers table is well formed and shallow enough, and nothing follows the list
/// (RabbitMQ closes the connection for any of these, as it fails to decode them).
pub fn check_properties(props: &[u8]) -> Result<(), Invalid> {
    let flags = match props {
        [a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => return Err(Invalid::Truncated),
    };
    let mut at = 2;
    // Bits 15 to 2, in list order: content-type, content-encoding, headers, delivery-mode,
    // priority, correlation-id, reply-to, expiration, message-id, timestamp, type,
    // user-id, app-id, cluster-id.
    for bit in (2..16).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        at = match bit {
            13 => table_end(props, at)?,
            12 | 11 => at + 1,
            6 => at + 8,
            _ => at + 1 + *props.get(at).ok_or(Invalid::Truncated)? as usize,
        };
        if at > props.len() {
            return Err(Invalid::Truncated);
        }
    }
    if at != props.len() {
        return Err(Invalid::Trailing);
    }
    Ok(())
}

/// The fields a method's arguments start with, up to its last field table.
#[derive(Clone, Copy)]
enum Field {
    Octet,
    Short,
    ShortStr,
    Table,
}

/// The argument layout of every method that carries a field table, up to that table
/// (amq-protocol parses any method in either direction, so connection.start counts too).
fn layout(class_id: u16, method_id: u16) -> &'static [Field] {
    use Field::*;
    match (class_id, method_id) {
        (10, 10) => &[Octet, Octet, Table],
        (10, 11) => &[Table],
        (40, 10) => &[Short, ShortStr, ShortStr, Octet, Table],
        (40, 30) | (40, 40) | (50, 20) => &[Short, ShortStr, ShortStr, ShortStr, Octet, Table],
        (50, 10) => &[Short, ShortStr, Octet, Table],
        (50, 50) => &[Short, ShortStr, ShortStr, ShortStr, Table],
        (60, 20) => &[Short, ShortStr, ShortStr, Octet, Table],
        _ => &[],
    }
}

/// Checks the field tables of a method payload (class and method ids first) before a
/// recursive parser sees it. Fields after the last table are left to that parser, which
/// checks them without recursion (start-ok's AMQPLAIN response is a table too, checked
/// by the handshake before it is read).
pub fn check_method(payload: &[u8]) -> Result<(), Invalid> {
    let (class_id, method_id) = match payload {
        [a, b, c, d, ..] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
        _ => return Err(Invalid::Truncated),
    };
    let mut at = 4;
    for field in layout(class_id, method_id) {
        at = match field {
            Field::Octet => at + 1,
            Field::Short => at + 2,
            Field::ShortStr => at + 1 + *payload.get(at).ok_or(Invalid::Truncated)? as usize,
            Field::Table => table_end(payload, at)?,
        };
        if at > payload.len() {
            return Err(Invalid::Truncated);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
