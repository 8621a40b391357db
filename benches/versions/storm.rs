//! A join storm of the article's servants, for the `storm` step of
//! `benches/versions.rs`: `n` connections opened as fast as the manager accepts
//! them (at most [`RAMP`] connecting at once), each asking `needs peer list`
//! without a version the moment it is up, as a VB servant does, and then reading
//! whatever it is pushed, until every one has had its whole list and the pushes
//! have stopped. churn's bare steady servants join first and ask later, on their
//! schedule; this is the other order.
//!
//! Every connection is read round-robin, at most [`READ_CHUNK`] per turn, so a
//! document to one of ten thousand drains over many turns while newcomers join:
//! the answers in flight span many versions of the list, as they would to
//! servants on slower links than loopback.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// Connections in their handshake at once, so the listen backlog never overflows.
const RAMP: usize = 256;
/// Bytes read from one connection per turn.
const READ_CHUNK: usize = 64 * 1024;
/// The storm is over once every servant has its list and nothing came for this long.
const QUIET: Duration = Duration::from_secs(2);
const END: &[u8] = b"</peers>\r\n";

struct Servant {
    stream: TcpStream,
    connected: bool,
    /// Its first whole list is in.
    listed: bool,
    /// The last bytes read, for an end split over two reads.
    tail: Vec<u8>,
    /// Readable, not yet read to `WouldBlock`.
    ready: bool,
}

/// What a storm took.
pub struct Storm {
    /// Until every servant had its first list.
    pub listed_after: Duration,
    /// Bytes read in all, lists and pushes.
    pub bytes: u64,
}

/// Runs a storm of `n` servants against `addr`; gives up after `limit`, or says
/// what went wrong.
pub fn run(addr: SocketAddr, n: usize, limit: Duration) -> Result<Storm, String> {
    let mut poll = Poll::new().expect("a poll");
    let mut events = Events::with_capacity(4096);
    let mut servants: Vec<Servant> = Vec::with_capacity(n);
    let mut turns: VecDeque<usize> = VecDeque::new();
    let mut buf = vec![0u8; READ_CHUNK];
    let (start, mut last_byte) = (Instant::now(), Instant::now());
    let (mut connecting, mut listed, mut bytes) = (0, 0, 0u64);
    let mut listed_after = None;
    loop {
        while servants.len() < n && connecting < RAMP {
            let mut stream = TcpStream::connect(addr).expect("connect");
            let token = Token(servants.len());
            let interest = Interest::READABLE | Interest::WRITABLE;
            poll.registry()
                .register(&mut stream, token, interest)
                .unwrap();
            servants.push(Servant {
                stream,
                connected: false,
                listed: false,
                tail: Vec::new(),
                ready: false,
            });
            connecting += 1;
        }
        let wait = if turns.is_empty() {
            Some(Duration::from_millis(100))
        } else {
            Some(Duration::ZERO)
        };
        poll.poll(&mut events, wait).expect("poll");
        for e in &events {
            let s = &mut servants[e.token().0];
            if e.is_writable() && !s.connected {
                if e.is_error() || s.stream.peer_addr().is_err() {
                    return Err(format!("servant {} could not connect", e.token().0));
                }
                s.connected = true;
                connecting -= 1;
                if let Err(err) = s.stream.write_all(b"needs peer list\n") {
                    return Err(format!("servant {}: {err}", e.token().0));
                }
            }
            if e.is_readable() && !s.ready {
                s.ready = true;
                turns.push_back(e.token().0);
            }
        }
        // One read per readable servant per pass: the slow, fair reader.
        for _ in 0..turns.len() {
            let i = turns.pop_front().expect("counted");
            let s = &mut servants[i];
            match s.stream.read(&mut buf) {
                Ok(0) => {
                    let last = String::from_utf8_lossy(&s.tail);
                    return Err(format!("the manager closed servant {i} ({last:?} last)"));
                }
                Ok(got) => {
                    bytes += got as u64;
                    last_byte = Instant::now();
                    s.tail.extend_from_slice(&buf[..got]);
                    if !s.listed && memchr::memmem::find(&s.tail, END).is_some() {
                        s.listed = true;
                        listed += 1;
                    }
                    let keep = s.tail.len().saturating_sub(2 * END.len());
                    s.tail.drain(..keep);
                    turns.push_back(i);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => s.ready = false,
                Err(e) => return Err(format!("servant {i}: {e}")),
            }
        }
        if listed == n && listed_after.is_none() {
            listed_after = Some(start.elapsed());
        }
        if listed_after.is_some() && last_byte.elapsed() >= QUIET {
            break;
        }
        if start.elapsed() > limit {
            return Err(format!("over {limit:?}: {listed} of {n} listed"));
        }
    }
    Ok(Storm {
        listed_after: listed_after.expect("all listed"),
        bytes,
    })
}
