//! `txtSend1`, what the user types: each line from stdin is chat for every peer
//! or a `/command`.
//!
//! VB sent on each Enter in a text box; here stdin arrives in chunks, from a
//! terminal (through [`super::console`]'s line editor), a pipe or a file. The
//! article had no commands; those here are the ones a chat user reaches for that
//! the protocol allows: the user list, an action, a new name, a clean screen.

use log::{debug, info};

use super::chat::ChatReader;
use super::{Input, Servant, Slot};
use crate::reactor::Reactor;
use crate::wire::peerdoc::Peer;

/// How stdin is read, and the line it has not finished.
#[derive(Debug)]
pub(super) struct Typing {
    pub(super) input: Input,
    pub(super) reader: ChatReader,
}

impl Typing {
    pub(super) fn new(input: Input) -> Typing {
        Typing {
            input,
            reader: ChatReader::default(),
        }
    }
}

impl Servant {
    /// VB: `txtSend1_KeyPress(KeyAscii)`: Enter sends the line. Here stdin arrives in
    /// chunks; each complete line is chat or a command. Chat lines of one chunk go out
    /// as one batch. An empty chunk is end of input.
    pub(super) fn txt_send1_key_press(&mut self, r: &mut Reactor<Slot>, data: &[u8]) {
        if self.quitting {
            return;
        }
        let mut lines: Vec<(Vec<u8>, bool)> = Vec::new();
        if data.is_empty() {
            self.typing
                .reader
                .finish(|l, t| lines.push((l.to_vec(), t)));
        } else {
            self.typing
                .reader
                .feed(data, |l, t| lines.push((l.to_vec(), t)));
        }
        for (line, truncated) in lines {
            if truncated {
                self.console
                    .complain("that line was longer than 64 KiB; sending its first 64 KiB");
            }
            self.typed_line(r, &line);
            if self.quitting {
                return;
            }
        }
        self.send1_broadcast(r);
        if data.is_empty() {
            match self.typing.input {
                Input::Pipe => info!("end of input; leaving once sends have drained"),
                _ => debug!("end of input"),
            }
            self.console.close_input();
            self.quit(r);
        }
    }

    /// One typed line: a command, or chat added to the batch with `--name`'s prefix.
    fn typed_line(&mut self, r: &mut Reactor<Slot>, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        if text.trim().is_empty() {
            return;
        }
        if let Some(cmd) = text.strip_prefix('/') {
            if !cmd.starts_with('/') {
                // Commands act after the chat typed before them has gone out.
                self.send1_broadcast(r);
                return self.command(r, cmd.trim());
            }
        }
        // `//text` sends `/text`.
        let text = text
            .strip_prefix('/')
            .filter(|t| t.starts_with('/'))
            .unwrap_or(text);
        if let Some(name) = &self.config.name {
            self.sends.batch.extend_from_slice(name.as_bytes());
            self.sends.batch.extend_from_slice(b": ");
        }
        self.sends.batch.extend_from_slice(text.as_bytes());
        self.sends.batch.push(b'\n');
    }

    /// A `/command`; an unknown one is an error, never chat.
    fn command(&mut self, r: &mut Reactor<Slot>, cmd: &str) {
        let (word, rest) = cmd.split_once(' ').unwrap_or((cmd, ""));
        let rest = rest.trim();
        match word {
            "peers" | "names" if self.peers.is_empty() => self.console.complain("no peer list yet"),
            "peers" | "names" => {
                let table = self.peer_table(r.now());
                self.console.reply(&table);
            }
            "help" => self.console.reply(COMMANDS),
            "me" if rest.is_empty() => self.console.complain("/me needs an action: /me waves"),
            "me" => {
                // An action is an ordinary line to peers: `* alice waves`.
                let line = match &self.config.name {
                    Some(name) => format!("* {name} {rest}\n"),
                    None => format!("* {rest}\n"),
                };
                self.sends.batch.extend_from_slice(line.as_bytes());
                self.send1_broadcast(r);
            }
            "nick" => self.rename(r, rest),
            "msg" => self.msg(r, rest),
            "who" if self.peers.is_empty() => self.console.complain("no peer list yet"),
            "who" => {
                let table = self.who_table(r.now());
                self.console.reply(&table);
            }
            "clear" => self.console.clear(),
            "quit" | "exit" => {
                self.console.close_input();
                self.quit(r);
            }
            other => self.console.complain(&format!(
                "unknown command /{} (not sent); try /help, or start the line with // to send a /",
                crate::text::escape(other)
            )),
        }
    }

    /// `/nick NAME`: a new prefix for our lines, and a new name in everyone's list,
    /// once the manager has answered ([`super::names`]).
    fn rename(&mut self, r: &mut Reactor<Slot>, wanted: &str) {
        let name = match crate::wire::name::check(wanted) {
            Ok(n) => n.to_string(),
            Err(why) => return self.console.complain(&format!("/nick: the name {why}")),
        };
        if self.config.name.as_deref() == Some(name.as_str()) {
            return self
                .console
                .complain(&format!("you are {} already", crate::text::escape(&name)));
        }
        self.ask_name(r, name);
    }

    /// The user list in aligned columns: `*` on this servant, name, address, port,
    /// how long it has been here ([`super::seen`]), and how a peer behind a
    /// port-blocking router is reached.
    fn peer_table(&self, now: std::time::Instant) -> String {
        let names: Vec<String> = (self.peers.iter())
            .map(|p| match self.peers.name(p.addr()) {
                Some(n) => crate::text::escape(n).into_owned(),
                None => "-".into(),
            })
            .collect();
        let addrs: Vec<String> = self.peers.iter().map(|p| p.ip.to_string()).collect();
        let name_cols = names.iter().map(|n| super::console::str_width(n)).max();
        let addr_cols = addrs.iter().map(String::len).max();
        let (name_cols, addr_cols) = (name_cols.unwrap_or(0), addr_cols.unwrap_or(0));
        let ages: Vec<String> = self.peers.iter().map(|p| self.here_for(p, now)).collect();
        let age_cols = ages.iter().map(String::len).max().unwrap_or(0);
        let mut out = String::new();
        for (((p, name), addr), age) in self.peers.iter().zip(&names).zip(&addrs).zip(&ages) {
            let mark = if p.me { '*' } else { ' ' };
            let pad = name_cols - super::console::str_width(name);
            out.push_str(&format!(
                "{mark} {name}{:pad$}  {addr:<addr_cols$}  {:>5}  {age:>age_cols$}",
                "", p.port
            ));
            let note = relay_note(p);
            if !note.is_empty() {
                out.push_str("  ");
                out.push_str(&note);
            }
            out.push('\n');
        }
        out
    }
}

/// The relay's words for a peer behind a port-blocking router (`relayed via
/// 203.0.113.10:2224`), as [`super::relay::describe_peer`] has them after the
/// address; empty for a peer reached directly.
fn relay_note(p: &Peer) -> String {
    let line = super::relay::describe_peer(p);
    let head = format!("{}{} {}", if p.me { "*" } else { "" }, p.port, p.ip);
    (line.trim_end().strip_prefix(&head))
        .map_or_else(String::new, |rest| rest.trim_start().to_string())
}

const COMMANDS: &str = "\
Type a line and press Enter to send it to every peer (yourself included).
  /peers, /names   who is here: * marks you, then name, address, port and
                   how long since this servant first saw each
  /me ACTION       an action: /me waves sends \"* NAME waves\"
  /msg NAME TEXT   a line for NAME only, shown as \"-> NAME: TEXT\" (direct,
                   not secret: the network is plaintext)
  /who             who is here, and for how long
  /nick NAME       a new name, in your lines and in everyone's list
  /clear           clear the screen
  /help            this text
  /quit, /exit     leave (also Ctrl-D, Ctrl-C)
  //text           sends /text
Keys: Left/Right, Home/End, Ctrl-A/E, Alt-B/F or Ctrl-Left/Right by words,
Ctrl-K/U/W cut, Ctrl-Y puts back, Up/Down the lines typed (earlier runs' too),
Ctrl-R searches them, Tab completes a name, Page Up/Down scroll, Ctrl-L redraws.
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_note_is_what_follows_the_address() {
        let mut p = Peer {
            ip: "203.0.113.1".parse().unwrap(),
            port: 2226,
            offset: 3,
            me: true,
            relay: None,
            key: None,
        };
        assert_eq!(relay_note(&p), "");
        p.relay = Some(crate::wire::relay::Relay::Via(
            "203.0.113.10:2224".parse().unwrap(),
        ));
        assert_eq!(relay_note(&p), "relayed via 203.0.113.10:2224");
        p.me = false;
        p.relay = Some(crate::wire::relay::Relay::Nobody);
        assert_eq!(relay_note(&p), "relayed, but no peer can relay for it");
    }
}
