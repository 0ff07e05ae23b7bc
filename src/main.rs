//! The `warren` binary: parse the configuration, set up logging, serve until SIGINT or
//! SIGTERM, then close every connection with CONNECTION_FORCED and exit 0. SIGHUP
//! reloads the TLS certificate, key and CA files. `warren ctl ...` is the operator's
//! command line instead (src/ctl/): it talks to a running broker's management API.

use clap::Parser;
use std::process::ExitCode;
use warren::Config;

fn main() -> ExitCode {
    // `ctl` comes before the broker's flags are parsed: its options are its own.
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("ctl") {
        return warren::run_ctl(argv.collect());
    }
    fixed_allocator_thresholds();
    let config = Config::parse().with_rabbitmq_env(|var| std::env::var(var).ok());
    if let Some(refusal) = config.manual_clock_refusal() {
        eprintln!("warren: cannot start: {refusal}");
        return ExitCode::from(2);
    }
    // openraft narrates every election and snapshot at info: its warnings are what an
    // operator needs, unless the filter names it.
    let log = match config.log.contains("openraft") {
        true => config.log.clone(),
        false => format!("{},openraft=warn", config.log),
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.workers {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.enable_all().build() {
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
        // Before the ready line too: SIGHUP's default action would end the process.
        #[cfg(unix)]
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        #[cfg(not(unix))]
        let hup = None;
        let server = match warren::start(config.clone()).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("warren: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = server.local_addr();
        // A URL a client can use: `[::1]` for IPv6, `localhost` for every interface.
        let host = warren::url_host(addr.ip());
        // Scripts read the plain port from this line's start; the amqps one follows.
        let tls = server
            .tls_addr()
            .map(|a| format!(" and amqps://{host}:{}", a.port()))
            .unwrap_or_default();
        println!(
            "warren {} ready on amqp://{host}:{}{tls}",
            env!("CARGO_PKG_VERSION"),
            addr.port()
        );
        // On a line of its own after the ready line, which scripts and tests read whole
        // (interop/run.sh takes the API's port from it).
        if let Some(api) = server.management_addr() {
            println!("warren management API on http://{host}:{}", api.port());
        }
        if let Some(a) = server.prometheus_addr() {
            tracing::info!("Prometheus metrics on http://{host}:{}/metrics", a.port());
        }
        serve_until(stop, hup, &server).await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

#[cfg(unix)]
type Hangup = tokio::signal::unix::Signal;
#[cfg(not(unix))]
type Hangup = ();

/// Waits for `stop`, reloading the TLS files on each SIGHUP meanwhile.
async fn serve_until(
    stop: impl std::future::Future<Output = ()>,
    hup: Option<Hangup>,
    server: &warren::Server,
) {
    #[cfg(unix)]
    {
        let mut stop = std::pin::pin!(stop);
        let Some(mut hup) = hup else {
            eprintln!("warren: cannot watch for SIGHUP; TLS files will not be reloaded");
            return stop.await;
        };
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = hup.recv() => match server.reload_tls().await {
                    Ok(()) => tracing::info!("SIGHUP: TLS files reloaded"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: TLS files not reloaded; the previous ones stay in use"),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, server);
        stop.await
    }
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

/// glibc's malloc raises its trim threshold to twice the largest mmapped block freed so
/// far (up to 64 MiB), and `malloc_trim` never trims the top of a thread's arena: after
/// a burst, megabytes stayed resident at the tops of the runtime workers' arenas however
/// often the broker trimmed (issue 16: 18 MB idle after a 45 s burst where it started at
/// 9 MB; 10 MB with these). Fixed thresholds instead: blocks under 32 MiB (glibc's own
/// ceiling for the dynamic one) come from the heap, so large bodies keep reusing it as
/// they did once the dynamic threshold had risen (at 128 KiB, 256 KiB bodies went 3.6x
/// slower), and an arena's top beyond 4 MiB goes back on free. The process's, so the
/// binary's choice, not the library's; glibc's own variables, when set, win.
fn fixed_allocator_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |v: &str| std::env::var_os(v).is_some();
        if set("MALLOC_TRIM_THRESHOLD_") || set("MALLOC_MMAP_THRESHOLD_") || set("GLIBC_TUNABLES") {
            return;
        }
        // SAFETY: mallopt only sets the allocator's parameters; called before any thread.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
        }
    }
}
