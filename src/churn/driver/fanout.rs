//! Fanout: virtual servants register and listen on the ports the manager gives
//! them; a sender (a real `servant` churn starts, or churn itself) sends numbered
//! lines to every peer, one at a time, and each is timed until the last listener
//! has it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, info};
use p2pchat_harness::{Process, Spawn, LISTENING};

use super::super::report::Failure;
use super::super::{Config, Sender};
use super::manager;
use super::{Churn, Conn, Phase, Role};
use crate::noise::PublicKey;
use crate::reactor::{Index, Reactor};

/// Marks fanout lines; listeners look for it anywhere in a line, so a sender may
/// prefix a name.
const LINE_MARK: &str = "churn fanout ";

/// Fanout state: the listeners, the sender, and the line in flight.
#[derive(Default)]
pub(super) struct Fanout {
    /// Listening servants so far.
    pub listening: usize,
    /// Where lines go with `--sender self`: every peer in the manager's list.
    peers: Vec<SocketAddr>,
    /// The real servant sending the lines (`--sender servant`).
    sender: Option<Process>,
    pub ready: bool,
    /// The line in flight: its number, when it was sent, how many listeners have it.
    seq: u64,
    pub sent_at: Option<Instant>,
    got: usize,
    /// The last line number each listener has seen.
    pub seen: Vec<u64>,
    pub next_at: Option<Instant>,
    /// Servants that leave the manager to register again, for another port.
    pub moving: Vec<usize>,
    /// Ports given that were in use here, so far.
    pub ports_in_use: usize,
}

/// Ports in use a fanout may be given before it gives up: a manager whose port
/// counter has walked into the ephemeral range hands out a busy one now and
/// then, not one after another.
const MAX_PORTS_IN_USE: usize = 1000;

/// Starts `servant` against the manager, stdin piped for the lines; its stderr
/// reader wakes the loop when it logs that it listens, and when it exits.
fn spawn_sender(
    path: &std::path::Path,
    cfg: &Config,
    private: Option<(&std::path::Path, &PublicKey)>,
    waker: std::sync::Arc<mio::Waker>,
) -> Result<Process, String> {
    let mut spawn = Spawn::new(path)
        .name("the servant")
        .args(["--connmgr", &cfg.target.ip().to_string()])
        .args(["--port", &cfg.target.port().to_string()])
        .args(["--log-level", "info"])
        .ignore_stdout()
        .keep(20)
        .wake_on(LISTENING, move || {
            let _ = waker.wake();
        });
    if let Some((key, manager)) = private {
        spawn = spawn
            .arg("--key")
            .arg(key)
            .args(["--manager-key", &manager.to_string()]);
    }
    // The sender is one servant, with one address: the first source.
    if let Some(ip) = cfg.sources.first() {
        spawn = spawn.args(["--bind", &ip.to_string()]);
    }
    let p = spawn.start().map_err(|e| e.to_string())?;
    info!("started servant {} (pid {})", path.display(), p.pid());
    Ok(p)
}

impl Churn {
    /// Fanout servant `k`'s document on connection `i`: the first tells it where
    /// to listen; a later one (servant 0 asking again) is the full list to send to.
    pub(super) fn fanout_document(
        &mut self,
        r: &mut Reactor<Conn>,
        i: Index,
        k: usize,
        first: bool,
        me: Option<(SocketAddr, Vec<SocketAddr>)>,
        doc: &[u8],
    ) {
        if !first {
            let Some((_, all)) = me.or_else(|| self.check(doc).ok()) else {
                return;
            };
            self.fanout.peers = all;
            return self.fanout_ready(r);
        }
        let Some((addr, _)) = me else { return };
        self.registering -= 1;
        self.ramp(r);
        match r.listen(Some(addr.ip()), addr.port(), Conn::Listener(k)) {
            Ok(_) => self.fanout.listening += 1,
            Err((_, e))
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && self.fanout.ports_in_use < MAX_PORTS_IN_USE =>
            {
                // Something here holds that port (often churn's own connections,
                // once the manager's counter reaches the ephemeral range): leave
                // and join again, and the manager gives the next port.
                debug!("fanout servant {k}: {addr} is in use here; registering again");
                self.fanout.ports_in_use += 1;
                self.fanout.moving.push(k);
                self.to_register.push(Role::Fanout(k));
                r.close(i);
                return;
            }
            Err((_, e)) => {
                self.fail(Failure::ListenFailed, || format!("listen on {addr}: {e}"));
                let why = format!(
                    "fanout servant {k} cannot listen on {addr}, the port the manager gave it: {e}"
                );
                return self.abort(r, why);
            }
        }
        if self.fanout.listening == self.cfg.concurrency {
            self.all_listening(r, i);
        }
    }

    /// Every fanout servant listens: get the sender going.
    fn all_listening(&mut self, r: &mut Reactor<Conn>, i: Index) {
        info!("{} fanout servants listening", self.cfg.concurrency);
        match self.cfg.sender.clone() {
            Sender::Itself => {
                // Ask again for the whole list, the one a servant joining now would get.
                if let Some(Conn::Manager(ask)) = r.data_mut(i) {
                    ask.asked = Some(Instant::now());
                }
                r.send(i, manager::REQUEST);
            }
            Sender::Servant(path) => match spawn_sender(
                &path,
                &self.cfg,
                self.network
                    .as_ref()
                    .zip(self.keys.as_ref())
                    .map(|(n, k)| (n.sender_key_file.as_path(), &k.manager)),
                r.waker(),
            ) {
                Ok(p) => self.fanout.sender = Some(p),
                Err(why) => self.abort(r, why),
            },
        }
    }

    /// The sending servant's stderr reader woke the loop: it listens, or it exited.
    pub(super) fn sender_news(&mut self, r: &mut Reactor<Conn>) {
        let Some(p) = &self.fanout.sender else { return };
        if !self.fanout.ready && p.wait_for(LISTENING, Duration::ZERO).is_ok() {
            info!("the servant is listening");
            self.fanout_ready(r);
        } else if p.log_ended() && !r.is_stopped() {
            let why = format!("the servant exited{}", self.sender_tail());
            self.abort(r, why);
        }
    }

    /// The sending servant's last log lines, for an error message.
    pub(super) fn sender_tail(&self) -> String {
        match self.fanout.sender.as_ref().map(Process::log_text) {
            Some(t) if !t.is_empty() => {
                format!(
                    "; the servant's last log lines:\n  {}",
                    t.replace('\n', "\n  ")
                )
            }
            _ => String::new(),
        }
    }

    /// The sender knows every listener: send the first line, which proves it.
    fn fanout_ready(&mut self, r: &mut Reactor<Conn>) {
        if !self.fanout.ready {
            self.fanout.ready = true;
            self.send_line(r);
        }
    }

    /// Sends fanout line `seq + 1` (line 1 is the untimed proof that all listen).
    pub(super) fn send_line(&mut self, r: &mut Reactor<Conn>) {
        if !self.fanout.ready || self.fanout.sent_at.is_some() || !self.running(r) {
            return;
        }
        self.fanout.seq += 1;
        self.fanout.got = 0;
        self.fanout.next_at = None;
        let line = format!("{LINE_MARK}{}", self.fanout.seq);
        let now = Instant::now();
        self.fanout.sent_at = Some(now);
        if let Some(p) = &mut self.fanout.sender {
            if let Err(e) = p.type_line(&line) {
                let why = format!("{e}{}", self.sender_tail());
                return self.abort(r, why);
            }
            return;
        }
        let line = line + "\n";
        for k in 0..self.fanout.peers.len() {
            let peer = self.fanout.peers[k];
            let from = self.cfg.sources.first().copied();
            match r.connect(peer, from, Conn::Outgoing { started: now, peer }) {
                Ok(i) => r.send(i, line.as_bytes()),
                Err(e) => self.fail(Failure::SendFailed, || format!("connect to {peer}: {e}")),
            }
        }
    }

    /// Splits complete lines out of an incoming connection's buffer.
    pub(super) fn incoming(
        &mut self,
        r: &mut Reactor<Conn>,
        servant: usize,
        buf: &mut Vec<u8>,
        eof: bool,
    ) {
        let mut used = 0;
        while let Some(nl) = buf[used..].iter().position(|&b| b == b'\n') {
            let line = buf[used..used + nl].to_vec();
            self.line_arrived(r, servant, &line);
            used += nl + 1;
        }
        buf.drain(..used);
        if eof && !buf.is_empty() {
            let line = std::mem::take(buf);
            self.line_arrived(r, servant, &line);
        }
    }

    /// Listener `servant` got `line`.
    fn line_arrived(&mut self, r: &mut Reactor<Conn>, servant: usize, line: &[u8]) {
        let Some(at) = line
            .windows(LINE_MARK.len())
            .position(|w| w == LINE_MARK.as_bytes())
        else {
            return;
        };
        let digits = &line[at + LINE_MARK.len()..];
        let end = digits
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(digits.len());
        let Some(seq) = std::str::from_utf8(&digits[..end])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        let f = &mut self.fanout;
        if seq != f.seq || f.sent_at.is_none() || f.seen.get(servant).map_or(true, |&s| s >= seq) {
            return; // late, repeated, or from another run
        }
        f.seen[servant] = seq;
        f.got += 1;
        if f.got < f.seen.len() {
            return;
        }
        let now = Instant::now();
        let sent = f.sent_at.take().unwrap_or(now);
        if seq == 1 {
            info!("every listener has the first line");
            if self.phase == Phase::Setup {
                self.setup_done(r); // sends the next line
                return;
            }
        } else if self.measuring() {
            let took = now.saturating_duration_since(sent).as_nanos() as u64;
            self.stats.op(took, None, Default::default());
            self.counted(r, now);
        }
        self.check_drained(r);
        self.next_line(r, now);
    }

    fn next_line(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        if self.cfg.interval.is_zero() {
            self.send_line(r);
        } else {
            self.fanout.next_at = Some(now + self.cfg.interval);
        }
    }

    /// A line that has not reached every listener within `--timeout` is missed
    /// by those it did not reach; the next one goes.
    pub(super) fn line_timeouts(&mut self, r: &mut Reactor<Conn>, now: Instant) {
        let limit = self.cfg.timeout;
        let Some(sent) = self
            .fanout
            .sent_at
            .filter(|&t| now.duration_since(t) > limit)
        else {
            return;
        };
        let missing = self.fanout.seen.len() - self.fanout.got;
        let seq = self.fanout.seq;
        for _ in 0..missing {
            self.fail(Failure::LineMissed, || {
                format!(
                    "line {seq} did not reach every listener within {} ms",
                    limit.as_millis()
                )
            });
        }
        debug!(
            "line {seq} timed out {} ms after it was sent",
            sent.elapsed().as_millis()
        );
        self.fanout.sent_at = None;
        if seq == 1 {
            let why = format!(
                "the first line reached {} of {} listeners within {} ms{}",
                self.fanout.got,
                self.fanout.seen.len(),
                limit.as_millis(),
                self.sender_tail()
            );
            return self.abort(r, why);
        }
        self.check_drained(r);
        self.next_line(r, now);
    }
}
