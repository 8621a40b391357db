//! `--private`: churn runs its own private network (docs/PRIVATE.md) and plays
//! members of it. It makes a key for the manager, one for each virtual servant
//! and one for the fanout sender, in a temporary folder of mode 0700 it removes
//! when the run ends; writes the members file naming them; starts the `connmgr`
//! next to churn with `--key` and `--members`; and speaks Noise IK itself through
//! the reactor's private slots.
//!
//! A member's key holds one live link at the manager (a newer link replaces the
//! older), so every connection open at once needs its own key: churners take one
//! from [`Keys::take`] and give it back at close. The pool is twice the
//! concurrency, and the list is first in, first out, so a key freed is used again
//! last, after the manager has long seen its old link close.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::info;
use p2pchat_harness::{Process, Spawn};

use super::{Config, Mode, RunError};
use crate::noise::{Keypair, PublicKey};

/// How long churn's manager has to say it listens.
const MANAGER_START: Duration = Duration::from_secs(10);

/// The temporary folder holding the keys and the members file, removed on drop.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The members' key pairs churn plays, and which of the churners' are free.
pub(super) struct Keys {
    pairs: Vec<Keypair>,
    free: VecDeque<usize>,
    /// The manager's public key, which every member's link proves.
    pub manager: PublicKey,
    /// The fanout sender's public key: the only one a listener admits.
    pub sender: PublicKey,
}

impl Keys {
    /// Key `k`: fanout listener `k`'s, or one a churner took.
    pub fn pair(&self, k: usize) -> &Keypair {
        &self.pairs[k]
    }

    /// A key no open connection holds, oldest freed first.
    pub fn take(&mut self) -> Option<usize> {
        self.free.pop_front()
    }

    /// Key `k`'s connection closed.
    pub fn give_back(&mut self, k: usize) {
        self.free.push_back(k);
    }

    pub fn members(&self) -> usize {
        self.pairs.len()
    }
}

/// churn's private network: its manager, running, and the keys.
pub(super) struct Network {
    /// Killed on drop, before the folder with its key goes.
    pub manager: Process,
    _folder: Folder,
    /// Where the manager listens.
    pub addr: SocketAddr,
    pub sender_key_file: PathBuf,
}

/// Keys for the virtual servants: one per fanout listener, or twice `-c` for
/// churners (each connection holds one; see the module doc).
fn member_count(cfg: &Config) -> usize {
    match cfg.mode {
        Mode::Fanout => cfg.concurrency,
        _ => cfg.concurrency * 2 + 16,
    }
}

fn program(name: &str) -> Result<PathBuf, RunError> {
    let p = std::env::current_exe()
        .map_err(|e| RunError(format!("--private: cannot find churn's own path: {e}")))?
        .with_file_name(name);
    if p.is_file() {
        Ok(p)
    } else {
        Err(RunError(format!(
            "--private: no {name} binary next to churn ({})",
            p.display()
        )))
    }
}

fn write_key(pair: &Keypair, file: &Path) -> Result<(), RunError> {
    pair.save_new(file).map_err(RunError)
}

/// Makes the keys and the members file, and starts the manager at `cfg.target`
/// (port 0: one the OS chooses).
pub(super) fn start(cfg: &Config) -> Result<(Network, Keys), RunError> {
    let connmgr = program("connmgr")?;
    let dir = std::env::temp_dir().join(format!("p2pchat-churn-{}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(|e| RunError(format!("cannot create {}: {e}", dir.display())))?;
    let folder = Folder(dir);
    let fresh = || Keypair::generate().map_err(RunError);
    let manager = fresh()?;
    let sender = fresh()?;
    let pairs = (0..member_count(cfg))
        .map(|_| fresh())
        .collect::<Result<Vec<_>, _>>()?;
    let mut members = String::from("<members>\n");
    for (k, pair) in pairs.iter().enumerate() {
        members += &format!(
            "<member><name>churn{k}</name><key>{}</key></member>\n",
            pair.public()
        );
    }
    members += &format!(
        "<member><name>sender</name><key>{}</key></member>\n</members>\n",
        sender.public()
    );
    let members_file = folder.0.join("members.xml");
    std::fs::write(&members_file, members)
        .map_err(|e| RunError(format!("cannot write {}: {e}", members_file.display())))?;
    let manager_key_file = folder.0.join("connmgr.key");
    let sender_key_file = folder.0.join("sender.key");
    write_key(&manager, &manager_key_file)?;
    write_key(&sender, &sender_key_file)?;
    let process = Spawn::new(&connmgr)
        .name("churn's connmgr")
        .arg("--bind")
        .arg(cfg.target.ip().to_string())
        .arg("--port")
        .arg(cfg.target.port().to_string())
        .arg("--key")
        .arg(&manager_key_file)
        .arg("--members")
        .arg(&members_file)
        // churn is one host: the manager must take every virtual servant from it.
        .args(["--max-servants", "1000000", "--max-per-address", "1000000"])
        .args(["--log-level", "warn"])
        .ignore_stdout()
        .keep(20)
        .start()
        .map_err(|e| RunError(e.to_string()))?;
    let addr = process.listening_addr(MANAGER_START).map_err(|e| {
        RunError(format!(
            "churn's connmgr did not start: {e}; its last log lines:\n  {}",
            process.log_text().replace('\n', "\n  ")
        ))
    })?;
    info!(
        "started {} (pid {}), a private network of {} members, at {addr}",
        connmgr.display(),
        process.pid(),
        pairs.len() + 1
    );
    let keys = Keys {
        free: (0..pairs.len()).collect(),
        pairs,
        manager: *manager.public(),
        sender: *sender.public(),
    };
    let net = Network {
        manager: process,
        _folder: folder,
        addr,
        sender_key_file,
    };
    Ok((net, keys))
}

/// What a private run adds to the report: whose manager, and the handshakes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrivateUse {
    pub manager_pid: u32,
    /// Member keys churn played (the fanout sender's not counted).
    pub members: usize,
    /// Whole run: handshakes churn started as initiator (to the manager), and
    /// those that came up.
    pub started: u64,
    pub done: u64,
    /// Fanout: the sender's handshakes the listeners answered and saw proven.
    pub accepted: u64,
}

impl PrivateUse {
    /// The summary's line: a `connect` figure on a private link includes the
    /// handshake, since the link's `connect` fires when it is done.
    pub fn text(&self, s: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            s,
            "  private network: churn's connmgr pid {}, {} member keys; {} Noise IK handshakes to it, {} done (connect includes the handshake)",
            self.manager_pid, self.members, self.started, self.done
        );
        if self.accepted > 0 {
            let _ = write!(s, "; {} from the sending servant proven", self.accepted);
        }
        s.push('\n');
    }

    pub fn json(&self, j: &mut super::report::json::Obj) {
        j.val("private", super::report::json::Value::Bool(true));
        j.num("private_manager_pid", f64::from(self.manager_pid));
        j.num("private_members", self.members as f64);
        j.num("handshakes_started", self.started as f64);
        j.num("handshakes_done", self.done as f64);
        j.num("handshakes_accepted", self.accepted as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Mode, Sender};
    use super::*;

    #[test]
    fn private_runs_are_join_leave_or_fanout_from_a_real_servant() {
        let at = "127.0.0.1:0".parse().unwrap();
        let mut c = Config::new(Mode::JoinLeave, at);
        c.private = true;
        assert!(c.check().is_ok());
        c.server_pid = Some(1);
        assert!(c.check().unwrap_err().to_string().contains("--server-pid"));
        let mut f = Config::new(Mode::Fanout, at);
        f.private = true;
        assert!(f
            .check()
            .unwrap_err()
            .to_string()
            .contains("--sender servant"));
        f.sender = Sender::Servant("servant".into());
        assert!(f.check().is_ok());
        let mut s = Config::new(Mode::Flood, at);
        s.private = true;
        assert!(s.check().is_err());
        assert_eq!(member_count(&c), 2 * 50 + 16);
    }
}
