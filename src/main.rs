//! The `warren` binary: parse the configuration, set up logging, serve until SIGINT or
//! SIGTERM, then close every connection with CONNECTION_FORCED and exit 0.

use clap::Parser;
use std::process::ExitCode;
use warren::Config;

fn main() -> ExitCode {
    let config = Config::parse().with_rabbitmq_env(|var| std::env::var(var).ok());
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warren: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Signals are watched before the ready line, so a SIGTERM sent the moment it
        // appears still stops the broker gracefully.
        let stop = match stop_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("warren: cannot watch for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let server = match warren::start(config.clone()).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("warren: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = server.local_addr();
        let host = if addr.ip().is_unspecified() {
            "localhost".to_owned()
        } else {
            addr.ip().to_string()
        };
        println!(
            "warren {} ready on amqp://{host}:{}",
            env!("CARGO_PKG_VERSION"),
            addr.port()
        );
        stop.await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

/// A future that completes on SIGINT or SIGTERM; the handlers are installed at once.
fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
