//! What `warren ctl` prints, in rabbitmqctl's shapes: the informational line ("Listing
//! queues for vhost / ..."), then a tab-separated table with a header line, or with
//! `--formatter json` a JSON array of objects, one per line, as rabbitmqctl writes it.
//!
//! Commands build rows of JSON values; this module alone decides how a value reads in a
//! table cell (rabbitmqctl's Erlang-flavoured `[{"x-max-length",5}]` for arguments,
//! `[administrator]` for tags). It writes to stdout only; errors go through `CtlError`.

use super::args::{Args, Format};
use serde_json::Value;
use std::io::Write;

/// How a cell value is rendered in a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cell {
    /// Strings bare, numbers and booleans as JSON, null empty.
    Plain,
    /// An AMQP table (queue arguments): `[{"key",value}, ...]`; JSON: `[[key,type,value]]`.
    Arguments,
    /// A list of words (user tags): `[a, b]`.
    Words,
}

/// The printer for one command.
pub(crate) struct Out<'a> {
    args: &'a Args,
}

impl<'a> Out<'a> {
    pub(crate) fn new(args: &'a Args) -> Self {
        Out { args }
    }

    /// rabbitmqctl's "Doing X ..." line: not with -q/-s nor with the JSON formatter.
    pub(crate) fn info(&self, line: &str) {
        if !self.args.quiet && self.args.format == Format::Table {
            println!("{line}");
        }
    }

    /// A line that is the command's result (e.g. "Queue was successfully deleted ...").
    pub(crate) fn result(&self, line: &str) {
        if !self.args.quiet {
            println!("{line}");
        }
    }

    /// A table: `columns` with their renderings, `rows` of values in column order.
    /// rabbitmqctl prints no header over an empty table.
    pub(crate) fn table(&self, columns: &[(String, Cell)], rows: &[Vec<Value>]) {
        let mut text = String::new();
        match self.args.format {
            Format::Json => {
                text.push_str("[\n");
                for (i, row) in rows.iter().enumerate() {
                    // Written by hand: keys stay in column order, as rabbitmqctl's.
                    let fields: Vec<String> = columns
                        .iter()
                        .zip(row)
                        .map(|((name, cell), value)| {
                            format!(
                                "{}:{}",
                                Value::from(name.as_str()),
                                json_value(*cell, value)
                            )
                        })
                        .collect();
                    if i > 0 {
                        text.push(',');
                    }
                    text.push('{');
                    text.push_str(&fields.join(","));
                    text.push_str("}\n");
                }
                text.push_str("]\n");
            }
            Format::Table => {
                if rows.is_empty() {
                    return;
                }
                if !self.args.no_headers {
                    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
                    text.push_str(&names.join("\t"));
                    text.push('\n');
                }
                for row in rows {
                    let cells: Vec<String> = columns
                        .iter()
                        .zip(row)
                        .map(|((_, cell), value)| table_cell(*cell, value))
                        .collect();
                    text.push_str(&cells.join("\t"));
                    text.push('\n');
                }
            }
        }
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

/// A value as a table cell.
pub(crate) fn table_cell(cell: Cell, value: &Value) -> String {
    match (cell, value) {
        (_, Value::Null) => match cell {
            Cell::Plain => String::new(),
            _ => "[]".to_owned(),
        },
        (Cell::Plain, Value::String(s)) => s.clone(),
        (Cell::Plain, other) => other.to_string(),
        (Cell::Arguments, Value::Object(map)) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{{{},{}}}", Value::String(k.clone()), v))
                .collect();
            format!("[{}]", items.join(","))
        }
        (Cell::Words, Value::Array(items)) => {
            let words: Vec<String> = items.iter().map(|w| table_cell(Cell::Plain, w)).collect();
            format!("[{}]", words.join(", "))
        }
        // Tags as the older comma-separated string.
        (Cell::Words, Value::String(s)) => {
            let words: Vec<&str> = s.split(',').filter(|w| !w.is_empty()).collect();
            format!("[{}]", words.join(", "))
        }
        (_, other) => other.to_string(),
    }
}

/// A value in `--formatter json`, shaped as rabbitmqctl prints it.
fn json_value(cell: Cell, value: &Value) -> Value {
    match (cell, value) {
        (Cell::Arguments, Value::Object(map)) => Value::Array(
            map.iter()
                .map(|(k, v)| {
                    Value::from(vec![
                        Value::from(k.clone()),
                        Value::from(amqp_type(v)),
                        v.clone(),
                    ])
                })
                .collect(),
        ),
        (Cell::Arguments, Value::Null) | (Cell::Words, Value::Null) => Value::Array(Vec::new()),
        (Cell::Words, Value::String(s)) => Value::Array(
            s.split(',')
                .filter(|w| !w.is_empty())
                .map(|w| Value::from(w.to_owned()))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The AMQP field type RabbitMQ names for a JSON value in an arguments table.
fn amqp_type(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "longstr",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "double",
        Value::Number(_) => "long",
        Value::Array(_) => "array",
        Value::Object(_) => "table",
        Value::Null => "void",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_read_as_rabbitmqctl_prints_them() {
        assert_eq!(table_cell(Cell::Plain, &json!("q1")), "q1");
        assert_eq!(table_cell(Cell::Plain, &json!(5)), "5");
        assert_eq!(table_cell(Cell::Plain, &json!(false)), "false");
        assert_eq!(table_cell(Cell::Plain, &Value::Null), "");
        assert_eq!(table_cell(Cell::Arguments, &json!({})), "[]");
        assert_eq!(
            table_cell(Cell::Arguments, &json!({"x-max-length": 5})),
            r#"[{"x-max-length",5}]"#
        );
        assert_eq!(
            table_cell(Cell::Words, &json!(["management", "monitoring"])),
            "[management, monitoring]"
        );
        assert_eq!(
            table_cell(Cell::Words, &json!("administrator")),
            "[administrator]"
        );
        assert_eq!(table_cell(Cell::Words, &json!([])), "[]");
    }

    #[test]
    fn json_arguments_carry_their_amqp_type() {
        assert_eq!(
            json_value(
                Cell::Arguments,
                &json!({"x-max-length": 5, "x-dead-letter-exchange": "dlx"})
            ),
            json!([
                ["x-dead-letter-exchange", "longstr", "dlx"],
                ["x-max-length", "long", 5]
            ])
        );
        assert_eq!(json_value(Cell::Words, &json!("a,b")), json!(["a", "b"]));
    }
}
