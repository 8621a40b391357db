//! The Winsock control's `State` property, with the control's own numbers and names.

use std::fmt;

/// What a slot's socket is doing, numbered as the VB Winsock control numbers it.
///
/// The reactor only ever puts a slot in `Closed`, `Listening`, `Connecting`,
/// `Connected`, `Closing` and `Error`; the other values exist so that the enum
/// reads like the control's documentation and converts from its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// 0: no socket; the slot is free for reuse.
    Closed = 0,
    /// 1: a socket exists but is neither listening nor connected.
    Open = 1,
    /// 2: a listener.
    Listening = 2,
    /// 3: a connection request is waiting to be accepted.
    ConnectionPending = 3,
    /// 4: a host name is being resolved.
    ResolvingHost = 4,
    /// 5: a host name has been resolved.
    HostResolved = 5,
    /// 6: an outgoing connection is in progress.
    Connecting = 6,
    /// 7: connected; data may flow both ways.
    Connected = 7,
    /// 8: the peer closed, or we did; the loop reaps the slot after the event batch.
    Closing = 8,
    /// 9: an I/O error ended the connection; reaped like `Closing`.
    Error = 9,
}

impl State {
    /// The name the VB documentation uses (`sckConnected`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "sckClosed",
            State::Open => "sckOpen",
            State::Listening => "sckListening",
            State::ConnectionPending => "sckConnectionPending",
            State::ResolvingHost => "sckResolvingHost",
            State::HostResolved => "sckHostResolved",
            State::Connecting => "sckConnecting",
            State::Connected => "sckConnected",
            State::Closing => "sckClosing",
            State::Error => "sckError",
        }
    }

    /// VB reuses a control whose state is 0 or 8 (`istate = 0 Or istate = 8`).
    pub const fn is_reusable(self) -> bool {
        matches!(self, State::Closed | State::Closing)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for State {
    type Error = u8;

    fn try_from(n: u8) -> Result<Self, u8> {
        Ok(match n {
            0 => State::Closed,
            1 => State::Open,
            2 => State::Listening,
            3 => State::ConnectionPending,
            4 => State::ResolvingHost,
            5 => State::HostResolved,
            6 => State::Connecting,
            7 => State::Connected,
            8 => State::Closing,
            9 => State::Error,
            other => return Err(other),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_match_the_winsock_control() {
        let expected = [
            "sckClosed",
            "sckOpen",
            "sckListening",
            "sckConnectionPending",
            "sckResolvingHost",
            "sckHostResolved",
            "sckConnecting",
            "sckConnected",
            "sckClosing",
            "sckError",
        ];
        for (n, name) in expected.iter().enumerate() {
            let state = State::try_from(n as u8).unwrap();
            assert_eq!(state as u8, n as u8);
            assert_eq!(state.to_string(), *name);
        }
        assert_eq!(State::try_from(10), Err(10));
    }

    #[test]
    fn only_closed_and_closing_are_reusable() {
        let reusable: Vec<u8> = (0..10u8)
            .filter(|&n| State::try_from(n).unwrap().is_reusable())
            .collect();
        assert_eq!(reusable, vec![0, 8]);
    }
}
