//! `--max-servants` and `--max-per-address` count the whole cluster: two
//! newcomers on two managers at once, with room for one, get one seat, and the
//! other the refusal line a single manager would send.

use std::io::{Read, Write};
use std::net::SocketAddr;

use super::{temp_dir, url, Redis};
use crate::common::{client, connmgr, Daemon};

fn managers(dir: &std::path::Path, limit: &[&str]) -> [(Daemon, SocketAddr); 2] {
    let url = url(dir);
    let mut args = vec!["--cluster", &url, "--cluster-prefix", "limits"];
    args.extend_from_slice(limit);
    [0, 1].map(|_| {
        let (d, addr) = connmgr(&args);
        d.wait_for("in step with redis");
        (d, addr)
    })
}

/// What each of two servants, one per manager at once, is answered first.
fn both_ask(a: SocketAddr, b: SocketAddr) -> Vec<String> {
    let mut asked = [client(a), client(b)];
    for s in &mut asked {
        s.write_all(b"needs peer list").unwrap();
    }
    asked
        .iter_mut()
        .map(|s| {
            let mut got = [0u8; 512];
            let n = s.read(&mut got).unwrap_or(0);
            String::from_utf8_lossy(&got[..n]).into_owned()
        })
        .collect()
}

fn one_refused(limit: &[&str], line: &str) {
    let dir = temp_dir(&format!("limits{}", limit[0].len()));
    let _redis = Redis::start(&dir);
    let [(_a_daemon, a), (_b_daemon, b)] = managers(&dir, limit);
    let answers = both_ask(a, b);
    let refused = answers.iter().filter(|t| t.as_str() == line).count();
    let listed = answers.iter().filter(|t| t.contains("<peer>")).count();
    assert_eq!((refused, listed), (1, 1), "{answers:?}");
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn max_servants_is_counted_over_every_manager() {
    one_refused(
        &["--max-servants", "1"],
        "max number of servants reached\r\n",
    );
}

#[test]
#[cfg_attr(p2pchat_no_redis, ignore = "needs redis-server")]
fn max_per_address_is_counted_over_every_manager() {
    one_refused(
        &["--max-per-address", "1"],
        "max servants per address reached\r\n",
    );
}
