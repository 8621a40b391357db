//! `connmgr`: the connection manager daemon. Parses flags, starts logging, runs.
#![cfg_attr(target_feature = "crt-static", no_main)]

use p2pchat::cli::{self, Unit};
use p2pchat::config::ConfigError;
use p2pchat::connmgr::{self, Overrides};

p2pchat::entry!(
    p2pchat::noise::command::subcommand("connmgr").unwrap_or_else(|| cli::daemon_main(
        "connmgr",
        connmgr::HELP,
        parse,
        connmgr::Config::load,
        connmgr::run
    ))
);

fn parse(args: &mut pico_args::Arguments) -> Result<(Overrides, Option<String>), ConfigError> {
    let o = Overrides {
        config: cli::opt_flag(args, "--config", "a file name")?,
        bind: cli::opt_flag(args, "--bind", "an IP address such as 127.0.0.1 or ::")?,
        port: cli::opt_flag(args, "--port", "a port number from 0 to 65535")?,
        first_port: cli::opt_flag(args, "--first-port", "a port number from 1 to 65535")?,
        max_servants: cli::opt_flag(args, "--max-servants", "a whole number")?,
        max_per_address: cli::opt_flag(args, "--max-per-address", "a whole number")?,
        ipv6_prefix: cli::opt_flag(args, "--ipv6-prefix", "a prefix length from 1 to 128")?,
        idle_timeout: cli::opt_duration(args, "--idle-timeout", Unit::Secs)?,
        push_interval: cli::opt_duration(args, "--push-interval", Unit::Millis)?,
        max_line: cli::opt_flag(args, "--max-line", "a number of bytes")?,
        relay_threshold: cli::opt_flag(args, "--relay-threshold", "a number of complaints")?,
        relay_share: cli::opt_flag(args, "--relay-share", "a percentage")?,
        relay_window: cli::opt_duration(args, "--relay-window", Unit::Secs)?,
        relay_recheck: cli::opt_duration(args, "--relay-recheck", Unit::Secs)?,
        relay_dial_timeout: cli::opt_duration(args, "--relay-dial-timeout", Unit::Millis)?,
        relay_pullers: cli::opt_flag(args, "--relay-pullers", "a number of servants")?,
        relay_probe_interval: cli::opt_duration(args, "--relay-probe-interval", Unit::Millis)?,
        relay_probe_timeout: cli::opt_duration(args, "--relay-probe-timeout", Unit::Millis)?,
        relay_probe_misses: cli::opt_flag(args, "--relay-probe-misses", "a number of probes")?,
        relay_ban: cli::opt_duration(args, "--relay-ban", Unit::Secs)?,
        key: cli::opt_flag(args, "--key", "a file name")?,
        members: cli::opt_flag(args, "--members", "a file name")?,
        cluster: cli::opt_flag(args, "--cluster", "a Redis URL")?,
        cluster_prefix: cli::opt_flag(args, "--cluster-prefix", "a key prefix")?,
    };
    let log_level = cli::opt_flag(args, "--log-level", "a log level")?;
    cli::no_more_args(args)?;
    Ok((o, log_level))
}
