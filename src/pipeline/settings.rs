//! What the engine is told, as plain values: the CLI turns flags into these,
//! and a test or another front end can build them by hand, with no command
//! line to parse.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ApiClient, BaseUrl};
use crate::credentials::Credentials;
use crate::input::reader::Selection;
use crate::pacing::ledger::Key;
use crate::pacing::retry::RetryPolicy;
use crate::pacing::{Pace, Pacer};
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::enforcement::EnforcementCheck;
use crate::pipeline::ledger_watch::{self, Timing};
use crate::pipeline::operation::Operation;
use crate::pipeline::session::Session;
use crate::transport::CaBundle;

/// Where requests go, as whom, how fast and how persistently: the same for
/// every command that talks to the API, so they cannot drift apart.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub base_url: BaseUrl,
    pub credentials: Credentials,
    pub pace: Pace,
    pub retry: RetryPolicy,
    /// Per request.
    pub timeout: Duration,
    /// Roots trusted on top of the system's (`--ca-cert`, the sandbox's CA).
    pub ca_cert: Option<CaBundle>,
    /// The directory of the ledger of recent sends that runs with the same
    /// credential share; `None` keeps none.
    pub ledger: Option<PathBuf>,
}

impl ApiSettings {
    /// A dispatcher with a fresh pacer: each run starts from its own pace,
    /// and what the ledger says other runs with this credential sent. The
    /// ledger's task runs on `session`'s runtime.
    pub fn dispatcher(&self, session: &Session, concurrency: usize) -> anyhow::Result<Dispatcher> {
        let client =
            ApiClient::trusting(self.base_url.clone(), &self.credentials, self.timeout, self.ca_cert.as_ref())?;
        let pacer = Arc::new(Pacer::new(self.pace));
        let sends = self.ledger.as_deref().and_then(|dir| {
            let key = Key::of(&self.base_url.to_string(), &self.credentials);
            ledger_watch::start(session.handle(), dir, &key, Arc::clone(&pacer) as _, Timing::default())
        });
        Ok(Dispatcher::new(client, pacer, self.retry, concurrency).noting(sends))
    }
}

/// One bulk run (revoke, reactivate), apart from where it sends requests.
#[derive(Debug, Clone)]
pub struct RunSettings {
    pub operation: Operation,
    /// A CSV path, or `-` for standard input.
    pub input: PathBuf,
    /// Only rows matching these are taken (reactivate: the revoked rows of a results file).
    pub selections: Vec<Selection>,
    pub skip_invalid: bool,
    /// Against an in-process sandbox: results get a name of their own, and
    /// the audit record says so.
    pub sandbox: bool,
    /// The results file; `None` derives one beside the input.
    pub output: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    /// Checked, with the other files, to be distinct before anything is sent.
    pub summary_json: Option<PathBuf>,
    /// Prometheus text for a textfile collector; checked with the others.
    pub metrics_file: Option<PathBuf>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Continue the run whose results are at the output path.
    pub resume: bool,
    /// Stop after this many rows in a row fail the same way; 0 never stops.
    pub max_same_failures: u32,
    /// Whether each zone's custom rules are read before the first request.
    pub enforcement: EnforcementCheck,
    /// The command line as given, for the resume hint and the audit record;
    /// empty when there is none (the hint then names the operation).
    pub argv: Vec<String>,
}
