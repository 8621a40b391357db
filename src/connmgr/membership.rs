//! Who is a member: the one home of the manager's membership. A servant's slot
//! (its offset), address, port, name and (on a private network) key, VB's `iPortMax`, the ports held, the
//! servants per address (per /64 for IPv6), the names held and the peer document
//! (`pDoc`, with its versions) all change together, here and nowhere else.
//!
//! VB kept `pDoc` and `iPortMax` on the form and trusted `p2p(i)` to match; the
//! port adds the per-address limit, port reuse past 65535, names and relays, each
//! of which must agree with the rest for every member at every moment.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::noise::PublicKey;
use crate::reactor::Index;
use crate::wire::name::{self, Refused};
use crate::wire::peerdoc::PeerDoc;
use crate::wire::relay::Relay;

#[cfg(any(debug_assertions, test))]
mod check;
#[cfg(test)]
mod tests;

/// A set of ports, one bit each.
struct PortSet(Vec<u64>);

impl PortSet {
    fn new() -> Self {
        PortSet(vec![0; 65536 / 64])
    }
    fn contains(&self, p: u16) -> bool {
        self.0[p as usize / 64] & (1 << (p % 64)) != 0
    }
    fn insert(&mut self, p: u16) {
        self.0[p as usize / 64] |= 1 << (p % 64);
    }
    fn remove(&mut self, p: u16) {
        self.0[p as usize / 64] &= !(1 << (p % 64));
    }
}

/// The IPv6 prefix length servants are counted by unless told otherwise: one
/// site's /64 is one host's worth of addresses to anyone who wants many.
pub(crate) const IPV6_PREFIX: u8 = 64;

/// Servants connected from each address, counted by its key ([`PerAddress::key`]):
/// an IPv4 address (IPv4-mapped IPv6 too) alone, an IPv6 address by its first
/// `ipv6_prefix` bits. A key with none is forgotten.
struct PerAddress {
    ipv6_prefix: u8,
    counts: HashMap<IpAddr, u32>,
}

impl PerAddress {
    fn new(ipv6_prefix: u8) -> Self {
        PerAddress {
            ipv6_prefix,
            counts: HashMap::new(),
        }
    }
    /// What `ip` is counted as: a host that holds a whole /64 (as every IPv6 site
    /// does) would otherwise have 2^64 allowances.
    fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u32::from(self.ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }
    fn count(&self, ip: IpAddr) -> usize {
        self.counts.get(&self.key(ip)).map_or(0, |&n| n as usize)
    }
    fn joined(&mut self, ip: IpAddr) {
        *self.counts.entry(self.key(ip)).or_default() += 1;
    }
    fn left(&mut self, ip: IpAddr) {
        let key = self.key(ip);
        if let Some(n) = self.counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.counts.remove(&key);
            }
        }
    }
}

/// One member, at its offset: what the document says of it.
#[derive(Debug)]
pub(super) struct Seat {
    /// The address the manager saw it come from: the one peers are told.
    pub(super) ip: IpAddr,
    /// The listening port it was assigned.
    pub(super) port: u16,
    /// Its place in join order, unique for the manager's life: a dial-back's result
    /// is for this servant, not a newcomer that took its slot.
    pub(super) serial: u64,
    /// What it said it is called (`name NAME`), as its entry shows it.
    name: Option<Box<str>>,
    /// That name folded ([`name::fold`]): its key in [`Membership::names`], kept so
    /// that a leave need not fold it again.
    folded: Option<Box<str>>,
    /// The `<relay>` its entry shows.
    relay: Option<Relay>,
    /// On a private network, the key it proved: its `<key>`.
    pub(super) key: Option<PublicKey>,
}

impl Seat {
    /// Where it listens: how peers and complaints name it.
    pub(super) fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.port)
    }

    /// The name its entry shows.
    pub(super) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The `<relay>` its entry shows.
    pub(super) fn relay(&self) -> Option<Relay> {
        self.relay
    }
}

/// The manager's members, and the only way to change them.
///
/// Invariants, held after every method returns (and checked by
/// [`Membership::check`], in debug builds after every change):
/// - Every member sits at one offset (its slot in the control array) with one
///   port, in `[first_port, 65535]`; that port is held, by no one else, and
///   `by_port` maps it back to the offset. No other port is held or mapped.
/// - The per-address counts are those of the members' keys under the current
///   IPv6 prefix ([`PerAddress::key`]): they sum to the member count, and a key
///   with no member has no count. Changing the prefix rebuilds them.
/// - The document has exactly one entry per member, at its offset, showing its
///   address and port, `me` FALSE, its `<relay>` and its `<name>`; nothing else.
/// - Names passed [`name::admit`] and are unique once folded ([`name::fold`]):
///   `names` maps each named member's folded name to its offset and holds nothing
///   else, so no two members are listed as `alice` and `Alice `.
/// - Keys are unique: `keys` maps each keyed member's key to its offset and
///   holds nothing else, so one key is one member (a private network's second
///   link for a key replaces the first, `private.rs`).
/// - `port_max` (VB's `iPortMax`) is within `[first_port - 1, 65535]`.
/// - Serials are unique and no greater than the number of joins.
pub(super) struct Membership {
    first_port: u16,
    /// VB's `iPortMax`: the last port handed out.
    port_max: u32,
    held: PortSet,
    /// Port -> offset + 1 (0 = none): complaints name servants by address.
    by_port: Vec<u32>,
    /// Offset -> its member.
    seats: Vec<Option<Seat>>,
    per_address: PerAddress,
    /// Folded name -> the offset of the member holding it.
    names: HashMap<Box<str>, Index>,
    /// Key -> the offset of the member that proved it.
    keys: HashMap<PublicKey, Index>,
    /// Servants that have joined, for [`Seat::serial`].
    joined: u64,
    /// The peer document, its version and its latest changes.
    doc: PeerDoc,
    /// Changes so far, and when the next whole check is due
    /// ([`Membership::changed`]).
    #[cfg(debug_assertions)]
    changes: u64,
    #[cfg(debug_assertions)]
    whole_check_due: u64,
}

impl Membership {
    pub(super) fn new(first_port: u16) -> Self {
        Membership {
            first_port,
            port_max: u32::from(first_port) - 1,
            held: PortSet::new(),
            // Zeroed, so pages are only touched for ports in use.
            by_port: vec![0; 65536],
            seats: Vec::new(),
            per_address: PerAddress::new(IPV6_PREFIX),
            names: HashMap::new(),
            keys: HashMap::new(),
            joined: 0,
            doc: PeerDoc::new(),
            #[cfg(debug_assertions)]
            changes: 0,
            #[cfg(debug_assertions)]
            whole_check_due: 0,
        }
    }

    /// Members now.
    pub(super) fn count(&self) -> usize {
        self.doc.len()
    }

    /// Members connected from `ip`: from that IPv4 address, or from its IPv6
    /// prefix.
    /// The address `ip` is counted under for `--max-per-address` (IPv6 by its prefix).
    pub(super) fn address_key(&self, ip: IpAddr) -> IpAddr {
        self.per_address.key(ip)
    }

    pub(super) fn at_address(&self, ip: IpAddr) -> usize {
        self.per_address.count(ip)
    }

    /// Counts IPv6 members by their first `bits` bits (1..=128) from now on,
    /// recounting the members there are.
    pub(super) fn set_ipv6_prefix(&mut self, bits: u8) {
        if bits == self.per_address.ipv6_prefix {
            return;
        }
        let mut counts = PerAddress::new(bits);
        for seat in self.seats.iter().flatten() {
            counts.joined(seat.ip);
        }
        self.per_address = counts;
        #[cfg(debug_assertions)]
        self.changed(None);
    }

    /// The peer document: what `needs peer list` is answered with.
    pub(super) fn doc(&self) -> &PeerDoc {
        &self.doc
    }

    /// A cluster's versions: see [`PeerDoc::pin_version`] and
    /// [`PeerDoc::restart_versions`] (`cluster/`).
    pub(super) fn pin_version(&mut self, at: Option<u64>) {
        self.doc.pin_version(at);
    }

    pub(super) fn restart_versions(&mut self, at: u64) {
        self.doc.restart_versions(at);
    }

    /// Who holds `name` (folded), if anyone: a cluster asks before it sends a
    /// name to Redis, and renames only when the change comes back.
    pub(super) fn name_holder(&self, name: &str) -> Option<Index> {
        self.names.get(&*name::fold(name)).copied()
    }

    /// The member at `offset`.
    pub(super) fn seat(&self, offset: Index) -> Option<&Seat> {
        self.seats.get(offset)?.as_ref()
    }

    /// The member listening at `addr`, by its port (ports are unique) and address.
    pub(super) fn at(&self, addr: SocketAddr) -> Option<Index> {
        let i = (*self.by_port.get(addr.port() as usize)? as usize).checked_sub(1)?;
        self.seat(i).filter(|s| s.ip == addr.ip())?;
        Some(i)
    }

    /// The member holding `port`, whatever its address (a cluster's ports are
    /// unique across managers).
    pub(super) fn at_port(&self, port: u16) -> Option<Index> {
        (*self.by_port.get(port as usize)? as usize).checked_sub(1)
    }

    /// VB: `iPortMax = iPortMax + 1`, wrapped to the first port past 65535 and
    /// skipping ports still held. Advances `iPortMax` even if the port then goes
    /// unused (the accept failed), as VB's counter did.
    pub(super) fn next_port(&mut self) -> Option<u16> {
        let first = u32::from(self.first_port);
        let mut found = None;
        for _ in first..=65535 {
            self.port_max = if self.port_max >= 65535 {
                first
            } else {
                self.port_max + 1
            };
            let p = self.port_max as u16;
            if !self.held.contains(p) {
                found = Some(p);
                break;
            }
        }
        #[cfg(debug_assertions)]
        self.changed(None);
        found
    }

    /// VB: `AddPeer ip, port, offset`: the servant accepted at `offset` from `ip`
    /// is a member, listening on `port` (from [`Membership::next_port`]).
    pub(super) fn join(&mut self, offset: Index, ip: IpAddr, port: u16) {
        debug_assert!(!self.held.contains(port), "port {port} is held already");
        debug_assert!(self.seat(offset).is_none(), "offset {offset} is taken");
        self.joined += 1;
        if self.seats.len() <= offset {
            self.seats.resize_with(offset + 1, || None);
        }
        self.seats[offset] = Some(Seat {
            ip,
            port,
            serial: self.joined,
            name: None,
            folded: None,
            relay: None,
            key: None,
        });
        self.held.insert(port);
        self.by_port[port as usize] = offset as u32 + 1;
        self.per_address.joined(ip);
        self.doc.add(ip, port, offset);
        #[cfg(debug_assertions)]
        self.changed(Some(offset));
    }

    /// VB: `RemovePeerByOffset offset`: the member there leaves; what it was.
    pub(super) fn leave(&mut self, offset: Index) -> Option<Seat> {
        let seat = self.seats.get_mut(offset)?.take()?;
        self.doc.remove(offset);
        self.held.remove(seat.port);
        self.by_port[seat.port as usize] = 0;
        self.per_address.left(seat.ip);
        if let Some(folded) = &seat.folded {
            self.names.remove(folded);
        }
        if let Some(key) = &seat.key {
            self.keys.remove(key);
        }
        #[cfg(debug_assertions)]
        self.changed(None);
        Some(seat)
    }

    /// Lists `offset` as `name` (one that passed [`name::admit`]), or unnamed,
    /// unless another member holds that name folded: then [`Refused::InUse`] and
    /// nothing changes. Its old name is free for others as soon as it changes.
    /// Returns whether its entry changed.
    pub(super) fn rename(&mut self, offset: Index, name: Option<&str>) -> Result<bool, Refused> {
        let Some(seat) = self.seats.get(offset).and_then(Option::as_ref) else {
            return Ok(false);
        };
        if seat.name.as_deref() == name {
            return Ok(false);
        }
        let folded = name.map(name::fold);
        if let Some(f) = &folded {
            if self.names.get(&**f).is_some_and(|&o| o != offset) {
                return Err(Refused::InUse);
            }
        }
        let seat = self.seats[offset].as_mut().expect("a member, found above");
        if let Some(old) = seat.folded.take() {
            self.names.remove(&old);
        }
        seat.name = name.map(Box::from);
        seat.folded = folded.map(Box::from);
        if let Some(f) = &seat.folded {
            self.names.insert(f.clone(), offset);
        }
        let changed = self.doc.set_name(offset, name);
        #[cfg(debug_assertions)]
        self.changed(Some(offset));
        Ok(changed)
    }

    /// Lists `key` in `offset`'s entry (None: no `<key>`), unless another member
    /// holds it: then [`Refused::InUse`] and nothing changes. Returns whether its
    /// entry changed.
    pub(super) fn set_key(
        &mut self,
        offset: Index,
        key: Option<PublicKey>,
    ) -> Result<bool, Refused> {
        let Some(seat) = self.seats.get_mut(offset).and_then(Option::as_mut) else {
            return Ok(false);
        };
        if seat.key == key {
            return Ok(false);
        }
        if let Some(k) = &key {
            if self.keys.get(k).is_some_and(|&o| o != offset) {
                return Err(Refused::InUse);
            }
        }
        if let Some(old) = seat.key.take() {
            self.keys.remove(&old);
        }
        seat.key = key;
        if let Some(k) = key {
            self.keys.insert(k, offset);
        }
        let changed = self.doc.set_key(offset, key.as_ref());
        #[cfg(debug_assertions)]
        self.changed(Some(offset));
        Ok(changed)
    }

    /// The member that proved `key`.
    pub(super) fn by_key(&self, key: &PublicKey) -> Option<Index> {
        self.keys.get(key).copied()
    }

    /// Every keyed member: offset, key, listed name.
    pub(super) fn keyed(&self) -> impl Iterator<Item = (Index, PublicKey, Option<&str>)> + '_ {
        (self.keys.iter()).filter_map(|(k, &o)| Some((o, *k, self.seat(o)?.name.as_deref())))
    }

    /// Moves `offset` to the next free port (VB's counter, as a join would): its
    /// old port is released and its entry shows the new one, one versioned change.
    /// `(old, new)`, or `None` when it is no member or no port is free.
    pub(super) fn move_port(&mut self, offset: Index) -> Option<(u16, u16)> {
        self.seat(offset)?;
        let new = self.next_port()?;
        let seat = self.seats[offset].as_mut().expect("a member, found above");
        let old = std::mem::replace(&mut seat.port, new);
        self.held.remove(old);
        self.by_port[old as usize] = 0;
        self.held.insert(new);
        self.by_port[new as usize] = offset as u32 + 1;
        self.doc.set_port(offset, new);
        #[cfg(debug_assertions)]
        self.changed(Some(offset));
        Some((old, new))
    }

    /// Shows `relay` in `offset`'s entry (None: no `<relay>`). Returns whether its
    /// entry changed.
    pub(super) fn set_relay(&mut self, offset: Index, relay: Option<Relay>) -> bool {
        let Some(seat) = self.seats.get_mut(offset).and_then(Option::as_mut) else {
            return false;
        };
        if seat.relay == relay {
            return false;
        }
        seat.relay = relay;
        let changed = self.doc.set_relay(offset, relay);
        #[cfg(debug_assertions)]
        self.changed(Some(offset));
        changed
    }

    /// After a change, in debug builds: `iPortMax` and the member changed are
    /// checked every time, and everything by [`Membership::check`] every 64 changes,
    /// or every as many changes as there are members, whichever is rarer. A whole
    /// check is linear in the members, so checking it on every join would make a
    /// debug daemon quadratic: ten thousand servants joining would take minutes.
    #[cfg(debug_assertions)]
    fn changed(&mut self, offset: Option<Index>) {
        self.changes += 1;
        let checked = if self.changes >= self.whole_check_due {
            self.whole_check_due = self.changes + (self.count() as u64).max(64);
            self.check()
        } else {
            self.check_port_max()
                .and_then(|()| offset.map_or(Ok(()), |o| self.check_seat(o)))
        };
        if let Err(e) = checked {
            panic!("membership broken: {e}");
        }
    }
}
