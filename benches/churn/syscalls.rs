//! Syscalls per join-leave cycle, counted by `strace -c -f -p PID` attached to
//! each server for a fixed number of cycles. Optional: skipped, with the reason
//! printed, where strace is missing or may not attach (ptrace restrictions).
//! strace slows the server many times over, so nothing here is timed.

use std::time::Duration;

use p2pchat_harness::Spawn;

use super::{churn, get, Plan, Server};

/// Prints, for each `(name, server)`, its syscalls per cycle and the main ones.
pub fn per_cycle(p: &Plan, servers: &[(&str, &Server)]) {
    let mut lines = Vec::new();
    for (name, server) in servers {
        match count(p, server) {
            Ok(line) => lines.push(format!("    {name}: {line}")),
            Err(why) => {
                println!("  syscalls per cycle: skipped ({why})");
                return;
            }
        }
    }
    println!(
        "  syscalls per cycle (strace -c -f, {} cycles at -c 8, client closing first):",
        p.traced
    );
    for line in lines {
        println!("{line}");
    }
}

/// Attaches strace to `server`, runs `p.traced` cycles, detaches, and reads the
/// summary: `"9.02 (accept4 1.00, close 1.00, ...)"`.
fn count(p: &Plan, server: &Server) -> Result<String, String> {
    let out = std::env::temp_dir().join(format!(
        "p2pchat-bench-strace-{}-{}.txt",
        std::process::id(),
        server.pid()
    ));
    let pid = server.pid().to_string();
    let mut strace = Spawn::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out)
        .args(["-p", &pid])
        .start()
        .map_err(|e| format!("{e}; `apt-get install strace` to count them"))?;
    // strace says when it has attached; until then a cycle would go uncounted.
    strace
        .wait_for("attached", Duration::from_secs(10))
        .map_err(|_| {
            let log = strace.log_text();
            format!(
                "strace could not attach: {}",
                log.lines().last().unwrap_or("it said nothing")
            )
        })?;
    let n = p.traced.to_string();
    let json = churn(server, &["join-leave", "-c", "8", "-n", &n]);
    strace
        .signal(libc::SIGINT)
        .map_err(|e| format!("cannot stop strace: {e}"))?;
    strace
        .wait_exit(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let text = std::fs::read_to_string(&out).map_err(|e| format!("strace wrote no summary: {e}"));
    let _ = std::fs::remove_file(&out);
    // Every connection the manager saw was one whole cycle (churn drains).
    let cycles = get(&json, "cycles_total");
    let calls = parse(&text?);
    let total = calls
        .iter()
        .find(|(name, _)| name == "total")
        .map(|&(_, n)| n)
        .ok_or("no total line in strace's summary")?;
    let main: Vec<String> = calls
        .iter()
        .filter(|(name, n)| name != "total" && *n as f64 / cycles >= 0.05)
        .map(|(name, n)| format!("{name} {:.2}", *n as f64 / cycles))
        .collect();
    Ok(format!(
        "{:.2} ({}) over {cycles:.0} cycles",
        total as f64 / cycles,
        main.join(", ")
    ))
}

/// `(syscall, calls)` from an `strace -c` summary table, most calls first.
fn parse(summary: &str) -> Vec<(String, u64)> {
    let mut rows: Vec<(String, u64)> = summary
        .lines()
        .filter(|l| !l.starts_with('%') && !l.starts_with('-'))
        .filter_map(|l| {
            // % time, seconds, usecs/call, calls, [errors], syscall
            let f: Vec<&str> = l.split_whitespace().collect();
            let calls = f.get(3)?.parse().ok()?;
            Some((f.last()?.to_string(), calls))
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    rows
}
