//! Elections as the nodes' logs tell them, for when the management API does not show a
//! quorum queue's leader: openraft logs (info) `vote is changing from ... to
//! T<term>-N<node>:committed` on every node that learns of an established leader (the
//! winner first). One Raft group carries every queue in phase 1, so its leader is every
//! quorum queue's leader. Times are the log's RFC 3339 UTC stamps, compared as text.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Established leaders by term: (node id, the earliest stamp any log gives it).
pub fn committed_terms(logs: &[PathBuf]) -> BTreeMap<u64, (u64, String)> {
    let mut terms: BTreeMap<u64, (u64, String)> = BTreeMap::new();
    for path in logs {
        let Ok(text) = std::fs::read(path) else {
            continue;
        };
        for line in String::from_utf8_lossy(&text).lines() {
            if let Some((stamp, term, node)) = parse(line) {
                let e = terms.entry(term).or_insert((node, stamp.clone()));
                if stamp < e.1 {
                    *e = (node, stamp);
                }
            }
        }
    }
    terms
}

/// The leader with the highest term seen so far (its node id, 1-based).
pub fn leader(logs: &[PathBuf]) -> Option<u64> {
    committed_terms(logs).values().next_back().map(|(n, _)| *n)
}

/// Leaders established at `from` <= stamp < `to`.
pub fn elections(terms: &BTreeMap<u64, (u64, String)>, from: &str, to: &str) -> usize {
    terms
        .values()
        .filter(|(_, at)| at.as_str() >= from && at.as_str() < to)
        .count()
}

/// (stamp, term, node) of a `vote is changing from .. to T5-N2:committed` line.
fn parse(line: &str) -> Option<(String, u64, u64)> {
    let clean = strip_ansi(line);
    let rest = clean.split("vote is changing from ").nth(1)?;
    let to = rest.split(" to T").nth(1)?;
    let (term, rest) = to.split_once("-N")?;
    let (node, rest) = rest.split_once(':')?;
    if !rest.starts_with("committed") {
        return None;
    }
    let stamp = clean.split_whitespace().next()?.to_string();
    Some((stamp, term.parse().ok()?, node.parse().ok()?))
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Now as the logs stamp it: `2026-12-06T01:31:16.319539Z`.
pub fn stamp_now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = t.as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        t.subsec_micros()
    )
}

/// Days since 1970-01-01 to (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_established_leaders() {
        let line = "\u{1b}[2m2026-12-06T01:28:55.577230Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mopenraft::engine::handler::vote_handler\u{1b}[0m\u{1b}[2m:\u{1b}[0m vote is changing from T20-N2:uncommitted to T20-N2:committed";
        assert_eq!(
            parse(line),
            Some(("2026-12-06T01:28:55.577230Z".to_string(), 20, 2))
        );
        assert_eq!(
            parse("2026-12-06T01:28:53.320928Z  INFO x: vote is changing from T18-N1:committed to T19-N2:uncommitted"),
            None
        );
        let dir = std::env::temp_dir().join(format!("raftlog-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.log");
        let b = dir.join("b.log");
        std::fs::write(&a, "2026-12-06T01:00:02.000000Z INFO x: vote is changing from T1-N1:uncommitted to T2-N3:committed\n").unwrap();
        std::fs::write(&b, "2026-12-06T01:00:01.000000Z INFO x: vote is changing from None to T2-N3:committed\n2026-12-06T01:00:09.000000Z INFO x: vote is changing from T2-N3:committed to T3-N1:committed\n").unwrap();
        let t = committed_terms(&[a.clone(), b.clone()]);
        assert_eq!(
            t.get(&2),
            Some(&(3, "2026-12-06T01:00:01.000000Z".to_string()))
        );
        assert_eq!(leader(&[a, b]), Some(1));
        assert_eq!(
            elections(&t, "2026-12-06T01:00:00", "2026-12-06T01:00:05"),
            1
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn stamps_like_the_logs() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
        let s = stamp_now();
        assert_eq!(s.len(), "2026-12-06T01:31:16.319539Z".len());
    }
}
