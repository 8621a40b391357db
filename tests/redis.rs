//! The Redis client against a real `redis-server`, each test starting its own in a
//! temporary directory: commands, a pipeline, a script after the server's cache is
//! flushed, a blocking stream read, a stopped server that must not stall the loop,
//! and a killed and restarted one that must be reconnected. The clients run on a
//! reactor in the test's own thread, driven a stage at a time.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use p2pchat::reactor::{Handler, Index, Options as ReactorOptions, Reactor, Request};
use p2pchat::redis::{Client, Event, Lost, Options, RedisUrl, Reply, Script, StreamReader};

/// A `redis-server` of the test's own, killed by its pid when dropped.
struct Redis {
    child: Child,
    dir: PathBuf,
}

impl Redis {
    /// Starts one listening on `dir/redis.sock` (and on `port`, if given), and
    /// waits for its readiness line.
    fn start(dir: &Path, port: Option<u16>, extra: &[&str]) -> Redis {
        std::fs::create_dir_all(dir).unwrap();
        let port = port.map_or("0".to_string(), |p| p.to_string());
        let sock = dir.join("redis.sock");
        let mut child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(&sock)
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let redis = Redis {
            child,
            dir: dir.to_path_buf(),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line)
                    if line
                        .to_ascii_lowercase()
                        .contains("ready to accept connections") =>
                {
                    return redis
                }
                Ok(_) => {}
                Err(e) => panic!("redis-server never said it was ready: {e}"),
            }
        }
    }

    fn url(&self) -> RedisUrl {
        let url = format!("unix://{}", self.dir.join("redis.sock").display());
        RedisUrl::parse(&url).unwrap()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to the child we started, still ours to wait for.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, sig) },
            0
        );
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2pchat-redis-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mark {
    Main,
    Feeder,
    Reader,
}

const TICK: usize = 10;
const DEADLINE: usize = 11;
const TICK_EVERY: Duration = Duration::from_millis(10);

/// The test daemon: three Redis connections, a ticking timer whose largest gap is
/// kept, and what the clients reported.
struct Daemon {
    main: Client<Mark>,
    feeder: Client<Mark>,
    reader: StreamReader<Mark>,
    events: Vec<(Mark, Event)>,
    last_tick: Option<Instant>,
    max_gap: Duration,
    goal: Box<dyn Fn(&Daemon) -> bool>,
    timed_out: bool,
}

impl Daemon {
    fn new(url: &RedisUrl) -> Daemon {
        let options = Options {
            backoff_max: Duration::from_millis(400),
            ..Options::default()
        };
        Daemon {
            main: Client::new(url.clone(), options, Mark::Main, 1),
            feeder: Client::new(url.clone(), options, Mark::Feeder, 2),
            reader: StreamReader::new(url.clone(), options, Mark::Reader, 3),
            events: Vec::new(),
            last_tick: None,
            max_gap: Duration::ZERO,
            goal: Box::new(|_| false),
            timed_out: false,
        }
    }

    fn reply(&self, mark: Mark, id: u64) -> Option<&Result<Reply, Lost>> {
        self.events.iter().find_map(|(m, e)| match e {
            Event::Reply(i, reply) if *m == mark && *i == id => Some(reply),
            _ => None,
        })
    }

    fn count(&self, mark: Mark, want: fn(&Event) -> bool) -> usize {
        self.events
            .iter()
            .filter(|(m, e)| *m == mark && want(e))
            .count()
    }

    /// Takes what the clients reported and stops the loop once the goal is met.
    fn settle(&mut self, r: &mut Reactor<Mark>) {
        while let Some(e) = self.main.next_event() {
            self.events.push((Mark::Main, e));
        }
        while let Some(e) = self.feeder.next_event() {
            self.events.push((Mark::Feeder, e));
        }
        while let Some(e) = self.reader.next_event() {
            self.events.push((Mark::Reader, e));
        }
        if (self.goal)(self) {
            r.stop();
        }
    }
}

impl Handler for Daemon {
    type Data = Mark;
    fn connection_request(&mut self, _r: &mut Reactor<Mark>, _l: Index, _req: Request) {}
    fn data_arrival(&mut self, r: &mut Reactor<Mark>, i: Index, data: &[u8]) {
        match r.data(i).copied() {
            Some(Mark::Main) => self.main.data_arrival(r, i, data),
            Some(Mark::Feeder) => self.feeder.data_arrival(r, i, data),
            Some(Mark::Reader) => self.reader.data_arrival(r, i, data),
            None => {}
        }
        self.settle(r);
    }
    fn close(&mut self, r: &mut Reactor<Mark>, i: Index, data: Mark) {
        match data {
            Mark::Main => self.main.close(r, i),
            Mark::Feeder => self.feeder.close(r, i),
            Mark::Reader => self.reader.close(r, i),
        }
        self.settle(r);
    }
    fn connect(&mut self, r: &mut Reactor<Mark>, i: Index) {
        match r.data(i).copied() {
            Some(Mark::Main) => self.main.connect(r, i),
            Some(Mark::Feeder) => self.feeder.connect(r, i),
            Some(Mark::Reader) => self.reader.connect(r, i),
            None => {}
        }
        self.settle(r);
    }
    fn error(&mut self, r: &mut Reactor<Mark>, i: Index, err: &std::io::Error) {
        match r.data(i).copied() {
            Some(Mark::Main) => self.main.error(i, err),
            Some(Mark::Feeder) => self.feeder.error(i, err),
            Some(Mark::Reader) => self.reader.error(i, err),
            None => {}
        }
    }
    fn timer(&mut self, r: &mut Reactor<Mark>, id: usize) {
        match id {
            TICK => {
                let now = Instant::now();
                if let Some(last) = self.last_tick {
                    self.max_gap = self.max_gap.max(now - last);
                }
                self.last_tick = Some(now);
                r.set_timer(TICK, now + TICK_EVERY);
            }
            DEADLINE => {
                self.timed_out = true;
                r.stop();
            }
            _ => {
                let _ =
                    self.main.timer(r, id) || self.feeder.timer(r, id) || self.reader.timer(r, id);
            }
        }
        self.settle(r);
    }
}

/// Runs the loop until `goal` holds, failing after `limit`.
fn wait(
    r: &mut Reactor<Mark>,
    d: &mut Daemon,
    limit: Duration,
    goal: impl Fn(&Daemon) -> bool + 'static,
) {
    d.goal = Box::new(goal);
    d.timed_out = false;
    // Gaps count only while the loop runs, not while the test thread works.
    d.last_tick = None;
    r.set_timer(DEADLINE, Instant::now() + limit);
    if !(d.goal)(d) {
        r.clear_stop();
        r.run(d).unwrap();
    }
    r.cancel_timer(DEADLINE);
    assert!(!d.timed_out, "timed out; events: {:?}", d.events);
}

/// A plain thread ticking beside the loop: how long the machine itself (two
/// cores shared by builds and other tests) kept a runnable thread waiting. A
/// loop blocked on a stopped server would miss seconds of ticks, not this.
struct Control {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Duration>,
}

impl Control {
    fn start() -> Control {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut last, mut max) = (Instant::now(), Duration::ZERO);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(TICK_EVERY);
                let now = Instant::now();
                max = max.max(now - last);
                last = now;
            }
            max
        });
        Control { stop, thread }
    }

    /// The largest gap the loop may show: 50 ms, plus what the machine took.
    fn allowed(self) -> Duration {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let machine = self.thread.join().unwrap().saturating_sub(TICK_EVERY);
        Duration::from_millis(50) + 2 * machine
    }
}

fn setup(url: &RedisUrl) -> (Reactor<Mark>, Daemon) {
    let mut r = Reactor::new(ReactorOptions::default()).unwrap();
    let mut d = Daemon::new(url);
    d.main.start(&mut r);
    d.feeder.start(&mut r);
    d.reader.start(&mut r);
    wait(&mut r, &mut d, Duration::from_secs(5), |d| {
        d.main.is_up() && d.feeder.is_up() && d.reader.is_up()
    });
    (r, d)
}

fn bulk(s: &str) -> Result<Reply, Lost> {
    Ok(Reply::Bulk(Some(s.as_bytes().to_vec())))
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn commands_a_pipeline_a_script_and_a_blocking_stream_read() {
    let redis = Redis::start(&temp_dir("commands"), None, &[]);
    let (mut r, mut d) = setup(&redis.url());
    let set = d.main.command(&mut r, &["SET", "greeting", "hello"]);
    let get = d.main.command(&mut r, &["GET", "greeting"]);
    let missing = d.main.command(&mut r, &["GET", "nothing"]);
    let incr = d.main.command(&mut r, &["INCR", "counter"]);
    let wrong = d.main.command(&mut r, &["INCR", "greeting"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, wrong).is_some()
    });
    assert_eq!(
        d.reply(Mark::Main, set),
        Some(&Ok(Reply::Simple(b"OK".to_vec())))
    );
    assert_eq!(d.reply(Mark::Main, get), Some(&bulk("hello")));
    assert_eq!(d.reply(Mark::Main, missing), Some(&Ok(Reply::Bulk(None))));
    assert_eq!(d.reply(Mark::Main, incr), Some(&Ok(Reply::Integer(1))));
    let refused = d.reply(Mark::Main, wrong).unwrap().as_ref().unwrap();
    assert!(
        refused.error_text().unwrap().starts_with("ERR"),
        "{refused:?}"
    );

    // A thousand commands at once, answered in order.
    let ids: Vec<u64> = (0..1000)
        .map(|_| d.main.command(&mut r, &["INCR", "counter"]))
        .collect();
    let last = *ids.last().unwrap();
    wait(&mut r, &mut d, Duration::from_secs(10), move |d| {
        d.reply(Mark::Main, last).is_some()
    });
    for (n, id) in ids.iter().enumerate() {
        assert_eq!(
            d.reply(Mark::Main, *id),
            Some(&Ok(Reply::Integer(n as i64 + 2)))
        );
    }

    // A script the server has forgotten is sent again with its source.
    let script = Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    let load = d.main.command(
        &mut r,
        &[
            "SCRIPT",
            "LOAD",
            std::str::from_utf8(script.source()).unwrap(),
        ],
    );
    let flush = d.main.command(&mut r, &["SCRIPT", "FLUSH"]);
    let first = d.main.evalsha(&mut r, &script, &["counter"], &["10"]);
    let second = d.main.evalsha(&mut r, &script, &["counter"], &["5"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, second).is_some()
    });
    assert_eq!(d.reply(Mark::Main, load), Some(&bulk(script.sha())));
    assert_eq!(
        d.reply(Mark::Main, flush),
        Some(&Ok(Reply::Simple(b"OK".to_vec())))
    );
    assert_eq!(d.reply(Mark::Main, first), Some(&Ok(Reply::Integer(1011))));
    assert_eq!(d.reply(Mark::Main, second), Some(&Ok(Reply::Integer(1016))));

    // A blocking read ends empty at its block time, then gets what another
    // connection adds while it waits.
    let idle = d
        .reader
        .xread(
            &mut r,
            &[(b"events", b"$")],
            None,
            Duration::from_millis(100),
        )
        .unwrap();
    assert!(
        d.reader
            .xread(&mut r, &[(b"events", b"$")], None, Duration::ZERO)
            .is_none(),
        "one read at a time"
    );
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Reader, idle).is_some()
    });
    assert_eq!(d.reply(Mark::Reader, idle), Some(&Ok(Reply::Array(None))));
    let read = d
        .reader
        .xread(
            &mut r,
            &[(b"events", b"$")],
            Some(10),
            Duration::from_secs(5),
        )
        .unwrap();
    let added = d
        .feeder
        .command(&mut r, &["XADD", "events", "*", "member", "10.0.0.1"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Reader, read).is_some() && d.reply(Mark::Feeder, added).is_some()
    });
    let Some(Ok(Reply::Bulk(Some(entry_id)))) = d.reply(Mark::Feeder, added).cloned() else {
        panic!("XADD: {:?}", d.reply(Mark::Feeder, added));
    };
    let want = Reply::Array(Some(vec![Reply::Array(Some(vec![
        Reply::Bulk(Some(b"events".to_vec())),
        Reply::Array(Some(vec![Reply::Array(Some(vec![
            Reply::Bulk(Some(entry_id)),
            Reply::Array(Some(vec![
                Reply::Bulk(Some(b"member".to_vec())),
                Reply::Bulk(Some(b"10.0.0.1".to_vec())),
            ])),
        ]))])),
    ]))]));
    assert_eq!(d.reply(Mark::Reader, read), Some(&Ok(want)));
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn a_stopped_server_stalls_nothing_and_a_restarted_one_is_reconnected() {
    let dir = temp_dir("restart");
    let redis = Redis::start(&dir, None, &[]);
    let (mut r, mut d) = setup(&redis.url());
    r.set_timer(TICK, Instant::now() + TICK_EVERY);

    // Stopped for two seconds: the command waits, the loop does not.
    redis.signal(libc::SIGSTOP);
    let set = d.main.command(&mut r, &["SET", "k", "v"]);
    let stopped = Instant::now();
    let control = Control::start();
    wait(&mut r, &mut d, Duration::from_secs(5), move |_| {
        stopped.elapsed() >= Duration::from_secs(2)
    });
    assert!(
        d.reply(Mark::Main, set).is_none(),
        "redis answered while stopped"
    );
    let allowed = control.allowed();
    assert!(
        d.max_gap < allowed,
        "the loop stalled for {:?} (allowed {allowed:?})",
        d.max_gap
    );
    println!(
        "largest gap between ticks while redis was stopped: {:?}",
        d.max_gap
    );
    redis.signal(libc::SIGCONT);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, set).is_some()
    });
    assert_eq!(d.count(Mark::Main, |e| matches!(e, Event::Down(_))), 0);

    // Killed: the loss is reported once, however long it lasts, and commands
    // fail at once instead of piling up.
    drop(redis);
    wait(&mut r, &mut d, Duration::from_secs(5), |d| {
        d.count(Mark::Main, |e| matches!(e, Event::Down(_))) > 0
    });
    let refused = d.main.command(&mut r, &["GET", "k"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, refused).is_some()
    });
    assert_eq!(d.reply(Mark::Main, refused), Some(&Err(Lost)));
    let down_since = Instant::now();
    wait(&mut r, &mut d, Duration::from_secs(5), move |_| {
        down_since.elapsed() >= Duration::from_secs(1)
    });
    assert_eq!(
        d.count(Mark::Main, |e| matches!(e, Event::Down(_))),
        1,
        "{:?}",
        d.events
    );

    // Back: reconnected within the back-off, and working.
    let redis = Redis::start(&dir, None, &[]);
    let control = Control::start();
    d.max_gap = Duration::ZERO;
    let ups = d.count(Mark::Main, |e| *e == Event::Up);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.count(Mark::Main, |e| *e == Event::Up) > ups
    });
    let get = d.main.command(&mut r, &["SET", "k", "again"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, get).is_some()
    });
    assert_eq!(
        d.reply(Mark::Main, get),
        Some(&Ok(Reply::Simple(b"OK".to_vec())))
    );
    let allowed = control.allowed();
    assert!(
        d.max_gap < allowed,
        "the loop stalled for {:?} (allowed {allowed:?})",
        d.max_gap
    );
    drop(redis);
}

/// A port free a moment ago, for a server that cannot report the one it got
/// (Redis's `--port 0` means no TCP at all).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn tcp_with_a_password_and_a_database() {
    let port = free_port();
    let _redis = Redis::start(&temp_dir("auth"), Some(port), &["--requirepass", "s3cret"]);
    let on = |db: u32| RedisUrl::parse(&format!("redis://:s3cret@localhost:{port}/{db}")).unwrap();
    let (mut r, mut d) = setup(&on(2));
    let set = d.main.command(&mut r, &["SET", "where", "db2"]);
    wait(&mut r, &mut d, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, set).is_some()
    });
    let mut other = Daemon::new(&on(0));
    other.main.start(&mut r);
    wait(&mut r, &mut other, Duration::from_secs(5), |d| {
        d.main.is_up()
    });
    let get = other.main.command(&mut r, &["GET", "where"]);
    wait(&mut r, &mut other, Duration::from_secs(5), move |d| {
        d.reply(Mark::Main, get).is_some()
    });
    assert_eq!(
        other.reply(Mark::Main, get),
        Some(&Ok(Reply::Bulk(None))),
        "SELECT 2 took effect"
    );

    let bad = RedisUrl::parse(&format!("redis://:wrong@127.0.0.1:{port}")).unwrap();
    let mut refused = Daemon::new(&bad);
    refused.main.start(&mut r);
    wait(&mut r, &mut refused, Duration::from_secs(5), |d| {
        d.count(Mark::Main, |e| matches!(e, Event::Down(_))) > 0
    });
    let down = refused.events.iter().find_map(|(_, e)| match e {
        Event::Down(why) => Some(why.clone()),
        _ => None,
    });
    assert!(
        down.as_deref()
            .unwrap()
            .starts_with("AUTH refused: WRONGPASS"),
        "{down:?}"
    );
}
