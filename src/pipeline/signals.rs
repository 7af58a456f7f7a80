//! Ctrl-C, SIGTERM and SIGHUP: the first stops new requests and lets those
//! in flight finish so their outcomes are recorded; a second exits at once.
//! A hang-up (the terminal or SSH session closed) is an interruption like any
//! other: dying at once would leave requests sent but not recorded.

use std::sync::Arc;

use crate::exit::ExitCode;
use crate::pipeline::dispatcher::{Dispatcher, StopReason};

async fn next_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut hangup = signal(SignalKind::hangup()).expect("SIGHUP handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hangup.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn watch(dispatcher: Arc<Dispatcher>) {
    next_signal().await;
    tracing::warn!("interrupted: no new requests; waiting for those in flight (interrupt again to exit at once)");
    dispatcher.halt(StopReason::Interrupted);
    next_signal().await;
    // The collector flushes its rows a batch at a time, in one write call
    // where they fit its buffer. Exiting mid-batch can leave a torn last
    // line, which `--resume` cuts off ([`crate::input::resume`]), and loses
    // rows not yet flushed, whose pairs a resumed run sends again.
    eprintln!("interrupted twice: exiting now");
    std::process::exit(i32::from(ExitCode::Interrupted.code()));
}

/// Makes a write past `RLIMIT_FSIZE` fail with `EFBIG`, which stops the run
/// cleanly like a full disk, instead of killing the process (SIGXFSZ's
/// default) between a request and its results row. Called first thing in
/// `main`, before any file is written.
pub fn ignore_file_size_limit_signal() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // and touches no memory; it is done before any other thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}
