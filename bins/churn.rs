//! `churn`: the load generator. Parses flags, starts logging, runs
//! (`p2pchat::churn::cli`).

use std::process::ExitCode;

use p2pchat::churn::cli::{self as churn, HELP};
use p2pchat::cli;

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    if let Some(done) = cli::help_or_version(&mut args, "churn", HELP) {
        return done;
    }
    let usage_error = |e: &dyn std::fmt::Display| {
        eprintln!("churn: {e}");
        ExitCode::from(churn::USAGE)
    };
    let command = match churn::parse(&mut args) {
        Ok(c) => c,
        Err(e) => return usage_error(&e),
    };
    if let Err(e) = cli::init_logging(command.log_level().as_deref()) {
        return usage_error(&e);
    }
    ExitCode::from(churn::run(command))
}
