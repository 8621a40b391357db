//! The small internet the relay's tests run in: a manager, servants on the public
//! segment and at home behind the NAT router, and the waits the tests share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{bin, DEADLINE};
use p2pchat_harness::netns::{self, Internet, HOME_IPS, MANAGER_IP, PUBLIC_IPS};
use p2pchat_harness::{Process, Spawn};

/// How long a verdict may take: a send to a servant behind the router fails only
/// when its connect times out (3 s), and two complaints from each peer are needed.
pub(crate) const VERDICT: Duration = Duration::from_secs(25);
/// How long after the last expected line a duplicate would have to arrive by.
pub(crate) const SETTLE: Duration = Duration::from_millis(1500);
const POLL_MS: &str = "200";

/// The namespaces and what runs in them. Fields drop in order: the processes are
/// killed before the namespaces are removed.
pub(crate) struct World {
    pub(crate) servants: Vec<Process>,
    /// Which of them are at home, behind the router.
    pub(crate) at_home: Vec<bool>,
    pub(crate) manager: Process,
    pub(crate) addr: SocketAddr,
    pub(crate) config: PathBuf,
    /// On a private network: the folder with every key and the members file, and
    /// the manager's public key.
    pub(crate) private: Option<(PathBuf, String)>,
    pub(crate) net: Internet,
}

impl World {
    /// The namespaces and a manager on 203.0.113.10.
    pub(crate) fn new(test: &str, flags: &[&str]) -> World {
        World::start(test, flags, None)
    }

    /// A private network's: keys for the manager and each of `members`, a members
    /// file listing them, and the manager started with both.
    pub(crate) fn private(test: &str, flags: &[&str], members: &[&str]) -> World {
        let dir =
            std::env::temp_dir().join(format!("p2pchat-prelay-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = |name: &str| {
            let pair = p2pchat::noise::Keypair::generate().unwrap();
            pair.save_new(&dir.join(format!("{name}.key"))).unwrap();
            pair.public().to_string()
        };
        let manager = key("connmgr");
        let mut text = String::from("<members>\n");
        for name in members {
            text += &format!(
                "<member><name>{name}</name><key>{}</key></member>\n",
                key(name)
            );
        }
        std::fs::write(dir.join("members.xml"), text + "</members>\n").unwrap();
        World::start(test, flags, Some((dir, manager)))
    }

    fn start(test: &str, flags: &[&str], private: Option<(PathBuf, String)>) -> World {
        let net = internet();
        let mut cmd = net.exec(&net.public, bin("connmgr"));
        cmd.args(["--bind", MANAGER_IP, "--port", "0", "--log-level", "debug"]);
        cmd.args(["--relay-dial-timeout", "500"]).args(flags);
        if let Some((dir, _)) = &private {
            cmd.arg("--key").arg(dir.join("connmgr.key"));
            cmd.arg("--members").arg(dir.join("members.xml"));
        }
        let manager = start(cmd, "connmgr");
        let addr = manager.listening_addr(DEADLINE).unwrap();
        let config =
            std::env::temp_dir().join(format!("p2pchat-relay-{test}-{}.xml", std::process::id()));
        std::fs::write(&config, "<config/>\n").unwrap();
        World {
            servants: Vec::new(),
            at_home: Vec::new(),
            manager,
            addr,
            config,
            private,
            net,
        }
    }

    /// Starts a servant named `name` on `ip` in namespace `ns`; returns its index.
    pub(crate) fn servant(&mut self, ns_home: bool, ip: &str, name: &str) -> usize {
        let ns = if ns_home {
            &self.net.home
        } else {
            &self.net.public
        };
        let mut cmd = self.net.exec(ns, bin("servant"));
        let addr = self.addr.to_string();
        cmd.args(["--connmgr", &addr, "--bind", ip, "--name", name]);
        cmd.args([
            "--poll-interval",
            POLL_MS,
            "--config",
            self.config.to_str().unwrap(),
        ]);
        if let Some((dir, manager)) = &self.private {
            cmd.arg("--key").arg(dir.join(format!("{name}.key")));
            cmd.args(["--manager-key", manager]);
        }
        let d = start(cmd, name);
        d.wait_for("listening on", DEADLINE).unwrap();
        self.servants.push(d);
        self.at_home.push(ns_home);
        self.servants.len() - 1
    }

    pub(crate) fn public(&mut self, k: usize, name: &str) -> usize {
        self.servant(false, PUBLIC_IPS[k], name)
    }

    pub(crate) fn home(&mut self, k: usize, name: &str) -> usize {
        self.servant(true, HOME_IPS[k], name)
    }

    /// pat and quinn on the public segment and nora at home, once each lists
    /// all three; returns their indices in that order.
    pub(crate) fn pat_quinn_and_nora(&mut self) -> (usize, usize, usize) {
        let (p1, p2) = (self.public(0, "pat"), self.public(1, "quinn"));
        let n = self.home(0, "nora");
        for &k in &[p1, p2, n] {
            self.wait(k, "peers: 3 (", DEADLINE);
        }
        (p1, p2, n)
    }

    /// Servant `k`, behind the router, types a line: sending it fails, so it asks
    /// to be checked. Returns the address of the relay it then pulls from.
    pub(crate) fn type_until_relayed(&mut self, k: usize) -> String {
        self.servants[k].type_line("hello?").unwrap();
        self.relayed(k, VERDICT)
    }

    /// The index of the servant at `relay`, once it says it relays.
    pub(crate) fn relaying(&self, relay: &str) -> usize {
        let r = self.by_addr(relay);
        self.wait(r, "relaying for", DEADLINE);
        r
    }

    /// Waits until servant `k` logs `pattern`, for up to `within`.
    /// Servant `k`'s first log line with `pattern`, waiting up to `within` for it.
    /// Lines already passed by other waits count too.
    pub(crate) fn wait(&self, k: usize, pattern: &str, within: Duration) -> String {
        let s = &self.servants[k];
        if let Some(line) = s.log_text().lines().find(|l| l.contains(pattern)) {
            return line.to_string();
        }
        s.wait_for(pattern, within)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub(crate) fn wait_manager(&self, pattern: &str, within: Duration) -> String {
        (self.manager.wait_for(pattern, within)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until servant `k` is relayed and pulling; returns the relay's address.
    /// Each call waits for the next such line: after a failover, the new relay.
    pub(crate) fn relayed(&self, k: usize, within: Duration) -> String {
        let line = (self.servants[k].wait_for("pulling from the relay at ", within))
            .unwrap_or_else(|e| panic!("{e}"));
        line.rsplit("relay at ").next().unwrap().trim().to_string()
    }

    /// The index of the servant listening at `addr` (its `listening on` line).
    pub(crate) fn by_addr(&self, addr: &str) -> usize {
        let line = format!("listening on {addr}");
        (0..self.servants.len())
            .find(|&k| self.servants[k].count(&line) > 0)
            .unwrap_or_else(|| panic!("no servant listens on {addr}"))
    }

    /// Waits until the manager has logged `pattern` at least `n` times, in any
    /// order with other lines.
    pub(crate) fn manager_logged(&self, pattern: &str, n: usize, within: Duration) {
        let end = Instant::now() + within;
        while self.manager.count(pattern) < n {
            assert!(
                Instant::now() < end,
                "connmgr logged {pattern:?} {} times, not {n}; log:\n{}",
                self.manager.count(pattern),
                self.manager.log_text()
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a log with a deadline
        }
    }

    /// Every servant in `who` types one line tagged `round`; then every one of them
    /// must show every line exactly once, and nothing else tagged `round`. Where
    /// several servants are at home they share the router's address, so others
    /// may show their lines as unverified, with that address.
    pub(crate) fn everyone_hears_everyone_once(&mut self, who: &[usize], round: &str) {
        let mut said = Vec::new();
        for &k in who {
            let text = format!("{round} from {}", self.servants[k].name());
            self.servants[k].type_line(&text).unwrap();
            said.push(format!("{}: {text}", self.servants[k].name()));
        }
        // Unless it came up a pull link, whose relay knows who sent it.
        let shared = self.at_home.iter().filter(|&&h| h).count() > 1;
        let marker = format!("[{}?] ", netns::ROUTER_WAN_IP);
        let plain = |line: String| match line.strip_prefix(&marker) {
            Some(rest) if shared => rest.to_string(),
            _ => line,
        };
        for &k in who {
            let s = &self.servants[k];
            let mut seen: HashMap<String, usize> = HashMap::new();
            let end = Instant::now() + VERDICT;
            while said.iter().any(|l| !seen.contains_key(l)) {
                let left = end.saturating_duration_since(Instant::now());
                let Ok(line) = s.stdout_line(left) else {
                    panic!(
                        "{} showed only {seen:?} of {said:?}; log:\n{}",
                        s.name(),
                        s.log_text()
                    );
                };
                *seen.entry(plain(line)).or_default() += 1;
            }
            for line in s.stdout_lines_within(SETTLE) {
                *seen.entry(plain(line)).or_default() += 1;
            }
            seen.retain(|l, _| l.contains(round));
            let twice: Vec<_> = seen.iter().filter(|&(_, &n)| n != 1).collect();
            assert!(
                twice.is_empty(),
                "{} showed lines more than once: {twice:?}",
                s.name()
            );
            assert_eq!(seen.len(), said.len(), "{} showed {seen:?}", s.name());
        }
    }
}

/// The namespaces; a test that cannot build them fails saying why.
pub(crate) fn internet() -> Internet {
    Internet::build().unwrap_or_else(|why| panic!("the namespaces cannot be built: {why}"))
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.config);
        if let Some((dir, _)) = &self.private {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The address servant `k` listens on, from its `listening on` line.
pub(crate) fn listen_addr(w: &World, k: usize) -> String {
    let line = w.wait(k, "listening on ", DEADLINE);
    line.rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// Reads and drops what servant `d` shows until it has been quiet a moment.
pub(crate) fn drain(d: &Process) {
    while d.stdout_line(Duration::from_millis(300)).is_ok() {}
}

/// Starts a prepared `ip netns exec` command, named for its part (not `ip`).
pub(crate) fn start(cmd: std::process::Command, name: &str) -> Process {
    Spawn::command(cmd)
        .name(name)
        .start()
        .unwrap_or_else(|e| panic!("{e}"))
}
