//! The relay's cost, across real network namespaces ([`p2pchat_harness::netns`]):
//!
//! - delivery latency, p50 and p99, from a public servant typing a line to it being
//!   shown by a servant behind the NAT router (through its relay) and by a public
//!   servant (directly). Target: relayed p99 <= 2x direct p99.
//! - the relay's CPU per forwarded line: its CPU over the run per line, next to the
//!   direct receiver's (which shows each line but forwards nothing).
//!
//! Topology: the manager, rita (the relay: joins first, so the manager checks and
//! picks her), sam (the sender) and dan (direct) on the public segment; nora behind
//! the router. Lines go one at a time: each is typed once both receivers showed the
//! one before, so this measures latency, not throughput.
//!
//! `cargo bench --bench relay`; `P2PCHAT_BENCH_QUICK=1` sends a few lines only and
//! asserts nothing. Needs root, `ip` and `nft`; without them it says why and stops
//! (an error if `P2PCHAT_REQUIRE_NETNS=1`).
//!
//! `cargo bench --bench relay -- private` runs the latency twice in one sitting,
//! the same topology as a plaintext network and then as a private one (keys and a
//! members file; what the relay carries for nora is sealed end to end,
//! docs/PRIVATE.md#relays), and prints both; it asserts nothing.
//!
//! `cargo bench --bench relay -- soak` instead soaks the relay for 10 minutes with
//! the manager's default probe settings: sam types a line every 100 ms, without
//! waiting; every line must reach nora once, and the manager must change no relay.
//! It prints the lines, the probes sent and answered (from the manager's log), and
//! the relay changes.

use std::time::{Duration, Instant};

use p2pchat::churn::procfs;
use p2pchat_harness::netns::{self, Internet, HOME_IPS, MANAGER_IP, PUBLIC_IPS};
use p2pchat_harness::{servant_args, Process, Spawn, LISTENING};

const STEP: Duration = Duration::from_secs(20);
const SOAK: Duration = Duration::from_secs(600);
const SOAK_EVERY: Duration = Duration::from_millis(100);

fn quick() -> bool {
    std::env::var_os("P2PCHAT_BENCH_QUICK").is_some_and(|v| v != "0")
        || std::env::args().any(|a| a == "--quick")
}

fn start(net: &Internet, ns: &str, bin: &str, name: &str, args: &[&str]) -> Process {
    Spawn::command(net.exec(ns, bin))
        .args(args)
        .name(name)
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn soak() -> bool {
    std::env::args().any(|a| a == "soak")
}

fn private_mode() -> bool {
    std::env::args().any(|a| a == "private")
}

fn main() {
    let net = match Internet::build() {
        Ok(net) => net,
        Err(why) if netns::required() => panic!("{}=1, but: {why}", netns::REQUIRE),
        Err(why) => return println!("relay bench skipped: {why}"),
    };
    let lines = if quick() { 30 } else { 2000 };
    let config =
        std::env::temp_dir().join(format!("p2pchat-relay-bench-{}.xml", std::process::id()));
    std::fs::write(&config, "<config/>\n").unwrap();
    run(&net, &config, None, lines);
    if private_mode() {
        let dir = std::env::temp_dir().join(format!("p2pchat-relay-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        run(&net, &config, Some(&dir), lines);
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(config);
    drop(net);
}

/// Keys for the manager and each member in `dir`, and the members file; the
/// manager's public key.
fn keys(dir: &std::path::Path, members: &[&str]) -> String {
    let key = |name: &str| {
        let pair = p2pchat::noise::Keypair::generate().unwrap();
        pair.save_new(&dir.join(format!("{name}.key"))).unwrap();
        pair.public().to_string()
    };
    let manager = key("connmgr");
    let mut text = String::from("<members>\n");
    for name in members {
        let k = key(name);
        text += &format!("<member><name>{name}</name><key>{k}</key></member>\n");
    }
    std::fs::write(dir.join("members.xml"), text + "</members>\n").unwrap();
    manager
}

/// One network, plaintext or (with a folder for keys) private: the manager and
/// the four servants, nora relayed through rita, then the latency or the soak.
fn run(net: &Internet, config: &std::path::Path, private: Option<&std::path::Path>, lines: usize) {
    let cfg = config.to_str().unwrap();
    let names = ["rita", "sam", "dan", "nora"];
    let manager_key = private.map(|dir| keys(dir, &names));
    let path = |name: &str| private.map(|d| d.join(name).to_string_lossy().into_owned());
    let (key_of, members) = (path("connmgr.key"), path("members.xml"));
    let mut manager_args = vec![
        "--bind",
        MANAGER_IP,
        "--port",
        "0",
        "--relay-dial-timeout",
        "500",
        // The soak counts probes in the manager's log.
        "--log-level",
        if soak() { "debug" } else { "info" },
    ];
    if let (Some(k), Some(m)) = (&key_of, &members) {
        manager_args.extend(["--key", k, "--members", m]);
    }
    let manager = start(
        net,
        &net.public,
        env!("CARGO_BIN_EXE_connmgr"),
        "connmgr",
        &manager_args,
    );
    let addr = manager.listening_addr(STEP).unwrap().to_string();
    let servant = |ns: &str, ip: &str, name: &str| {
        let mut args = [&servant_args(&addr, ip, name)[..], &["--config", cfg]].concat();
        let key = path(&format!("{name}.key"));
        if let (Some(k), Some(m)) = (&key, &manager_key) {
            args.extend(["--key", k, "--manager-key", m]);
        }
        let p = start(net, ns, env!("CARGO_BIN_EXE_servant"), name, &args);
        p.wait_for(LISTENING, STEP).unwrap();
        p
    };
    let rita = servant(&net.public, PUBLIC_IPS[0], "rita");
    let mut sam = servant(&net.public, PUBLIC_IPS[1], "sam");
    let dan = servant(&net.public, PUBLIC_IPS[2], "dan");
    let mut nora = servant(&net.home, HOME_IPS[0], "nora");
    for p in [&rita, &sam, &dan, &nora] {
        if p.count("peers: 4 (") == 0 {
            p.wait_for("peers: 4 (", STEP).unwrap();
        }
    }
    // nora cannot reach herself: the manager checks her, marks her, names rita.
    nora.type_line("hello?").unwrap();
    let line = nora.wait_for("pulling from the relay at ", STEP).unwrap();
    assert!(line.ends_with(&format!("{}:2224", PUBLIC_IPS[0])), "{line}");
    rita.wait_for("relaying for", STEP).unwrap();
    // On a private network sam seals for nora only once his list says she is
    // relayed (the last entry, the newest port).
    for p in [&sam, &dan] {
        if p.count("relayed)") == 0 {
            p.wait_for("relayed)", STEP).unwrap();
        }
    }
    for p in [&rita, &sam, &dan, &nora] {
        while p.stdout_line(Duration::from_millis(300)).is_ok() {}
    }

    if soak() {
        soak_run(&manager, &mut sam, &nora);
    } else {
        let kind = if private.is_some() {
            "private"
        } else {
            "plaintext"
        };
        latency(kind, lines, &rita, &mut sam, &dan, &nora);
    }
    for mut p in [rita, sam, dan, nora] {
        p.stdin = None;
        let _ = p.wait_exit(STEP);
    }
    drop(manager);
}

/// Sam types `lines` lines one at a time; latency to dan (direct) and to nora
/// (relayed), and rita's and dan's CPU per line.
fn latency(
    kind: &str,
    lines: usize,
    rita: &Process,
    sam: &mut Process,
    dan: &Process,
    nora: &Process,
) {
    let cpu = |p: &Process| procfs::cpu_ns(p.pid()).map(|(ns, _)| ns).unwrap_or(0);
    let (rita0, dan0) = (cpu(rita), cpu(dan));
    let (mut direct, mut relayed) = (Vec::with_capacity(lines), Vec::with_capacity(lines));
    let began = Instant::now();
    // Each of sam's batches is a connection of its own: on a private network, a
    // handshake (two a line to rita: the line, and the frame for nora), and a
    // receiver takes at most 128 a second from one address.
    let pace = match kind {
        "private" => Duration::from_millis(20),
        _ => Duration::ZERO,
    };
    let mut typed = Instant::now();
    for k in 0..lines {
        std::thread::sleep((typed + pace).saturating_duration_since(Instant::now())); // the typing pace
        typed = Instant::now();
        let text = format!("line {k}");
        let want = format!("sam: {text}");
        sam.type_line(&text).unwrap();
        let t0 = Instant::now();
        let wait = |p: &Process| {
            let got = p
                .stdout_line(STEP)
                .unwrap_or_else(|e| panic!("{e}\nthe relay's log:\n{}", rita.log_text()));
            assert_eq!(got, want, "{} showed the wrong line", p.name());
            t0.elapsed()
        };
        let (d, n) = std::thread::scope(|s| {
            let d = s.spawn(|| wait(dan));
            let n = s.spawn(|| wait(nora));
            (d.join().unwrap(), n.join().unwrap())
        });
        direct.push(d);
        relayed.push(n);
        // sam shows his own line too; keep his window read.
        sam.stdout_line(STEP).unwrap();
        rita.stdout_line(STEP).unwrap();
    }
    let elapsed = began.elapsed();
    let (rita_cpu, dan_cpu) = (cpu(rita) - rita0, cpu(dan) - dan0);
    direct.sort_unstable();
    relayed.sort_unstable();
    let (d99, n99) = (percentile(&direct, 0.99), percentile(&relayed, 0.99));
    let ratio = n99.as_secs_f64() / d99.as_secs_f64();
    println!(
        "relay, {kind}: {lines} lines from sam, one at a time ({:.1} s)",
        elapsed.as_secs_f64()
    );
    println!(
        "  direct  (dan):  p50 {}  p99 {}",
        ms(percentile(&direct, 0.5)),
        ms(d99)
    );
    println!(
        "  relayed (nora): p50 {}  p99 {}   p99 ratio {ratio:.2} (target <= 2.00)",
        ms(percentile(&relayed, 0.5)),
        ms(n99)
    );
    let per = |ns: u64| ns as f64 / lines as f64 / 1000.0;
    println!(
        "  CPU per line: relay (rita) {:.1} us, direct receiver (dan) {:.1} us; forwarding costs {:.1} us",
        per(rita_cpu),
        per(dan_cpu),
        per(rita_cpu.saturating_sub(dan_cpu))
    );
    if !quick() && kind == "plaintext" {
        assert!(ratio <= 2.0, "relayed p99 is {ratio:.2}x direct");
    }
}

/// Sam types a line every [`SOAK_EVERY`] for [`SOAK`]; every one must reach nora
/// once, through rita, and the manager must keep rita as nora's relay throughout.
fn soak_run(manager: &Process, sam: &mut Process, nora: &Process) {
    let changes = |m: &Process| m.count("pulls from offset") + m.count("probes in a row");
    let (sent0, answered0, changes0) = (
        manager.count("relay: probing offset"),
        manager.count("forwarded a probe to offset"),
        changes(manager),
    );
    let total = (SOAK.as_millis() / SOAK_EVERY.as_millis()) as usize;
    let began = Instant::now();
    for k in 0..total {
        let at = began + SOAK_EVERY * k as u32;
        std::thread::sleep(at.saturating_duration_since(Instant::now())); // the typing pace
        sam.type_line(&format!("soak {k}")).unwrap();
    }
    let mut seen = vec![0u32; total];
    let mut missing = total;
    while missing > 0 {
        let Ok(line) = nora.stdout_line(STEP) else {
            break;
        };
        if let Some(k) = line.strip_prefix("sam: soak ") {
            let k: usize = k.parse().unwrap();
            missing -= usize::from(seen[k] == 0);
            seen[k] += 1;
        }
    }
    let twice = seen.iter().filter(|&&c| c > 1).count();
    let sent = manager.count("relay: probing offset") - sent0;
    let answered = manager.count("forwarded a probe to offset") - answered0;
    let changed = changes(manager) - changes0;
    println!(
        "relay soak: {:.0} s, a line every {} ms: {total} sent, {} delivered to nora ({twice} twice)",
        began.elapsed().as_secs_f64(),
        SOAK_EVERY.as_millis(),
        total - missing
    );
    println!(
        "  probes (default settings): {sent} sent, {answered} answered; relay changes: {changed}"
    );
    assert_eq!(
        (missing, twice, changed),
        (0, 0, 0),
        "{}",
        manager.log_text()
    );
}
