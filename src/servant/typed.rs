//! `txtSend1`, what the user types: each line from stdin is chat for every peer
//! or a `/command` (`/peers`, `/help`, `/quit`).
//!
//! VB sent on each Enter in a text box; here stdin arrives in chunks, from a
//! terminal (through [`super::console`]'s line editor), a pipe or a file.

use log::{debug, info};

use super::{Input, Servant, Slot};
use crate::reactor::Reactor;

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
            self.typed.finish(|l, t| lines.push((l.to_vec(), t)));
        } else {
            self.typed.feed(data, |l, t| lines.push((l.to_vec(), t)));
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
            match self.input {
                Input::Pipe => info!("end of input; leaving once sends have drained"),
                _ => debug!("end of input"),
            }
            return self.quit(r);
        }
        self.console.prompt();
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
            self.batch.extend_from_slice(name.as_bytes());
            self.batch.extend_from_slice(b": ");
        }
        self.batch.extend_from_slice(text.as_bytes());
        self.batch.push(b'\n');
    }

    /// A `/command`; an unknown one is an error on stderr, never chat.
    fn command(&mut self, r: &mut Reactor<Slot>, cmd: &str) {
        match cmd {
            "peers" => {
                let mut out = String::new();
                for p in &self.peers {
                    out.push_str(&super::relay::describe_peer(p));
                }
                if self.peers.is_empty() {
                    self.console.complain("no peer list yet");
                } else {
                    self.console.reply(&out);
                }
            }
            "help" => self.console.reply(COMMANDS),
            "quit" => self.quit(r),
            other => self.console.complain(&format!(
                "unknown command /{other} (not sent); try /help, or start the line with // to send a /"
            )),
        }
    }
}

const COMMANDS: &str = "\
Type a line and press Enter to send it to every peer (yourself included).
  /peers   the user list: * marks you, then port and address (and relay)
  /help    this text
  /quit    leave (also Ctrl-D, SIGINT, SIGTERM)
  //text   sends /text
";
