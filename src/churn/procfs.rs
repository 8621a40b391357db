//! What `/proc` says about a process: CPU time used and resident memory.
//!
//! CPU time comes from `/proc/PID/task/*/schedstat` (nanoseconds each thread spent
//! on a CPU, summed) when the kernel has it, since `/proc/PID/stat`'s utime +
//! stime count clock ticks (10 ms at the usual 100 Hz), too coarse for a few
//! microseconds per cycle. Summing the threads matters for the peers the benchmark
//! holds the manager against: redis-server and opentracker run helper threads
//! beside their event loop. A thread that exits between two readings takes its
//! time with it; the daemons here have one thread.

use std::io;

/// Where a CPU reading came from, which sets its resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSource {
    Schedstat,
    Stat,
}

/// CPU time (user + system) used by `pid` so far, in nanoseconds.
pub fn cpu_ns(pid: u32) -> io::Result<(u64, CpuSource)> {
    if let Some(ns) = schedstat_ns(pid) {
        return Ok((ns, CpuSource::Schedstat));
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = stat_ticks(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no utime/stime fields"),
        )
    })?;
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok((ticks * 1_000_000_000 / hz, CpuSource::Stat))
}

/// The sum of every thread's schedstat run time, if the kernel keeps schedstat.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let first = |path: std::path::PathBuf| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        text.split_whitespace().next()?.parse().ok()
    };
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = None;
    for task in tasks.flatten() {
        // A thread that exited since the listing is skipped.
        if let Some(ns) = first(task.path().join("schedstat")) {
            total = Some(total.unwrap_or(0) + ns);
        }
    }
    total
}

/// utime + stime (fields 14 and 15) from a `/proc/PID/stat` line. The command name
/// in field 2 may hold spaces and parentheses, so fields are counted after the last `)`.
fn stat_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after `)`
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of `pid` in bytes (`VmRSS` in `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status_kb(&text, "VmRSS:")
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS line"))
}

fn status_kb(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// A CPU reading of one process, taken at the start of a measurement.
#[derive(Clone, Copy, Debug)]
pub struct CpuMark {
    pub pid: u32,
    pub ns: u64,
    pub source: CpuSource,
}

impl CpuMark {
    pub fn take(pid: u32) -> io::Result<CpuMark> {
        let (ns, source) = cpu_ns(pid)?;
        Ok(CpuMark { pid, ns, source })
    }

    /// Nanoseconds of CPU used since the mark.
    pub fn elapsed(&self) -> io::Result<u64> {
        Ok(cpu_ns(self.pid)?.0.saturating_sub(self.ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_with_spaces_and_parens() {
        let line =
            "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 4 0 0 20 0 1 0 5 1000 50";
        assert_eq!(stat_ticks(line), Some(21));
        assert_eq!(stat_ticks("garbage"), None);
    }

    #[test]
    fn status_values_in_kilobytes() {
        let text = "Name:\tconnmgr\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(status_kb(text, "VmRSS:"), Some(2048));
        assert_eq!(status_kb(text, "VmSwap:"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        // Every thread counts, this test's included: spin a little and see it.
        let mark = CpuMark::take(me).unwrap();
        assert!(mark.ns > 0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while mark.elapsed().unwrap() < 5_000_000 {
            assert!(std::time::Instant::now() < deadline, "no CPU time counted");
        }
        assert!(rss_bytes(me).unwrap() > 100_000);
    }
}
