//! `warren ctl clock show|advance DURATION|set DATE`: reads and moves the broker's
//! clock through `/api/warren/clock` (a manual clock only: `--clock manual`, for
//! tests). warren's own command; rabbitmqctl has none.
//!
//! Called by `ctl::run`. The duration or date is checked here first, so a typo is a
//! usage error before anything is sent; the broker checks again and decides. Prints
//! the clock as the API answers it: a mode/now/now_ms table, or JSON.

use super::args::Args;
use super::client::Client;
use super::output::{Cell, Out};
use super::{CtlError, EX_DATAERR, EX_USAGE};
use crate::clock::text::{parse_duration, parse_time};
use hyper::Method;
use serde_json::{json, Value};

/// Runs `clock ...` if that is the command; false otherwise.
pub(crate) async fn run(args: &Args, client: &Client) -> Result<bool, CtlError> {
    if args.command != "clock" {
        return Ok(false);
    }
    let out = Out::new(args);
    let words: Vec<&str> = args.positional.iter().map(String::as_str).collect();
    let response = match words.as_slice() {
        ["show"] | [] => client.get("/api/warren/clock").await?,
        ["advance", by] => {
            parse_duration(by).map_err(|e| CtlError::new(EX_USAGE, e))?;
            out.info(&format!("Advancing the clock by {by} ..."));
            let body = json!({ "by": by }).to_string().into_bytes();
            client
                .request(Method::POST, "/api/warren/clock/advance", &[], Some(body))
                .await?
        }
        ["set", to] => {
            parse_time(to).map_err(|e| CtlError::new(EX_USAGE, e))?;
            out.info(&format!("Setting the clock to {to} ..."));
            client
                .put("/api/warren/clock", &json!({ "now": to }))
                .await?
        }
        _ => {
            return Err(super::args::usage(
                "clock takes show, advance DURATION (250ms, 10s, 90m, 1h30m, 2d) or set DATE \
                 (RFC 3339 or Unix ms)"
                    .to_owned(),
            ))
        }
    };
    match response.status {
        // The broker refused the move (real clock, backwards) or the text.
        400 | 409 => Err(CtlError::new(EX_DATAERR, response.reason())),
        404 => Err(CtlError::new(
            EX_DATAERR,
            "this broker has no clock endpoint (not warren, or an older one)".to_owned(),
        )),
        _ if response.ok() => {
            let v = response.json();
            let row = ["mode", "now", "now_ms"].map(|k| v.get(k).cloned().unwrap_or(Value::Null));
            let columns = ["mode", "now", "now_ms"].map(|k| (k.to_owned(), Cell::Plain));
            out.table(&columns, &[row.to_vec()]);
            Ok(true)
        }
        _ => Err(client.unexpected(&response)),
    }
}
