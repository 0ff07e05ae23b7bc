//! `warren ctl`: an operator's command line in the spirit of rabbitmqctl (same command
//! names, columns, header lines, `-q`/`-s`, `--formatter json` and exit codes), which
//! talks to the management HTTP API as rabbitmqadmin does, found with `--url`,
//! `--user` and `--password`.
//!
//! main.rs calls `run_ctl` when the first argument is `ctl`, before the broker's own
//! flags are parsed. `args` reads the command line, `client` is the HTTP client,
//! `output` prints, and the commands live in `lists`, `access` and `ops`. Nothing here
//! touches a broker in-process: everything goes through HTTP, so it works the same
//! against warren and against RabbitMQ.

mod access;
mod args;
mod client;
mod clock;
mod lists;
mod ops;
mod output;

use std::process::ExitCode;
use std::time::Duration;

// sysexits.h codes, as rabbitmqctl uses them.
pub(crate) const EX_USAGE: u8 = 64;
pub(crate) const EX_DATAERR: u8 = 65;
pub(crate) const EX_NOINPUT: u8 = 66;
pub(crate) const EX_NOUSER: u8 = 67;
pub(crate) const EX_UNAVAILABLE: u8 = 69;
pub(crate) const EX_SOFTWARE: u8 = 70;
pub(crate) const EX_IOERR: u8 = 74;
pub(crate) const EX_TEMPFAIL: u8 = 75;
pub(crate) const EX_NOPERM: u8 = 77;

/// A failed command: its exit code and what stderr says.
#[derive(Debug)]
pub(crate) struct CtlError {
    pub(crate) code: u8,
    pub(crate) message: String,
    /// Printed as is; otherwise after rabbitmqctl's "Error:" line.
    bare: bool,
}

impl CtlError {
    pub(crate) fn new(code: u8, message: String) -> Self {
        CtlError {
            code,
            message,
            bare: false,
        }
    }

    pub(crate) fn bare(code: u8, message: String) -> Self {
        CtlError {
            code,
            message,
            bare: true,
        }
    }
}

/// `warren ctl ARGS...` (ARGS without "warren ctl"): runs one command, returns its exit
/// code.
pub fn run_ctl(argv: Vec<String>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error:\ncannot start the runtime: {e}");
            return ExitCode::from(EX_SOFTWARE);
        }
    };
    match runtime.block_on(run(&argv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.bare {
                eprintln!("{}", e.message);
            } else {
                eprintln!("Error:\n{}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}

async fn run(argv: &[String]) -> Result<(), CtlError> {
    let args = args::Args::parse(argv)?;
    if args.command.is_empty() || args.command == "help" {
        print!("{}", args::USAGE);
        return Ok(());
    }
    let timeout = match args.command.as_str() {
        // await_startup's --timeout is its whole wait; each poll has its own bound.
        "await_startup" => Duration::from_secs(10),
        _ => args.timeout.unwrap_or(Duration::from_secs(60)),
    };
    let client = client::Client::new(&args.url, &args.user, &args.password, timeout)?;
    if lists::run(&args, &client).await?
        || access::run(&args, &client).await?
        || ops::run(&args, &client).await?
        || clock::run(&args, &client).await?
    {
        return Ok(());
    }
    Err(args::usage(format!("command '{}' not found", args.command)))
}
