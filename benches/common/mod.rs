//! What the benchmarks that drive a whole run share: a sandbox's
//! certificates as revoke's input, and the command line of a quiet run.

use std::path::Path;

use clap::Parser;

use cfrevoke::cli::Cli;
use cfrevoke::sandbox::Sandbox;

/// Writes every certificate `sandbox` serves as revoke's input.
pub fn write_input(sandbox: &Sandbox, path: &Path) {
    let mut csv = String::from("zone_id,certificate_id\n");
    for (zone, cert) in sandbox.certificates() {
        csv.push_str(&format!("{zone},{cert}\n"));
    }
    std::fs::write(path, csv).expect("input written");
}

/// `cfrevoke revoke INPUT` against `sandbox`, without asking or printing
/// progress, its token in `token_file`, with `extra` flags.
pub fn revoke(sandbox: &Sandbox, input: &Path, output: &Path, token_file: &Path, extra: &[&str]) -> Cli {
    std::fs::write(token_file, sandbox.token()).expect("token written");
    let base_url = sandbox.base_url();
    let utf8 = |path: &'_ Path| path.to_str().expect("UTF-8 path").to_string();
    let mut args: Vec<String> =
        ["cfrevoke", "revoke", "--yes", "-q", "--base-url", &base_url].iter().map(ToString::to_string).collect();
    args.extend([utf8(input), "--output".into(), utf8(output), "--api-token-file".into(), utf8(token_file)]);
    args.extend(extra.iter().map(ToString::to_string));
    Cli::parse_from(args)
}
