//! The trivial server the benchmarks hold a server against: plain mio, no
//! reactor, no parsing. It accepts, and for every request (bytes up to a
//! terminator, a newline unless told otherwise) answers the same bytes the server
//! under test would, from one static buffer; it closes when the client does, or,
//! told to, right after its answer, as an HTTP/1.0 server does. What it costs per
//! cycle is the floor for any server doing that exchange over TCP (`churn
//! baseline-server`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use memchr::memmem;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

/// What the baseline answers, to what, and who hangs up first.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub reply: Vec<u8>,
    /// What ends a request: `\n` for the manager's lines and redis's inline
    /// commands, `\r\n\r\n` for HTTP.
    pub request_end: Vec<u8>,
    /// Close once the reply is written (the server closes first), instead of
    /// waiting for the client to close.
    pub close_after_reply: bool,
}

impl Baseline {
    /// The manager's exchange: a line in, `len` bytes framed as a document out,
    /// the client closing first.
    pub fn document(len: usize) -> Baseline {
        Baseline {
            reply: document(len),
            request_end: b"\n".to_vec(),
            close_after_reply: false,
        }
    }
}

/// A reply of `len` bytes that frames like a peer document (`<peers>...</peers>\r\n`),
/// so churn reads it as one. At least the 17 bytes of the empty document.
fn document(len: usize) -> Vec<u8> {
    let len = len.max(17);
    let mut r = b"<peers>".to_vec();
    r.resize(len - 10, b' ');
    r.extend_from_slice(b"</peers>\r\n");
    r
}

/// One client's connection and what the baseline owes it.
struct Conn {
    stream: TcpStream,
    /// Replies owed and bytes of the current one already written.
    owed: usize,
    written: usize,
    writable_registered: bool,
    /// The end of the input after its last whole request: the start of a
    /// terminator split between two reads.
    tail: Vec<u8>,
    /// A reply is owed and the server closes after it: read nothing more.
    last: bool,
}

impl Conn {
    /// Counts the requests `input` completes.
    fn requests(&mut self, input: &[u8], end: &memmem::Finder<'_>) -> usize {
        let joined;
        let window = if self.tail.is_empty() {
            input
        } else {
            joined = [self.tail.as_slice(), input].concat();
            &joined
        };
        let len = end.needle().len();
        let mut after = 0;
        let mut n = 0;
        for at in end.find_iter(window) {
            n += 1;
            after = at + len;
        }
        let keep_from = after.max(window.len().saturating_sub(len - 1));
        self.tail = window[keep_from..].to_vec();
        n
    }
}

/// Serves `b` on `addr` until killed; calls `ready` with the bound address first.
pub fn serve(addr: SocketAddr, b: &Baseline, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let reply = &b.reply;
    let end = memmem::Finder::new(&b.request_end);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    ready(listener.local_addr()?);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let k = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry()
                                .register(&mut stream, Token(k), Interest::READABLE)?;
                            conns[k] = Some(Conn {
                                stream,
                                owed: 0,
                                written: 0,
                                writable_registered: false,
                                tail: Vec::new(),
                                last: false,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let k = event.token().0;
            let Some(Some(c)) = conns.get_mut(k) else {
                continue; // a stale event for a closed connection
            };
            let mut done = false;
            while !c.last {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => {
                        c.owed += c.requests(&buf[..n], &end);
                        if b.close_after_reply && c.owed > 0 {
                            c.owed = 1;
                            c.last = true;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            while !done && c.owed > 0 {
                match c.stream.write(&reply[c.written..]) {
                    Ok(n) => {
                        c.written += n;
                        if c.written == reply.len() {
                            c.written = 0;
                            c.owed -= 1;
                            done = c.last;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => done = true,
                }
            }
            if !done {
                let want_write = c.owed > 0;
                if want_write != c.writable_registered {
                    c.writable_registered = want_write;
                    let interest = if want_write {
                        Interest::READABLE | Interest::WRITABLE
                    } else {
                        Interest::READABLE
                    };
                    poll.registry()
                        .reregister(&mut c.stream, Token(k), interest)?;
                }
                continue;
            }
            // Dropping the stream closes it and takes it out of the epoll set.
            conns[k] = None;
            free.push(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_frame_as_documents_of_the_asked_size() {
        for len in [0, 17, 18, 5000] {
            let r = document(len);
            assert_eq!(r.len(), len.max(17));
            assert_eq!(crate::wire::peerdoc::document_end(&r), Some(r.len() - 2));
        }
    }

    #[test]
    fn answers_each_line_and_closes_with_the_client() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let b = Baseline::document(100_000);
            serve("127.0.0.1:0".parse().unwrap(), &b, |a| tx.send(a).unwrap())
        });
        let addr = rx.recv().unwrap();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"needs peer list\nneeds peer list\n").unwrap();
        let mut got = vec![0u8; 200_000];
        s.read_exact(&mut got).unwrap();
        assert!(got.ends_with(b"</peers>\r\n"));
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(s.read(&mut got).unwrap(), 0);
    }

    #[test]
    fn requests_split_between_reads_count_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let b = Baseline {
                reply: b"HTTP/1.0 200 OK\r\n\r\nhi".to_vec(),
                request_end: b"\r\n\r\n".to_vec(),
                close_after_reply: false,
            };
            serve("127.0.0.1:0".parse().unwrap(), &b, |a| tx.send(a).unwrap())
        });
        let mut s = std::net::TcpStream::connect(rx.recv().unwrap()).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        for part in [
            &b"GET / HTTP/1.0\r\n\r"[..],
            b"\n",
            b"GET / HTTP/1.0\r\n\r\n",
        ] {
            s.write_all(part).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let mut got = vec![0u8; 42];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.0 200 OK\r\n\r\nhiHTTP/1.0 200 OK\r\n\r\nhi");
    }

    #[test]
    fn closes_after_its_reply_when_told() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let b = Baseline {
                reply: b"+PONG\r\n".to_vec(),
                request_end: b"\n".to_vec(),
                close_after_reply: true,
            };
            serve("127.0.0.1:0".parse().unwrap(), &b, |a| tx.send(a).unwrap())
        });
        let mut s = std::net::TcpStream::connect(rx.recv().unwrap()).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        s.write_all(b"PING\r\nPING\r\n").unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"+PONG\r\n", "one reply, then the server's close");
    }
}
