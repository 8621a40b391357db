//! What an operator relies on, with the real binaries: the static build running in
//! an empty root, systemd's notify protocol, SIGHUP reloads, journald-style lines,
//! and the flag conventions.

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{bin, client, connect_from, Daemon, DEADLINE};
use p2pchat::resolve::dns;

/// A file or socket in the temp directory, removed when dropped.
struct Temp(PathBuf);

impl Temp {
    fn new(name: &str) -> Temp {
        let p = std::env::temp_dir().join(format!("p2pchat-ops-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&p);
        Temp(p)
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where `cargo build-static` puts its binaries, beside this build's target/debug
/// (the build script's, not `bin`'s, which may already be the static one).
fn static_dir() -> PathBuf {
    PathBuf::from(env!("P2PCHAT_STATIC_DIR"))
}

/// Whether an ELF file asks for a program interpreter (a dynamic loader).
fn has_interpreter(elf: &[u8]) -> bool {
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let word = |at: usize, n: usize| {
        let mut v = 0u64;
        for (i, b) in elf[at..at + n].iter().enumerate() {
            v |= u64::from(*b) << (8 * i);
        }
        v as usize
    };
    let (phoff, phentsize, phnum) = (word(0x20, 8), word(0x36, 2), word(0x38, 2));
    (0..phnum).any(|i| word(phoff + i * phentsize, 4) == 3) // PT_INTERP
}

/// The static connmgr and servant. The tests using them are ignored where they
/// cannot run (build.rs); one run anyway fails saying what is missing.
fn static_binaries() -> (PathBuf, PathBuf) {
    let dir = static_dir();
    let (m, s) = (dir.join("connmgr"), dir.join("servant"));
    assert!(
        m.is_file() && s.is_file(),
        "no static build in {} (run `cargo build-static`)",
        dir.display()
    );
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "an empty root (unshare --root) and port 53 need root");
    (m, s)
}

/// Copies `bin` into `root` with `cp`, not `std::fs::copy`: a copy made here
/// holds the new file open for writing, and a child that another test thread
/// forks meanwhile inherits that descriptor until it execs; executing the copy
/// then fails with "Text file busy". `cp`'s descriptor is never ours to leak.
fn copy_in(bin: &Path, root: &Temp) {
    let status = Command::new("cp").arg(bin).arg(&root.0).status().unwrap();
    assert!(status.success(), "cp {} {}", bin.display(), root.path());
}

/// Runs `program` with `root` as its root directory, nothing else mounted.
fn in_root(root: &Temp, program: &str, args: &[&str]) -> Daemon {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--root", root.path(), program])
        .args(args);
    Daemon::spawn_command(cmd)
}

#[test]
#[cfg_attr(
    any(p2pchat_no_root, p2pchat_no_static),
    ignore = "needs root and `cargo build-static`"
)]
fn static_binaries_chat_in_an_empty_root() {
    let (m, s) = static_binaries();
    let root = Temp::new("root");
    std::fs::create_dir(&root.0).unwrap();
    for bin in [&m, &s] {
        let bytes = std::fs::read(bin).unwrap();
        assert!(!has_interpreter(&bytes), "{} is not static", bin.display());
        eprintln!("{}: {} bytes", bin.display(), bytes.len());
        copy_in(bin, &root);
    }
    // Their sizes against the 1 MiB target are a benchmark figure (`cargo bench
    // --bench churn -- sizes`, docs/BENCHMARKS.md), not a pass or fail here.
    let inside = |program: &str, args: &[&str]| in_root(&root, program, args);
    let manager = inside("/connmgr", &["--bind", "127.0.0.1", "--port", "0"]);
    let at = manager.listening_addr().to_string();
    let servant = |bind: &str, name: &str| {
        let args = ["--connmgr", &at, "--bind", bind, "--name", name];
        inside(
            "/servant",
            &[&args[..], &["--poll-interval", "100ms"]].concat(),
        )
    };
    let mut alice = servant("127.0.0.2", "alice");
    alice.wait_for("listening on");
    let mut bob = servant("127.0.0.3", "bob");
    // A servant logs the list it got, then listens on the port it names.
    bob.wait_for("peers: 2");
    bob.wait_for("listening on");
    alice.wait_for("peers: 2");
    alice.type_line("hello from an empty root");
    bob.type_line("and back");
    for s in [&alice, &bob] {
        let mut seen: Vec<String> = (0..2).filter_map(|_| s.stdout_line()).collect();
        seen.sort();
        assert_eq!(
            seen,
            ["alice: hello from an empty root", "bob: and back"],
            "{}",
            s.log_text()
        );
    }
    drop((alice, bob, manager));
    // Nothing was needed inside but the two binaries: no /dev, /proc or /etc.
    let mut inside: Vec<String> = std::fs::read_dir(&root.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inside.sort();
    assert_eq!(inside, ["connmgr", "servant"]);
}

/// A pretend DNS server on `addr` port 53 (root only) that knows one name, for
/// the servant in an empty root to look up. Answers until the test process ends.
fn pretend_dns(addr: &str, name: &'static str, ip: IpAddr) {
    let socket = std::net::UdpSocket::bind((addr, 53)).expect("port 53 (needs root)");
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let Some(question) = dns::question(&buf[..n]) else {
                continue;
            };
            let (rcode, addrs) = match (question.qname == name, question.qtype) {
                (true, dns::A) => (0, vec![ip]),
                (true, _) => (0, vec![]),
                (false, _) => (3, vec![]), // NXDOMAIN
            };
            if let Some(reply) = dns::answer(&buf[..n], rcode, &addrs) {
                let _ = socket.send_to(&reply, from);
            }
        }
    });
}

#[test]
#[cfg_attr(
    any(p2pchat_no_root, p2pchat_no_static),
    ignore = "needs root and `cargo build-static`"
)]
fn a_static_servant_looks_names_up_in_an_empty_root() {
    let (m, s) = static_binaries();
    // The root holds the binaries and the two files a resolver reads: the
    // manager's name in /etc/hosts, a DNS server for everything else.
    let root = Temp::new("named-root");
    std::fs::create_dir_all(root.0.join("etc")).unwrap();
    for bin in [&m, &s] {
        copy_in(bin, &root);
    }
    std::fs::write(root.0.join("etc/hosts"), "127.0.0.1 chatmgr.test\n").unwrap();
    std::fs::write(
        root.0.join("etc/resolv.conf"),
        "nameserver 127.0.89.53\noptions timeout:2 attempts:1\n",
    )
    .unwrap();
    pretend_dns("127.0.89.53", "mallory.test", "127.0.89.7".parse().unwrap());
    let inside = |program: &str, args: &[&str]| in_root(&root, program, args);
    let manager = inside("/connmgr", &["--bind", "127.0.0.1", "--port", "0"]);
    let port = manager.listening_addr().port().to_string();
    let at = format!("chatmgr.test:{port}");
    let alice = inside(
        "/servant",
        &[
            "--connmgr",
            &at,
            "--bind",
            "127.0.89.2",
            "--ban",
            "mallory.test",
            "--headless",
        ],
    );
    // The lookup and the listener come in either order: the line may already be in.
    let chat = alice.listening_addr();
    let resolved = "banned host names now stand for 1 address(es): 127.0.89.7";
    if alice.count(resolved) == 0 {
        alice.wait_for(resolved);
    }
    // Bob is a listed servant: a line is shown only from an address on the list.
    let _bob = inside(
        "/servant",
        &[
            "--connmgr",
            &at,
            "--bind",
            "127.0.89.3",
            "--name",
            "bob",
            "--headless",
        ],
    );
    alice.wait_for("peers: 2");
    // Mallory, at the address the name stands for, is refused; Bob is heard, named
    // by the list.
    let mut mallory = connect_from("127.0.89.7", chat);
    let _ = mallory.write_all(b"let me in\n");
    alice.wait_for("refusing 127.0.89.7: banned");
    let mut bob = connect_from("127.0.89.3", chat);
    bob.write_all(b"hello\n").unwrap();
    drop(bob);
    assert_eq!(alice.stdout_line().as_deref(), Some("bob: hello"));
}

/// Receives one datagram from `socket` as text, within the deadline.
fn recv(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notification within the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn connmgr_tells_systemd_ready_reloading_and_stopping() {
    let sock = Temp::new("notify.sock");
    let systemd = UnixDatagram::bind(&sock.0).unwrap();
    systemd.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut cmd = Command::new(bin("connmgr"));
    cmd.args(["--bind", "127.0.0.1", "--port", "0"])
        .env("NOTIFY_SOCKET", &sock.0);
    let mut m = Daemon::spawn_command(cmd);
    m.listening_addr();
    assert_eq!(recv(&systemd), format!("READY=1\nMAINPID={}", m.pid()));
    m.signal(libc::SIGHUP);
    let reloading = recv(&systemd);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(recv(&systemd).starts_with("READY=1"));
    m.signal(libc::SIGTERM);
    assert_eq!(recv(&systemd), "STOPPING=1");
    assert_eq!(m.wait_exit(), Some(0));
}

#[test]
fn a_servant_notifies_an_abstract_socket() {
    let name = format!("p2pchat-ops-{}", std::process::id());
    let addr = {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap()
    };
    let systemd = UnixDatagram::bind_addr(&addr).unwrap();
    systemd.set_read_timeout(Some(DEADLINE)).unwrap();
    let (_m, at) = common::connmgr(&[]);
    let mut cmd = Command::new(bin("servant"));
    cmd.args(["--headless", "--connmgr", &at.to_string()])
        .args(["--bind", "127.0.0.2"])
        .env("NOTIFY_SOCKET", format!("@{name}"));
    let mut s = Daemon::spawn_command(cmd);
    assert!(recv(&systemd).starts_with("READY=1\nMAINPID="));
    s.signal(libc::SIGTERM);
    assert_eq!(recv(&systemd), "STOPPING=1");
    assert_eq!(s.wait_exit(), Some(0));
}

/// Reads from `s` until `pattern` shows up or the peer closes; returns what came.
fn read_until(s: &mut std::net::TcpStream, pattern: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(pattern) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn sighup_applies_connmgr_limits_and_log_level_and_a_bad_file_changes_nothing() {
    let file = Temp::new("connmgr.xml");
    file.write(
        "<connmgr><bind>127.0.0.1</bind><port>0</port><maxservants>5</maxservants></connmgr>",
    );
    let m = Daemon::spawn(&bin("connmgr"), &["--config", file.path()]);
    let addr = m.listening_addr();
    let _first = client(addr);
    m.wait_for("joined:");

    file.write(
        "<connmgr><bind>127.0.0.1</bind><port>0</port><maxservants>1</maxservants>\
         <idletimeout>1m</idletimeout><loglevel>debug</loglevel></connmgr>",
    );
    m.signal(libc::SIGHUP);
    let line = m.wait_for("SIGHUP: read");
    assert!(line.contains("max servants 5 -> 1"), "{line}");
    assert!(line.contains("idle timeout 30s -> 60s"), "{line}");
    assert!(line.contains("log level (none) -> debug"), "{line}");
    let mut second = client(addr);
    assert!(read_until(&mut second, "reached").contains("max number of servants reached"));
    // Debug lines now show: the first servant's slot changing state as it leaves.
    drop(_first);
    m.wait_for("state=");
    let _again = client(addr);
    m.wait_for("joined:");

    file.write("<connmgr><maxservants>lots</maxservants></connmgr>");
    m.signal(libc::SIGHUP);
    let line = m.wait_for("keeping the current settings");
    assert!(
        line.contains("<maxservants> must be a whole number"),
        "{line}"
    );
    let mut third = client(addr);
    assert!(read_until(&mut third, "reached").contains("max number of servants reached"));

    // The port takes a restart: said, and the old listener stays.
    file.write(
        "<connmgr><bind>127.0.0.1</bind><port>1</port><maxservants>1</maxservants></connmgr>",
    );
    m.signal(libc::SIGHUP);
    m.wait_for("port changed in");
    drop(client(addr));
}

#[test]
fn sighup_makes_a_servant_apply_new_bans() {
    let (_m, at) = common::connmgr(&["--push-interval", "10ms"]);
    let at = at.to_string();
    let file = Temp::new("alice.xml");
    file.write("<config><bans></bans></config>");
    let servant = |bind: &str, name: &str, extra: &[&str]| {
        let mut args = vec!["--connmgr", &at, "--bind", bind, "--name", name];
        args.extend_from_slice(&["--poll-interval", "100ms"]);
        args.extend_from_slice(extra);
        Daemon::spawn(&bin("servant"), &args)
    };
    let alice = servant("127.0.0.2", "alice", &["--config", file.path()]);
    alice.wait_for("listening on");
    let mut bob = servant("127.0.0.3", "bob", &[]);
    // A servant logs the list it got, then listens on the port it names.
    bob.wait_for("peers: 2");
    bob.wait_for("listening on");
    alice.wait_for("peers: 2");
    bob.type_line("before the ban");
    assert_eq!(alice.stdout_line().as_deref(), Some("bob: before the ban"));

    file.write("<config><bans><ban><target>127.0.0.3</target></ban></bans></config>");
    alice.signal(libc::SIGHUP);
    let line = alice.wait_for("SIGHUP: read");
    assert!(line.contains("bans [] -> [127.0.0.3]"), "{line}");
    bob.type_line("after the ban");
    alice.wait_for("refusing 127.0.0.3");
    let shown = alice.stdout_lines_within(Duration::from_millis(300));
    assert!(
        !shown.iter().any(|l| l.contains("after the ban")),
        "{shown:?}"
    );

    file.write("<config><bans><ban></ban></bans></config>");
    alice.signal(libc::SIGHUP);
    let line = alice.wait_for("keeping the current settings");
    assert!(line.contains("needs a <target>"), "{line}");
}

#[test]
fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let log = Temp::new("journal.log");
    let file = std::fs::File::create(&log.0).unwrap();
    let meta = file.metadata().unwrap();
    let mut child = Command::new(bin("connmgr"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--log-level", "warn"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    let end = Instant::now() + DEADLINE;
    let text = loop {
        let text = std::fs::read_to_string(&log.0).unwrap();
        if text.contains("listening on") || Instant::now() > end {
            break text;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    // The readiness line shows even at warn, and as the journal wants it.
    let line = text.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("<6>[p2pchat::connmgr] listening on 127.0.0.1:"),
        "{text}"
    );
}

#[test]
fn flags_take_equals_units_and_refuse_repeats() {
    let d = Daemon::spawn(
        &bin("connmgr"),
        &[
            "--bind=127.0.0.1",
            "--port=0",
            "--idle-timeout=1s",
            "--push-interval",
            "50ms",
            "--max-line=64",
            "--log-level=warn",
        ],
    );
    let addr = d.listening_addr();
    let mut c = client(addr);
    std::io::Write::write_all(&mut c, &[b'x'; 100]).unwrap();
    assert_eq!(read_until(&mut c, "never"), "", "closed for the long line");
    d.wait_for("exceeds the limit of 64");

    let (connmgr, servant) = (bin("connmgr"), bin("servant"));
    for (program, args, says) in [
        (
            &connmgr,
            &["--port", "1", "--port", "2"][..],
            "--port: given twice",
        ),
        (
            &connmgr,
            &["--port=1", "--port", "2"][..],
            "--port: given twice",
        ),
        (
            &connmgr,
            &["--idle-timeout", "soon"][..],
            "a duration such as 30s",
        ),
        (&connmgr, &["--max-line", "0"][..], "at least 1 byte"),
        (
            &servant,
            &["--headless", "--headless"][..],
            "--headless: given twice",
        ),
        (
            &servant,
            &["--poll-interval", "50ms"][..],
            "at least 100 ms",
        ),
    ] {
        let out = Command::new(program).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn rust_log_takes_env_loggers_syntax() {
    for spec in [
        "p2pchat=debug",
        "info,mio=warn",
        "warn",
        "info,p2pchat::connmgr=trace",
    ] {
        let mut cmd = Command::new("env");
        cmd.arg(format!("RUST_LOG={spec}"))
            .arg(bin("connmgr"))
            .args(["--bind", "127.0.0.1", "--port", "0"]);
        let d = Daemon::spawn_command(cmd);
        d.listening_addr();
    }
    let out = Command::new(bin("connmgr"))
        .env("RUST_LOG", "info,p2pchat=loud")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RUST_LOG: \"loud\" is not a log level"));
}

#[test]
fn every_binary_answers_help_and_version_with_status_0() {
    for program in ["connmgr", "servant", "churn", "p2pchat-demo"].map(bin) {
        for flag in ["--help", "-h", "--version", "-V"] {
            let out = Command::new(&program).arg(flag).output().unwrap();
            assert_eq!(out.status.code(), Some(0), "{program} {flag}");
            assert!(!out.stdout.is_empty(), "{program} {flag} printed nothing");
        }
    }
}
