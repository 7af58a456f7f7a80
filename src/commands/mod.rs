//! One module per subcommand, and the flags those that talk to the API share.

use std::io::{ErrorKind, Write};

use anyhow::Context;

use crate::exit::ExitCode;

pub mod api_args;
pub mod completions;
pub mod list;
pub mod man;
pub mod reactivate;
pub mod revoke;
pub mod sandbox;

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
