//! The set-up every command that talks to the API shares: its own tracing
//! dispatcher (installed on this thread and on every runtime thread, so
//! several runs can share one test process), the async runtime, and the
//! watch for Ctrl-C, SIGTERM and SIGHUP around the work.

use std::future::Future;
use std::sync::Arc;

use tracing::dispatcher::DefaultGuard;

use crate::output::logging::{self, LogFile, Verbosity};
use crate::output::progress::BarWriter;
use crate::pipeline::dispatcher::Dispatcher;

pub struct Session {
    // Dropped before the guard: runtime threads may log while they stop.
    runtime: tokio::runtime::Runtime,
    _guard: DefaultGuard,
}

impl Session {
    /// Logs go to `stderr` (around the progress bar) and, with a log file,
    /// to it as JSON lines carrying `run_id`.
    pub fn start(
        verbosity: Verbosity,
        stderr: BarWriter,
        log_file: Option<LogFile>,
        run_id: &str,
    ) -> anyhow::Result<Session> {
        let dispatch = logging::dispatch(verbosity, stderr, log_file, run_id);
        let guard = tracing::dispatcher::set_default(&dispatch);
        let runtime = logging::runtime(&dispatch)?;
        Ok(Session { runtime, _guard: guard })
    }

    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        self.runtime.block_on(work)
    }

    /// The runtime, for tasks that live beside the work (the ledger's).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }
}

/// Runs `work` while signals stop `dispatcher` cleanly: the first lets the
/// requests in flight finish and be recorded.
pub async fn interruptible<F: Future>(dispatcher: &Arc<Dispatcher>, work: F) -> F::Output {
    let signals = tokio::spawn(crate::pipeline::signals::watch(Arc::clone(dispatcher)));
    let done = work.await;
    signals.abort();
    done
}
