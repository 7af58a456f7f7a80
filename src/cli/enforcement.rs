//! `cfrevoke enforcement`: does revoking change anything? Reads each zone's
//! WAF custom rules and says whether a revoked certificate is blocked there.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::cli::api_args::ApiArgs;
use crate::cli::csv_file::CsvFile;
use crate::cli::zones::ZoneArgs;
use crate::exit::{usage, ExitCode};
use crate::input::ids::ZoneId;
use crate::input::plan::Plan;
use crate::operations::enforcement::{RuleRef, ZoneCheck, BLOCKING_ACTION, EXAMPLE_EXPRESSION};
use crate::output::audit;
use crate::output::logging::Verbosity;
use crate::output::progress::Progress;
use crate::pipeline::dispatcher::Dispatcher;
use crate::pipeline::enforcement::{self, EnforcementCheck};
use crate::pipeline::session::Session;
use crate::pipeline::settings::ApiSettings;

/// Columns of `--output`.
const HEADER: [&str; 7] =
    ["zone_id", "verdict", "reason", "rule_id", "rule_description", "rule_expression", "rule_action"];

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("zone_source").args(["zones", "zones_file", "all_zones", "input"]).required(true).multiple(true))]
pub struct EnforcementArgs {
    /// A CSV naming zone_id and certificate_id columns (revoke's input, or a listing): its zones are checked.
    pub input: Option<PathBuf>,

    #[command(flatten)]
    pub zones: ZoneArgs,

    /// Also write the verdicts as CSV here (never overwritten); - writes the CSV to standard output
    /// instead of the table.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub api: ApiArgs,
}

pub fn run(args: &EnforcementArgs, verbosity: Verbosity) -> anyhow::Result<ExitCode> {
    let choice = args.zones.choice()?;
    let input_zones = input_zones(args)?;
    let output = args.output.as_deref().map(CsvFile::open).transpose()?;
    let api = args.api.settings(args.api.credentials()?)?;
    let (session, dispatcher) = open(&api, verbosity)?;
    let interrupted = || {
        eprintln!("interrupted: nothing was written");
        Ok(ExitCode::Interrupted)
    };
    let Some(chosen) = choice.resolve(&session, &dispatcher)? else {
        return interrupted();
    };
    let mut zones: Vec<ZoneId> = chosen.iter().map(|zone| zone.id).chain(input_zones).collect();
    let mut seen = std::collections::HashSet::new();
    zones.retain(|zone| seen.insert(*zone));
    let Some(checks) = inspect(&session, &dispatcher, &zones, None)? else {
        return interrupted();
    };
    match output {
        Some(CsvFile::Stdout) => {}
        _ => crate::cli::print_stdout(&table(&checks)),
    }
    if let Some(output) = output {
        let destination = output.write(&HEADER, &checks.iter().map(row).collect::<Vec<_>>())?;
        if !verbosity.is_quiet() {
            eprintln!("verdicts written to {destination}");
        }
    }
    Ok(if checks.iter().all(|c| c.verdict.is_enforced()) { ExitCode::Success } else { ExitCode::RowsFailed })
}

/// The input's zones, checked before anything is sent; they follow the
/// zones of `--zone`, `--zones-file` or `--all-zones`.
fn input_zones(args: &EnforcementArgs) -> anyhow::Result<Vec<ZoneId>> {
    let Some(input) = &args.input else {
        return Ok(Vec::new());
    };
    let plan = Plan::build(input).map_err(|e| usage(e.to_string()))?;
    if plan.invalid > 0 {
        return Err(usage(format!("{}\nfix the input's invalid rows; nothing was sent", plan.problem_report())));
    }
    Ok(plan.zone_ids())
}

/// Reads the custom rules of `zones` on a session of its own, one request
/// per zone: for `enforcement` (`mode` `None`: the table says it all), and
/// for revoke's dry run, which has no run to share and warns as a run does.
/// `None` when interrupted.
pub fn check(
    api: &ApiSettings,
    zones: &[ZoneId],
    verbosity: Verbosity,
    mode: Option<EnforcementCheck>,
) -> anyhow::Result<Option<Vec<ZoneCheck>>> {
    let (session, dispatcher) = open(api, verbosity)?;
    inspect(&session, &dispatcher, zones, mode)
}

/// A session of the check's own, one request at a time.
fn open(api: &ApiSettings, verbosity: Verbosity) -> anyhow::Result<(Session, Arc<Dispatcher>)> {
    // Nothing to draw; the hidden bar only lends its writer.
    let session = Session::start(verbosity, Progress::new(0, true, "").writer(), None, &audit::run_id())?;
    let dispatcher = Arc::new(api.dispatcher(&session, 1)?);
    Ok((session, dispatcher))
}

/// The rules reads on a session already open, which `enforcement` shares
/// with the lookup of its zones so both keep to one pacer.
fn inspect(
    session: &Session,
    dispatcher: &Arc<Dispatcher>,
    zones: &[ZoneId],
    mode: Option<EnforcementCheck>,
) -> anyhow::Result<Option<Vec<ZoneCheck>>> {
    match mode {
        Some(mode) => enforcement::check(session, dispatcher, zones, mode),
        None => enforcement::read(session, dispatcher, zones).context("nothing was written"),
    }
}

/// The verdicts for a person, one zone per line, then what to do.
fn table(checks: &[ZoneCheck]) -> String {
    let mut out = format!("{:<32}  {:<12}  DETAIL\n", "ZONE", "VERDICT");
    for check in checks {
        let mut detail = check.verdict.reason();
        if let Some(rule) = check.verdict.rule() {
            let description = rule.description.as_deref().map(|d| format!(" \"{d}\"")).unwrap_or_default();
            detail.push_str(&format!("; rule {}{description}: {}", rule.id, rule.expression));
        }
        out.push_str(&format!("{:<32}  {:<12}  {detail}\n", check.zone, check.verdict.name()));
    }
    let enforced = checks.iter().filter(|c| c.verdict.is_enforced()).count();
    out.push_str(&format!("{enforced} of {} zones block revoked certificates in their custom rules.\n", checks.len()));
    if enforced < checks.len() {
        out.push_str(&format!(
            "Where revocation is not seen in the zone's custom rules, a revoked certificate may still get in. A \
             custom rule with action {BLOCKING_ACTION} and an expression such as {EXAMPLE_EXPRESSION} enforces it. \
             (It may also be enforced where this check cannot see: a Worker, an account-level ruleset.)\n"
        ));
    }
    out
}

/// One CSV row, in [`HEADER`] order; a verdict without a rule leaves its cells empty.
fn row(check: &ZoneCheck) -> Vec<String> {
    let rule = check.verdict.rule();
    let field = |f: &dyn Fn(&RuleRef) -> &str| rule.map(f).unwrap_or_default().to_string();
    vec![
        check.zone.to_string(),
        check.verdict.name().to_string(),
        check.verdict.reason(),
        field(&|r| &r.id),
        field(&|r| r.description.as_deref().unwrap_or_default()),
        field(&|r| &r.expression),
        field(&|r| &r.action),
    ]
}
