//! Tells the tests what this machine cannot do, so that a test needing it shows as
//! `ignored` with its reason instead of passing without running. CI sets
//! `P2PCHAT_REQUIRE_NETNS=1`: then nothing is ignored, and such a test fails
//! saying what is missing.

use std::env;
use std::path::{Path, PathBuf};

/// The cfgs, each set when what it names is missing.
const CFGS: [&str; 5] = [
    "p2pchat_no_root",   // tests run as root (empty roots, mount namespaces)
    "p2pchat_no_netns",  // root and `ip`/`nft` (network namespaces)
    "p2pchat_no_tmux",   // `tmux` and `bash` (a real terminal)
    "p2pchat_no_static", // `cargo build-static`'s connmgr and servant
    "p2pchat_no_redis",  // `redis-server` (the Redis client's tests start their own)
];

/// Where `cargo build-static` puts connmgr and servant, under the target dir.
const STATIC_DIR: &str = "x86_64-unknown-linux-gnu/static";

fn main() {
    for cfg in CFGS {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
    }
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=P2PCHAT_REQUIRE_NETNS");
    println!("cargo::rerun-if-env-changed=PATH");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is TARGET/PROFILE/build/p2pchat-HASH/out.
    let profile_dir = out
        .ancestors()
        .nth(3)
        .expect("OUT_DIR is in the target dir");
    // The static build's own run needs none of this; watching its own outputs
    // would rebuild it every time.
    if profile_dir.ends_with(STATIC_DIR) {
        return;
    }
    let statics = profile_dir
        .parent()
        .expect("the target dir")
        .join(STATIC_DIR);
    println!("cargo::rustc-env=P2PCHAT_STATIC_DIR={}", statics.display());
    if env::var_os("P2PCHAT_REQUIRE_NETNS").is_some_and(|v| v == "1") {
        return;
    }
    let root = euid_is_root();
    let on_path = |tool: &str| {
        env::var_os("PATH").is_some_and(|p| env::split_paths(&p).any(|d| executable(&d.join(tool))))
    };
    let mut missing = vec![!root, !(root && on_path("ip") && on_path("nft"))];
    missing.push(!(on_path("tmux") && on_path("bash")));
    let bins = ["connmgr", "servant"].map(|b| statics.join(b));
    let built = bins.iter().all(|b| b.is_file());
    if built {
        for b in &bins {
            println!("cargo::rerun-if-changed={}", b.display());
        }
    } else {
        // Cargo reruns a script watching a missing file on every build; an
        // (empty) directory is watched instead, which `cargo build-static` fills.
        let _ = std::fs::create_dir_all(&statics);
        println!("cargo::rerun-if-changed={}", statics.display());
    }
    missing.push(!built);
    missing.push(!on_path("redis-server"));
    for (cfg, missing) in CFGS.iter().zip(missing) {
        if missing {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}

/// Whether this build runs as root (the effective uid in /proc, std only).
fn euid_is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        .unwrap_or(false)
}

fn executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
