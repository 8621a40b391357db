//! Relays on a private network, in the namespaces: a NATed member is relayed as
//! on the open network, and what its relay carries for it is sealed end to end
//! (docs/PRIVATE.md#relays): lines arrive once each, under the names the members
//! file binds to the sending keys, `/msg` reaches the addressee alone, and the
//! manager's probes, sealed too, prove the relay.

use crate::common::DEADLINE;
use crate::world::{World, VERDICT};

#[test]
#[cfg_attr(
    p2pchat_no_netns,
    ignore = "needs root, ip and nft (network namespaces)"
)]
fn a_private_relay_carries_sealed_lines_to_a_natted_member_under_the_senders_names() {
    let flags = [
        "--relay-probe-interval",
        "300ms",
        "--relay-probe-timeout",
        "2s",
    ];
    let mut w = World::private("private", &flags, &["pat", "quinn", "nora"]);
    let (p1, p2, n) = w.pat_quinn_and_nora();
    w.wait_manager("joined: nora", DEADLINE);
    let relay = w.type_until_relayed(n);
    let r = w.relaying(&relay);
    let other = if r == p1 { p2 } else { p1 };
    // The manager's probes come through, sealed: the relay is proven.
    w.wait_manager("forwarded a probe to offset 3: proven", VERDICT);
    w.everyone_hears_everyone_once(&[p1, p2, n], "sealed round");
    // /msg through the relay: sealed for nora alone; and from nora, direct.
    w.servants[other].type_line("/msg nora psst nora").unwrap();
    let name = w.servants[other].name().to_string();
    shows(&w, n, &format!("{name} (private): psst nora"));
    w.servants[n]
        .type_line(&format!("/msg {name} back at you"))
        .unwrap();
    shows(&w, other, "nora (private): back at you");
    assert_eq!(
        w.servants[r].count("psst nora"),
        0,
        "the relay showed the /msg"
    );
    assert_eq!(
        w.servants[n].count("tampered"),
        0,
        "{}",
        w.servants[n].log_text()
    );
    assert_eq!(w.servants[n].count("not a sealed"), 0);
}

/// Reads what servant `k` shows until `want`, within the deadline.
fn shows(w: &World, k: usize, want: &str) {
    loop {
        let line = w.servants[k]
            .stdout_line(DEADLINE)
            .unwrap_or_else(|e| panic!("{want:?}: {e}"));
        if line == want {
            return;
        }
    }
}
