//! A small internet out of Linux network namespaces, for the relay's tests, its
//! benchmark and `p2pchat-demo --nat`: real routing, a real NAT, real dropped packets.
//!
//! ```text
//!   public (203.0.113.0/24)                  router                    home (198.51.100.0/24)
//!   manager    203.0.113.10  ---eth0--wan0---  203.0.113.1 | 198.51.100.1  ---lan0--eth0---  198.51.100.2, .3, ...
//!   servants   203.0.113.11, .12, ...            NAT (masquerade) out of wan0;
//!                                                new connections in on wan0 dropped
//! ```
//!
//! The router does what a home router with its default firewall does: servants
//! behind it connect out (their connections leave from 203.0.113.1), nothing from
//! outside connects in, and it does not hairpin (a home servant cannot reach
//! itself at 203.0.113.1). Only documentation addresses are used, and the home
//! segment routes nowhere but the public one.
//!
//! Everything is created with `ip` and `nft`, needs root, and is removed when the
//! [`Internet`] drops, even on a panic. Names carry the process id, so parallel
//! tests and a crashed earlier run never collide; namespaces left by a process
//! that no longer exists are removed at the next build.

use std::ffi::OsStr;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The manager's address on the public segment.
pub const MANAGER_IP: &str = "203.0.113.10";
/// The router's public (WAN) address: what the public side sees home servants as.
pub const ROUTER_WAN_IP: &str = "203.0.113.1";
/// Public servants' addresses, in order.
pub const PUBLIC_IPS: [&str; 6] = [
    "203.0.113.11",
    "203.0.113.12",
    "203.0.113.13",
    "203.0.113.14",
    "203.0.113.15",
    "203.0.113.16",
];
/// Home servants' addresses behind the router, in order.
pub const HOME_IPS: [&str; 4] = [
    "198.51.100.2",
    "198.51.100.3",
    "198.51.100.4",
    "198.51.100.5",
];
/// The environment variable that turns "cannot build namespaces here" from a
/// skip into a failure (CI sets it).
pub const REQUIRE: &str = "P2PCHAT_REQUIRE_NETNS";

const PREFIX: &str = "p2pchat-";

/// Whether namespaces are required: `P2PCHAT_REQUIRE_NETNS=1`.
pub fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| v == "1")
}

/// Three namespaces, public, router and home, wired as the module doc shows.
pub struct Internet {
    pub public: String,
    pub router: String,
    pub home: String,
}

impl Internet {
    /// Builds the namespaces, or says why it cannot here (not root, no `ip` or
    /// `nft`, no namespace support), for the caller to skip or fail.
    pub fn build() -> Result<Internet, String> {
        preflight()?;
        remove_leftovers();
        static BUILT: AtomicUsize = AtomicUsize::new(0);
        let n = BUILT.fetch_add(1, Ordering::Relaxed);
        let name = |part: &str| format!("{PREFIX}{}-{n}-{part}", std::process::id());
        // Created empty first, so the guard removes whatever exists if a step fails.
        let mut net = Internet {
            public: String::new(),
            router: String::new(),
            home: String::new(),
        };
        for (field, part) in [(0, "pub"), (1, "rtr"), (2, "home")] {
            let ns = name(part);
            ip(&["netns", "add", &ns])?;
            match field {
                0 => net.public = ns,
                1 => net.router = ns,
                _ => net.home = ns,
            }
        }
        net.wire()?;
        Ok(net)
    }

    fn wire(&self) -> Result<(), String> {
        let (p, r, h) = (&self.public, &self.router, &self.home);
        ip(&[
            "link", "add", "name", "eth0", "netns", p, "type", "veth", "peer", "name", "wan0",
            "netns", r,
        ])?;
        ip(&[
            "link", "add", "name", "lan0", "netns", r, "type", "veth", "peer", "name", "eth0",
            "netns", h,
        ])?;
        ip(&[
            "-n",
            r,
            "addr",
            "add",
            &format!("{ROUTER_WAN_IP}/24"),
            "dev",
            "wan0",
        ])?;
        ip(&["-n", r, "addr", "add", "198.51.100.1/24", "dev", "lan0"])?;
        ip(&[
            "-n",
            p,
            "addr",
            "add",
            &format!("{MANAGER_IP}/24"),
            "dev",
            "eth0",
        ])?;
        for a in PUBLIC_IPS {
            ip(&["-n", p, "addr", "add", &format!("{a}/24"), "dev", "eth0"])?;
        }
        for a in HOME_IPS {
            ip(&["-n", h, "addr", "add", &format!("{a}/24"), "dev", "eth0"])?;
        }
        for (ns, dev) in [(p, "eth0"), (r, "wan0"), (r, "lan0"), (h, "eth0")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        for ns in [p, r, h] {
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        // Home reaches the public segment through the router, and nothing else.
        ip(&[
            "-n",
            h,
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            "198.51.100.1",
        ])?;
        run(
            self.exec(r, "sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
            None,
        )?;
        // `fwd` is a reserved word in nft; the chains are `forward` and `input`.
        let rules = "\
table ip nat {
  chain prerouting { type nat hook prerouting priority dstnat; }
  chain postrouting { type nat hook postrouting priority srcnat; oifname \"wan0\" masquerade; }
}
table inet filter {
  chain forward { type filter hook forward priority filter; policy drop;
    ct state established,related accept; ct status dnat accept; iifname \"lan0\" oifname \"wan0\" accept; }
  chain input { type filter hook input priority filter; policy accept; iifname \"wan0\" ct state new drop; }
}
";
        run(self.exec(r, "nft").args(["-f", "-"]), Some(rules))
    }

    /// `program` to run inside namespace `ns` (`ip netns exec NS program`), with
    /// the arguments still to add. `ip` execs the program, so the child's pid is
    /// the program's.
    pub fn exec(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(program);
        c
    }

    /// Opens `port` on the router to the home address `to`, as a user would in the
    /// router's settings (the article: "enable port 85 in your router").
    pub fn forward_port(&self, port: u16, to: &str) -> Result<(), String> {
        let rule = format!(
            "add rule ip nat prerouting iifname \"wan0\" tcp dport {port} dnat to {to}:{port}\n"
        );
        run(
            self.exec(&self.router, "nft").args(["-f", "-"]),
            Some(&rule),
        )
    }
}

/// Moves the calling thread into namespace `ns`: sockets it opens afterwards are
/// made there. Only this thread moves, so it is for a helper thread (a test's raw
/// client); the rest of the process stays where it was.
pub fn enter(ns: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let handle = std::fs::File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: setns on a descriptor we hold open; it changes only this thread's
    // network namespace.
    if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Drop for Internet {
    fn drop(&mut self) {
        for ns in [&self.home, &self.router, &self.public] {
            if !ns.is_empty() {
                let _ = ip(&["netns", "del", ns]);
            }
        }
    }
}

/// Why namespaces cannot be built here, if they cannot.
fn preflight() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespaces need root (run as root, or in a container with CAP_NET_ADMIN and CAP_SYS_ADMIN)".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "`{tool}` is not installed (apt-get install {package})"
            ));
        }
    }
    Ok(())
}

/// Removes namespaces named for a process that is gone (a run killed mid-test).
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix(PREFIX).and_then(|r| r.split('-').next()) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args), None)
}

/// Runs `cmd` to completion, feeding it `input`; a failure says what and why.
fn run(cmd: &mut Command, input: Option<&str>) -> Result<(), String> {
    let what = format!("{cmd:?}").replace('"', "");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{what}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{what}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
