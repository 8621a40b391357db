//! `churn`: the load generator. Parses flags, starts logging, runs, prints the summary.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use p2pchat::churn::{self, Config, Mode, Sender};
use p2pchat::cli::{self, Unit};
use p2pchat::config::ConfigError;

const HELP: &str = "\
churn - a connection-churn load generator for the p2pchat connection manager

Plays many servants at once from one single-threaded event loop, and reports
throughput, latency percentiles and errors (like redis-benchmark or memtier).

USAGE:
    churn join-leave [OPTIONS]   each servant: connect, `needs peer list`, read the
                                 whole document, close; again. Reports cycles/s and
                                 cycle latency.
    churn steady [OPTIONS]       --steady N servants stay connected and ask every
                                 --interval while -c others join and leave; reports
                                 the steady servants' answer latency apart from the
                                 churners'.
    churn fanout [OPTIONS]       -c servants register and listen on the ports the
                                 manager gives them; a sender sends numbered lines to
                                 every peer, one at a time; reports the time until
                                 the last listener has each line.
    churn flood [OPTIONS]        -c connections at a manager that is full (past its
                                 --max-servants): each connects, sends nothing, reads
                                 the refusal, closes, and connects again at once, so
                                 -c stay in flight. Reports refusals/s and the time
                                 from connect to refusal; anything but a refusal is
                                 an error. Logs `flooding ... connections in flight`
                                 at info once they are started.
    churn baseline-server [--bind ADDR] [--port N] [--reply-bytes N]
                                 a trivial mio server that answers every line with N
                                 bytes from a static buffer (the benchmarks' baseline)

OPTIONS:
    -t, --target HOST:PORT  the connection manager [default: 127.0.0.1:85]
    -c, --concurrency N     servants joining and leaving at once; in fanout, the
                            listening servants; in flood, connections in flight
                            [default: 50; fanout: 100; flood: 1000]
    -n, --count N           stop after N measured cycles (join-leave), steady
                            answers (steady), lines (fanout) or refusals (flood)
    -d, --duration TIME     stop after measuring this long [default: 10s, unless -n]
    --warmup TIME           run this long before measuring [default: 0]
    --interval TIME         steady: time between one servant's requests [default: 1s];
                            fanout: pause between lines [default: 0]
    --steady N              steady: servants that stay connected [default: 100]
    --bind ADDR             source address of every connection (and the fanout
                            listeners'), e.g. 127.0.0.2 [default: chosen by the OS]
    --timeout TIME          per cycle, answer, line or refusal; later counts as an error
                            [default: 5s]
    --verify                parse every document; check it names the asker exactly
                            once (costs client CPU)
    --server-pid PID        report this process's CPU time per operation and its
                            memory, read from /proc over the measured window
    --sender servant|self   fanout: who sends the lines [default: servant if one is
                            found, else self]
    --servant PATH          the servant binary for --sender servant [default: the
                            `servant` next to this churn]
    --json                  print the summary as one JSON object on stdout (the
                            human summary then goes to stderr)
    --log-level LEVEL       off, error, warn, info, debug or trace [default: warn]
    -h, --help              print this help
    -V, --version           print the version

TIME is a number and a unit: 10s, 500ms, 2m. A bare number keeps the flag's old
unit: seconds for -d and --warmup, milliseconds for --interval and --timeout.
Flags take `--flag VALUE` or `--flag=VALUE`, once each.

Every failed operation is counted by kind (connect_refused, reset, timeout,
closed_early, malformed, refused_full, ...) and shown with its first message.
On a terminal a progress line is updated every second. SIGINT stops the run and
prints what was measured. Raise the manager's --max-servants for big runs, and run
it with --push-interval 0 when pushes would be mistaken for answers (steady).
churn is one thread: to time steady servants under a churn storm, run the storm
from a second churn process (`churn join-leave`, or `churn flood` against a manager
whose --max-servants the steady servants fill) and `churn steady -c 0` here.

EXIT STATUS: 0 when every operation succeeded, 3 when some failed (see the
summary), 1 if the run could not be done, 2 for bad options.
";

fn main() -> ExitCode {
    let mut args = pico_args::Arguments::from_env();
    if let Some(done) = cli::help_or_version(&mut args, "churn", HELP) {
        return done;
    }
    let mode = match args.subcommand() {
        Ok(Some(m)) => m,
        Ok(None) => {
            return usage_error(&ConfigError::new(
                "MODE",
                "missing: join-leave, steady, fanout or flood (see --help)",
            ))
        }
        Err(e) => return usage_error(&ConfigError::new("MODE", e.to_string())),
    };
    if mode == "baseline-server" {
        return baseline_server(&mut args);
    }
    let Some(mode) = Mode::parse(&mode) else {
        return usage_error(&ConfigError::new(
            mode,
            "unknown mode: use join-leave, steady, fanout, flood or baseline-server",
        ));
    };
    let (config, json, log_level) = match parse(mode, &mut args) {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    let level = log_level.or_else(|| std::env::var("RUST_LOG").is_err().then(|| "warn".into()));
    if let Err(e) = cli::init_logging(level.as_deref()) {
        return usage_error(&e);
    }
    match churn::run(config) {
        Ok(report) => {
            if json {
                eprint!("{}", report.text());
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            if report.failures.total() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("churn: {e}");
            ExitCode::from(1)
        }
    }
}

fn parse(
    mode: Mode,
    args: &mut pico_args::Arguments,
) -> Result<(Config, bool, Option<String>), ConfigError> {
    let target: String =
        opt(args, Flag("--target", Some("-t")), "HOST:PORT")?.unwrap_or("127.0.0.1:85".into());
    let target = resolve(&target)?;
    let mut c = Config::new(mode, target);
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
    c.bind = cli::opt_flag(args, "--bind", "an IP address such as 127.0.0.2")?;
    if let Some(limit) = cli::opt_duration(args, "--timeout", Unit::Millis)? {
        if limit.is_zero() {
            return Err(ConfigError::new("--timeout", "must be more than 0"));
        }
        c.timeout = limit;
    }
    c.verify = cli::switch(args, "--verify")?;
    c.server_pid = cli::opt_flag(args, "--server-pid", "a process id")?;
    let sender: Option<String> = cli::opt_flag(args, "--sender", "servant or self")?;
    let servant: Option<PathBuf> =
        cli::opt_flag(args, "--servant", "a path to the servant binary")?;
    let json = cli::switch(args, "--json")?;
    let log_level = cli::opt_flag(args, "--log-level", "a log level")?;
    cli::no_more_args(args)?;
    let found = servant.clone().or_else(servant_next_to_us);
    c.sender = match sender.as_deref() {
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
    if let (Some(p), Sender::Servant(_)) = (&servant, &c.sender) {
        if !p.is_file() {
            return Err(ConfigError::new(
                "--servant",
                format!("{} is not a file", p.display()),
            ));
        }
    }
    if mode == Mode::Steady && c.steady == 0 && c.concurrency == 0 {
        return Err(ConfigError::new(
            "--steady",
            "steady needs --steady or -c above 0",
        ));
    }
    // SAFETY: isatty has no memory effects.
    c.progress = unsafe { libc::isatty(2) } == 1;
    Ok((c, json, log_level))
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
fn secs(args: &mut pico_args::Arguments, flag: Flag) -> Result<Option<Duration>, ConfigError> {
    match flag.1 {
        Some(short) => cli::opt_duration_keys(args, [short, flag.0], flag.0, Unit::Secs),
        None => cli::opt_duration(args, flag.0, Unit::Secs),
    }
}

fn resolve(target: &str) -> Result<SocketAddr, ConfigError> {
    let mut addrs = target.to_socket_addrs().map_err(|e| {
        ConfigError::new(
            "--target",
            format!("{target:?} is not HOST:PORT that resolves: {e}"),
        )
    })?;
    addrs
        .next()
        .ok_or_else(|| ConfigError::new("--target", format!("{target:?} resolves to no address")))
}

/// The `servant` binary built alongside this `churn`, if there is one.
fn servant_next_to_us() -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.with_file_name("servant");
    p.is_file().then_some(p)
}

fn baseline_server(args: &mut pico_args::Arguments) -> ExitCode {
    let parsed = (|| {
        let bind: std::net::IpAddr =
            cli::opt_flag(args, "--bind", "an IP address")?.unwrap_or([127, 0, 0, 1].into());
        let port: u16 = cli::opt_flag(args, "--port", "a port number")?.unwrap_or(0);
        let bytes: usize =
            cli::opt_flag(args, "--reply-bytes", "a number of bytes")?.unwrap_or(1000);
        cli::no_more_args(args)?;
        Ok::<_, ConfigError>((SocketAddr::new(bind, port), bytes))
    })();
    let (addr, bytes) = match parsed {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    cli::raise_fd_limit();
    let result = churn::baseline::serve(addr, bytes, |a| {
        eprintln!("baseline server: {bytes}-byte replies; listening on {a}");
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("churn baseline-server: {addr}: {e}");
            ExitCode::from(1)
        }
    }
}

fn usage_error(e: &ConfigError) -> ExitCode {
    eprintln!("churn: {e}");
    ExitCode::from(2)
}
