//! Careless operators: banned names behind a dead resolver, nonsense settings,
//! too few descriptors.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use crate::common::{bin, connect_from, connmgr, raise_fd_limit, Daemon, DEADLINE};
use crate::fakes::{config_file, listed_as, shows};

/// Class 7: three banned names behind a resolver that never answers. The servant
/// listens and reaches its manager at once, says once that names are pending, and
/// refuses peers until they are resolved, or until a reload drops the names. Needs root, for a private resolv.conf
/// in a mount namespace.
#[test]
#[cfg_attr(
    p2pchat_no_root,
    ignore = "needs root (a private resolv.conf in a mount namespace)"
)]
fn banned_names_behind_a_dead_resolver_do_not_delay_listening() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "needs root, for a private resolv.conf in a mount namespace"
    );
    // A "DNS server" that takes every query and answers none.
    let dns = UdpSocket::bind("127.0.87.53:53").unwrap();
    let resolv = std::env::temp_dir().join(format!("p2pchat-resolv-{}", std::process::id()));
    std::fs::write(
        &resolv,
        "nameserver 127.0.87.53\noptions timeout:5 attempts:2\n",
    )
    .unwrap();
    let config = config_file(
        "dns",
        "<bans><ban><target>one.p2pchat.test</target></ban><ban><target>two.p2pchat.test</target></ban><ban><target>three.p2pchat.test</target></ban></bans>\n",
    );
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let mut cmd = Command::new("unshare");
    cmd.args([
        "-m",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
    ]);
    cmd.arg(&resolv).arg(bin("servant"));
    cmd.args(["--config", config.to_str().unwrap(), "--headless"]);
    cmd.args(["--connmgr", &manager.to_string(), "--bind", "127.0.87.2"]);
    let s = Daemon::spawn_command(cmd);
    let chat = s.listening_addr();
    let _listed = listed_as("127.0.87.9", manager);
    s.wait_for("peers: 2");
    let mut buf = [0u8; 512];
    dns.set_read_timeout(Some(DEADLINE)).unwrap();
    dns.recv(&mut buf)
        .expect("the servant asked the dead resolver");
    let mut peer = connect_from("127.0.87.9", chat);
    let _ = peer.write_all(b"from an unresolved address\n");
    drop(peer);
    s.wait_for("banned host names are still being resolved");
    assert_eq!(
        s.count("cannot resolve"),
        0,
        "listening came first:\n{}",
        s.log_text()
    );
    assert_eq!(s.count("resolving banned host names"), 1);
    assert!(s.stdout_lines_within(Duration::from_millis(300)).is_empty());
    // A reload that drops the names while they are still pending lets peers in.
    std::fs::write(&config, "<config>\n</config>\n").unwrap();
    s.signal(libc::SIGHUP);
    s.wait_for("no banned host names left to look up; accepting connections");
    let mut peer = connect_from("127.0.87.9", chat);
    peer.write_all(b"in at last\n").unwrap();
    drop(peer);
    assert_eq!(s.stdout_line().as_deref(), Some("in at last"));
    let _ = std::fs::remove_file(resolv);
}

/// Class 8: settings that make no sense are refused with the place and a reason.
#[test]
fn nonsense_settings_are_refused_with_the_place() {
    let (connmgr, servant) = (bin("connmgr"), bin("servant"));
    let run = |program: &str, args: &[&str]| {
        let out = Command::new(program).args(args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let port0 = config_file(
        "port0",
        "<connectionmgr>127.0.0.1</connectionmgr>\n<port>0</port>\n",
    );
    let (code, err) = run(&servant, &["--config", port0.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:3: <port>", port0.display())),
        "{err}"
    );
    for (program, args, says) in [
        (
            &connmgr,
            &["--max-servants", "0"][..],
            "--max-servants: must be at least 1",
        ),
        (
            &connmgr,
            &["--max-per-address", "0"],
            "--max-per-address: must be at least 1",
        ),
        (
            &servant,
            &["--poll-interval", "1"],
            "--poll-interval: must be at least 100",
        ),
        (
            &servant,
            &["--max-peers", "0"],
            "--max-peers: must be at least 1",
        ),
    ] {
        let (code, err) = run(program, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Class 8, descriptors: a servant with 256 of them and 300 idle peers. The one
/// silent the longest makes room, so a real peer's line is shown at once, not
/// after the idle peers time out (30 s).
#[test]
fn with_few_descriptors_idle_peers_do_not_lock_real_ones_out() {
    raise_fd_limit();
    let (_m, manager) = connmgr(&["--push-interval", "0"]);
    let config = config_file("fds", "");
    let mut cmd = Command::new(bin("servant"));
    cmd.args(["--config", config.to_str().unwrap(), "--headless"]);
    cmd.args(["--connmgr", &manager.to_string(), "--bind", "127.0.88.2"]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let s = Daemon::spawn_command(cmd);
    let chat = s.listening_addr();
    let _listed = listed_as("127.0.88.3", manager);
    s.wait_for("peers: 2");
    let idle: Vec<TcpStream> = (0..300)
        .map(|k| connect_from(&format!("127.0.88.{}", 10 + k / 30), chat))
        .collect();
    s.wait_for("the most at once");
    let mut real = connect_from("127.0.88.3", chat);
    real.write_all(b"a real line\n").unwrap();
    drop(real);
    shows(&s, "a real line");
    drop(idle);
}
