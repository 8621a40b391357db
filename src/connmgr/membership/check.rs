//! The invariants of [`Membership`], checked: after every change in debug builds
//! (`Membership::changed`) and by the property test. Release builds compile none
//! of it, so they pay nothing for the checks.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Membership, PortSet, Seat};
use crate::reactor::Index;
use crate::wire::name;

impl PortSet {
    fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
}

impl Membership {
    /// Verifies every invariant in the type's documentation; says which failed.
    pub(super) fn check(&self) -> Result<(), String> {
        self.check_counts()?;
        self.doc.check().map_err(|e| format!("the document: {e}"))?;
        let mut members = 0;
        let mut serials = std::collections::HashSet::new();
        let mut addresses: HashMap<IpAddr, u32> = HashMap::new();
        let mut named = 0;
        let mut keyed = 0;
        for offset in 0..self.seats.len() {
            let Some(seat) = self.seat(offset) else {
                if self.doc.entry(offset).is_some() {
                    return Err(format!("offset {offset} is in the document, not a member"));
                }
                continue;
            };
            self.check_seat(offset)?;
            members += 1;
            *addresses.entry(self.per_address.key(seat.ip)).or_default() += 1;
            named += usize::from(seat.name.is_some());
            keyed += usize::from(seat.key.is_some());
            if !serials.insert(seat.serial) {
                return Err(format!("serial {} is used twice", seat.serial));
            }
        }
        if members != self.count() {
            return Err(format!(
                "{members} members but {} document entries",
                self.count()
            ));
        }
        if addresses != self.per_address.counts {
            return Err(format!(
                "per-address counts {:?}, members' addresses {addresses:?}",
                self.per_address.counts
            ));
        }
        // Each named member's folded name maps to it (check_seat), so as many
        // entries as named members means no entry maps to anyone else.
        if named != self.names.len() {
            return Err(format!(
                "{named} named members but {} names held",
                self.names.len()
            ));
        }
        if keyed != self.keys.len() {
            return Err(format!(
                "{keyed} keyed members but {} keys held",
                self.keys.len()
            ));
        }
        // Held ports are the mapped ones. A word of unheld ports is compared whole
        // (a memcmp even in debug builds, where checks run).
        for (w, &bits) in self.held.0.iter().enumerate() {
            let ports = &self.by_port[w * 64..w * 64 + 64];
            if bits == 0 && ports == [0; 64] {
                continue;
            }
            for (k, &o) in ports.iter().enumerate() {
                let held = bits >> k & 1 == 1;
                if held != (o != 0) {
                    let (port, held) = (w * 64 + k, if held { "held" } else { "not held" });
                    return Err(format!(
                        "port {port} is {held} but maps to {o} (offset + 1)"
                    ));
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_port_max(&self) -> Result<(), String> {
        let first = u32::from(self.first_port);
        if !(first - 1..=65535).contains(&self.port_max) {
            return Err(format!(
                "iPortMax {} outside {}..=65535",
                self.port_max,
                first - 1
            ));
        }
        Ok(())
    }

    /// The counts: ports held and per address, against the members.
    fn check_counts(&self) -> Result<(), String> {
        self.check_port_max()?;
        let held = self.held.len();
        if held != self.count() {
            return Err(format!("{held} ports held, {} members", self.count()));
        }
        let counts = &self.per_address.counts;
        let counted: usize = counts.values().map(|&n| n as usize).sum();
        if counted != self.count() || counts.values().any(|&n| n == 0) {
            return Err(format!(
                "per-address counts sum to {counted}, {} members",
                self.count()
            ));
        }
        Ok(())
    }

    /// One member: its port held and mapped back, its address counted, its entry.
    pub(super) fn check_seat(&self, offset: Index) -> Result<(), String> {
        let Some(seat) = self.seat(offset) else {
            return Ok(());
        };
        let port = seat.port;
        if port < self.first_port || !self.held.contains(port) {
            return Err(format!("offset {offset}'s port {port} is not held"));
        }
        if self.by_port[port as usize] as usize != offset + 1 {
            return Err(format!("port {port} does not map back to offset {offset}"));
        }
        if seat.serial == 0 || seat.serial > self.joined {
            return Err(format!("offset {offset}'s serial {}", seat.serial));
        }
        if self.per_address.count(seat.ip) == 0 {
            return Err(format!(
                "offset {offset}'s address {} is not counted",
                seat.ip
            ));
        }
        match (&seat.name, &seat.folded) {
            (None, None) => {}
            (Some(name), Some(folded)) => {
                if name::admit(name.as_bytes()) != Ok(Some(&**name)) {
                    return Err(format!("offset {offset}'s name {name:?} fails the check"));
                }
                if **folded != *name::fold(name) {
                    return Err(format!(
                        "offset {offset}'s name {name:?} is held as {folded:?}"
                    ));
                }
                if self.names.get(folded) != Some(&offset) {
                    return Err(format!(
                        "offset {offset}'s name {name:?} is not held by it: {:?}",
                        self.names.get(folded)
                    ));
                }
            }
            (name, folded) => {
                return Err(format!(
                    "offset {offset}'s name {name:?} but folded {folded:?}"
                ))
            }
        }
        if let Some(k) = &seat.key {
            if self.keys.get(k) != Some(&offset) {
                return Err(format!(
                    "offset {offset}'s key {k} is not held by it: {:?}",
                    self.keys.get(k)
                ));
            }
        }
        let want = entry(offset, seat);
        match self.doc.entry(offset) {
            Some(e) if e == &want[..] => Ok(()),
            e => Err(format!(
                "offset {offset}'s entry is {:?}, not {:?}",
                e.map(String::from_utf8_lossy),
                String::from_utf8_lossy(&want)
            )),
        }
    }
}

/// The entry the document should have for `seat`, rendered the slow way.
fn entry(offset: Index, seat: &Seat) -> Vec<u8> {
    let mut want = format!(
        "<peer><ip>{}</ip><port>{}</port><offset>{offset}</offset><me>FALSE</me>",
        seat.ip, seat.port
    )
    .into_bytes();
    if let Some(relay) = seat.relay {
        crate::wire::relay::render(&mut want, relay);
    }
    if let Some(name) = &seat.name {
        crate::wire::name::render(&mut want, name);
    }
    if let Some(key) = &seat.key {
        want.extend_from_slice(format!("<key>{key}</key>").as_bytes());
    }
    want.extend_from_slice(b"</peer>");
    want
}
