//! `warren ctl`'s command line, read the way rabbitmqctl reads its own: options may come
//! before or after the command and its arguments, `--name value` or `--name=value`.
//!
//! Called once by `ctl::run`; it only parses (no I/O), and an unknown option is a usage
//! error (exit 64), never silently taken as an argument.

use super::{CtlError, EX_USAGE};
use std::time::Duration;

/// Output shape: rabbitmqctl's tab-separated table or its `--formatter json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Everything the command line said.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) url: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) vhost: String,
    /// `-q`: no "Listing ..." / "Adding ..." lines.
    pub(crate) quiet: bool,
    /// `-s` or `--no-table-headers`: no column header line either.
    pub(crate) no_headers: bool,
    pub(crate) format: Format,
    /// Per request; await_startup's overall wait (rabbitmqctl's `--timeout`).
    pub(crate) timeout: Option<Duration>,
    pub(crate) priority: i64,
    pub(crate) apply_to: String,
    pub(crate) if_empty: bool,
    pub(crate) if_unused: bool,
    pub(crate) command: String,
    pub(crate) positional: Vec<String>,
}

/// The usage text `warren ctl help` and usage errors print.
pub(crate) const USAGE: &str = "\
usage: warren ctl [--url URL] [--user USER] [--password PASSWORD] [-p VHOST]
                  [-q|--quiet] [-s|--silent] [--no-table-headers] [--formatter json]
                  [-t|--timeout SECONDS] <command> [arguments]

Talks to warren's management API (default http://localhost:15672, guest/guest).
Commands, as rabbitmqctl's:
  list_queues [column ...]        list_exchanges [column ...]
  list_bindings [column ...]      list_connections [column ...]
  list_channels [column ...]      list_consumers [column ...]
  list_users  list_vhosts [column ...]  list_permissions  list_policies
  add_user USER PASSWORD          delete_user USER
  change_password USER PASSWORD   set_user_tags USER [TAG ...]
  add_vhost VHOST                 delete_vhost VHOST
  set_permissions USER CONF WRITE READ    clear_permissions USER
  set_policy [--priority N] [--apply-to queues|exchanges|all] NAME PATTERN DEFINITION
  clear_policy NAME               purge_queue QUEUE
  delete_queue QUEUE [--if-empty|-e] [--if-unused|-u]
  close_connection NAME REASON
  export_definitions FILE|-       import_definitions FILE|-
  status                          await_startup [--timeout SECONDS]
  cluster_status
warren's own:
  clock show                      clock advance DURATION (250ms, 10s, 90m, 1h30m, 2d)
  clock set DATE (2027-01-01T00:00:00Z or Unix ms; a manual clock only: --clock manual)
";

impl Args {
    pub(crate) fn parse(argv: &[String]) -> Result<Args, CtlError> {
        let mut args = Args {
            url: "http://localhost:15672".to_owned(),
            user: "guest".to_owned(),
            password: "guest".to_owned(),
            vhost: "/".to_owned(),
            quiet: false,
            no_headers: false,
            format: Format::Table,
            timeout: None,
            priority: 0,
            apply_to: "all".to_owned(),
            if_empty: false,
            if_unused: false,
            command: String::new(),
            positional: Vec::new(),
        };
        let mut words = Vec::new();
        let mut it = argv.iter();
        let mut only_words = false;
        while let Some(arg) = it.next() {
            if only_words || !arg.starts_with('-') || arg == "-" {
                words.push(arg.clone());
                continue;
            }
            if arg == "--" {
                only_words = true;
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || -> Result<String, CtlError> {
                match &inline {
                    Some(v) => Ok(v.clone()),
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| usage(format!("option {name} needs a value"))),
                }
            };
            match name {
                "--url" => args.url = value()?,
                "--user" | "--username" => args.user = value()?,
                "--password" => args.password = value()?,
                "-p" | "--vhost" => args.vhost = value()?,
                "-q" | "--quiet" => args.quiet = true,
                "-s" | "--silent" => {
                    args.quiet = true;
                    args.no_headers = true;
                }
                "--no-table-headers" => args.no_headers = true,
                "--formatter" => {
                    args.format = match value()?.as_str() {
                        "json" => Format::Json,
                        "table" | "tsv" => Format::Table,
                        other => return Err(usage(format!("unsupported formatter {other}"))),
                    }
                }
                "-t" | "--timeout" => {
                    let v = value()?;
                    let secs: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0)
                        .ok_or_else(|| usage(format!("--timeout {v}: not a number of seconds")))?;
                    args.timeout = Some(Duration::from_secs_f64(secs));
                }
                "--priority" => {
                    let v = value()?;
                    args.priority = v
                        .parse()
                        .map_err(|_| usage(format!("--priority {v}: not an integer")))?;
                }
                "--apply-to" => args.apply_to = value()?,
                "-e" | "--if-empty" => args.if_empty = true,
                "-u" | "--if-unused" => args.if_unused = true,
                // rabbitmqctl's node options mean nothing over HTTP; accepted so scripts
                // written for it run.
                "-n" | "--node" => {
                    value()?;
                }
                "-l" | "--longnames" => {}
                _ => return Err(usage(format!("unknown option {arg}"))),
            }
        }
        let mut words = words.into_iter();
        args.command = words.next().unwrap_or_default();
        args.positional = words.collect();
        Ok(args)
    }

    /// Exactly `n` positional arguments, or a usage error naming the command.
    pub(crate) fn exactly<const N: usize>(&self, what: &str) -> Result<[&str; N], CtlError> {
        let words: Vec<&str> = self.positional.iter().map(String::as_str).collect();
        <[&str; N]>::try_from(words).map_err(|_| usage(format!("{} takes {what}", self.command)))
    }
}

pub(crate) fn usage(message: String) -> CtlError {
    CtlError::bare(EX_USAGE, format!("Error: {message}\n\n{USAGE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(words: &[&str]) -> Args {
        let argv: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Args::parse(&argv).expect("parses")
    }

    #[test]
    fn options_anywhere_and_inline_values() {
        let a = parse(&[
            "list_queues",
            "name",
            "-p",
            "v1",
            "messages",
            "--url=http://h:1",
        ]);
        assert_eq!(a.command, "list_queues");
        assert_eq!(a.positional, ["name", "messages"]);
        assert_eq!(a.vhost, "v1");
        assert_eq!(a.url, "http://h:1");
    }

    #[test]
    fn silent_implies_quiet_and_no_headers() {
        let a = parse(&["-s", "list_users"]);
        assert!(a.quiet && a.no_headers);
        let a = parse(&["-q", "list_users"]);
        assert!(a.quiet && !a.no_headers);
    }

    #[test]
    fn refusals_are_usage_errors() {
        for bad in [
            &["--bogus", "x"][..],
            &["list_queues", "-p"],
            &["--formatter", "xml"],
            &["--priority", "high"],
            &["-t", "-1"],
        ] {
            let argv: Vec<String> = bad.iter().map(|w| w.to_string()).collect();
            let e = Args::parse(&argv).expect_err("refused");
            assert_eq!(e.code, EX_USAGE, "{bad:?}");
        }
    }

    #[test]
    fn double_dash_ends_options() {
        let a = parse(&["set_policy", "--", "p", "-x", "{}"]);
        assert_eq!(a.positional, ["p", "-x", "{}"]);
    }
}
