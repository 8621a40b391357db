//! What the hostile tests play: config files, servants, a listed address, and a
//! connection manager that answers whatever the test tells it to.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::common::{connect_from, named_servant, read_doc, Daemon, DEADLINE};

/// A config file with `body` inside `<config>`, named for the test.
pub(crate) fn config_file(test: &str, body: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("p2pchat-hostile-{}-{test}.xml", std::process::id()));
    std::fs::write(&path, format!("<config>\n{body}</config>\n")).unwrap();
    path
}

/// A servant on `bind` asking `manager` every 200 ms, with `extra` flags.
pub(crate) fn servant(
    test: &str,
    manager: SocketAddr,
    bind: &str,
    name: &str,
    extra: &[&str],
) -> Daemon {
    let config = config_file(&format!("{test}-{name}"), "");
    named_servant(&config, manager, bind, name, extra)
}

/// A port nothing listens on at `ip` just now.
pub(crate) fn free_port(ip: &str) -> u16 {
    TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Resident memory of process `pid`, in bytes.
pub(crate) fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Waits for `d` to show `line` on stdout, skipping others.
pub(crate) fn shows(d: &Daemon, line: &str) {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        if d.stdout_line().as_deref() == Some(line) {
            return;
        }
    }
    panic!("{} never showed {line:?}; log:\n{}", d.name(), d.log_text());
}

/// Lists `ip` at `manager` as a servant that never listens, so that a raw
/// connection from there is a listed peer's, whose lines a servant shows (it holds
/// lines from addresses on no list, then drops them). Keep it open.
pub(crate) fn listed_as(ip: &str, manager: SocketAddr) -> TcpStream {
    let mut c = connect_from(ip, manager);
    c.write_all(b"needs peer list\n").unwrap();
    read_doc(&mut c);
    c
}

/// A peer document: `(ip, port, me)` per entry.
pub(crate) fn document(entries: impl IntoIterator<Item = (String, u16, bool)>) -> Vec<u8> {
    let mut doc = String::from("<peers>");
    for (k, (ip, port, me)) in entries.into_iter().enumerate() {
        let me = if me { "TRUE" } else { "FALSE" };
        doc.push_str(&format!(
            "<peer><ip>{ip}</ip><port>{port}</port><offset>{}</offset><me>{me}</me></peer>",
            k + 1
        ));
    }
    doc.push_str("</peers>\r\n");
    doc.into_bytes()
}

/// A connection manager played by the test: it answers every `needs peer list`
/// with whatever `reply` holds at the time, and counts `cannot reach` complaints.
pub(crate) struct FakeManager {
    pub(crate) addr: SocketAddr,
    pub(crate) reply: Arc<Mutex<Vec<u8>>>,
    pub(crate) complaints: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeManager {
    pub(crate) fn start(ip: &str, reply: Vec<u8>) -> FakeManager {
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = Arc::new(Mutex::new(reply));
        let complaints = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, c, s) = (reply.clone(), complaints.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, c) = (r.clone(), c.clone());
                std::thread::spawn(move || serve_fake(conn, &r, &c));
            }
        });
        FakeManager {
            addr,
            reply,
            complaints,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn set_reply(&self, reply: Vec<u8>) {
        *self.reply.lock().unwrap() = reply;
    }
}

pub(crate) fn serve_fake(conn: TcpStream, reply: &Mutex<Vec<u8>>, complaints: &AtomicUsize) {
    let mut writer = conn.try_clone().unwrap();
    for line in BufReader::new(conn).split(b'\n') {
        let Ok(line) = line else { return };
        if line.starts_with(b"needs peer list") {
            let bytes = reply.lock().unwrap().clone();
            if writer.write_all(&bytes).is_err() {
                return;
            }
        } else if line.starts_with(b"cannot reach") {
            complaints.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Drop for FakeManager {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
