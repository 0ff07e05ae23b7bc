//! Prometheus's text exposition format (version 0.0.4), as rabbitmq_prometheus writes
//! it: per family a `# TYPE` line, then `# HELP`, then its samples, each with its labels.
//!
//! Label values are escaped as the format says (backslash, double quote, newline), so a
//! queue or vhost name a client chose cannot break a line or forge a sample.

use std::fmt::Write;

/// A metric family's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// rabbitmq_prometheus leaves info metrics and alarms untyped.
    Untyped,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Untyped => "untyped",
        }
    }
}

/// The text of one scrape, written family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Starts a family: its TYPE and HELP lines. Samples written next belong to it.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) -> &mut Self {
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.name());
        let _ = writeln!(self.out, "# HELP {name} {help}");
        self
    }

    /// One sample without labels.
    pub fn value(&mut self, name: &str, value: impl Into<f64>) -> &mut Self {
        self.sample(name, &[], value)
    }

    /// One sample with labels, in the order given.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl Into<f64>,
    ) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                escape_into(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_number(&mut self.out, value.into());
        self.out.push('\n');
        self
    }

    pub fn finish(self) -> String {
        self.out
    }
}

fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Integers without a fraction (counters read naturally), NaN and infinities as the
/// format spells them.
fn write_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_samples_in_the_text_format() {
        let mut e = Exposition::default();
        e.family("rabbitmq_queues", Kind::Gauge, "Queues available")
            .value("rabbitmq_queues", 3u32);
        e.family("rabbitmq_queue_messages", Kind::Gauge, "Messages")
            .sample(
                "rabbitmq_queue_messages",
                &[("vhost", "/"), ("queue", "a\"b\\c\nd")],
                1.5,
            )
            .sample(
                "rabbitmq_queue_messages",
                &[("vhost", "/"), ("queue", "x")],
                f64::NAN,
            );
        assert_eq!(
            e.finish(),
            "# TYPE rabbitmq_queues gauge\n# HELP rabbitmq_queues Queues available\nrabbitmq_queues 3\n\
             # TYPE rabbitmq_queue_messages gauge\n# HELP rabbitmq_queue_messages Messages\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             rabbitmq_queue_messages{vhost=\"/\",queue=\"x\"} NaN\n"
        );
    }
}
