//! `cfrevoke completions <shell>`: tab completion generated from the same
//! clap definition that parses the command line, so it can never offer a
//! flag that does not exist.

use clap_complete::Shell;

use crate::exit::ExitCode;

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `command` is the whole command line's definition, handed in by the
/// caller so this module need not depend on the one that names it.
pub fn run(args: &CompletionsArgs, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let name = command.get_name().to_string();
    // Generated in memory: clap_complete panics on a failed write.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    super::print_generated(&script, "completion script")
}
