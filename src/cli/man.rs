//! `cfrevoke man [COMMAND]`: a roff man page generated from the clap
//! definition, so the page and `--help` always say the same thing.

use anyhow::Context;

use crate::exit::{usage, ExitCode};

#[derive(Debug, clap::Args)]
pub struct ManArgs {
    /// Write the page of this subcommand (cfrevoke-COMMAND(1)) instead of cfrevoke(1).
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}

/// `root` is the whole command line's definition, handed in by the caller
/// so this module need not depend on the one that names it.
pub fn run(args: &ManArgs, root: clap::Command) -> anyhow::Result<ExitCode> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(page(root, args.command.as_deref())?)
        .render(&mut roff)
        .context("cannot render the man page")?;
    super::print_generated(&roff, "man page")
}

/// The command a page describes. Subcommands are taken from the built tree,
/// where clap has named them `cfrevoke-COMMAND` and given them what the top
/// level propagates, such as the version.
fn page(mut root: clap::Command, subcommand: Option<&str>) -> anyhow::Result<clap::Command> {
    root.build();
    let Some(name) = subcommand else {
        return Ok(root);
    };
    match root.find_subcommand(name) {
        Some(sub) => Ok(sub.clone()),
        None => {
            let known: Vec<&str> = root.get_subcommands().map(clap::Command::get_name).collect();
            Err(usage(format!("no subcommand {name:?}; expected one of {}", known.join(", "))))
        }
    }
}
