//! `churn`: the load generator. Parses flags, starts logging, runs, prints the
//! summary in the format asked for and writes the files asked for.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use p2pchat::churn::baseline::{self, Baseline};
use p2pchat::churn::report::compare;
use p2pchat::churn::{self, args, Config, Mode, Progress, Protocol, Sender};
use p2pchat::cli::{self, Unit};
use p2pchat::config::ConfigError;

const HELP: &str = "\
churn - a connection-churn load generator for the p2pchat connection manager,
and for any TCP server

Plays many clients at once from one single-threaded event loop and reports
throughput, a latency percentile ladder and errors, second by second and in
total (in the manner of redis-benchmark, wrk2 and memtier). docs/CHURN.md is the
benchmarker's guide.

USAGE:
    churn join-leave [OPTIONS]   each client: connect, ask (`needs peer list`, or
                                 --request), read the whole answer, close; again.
                                 Reports cycles/s and cycle latency. With
                                 --keep-alive, asks again on the same connection.
    churn steady [OPTIONS]       --steady N servants stay connected and ask every
                                 --interval; reports their answer latency (and,
                                 with -c, that of churners in this same process,
                                 which delay them: run churners from another churn).
    churn fanout [OPTIONS]       -c servants register and listen on the ports the
                                 manager gives them; a sender sends numbered lines to
                                 every peer, one at a time; reports the time until
                                 the last listener has each line.
    churn flood [OPTIONS]        -c connections at a manager that is full (past its
                                 --max-servants): each connects, sends nothing, reads
                                 the refusal, closes, and connects again at once.
                                 Reports refusals/s and connect-to-refusal time.
    churn compare A.json B.json  two --json summaries side by side, ratios B/A
    churn baseline-server [--bind ADDR] [--port N] [--reply-bytes N | --reply STR]
                          [--request-end STR] [--close]
                                 a trivial mio server answering every request (bytes
                                 up to --request-end, default \\n) with the same
                                 bytes from a static buffer: N bytes framed as a
                                 peer document [default: 1000], or STR; --close
                                 hangs up after each reply (the benchmarks' baseline)

TARGET AND PROTOCOL:
    -t, --target HOST[:PORT]  the server [default: 127.0.0.1:85; port 85 if left out]
    --request STR           join-leave: send STR instead of `needs peer list`, to
                            any TCP server; escapes \\r \\n \\t \\0 \\\\ \\xNN
    --expect STR            an answer is whole when the bytes received end with
                            STR; without it, when the server closes
                            (redis: --request 'PING\\r\\n' --expect '+PONG\\r\\n')
    --keep-alive            join-leave: keep each connection and ask again on it
                            (with --request, needs --expect)

LOAD:
    -c, --concurrency N     clients at once: join-leave and steady churners, kept
                            connections, fanout listeners, flood connections;
                            with --rate, the most in flight
                            [default: 50; steady: 0; fanout: 100; flood: 1000]
    --rate N                join-leave: start N cycles (or requests) per second
                            whatever the answers do, and time each from when it
                            was due: a stalled server shows in every latency it
                            delayed (no coordinated omission). Also shows the
                            service time, from the actual start [default: each
                            client starts again when done]
    -n, --count N           stop after N measured cycles (join-leave), steady
                            answers (steady), lines (fanout) or refusals (flood)
    -d, --duration TIME     stop after measuring this long [default: 10s, unless -n]
    --warmup TIME           run this long before measuring [default: 0]
    --interval TIME         steady: time between one servant's requests [default: 1s];
                            fanout: pause between lines [default: 0]
    --steady N              steady: servants that stay connected [default: 100]
    --bind ADDRS            source addresses, used in turn, one per connection: an
                            address, a list or a range, e.g. 127.0.0.2-127.0.0.40,
                            so that ephemeral ports do not run out [default: chosen
                            by the OS]
    --timeout TIME          per cycle, answer, line or refusal; later counts as an
                            error [default: 5s]
    --verify                parse every whole document; check it names the asker
                            exactly once (costs client CPU)
    --bare                  play the article's servants: ask `needs peer list` and
                            get the whole document every time. By default each
                            connection says the version it has (`needs peer list
                            since N`) and follows the manager's deltas
    --stay TIME             churners stay this long after their answer before they
                            leave (from half to one and a half times it, at
                            random), so each makes a join and a leave that steady
                            servants see; in steady mode their lists are timed
                            until they show each change (give churners their own
                            source addresses with --bind) [default: 0]
    --server-pid PID        report this process's CPU per operation and % of a core
                            (each second too) and its memory, read from /proc
    --sender servant|self   fanout: who sends the lines [default: servant if one is
                            found, else self]
    --servant PATH          the servant binary for --sender servant [default: the
                            `servant` next to this churn]

OUTPUT:
    --json                  the summary as one JSON object on stdout: version,
                            arguments, start time, figures, the first error of each
                            kind, and the series of seconds; the human summary then
                            goes to stderr
    --csv                   the summary as a CSV header and row like
                            redis-benchmark --csv, plus errors, on stdout; the human
                            summary then goes to stderr
    --hdr FILE              write the latencies in HdrHistogram's percentile
                            distribution format (milliseconds), for its plotters
    --svg FILE              draw throughput, p50/p99/max latency and CPU over time
                            as an SVG file a browser opens
    --quiet                 no line per second on stderr (on a terminal, one line
                            is rewritten; otherwise a line per second is kept)
    --log-level LEVEL       off, error, warn, info, debug or trace [default: warn]
    -h, --help              print this help
    -V, --version           print the version

TIME is a number and a unit: 10s, 500ms, 2m. A bare number keeps the flag's old
unit: seconds for -d and --warmup, milliseconds for --interval and --timeout.
Flags take `--flag VALUE` or `--flag=VALUE`, once each.

Every failed operation is counted by kind (connect_refused, connect_failed,
reset, timeout, closed_early, malformed, refused_full, ...) and shown with its
first message, server bytes escaped as --expect takes them. SIGINT stops the run
and prints what was measured. Raise the manager's --max-servants for big runs,
and run it with --push-interval 0 when pushes would be mistaken for answers.

EXIT STATUS: 0 when every operation succeeded, 3 when some failed (see the
summary), 1 if the run could not be done, 2 for bad options.
";

/// What to do with a finished run, besides printing the human summary.
struct Output {
    json: bool,
    csv: bool,
    hdr: Option<PathBuf>,
    svg: Option<PathBuf>,
    log_level: Option<String>,
}

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
                "missing: join-leave, steady, fanout, flood or compare (see --help)",
            ))
        }
        Err(e) => return usage_error(&ConfigError::new("MODE", e.to_string())),
    };
    match mode.as_str() {
        "baseline-server" => return baseline_server(&mut args),
        "compare" => return compare(args),
        _ => {}
    }
    let Some(mode) = Mode::parse(&mode) else {
        return usage_error(&ConfigError::new(
            mode,
            "unknown mode: use join-leave, steady, fanout, flood, compare or baseline-server",
        ));
    };
    let (config, out) = match parse(mode, &mut args) {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    let level = out
        .log_level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").is_err().then(|| "warn".into()));
    if let Err(e) = cli::init_logging(level.as_deref()) {
        return usage_error(&e);
    }
    let report = match churn::run(config) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("churn: {e}");
            return ExitCode::from(1);
        }
    };
    if out.json {
        eprint!("{}", report.text());
        println!("{}", report.json());
    } else if out.csv {
        eprint!("{}", report.text());
        print!("{}", report.csv());
    } else {
        print!("{}", report.text());
    }
    let files = [(&out.hdr, report.hdr()), (&out.svg, report.svg())];
    for (path, text) in files {
        let Some(path) = path else { continue };
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("churn: cannot write {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if report.failures.total() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    }
}

fn parse(mode: Mode, args: &mut pico_args::Arguments) -> Result<(Config, Output), ConfigError> {
    let command_line = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let target: String = opt(args, Flag("--target", Some("-t")), "HOST[:PORT]")?
        .unwrap_or_else(|| "127.0.0.1".into());
    let target =
        args::target(&target, churn::MANAGER_PORT).map_err(|e| ConfigError::new("--target", e))?;
    let mut c = Config::new(mode, target);
    c.args = command_line;
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
    cli::no_more_args(args)?;
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
fn secs(args: &mut pico_args::Arguments, flag: Flag) -> Result<Option<Duration>, ConfigError> {
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

fn compare(args: pico_args::Arguments) -> ExitCode {
    let files = args.finish();
    let [a, b] = &files[..] else {
        return usage_error(&ConfigError::new(
            "compare",
            "needs two JSON summaries: churn compare A.json B.json",
        ));
    };
    match compare::files(Path::new(a), Path::new(b)) {
        Ok(table) => {
            print!("{table}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("churn compare: {e}");
            ExitCode::from(1)
        }
    }
}

fn baseline_server(args: &mut pico_args::Arguments) -> ExitCode {
    let parsed = (|| {
        let bind: std::net::IpAddr =
            cli::opt_flag(args, "--bind", "an IP address")?.unwrap_or([127, 0, 0, 1].into());
        let port: u16 = cli::opt_flag(args, "--port", "a port number")?.unwrap_or(0);
        let size: Option<usize> = cli::opt_flag(args, "--reply-bytes", "a number of bytes")?;
        let reply = bytes(args, "--reply")?;
        let end = bytes(args, "--request-end")?;
        let close = args.contains("--close");
        cli::no_more_args(args)?;
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
        Ok::<_, ConfigError>((SocketAddr::new(bind, port), b))
    })();
    let (addr, b) = match parsed {
        Ok(v) => v,
        Err(e) => return usage_error(&e),
    };
    cli::raise_fd_limit();
    let result = baseline::serve(addr, &b, |a| {
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
