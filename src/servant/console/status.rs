//! The status line, the row just above the input: who this servant is, how many
//! are on the peer list, and the manager link's state; while the transcript is
//! scrolled up, how many lines wait below. As irssi's and weechat's status bars.

use std::fmt::Write as _;

use super::width::str_width;

/// The manager link as the status line shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LinkState {
    /// Not yet connected for the first time.
    #[default]
    Connecting,
    Connected,
    /// Lost, and being made again with backoff.
    Reconnecting,
    /// The manager is the article's: only `needs peer list` on this link.
    ArticleMode,
}

/// What the status line shows.
#[derive(Debug, Default)]
pub struct Status {
    pub name: Option<String>,
    /// Entries on the peer list, this servant's included; `None` before the first.
    pub peers: Option<usize>,
    pub link: LinkState,
}

impl Status {
    /// `[alice] 3 peers, connected`, then `, 12 more below` while scrolled up,
    /// cut to fit `cols - 1` columns (a full row would wrap at the next resize).
    pub fn text(&self, below: Option<usize>, cols: usize) -> String {
        let mut s = String::new();
        match &self.name {
            Some(n) => s.push_str(&format!("[{}]", crate::text::escape(n))),
            None => s.push_str("[no name]"),
        }
        match self.peers {
            Some(1) => s.push_str(" 1 peer"),
            Some(n) => {
                let _ = write!(s, " {n} peers");
            }
            None => s.push_str(" no list yet"),
        }
        s.push_str(match self.link {
            LinkState::Connecting => ", connecting",
            LinkState::Connected => ", connected",
            LinkState::Reconnecting => ", reconnecting",
            LinkState::ArticleMode => ", article mode",
        });
        if let Some(n) = below {
            let _ = write!(s, ", {n} more below (PgDn)");
        }
        clip(&s, cols.saturating_sub(1).max(1))
    }
}

/// `text` cut to at most `cols` columns.
pub fn clip(text: &str, cols: usize) -> String {
    if str_width(text) <= cols {
        return text.to_string();
    }
    let mut out = String::new();
    for c in text.chars() {
        let mut next = out.clone();
        next.push(c);
        if str_width(&next) > cols {
            break;
        }
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_peers_link_and_what_waits_below() {
        let mut s = Status {
            name: Some("alice".into()),
            peers: Some(3),
            link: LinkState::Connected,
        };
        assert_eq!(s.text(None, 80), "[alice] 3 peers, connected");
        s.link = LinkState::Reconnecting;
        assert_eq!(
            s.text(Some(12), 80),
            "[alice] 3 peers, reconnecting, 12 more below (PgDn)"
        );
        assert_eq!(
            s.text(None, 12),
            "[alice] 3 p",
            "cut to fit a narrow window"
        );
    }
}
