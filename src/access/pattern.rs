//! A permission pattern: one of the regular expressions RabbitMQ keeps per user and vhost
//! (configure, write, read) or per user, vhost and topic exchange (write, read).
//!
//! Compiled once, when the permission is set or restored, never on a check. Used by the
//! permission table (`permissions`) and the channels' caches; it never touches a lock.
//!
//! RabbitMQ matches with Erlang's `re` (PCRE without UTF-8 mode) and looks for a match
//! anywhere in the name (`re:run`, unanchored); an empty pattern means `^$`, which no real
//! name matches. Here: `regex::bytes` with Unicode off, so `.` and the classes work on
//! bytes as PCRE's do. PCRE features the `regex` crate lacks (look-around,
//! back-references) are refused when set, where RabbitMQ would accept them.

use regex::bytes::{Regex, RegexBuilder};
use std::fmt;

/// A compiled permission pattern and the text it was set with.
#[derive(Clone)]
pub(crate) struct Pattern {
    source: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    /// `.*`: matches every name without running a regex (the common grant).
    Everything,
    /// The empty pattern: RabbitMQ reads it as `^$`.
    EmptyOnly,
    /// A topic pattern whose expansion does not compile.
    Nothing,
    Regex(Regex),
}

/// A pattern that does not compile; its text is RabbitMQ's log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPattern(pub String);

impl fmt::Display for InvalidPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "regular expression '{}' is invalid", self.0)
    }
}

impl Pattern {
    pub(crate) fn compile(source: &str) -> Result<Pattern, InvalidPattern> {
        let matcher = match source {
            ".*" => Matcher::Everything,
            "" => Matcher::EmptyOnly,
            _ => Matcher::Regex(
                RegexBuilder::new(&literal_braces(source))
                    .unicode(false)
                    .build()
                    .map_err(|_| InvalidPattern(source.to_owned()))?,
            ),
        };
        Ok(Pattern {
            source: source.to_owned(),
            matcher,
        })
    }

    /// A topic permission pattern with `{username}` and `{vhost}` replaced, as RabbitMQ
    /// expands them (textually, without escaping) before matching a routing key. The
    /// unexpanded text must compile (checked when set); if the expansion does not, the
    /// pattern matches nothing.
    pub(crate) fn compile_expanded(source: &str, user: &str, vhost: &str) -> Pattern {
        let expanded = source.replace("{username}", user).replace("{vhost}", vhost);
        Pattern::compile(&expanded).unwrap_or(Pattern {
            source: expanded,
            matcher: Matcher::Nothing,
        })
    }

    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match &self.matcher {
            Matcher::Everything => true,
            Matcher::EmptyOnly => name.is_empty(),
            Matcher::Nothing => false,
            Matcher::Regex(re) => re.is_match(name.as_bytes()),
        }
    }
}

/// PCRE reads a `{` that does not open a quantifier (`{n}`, `{n,}`, `{n,m}`) as a
/// literal brace, so RabbitMQ accepts `^{username}-` as a pattern; the `regex` crate would
/// refuse it. Such braces are escaped; classes and escapes are copied as they are.
fn literal_braces(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = String::with_capacity(source.len() + 4);
    let mut in_class = false;
    let mut chars = source.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
                continue;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class && !opens_quantifier(&bytes[i + 1..]) => {
                out.push_str("\\{");
                continue;
            }
            '}' if !in_class => {
                // Balanced quantifiers were copied whole below; a lone one is literal.
                out.push_str("\\}");
                continue;
            }
            _ => {}
        }
        out.push(c);
        if c == '{' && !in_class {
            // A quantifier: copy it through its closing brace.
            for (_, q) in chars.by_ref() {
                out.push(q);
                if q == '}' {
                    break;
                }
            }
        }
    }
    out
}

/// Whether `rest` (after a `{`) is `n}`, `n,}` or `n,m}` with decimal n and m.
fn opens_quantifier(rest: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = digits(rest);
    if n == 0 {
        return false;
    }
    match rest.get(n) {
        Some(b'}') => true,
        Some(b',') => {
            let m = digits(&rest[n + 1..]);
            rest.get(n + 1 + m) == Some(&b'}')
        }
        _ => false,
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rabbitmq_does() {
        let all = Pattern::compile(".*").unwrap();
        assert!(all.matches("") && all.matches("anything"));
        let none = Pattern::compile("").unwrap();
        assert!(none.matches("") && !none.matches("q"));
        // Unanchored: a pattern matches anywhere in the name.
        let gen = Pattern::compile("^amq\\.gen.*$").unwrap();
        assert!(gen.matches("amq.gen-abc") && !gen.matches("x.amq.gen"));
        let part = Pattern::compile("ord").unwrap();
        assert!(part.matches("orders") && part.matches("reorder") && !part.matches("o"));
        let alt = Pattern::compile("^(a|b)$").unwrap();
        assert!(alt.matches("a") && !alt.matches("ab"));
        // Bytes, not characters, as PCRE without UTF-8 mode.
        let two = Pattern::compile("^..$").unwrap();
        assert!(two.matches("é"));
        let accented = Pattern::compile("^café\\.").unwrap();
        assert!(accented.matches("café.q") && !accented.matches("cafe.q"));
        // Braces that open no quantifier are literal, as in PCRE.
        let braces = Pattern::compile("^{username}-w").unwrap();
        assert!(braces.matches("{username}-w") && !braces.matches("u-w"));
        let counted = Pattern::compile("^a{2}$").unwrap();
        assert!(counted.matches("aa") && !counted.matches("a{2}"));
        assert!(Pattern::compile("^a{1,2}[{}]x}$").unwrap().matches("a{x}"));
        assert!(Pattern::compile("\\{").unwrap().matches("{"));
        assert_eq!(
            Pattern::compile("(").unwrap_err().to_string(),
            "regular expression '(' is invalid"
        );
    }

    #[test]
    fn topic_patterns_expand_user_and_vhost() {
        let p = Pattern::compile_expanded("^{username}\\.{vhost}\\.", "u1", "v1");
        assert_eq!(p.source(), "^u1\\.v1\\.");
        assert!(p.matches("u1.v1.x") && !p.matches("u2.v1.x"));
        // A user name that breaks the expanded pattern: nothing matches.
        let broken = Pattern::compile_expanded("^{username}", "a(", "/");
        assert!(!broken.matches("a(") && !broken.matches(""));
    }
}
