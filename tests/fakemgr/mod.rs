//! Connection managers played by the test, for what the real one does not do:
//! the article's VB manager, which answers only the 15 bytes `needs peer list`
//! read alone, and a manager whose answers to `name` and `cannot listen` the test
//! chooses. Each is a thread per connection on a `TcpListener` bound to port 0.
#![allow(dead_code)] // each test file uses a different part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{bin, Daemon, DEADLINE};

/// A port nobody listens on just now, on `ip`.
pub fn free_port(ip: &str) -> SocketAddr {
    TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap()
}

/// One `<peer>` entry, with an optional `<name>`.
pub fn entry(addr: SocketAddr, offset: usize, me: bool, name: Option<&str>) -> String {
    format!(
        "<peer><ip>{}</ip><port>{}</port><offset>{offset}</offset><me>{}</me>{}</peer>",
        addr.ip(),
        addr.port(),
        if me { "TRUE" } else { "FALSE" },
        name.map_or_else(String::new, |n| format!("<name>{n}</name>"))
    )
}

/// A servant asking `manager` every `poll_ms`, from `bind`, with `extra` flags.
pub fn servant(manager: SocketAddr, bind: &str, poll_ms: u64, extra: &[&str]) -> Daemon {
    let (manager, poll) = (manager.to_string(), poll_ms.to_string());
    let mut args = vec![
        "--connmgr",
        &manager,
        "--bind",
        bind,
        "--poll-interval",
        &poll,
    ];
    args.extend_from_slice(extra);
    Daemon::spawn(&bin("servant"), &args)
}

/// What one connection to a fake manager received: each read as it came.
#[derive(Debug, Default)]
pub struct Conn {
    pub accepted: Option<Instant>,
    pub reads: Vec<(Instant, Vec<u8>)>,
}

/// The article's connection manager, as its VB program behaves: every connection
/// gets the next port from `ports` (its `iPortMax + 1`) and an entry; each read
/// that is exactly `needs peer list` is answered with the whole document, `me`
/// on the asker's entry, no version, followed by `ending`; any other read is
/// shown in a `MsgBox` and otherwise ignored. No pushes.
pub struct VbManager {
    pub addr: SocketAddr,
    pub conns: Arc<Mutex<Vec<Conn>>>,
}

impl VbManager {
    /// `extra` entries (peers that are not connected) are listed after the others.
    pub fn start(ports: Vec<u16>, extra: Vec<SocketAddr>, ending: &'static str) -> VbManager {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        // (listed address, live) in join order.
        let members: Arc<Mutex<Vec<(SocketAddr, bool)>>> = Arc::default();
        let seen = conns.clone();
        std::thread::spawn(move || {
            for (k, stream) in listener.incoming().enumerate() {
                let Ok(s) = stream else { return };
                let Some(&port) = ports.get(k) else { return };
                let me = SocketAddr::new(s.peer_addr().unwrap().ip(), port);
                members.lock().unwrap().push((me, true));
                seen.lock().unwrap().push(Conn {
                    accepted: Some(Instant::now()),
                    reads: Vec::new(),
                });
                let (members, seen, extra) = (members.clone(), seen.clone(), extra.clone());
                std::thread::spawn(move || vb_conn(s, k, me, &members, &seen, &extra, ending));
            }
        });
        VbManager { addr, conns }
    }

    /// Reads on connection `k` so far.
    pub fn reads(&self, k: usize) -> Vec<Vec<u8>> {
        let conns = self.conns.lock().unwrap();
        conns.get(k).map_or_else(Vec::new, |c| {
            c.reads.iter().map(|(_, r)| r.clone()).collect()
        })
    }

    /// Waits until connection `k` has had a read equal to `what`; returns when.
    pub fn wait_read(&self, k: usize, what: &[u8]) -> Instant {
        let end = Instant::now() + DEADLINE;
        while Instant::now() < end {
            if let Some(c) = self.conns.lock().unwrap().get(k) {
                if let Some((t, _)) = c.reads.iter().find(|(_, r)| r == what) {
                    return *t;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("connection {k} never sent {what:?}: {:?}", self.reads(k));
    }

    pub fn accepted(&self, k: usize) -> Instant {
        self.conns.lock().unwrap()[k].accepted.unwrap()
    }
}

/// `Winsock1_DataArrival` of the VB manager for one servant.
fn vb_conn(
    mut s: TcpStream,
    k: usize,
    me: SocketAddr,
    members: &Mutex<Vec<(SocketAddr, bool)>>,
    seen: &Mutex<Vec<Conn>>,
    extra: &[SocketAddr],
    ending: &str,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        seen.lock().unwrap()[k]
            .reads
            .push((Instant::now(), buf[..n].to_vec()));
        // `If strData = "needs peer list" Then`: the whole buffer, one read.
        if &buf[..n] != b"needs peer list" {
            continue; // MsgBox strData
        }
        let mut doc = String::from("<peers>");
        let list = members.lock().unwrap().clone();
        let live = list.iter().filter(|(_, up)| *up).map(|(a, _)| *a);
        for (o, a) in live.chain(extra.iter().copied()).enumerate() {
            doc.push_str(&entry(a, o + 1, a == me, None));
        }
        doc.push_str("</peers>");
        doc.push_str(ending);
        if s.write_all(doc.as_bytes()).is_err() {
            break;
        }
    }
    for m in members.lock().unwrap().iter_mut() {
        if m.0 == me {
            m.1 = false;
        }
    }
}

/// One end of a manager link the test plays by hand: lines in, bytes out.
pub struct Link {
    pub reader: BufReader<TcpStream>,
    pub out: TcpStream,
}

impl Link {
    /// Accepts the servant's next link to `l` within the deadline.
    pub fn accept(l: &TcpListener) -> Link {
        let s = accept_within(l, DEADLINE).expect("the servant never connected");
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        Link {
            out: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    /// The next line the servant wrote, without its `\n`.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("reading the manager link");
        assert!(line.ends_with('\n'), "link closed after {line:?}");
        line.pop();
        line
    }

    /// Lines until one starting with `prefix`, which is returned.
    pub fn line_starting(&mut self, prefix: &str) -> String {
        loop {
            let l = self.line();
            if l.starts_with(prefix) {
                return l;
            }
        }
    }

    pub fn send(&mut self, text: &str) {
        self.out.write_all(text.as_bytes()).unwrap();
    }
}

/// A connection accepted on `l` within `limit`, or None.
pub fn accept_within(l: &TcpListener, limit: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + limit;
    while Instant::now() < end {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    None
}

/// One servant as [`listing_manager`] lists it: named, and perhaps relayed.
#[derive(Clone)]
pub struct Entry {
    pub addr: SocketAddr,
    pub name: &'static str,
    pub relay: Option<SocketAddr>,
}

/// The document for the servant at `me`.
fn document(entries: &[Entry], me: std::net::IpAddr) -> String {
    let mut d = String::from("<peers>");
    for (k, e) in entries.iter().enumerate() {
        let relay = e.relay.map_or_else(String::new, |r| {
            format!(
                "<relay><ip>{}</ip><port>{}</port></relay>",
                r.ip(),
                r.port()
            )
        });
        d.push_str(&format!(
            "<peer><ip>{}</ip><port>{}</port><offset>{}</offset><me>{}</me>{relay}<name>{}</name></peer>",
            e.addr.ip(),
            e.addr.port(),
            k + 1,
            if e.addr.ip() == me { "TRUE" } else { "FALSE" },
            e.name
        ));
    }
    d.push_str("</peers>\r\n");
    d
}

/// A manager that lists `entries`, so the test says who is relayed through whom
/// (a real manager decides that only after a dial-back fails): every servant's
/// every `needs peer list` is answered with its document, `me` marked by address.
pub fn listing_manager(entries: Vec<Entry>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            let entries = entries.clone();
            std::thread::spawn(move || {
                let me = c.peer_addr().unwrap().ip();
                let doc = document(&entries, me);
                let (mut r, mut w) = (c.try_clone().unwrap(), c);
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    let asked = String::from_utf8_lossy(&buf[..n])
                        .matches("needs peer list")
                        .count();
                    for _ in 0..asked {
                        if w.write_all(doc.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}
