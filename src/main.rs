fn main() -> std::process::ExitCode {
    cfrevoke::pipeline::signals::ignore_file_size_limit_signal();
    let cli = cfrevoke::cli::Cli::parse_args(std::env::args_os());
    cfrevoke::run(cli).into()
}
