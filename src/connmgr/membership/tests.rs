use std::collections::BTreeMap;

use super::*;

fn ip(k: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, k])
}

fn members(first_port: u16) -> Membership {
    Membership::new(first_port)
}

/// `n` servants from 127.0.0.1, at offsets 1..=n.
fn joined(first_port: u16, n: usize) -> Membership {
    let mut m = members(first_port);
    for offset in 1..=n {
        let port = m.next_port().unwrap();
        m.join(offset, ip(1), port);
    }
    m
}

#[test]
fn ports_count_up_from_the_first() {
    let mut m = members(2224);
    assert_eq!(m.next_port(), Some(2224));
    assert_eq!(m.next_port(), Some(2225));
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn ports_wrap_past_65535_and_skip_held_ones() {
    let mut m = joined(65533, 3); // 65533, 65534, 65535 at offsets 1..=3
    m.leave(2);
    assert_eq!(m.next_port(), Some(65534)); // wrapped, skipping 65533
    m.join(2, ip(1), 65534);
    assert_eq!(m.next_port(), None);
    m.leave(3);
    assert_eq!(m.next_port(), Some(65535));
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn a_join_is_listed_held_and_counted_and_a_leave_undoes_it() {
    let mut m = joined(2224, 2);
    assert_eq!((m.count(), m.at_address(ip(1))), (2, 2));
    assert_eq!(m.at("127.0.0.1:2225".parse().unwrap()), Some(2));
    assert_eq!(
        m.at("127.0.0.2:2225".parse().unwrap()),
        None,
        "wrong address"
    );
    assert_eq!(
        m.doc().entry(2),
        Some(
            &b"<peer><ip>127.0.0.1</ip><port>2225</port><offset>2</offset><me>FALSE</me></peer>"[..]
        )
    );
    let gone = m.leave(2).unwrap();
    assert_eq!(
        (gone.addr(), gone.serial),
        ("127.0.0.1:2225".parse().unwrap(), 2)
    );
    assert!(m.leave(2).is_none(), "nobody is there now");
    assert_eq!((m.count(), m.doc().entry(2)), (1, None));
    assert_eq!(m.at("127.0.0.1:2225".parse().unwrap()), None);
    m.leave(1);
    assert!(
        m.per_address.counts.is_empty(),
        "an address with nobody left is forgotten"
    );
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn names_and_relays_re_render_the_entry_once() {
    let mut m = joined(2224, 1);
    assert_eq!(m.rename(1, Some("ann&<bob>")), Ok(true));
    assert_eq!(
        m.rename(1, Some("ann&<bob>")),
        Ok(false),
        "the same name changes nothing"
    );
    assert!(m.set_relay(1, Some(Relay::Nobody)));
    assert!(!m.set_relay(1, Some(Relay::Nobody)));
    let entry = String::from_utf8(m.doc().entry(1).unwrap().to_vec()).unwrap();
    assert!(
        entry.ends_with("<relay>none</relay><name>ann&amp;&lt;bob&gt;</name></peer>"),
        "{entry}"
    );
    assert_eq!(
        m.rename(7, Some("nobody")),
        Ok(false),
        "no member at offset 7"
    );
    assert_eq!(m.rename(1, None), Ok(true));
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn a_name_is_held_by_one_member_until_it_lets_go() {
    let mut m = joined(2224, 3);
    assert_eq!(m.rename(1, Some("alice")), Ok(true));
    assert_eq!(m.rename(2, Some("ALICE")), Err(Refused::InUse));
    assert_eq!(m.rename(2, Some("Alice")), Err(Refused::InUse));
    assert_eq!(
        m.rename(1, Some("Alice")),
        Ok(true),
        "its own name, recased"
    );
    assert_eq!(m.rename(1, Some("ann")), Ok(true));
    assert_eq!(m.rename(2, Some("alice")), Ok(true), "freed by a rename");
    m.leave(2);
    assert_eq!(m.rename(3, Some("Alice")), Ok(true), "freed by a leave");
    assert_eq!(m.rename(3, Some("ÅSA")), Ok(true));
    assert_eq!(
        m.rename(1, Some("åsa")),
        Err(Refused::InUse),
        "Unicode folding"
    );
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn ipv6_servants_are_counted_by_prefix_and_ipv4_mapped_as_ipv4() {
    let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut m = members(2224);
    for (offset, addr) in [
        "2001:db8:0:1::10",
        "2001:db8:0:1::20",
        "2001:db8:0:2::10",
        "::ffff:127.0.0.1",
    ]
    .into_iter()
    .enumerate()
    {
        let port = m.next_port().unwrap();
        m.join(offset + 1, v6(addr), port);
    }
    assert_eq!(m.at_address(v6("2001:db8:0:1::99")), 2, "one /64");
    assert_eq!(m.at_address(v6("2001:db8:0:2::1")), 1);
    assert_eq!(m.at_address(ip(1)), 1, "IPv4-mapped counts as IPv4");
    m.set_ipv6_prefix(48);
    assert_eq!(m.at_address(v6("2001:db8::1")), 3, "one /48");
    m.set_ipv6_prefix(128);
    assert_eq!(m.at_address(v6("2001:db8:0:1::10")), 1);
    assert_eq!(m.at_address(v6("2001:db8:0:1::11")), 0);
    assert_eq!(m.check(), Ok(()));
    m.set_ipv6_prefix(1);
    m.leave(1);
    assert_eq!(
        m.at_address(v6("::1")),
        2,
        "half the address space, minus one"
    );
    assert_eq!(m.check(), Ok(()));
}

#[test]
fn a_member_moved_off_its_port_releases_it() {
    let mut m = joined(2224, 2);
    assert_eq!(m.move_port(1), Some((2224, 2226)));
    assert_eq!(m.at("127.0.0.1:2226".parse().unwrap()), Some(1));
    assert_eq!(m.at("127.0.0.1:2224".parse().unwrap()), None);
    assert_eq!(m.move_port(9), None, "no member there");
    assert_eq!(m.check(), Ok(()));
    let mut full = joined(65535, 1);
    assert_eq!(full.move_port(1), None, "no other port is free");
    assert_eq!(full.check(), Ok(()));
}

#[test]
fn the_check_finds_each_kind_of_damage() {
    let broken = |damage: fn(&mut Membership)| {
        let mut m = joined(2224, 3);
        damage(&mut m);
        m.check().unwrap_err()
    };
    assert!(broken(|m| m.by_port[2225] = 2).contains("map back"));
    assert!(broken(|m| m.by_port[9] = 1).contains("port 9 is not held"));
    assert!(broken(|m| m.held.insert(9)).contains("ports held"));
    assert!(broken(|m| m.per_address.joined(ip(2))).contains("per-address"));
    assert!(broken(|m| {
        m.names.insert("eve".into(), 1);
    })
    .contains("names held"));
    assert!(broken(|m| m.port_max = 9).contains("iPortMax"));
    assert!(broken(|m| {
        m.keys.insert(PublicKey::from_bytes([1; 32]), 1);
    })
    .contains("keys held"));
    assert!(broken(|m| {
        m.doc.set_key(2, Some(&PublicKey::from_bytes([1; 32])));
    })
    .contains("entry"));
    assert!(broken(|m| {
        m.doc.set_name(2, Some("eve"));
    })
    .contains("entry"));
    assert!(broken(|m| m.doc.add(ip(1), 9, 5)).contains("4 members"));
    assert!(broken(|m| m.seats[3].as_mut().unwrap().serial = 1).contains("serial"));
}

/// splitmix64: a seeded stream of numbers, enough for picking operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a member should be, as the model keeps it.
#[derive(Clone, Debug, PartialEq)]
struct Modelled {
    ip: IpAddr,
    port: u16,
    name: Option<String>,
    key: Option<u8>,
}

/// The membership as a map and a counter, to hold the real one against.
struct Model {
    first: u16,
    port_max: u32,
    members: BTreeMap<Index, Modelled>,
}

impl Model {
    /// The first free port after `port_max`, going round once.
    fn next_port(&mut self) -> Option<u16> {
        let held = |p: u32| self.members.values().any(|m| u32::from(m.port) == p);
        // Ports after port_max first, then the wrapped ones.
        let mut after = (self.port_max + 1..=65535).chain(u32::from(self.first)..=self.port_max);
        let free = after.find(|&p| !held(p))?;
        self.port_max = free;
        Some(free as u16)
    }
}

const OFFSETS: usize = 24;
/// Names that collide once folded, so random renames keep trying to take one
/// that another member holds.
const NAMES: [Option<&str>; 7] = [
    Some("ann"),
    Some("Ann"),
    Some("bob"),
    Some("BOB"),
    Some("a&b<c>"),
    Some("ÅSA"),
    None,
];

/// One random run: joins, leaves, renames, relays, port moves, prefix changes
/// and lone port advances against the model, checking both after every step.
fn run(seed: u64, first: u16, steps: usize) {
    let mut rng = Rng(seed);
    let mut m = members(first);
    let mut model = Model {
        first,
        port_max: u32::from(first) - 1,
        members: BTreeMap::new(),
    };
    for step in 0..steps {
        let offset = 1 + rng.below(OFFSETS);
        let what = rng.below(100);
        match what {
            0..=39 if !model.members.contains_key(&offset) => {
                let port = m.next_port();
                assert_eq!(port, model.next_port(), "seed {seed} step {step}");
                if let Some(port) = port {
                    let addr = ip(1 + rng.below(3) as u8);
                    m.join(offset, addr, port);
                    let new = Modelled {
                        ip: addr,
                        port,
                        name: None,
                        key: None,
                    };
                    model.members.insert(offset, new);
                }
            }
            40..=44 => {
                // An accept that failed: the port is passed over, not held.
                assert_eq!(m.next_port(), model.next_port(), "seed {seed} step {step}");
            }
            45..=74 => {
                let gone = m.leave(offset).map(|s| (s.ip, s.port));
                let want = model.members.remove(&offset).map(|s| (s.ip, s.port));
                assert_eq!(gone, want, "seed {seed} step {step}");
            }
            75..=86 => {
                let name = NAMES[rng.below(NAMES.len())];
                let folded = name.map(str::to_lowercase);
                let taken = (model.members.iter()).any(|(&o, s)| {
                    o != offset
                        && folded.is_some()
                        && s.name.as_deref().map(str::to_lowercase) == folded
                });
                let want = match model.members.get_mut(&offset) {
                    Some(_) if taken => Err(Refused::InUse),
                    Some(s) if s.name.as_deref() != name => {
                        s.name = name.map(String::from);
                        Ok(true)
                    }
                    _ => Ok(false),
                };
                assert_eq!(m.rename(offset, name), want, "seed {seed} step {step}");
            }
            87..=89 => {
                // `cannot listen`: a move to the next free port, the old one released.
                let moved = m.move_port(offset);
                let want = match model.members.get(&offset) {
                    Some(s) => {
                        let old = s.port;
                        model.next_port().map(|new| (old, new))
                    }
                    None => None,
                };
                if let Some((_, new)) = want {
                    model.members.get_mut(&offset).unwrap().port = new;
                }
                assert_eq!(moved, want, "seed {seed} step {step}");
                if step % 97 == 0 {
                    m.set_ipv6_prefix([1, 64, 128][rng.below(3)]);
                }
            }
            90..=94 => {
                // A private network's keys: three, so they collide.
                let key = [None, Some(1u8), Some(2), Some(3)][rng.below(4)];
                let taken = (model.members.iter())
                    .any(|(&o, s)| o != offset && key.is_some() && s.key == key);
                let want = match model.members.get_mut(&offset) {
                    Some(_) if taken => Err(Refused::InUse),
                    Some(s) if s.key != key => {
                        s.key = key;
                        Ok(true)
                    }
                    _ => Ok(false),
                };
                let k = key.map(|b| PublicKey::from_bytes([b; 32]));
                assert_eq!(m.set_key(offset, k), want, "seed {seed} step {step}");
                if let Some(k) = k {
                    let holder = model
                        .members
                        .iter()
                        .find(|(_, s)| s.key == key)
                        .map(|(&o, _)| o);
                    assert_eq!(m.by_key(&k), holder, "seed {seed} step {step}");
                }
            }
            95..=99 => {
                let via = SocketAddr::new(ip(9), 2224 + rng.below(4) as u16);
                let relay = [None, Some(Relay::Nobody), Some(Relay::Via(via))][rng.below(3)];
                m.set_relay(offset, relay);
            }
            _ => {}
        }
        if let Err(e) = m.check() {
            panic!("seed {seed} step {step}: {e}");
        }
        let mut held = std::collections::HashSet::new();
        for s in model.members.values() {
            if let Some(n) = &s.name {
                assert!(
                    held.insert(n.to_lowercase()),
                    "seed {seed} step {step}: {n} twice"
                );
            }
        }
        assert_eq!(m.port_max, model.port_max, "seed {seed} step {step}");
        assert_eq!(m.count(), model.members.len());
        for k in 1..=3 {
            let n = model.members.values().filter(|s| s.ip == ip(k)).count();
            assert_eq!(m.at_address(ip(k)), n, "seed {seed} step {step}");
        }
        for o in 0..=OFFSETS + 1 {
            let got = m.seat(o).map(|s| Modelled {
                ip: s.ip,
                port: s.port,
                name: s.name.as_deref().map(String::from),
                key: s.key.map(|k| k.as_bytes()[0]),
            });
            assert_eq!(
                got.as_ref(),
                model.members.get(&o),
                "seed {seed} step {step}"
            );
            if let Some(s) = got {
                assert_eq!(m.at(SocketAddr::new(s.ip, s.port)), Some(o));
            }
        }
    }
}

#[test]
fn random_joins_leaves_renames_and_wraps_keep_every_invariant() {
    // A single port, a range smaller than the offsets (ports run out and wrap
    // past held ones), one just larger, and one that never wraps.
    for (k, first) in [65535, 65520, 65511, 2224].into_iter().enumerate() {
        for seed in 0..4 {
            run(seed * 7919 + k as u64 + 1, first, 3000);
        }
    }
}
