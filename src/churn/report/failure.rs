//! Why operations failed: every failure is counted under one kind and the first
//! message of each kind is kept, for the summary and the JSON.

use super::super::Mode;

/// Why an operation failed. Every failure is counted under one of these and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the address (ECONNREFUSED).
    ConnectRefused,
    /// Any other failure to start or finish a connect (ETIMEDOUT, ...).
    ConnectFailed,
    /// EADDRNOTAVAIL: the source address has no ephemeral port free towards the
    /// target (`--bind` spreads connections over more addresses).
    NoSourcePort,
    /// The peer reset the connection.
    Reset,
    /// No answer within `--timeout` (or, with `--rate`, not even started by then).
    Timeout,
    /// The server closed the connection before a whole answer came.
    ClosedEarly,
    /// What came is not a peer document, or (with `--verify`) not a valid one, or
    /// (with `--expect`) grew past the size limit without the expected end.
    Malformed,
    /// The manager answered `max number of servants reached`.
    RefusedFull,
    /// The manager answered `no free servant port`.
    RefusedNoPort,
    /// The manager answered `max servants per address reached`: this source
    /// address has its `--max-per-address` servants.
    RefusedPerAddress,
    /// A fanout servant could not listen on the port the manager gave it.
    ListenFailed,
    /// A line could not be sent to a peer (fanout with `--sender self`).
    SendFailed,
    /// A listener did not get a fanout line within `--timeout`.
    LineMissed,
    /// Any other I/O error.
    Other,
}

impl Failure {
    pub const ALL: [Failure; 14] = [
        Failure::ConnectRefused,
        Failure::ConnectFailed,
        Failure::NoSourcePort,
        Failure::Reset,
        Failure::Timeout,
        Failure::ClosedEarly,
        Failure::Malformed,
        Failure::RefusedFull,
        Failure::RefusedNoPort,
        Failure::RefusedPerAddress,
        Failure::ListenFailed,
        Failure::SendFailed,
        Failure::LineMissed,
        Failure::Other,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Failure::ConnectRefused => "connect_refused",
            Failure::ConnectFailed => "connect_failed",
            Failure::NoSourcePort => "no_source_port",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::ClosedEarly => "closed_early",
            Failure::Malformed => "malformed",
            Failure::RefusedFull => "refused_full",
            Failure::RefusedNoPort => "refused_no_port",
            Failure::RefusedPerAddress => "refused_per_address",
            Failure::ListenFailed => "listen_failed",
            Failure::SendFailed => "send_failed",
            Failure::LineMissed => "line_missed",
            Failure::Other => "other",
        }
    }

    /// Whether this kind can happen in `mode`, against a manager or (`generic`)
    /// any server: the JSON lists the kinds that can, zero or not, and no others.
    pub fn applies(self, mode: Mode, generic: bool) -> bool {
        match self {
            Failure::RefusedFull | Failure::RefusedNoPort | Failure::RefusedPerAddress => !generic,
            Failure::ListenFailed | Failure::SendFailed | Failure::LineMissed => {
                mode == Mode::Fanout
            }
            _ => true,
        }
    }

    /// The failure an I/O error on a connection to the manager stands for.
    /// Whether this is one of the manager's refusals, a flood's operation.
    pub const fn is_refusal(self) -> bool {
        matches!(
            self,
            Failure::RefusedFull | Failure::RefusedNoPort | Failure::RefusedPerAddress
        )
    }

    pub fn from_io(e: &std::io::Error) -> Failure {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => Failure::ConnectRefused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Failure::Reset,
            K::AddrNotAvailable => Failure::NoSourcePort,
            K::TimedOut | K::AddrInUse | K::HostUnreachable => Failure::ConnectFailed,
            _ => Failure::Other,
        }
    }
}

/// Failures counted by kind, with the first message of each kind kept for the summary.
#[derive(Debug, Default)]
pub struct Failures {
    counts: [u64; Failure::ALL.len()],
    first: [Option<String>; Failure::ALL.len()],
}

impl Failures {
    pub fn count(&mut self, f: Failure, detail: impl FnOnce() -> String) {
        let k = f as usize;
        self.counts[k] += 1;
        if self.first[k].is_none() {
            let text = detail();
            log::info!("{}: {text}", f.name());
            self.first[k] = Some(text);
        }
    }

    /// Adds `n` failures of kind `f` counted elsewhere (another run, another
    /// worker), with the first message seen there.
    pub fn add(&mut self, f: Failure, n: u64, first: Option<&str>) {
        let k = f as usize;
        self.counts[k] += n;
        if self.first[k].is_none() && n > 0 {
            self.first[k] = first.map(str::to_string);
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn get(&self, f: Failure) -> u64 {
        self.counts[f as usize]
    }

    /// `(kind, count, first message)` for each kind seen.
    pub fn seen(&self) -> impl Iterator<Item = (Failure, u64, &str)> {
        Failure::ALL.iter().filter_map(|&f| {
            let n = self.counts[f as usize];
            (n > 0).then(|| (f, n, self.first[f as usize].as_deref().unwrap_or("")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_keep_counts_and_the_first_message() {
        let mut f = Failures::default();
        f.count(Failure::Timeout, || "first".into());
        f.count(Failure::Timeout, || "second".into());
        f.count(Failure::Reset, || "reset".into());
        assert_eq!(f.total(), 3);
        let seen: Vec<_> = f.seen().collect();
        assert_eq!(
            seen,
            vec![(Failure::Reset, 1, "reset"), (Failure::Timeout, 2, "first")]
        );
    }

    #[test]
    fn kinds_belong_to_their_modes() {
        assert!(Failure::LineMissed.applies(Mode::Fanout, false));
        assert!(!Failure::LineMissed.applies(Mode::JoinLeave, false));
        assert!(Failure::RefusedFull.applies(Mode::JoinLeave, false));
        assert!(!Failure::RefusedFull.applies(Mode::JoinLeave, true));
        assert!(Failure::Timeout.applies(Mode::Flood, false));
    }
}
