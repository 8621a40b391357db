//! The trivial server the benchmarks hold the manager against: plain mio, no
//! reactor, no peer document. It accepts, and for every request line answers the
//! same number of bytes the manager would, from one static buffer; it closes when
//! the client does. What it costs per cycle is the floor for any server doing
//! the manager's job over TCP (`churn baseline-server`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

/// A reply of `len` bytes that frames like a peer document (`<peers>...</peers>\r\n`),
/// so churn reads it as one. At least the 17 bytes of the empty document.
fn reply(len: usize) -> Vec<u8> {
    let len = len.max(17);
    let mut r = b"<peers>".to_vec();
    r.resize(len - 10, b' ');
    r.extend_from_slice(b"</peers>\r\n");
    r
}

struct Conn {
    stream: TcpStream,
    /// Replies owed and bytes of the current one already written.
    owed: usize,
    written: usize,
    writable_registered: bool,
}

/// Serves on `addr` until killed; calls `ready` with the bound address first.
pub fn serve(addr: SocketAddr, reply_len: usize, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let reply = reply(reply_len);
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
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => c.owed += buf[..n].iter().filter(|&&b| b == b'\n').count(),
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
            let r = reply(len);
            assert_eq!(r.len(), len.max(17));
            assert_eq!(crate::wire::peerdoc::document_end(&r), Some(r.len() - 2));
        }
    }

    #[test]
    fn answers_each_line_and_closes_with_the_client() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            serve("127.0.0.1:0".parse().unwrap(), 100_000, |a| {
                tx.send(a).unwrap()
            })
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
}
