//! What the wire documents and the reactor both speak of: addresses as the
//! manager records them, and the shared buffers documents are sent from. Kept
//! apart from both, so that neither depends on the other for them.

use std::net::IpAddr;
use std::rc::Rc;

/// A buffer many sends can queue ranges of. Mutate it with `Rc::make_mut`: it
/// copies only while some socket still has an unsent range of the old contents.
pub type Shared = Rc<Vec<u8>>;

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from a dual-stack listener) shown as IPv4.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_read_as_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(canonical_ip(mapped), "10.1.2.3".parse::<IpAddr>().unwrap());
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(canonical_ip(v6), v6);
    }
}
