//! Headers-exchange matching: one binding's arguments, parsed once at bind time, tested
//! against a message's `headers` property. The exchange in `super` calls `parse` on
//! queue.bind / exchange.bind (an `Err` is the full reply text of a 406 channel close) and
//! `matches` for every binding of a headers exchange on each publish. It owns no
//! bindings and no queues, must never panic on any table a client sends, and must never
//! refuse a binding that RabbitMQ accepts.
//!
//! Semantics follow RabbitMQ 3.10-3.12 `rabbit_exchange_type_headers` (`validate_binding`,
//! `headers_match`), checked case by case against RabbitMQ 3.10.8:
//! - `x-match` is `all` (the default when absent), `any`, `all-with-x` or `any-with-x`,
//!   and must be a long string; anything else is refused with 406 PRECONDITION_FAILED;
//! - the `x-match` argument is never a condition; other arguments whose name starts with
//!   "x-" (lower case) are conditions only under the `-with-x` variants;
//! - an argument of type void asks only that the header be present, whatever its value;
//! - any other argument asks for a header of the same name whose value is Erlang-equal
//!   (`==`) to it, with types otherwise ignored: integers of every width and timestamps
//!   compare by value, integers equal floats of exactly the same value, `float` is widened
//!   to double first (so 0.1f32 != 0.1), long strings equal byte arrays with the same bytes,
//!   booleans equal only booleans, decimals only decimals; inside nested tables and arrays
//!   the field types must be identical too;
//! - `all` holds when every condition holds (so a binding with no conditions matches
//!   every message), `any` when at least one does (so no conditions never match); a message
//!   without headers is a message with an empty table.
//!
//! `erlang_equal` and `write_term` recurse into nested tables and arrays; that recursion is
//! bounded because every table that reaches them (binding arguments, message headers) was
//! walked by `codec::fieldscan` first, which refuses nesting deeper than `MAX_DEPTH`.
//!
//! RabbitMQ 3.13+ compares with `=:=` instead, so there 1 no longer equals 1.0; the
//! project's reference is 3.10, whose behaviour is kept here.

use amq_protocol::types::{AMQPValue, FieldTable};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// What one binding argument asks of the message header with the same name.
#[derive(Clone, Debug)]
enum Condition {
    Present,
    Equal(AMQPValue),
}

#[derive(Clone, Debug)]
pub struct HeadersBinding {
    x_match: XMatch,
    /// Only the arguments that take part in matching, so `matches` does no filtering.
    conditions: Vec<(Box<str>, Condition)>,
}

impl HeadersBinding {
    /// Parses binding arguments. The error is the reply text RabbitMQ closes the channel
    /// with (reply code 406), e.g. `PRECONDITION_FAILED - Invalid x-match field value
    /// <<"foo">>; expected all, any, all-with-x, or any-with-x`. It is not truncated:
    /// RabbitMQ cuts any reply text longer than 255 bytes to its first 252 bytes + "...".
    pub fn parse(args: &FieldTable) -> Result<Self, String> {
        let x_match = match args.inner().get("x-match") {
            None => XMatch::All,
            Some(AMQPValue::LongString(s)) => x_match_from(s.as_bytes())?,
            // Never read off the wire (amq-protocol has no short-string field type), but a
            // table built in code may hold one; RabbitMQ would have seen a longstr.
            Some(AMQPValue::ShortString(s)) => x_match_from(s.as_str().as_bytes())?,
            Some(other) => {
                let mut text = b"PRECONDITION_FAILED - Invalid x-match field type ".to_vec();
                text.extend_from_slice(type_atom(other).as_bytes());
                text.extend_from_slice(b" (value ");
                write_term(&mut text, other);
                text.extend_from_slice(b"); expected longstr");
                return Err(into_text(text));
            }
        };
        let with_x = matches!(x_match, XMatch::AllWithX | XMatch::AnyWithX);
        let conditions = args
            .inner()
            .iter()
            .map(|(name, value)| (name.as_str(), value))
            .filter(|(name, _)| *name != "x-match" && (with_x || !name.starts_with("x-")))
            .map(|(name, value)| {
                let condition = match value {
                    AMQPValue::Void => Condition::Present,
                    other => Condition::Equal(other.clone()),
                };
                (Box::from(name), condition)
            })
            .collect();
        Ok(HeadersBinding {
            x_match,
            conditions,
        })
    }

    pub fn matches(&self, headers: Option<&FieldTable>) -> bool {
        let holds = |(name, condition): &(Box<str>, Condition)| {
            let Some(value) = headers.and_then(|h| h.inner().get(&**name)) else {
                return false;
            };
            match condition {
                Condition::Present => true,
                Condition::Equal(wanted) => erlang_equal(wanted, value),
            }
        };
        match self.x_match {
            XMatch::All | XMatch::AllWithX => self.conditions.iter().all(holds),
            XMatch::Any | XMatch::AnyWithX => self.conditions.iter().any(holds),
        }
    }

    #[cfg(test)] // tests look; the broker does not need to
    pub fn x_match(&self) -> XMatch {
        self.x_match
    }
}

fn x_match_from(value: &[u8]) -> Result<XMatch, String> {
    match value {
        b"all" => Ok(XMatch::All),
        b"any" => Ok(XMatch::Any),
        b"all-with-x" => Ok(XMatch::AllWithX),
        b"any-with-x" => Ok(XMatch::AnyWithX),
        other => {
            let mut text = b"PRECONDITION_FAILED - Invalid x-match field value ".to_vec();
            write_binary(&mut text, other);
            text.extend_from_slice(b"; expected all, any, all-with-x, or any-with-x");
            Err(into_text(text))
        }
    }
}

/// RabbitMQ sends the bytes Erlang formatted, which are not always UTF-8 (a value byte of
/// 0xFF is echoed raw); a String cannot carry those, so only that rare case is lossy.
fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A field value as the Erlang term RabbitMQ's table parser makes of it.
enum Term<'a> {
    Int(i128),
    Float(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    Decimal(u8, u32),
    Table(&'a FieldTable),
    Array(&'a [AMQPValue]),
    Undefined,
}

fn term(value: &AMQPValue) -> Term<'_> {
    match value {
        AMQPValue::Boolean(b) => Term::Bool(*b),
        AMQPValue::ShortShortInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::ShortShortUInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::ShortInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::ShortUInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::LongInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::LongUInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::LongLongInt(i) => Term::Int(i128::from(*i)),
        AMQPValue::Timestamp(t) => Term::Int(i128::from(*t)),
        AMQPValue::Float(f) => Term::Float(f64::from(*f)),
        AMQPValue::Double(f) => Term::Float(*f),
        AMQPValue::DecimalValue(d) => Term::Decimal(d.scale, d.value),
        AMQPValue::ShortString(s) => Term::Bytes(s.as_str().as_bytes()),
        AMQPValue::LongString(s) => Term::Bytes(s.as_bytes()),
        AMQPValue::ByteArray(b) => Term::Bytes(b.as_slice()),
        AMQPValue::FieldTable(t) => Term::Table(t),
        AMQPValue::FieldArray(a) => Term::Array(a.as_slice()),
        AMQPValue::Void => Term::Undefined,
    }
}

/// The type atom RabbitMQ tags the value with (`rabbit_binary_parser`).
pub(crate) fn type_atom(value: &AMQPValue) -> &'static str {
    match value {
        AMQPValue::Boolean(_) => "bool",
        AMQPValue::ShortShortInt(_) => "byte",
        AMQPValue::ShortShortUInt(_) => "unsignedbyte",
        AMQPValue::ShortInt(_) => "short",
        AMQPValue::ShortUInt(_) => "unsignedshort",
        AMQPValue::LongInt(_) => "signedint",
        AMQPValue::LongUInt(_) => "unsignedint",
        AMQPValue::LongLongInt(_) => "long",
        AMQPValue::Timestamp(_) => "timestamp",
        AMQPValue::Float(_) => "float",
        AMQPValue::Double(_) => "double",
        AMQPValue::DecimalValue(_) => "decimal",
        AMQPValue::ShortString(_) | AMQPValue::LongString(_) => "longstr",
        AMQPValue::ByteArray(_) => "binary",
        AMQPValue::FieldTable(_) => "table",
        AMQPValue::FieldArray(_) => "array",
        AMQPValue::Void => "void",
    }
}

/// Erlang's `==` on the parsed values: the binding compares values only, not field types.
fn erlang_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    match (term(a), term(b)) {
        (Term::Int(x), Term::Int(y)) => x == y,
        (Term::Float(x), Term::Float(y)) => x == y,
        (Term::Int(i), Term::Float(f)) | (Term::Float(f), Term::Int(i)) => int_equals_float(i, f),
        (Term::Bool(x), Term::Bool(y)) => x == y,
        (Term::Bytes(x), Term::Bytes(y)) => x == y,
        (Term::Decimal(s, v), Term::Decimal(t, w)) => s == t && v == w,
        (Term::Table(x), Term::Table(y)) => {
            x.inner().len() == y.inner().len()
                && x.inner()
                    .iter()
                    .zip(y.inner())
                    .all(|((k, v), (l, w))| k == l && typed_equal(v, w))
        }
        (Term::Array(x), Term::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| typed_equal(v, w))
        }
        // Both are Erlang lists, and the empty ones are the same term `[]`.
        (Term::Table(t), Term::Array(a)) | (Term::Array(a), Term::Table(t)) => {
            t.inner().is_empty() && a.is_empty()
        }
        (Term::Undefined, Term::Undefined) => true,
        _ => false,
    }
}

/// Inside tables and arrays the type atom is part of each element's tuple, so it must match.
fn typed_equal(a: &AMQPValue, b: &AMQPValue) -> bool {
    type_atom(a) == type_atom(b) && erlang_equal(a, b)
}

/// Erlang compares an integer with a float exactly, not after rounding either one.
fn int_equals_float(i: i128, f: f64) -> bool {
    // Below 1e30 (about 2^99), far beyond any field integer, the cast to i128 is exact.
    f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30 && f as i128 == i
}

/// `value` as Erlang's `~tp` prints it (see `write_term`), for refusal texts.
pub(super) fn term_text(value: &AMQPValue) -> String {
    let mut out = Vec::new();
    write_term(&mut out, value);
    String::from_utf8_lossy(&out).into_owned()
}

/// Writes `value` as Erlang's `~tp` prints the parsed term, on one line: RabbitMQ's
/// pretty-printer would break a table or array running past column 80 over several lines,
/// which only matters for an x-match given as a long table or array.
pub(super) fn write_term(out: &mut Vec<u8>, value: &AMQPValue) {
    match term(value) {
        Term::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
        Term::Float(f) => out.extend_from_slice(erlang_float(f).as_bytes()),
        Term::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Term::Bytes(b) => write_binary(out, b),
        Term::Decimal(scale, v) => out.extend_from_slice(format!("{{{scale},{v}}}").as_bytes()),
        Term::Undefined => out.extend_from_slice(b"undefined"),
        Term::Table(t) => {
            out.push(b'[');
            for (i, (name, v)) in t.inner().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                write_binary(out, name.as_str().as_bytes());
                out.push(b',');
                out.extend_from_slice(type_atom(v).as_bytes());
                out.push(b',');
                write_term(out, v);
                out.push(b'}');
            }
            out.push(b']');
        }
        Term::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.push(b'{');
                out.extend_from_slice(type_atom(v).as_bytes());
                out.push(b',');
                write_term(out, v);
                out.push(b'}');
            }
            out.push(b']');
        }
    }
}

/// A binary as `~tp` prints it under Erlang's default latin1 printable range: as a quoted
/// string when every byte is printable latin1 (bytes 160-255 are then echoed raw, which is
/// why UTF-8 "é" comes back intact while "日" does not), else as a list of byte values.
pub(super) fn write_binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let printable = |b: u8| matches!(b, 32..=126 | 160..=255 | b'\n' | b'\r' | b'\t' | 0x0B | 0x08 | 0x0C | 0x1B);
    out.extend_from_slice(b"<<");
    if bytes.iter().all(|&b| printable(b)) {
        if !bytes.is_empty() {
            out.push(b'"');
            for &b in bytes {
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    0x0B => out.extend_from_slice(b"\\v"),
                    0x08 => out.extend_from_slice(b"\\b"),
                    0x0C => out.extend_from_slice(b"\\f"),
                    0x1B => out.extend_from_slice(b"\\e"),
                    other => out.push(other),
                }
            }
            out.push(b'"');
        }
    } else {
        let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
        out.extend_from_slice(list.join(",").as_bytes());
    }
    out.extend_from_slice(b">>");
}

/// A float as Erlang prints it: the shortest digits that read back exactly, in plain
/// decimal notation unless scientific notation is strictly shorter ("100.0" but "1.0e3").
fn erlang_float(f: f64) -> String {
    if !f.is_finite() {
        // Erlang has no such floats; RabbitMQ would have failed to parse the frame.
        return format!("{f}");
    }
    // `{:e}` yields the shortest round-trip digits, as "d[.ddd]e[-]x".
    let scientific = format!("{:e}", f.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f.is_sign_negative() { "-" } else { "" };

    let (first, rest) = if digits.is_empty() {
        ("0", "")
    } else {
        digits.split_at(1)
    };
    let rest = if rest.is_empty() { "0" } else { rest };
    let erlang_scientific = format!("{sign}{first}.{rest}e{exponent}");

    let point = exponent + 1;
    let len = digits.len() as i32;
    let decimal = if point <= 0 {
        format!(
            "{sign}0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        )
    } else if point >= len {
        format!("{sign}{digits}{}.0", "0".repeat((point - len) as usize))
    } else {
        let (whole, fraction) = digits.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    };
    if erlang_scientific.len() < decimal.len() {
        erlang_scientific
    } else {
        decimal
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::{ByteArray, DecimalValue, FieldArray, LongString, ShortString};

    fn s(v: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(v))
    }

    fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in entries {
            t.insert(ShortString::from(*k), v.clone());
        }
        t
    }

    fn bind(entries: &[(&str, AMQPValue)]) -> HeadersBinding {
        match HeadersBinding::parse(&table(entries)) {
            Ok(b) => b,
            Err(e) => panic!("refused {entries:?}: {e}"),
        }
    }

    fn refusal(entries: &[(&str, AMQPValue)]) -> String {
        match HeadersBinding::parse(&table(entries)) {
            Ok(b) => panic!("accepted {entries:?} as {b:?}"),
            Err(e) => e,
        }
    }

    fn hits(binding: &[(&str, AMQPValue)], headers: &[(&str, AMQPValue)]) -> bool {
        bind(binding).matches(Some(&table(headers)))
    }

    fn int(i: i32) -> AMQPValue {
        AMQPValue::LongInt(i)
    }

    #[test]
    fn x_match_values_and_default() {
        assert_eq!(bind(&[]).x_match(), XMatch::All);
        assert_eq!(bind(&[("a", int(1))]).x_match(), XMatch::All);
        assert_eq!(bind(&[("x-match", s("all"))]).x_match(), XMatch::All);
        assert_eq!(bind(&[("x-match", s("any"))]).x_match(), XMatch::Any);
        assert_eq!(
            bind(&[("x-match", s("all-with-x"))]).x_match(),
            XMatch::AllWithX
        );
        assert_eq!(
            bind(&[("x-match", s("any-with-x"))]).x_match(),
            XMatch::AnyWithX
        );
        let short = AMQPValue::ShortString(ShortString::from("any"));
        assert_eq!(bind(&[("x-match", short)]).x_match(), XMatch::Any);
    }

    /// Reply texts RabbitMQ 3.10.8 closed the channel with (code 406), verbatim.
    #[test]
    fn invalid_x_match_texts_match_rabbitmq() {
        let value_error = |shown: &str| {
            format!(
                "PRECONDITION_FAILED - Invalid x-match field value {shown}; expected all, any, all-with-x, or any-with-x"
            )
        };
        let type_error = |ty: &str, shown: &str| {
            format!("PRECONDITION_FAILED - Invalid x-match field type {ty} (value {shown}); expected longstr")
        };
        let raw = |b: &[u8]| AMQPValue::LongString(LongString::from(b.to_vec()));
        let rows: Vec<(AMQPValue, String)> = vec![
            (s("foo"), value_error(r#"<<"foo">>"#)),
            (s("ALL"), value_error(r#"<<"ALL">>"#)),
            (s(""), value_error("<<>>")),
            (s("héllo"), value_error(r#"<<"héllo">>"#)),
            (s("a\"b\\c"), value_error(r#"<<"a\"b\\c">>"#)),
            (s("a\nb"), value_error(r#"<<"a\nb">>"#)),
            (raw(b"a\tb\x1b"), value_error(r#"<<"a\tb\e">>"#)),
            (raw(b"\x01\x02"), value_error("<<1,2>>")),
            (raw(b"a\x7f"), value_error("<<97,127>>")),
            (raw(b"a\x80"), value_error("<<97,128>>")),
            (raw(b"\x00"), value_error("<<0>>")),
            (s("日本"), value_error("<<230,151,165,230,156,172>>")),
            (s("é\u{2028}"), value_error("<<195,169,226,128,168>>")),
            (s("#{}"), value_error(r##"<<"#{}">>"##)),
            (int(1), type_error("signedint", "1")),
            (AMQPValue::Boolean(true), type_error("bool", "true")),
            (
                AMQPValue::ByteArray(ByteArray::from(b"all".to_vec())),
                type_error("binary", r#"<<"all">>"#),
            ),
            (AMQPValue::Void, type_error("void", "undefined")),
            (AMQPValue::LongLongInt(5), type_error("long", "5")),
            (AMQPValue::ShortShortInt(5), type_error("byte", "5")),
            (AMQPValue::Double(1.5), type_error("double", "1.5")),
            (
                AMQPValue::Float(0.1),
                type_error("float", "0.10000000149011612"),
            ),
            (
                AMQPValue::DecimalValue(DecimalValue {
                    scale: 1,
                    value: 15,
                }),
                type_error("decimal", "{1,15}"),
            ),
            (
                AMQPValue::FieldTable(table(&[("k", s("v"))])),
                type_error("table", r#"[{<<"k">>,longstr,<<"v">>}]"#),
            ),
            (
                AMQPValue::FieldArray(FieldArray::from(vec![int(1), s("a")])),
                type_error("array", r#"[{signedint,1},{longstr,<<"a">>}]"#),
            ),
        ];
        for (value, expected) in rows {
            assert_eq!(
                refusal(&[("x-match", value.clone()), ("a", int(1))]),
                expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn invalid_utf8_in_x_match_degrades_without_panicking() {
        let text = refusal(&[(
            "x-match",
            AMQPValue::LongString(LongString::from(vec![0xFF, 0xFE])),
        )]);
        assert!(text.starts_with("PRECONDITION_FAILED - Invalid x-match field value <<\""));
    }

    #[test]
    fn floats_print_as_erlang_does() {
        // (value, what RabbitMQ 3.10.8 printed)
        let rows: &[(f64, &str)] = &[
            (100.0, "100.0"),
            (1000.0, "1.0e3"),
            (0.0001, "0.0001"),
            (0.001, "0.001"),
            (1e-5, "1.0e-5"),
            (123456.789, "123456.789"),
            (1e22, "1.0e22"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (0.5, "0.5"),
            (2.5e-7, "2.5e-7"),
            (1e15, "1.0e15"),
            (1e16, "1.0e16"),
            (1.2345e16, "1.2345e16"),
            (12345.0, "12345.0"),
            (123456.0, "123456.0"),
            (1234567.0, "1234567.0"),
            (-1.5, "-1.5"),
            (5e-324, "5.0e-324"),
            (f64::MAX, "1.7976931348623157e308"),
            (0.1 + 0.2, "0.30000000000000004"),
            (f64::from(3.4e38_f32), "3.3999999521443642e38"),
        ];
        for (value, expected) in rows {
            assert_eq!(erlang_float(*value), *expected, "{value:e}");
        }
    }

    #[test]
    fn all_requires_every_condition() {
        let b = [("a", int(1)), ("b", s("x"))];
        assert!(hits(&b, &[("a", int(1)), ("b", s("x"))]));
        assert!(hits(&b, &[("a", int(1)), ("b", s("x")), ("c", int(3))]));
        assert!(!hits(&b, &[("a", int(1))]));
        assert!(!hits(&b, &[("a", int(2)), ("b", s("x"))]));
        assert!(!hits(&b, &[]));
    }

    #[test]
    fn any_requires_one_condition() {
        let b = [("x-match", s("any")), ("a", int(1)), ("b", int(2))];
        assert!(hits(&b, &[("b", int(2))]));
        assert!(hits(&b, &[("a", int(1)), ("b", int(9))]));
        assert!(!hits(&b, &[("b", int(3))]));
        assert!(!hits(&b, &[]));
    }

    #[test]
    fn empty_conditions_all_matches_everything_any_nothing() {
        assert!(bind(&[]).matches(None));
        assert!(bind(&[("x-match", s("all"))]).matches(Some(&table(&[("a", int(1))]))));
        assert!(!bind(&[("x-match", s("any"))]).matches(Some(&table(&[("a", int(1))]))));
        assert!(!bind(&[("x-match", s("any"))]).matches(None));
        assert!(bind(&[("x-match", s("all-with-x"))]).matches(None));
        assert!(!bind(&[("x-match", s("any-with-x"))]).matches(None));
    }

    #[test]
    fn missing_headers_are_an_empty_table() {
        assert!(!bind(&[("a", int(1))]).matches(None));
        assert!(!bind(&[("x-match", s("any")), ("a", AMQPValue::Void)]).matches(None));
        assert!(bind(&[("x-a", int(1))]).matches(None));
    }

    #[test]
    fn x_arguments_ignored_unless_with_x() {
        assert!(hits(&[("x-match", s("all")), ("x-a", int(1))], &[]));
        assert!(!hits(
            &[("x-match", s("any")), ("x-a", int(1))],
            &[("x-a", int(1))]
        ));
        assert!(hits(
            &[("x-match", s("all-with-x")), ("x-a", int(1))],
            &[("x-a", int(1))]
        ));
        assert!(!hits(&[("x-match", s("all-with-x")), ("x-a", int(1))], &[]));
        assert!(hits(
            &[("x-match", s("any-with-x")), ("x-a", int(1)), ("b", int(2))],
            &[("x-a", int(1))]
        ));
        // Only the lower-case prefix is special.
        assert!(!hits(&[("x-match", s("all")), ("X-a", int(1))], &[]));
        assert!(!hits(&[("x-match", s("all")), ("xa", int(1))], &[]));
    }

    #[test]
    fn x_match_is_never_a_condition() {
        let b = [("x-match", s("all-with-x")), ("a", int(1))];
        assert!(hits(&b, &[("a", int(1)), ("x-match", s("zzz"))]));
        assert!(hits(&b, &[("a", int(1))]));
        let any = [("x-match", s("any-with-x"))];
        assert!(!hits(&any, &[("x-match", s("any-with-x"))]));
    }

    #[test]
    fn header_names_are_case_sensitive() {
        assert!(!hits(&[("a", int(1))], &[("A", int(1))]));
    }

    #[test]
    fn void_argument_means_present() {
        assert!(hits(&[("a", AMQPValue::Void)], &[("a", s("zz"))]));
        assert!(hits(&[("a", AMQPValue::Void)], &[("a", AMQPValue::Void)]));
        assert!(!hits(&[("a", AMQPValue::Void)], &[("b", s("zz"))]));
        assert!(hits(
            &[("x-match", s("any")), ("a", AMQPValue::Void), ("b", int(1))],
            &[("a", int(5))]
        ));
        // A void header does not equal a valued argument.
        assert!(!hits(&[("a", int(1))], &[("a", AMQPValue::Void)]));
    }

    /// Each row: binding value, header value, whether RabbitMQ 3.10.8 routed.
    #[test]
    fn value_comparison_matches_rabbitmq() {
        let d = |scale, value| AMQPValue::DecimalValue(DecimalValue { scale, value });
        let rows: Vec<(AMQPValue, AMQPValue, bool)> = vec![
            (int(1), AMQPValue::LongLongInt(1), true),
            (int(1), AMQPValue::ShortShortInt(1), true),
            (int(1), AMQPValue::ShortShortUInt(1), true),
            (int(1), AMQPValue::ShortInt(1), true),
            (int(1), AMQPValue::ShortUInt(1), true),
            (int(1), AMQPValue::LongUInt(1), true),
            (int(1), AMQPValue::Timestamp(1), true),
            (int(1), AMQPValue::Double(1.0), true),
            (int(1), AMQPValue::Float(1.0), true),
            (AMQPValue::Double(1.5), AMQPValue::Float(1.5), true),
            (AMQPValue::Double(0.1), AMQPValue::Float(0.1), false),
            (AMQPValue::Double(-0.0), AMQPValue::Double(0.0), true),
            (int(1), AMQPValue::Boolean(true), false),
            (AMQPValue::Boolean(true), AMQPValue::Boolean(true), true),
            (
                s("v"),
                AMQPValue::ByteArray(ByteArray::from(b"v".to_vec())),
                true,
            ),
            (s("1"), int(1), false),
            (d(1, 15), d(1, 15), true),
            (d(1, 15), AMQPValue::Double(1.5), false),
            (
                AMQPValue::FieldTable(table(&[("k", int(1))])),
                AMQPValue::FieldTable(table(&[("k", AMQPValue::LongLongInt(1))])),
                false,
            ),
            (
                AMQPValue::FieldTable(table(&[("k", int(1)), ("j", s("s"))])),
                AMQPValue::FieldTable(table(&[("k", int(1)), ("j", s("s"))])),
                true,
            ),
            (
                AMQPValue::FieldArray(FieldArray::from(vec![int(1)])),
                AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongLongInt(1)])),
                false,
            ),
            (
                AMQPValue::FieldArray(FieldArray::from(vec![int(1), s("s")])),
                AMQPValue::FieldArray(FieldArray::from(vec![int(1), s("s")])),
                true,
            ),
            (
                AMQPValue::FieldArray(FieldArray::from(vec![int(1)])),
                s("1"),
                false,
            ),
            (
                AMQPValue::FieldTable(FieldTable::default()),
                AMQPValue::FieldArray(FieldArray::default()),
                true,
            ),
            (
                AMQPValue::FieldArray(FieldArray::default()),
                AMQPValue::FieldTable(FieldTable::default()),
                true,
            ),
            (
                AMQPValue::LongLongInt((1 << 53) + 1),
                AMQPValue::Double(9007199254740992.0),
                false,
            ),
        ];
        for (wanted, sent, expected) in rows {
            assert_eq!(
                hits(&[("a", wanted.clone())], &[("a", sent.clone())]),
                expected,
                "{wanted:?} vs {sent:?}"
            );
        }
    }

    #[test]
    fn numeric_equality_edges() {
        assert!(erlang_equal(
            &AMQPValue::Timestamp(u64::MAX),
            &AMQPValue::Timestamp(u64::MAX)
        ));
        assert!(!erlang_equal(
            &AMQPValue::Timestamp(u64::MAX),
            &AMQPValue::LongLongInt(-1)
        ));
        assert!(erlang_equal(
            &AMQPValue::LongLongInt(-7),
            &AMQPValue::ShortShortInt(-7)
        ));
        assert!(!erlang_equal(
            &AMQPValue::Double(f64::NAN),
            &AMQPValue::Double(f64::NAN)
        ));
        assert!(!erlang_equal(
            &AMQPValue::Double(f64::INFINITY),
            &AMQPValue::LongLongInt(i64::MAX)
        ));
        assert!(erlang_equal(
            &AMQPValue::Double(-9.0),
            &AMQPValue::ShortInt(-9)
        ));
        assert!(!erlang_equal(
            &AMQPValue::Double(0.5),
            &AMQPValue::ShortInt(0)
        ));
    }

    #[test]
    fn nested_values_compare_types_too() {
        let nested = |v: AMQPValue| {
            AMQPValue::FieldTable(table(&[(
                "t",
                AMQPValue::FieldArray(FieldArray::from(vec![v])),
            )]))
        };
        assert!(erlang_equal(&nested(s("x")), &nested(s("x"))));
        assert!(!erlang_equal(
            &nested(s("x")),
            &nested(AMQPValue::ByteArray(ByteArray::from(b"x".to_vec())))
        ));
        assert!(!erlang_equal(
            &nested(AMQPValue::Float(1.5)),
            &nested(AMQPValue::Double(1.5))
        ));
        assert!(!erlang_equal(
            &AMQPValue::FieldTable(table(&[("a", int(1))])),
            &AMQPValue::FieldTable(table(&[("a", int(1)), ("b", int(2))]))
        ));
    }
}
