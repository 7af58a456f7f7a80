//! The command-line layer: the clap definition (shared by parsing, `--help`,
//! completions and the man page), one module per subcommand, the flags
//! those that talk to the API share (`api_args`), and what `revoke`,
//! `reactivate` and `verify` share (`bulk`: their flags, and the prompt and printing
//! around the engine's steps). Flags become the engine's plain settings
//! here; no other folder sees clap.

use std::io::{ErrorKind, Write};

use anyhow::Context;

use crate::exit::ExitCode;

pub mod api_args;
mod args;
pub mod bulk;
pub mod completions;
mod csv_file;
pub mod enforcement;
pub mod list;
pub mod man;
pub mod reactivate;
pub mod report;
pub mod revoke;
pub mod sandbox;
mod selectors;
mod values;
pub mod verify;
mod zones;

pub use args::{Cli, Command, VerbosityArgs};

/// Writes generated text (a completion script, a man page) to stdout. A
/// reader that stops early, as `| head` does, is not an error: the pipe it
/// closed is what the user asked for.
fn print_generated(text: &[u8], what: &str) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != ErrorKind::BrokenPipe => Err(e).with_context(|| format!("cannot write the {what}")),
        _ => Ok(ExitCode::Success),
    }
}

/// Writes to standard output, which may be gone (`| head -1`, `| true`, a
/// closed terminal): the results, the log, the summary JSON and the exit
/// code already say what happened to the rows, so a reader that left is
/// no reason to fail, nor to panic as `print!` would.
pub(crate) fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != ErrorKind::BrokenPipe {
            tracing::warn!("cannot write to standard output: {e}");
        }
    }
}
