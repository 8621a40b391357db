//! What `/proc` says about a process: CPU time used and resident memory.
//!
//! CPU time comes from `/proc/PID/schedstat` (nanoseconds the task spent on a CPU)
//! when the kernel has it, since `/proc/PID/stat`'s utime + stime count clock ticks
//! (10 ms at the usual 100 Hz), too coarse for a few microseconds per cycle.
//! schedstat counts the main thread only and stat the whole process; the daemons
//! run everything on their main thread, so the two agree for them.

use std::io;

/// Where a CPU reading came from, which sets its resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSource {
    Schedstat,
    Stat,
}

/// CPU time (user + system) used by `pid` so far, in nanoseconds.
pub fn cpu_ns(pid: u32) -> io::Result<(u64, CpuSource)> {
    if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/schedstat")) {
        if let Some(ns) = text.split_whitespace().next().and_then(|f| f.parse().ok()) {
            return Ok((ns, CpuSource::Schedstat));
        }
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
        // Tests run off the main thread, whose CPU schedstat reports, so only
        // check that the reading works and never goes backwards.
        let mark = CpuMark::take(me).unwrap();
        assert!(mark.ns > 0);
        assert!(mark.elapsed().is_ok());
        assert!(rss_bytes(me).unwrap() > 100_000);
    }
}
