//! Host names to addresses without blocking the loop and without glibc's
//! `getaddrinfo`: `/etc/hosts` first, then the DNS servers in
//! `/etc/resolv.conf`, asked for A and AAAA records over UDP, as musl and Go do.
//!
//! Why not `getaddrinfo`: it blocks (the servant used a thread just for banned
//! names), and in a static binary it drags in glibc's NSS, `dlopen` and stdio,
//! about 400 KB, while it still wants glibc's shared NSS modules at run time for
//! anything beyond files and DNS. What is given up: `nsswitch.conf` sources
//! other than files and DNS (mDNS, LDAP, systemd's `resolve`), retrying over
//! TCP when a reply is truncated (queries offer 1232 bytes by EDNS0, room for
//! about 70 addresses; a truncated reply counts as that server failing), and
//! glibc's default search domain taken from the host name.
//!
//! The shape: a [`Batch`] is a set of names looked up together over one UDP
//! socket. Its owner watches [`Batch::fd`], calls [`Batch::readable`] when it is
//! readable and [`Batch::expire`] at [`Batch::deadline`], until
//! [`Batch::is_done`]. [`lookup_blocking`] drives one the same way with `poll`.

pub mod conf;
pub mod dns;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use crate::net::canonical_ip;
pub use conf::{Hosts, ResolvConf};

/// The files a lookup consults.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    pub hosts: Hosts,
    pub conf: ResolvConf,
}

impl Settings {
    /// `/etc/hosts` and `/etc/resolv.conf` as they are now; a missing file counts
    /// as an empty one (so with neither, only the local host's server is asked).
    pub fn system() -> Settings {
        let read = |path| std::fs::read_to_string(path).unwrap_or_default();
        Settings {
            hosts: Hosts::parse(&read("/etc/hosts")),
            conf: ResolvConf::parse(&read("/etc/resolv.conf")),
        }
    }
}

/// A lookup's outcome: the addresses, or why there are none.
pub type Found = Result<Vec<IpAddr>, String>;

/// Query types asked for each name, in this order in `Lookup::answered`.
const TYPES: [u16; 2] = [dns::A, dns::AAAA];
const RCODE_NXDOMAIN: u8 = 3;

/// One name's progress through its candidates, servers and attempts.
#[derive(Debug)]
struct Lookup {
    name: String,
    candidates: Vec<String>,
    candidate: usize,
    /// Questions sent for this candidate; the server asked is `tries % servers`.
    tries: usize,
    server: SocketAddr,
    deadline: Instant,
    /// Query ids awaiting a reply, by type.
    pending: [Option<u16>; 2],
    /// Replies by type: their rcode and addresses.
    answered: [Option<(u8, Vec<IpAddr>)>; 2],
    /// What went wrong last, for the message if nothing is found.
    trouble: Option<String>,
    outcome: Option<Found>,
}

impl Lookup {
    /// The addresses the replies so far carry, A before AAAA.
    fn addresses(&self) -> Vec<IpAddr> {
        self.answered
            .iter()
            .flatten()
            .flat_map(|a| a.1.clone())
            .collect()
    }
}

/// Names being looked up together; see the module's documentation.
#[derive(Debug)]
pub struct Batch {
    socket: Option<UdpSocket>,
    conf: ResolvConf,
    lookups: Vec<Lookup>,
}

impl Batch {
    /// Starts looking up `names`. Literal addresses, `localhost` and names in
    /// `/etc/hosts` are answered at once; the others' first questions are sent.
    pub fn start(settings: &Settings, names: &[String], now: Instant) -> io::Result<Batch> {
        let mut conf = settings.conf.clone();
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        let mut batch = Batch {
            socket: None,
            conf,
            lookups: Vec::with_capacity(names.len()),
        };
        for name in names {
            let outcome = answer_locally(&settings.hosts, name);
            let candidates = match &outcome {
                Some(_) => Vec::new(),
                None => batch.conf.candidates(name),
            };
            batch.lookups.push(Lookup {
                name: name.clone(),
                candidates,
                candidate: 0,
                tries: 0,
                server: batch.conf.nameservers[0],
                deadline: now,
                pending: [None; 2],
                answered: [None, None],
                trouble: None,
                outcome,
            });
        }
        if !batch.is_done() {
            batch.socket = Some(open_socket()?);
            for k in 0..batch.lookups.len() {
                if batch.lookups[k].outcome.is_none() {
                    batch.ask(k, now);
                }
            }
        }
        Ok(batch)
    }

    /// The socket to watch for replies, while there is one.
    pub fn fd(&self) -> Option<RawFd> {
        self.socket.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// When [`Batch::expire`] should next be called, if anything is in flight.
    pub fn deadline(&self) -> Option<Instant> {
        self.unfinished().map(|l| l.deadline).min()
    }

    pub fn is_done(&self) -> bool {
        self.unfinished().next().is_none()
    }

    /// Each name with its outcome; a name still in flight has none yet.
    pub fn outcomes(&self) -> impl Iterator<Item = (&str, Option<&Found>)> {
        self.lookups
            .iter()
            .map(|l| (l.name.as_str(), l.outcome.as_ref()))
    }

    fn unfinished(&self) -> impl Iterator<Item = &Lookup> {
        self.lookups.iter().filter(|l| l.outcome.is_none())
    }

    /// Reads every reply waiting on the socket (it is edge-triggered, so all of
    /// them) and moves each lookup on. Replies that match no question in flight,
    /// from the wrong address or with the wrong name, are dropped: that is what
    /// keeps an off-path sender from answering for the server.
    pub fn readable(&mut self, now: Instant) {
        let mut buf = [0u8; 1500];
        loop {
            let Some(socket) = &self.socket else { return };
            let (n, from) = match socket.recv_from(&mut buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or an ICMP error surfacing: wait on
            };
            let Ok(reply) = dns::parse_reply(&buf[..n]) else {
                continue;
            };
            let from = SocketAddr::new(canonical_ip(from.ip()), from.port());
            let matched = self.lookups.iter().position(|l| {
                l.outcome.is_none()
                    && l.server == from
                    && l.candidates.get(l.candidate) == Some(&reply.qname)
                    && TYPES
                        .iter()
                        .zip(l.pending)
                        .any(|(t, id)| *t == reply.qtype && id == Some(reply.id))
            });
            if let Some(k) = matched {
                let slot = usize::from(reply.qtype == dns::AAAA);
                let l = &mut self.lookups[k];
                l.pending[slot] = None;
                if reply.truncated {
                    // More than fits in the payload offered (1232 bytes); TCP is
                    // not tried, so this server cannot answer this name.
                    let why = format!("{} sent a truncated reply", l.server.ip());
                    self.fail(k, now, why, true);
                    continue;
                }
                l.answered[slot] = Some((reply.rcode, reply.addrs));
                self.settle(k, now);
            }
        }
    }

    /// Moves on every lookup whose question has waited its timeout: it keeps
    /// what half of an answer came, else asks the next server.
    pub fn expire(&mut self, now: Instant) {
        for k in 0..self.lookups.len() {
            let l = &mut self.lookups[k];
            if l.outcome.is_some() || l.deadline > now {
                continue;
            }
            let why = format!("no reply from {}", l.server.ip());
            self.fail(k, now, why, false);
        }
    }

    /// What a lookup does with the replies it has.
    fn settle(&mut self, k: usize, now: Instant) {
        let l = &mut self.lookups[k];
        let rcodes = l.answered.iter().flatten().map(|a| a.0);
        if let Some(bad) = rcodes.clone().find(|&r| r != 0 && r != RCODE_NXDOMAIN) {
            let why = format!("{} answered {}", l.server.ip(), rcode_text(bad));
            return self.fail(k, now, why, true);
        }
        let nxdomain = rcodes.clone().any(|r| r == RCODE_NXDOMAIN);
        if l.answered.iter().any(Option::is_none) && !nxdomain {
            return; // the other type's reply is still to come
        }
        let got = l.addresses();
        if !got.is_empty() {
            l.outcome = Some(Ok(got));
            return;
        }
        l.trouble = Some(if nxdomain {
            "no such host".to_string()
        } else {
            "no addresses".to_string()
        });
        l.candidate += 1;
        l.tries = 0;
        if l.candidate < l.candidates.len() {
            self.ask(k, now);
        } else {
            l.outcome = Some(Err(l.trouble.take().unwrap_or_default()));
        }
    }

    /// A question went unanswered (`answered` false: silence, or no way to send
    /// it) or was answered badly (a failure rcode, a truncated reply). What one
    /// type's reply already found is kept; otherwise the next server is asked,
    /// then the next round. When all have been tried, a name that servers
    /// answered badly gives way to the next search-list candidate, as glibc does;
    /// silence ends the lookup.
    fn fail(&mut self, k: usize, now: Instant, why: String, answered: bool) {
        let servers = self.conf.nameservers.len();
        let l = &mut self.lookups[k];
        l.trouble = Some(why);
        let got = l.addresses();
        if !got.is_empty() {
            l.outcome = Some(Ok(got));
        } else if l.tries < servers * self.conf.attempts as usize {
            self.ask(k, now);
        } else if answered && l.candidate + 1 < l.candidates.len() {
            l.candidate += 1;
            l.tries = 0;
            self.ask(k, now);
        } else {
            l.outcome = Some(Err(l.trouble.take().unwrap_or_default()));
        }
    }

    /// Sends the current candidate's A and AAAA questions to the next server.
    fn ask(&mut self, k: usize, now: Instant) {
        let servers = &self.conf.nameservers;
        let l = &mut self.lookups[k];
        l.server = servers[l.tries % servers.len()];
        l.tries += 1;
        l.deadline = now + self.conf.timeout;
        l.answered = [None, None];
        let name = &l.candidates[l.candidate];
        let mut unsent = None;
        for (slot, qtype) in TYPES.into_iter().enumerate() {
            let id = random_id();
            let query = match dns::query(id, name, qtype) {
                Ok(q) => q,
                Err(e) => {
                    l.outcome = Some(Err(e.to_string()));
                    return;
                }
            };
            l.pending[slot] = Some(id);
            let to = match (self.socket.as_ref().map(UdpSocket::local_addr), l.server) {
                (Some(Ok(SocketAddr::V6(_))), SocketAddr::V4(v4)) => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                (_, to) => to,
            };
            if let Some(Err(e)) = self.socket.as_ref().map(|s| s.send_to(&query, to)) {
                unsent = Some(format!("cannot ask {}: {e}", l.server.ip()));
            }
        }
        if let Some(why) = unsent {
            // No reply can come: on to the next server now, not at the deadline.
            self.fail(k, now, why, false);
        }
    }
}

/// What needs no server: an address written as one, `localhost` (always the
/// loopback addresses, RFC 6761), or a name in `/etc/hosts`.
fn answer_locally(hosts: &Hosts, name: &str) -> Option<Found> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(Ok(vec![ip]));
    }
    let listed = hosts.lookup(name);
    if !listed.is_empty() {
        return Some(Ok(listed));
    }
    let lower = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(Ok(vec![
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
        ]));
    }
    if name.is_empty() {
        return Some(Err("an empty name".into()));
    }
    None
}

/// An IPv6 address with a zone, `fe80::1%eth0` or `fe80::1%2` (brackets
/// allowed), as a socket address on `port`; None for anything else, or a zone
/// that names no interface. Link-local addresses need the zone, and a plain
/// [`IpAddr`] cannot carry it, so this is asked before any lookup.
pub fn scoped_literal(host: &str, port: u16) -> Option<SocketAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let (ip, zone) = bare.split_once('%')?;
    let ip: Ipv6Addr = ip.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => interface_index(zone)?,
    };
    (scope != 0).then(|| std::net::SocketAddrV6::new(ip, port, 0, scope).into())
}

/// The index of the network interface `name`, asked of the kernel directly:
/// glibc's `if_nametoindex` would bring its locale code into the static build.
fn interface_index(name: &str) -> Option<u32> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return None;
    }
    // SAFETY: an all-zero ifreq is a valid, empty request.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *to = from as libc::c_char;
    }
    // SAFETY: a socket only to ask about interfaces, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: SIOCGIFINDEX reads the name and writes the index into `request`.
    let found = unsafe { libc::ioctl(fd, libc::SIOCGIFINDEX, &mut request) } == 0;
    // SAFETY: fd is ours and not used again.
    unsafe { libc::close(fd) };
    if !found {
        return None;
    }
    // SAFETY: on success the kernel filled in the index member of the union.
    Some(unsafe { request.ifr_ifru.ifru_ifindex } as u32)
}

/// One socket for both families where the host has IPv6 (dual-stack even where
/// `net.ipv6.bindv6only` makes sockets IPv6-only by default), else an IPv4 one.
fn open_socket() -> io::Result<UdpSocket> {
    let dual = || -> io::Result<UdpSocket> {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
        s.set_only_v6(false)?;
        s.bind(&SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)).into())?;
        Ok(s.into())
    };
    let socket = dual().or_else(|_| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A query id the kernel's random source chose: with the random source port, what
/// an off-path sender has to guess.
fn random_id() -> u16 {
    let mut id = [0u8; 2];
    // SAFETY: getrandom writes at most the two bytes it is given.
    let n = unsafe { libc::getrandom(id.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        // Only on kernels before 3.17: the clock's nanoseconds, better than nothing.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.subsec_nanos() as u16;
    }
    u16::from_ne_bytes(id)
}

fn rcode_text(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

/// Looks up one name, waiting for the answer: for start-up, before the loop
/// runs. The wait is bounded by `/etc/resolv.conf`'s timeout x attempts x servers.
pub fn lookup_blocking(settings: &Settings, name: &str) -> Found {
    let mut batch = Batch::start(settings, &[name.to_string()], Instant::now())
        .map_err(|e| format!("cannot open a socket to ask DNS: {e}"))?;
    while let (Some(fd), Some(deadline)) = (batch.fd(), batch.deadline()) {
        let wait = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32 + 1;
        // SAFETY: one pollfd, valid for the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
        if ready > 0 {
            batch.readable(Instant::now());
        }
        batch.expire(Instant::now());
    }
    let (_, outcome) = batch.outcomes().next().expect("one name was asked");
    outcome.cloned().unwrap_or_else(|| Err("no answer".into()))
}

#[cfg(test)]
mod tests;
