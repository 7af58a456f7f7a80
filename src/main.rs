fn main() -> std::process::ExitCode {
    let cli = cfrevoke::cli::Cli::parse_args(std::env::args_os());
    cfrevoke::run(cli).into()
}
