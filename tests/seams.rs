//! The broker's one-way chain, checked on the source: each module under `src/broker`
//! may use only the modules in the layers below its own (and those of its own group),
//! as `src/broker/mod.rs` documents. A new `use` that points up the chain fails here,
//! naming the file and the line.
//!
//! Reads the source text only (no build of anything else): the paths `crate::broker::x`
//! and `super::x` that reach another top-level broker module, outside comments and unit
//! test modules (a test may build whatever it needs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The chain, lowest layer first. Modules in one group may use each other (a queue and
/// its consumers, a vhost and the helpers that route back through it); every other use
/// goes down the list. `src/broker/mod.rs` (the `Broker`) sits on top and may use all.
const LAYERS: &[&[&str]] = &[
    &["message"],
    &["arguments"],
    &["globals"],
    &["policy"],
    &["deadletter"],
    &["memory"],
    &["stream"],
    &["records"],
    &["queue", "consumer", "stream_queue", "replica"],
    &["exchange"],
    &["tracer"],
    &["persist"],
    &["vhost", "delayed", "events"],
    &["definitions"],
    &["vhosts"],
    &["disk"],
    &["timed"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|group| group.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its unit test module (by this
/// crate's habit the last item, after `#[cfg(test)]`).
fn code_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|l| l.trim_start().starts_with("mod ") && l.contains('{')) {
                break;
            }
        }
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push((i + 1, code.to_owned()));
    }
    out
}

/// The top-level broker modules a line names: `crate::broker::x`, or `super::x` (also
/// `super::{x, y::z}`) where that `super` chain reaches `src/broker` itself.
fn named_modules(line: &str, depth: usize, known: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut take = |rest: &str| {
        let rest = rest.trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                let head = item.trim().split("::").next().unwrap_or("").trim();
                if known.contains(head) {
                    found.push(head.to_owned());
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if known.contains(&head) {
                found.push(head);
            }
        }
    };
    for (at, _) in line.match_indices("crate::broker::") {
        take(&line[at + "crate::broker::".len()..]);
    }
    let reach = "super::".repeat(depth);
    let mut from = 0;
    while let Some(at) = line[from..].find(&reach) {
        let start = from + at;
        let end = start + reach.len();
        // Exactly `depth` supers: not part of a longer chain on either side.
        let longer_before = line[..start].ends_with("super::");
        let longer_after = line[end..].starts_with("super::");
        if !longer_before && !longer_after {
            take(&line[end..]);
        }
        from = end;
    }
    found
}

#[test]
fn broker_modules_use_only_the_layers_below_them() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/broker");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let known: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .filter(|name| name != "mod")
        .collect();
    for module in &known {
        assert!(
            layer_of(module).is_some(),
            "src/broker/{module}: a new broker module needs its place in LAYERS (and in \
             src/broker/mod.rs's description of the chain)"
        );
    }
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if parts.len() == 1 && parts[0] == "mod.rs" {
            continue;
        }
        let name = parts.last().unwrap();
        if name == "tests.rs" || name.starts_with("tests_") {
            continue;
        }
        let module = parts[0].trim_end_matches(".rs").to_owned();
        let own = layer_of(&module).unwrap();
        // How many `super::` lead from this file's module up to src/broker.
        let depth = if name == "mod.rs" {
            parts.len() - 1
        } else {
            parts.len()
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (number, line) in code_lines(&text) {
            for used in named_modules(&line, depth, &known) {
                if used == module {
                    continue;
                }
                let theirs = layer_of(&used).unwrap();
                if theirs > own {
                    wrong.push(format!(
                        "src/broker/{}:{number}: {module} uses {used}, which is above it: {}",
                        rel.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "uses against the broker's chain:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_check_sees_both_kinds_of_path() {
    let known: BTreeSet<String> = ["queue", "vhost", "message"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let names = |line: &str, depth| named_modules(line, depth, &known);
    assert_eq!(names("use crate::broker::vhost::VHost;", 1), ["vhost"]);
    assert_eq!(names("use super::queue::Queue;", 1), ["queue"]);
    assert_eq!(names("use super::queue::Queue;", 2), Vec::<String>::new());
    assert_eq!(names("use super::super::vhost::X;", 2), ["vhost"]);
    assert_eq!(
        names("use super::{message::Message, queue};", 1),
        ["message", "queue"]
    );
    let lines = code_lines(
        "use a; // crate::broker::vhost\n#[cfg(test)]\nmod tests {\nuse crate::broker::vhost;\n}\n",
    );
    assert_eq!(lines.len(), 1);
    assert!(names(&lines[0].1, 1).is_empty());
}
