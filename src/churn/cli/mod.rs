//! churn's command line: which command the arguments ask for ([`parse`]), and
//! doing it ([`run`]): a load run whose summary is printed in the format asked
//! for and written to the files asked for, `compare`, or `baseline-server`.
//! `bins/churn.rs` only starts logging between the two.

mod flags;
mod help;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::baseline::{self, Baseline};
use super::report::{compare, merge, Report};
use super::{args, Config, Mode, Progress, Protocol, Sender};
use crate::cli::{self, Unit};
use crate::config::ConfigError;
pub use help::HELP;

/// Exit status when every operation succeeded.
pub const OK: u8 = 0;
/// Exit status when the run could not be done.
pub const FAILED: u8 = 1;
/// Exit status for bad options.
pub const USAGE: u8 = 2;
/// Exit status when some operations failed.
pub const SOME_FAILED: u8 = 3;

/// What the command line asks for.
pub enum Command {
    /// A load run, and what to do with its report.
    Run(Box<Config>, Output),
    /// `compare A.json B.json`.
    Compare(PathBuf, PathBuf),
    /// `merge A.json B.json ...`, and whether to print JSON.
    Merge(Vec<PathBuf>, bool),
    /// `baseline-server`: serve on this address until stopped.
    Baseline(SocketAddr, Baseline),
}

/// What to do with a finished run, besides printing the human summary.
pub struct Output {
    pub json: bool,
    pub csv: bool,
    pub hdr: Option<PathBuf>,
    pub svg: Option<PathBuf>,
    pub log_level: Option<String>,
}

impl Command {
    /// The `--log-level` to start logging at: a run's flag, else `RUST_LOG`, else warn.
    pub fn log_level(&self) -> Option<String> {
        let flag = match self {
            Command::Run(_, out) => out.log_level.clone(),
            _ => None,
        };
        flag.or_else(|| std::env::var("RUST_LOG").is_err().then(|| "warn".into()))
    }
}

/// The command the arguments (after `--help` and `--version`) ask for; errors
/// name the flag or argument that is wrong.
pub fn parse(args: &mut pico_args::Arguments) -> Result<Command, ConfigError> {
    let mode = match args.subcommand() {
        Ok(Some(m)) => m,
        Ok(None) => return Err(flags::no_mode(args)),
        Err(e) => return Err(ConfigError::new("MODE", e.to_string())),
    };
    match mode.as_str() {
        "baseline-server" => return baseline_server(args),
        "compare" => return compare_files(args),
        "merge" => return merge_files(args),
        _ => {}
    }
    let Some(mode) = Mode::parse(&mode) else {
        return Err(flags::unknown_mode(&mode));
    };
    let (config, out) = run_flags(mode, args)?;
    Ok(Command::Run(Box::new(config), out))
}

/// Does what `command` asks and returns the exit status.
pub fn run(command: Command) -> u8 {
    match command {
        Command::Run(config, out) => load(*config, &out),
        Command::Compare(a, b) => match compare::files(&a, &b) {
            Ok(table) => {
                print!("{table}");
                OK
            }
            Err(e) => {
                eprintln!("churn compare: {e}");
                FAILED
            }
        },
        Command::Merge(files, json) => match merge::files(&files) {
            Ok(report) => print_report(&report, json, false),
            Err(e) => {
                eprintln!("churn merge: {e}");
                FAILED
            }
        },
        Command::Baseline(addr, b) => serve_baseline(addr, &b),
    }
}

/// Prints the summary in the format asked for; the exit status it means.
fn print_report(report: &Report, json: bool, csv: bool) -> u8 {
    if json {
        eprint!("{}", report.text());
        println!("{}", report.json());
    } else if csv {
        eprint!("{}", report.text());
        print!("{}", report.csv());
    } else {
        print!("{}", report.text());
    }
    if report.failures.total() == 0 {
        OK
    } else {
        SOME_FAILED
    }
}

fn load(config: Config, out: &Output) -> u8 {
    let report = match super::run(config) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("churn: {e}");
            return FAILED;
        }
    };
    let status = print_report(&report, out.json, out.csv);
    let files = [(&out.hdr, report.hdr()), (&out.svg, report.svg())];
    for (path, text) in files {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("churn: cannot write {}: {e}", path.display());
            return FAILED;
        }
    }
    status
}

fn run_flags(mode: Mode, args: &mut pico_args::Arguments) -> Result<(Config, Output), ConfigError> {
    let command_line = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let given: Option<String> = opt(args, Flag("--target", Some("-t")), "HOST[:PORT]")?;
    let private = cli::switch(args, "--private")?;
    // A private run starts its own manager: without -t, on a port the OS chooses.
    let target = match (&given, private) {
        (Some(t), _) => t.as_str(),
        (None, true) => "127.0.0.1:0",
        (None, false) => "127.0.0.1",
    };
    let target =
        args::target(target, super::MANAGER_PORT).map_err(|e| ConfigError::new("--target", e))?;
    let mut c = Config::new(mode, target);
    c.args = command_line;
    c.private = private;
    if let Some(n) = opt(args, Flag("--concurrency", Some("-c")), "a whole number")? {
        c.concurrency = n;
    }
    c.count = opt(args, Flag("--count", Some("-n")), "a whole number")?;
    if c.count == Some(0) {
        return Err(ConfigError::new("--count", "must be at least 1"));
    }
    c.duration = secs(args, Flag("--duration", Some("-d")))?;
    if c.duration.is_some_and(|d| d.is_zero()) {
        return Err(ConfigError::new("--duration", "must be more than 0"));
    }
    if let Some(w) = secs(args, Flag("--warmup", None))? {
        c.warmup = w;
    }
    if let Some(every) = cli::opt_duration(args, "--interval", Unit::Millis)? {
        c.interval = every;
    }
    if let Some(n) = cli::opt_flag(args, "--steady", "a whole number")? {
        c.steady = n;
    }
    if let Some(list) =
        cli::opt_flag::<String>(args, "--bind", "addresses such as 127.0.0.2-127.0.0.9")?
    {
        c.sources = args::sources(&list).map_err(|e| ConfigError::new("--bind", e))?;
    }
    if let Some(limit) = cli::opt_duration(args, "--timeout", Unit::Millis)? {
        if limit.is_zero() {
            return Err(ConfigError::new("--timeout", "must be more than 0"));
        }
        c.timeout = limit;
    }
    c.rate = cli::opt_flag(args, "--rate", "a number of starts per second")?;
    let workers: Option<String> = cli::opt_flag(args, "--workers", "a number, or auto")?;
    c.workers = match workers.as_deref() {
        None => 1,
        // Every core, as wrk -t and h2load -t are usually given.
        Some("auto") => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => n,
            _ => {
                return Err(ConfigError::new(
                    "--workers",
                    format!("must be 1 to 1024, or auto, not {n:?}"),
                ))
            }
        },
    };
    let request = bytes(args, "--request")?;
    let expect = bytes(args, "--expect")?;
    c.protocol = match (request, expect) {
        (Some(request), expect) => Protocol::Generic { request, expect },
        (None, Some(_)) => {
            return Err(ConfigError::new("--expect", "goes with --request"));
        }
        (None, None) => Protocol::Manager,
    };
    c.keep_alive = cli::switch(args, "--keep-alive")?;
    c.verify = cli::switch(args, "--verify")?;
    c.bare = cli::switch(args, "--bare")?;
    if let Some(stay) = cli::opt_duration(args, "--stay", Unit::Millis)? {
        c.stay = stay;
    }
    c.server_pid = cli::opt_flag(args, "--server-pid", "a process id")?;
    let sender: Option<String> = cli::opt_flag(args, "--sender", "servant or self")?;
    let servant: Option<PathBuf> =
        cli::opt_flag(args, "--servant", "a path to the servant binary")?;
    let out = Output {
        json: cli::switch(args, "--json")?,
        csv: cli::switch(args, "--csv")?,
        hdr: cli::opt_flag(args, "--hdr", "a file to write")?,
        svg: cli::opt_flag(args, "--svg", "a file to write")?,
        log_level: cli::opt_flag(args, "--log-level", "a log level")?,
    };
    let quiet = cli::switch(args, "--quiet")?;
    flags::no_more(args)?;
    if out.json && out.csv {
        return Err(ConfigError::new(
            "--csv",
            "and --json both want stdout: choose one",
        ));
    }
    c.sender = sender_choice(sender.as_deref(), servant)?;
    // SAFETY: isatty has no memory effects.
    let terminal = unsafe { libc::isatty(2) } == 1;
    c.progress = match (quiet, terminal) {
        (true, _) => Progress::Off,
        (false, true) => Progress::Line,
        (false, false) => Progress::Lines,
    };
    c.check()?;
    match super::sources::choose(&c) {
        super::sources::Choice::Spread(list) => {
            c.sources = list;
            c.default_sources = true;
        }
        super::sources::Choice::Warn(why) => eprintln!("churn: note: {why}"),
        super::sources::Choice::Os => {}
    }
    for (flag, path) in [("--hdr", &out.hdr), ("--svg", &out.svg)] {
        if let Some(path) = path {
            flags::writable(flag, path)?;
        }
    }
    Ok((c, out))
}

/// The fanout sender from `--sender` and `--servant`.
fn sender_choice(sender: Option<&str>, servant: Option<PathBuf>) -> Result<Sender, ConfigError> {
    let found = servant.clone().or_else(servant_next_to_us);
    let chosen = match sender {
        Some("self") => Sender::Itself,
        Some("servant") => Sender::Servant(found.ok_or_else(|| {
            ConfigError::new(
                "--sender servant",
                "no servant binary next to churn: give --servant PATH",
            )
        })?),
        Some(other) => {
            return Err(ConfigError::new(
                "--sender",
                format!("must be servant or self, not {other:?}"),
            ))
        }
        None => found.map_or(Sender::Itself, Sender::Servant),
    };
    if let (Some(p), Sender::Servant(_)) = (&servant, &chosen) {
        if !p.is_file() {
            return Err(ConfigError::new(
                "--servant",
                format!("{} is not a file", p.display()),
            ));
        }
    }
    Ok(chosen)
}

/// The names a flag goes by: its long name, and a short one if it has one.
#[derive(Clone, Copy)]
struct Flag(&'static str, Option<&'static str>);

/// A flag's value, parsed (`-c 5`, `--concurrency 5`, `--concurrency=5`; once);
/// errors name the flag and what it needs.
fn opt<T: std::str::FromStr>(
    args: &mut pico_args::Arguments,
    flag: Flag,
    expected: &str,
) -> Result<Option<T>, ConfigError> {
    match flag.1 {
        Some(short) => cli::opt_flag_keys(args, [short, flag.0], flag.0, expected),
        None => cli::opt_flag(args, flag.0, expected),
    }
}

/// A duration: `10s`, `500ms`, `2m`; a bare number is seconds, as it always was.
fn secs(
    args: &mut pico_args::Arguments,
    flag: Flag,
) -> Result<Option<std::time::Duration>, ConfigError> {
    match flag.1 {
        Some(short) => cli::opt_duration_keys(args, [short, flag.0], flag.0, Unit::Secs),
        None => cli::opt_duration(args, flag.0, Unit::Secs),
    }
}

/// Bytes written with escapes (`PING\r\n`).
fn bytes(
    args: &mut pico_args::Arguments,
    flag: &'static str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    let text: Option<String> = cli::opt_flag(args, flag, "text, with escapes such as \\r\\n")?;
    text.map(|t| args::unescape(&t).map_err(|e| ConfigError::new(flag, e)))
        .transpose()
}

/// The `servant` binary built alongside this `churn`, if there is one.
fn servant_next_to_us() -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.with_file_name("servant");
    p.is_file().then_some(p)
}

fn compare_files(args: &mut pico_args::Arguments) -> Result<Command, ConfigError> {
    let files = flags::operands(args)?;
    let [a, b] = &files[..] else {
        return Err(ConfigError::new(
            "compare",
            "needs two JSON summaries: churn compare A.json B.json",
        ));
    };
    Ok(Command::Compare(Path::new(a).into(), Path::new(b).into()))
}

fn merge_files(args: &mut pico_args::Arguments) -> Result<Command, ConfigError> {
    let json = args.contains("--json");
    let files = flags::operands(args)?;
    if files.is_empty() {
        return Err(ConfigError::new(
            "merge",
            "needs JSON summaries: churn merge A.json B.json ... [--json]",
        ));
    }
    Ok(Command::Merge(
        files.into_iter().map(PathBuf::from).collect(),
        json,
    ))
}

fn baseline_server(args: &mut pico_args::Arguments) -> Result<Command, ConfigError> {
    let bind: std::net::IpAddr =
        cli::opt_flag(args, "--bind", "an IP address")?.unwrap_or([127, 0, 0, 1].into());
    let port: u16 = cli::opt_flag(args, "--port", "a port number")?.unwrap_or(0);
    let size: Option<usize> = cli::opt_flag(args, "--reply-bytes", "a number of bytes")?;
    let reply = bytes(args, "--reply")?;
    let end = bytes(args, "--request-end")?;
    let close = args.contains("--close");
    flags::no_more(args)?;
    let mut b = match (reply, size) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new("--reply", "or --reply-bytes, not both"))
        }
        (Some(reply), None) => Baseline {
            reply,
            request_end: b"\n".to_vec(),
            close_after_reply: false,
        },
        (None, size) => Baseline::document(size.unwrap_or(1000)),
    };
    match end {
        Some(end) if end.is_empty() => {
            return Err(ConfigError::new("--request-end", "must not be empty"))
        }
        Some(end) => b.request_end = end,
        None => {}
    }
    b.close_after_reply = close;
    Ok(Command::Baseline(SocketAddr::new(bind, port), b))
}

fn serve_baseline(addr: SocketAddr, b: &Baseline) -> u8 {
    cli::raise_fd_limit();
    let result = baseline::serve(addr, b, |a| {
        eprintln!(
            "baseline server: {}-byte replies{}; listening on {a}",
            b.reply.len(),
            if b.close_after_reply {
                ", closing after each"
            } else {
                ""
            }
        );
    });
    match result {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("churn baseline-server: {addr}: {e}");
            FAILED
        }
    }
}
