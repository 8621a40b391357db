//! Private slots against real sockets on loopback: an echo over Noise, a wrong
//! key, and a flood of bogus handshakes that must not stop a real client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::noise::{HandshakeLimits, Keypair, PREAMBLE};

fn key(seed: u8) -> Keypair {
    Keypair::from_private([seed; 32])
}

/// Echoes what an admitted, authenticated peer sends.
struct Echo {
    allowed: PublicKey,
    stop: Arc<AtomicBool>,
    refused_at_accept: usize,
    authenticated: usize,
    errors: usize,
    most_slots: usize,
    pending_at_end: usize,
    /// Sent on accepting, before the peer has proved its key: held, then sealed.
    greeting: Vec<u8>,
    /// `authenticated` and `send_complete`, in the order they fired.
    events: Vec<&'static str>,
}

impl Handler for Echo {
    type Data = ();
    fn connection_request(&mut self, r: &mut Reactor<()>, _l: Index, req: Request) {
        match r.accept_secure(req, ()) {
            Ok(i) if !self.greeting.is_empty() => r.send(i, &self.greeting),
            Ok(_) => {}
            Err(_) => self.refused_at_accept += 1,
        }
        self.most_slots = self.most_slots.max(r.slots().capacity());
    }
    fn admit_key(&mut self, r: &mut Reactor<()>, i: Index, key: &PublicKey) -> bool {
        assert_eq!(r.peer_key(i), None, "not proven before its first message");
        *key == self.allowed
    }
    fn authenticated(&mut self, r: &mut Reactor<()>, i: Index) {
        assert_eq!(r.peer_key(i), Some(&self.allowed));
        self.authenticated += 1;
        self.events.push("authenticated");
    }
    fn send_complete(&mut self, _r: &mut Reactor<()>, _i: Index) {
        self.events.push("send_complete");
    }
    fn data_arrival(&mut self, r: &mut Reactor<()>, i: Index, data: &[u8]) {
        assert_eq!(
            r.peer_key(i),
            Some(&self.allowed),
            "data only from the proven"
        );
        r.send(i, data);
    }
    fn error(&mut self, _r: &mut Reactor<()>, _i: Index, _e: &std::io::Error) {
        self.errors += 1;
    }
    fn close(&mut self, _r: &mut Reactor<()>, _i: Index, _data: ()) {}
    fn wake(&mut self, r: &mut Reactor<()>) {
        if self.stop.load(Ordering::Relaxed) {
            self.pending_at_end = r.pending_handshakes();
            r.stop();
        }
    }
}

struct Server {
    addr: SocketAddr,
    public: PublicKey,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: std::thread::JoinHandle<Echo>,
}

impl Server {
    fn start(limits: HandshakeLimits, allowed: PublicKey) -> Server {
        Server::greeting(limits, allowed, Vec::new())
    }

    /// A server that sends `greeting` to every connection it accepts.
    fn greeting(limits: HandshakeLimits, allowed: PublicKey, greeting: Vec<u8>) -> Server {
        let options = Options {
            handshake: limits,
            ..Options::default()
        };
        Server::with_options(options, allowed, greeting)
    }

    fn with_options(options: Options, allowed: PublicKey, greeting: Vec<u8>) -> Server {
        let identity = key(2);
        let public = *identity.public();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut r = Reactor::new(options).unwrap();
            r.set_identity(identity);
            let l = r.listen(Some([127, 0, 0, 1].into()), 0, ()).unwrap();
            tx.send((r.local_addr(l).unwrap(), r.waker())).unwrap();
            let mut h = Echo {
                allowed,
                stop: flag,
                refused_at_accept: 0,
                authenticated: 0,
                errors: 0,
                most_slots: 0,
                pending_at_end: usize::MAX,
                greeting,
                events: Vec::new(),
            };
            r.run(&mut h).unwrap();
            h
        });
        let (addr, waker) = rx.recv().unwrap();
        Server {
            addr,
            public,
            stop,
            waker,
            thread,
        }
    }

    fn stop(self) -> Echo {
        self.stop.store(true, Ordering::Relaxed);
        self.waker.wake().unwrap();
        self.thread.join().unwrap()
    }
}

/// Sends `messages` once connected and reads until the echo is whole.
struct Client {
    messages: Vec<Vec<u8>>,
    expected: usize,
    got: Vec<u8>,
    connected_peer: Option<PublicKey>,
    errors: Vec<String>,
}

impl Handler for Client {
    type Data = ();
    fn connection_request(&mut self, _r: &mut Reactor<()>, _l: Index, _req: Request) {}
    fn connect(&mut self, r: &mut Reactor<()>, i: Index) {
        self.connected_peer = r.peer_key(i).copied();
        for m in &self.messages {
            r.send(i, m);
        }
    }
    fn data_arrival(&mut self, r: &mut Reactor<()>, i: Index, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.expected {
            r.close(i);
        }
    }
    fn error(&mut self, _r: &mut Reactor<()>, _i: Index, e: &std::io::Error) {
        self.errors.push(e.to_string());
    }
    fn close(&mut self, r: &mut Reactor<()>, _i: Index, _data: ()) {
        r.stop();
    }
    fn timer(&mut self, r: &mut Reactor<()>, _id: usize) {
        self.errors.push("deadline".into());
        r.stop();
    }
}

/// Runs a client from `bind` to `server` until its echo is back (or 30 s pass).
fn run_client(
    server: SocketAddr,
    bind: Option<std::net::IpAddr>,
    identity: Keypair,
    responder: &PublicKey,
    messages: Vec<Vec<u8>>,
) -> Client {
    run_client_with(
        Options::default(),
        server,
        bind,
        identity,
        responder,
        messages,
    )
}

fn run_client_with(
    options: Options,
    server: SocketAddr,
    bind: Option<std::net::IpAddr>,
    identity: Keypair,
    responder: &PublicKey,
    messages: Vec<Vec<u8>>,
) -> Client {
    let mut r = Reactor::new(options).unwrap();
    r.set_identity(identity);
    let expected = messages.iter().map(Vec::len).sum();
    let mut c = Client {
        messages,
        expected,
        got: Vec::new(),
        connected_peer: None,
        errors: Vec::new(),
    };
    // Sent before the handshake: held, then sealed once the link is up.
    let i = r.connect_secure(server, bind, responder, ()).unwrap();
    r.send(i, b"early ");
    c.expected += 6;
    r.set_timer(0, Instant::now() + Duration::from_secs(30));
    r.run(&mut c).unwrap();
    c
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|n| (n as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn an_echo_over_a_private_link_returns_every_byte_in_order() {
    let client_key = key(1);
    let server = Server::start(HandshakeLimits::default(), *client_key.public());
    // Several small records and one of 2 MiB: split into frames, and far more than
    // a socket buffer, so both ends queue ciphertext across WouldBlock.
    let messages = vec![
        b"hello\n".to_vec(),
        pattern(70_000, 1),
        pattern(2 * 1024 * 1024, 2),
        b"bye\n".to_vec(),
    ];
    let mut want = b"early ".to_vec();
    for m in &messages {
        want.extend_from_slice(m);
    }
    let public = server.public;
    let c = run_client(server.addr, None, client_key, &public, messages);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.connected_peer, Some(public));
    assert_eq!(c.got.len(), want.len());
    assert!(c.got == want, "the echo differs");
    let h = server.stop();
    assert_eq!((h.authenticated, h.errors), (1, 0));
    assert_eq!(h.pending_at_end, 0);
}

#[test]
fn a_wrong_responder_key_never_connects() {
    let client_key = key(1);
    let server = Server::start(HandshakeLimits::default(), *client_key.public());
    let wrong = *key(9).public();
    let c = run_client(server.addr, None, client_key, &wrong, vec![b"x".to_vec()]);
    assert_eq!(c.connected_peer, None);
    assert!(c.got.is_empty());
    assert!(!c.errors.is_empty());
    let h = server.stop();
    assert_eq!(h.authenticated, 0);
}

#[test]
fn an_unadmitted_key_is_closed_before_any_data() {
    let server = Server::start(HandshakeLimits::default(), *key(5).public());
    let public = server.public;
    let c = run_client(server.addr, None, key(1), &public, vec![b"x".to_vec()]);
    assert_eq!(c.connected_peer, None);
    assert!(c.got.is_empty());
    assert_eq!(server.stop().authenticated, 0);
}

/// Reads until the server closes (or resets) the connection, within `limit`.
fn closed_within(c: &mut StdStream, limit: Duration) -> bool {
    c.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn a_flood_of_bogus_handshakes_neither_blocks_the_loop_nor_grows_it() {
    let limits = HandshakeLimits {
        per_address: 4,
        total: 16,
        deadline: Duration::from_millis(500),
        ..HandshakeLimits::default()
    };
    let client_key = key(1);
    let server = Server::start(limits, *client_key.public());
    let addr = server.addr;
    // Silent connections hold their places until the deadline; beyond four from
    // 127.0.0.1 they are refused at once.
    let mut silent: Vec<StdStream> = (0..30).map(|_| StdStream::connect(addr).unwrap()).collect();
    // Plaintext, and a well-formed opening of random bytes (which costs the
    // server its DH work and fails it), over and over.
    let mut bogus_first = PREAMBLE.to_vec();
    bogus_first.extend_from_slice(&96u16.to_be_bytes());
    bogus_first.extend_from_slice(&pattern(96, 7));
    let flood = std::thread::spawn(move || {
        let mut closed = 0;
        for n in 0..300 {
            let Ok(mut c) = StdStream::connect(addr) else {
                continue;
            };
            let bytes: &[u8] = if n % 2 == 0 {
                b"needs peer list\r\n"
            } else {
                &bogus_first
            };
            let _ = c.write_all(bytes);
            if closed_within(&mut c, Duration::from_secs(5)) {
                closed += 1;
            }
        }
        closed
    });
    // A real client, from another address, gets through meanwhile.
    let started = Instant::now();
    let public = server.public;
    let c = run_client(
        addr,
        Some([127, 0, 0, 2].into()),
        client_key,
        &public,
        vec![b"through\n".to_vec()],
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.got, b"early through\n");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        flood.join().unwrap(),
        300,
        "every bogus connection was closed"
    );
    // The silent ones were refused or timed out, all of them.
    for c in &mut silent {
        assert!(closed_within(c, Duration::from_secs(3)));
    }
    let h = server.stop();
    assert!(h.refused_at_accept >= 26, "{}", h.refused_at_accept);
    assert!(h.most_slots <= 8, "the slot table grew to {}", h.most_slots);
    assert_eq!(h.pending_at_end, 0);
    assert_eq!(h.authenticated, 1);
}

/// Sends `early` before the handshake and nothing after; records `connect`,
/// `send_complete` and the bytes that came back, and stops once `expected` have,
/// leaving the link open: a close read in the server's batch would end the slot
/// before its `send_complete` is due.
struct Watcher {
    expected: usize,
    got: Vec<u8>,
    events: Vec<&'static str>,
}

impl Handler for Watcher {
    type Data = ();
    fn connection_request(&mut self, _r: &mut Reactor<()>, _l: Index, _req: Request) {}
    fn connect(&mut self, _r: &mut Reactor<()>, _i: Index) {
        self.events.push("connect");
    }
    fn send_complete(&mut self, _r: &mut Reactor<()>, _i: Index) {
        self.events.push("send_complete");
    }
    fn data_arrival(&mut self, r: &mut Reactor<()>, _i: Index, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got.len() >= self.expected {
            r.stop();
        }
    }
    fn close(&mut self, r: &mut Reactor<()>, _i: Index, _data: ()) {
        self.events.push("close");
        r.stop();
    }
    fn timer(&mut self, r: &mut Reactor<()>, _id: usize) {
        self.events.push("deadline");
        r.stop();
    }
}

/// The watcher, and its reactor, whose link stays open until it is dropped.
fn watch(
    server: &Server,
    identity: Keypair,
    early: &[u8],
    expected: usize,
) -> (Watcher, Reactor<()>) {
    let mut r = Reactor::new(Options::default()).unwrap();
    r.set_identity(identity);
    let i = r
        .connect_secure(server.addr, None, &server.public, ())
        .unwrap();
    if !early.is_empty() {
        r.send(i, early);
    }
    r.set_timer(0, Instant::now() + Duration::from_secs(30));
    let mut w = Watcher {
        expected,
        got: Vec::new(),
        events: Vec::new(),
    };
    r.run(&mut w).unwrap();
    (w, r)
}

#[test]
fn an_initiator_hears_send_complete_for_its_held_data_not_for_the_handshake() {
    // Small enough that the socket takes it at once when the link comes up, and
    // large enough that it waits in the queue: both owe one `send_complete`.
    for len in [6, 2 * 1024 * 1024] {
        let client_key = key(1);
        let server = Server::start(HandshakeLimits::default(), *client_key.public());
        let early = pattern(len, 3);
        let (w, _open) = watch(&server, client_key, &early, len);
        assert_eq!(w.got.len(), len, "{:?}", w.events);
        assert_eq!(w.events.first(), Some(&"connect"), "{len}: {:?}", w.events);
        assert!(w.events.contains(&"send_complete"), "{len}: {:?}", w.events);
        server.stop();
    }
}

#[test]
fn an_initiator_with_nothing_to_send_hears_no_send_complete() {
    let client_key = key(1);
    let server = Server::greeting(
        HandshakeLimits::default(),
        *client_key.public(),
        b"hi\n".to_vec(),
    );
    let (w, _open) = watch(&server, client_key, b"", 3);
    assert_eq!(w.got, b"hi\n");
    assert_eq!(w.events, ["connect"]);
    server.stop();
}

#[test]
fn a_responder_hears_send_complete_once_its_held_data_is_sealed_and_sent() {
    let client_key = key(1);
    let greeting = pattern(100, 4);
    let server = Server::greeting(
        HandshakeLimits::default(),
        *client_key.public(),
        greeting.clone(),
    );
    let (w, open) = watch(&server, client_key, b"", greeting.len());
    assert!(w.got == greeting);
    let h = server.stop();
    drop(open);
    assert_eq!(h.events, ["authenticated", "send_complete"]);
}

#[test]
fn when_every_place_is_taken_the_oldest_handshake_makes_room() {
    let limits = HandshakeLimits {
        per_address: 64,
        total: 8,
        // Far beyond the test: only making room can close a silent one.
        deadline: Duration::from_secs(60),
        ..HandshakeLimits::default()
    };
    let client_key = key(1);
    let server = Server::start(limits, *client_key.public());
    let mut silent: Vec<StdStream> = (0..8)
        .map(|_| {
            let mut s = StdStream::connect(server.addr).unwrap();
            s.write_all(&PREAMBLE[..4]).unwrap();
            s
        })
        .collect();
    let public = server.public;
    let c = run_client(
        server.addr,
        Some([127, 0, 0, 2].into()),
        client_key,
        &public,
        vec![b"through\n".to_vec()],
    );
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert_eq!(c.got, b"early through\n");
    assert!(
        closed_within(&mut silent[0], Duration::from_secs(5)),
        "the oldest gave up its place"
    );
    for s in &mut silent[1..] {
        assert!(
            !closed_within(s, Duration::from_millis(50)),
            "a newer one was closed"
        );
    }
    let h = server.stop();
    assert_eq!((h.authenticated, h.refused_at_accept), (1, 0));
}

#[test]
fn links_that_take_a_new_key_before_every_record_still_echo_every_byte() {
    let always = Options {
        rekey_after: Duration::ZERO,
        ..Options::default()
    };
    let client_key = key(1);
    let server = Server::with_options(always.clone(), *client_key.public(), Vec::new());
    let messages: Vec<Vec<u8>> = (0..50u8)
        .map(|n| pattern(1 + n as usize * 997, n))
        .collect();
    let want: Vec<u8> = std::iter::once(&b"early "[..])
        .chain(messages.iter().map(Vec::as_slice))
        .flatten()
        .copied()
        .collect();
    let public = server.public;
    let c = run_client_with(always, server.addr, None, client_key, &public, messages);
    assert!(c.errors.is_empty(), "{:?}", c.errors);
    assert!(c.got == want, "the echo differs");
    let h = server.stop();
    assert_eq!((h.authenticated, h.errors), (1, 0));
}
