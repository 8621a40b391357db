//! Keystrokes from a terminal in non-canonical mode, decoded from bytes: UTF-8
//! characters (split across reads or not), control keys, and the escape sequences
//! xterm-style terminals send for arrows, Home, End and Delete, plain, in
//! application mode (`ESC O`) and with modifiers (`ESC [ 1 ; 5 D`).
//!
//! Bytes that are neither (invalid UTF-8, sequences nobody maps) are dropped: a key
//! the editor does not know must never turn into text.

/// One key the line editor acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    /// Enter: `\r` (or `\n`, from a terminal with ICRNL).
    Enter,
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    Up,
    Down,
    /// Ctrl-Left, Alt-B.
    WordLeft,
    /// Ctrl-Right, Alt-F.
    WordRight,
    /// Alt-Backspace: erase the word before the cursor, like Ctrl-W.
    EraseWord,
    /// Alt-D: erase the word after the cursor.
    EraseWordForward,
    /// Tab (Ctrl-I): completes a peer's name.
    Tab,
    PageUp,
    PageDown,
    /// A lone Escape, when the console asks for one ([`KeyReader::lone_escape`]).
    Escape,
    /// Ctrl-A .. Ctrl-Z by letter (`b'a'` for Ctrl-A), those not named above.
    Ctrl(u8),
}

/// Where the decoder is between bytes; reads may end anywhere.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC [`: parameter bytes so far.
    Csi { params: [u8; 8], len: u8 },
    /// After `ESC O`.
    Ss3,
    /// Inside a UTF-8 character: the bits so far and the continuation bytes to come.
    Utf8 { code: u32, need: u8 },
}

/// Turns bytes into [`Key`]s, keeping partial sequences between calls.
#[derive(Debug, Default)]
pub struct KeyReader {
    state: State,
}

impl KeyReader {
    /// Decodes `bytes`, calling `key` for each complete key.
    pub fn feed(&mut self, bytes: &[u8], mut key: impl FnMut(Key)) {
        for &b in bytes {
            if let Some(k) = self.byte(b) {
                key(k);
            }
        }
    }

    /// Whether the last read ended with an Escape that nothing followed: a key of
    /// its own, not the start of a sequence, since terminals send a sequence in one
    /// write. Asked only where Escape means something (leaving a search), so that a
    /// sequence split across reads still decodes everywhere else.
    pub fn lone_escape(&mut self) -> bool {
        let lone = self.state == State::Escape;
        if lone {
            self.state = State::Ground;
        }
        lone
    }

    fn byte(&mut self, b: u8) -> Option<Key> {
        match self.state {
            State::Ground => self.ground(b),
            State::Escape => {
                self.state = State::Ground;
                match b {
                    b'[' => {
                        self.state = State::Csi {
                            params: [0; 8],
                            len: 0,
                        }
                    }
                    b'O' => self.state = State::Ss3,
                    0x1b => self.state = State::Escape,
                    0x7f | 0x08 => return Some(Key::EraseWord),
                    b'b' | b'B' => return Some(Key::WordLeft),
                    b'f' | b'F' => return Some(Key::WordRight),
                    b'd' | b'D' => return Some(Key::EraseWordForward),
                    _ => {} // other Alt keys: nothing
                }
                None
            }
            State::Csi { mut params, len } => match b {
                0x20..=0x3f => {
                    // Parameters and intermediates; a runaway sequence keeps its start.
                    if usize::from(len) < params.len() {
                        params[usize::from(len)] = b;
                    }
                    self.state = State::Csi {
                        params,
                        len: len.saturating_add(1),
                    };
                    None
                }
                0x40..=0x7e => {
                    self.state = State::Ground;
                    let n = usize::from(len).min(params.len());
                    csi(&params[..n], b)
                }
                _ => {
                    // Not a sequence after all: start over with this byte.
                    self.state = State::Ground;
                    self.ground(b)
                }
            },
            State::Ss3 => {
                self.state = State::Ground;
                csi(&[], b)
            }
            State::Utf8 { code, need } => {
                if b & 0xc0 != 0x80 {
                    self.state = State::Ground;
                    return self.ground(b); // a broken character is dropped
                }
                let code = (code << 6) | u32::from(b & 0x3f);
                if need > 1 {
                    self.state = State::Utf8 {
                        code,
                        need: need - 1,
                    };
                    return None;
                }
                self.state = State::Ground;
                char::from_u32(code).map(Key::Char)
            }
        }
    }

    fn ground(&mut self, b: u8) -> Option<Key> {
        Some(match b {
            0x1b => {
                self.state = State::Escape;
                return None;
            }
            b'\r' | b'\n' => Key::Enter,
            0x7f | 0x08 => Key::Backspace,
            b'\t' => Key::Tab,
            0x01..=0x1a => Key::Ctrl(b - 1 + b'a'),
            0x20..=0x7e => Key::Char(char::from(b)),
            0xc2..=0xdf => return self.utf8(u32::from(b & 0x1f), 1),
            0xe0..=0xef => return self.utf8(u32::from(b & 0x0f), 2),
            0xf0..=0xf4 => return self.utf8(u32::from(b & 0x07), 3),
            _ => return None, // NUL, other controls, stray continuation bytes
        })
    }

    fn utf8(&mut self, code: u32, need: u8) -> Option<Key> {
        self.state = State::Utf8 { code, need };
        None
    }
}

/// The key a CSI (or SS3, with no parameters) sequence stands for.
fn csi(params: &[u8], last: u8) -> Option<Key> {
    // `1;5` (Ctrl) or `1;3` (Alt) on an arrow moves by words.
    let modified = params.ends_with(b";5") || params.ends_with(b";3");
    Some(match (params, last) {
        (_, b'A') => Key::Up,
        (_, b'B') => Key::Down,
        (_, b'C') if modified => Key::WordRight,
        (_, b'D') if modified => Key::WordLeft,
        (_, b'C') => Key::Right,
        (_, b'D') => Key::Left,
        (_, b'H') => Key::Home,
        (_, b'F') => Key::End,
        (b"1" | b"7", b'~') => Key::Home,
        (b"4" | b"8", b'~') => Key::End,
        (b"3", b'~') => Key::Delete,
        (b"5", b'~') => Key::PageUp,
        (b"6", b'~') => Key::PageDown,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(chunks: &[&[u8]]) -> Vec<Key> {
        let mut r = KeyReader::default();
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, |k| out.push(k));
        }
        out
    }

    #[test]
    fn characters_and_control_keys() {
        use Key::*;
        assert_eq!(
            keys(&[b"a\x01\x05\x0b\x7f\r"]),
            [
                Char('a'),
                Ctrl(b'a'),
                Ctrl(b'e'),
                Ctrl(b'k'),
                Backspace,
                Enter
            ]
        );
    }

    #[test]
    fn utf8_split_across_reads_and_broken_utf8_dropped() {
        let e = "é日🎉".as_bytes();
        assert_eq!(
            keys(&[&e[..1], &e[1..3], &e[3..6], &e[6..]]),
            [Key::Char('é'), Key::Char('日'), Key::Char('🎉')]
        );
        assert_eq!(
            keys(&[b"\xe6\x97a\xff\x80b"]),
            [Key::Char('a'), Key::Char('b')]
        );
    }

    #[test]
    fn escape_sequences_in_every_spelling() {
        use Key::*;
        assert_eq!(
            keys(&[b"\x1b[A\x1bOB\x1b[C\x1b[D\x1b[H\x1bOF\x1b[1~\x1b[4~\x1b[3~\x1b[5~\x1b[6~\t"]),
            [Up, Down, Right, Left, Home, End, Home, End, Delete, PageUp, PageDown, Tab]
        );
        assert_eq!(
            keys(&[b"\x1b[1;5D\x1b[1;5C\x1bb\x1bf\x1b\x7f\x1bd"]),
            [
                WordLeft,
                WordRight,
                WordLeft,
                WordRight,
                EraseWord,
                EraseWordForward
            ]
        );
        // Split anywhere; unknown sequences and Alt keys vanish without a trace.
        assert_eq!(keys(&[b"\x1b", b"[", b"1;5", b"D"]), [WordLeft]);
        assert_eq!(
            keys(&[b"\x1b[15~x\x1b[200~y\x1bzq"]),
            [Char('x'), Char('y'), Char('q')]
        );
    }
}
