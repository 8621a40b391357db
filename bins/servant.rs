//! `servant`: a chat peer. Parses flags, starts logging, runs.
#![cfg_attr(target_feature = "crt-static", no_main)]

use p2pchat::cli::{self, Unit};
use p2pchat::config::ConfigError;
use p2pchat::servant::{self, Overrides};

p2pchat::entry!(
    p2pchat::noise::command::subcommand("servant").unwrap_or_else(|| cli::daemon_main(
        "servant",
        servant::HELP,
        parse,
        servant::Config::load,
        servant::run
    ))
);

fn parse(args: &mut pico_args::Arguments) -> Result<(Overrides, Option<String>), ConfigError> {
    let o = Overrides {
        headless: cli::switch(args, "--headless")?,
        config: cli::opt_flag(args, "--config", "a file name")?,
        connmgr: args
            .values_from_str("--connmgr")
            .map_err(|e| ConfigError::new("--connmgr", e.to_string()))?,
        port: cli::opt_flag(args, "--port", "a port number from 1 to 65535")?,
        bind: cli::opt_flag(args, "--bind", "an IP address such as 127.0.0.2")?,
        name: cli::opt_flag(args, "--name", "a name")?,
        poll_interval: cli::opt_duration(args, "--poll-interval", Unit::Millis)?,
        max_peers: cli::opt_flag(args, "--max-peers", "a number of peers")?,
        bans: args
            .values_from_str("--ban")
            .map_err(|e| ConfigError::new("--ban", e.to_string()))?,
        log_file: cli::opt_flag(args, "--log-file", "a file name")?,
        timestamps: None,
        key: cli::opt_flag(args, "--key", "a file name")?,
        manager_key: cli::opt_flag(args, "--manager-key", "a public key in base64")?,
        rekey_after: cli::opt_duration(args, "--rekey-after", Unit::Secs)?,
    };
    let timestamps = Overrides::timestamps(
        cli::switch(args, "--timestamps")?,
        cli::switch(args, "--no-timestamps")?,
    )?;
    let o = Overrides { timestamps, ..o };
    let log_level = cli::opt_flag(args, "--log-level", "a log level")?;
    cli::no_more_args(args)?;
    Ok((o, log_level))
}
