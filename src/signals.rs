//! Ctrl-C and SIGTERM: the first stops new requests and lets those in flight
//! finish so their outcomes are recorded; a second exits at once.

use std::sync::Arc;

use crate::dispatcher::{Dispatcher, StopReason};
use crate::exit::ExitCode;

async fn next_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
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
    // Every results row already written is whole: rows are written and
    // flushed one at a time by the collector.
    eprintln!("interrupted twice: exiting now");
    std::process::exit(i32::from(ExitCode::Interrupted.code()));
}
