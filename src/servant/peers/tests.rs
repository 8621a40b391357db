//! [`Peers`] against small fixtures, and against a plain model driven by a seeded
//! pseudo-random sequence of documents, deltas and `<unchanged/>` answers.

use super::*;
use crate::wire::delta::{Delta, Op, Version};
use crate::wire::relay::Relay;

fn peer(ip: &str, port: u16, offset: usize, me: bool) -> Peer {
    Peer {
        ip: ip.parse().unwrap(),
        port,
        offset,
        me,
        relay: None,
        key: None,
    }
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn whole(version: Option<u64>, peers: Vec<Peer>) -> Answer {
    let version = version.map(Version::from);
    Answer::Whole { version, peers }
}

fn v(n: u64) -> Option<Version> {
    Some(n.into())
}

/// A cluster's version, as the random answers carry them: opaque to the servant.
fn cluster(n: u64) -> Version {
    Version::parse(&format!("00000000c0ffee00.{n}")).unwrap()
}

/// `alice` at .2:2224 (ours), `bob` at .3:2225, version 5.
fn two() -> Peers {
    let mut p = Peers::default();
    let said = vec![
        (addr("127.0.0.2", 2224), Some("alice".to_string())),
        (addr("127.0.0.3", 2225), Some("bob".to_string())),
    ];
    let list = vec![
        peer("127.0.0.2", 2224, 1, true),
        peer("127.0.0.3", 2225, 2, false),
    ];
    p.apply(whole(Some(5), list), said, 10).unwrap();
    p
}

#[test]
fn duplicates_collapse_and_me_is_kept() {
    let mut p = Peers::default();
    let list = vec![
        peer("127.0.0.2", 9, 1, false),
        peer("127.0.0.3", 9, 2, false),
        peer("127.0.0.2", 9, 3, true),
        peer("127.0.0.2", 9, 4, false),
    ];
    let applied = p.apply(whole(None, list), Vec::new(), 10).unwrap();
    assert_eq!((applied.listed, p.len()), (4, 2));
    assert_eq!(
        p.me().map(|m| (m.addr(), m.offset)),
        Some((addr("127.0.0.2", 9), 1))
    );
    assert!(!p.list()[1].me);
}

#[test]
fn a_second_me_is_not_ours() {
    let mut p = Peers::default();
    let list = vec![peer("127.0.0.2", 9, 1, true), peer("127.0.0.3", 9, 2, true)];
    p.apply(whole(None, list), Vec::new(), 10).unwrap();
    assert_eq!(p.me().map(Peer::addr), Some(addr("127.0.0.2", 9)));
    assert_eq!(p.iter().filter(|e| e.me).count(), 1);
}

#[test]
fn a_list_past_the_cap_is_refused_and_the_last_one_stays() {
    let mut p = two();
    let list: Vec<Peer> = (1..=5)
        .map(|k| peer("10.0.0.1", k, k.into(), false))
        .collect();
    let refused = p.apply(whole(Some(9), list.clone()), Vec::new(), 4);
    assert!(matches!(refused, Err(Refused::TooLong(why)) if why.contains("5 entries")));
    assert_eq!((p.len(), p.version()), (2, v(5)));
    assert!(p.apply(whole(Some(9), list), Vec::new(), 5).is_ok());
}

#[test]
fn a_delta_keeps_the_names_it_does_not_mention() {
    let mut p = two();
    let carol = peer("127.0.0.4", 2226, 3, false);
    let d = Delta {
        from: 5.into(),
        to: 6.into(),
        ops: vec![Op::Joined(carol.clone())],
    };
    let said = vec![(carol.addr(), Some("carol".to_string()))];
    let applied = p.apply(Answer::Delta(d), said, 10).unwrap();
    assert_eq!(applied.old.len(), 2);
    assert_eq!(p.version(), v(6));
    assert_eq!(p.who(addr("127.0.0.3", 2225)), "bob (127.0.0.3:2225)");
    assert_eq!(p.name(carol.addr()), Some("carol"));
    // A peer that leaves takes its name along.
    let d = Delta {
        from: 6.into(),
        to: 7.into(),
        ops: vec![Op::Left(2)],
    };
    p.apply(Answer::Delta(d), Vec::new(), 10).unwrap();
    assert_eq!(p.name(addr("127.0.0.3", 2225)), None);
    assert_eq!(p.who(addr("127.0.0.3", 2225)), "127.0.0.3:2225");
}

#[test]
fn a_gap_forgets_the_version_and_keeps_the_list() {
    let mut p = two();
    let d = Delta {
        from: 4.into(),
        to: 6.into(),
        ops: vec![Op::Left(2)],
    };
    let refused = p.apply(Answer::Delta(d), Vec::new(), 10);
    assert!(matches!(refused, Err(Refused::Gap(_))));
    assert_eq!((p.len(), p.version()), (2, None));
    assert!(matches!(
        p.apply(Answer::Unchanged(5.into()), Vec::new(), 10),
        Err(Refused::Gap(_))
    ));
}

#[test]
fn lookups_by_address() {
    let mut p = two();
    assert!(p.contains(addr("127.0.0.3", 2225)));
    assert!(!p.contains(addr("127.0.0.3", 2226)));
    p.forget_version();
    assert_eq!((p.version(), p.len()), (None, 2));
}

/// A deterministic pseudo-random sequence (xorshift64*): the same seed, the same
/// run, so a failure can be replayed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

const NAMES: [Option<&str>; 4] = [Some("alice"), Some("bob"), Some("carol"), None];

/// What the servant should hold, kept with plain vectors and linear scans.
#[derive(Default)]
struct Model {
    list: Vec<Peer>,
    names: Vec<(SocketAddr, String)>,
    version: Option<Version>,
}

impl Model {
    fn apply(
        &mut self,
        answer: &Answer,
        said: &[(SocketAddr, Option<String>)],
        max: usize,
    ) -> bool {
        let at = |list: &[Peer], o: usize| list.iter().position(|p| p.offset == o);
        let (mut raw, version, whole) = match answer {
            Answer::Whole { version, peers } => (peers.clone(), *version, true),
            Answer::Unchanged(v) if self.version == Some(*v) => {
                (self.list.clone(), Some(*v), false)
            }
            Answer::Delta(d) if self.version == Some(d.from) => {
                let mut raw = self.list.clone();
                for op in &d.ops {
                    match op {
                        Op::Left(o) => match at(&raw, *o) {
                            Some(k) => drop(raw.remove(k)),
                            None => return self.gap(),
                        },
                        Op::Changed(p) => match at(&raw, p.offset) {
                            Some(k) => {
                                raw[k] = Peer {
                                    me: raw[k].me,
                                    ..p.clone()
                                }
                            }
                            None => return self.gap(),
                        },
                        Op::Joined(p) if at(&raw, p.offset).is_some() => return self.gap(),
                        Op::Joined(p) => raw.push(p.clone()),
                    }
                }
                (raw, Some(d.to), false)
            }
            _ => return self.gap(),
        };
        if raw.len() > max {
            return false;
        }
        let mut kept: Vec<Peer> = Vec::new();
        for p in raw.drain(..) {
            match kept.iter().position(|k| k.addr() == p.addr()) {
                Some(k) => kept[k].me |= p.me,
                None => kept.push(p),
            }
        }
        let mut seen_me = false;
        for p in &mut kept {
            let first = p.me && !seen_me;
            seen_me |= p.me;
            p.me = first;
        }
        let mut names = Vec::new();
        for p in &kept {
            let last_said = said.iter().rev().find(|(a, _)| *a == p.addr());
            let name = match last_said {
                Some((_, n)) => n.clone(),
                None if whole => None,
                None => self
                    .names
                    .iter()
                    .find(|(a, _)| *a == p.addr())
                    .map(|(_, n)| n.clone()),
            };
            if let Some(n) = name {
                names.push((p.addr(), n));
            }
        }
        (self.list, self.names, self.version) = (kept, names, version);
        true
    }

    fn gap(&mut self) -> bool {
        self.version = None;
        false
    }
}

fn random_peer(rng: &mut Rng, offset: usize) -> Peer {
    let relay = match rng.below(6) {
        0 => Some(Relay::Nobody),
        1 => Some(Relay::Via(addr("127.0.0.9", 2224 + rng.below(3) as u16))),
        _ => None,
    };
    Peer {
        ip: format!("127.0.0.{}", 1 + rng.below(4)).parse().unwrap(),
        port: 2224 + rng.below(6) as u16,
        offset,
        me: rng.one_in(8),
        relay,
        key: None,
    }
}

fn random_name(rng: &mut Rng) -> Option<String> {
    rng.pick(&NAMES).map(String::from)
}

/// An answer for a servant whose list the model holds: mostly one that applies,
/// now and then a gap, an offset the list lacks, or a list past the cap.
fn random_answer(rng: &mut Rng, m: &Model) -> (Answer, Vec<(SocketAddr, Option<String>)>) {
    let mut said = Vec::new();
    let version = m
        .version
        .and_then(|v| v.count().map(|(_, n)| n))
        .unwrap_or(0);
    // Without a version the servant asks for the whole document, and mostly gets it.
    let kind = if m.version.is_none() && !rng.one_in(5) {
        0
    } else {
        rng.below(10)
    };
    let answer = match kind {
        0 => {
            let peers: Vec<Peer> = (0..rng.below(12))
                .map(|k| {
                    let offset = 1 + k as usize + rng.below(3) as usize;
                    random_peer(rng, offset)
                })
                .collect();
            for p in &peers {
                said.push((p.addr(), random_name(rng)));
            }
            let version = (!rng.one_in(10)).then(|| cluster(rng.below(1000)));
            Answer::Whole { version, peers }
        }
        1 | 2 => Answer::Unchanged(cluster(if rng.one_in(10) { version + 1 } else { version })),
        _ => {
            let from = if rng.one_in(20) { version + 1 } else { version };
            let offsets: Vec<usize> = m.list.iter().map(|p| p.offset).collect();
            let next_offset = offsets.iter().max().map_or(1, |o| o + 1);
            let mut ops = Vec::new();
            for j in 0..1 + rng.below(4) {
                let existing = if offsets.is_empty() || rng.one_in(15) {
                    next_offset + 7
                } else {
                    rng.pick(&offsets)
                };
                match rng.below(6) {
                    // A leave.
                    0 => ops.push(Op::Left(existing)),
                    // A rename: the same entry again, with the name it says now.
                    1 => {
                        if let Some(p) = m.list.iter().find(|p| p.offset == existing) {
                            said.push((p.addr(), random_name(rng)));
                            ops.push(Op::Changed(p.clone()));
                        }
                    }
                    // A new port, or a new relay.
                    2 | 3 => {
                        let mut p = random_peer(rng, existing);
                        if let Some(was) = m.list.iter().find(|p| p.offset == existing) {
                            p.ip = was.ip;
                        }
                        ops.push(Op::Changed(p));
                    }
                    // A join, now and then at an address already listed.
                    _ => {
                        let p = random_peer(rng, next_offset + j as usize);
                        said.push((p.addr(), random_name(rng)));
                        ops.push(Op::Joined(p));
                    }
                }
            }
            Answer::Delta(Delta {
                from: cluster(from),
                to: cluster(from + 1 + rng.below(3)),
                ops,
            })
        }
    };
    (answer, said)
}

#[test]
fn random_answers_keep_the_invariants_and_agree_with_the_model() {
    for seed in 1..=12u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (mut p, mut m) = (Peers::default(), Model::default());
        let (mut applied, mut refused) = (0, 0);
        for step in 0..3000 {
            if rng.one_in(200) {
                p.forget_version();
                m.version = None;
            }
            let (answer, said) = random_answer(&mut rng, &m);
            let max = if rng.one_in(10) { 3 } else { 64 };
            let want = m.apply(&answer, &said, max);
            let got = p.apply(answer, said, max);
            assert_eq!(got.is_ok(), want, "seed {seed}, step {step}: {got:?}");
            if got.is_ok() {
                applied += 1;
            } else {
                refused += 1;
            }
            p.check();
            assert_eq!(p.list(), m.list.as_slice(), "seed {seed}, step {step}");
            assert_eq!(p.version(), m.version, "seed {seed}, step {step}");
            let mut names: Vec<(SocketAddr, String)> =
                p.names.iter().map(|(a, n)| (*a, n.clone())).collect();
            names.sort();
            m.names.sort();
            assert_eq!(names, m.names, "seed {seed}, step {step}");
            assert_eq!(
                p.me(),
                m.list.iter().find(|e| e.me),
                "seed {seed}, step {step}"
            );
        }
        assert!(
            applied > 1000 && refused > 100,
            "seed {seed}: {applied} applied, {refused} refused"
        );
    }
}
