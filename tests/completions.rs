//! Shell completions and the man page come from the same clap definition as
//! the parser, so they name the real subcommands and flags.

use crate::support::*;

fn output_of(args: &[&str]) -> String {
    let out = cfrevoke().args(args).output().expect("run cfrevoke");
    assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn completions_know_the_subcommands_and_their_flags() {
    let bash = output_of(&["completions", "bash"]);
    assert!(bash.contains("revoke") && bash.contains("--dry-run") && bash.contains("--common-name"), "{bash}");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        assert!(output_of(&["completions", shell]).contains("revoke"), "{shell}");
    }
    let out = cfrevoke().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_are_roff_for_the_tool_and_each_subcommand() {
    let page = output_of(&["man"]);
    // clap_mangen defines the apostrophe string (.ie/.el) before the title.
    let title = page.lines().find(|l| !l.starts_with(".ie") && !l.starts_with(".el")).unwrap();
    assert!(title.starts_with(".TH cfrevoke 1"), "{title}");
    assert!(page.contains("cfrevoke\\-revoke(1)") && page.contains("cfrevoke\\-list(1)"), "{page}");
    let revoke = output_of(&["man", "revoke"]);
    assert!(revoke.contains(".TH cfrevoke-revoke 1") && revoke.contains("\\-\\-dry\\-run"), "{revoke}");
    let out = cfrevoke().args(["man", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("revoke, reactivate, list"), "{}", stderr(&out));
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    for args in [["completions", "zsh"], ["man", "revoke"]] {
        let mut child = cfrevoke_std()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // As `| head` does once it has its lines.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
}
