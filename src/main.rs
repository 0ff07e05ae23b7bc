//! The `warren` binary: parse the configuration, set up logging, serve until SIGINT or
//! SIGTERM, then close every connection with CONNECTION_FORCED and exit 0.

use clap::Parser;
use std::process::ExitCode;
use warren::Config;

fn main() -> ExitCode {
    let config = Config::parse();
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
        let server = match warren::start(config.clone()).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!(
                    "warren: cannot listen on {}:{}: {e}",
                    config.bind, config.port
                );
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
        wait_for_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
