use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cfrevoke::cli::Cli::parse();
    cfrevoke::run(cli).into()
}
