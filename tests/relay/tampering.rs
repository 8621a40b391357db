//! A hostile relay between real private servants and a real private manager
//! ([`crate::hostile_relay`]): nora, behind the router, is relayed through it, and
//! pat's lines for her go through it sealed. Each attack fails: an altered or
//! forged line is never shown, a replayed one is shown once, nora logs each
//! frame she drops, and a relay that alters frames is replaced within a bound.

use std::time::{Duration, Instant};

use crate::common::DEADLINE;
use crate::hostile_relay::{garbage_in_own_name, Attack, HostileRelay};
use crate::world::{drain, listen_addr, World, SETTLE, VERDICT};
use p2pchat_harness::netns::PUBLIC_IPS;

/// From pat's first line through a relay that alters frames to nora pulling from
/// pat instead: the report, a probe at once, its 2 s timeout, a new list and a pull.
const TAMPER_BOUND: Duration = Duration::from_secs(8);
/// A relay that forwards nothing is caught by periodic probes only: the first
/// after 1 s, one a second, the fourth lost 2 s after it went.
const DROP_BOUND: Duration = Duration::from_secs(15);

/// hal (the hostile relay), nora at home relayed through it, then pat on the
/// public segment: returns the world, hal, and nora's and pat's indices.
fn through_hal(test: &str, flags: &[&str], attack: Attack) -> (World, HostileRelay, usize, usize) {
    let mut w = World::private(test, flags, &["hal", "nora", "pat"]);
    let hal = HostileRelay::start(&w, PUBLIC_IPS[0], "hal", attack);
    let n = w.home(0, "nora");
    w.wait(n, "peers: 2 (", DEADLINE);
    // The only candidate: nora is relayed through hal.
    assert_eq!(w.type_until_relayed(n), hal.addr);
    let p = w.public(1, "pat");
    for k in [n, p] {
        w.wait(k, "peers: 3 (", DEADLINE);
        drain(&w.servants[k]);
    }
    (w, hal, n, p)
}

/// Nora is relayed through a relay that does `attack` to every data frame (the
/// manager's probes included); pat types a secret. It is never shown, nora logs
/// the frame that did not open and reports hal, the manager probes hal at once
/// and drops it when that probe is lost, and nora pulls from pat within
/// [`TAMPER_BOUND`] of the secret; then lines flow.
fn altered_frames_get_the_relay_replaced(test: &str, attack: Attack) {
    // Periodic probes every 20 s (the first 20 s after hal was chosen, four
    // needed): only the report's probe can catch hal within the bound.
    let flags = [
        "--relay-probe-interval",
        "20s",
        "--relay-probe-timeout",
        "2s",
    ];
    let (mut w, hal, n, p) = through_hal(test, &flags, attack);
    let pat = listen_addr(&w, p);
    let typed = Instant::now();
    w.servants[p].type_line("a secret for nora").unwrap();
    let end = typed + TAMPER_BOUND;
    let now = loop {
        let left = end.saturating_duration_since(Instant::now());
        let now = w.relayed(n, left);
        if now != hal.addr {
            break now;
        }
    };
    assert_eq!(now, pat, "{}", w.manager.log_text());
    eprintln!(
        "{attack:?}: replaced {:.1} s after the first altered line",
        typed.elapsed().as_secs_f64()
    );
    w.wait(
        n,
        "altered or forged on the way; reporting the relay",
        DEADLINE,
    );
    let probed = w.wait_manager("that did not open: probing it now", DEADLINE);
    assert!(probed.contains(&hal.addr), "{probed}");
    let dropped = w.wait_manager("lost the probe that followed", DEADLINE);
    assert!(dropped.contains(&hal.addr), "{dropped}");
    w.wait(p, "relaying for", DEADLINE);
    let shown = w.servants[n].stdout_lines_within(SETTLE);
    assert!(
        !shown
            .iter()
            .any(|l| l.contains("secret") || l.contains("forged")),
        "nora showed an altered line: {shown:?}"
    );
    w.everyone_hears_everyone_once(&[p, n], "past hal");
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relay_that_flips_a_byte_is_reported_probed_at_once_and_replaced_within_8_s() {
    altered_frames_get_the_relay_replaced("flip", Attack::Flip);
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relay_forging_frames_in_another_members_name_is_reported_and_replaced_within_8_s() {
    altered_frames_get_the_relay_replaced("forge", Attack::Forge);
}

/// Nora is relayed through a relay that plays frames (or session starts) again,
/// and forwards the originals: each of pat's lines is shown once, nora logs the
/// replays she drops, and reports nothing (a replay is no tampering); the probes
/// come through, so the relay stays.
fn replays_are_shown_once(test: &str, attack: Attack, why: &str) {
    let flags = [
        "--relay-probe-interval",
        "300ms",
        "--relay-probe-timeout",
        "2s",
    ];
    let (mut w, hal, n, p) = through_hal(test, &flags, attack);
    let said: Vec<String> = (0..3).map(|k| format!("pat: once {k}")).collect();
    for k in 0..3 {
        w.servants[p].type_line(&format!("once {k}")).unwrap();
    }
    let mut shown = Vec::new();
    let end = Instant::now() + VERDICT;
    while said.iter().any(|l| !shown.contains(l)) {
        let left = end.saturating_duration_since(Instant::now());
        match w.servants[n].stdout_line(left) {
            Ok(line) => shown.push(line),
            Err(e) => panic!("nora showed {shown:?}: {e}\n{}", w.servants[n].log_text()),
        }
    }
    shown.extend(w.servants[n].stdout_lines_within(SETTLE));
    for line in &said {
        let times = shown.iter().filter(|l| *l == line).count();
        assert_eq!(times, 1, "{line:?} shown {times} times: {shown:?}");
    }
    let dropped = w.wait(n, why, DEADLINE);
    assert!(dropped.contains(&hal.addr), "{dropped}");
    w.wait_manager("forwarded a probe to offset", VERDICT);
    let log = w.servants[n].log_text();
    assert!(!log.contains("reporting the relay"), "{log}");
    assert_eq!(w.servants[n].count("pulling from the relay at"), 1, "{log}");
    assert_eq!(w.manager.count("dropped, and not chosen"), 0);
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relay_replaying_frames_gets_each_line_shown_once() {
    replays_are_shown_once(
        "replay",
        Attack::Replay,
        "; the last: its nonce was taken before (a replay)",
    );
}

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_relay_replaying_a_session_start_cannot_reset_the_window() {
    replays_are_shown_once(
        "restart",
        Attack::ReplayStart,
        "; the last: a session start no newer than the last taken (a replay)",
    );
}

/// A relay on a private network that completes every handshake and forwards
/// nothing is replaced by the periodic probes within [`DROP_BOUND`].
#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_private_relay_that_forwards_nothing_is_replaced_within_15_s() {
    let flags = [
        "--relay-probe-interval",
        "1s",
        "--relay-probe-timeout",
        "2s",
    ];
    let (mut w, hal, n, p) = through_hal("drop", &flags, Attack::Drop);
    let chosen = Instant::now();
    let end = chosen + DROP_BOUND;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if w.relayed(n, left) != hal.addr {
            break;
        }
    }
    let dropped = w.wait_manager("lost 4 probes in a row", DEADLINE);
    assert!(dropped.contains(&hal.addr), "{dropped}");
    w.wait(p, "relaying for", DEADLINE);
    drain(&w.servants[n]);
    w.everyone_hears_everyone_once(&[p, n], "past the hole");
}

/// A member sends nora's honest relay (pat) a frame for her that is garbage, in
/// its own name: pat forwards it, nora cannot open it and reports pat, and the
/// manager probes pat at once; the probe, sealed by the manager, comes through,
/// so pat stays nora's relay and lines flow.
#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn garbage_sent_in_a_members_own_name_cannot_get_an_honest_relay_replaced() {
    let flags = [
        "--relay-probe-interval",
        "20s",
        "--relay-probe-timeout",
        "2s",
    ];
    let mut w = World::private("garbage", &flags, &["pat", "nora", "mal"]);
    let p = w.public(1, "pat");
    let n = w.home(0, "nora");
    w.wait(n, "peers: 2 (", DEADLINE);
    let relay = w.type_until_relayed(n);
    w.relaying(&relay);
    let _mal = garbage_in_own_name(&w, PUBLIC_IPS[0], "mal", (&relay, "pat"), "nora");
    w.wait(n, "reporting the relay", DEADLINE);
    let probed = w.wait_manager("that did not open: probing it now", DEADLINE);
    assert!(probed.contains(&relay), "{probed}");
    w.wait_manager("forwarded a probe to offset", DEADLINE);
    for k in [p, n] {
        drain(&w.servants[k]);
    }
    w.everyone_hears_everyone_once(&[p, n], "after the garbage");
    assert_eq!(w.manager.count("dropped, and not chosen"), 0);
    assert_eq!(w.servants[n].count("pulling from the relay at"), 1);
}
