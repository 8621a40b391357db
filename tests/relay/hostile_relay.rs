//! A hostile relay on a private network: a member (its key is in the members
//! file) that joins the real manager, says `can relay`, answers dial-backs, and
//! takes the private links origins and the manager's probes open to it and the
//! pull link of the member it is chosen for, as an honest relay does; but it alters
//! the `sealed` frames it forwards down the pull link, as its [`Attack`] says. It
//! runs on threads of the test, in the public namespace, with the library's own
//! Noise link ([`p2pchat::noise::Link`]) and frame codec ([`p2pchat::wire::sealed`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::{self, DEADLINE};
use crate::world::World;
use p2pchat::noise::e2e::Sealer;
use p2pchat::noise::{Keypair, Link, PublicKey, Step};
use p2pchat::wire::sealed::{self, Frame, Kind};
use p2pchat_harness::netns;

/// What the relay does to the frames it forwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attack {
    /// Flips the last byte of every data frame (its tag); starts go through.
    Flip,
    /// Forwards every frame, then the same frame again.
    Replay,
    /// Forwards every frame, and after each session start the same start under
    /// another session number: a replayed start that would reset the window.
    ReplayStart,
    /// Forwards none of the frames; in place of each data frame, a line it sealed
    /// with its own key but naming the frame's origin (start and data).
    Forge,
    /// Forwards nothing: a black hole that completes every handshake.
    Drop,
}

/// The running relay; stopped and joined when dropped.
pub(crate) struct HostileRelay {
    /// Its listed address, `IP:PORT`.
    pub(crate) addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for HostileRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One private link, non-blocking: the socket, its Noise end and the plaintext
/// not yet taken as lines.
struct Conn {
    stream: TcpStream,
    link: Link,
    plain: Vec<u8>,
    closed: bool,
    /// It asked `pull IP:PORT`: frames go down it.
    puller: bool,
}

impl Conn {
    fn new(stream: TcpStream, link: Link) -> Conn {
        stream.set_nonblocking(true).unwrap();
        Conn {
            stream,
            link,
            plain: Vec::new(),
            closed: false,
            puller: false,
        }
    }

    /// Reads what has arrived: the handshake is answered (every member admitted),
    /// transport opened into `plain`.
    fn pump(&mut self) {
        let mut buf = [0u8; 65536];
        while !self.closed {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed = true;
                    break;
                }
            };
            let mut wire = Vec::new();
            match self.link.receive(&buf[..n], &mut self.plain, &mut wire) {
                Ok(Step::Admit(_)) => self.link.admit(&mut wire).unwrap(),
                Ok(_) => {}
                Err(_) => self.closed = true,
            }
            self.write(&wire);
        }
    }

    fn send(&mut self, data: &[u8]) {
        let mut wire = Vec::new();
        if self.link.seal(data, &mut wire).is_err() {
            self.closed = true;
        }
        self.write(&wire);
    }

    fn write(&mut self, mut data: &[u8]) {
        let end = Instant::now() + DEADLINE;
        while !data.is_empty() && !self.closed {
            match self.stream.write(data) {
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(1)); // the peer's window is full
                }
                Err(_) => self.closed = true,
            }
        }
    }

    /// The whole lines received so far, without their endings.
    fn lines(&mut self) -> Vec<Vec<u8>> {
        let Some(last) = self.plain.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let whole: Vec<u8> = self.plain.drain(..=last).collect();
        whole
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// What the relay forwards, for one `sealed` line from an origin.
struct Alter {
    attack: Attack,
    forger: Sealer,
}

impl Alter {
    fn frames(&mut self, line: &[u8]) -> Vec<Vec<u8>> {
        let mut scratch = Vec::new();
        let Ok(f) = sealed::parse(line, &mut scratch) else {
            return Vec::new();
        };
        let encode = |f: &Frame<'_>| {
            let mut out = Vec::new();
            sealed::encode(f, &mut out);
            out.pop(); // the line ending, added when sent
            out
        };
        match (self.attack, f.kind) {
            (Attack::Drop, _) => Vec::new(),
            (Attack::Flip, Kind::Data) => {
                let mut body = f.body.to_vec();
                *body.last_mut().unwrap() ^= 0x01;
                vec![encode(&Frame { body: &body, ..f })]
            }
            (Attack::Replay, _) => vec![line.to_vec(), line.to_vec()],
            (Attack::ReplayStart, Kind::Start) => {
                let again = Frame {
                    sid: f.sid ^ 0x8000_0000,
                    ..f
                };
                vec![line.to_vec(), encode(&again)]
            }
            (Attack::Forge, Kind::Start) => Vec::new(),
            (Attack::Forge, Kind::Data) => {
                let mut out = Vec::new();
                let to = PublicKey::from_bytes(f.to);
                let text = b"a line forged by the relay";
                self.forger
                    .seal(&to, text, true, Instant::now(), &mut out)
                    .unwrap();
                let mut forged = Vec::new();
                for l in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let mut s = Vec::new();
                    let g = sealed::parse(l, &mut s).unwrap();
                    forged.push(encode(&Frame { from: f.from, ..g }));
                }
                forged
            }
            (Attack::Flip | Attack::ReplayStart, _) => vec![line.to_vec()],
        }
    }
}

/// Joins the manager at `to` from `ip` as `me`, says `first`, and waits for the
/// first peer document: the manager link and the document.
fn join(
    ip: &str,
    to: std::net::SocketAddr,
    me: &Keypair,
    manager: &PublicKey,
    first: &[u8],
) -> (Conn, String) {
    const END: &str = "</peers>\r\n";
    let mut wire = Vec::new();
    let link = Link::initiator(me, manager, &mut wire).unwrap();
    let mut mgr = Conn::new(common::connect_from(ip, to), link);
    mgr.write(&wire);
    mgr.send(first);
    let end = Instant::now() + DEADLINE;
    loop {
        assert!(Instant::now() < end, "no peer document from the manager");
        mgr.pump();
        let text = String::from_utf8_lossy(&mgr.plain).into_owned();
        if let Some(at) = text.find(END) {
            mgr.plain.clear();
            return (mgr, text[..at + END.len()].to_string());
        }
        std::thread::sleep(Duration::from_millis(5)); // the manager's answer is on its way
    }
}

impl HostileRelay {
    /// Joins `w`'s private manager from `ip` on the public segment with the key of
    /// member `name`, and runs until dropped.
    pub(crate) fn start(w: &World, ip: &'static str, name: &str, attack: Attack) -> HostileRelay {
        let (dir, manager) = w.private.clone().expect("a private network");
        let me = Keypair::load(&dir.join(format!("{name}.key"))).unwrap();
        let manager = PublicKey::parse(&manager).unwrap();
        let (to, public) = (w.addr, w.net.public.clone());
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let halt = stop.clone();
        let thread = std::thread::spawn(move || {
            netns::enter(&public).unwrap();
            let (mgr, doc) = join(ip, to, &me, &manager, b"can relay\nneeds peer list\n");
            let port = (common::entries(&doc).into_iter()).find(|e| e.2).unwrap().0;
            let listener = TcpListener::bind((ip, port)).unwrap();
            listener.set_nonblocking(true).unwrap();
            tx.send(port).unwrap();
            run(&me, listener, mgr, attack, &halt);
        });
        let port = rx.recv_timeout(DEADLINE).expect("the hostile relay's port");
        HostileRelay {
            addr: format!("{ip}:{port}"),
            stop,
            thread: Some(thread),
        }
    }
}

/// A member, `name`, that joins `w`'s manager from `ip` and then sends the relay
/// at `relay` (member `relay_name`) a session start for member `to` that is
/// garbage, in its own name: its relay forwards it, honestly, and `to` cannot
/// open it. Stays a member until dropped.
pub(crate) fn garbage_in_own_name(
    w: &World,
    ip: &'static str,
    name: &str,
    relay: (&str, &str),
    to: &str,
) -> HostileRelay {
    let (dir, manager) = w.private.clone().expect("a private network");
    let key = |n: &str| Keypair::load(&dir.join(format!("{n}.key"))).unwrap();
    let (me, relay_key, to_key) = (key(name), *key(relay.1).public(), *key(to).public());
    let manager = PublicKey::parse(&manager).unwrap();
    let (mgr_addr, public) = (w.addr, w.net.public.clone());
    let relay_addr: std::net::SocketAddr = relay.0.parse().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let halt = stop.clone();
    let thread = std::thread::spawn(move || {
        netns::enter(&public).unwrap();
        let (mut mgr, _) = join(ip, mgr_addr, &me, &manager, b"needs peer list\n");
        let end = Instant::now() + DEADLINE;
        // The relay admits us once its own list has us: until then, again.
        let mut out = loop {
            assert!(Instant::now() < end, "the relay never admitted us");
            let mut wire = Vec::new();
            let link = Link::initiator(&me, &relay_key, &mut wire).unwrap();
            let mut out = Conn::new(common::connect_from(ip, relay_addr), link);
            out.write(&wire);
            while !out.closed && !out.link.is_up() {
                out.pump();
                std::thread::sleep(Duration::from_millis(5)); // the handshake's answer
            }
            if !out.closed {
                break out;
            }
            std::thread::sleep(Duration::from_millis(100)); // the relay's next list
        };
        let mut line = Vec::new();
        let garbage = [0x5a; sealed::START_LEN];
        let f = Frame {
            kind: Kind::Start,
            to: *to_key.as_bytes(),
            from: *me.public().as_bytes(),
            sid: 7,
            body: &garbage,
        };
        sealed::encode(&f, &mut line);
        out.send(&line);
        tx.send(()).unwrap();
        while !halt.load(Ordering::Relaxed) {
            mgr.pump();
            mgr.plain.clear();
            out.pump();
            std::thread::sleep(Duration::from_millis(20)); // polling non-blocking sockets
        }
    });
    rx.recv_timeout(DEADLINE).expect("the garbage sent");
    HostileRelay {
        addr: ip.to_string(),
        stop,
        thread: Some(thread),
    }
}

/// The relay's loop: keeps asking for the list, takes every link, and forwards
/// what origins send it, altered, down every pull link.
fn run(me: &Keypair, listener: TcpListener, mut mgr: Conn, attack: Attack, stop: &AtomicBool) {
    let identity = Rc::new(me.clone());
    let mut alter = Alter {
        attack,
        forger: Sealer::new(me.clone()),
    };
    let mut conns: Vec<Conn> = Vec::new();
    let (mut asked, mut kept) = (Instant::now(), Instant::now());
    while !stop.load(Ordering::Relaxed) {
        if asked.elapsed() >= Duration::from_millis(200) {
            asked = Instant::now();
            mgr.send(b"needs peer list\n");
        }
        mgr.pump();
        mgr.plain.clear();
        while let Ok((s, _)) = listener.accept() {
            conns.push(Conn::new(s, Link::responder(identity.clone())));
        }
        let mut down: Vec<u8> = Vec::new();
        for c in &mut conns {
            c.pump();
            for line in c.lines() {
                if line.starts_with(b"pull ") {
                    c.puller = true;
                } else if sealed::is_sealed(&line) {
                    for f in alter.frames(&line) {
                        down.extend_from_slice(&f);
                        down.push(b'\n');
                    }
                }
            }
        }
        let keepalive = kept.elapsed() >= Duration::from_secs(1);
        if keepalive {
            kept = Instant::now();
            down.push(b'\n');
        }
        if !down.is_empty() {
            for c in conns.iter_mut().filter(|c| c.puller) {
                c.send(&down);
            }
        }
        conns.retain(|c| !c.closed);
        std::thread::sleep(Duration::from_millis(2)); // polling non-blocking sockets
    }
}
