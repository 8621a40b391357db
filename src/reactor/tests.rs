//! The reactor against real sockets on loopback: whole loops in a thread, or one
//! turn at a time where the order of events is the point.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream as StdStream};
use std::time::Duration;

use mio::Events;

use super::policy::{sweep_period, ACCEPT_BUDGET};
use super::*;

/// Answers any input with `reply_len` bytes; then, if `hangs_up`, closes the
/// slot itself (after the flush) unless the peer closes first, else leaves the
/// peer's close to end the slot.
struct Blaster {
    reply_len: usize,
    hangs_up: bool,
    closes: usize,
}

impl Blaster {
    fn new(reply_len: usize, hangs_up: bool) -> Blaster {
        Blaster {
            reply_len,
            hangs_up,
            closes: 0,
        }
    }
}

impl Handler for Blaster {
    type Data = ();
    fn connection_request(&mut self, r: &mut Reactor<()>, _l: Index, req: Request) {
        r.accept(req, ()).unwrap();
    }
    fn data_arrival(&mut self, r: &mut Reactor<()>, i: Index, _data: &[u8]) {
        let reply: Vec<u8> = (0..self.reply_len).map(|n| (n % 251) as u8).collect();
        r.send(i, &reply);
        if self.hangs_up {
            r.close(i);
        }
    }
    fn close(&mut self, r: &mut Reactor<()>, _i: Index, _data: ()) {
        self.closes += 1;
        r.stop();
    }
}

/// Runs `h` on a reactor in a thread; returns the listener's address and the thread.
fn serve<H: Handler<Data = ()> + Send + 'static>(
    options: Options,
    mut h: H,
) -> (SocketAddr, std::thread::JoinHandle<H>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut r = Reactor::new(options).unwrap();
        let l = r.listen(Some([127, 0, 0, 1].into()), 0, ()).unwrap();
        tx.send(r.local_addr(l).unwrap()).unwrap();
        r.run(&mut h).unwrap();
        h
    });
    (rx.recv().unwrap(), t)
}

/// Reads everything up to the peer's close and checks it is `len` bytes of the
/// Blaster's pattern, `from` bytes in.
fn expect_pattern(c: &mut StdStream, from: usize, len: usize) {
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert_eq!(from + rest.len(), len, "bytes lost");
    assert!(rest
        .iter()
        .enumerate()
        .all(|(n, &b)| b == ((n + from) % 251) as u8));
}

#[test]
fn a_reply_bigger_than_the_socket_buffer_arrives_whole_before_the_close() {
    let len = 8 * 1024 * 1024;
    let (addr, t) = serve(Options::default(), Blaster::new(len, true));
    let mut c = StdStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"go").unwrap();
    // Read slowly at first, so the server has to queue most of it.
    let mut first = [0u8; 1024];
    c.read_exact(&mut first).unwrap();
    expect_pattern(&mut c, first.len(), len);
    assert_eq!(t.join().unwrap().closes, 1);
}

#[test]
fn a_half_close_still_gets_everything_queued_before_the_slot_closes() {
    let len = 8 * 1024 * 1024;
    // A peer that half-closes right after its request, as `nc -N` does: its FIN
    // arrives with the request, while most of the reply is still queued.
    let (addr, t) = serve(Options::default(), Blaster::new(len, false));
    let c = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    c.set_recv_buffer_size(16 * 1024).unwrap();
    c.connect(&addr.into()).unwrap();
    let mut c: StdStream = c.into();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"go").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    expect_pattern(&mut c, 0, len);
    assert_eq!(t.join().unwrap().closes, 1);
}

#[test]
fn a_client_that_never_reads_is_dropped_at_the_backlog_limit() {
    let options = Options {
        max_backlog: 64 * 1024,
        ..Options::default()
    };
    let (addr, t) = serve(options, Blaster::new(16 * 1024 * 1024, true));
    let mut c = StdStream::connect(addr).unwrap();
    c.write_all(b"go").unwrap();
    // The server gives up on us without our reading a byte, and its loop goes on.
    assert_eq!(t.join().unwrap().closes, 1);
}

#[test]
fn idle_sweeps_are_frequent_enough_but_bounded() {
    assert_eq!(
        sweep_period(Duration::from_secs(30)),
        Duration::from_secs(1)
    );
    assert_eq!(
        sweep_period(Duration::from_millis(200)),
        Duration::from_millis(50)
    );
}

/// Counts what happens, accepting nothing unless told to.
#[derive(Default)]
struct Recorder {
    accept: bool,
    requests: usize,
    closed: Vec<Index>,
    arrived: Vec<(Index, Vec<u8>)>,
}

impl Handler for Recorder {
    type Data = u32;
    fn connection_request(&mut self, r: &mut Reactor<u32>, _l: Index, req: Request) {
        self.requests += 1;
        if self.accept {
            r.accept(req, 0).unwrap();
        } else {
            r.refuse(req, b"full\r\n");
        }
    }
    fn data_arrival(&mut self, _r: &mut Reactor<u32>, i: Index, data: &[u8]) {
        self.arrived.push((i, data.to_vec()));
    }
    fn close(&mut self, _r: &mut Reactor<u32>, i: Index, _data: u32) {
        self.closed.push(i);
    }
}

/// A reactor with a listener in slot 0 on loopback, and its address.
fn listening() -> (Reactor<u32>, SocketAddr) {
    let mut r = Reactor::new(Options::default()).unwrap();
    let l = r.listen(Some([127, 0, 0, 1].into()), 0, 0).unwrap();
    assert_eq!(l, 0);
    let addr = r.local_addr(l).unwrap();
    (r, addr)
}

/// Runs one turn of the loop, without the standard streams.
fn turn(r: &mut Reactor<u32>, h: &mut Recorder) {
    let mut events = Events::with_capacity(64);
    let mut buf = vec![0u8; READ_CHUNK];
    r.turn(h, &mut events, &mut buf, None).unwrap();
}

#[test]
fn every_state_change_goes_through_the_transition_and_closing_is_final() {
    let (mut r, addr) = listening();
    assert_eq!(r.state(0), State::Listening);
    let c = r.connect(addr, None, 7).unwrap();
    assert_eq!((c, r.state(c)), (1, State::Connecting));
    r.transition(c, State::Connected);
    r.transition(c, State::Closing);
    // Doomed once, whatever follows before the reap.
    r.transition(c, State::Error);
    r.transition(c, State::Connected);
    assert_eq!(r.state(c), State::Closing);
    assert_eq!(r.doomed, vec![c]);
    let mut h = Recorder::default();
    r.reap(&mut h);
    assert_eq!(h.closed, vec![c]);
    // The slot stays loaded, in sckClosed, with neither socket nor data.
    let s = r.socket(c).expect("a reaped slot stays in the table");
    assert_eq!(
        (s.state(), s.data(), s.has_socket()),
        (State::Closed, None, false)
    );
    assert_eq!((r.slots().capacity(), r.slots().iter().count()), (2, 1));
    assert!(r.local_addr(c).is_err());
}

#[test]
fn a_new_connection_takes_the_lowest_reusable_slot() {
    let (mut r, addr) = listening();
    let mut h = Recorder::default();
    let conns: Vec<Index> = (0..5).map(|_| r.connect(addr, None, 0).unwrap()).collect();
    assert_eq!(conns, [1, 2, 3, 4, 5]);
    r.abort(4);
    r.abort(2);
    // Doomed but not reaped: sckClosing is reusable in VB's terms, yet its socket
    // is still there, so a connection in the same batch goes past it.
    assert!(r.state(2).is_reusable());
    assert_eq!(r.connect(addr, None, 0).unwrap(), 6);
    r.reap(&mut h);
    assert!(r.state(2).is_reusable() && r.state(4).is_reusable());
    // slab would hand back 2 first (freed last); VB scans from the bottom.
    assert_eq!(r.connect(addr, None, 0).unwrap(), 2);
    assert_eq!(r.connect(addr, None, 0).unwrap(), 4);
    assert_eq!(r.connect(addr, None, 0).unwrap(), 7);
    assert_eq!(r.slots().capacity(), 8);
    let in_use: Vec<Index> = r.slots().iter().map(|(i, _)| i).collect();
    assert_eq!(in_use, [0, 1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_connection_flood_is_accepted_a_budget_per_turn() {
    let (mut r, addr) = listening();
    // Connections the kernel has completed, all waiting in the listen backlog.
    let waiting = 2 * ACCEPT_BUDGET + 5;
    let _clients: Vec<StdStream> = (0..waiting)
        .map(|_| StdStream::connect(addr).unwrap())
        .collect();
    let mut h = Recorder::default();
    turn(&mut r, &mut h);
    assert_eq!(
        h.requests, ACCEPT_BUDGET,
        "one turn's budget, then the others"
    );
    assert_eq!(
        r.again,
        vec![0],
        "the listener waits behind the other sockets"
    );
    turn(&mut r, &mut h);
    assert_eq!(h.requests, 2 * ACCEPT_BUDGET);
    turn(&mut r, &mut h);
    assert_eq!(h.requests, waiting);
    assert!(r.again.is_empty(), "drained to WouldBlock");
}

/// Runs turns of at most 50 ms each until `done`, failing after five seconds.
fn turn_until(
    r: &mut Reactor<u32>,
    h: &mut Recorder,
    done: impl Fn(&Reactor<u32>, &Recorder) -> bool,
) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done(r, h) {
        assert!(std::time::Instant::now() < deadline, "timed out");
        // A timer bounds the wait when no event comes.
        r.set_timer(
            usize::MAX,
            std::time::Instant::now() + Duration::from_millis(50),
        );
        turn(r, h);
    }
}

/// The free list holds each slot without a socket exactly once, and nothing else.
fn assert_free_list_exact(r: &Reactor<u32>) {
    let free = r.slots.reusable();
    let expected: Vec<Index> = (0..r.slots().capacity())
        .filter(|&i| !r.socket(i).unwrap().has_socket())
        .collect();
    assert_eq!(
        free, expected,
        "the free list against the slots without a socket"
    );
}

#[test]
fn closing_or_aborting_a_closed_slot_twice_offers_its_index_once() {
    let (mut r, addr) = listening();
    let mut h = Recorder::default();
    let conns: Vec<Index> = (0..3).map(|_| r.connect(addr, None, 0).unwrap()).collect();
    assert_eq!(conns, [1, 2, 3]);
    r.abort(2);
    r.reap(&mut h);
    assert_eq!((r.state(2), r.slots.reusable()), (State::Closed, vec![2]));
    for _ in 0..2 {
        r.close(2);
        r.abort(2);
    }
    assert_eq!(r.state(2), State::Closed, "a free slot stays in sckClosed");
    assert!(r.doomed.is_empty(), "nothing to reap");
    r.reap(&mut h);
    assert_eq!(r.slots.reusable(), vec![2]);
    assert_eq!(h.closed, vec![2], "close fired once, for the connection");
    assert_eq!(r.connect(addr, None, 0).unwrap(), 2);
    assert_eq!(r.connect(addr, None, 0).unwrap(), 4, "2 is taken");
    assert_free_list_exact(&r);
}

#[test]
fn a_stale_event_for_a_reaped_slot_cannot_put_two_connections_in_it() {
    let (mut r, addr) = listening();
    let mut h = Recorder {
        accept: true,
        ..Recorder::default()
    };
    let client = || {
        let c = StdStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c
    };
    let _old = client();
    turn_until(&mut r, &mut h, |r, _| r.state(1) == State::Connected);
    r.abort(1);
    turn_until(&mut r, &mut h, |r, _| r.state(1) == State::Closed);
    assert_eq!(h.closed, vec![1]);
    // What a read error on the old socket, or the daemon's own late close, would
    // do to the index now that it is free.
    r.fail(1, io::ErrorKind::ConnectionReset.into());
    r.close(1);
    turn_until(&mut r, &mut h, |r, _| r.doomed.is_empty());
    // The index goes to one newcomer; the next gets a slot of its own.
    let mut b = client();
    turn_until(&mut r, &mut h, |_, h| h.requests == 2);
    let mut c = client();
    turn_until(&mut r, &mut h, |_, h| h.requests == 3);
    let in_use: Vec<Index> = r.slots().iter().map(|(i, _)| i).collect();
    assert_eq!(in_use, [0, 1, 2]);
    b.write_all(b"to b").unwrap();
    c.write_all(b"to c").unwrap();
    turn_until(&mut r, &mut h, |_, h| h.arrived.len() == 2);
    h.arrived.sort();
    assert_eq!(h.arrived, [(1, b"to b".to_vec()), (2, b"to c".to_vec())]);
    assert_eq!(h.closed, vec![1], "nobody else was closed");
    assert_free_list_exact(&r);
}

#[test]
fn the_free_list_never_holds_an_index_twice() {
    let (mut r, addr) = listening();
    let mut h = Recorder::default();
    // A fixed pseudo-random run of opens, closes, aborts and failures on any
    // index, free, doomed, in use or never loaded, with reaps in between.
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    for _ in 0..400 {
        let i = 1 + next(12);
        match next(6) {
            0 | 1 => {
                let lowest = r.slots.reusable().first().copied();
                let capacity = r.slots().capacity();
                let got = r.connect(addr, None, 0).unwrap();
                assert_eq!(got, lowest.unwrap_or(capacity), "the lowest free index");
            }
            2 => r.close(i),
            3 => r.abort(i),
            4 => r.fail(i, io::ErrorKind::BrokenPipe.into()),
            _ => r.reap(&mut h),
        }
        let free = r.slots.reusable();
        assert!(free.windows(2).all(|w| w[0] < w[1]), "twice in {free:?}");
        if r.doomed.is_empty() {
            assert_free_list_exact(&r);
        }
    }
}

#[test]
fn a_unix_socket_connects_carries_bytes_both_ways_and_closes() {
    let dir = std::env::temp_dir().join(format!("p2pchat-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("echo.sock");
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let echo = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 4];
        c.read_exact(&mut got).unwrap();
        c.write_all(&got).unwrap();
    });
    let (mut r, _) = listening();
    let mut h = Recorder::default();
    let i = r.connect_unix(&path, 7).unwrap();
    assert_eq!(r.state(i), State::Connecting);
    // Queued while connecting, sent once it is up.
    r.send(i, b"ping");
    turn_until(&mut r, &mut h, |_, h| !h.arrived.is_empty());
    assert_eq!(h.arrived, [(i, b"ping".to_vec())]);
    assert!(r.local_addr(i).is_err(), "a Unix socket has no IP address");
    echo.join().unwrap();
    turn_until(&mut r, &mut h, |_, h| h.closed == [i]);
    assert_eq!(r.state(i), State::Closed);
    std::fs::remove_dir_all(&dir).unwrap();
}
