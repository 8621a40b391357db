//! SIGHUP: the servant reads config.xml again (the article's `pConfig`, which it
//! loaded once), puts the command line's flags back over it, and applies the
//! bans, the poll interval, the log level and the time stamps at once; a new name
//! is asked of the manager, as `/nick` asks it. The manager's
//! address and `--bind` would mean a new link and listener, so a change there is
//! reported and waits for a restart. A file that cannot be read changes nothing.
//!
//! Banned host names are looked up on the loop, as at start ([`super::bans`]): a
//! name that is new in the file bans from the moment it resolves, a moment later.

use log::{info, warn};

use super::{Config, Servant, Slot, IDLE_TIMEOUT, POLL};
use crate::logfilter;
use crate::notify;
use crate::reactor::Reactor;

impl Servant {
    /// Re-reads the config, applies what it can, and logs what changed.
    pub(super) fn reload_config(&mut self, r: &mut Reactor<Slot>) {
        notify::reloading();
        let new = match Config::load(&self.config.overrides) {
            Ok(c) => c,
            Err(e) => {
                warn!("SIGHUP: {e}; keeping the current settings");
                notify::ready();
                return;
            }
        };
        let old = &self.config;
        let mut changes = Vec::new();
        if new.bans != old.bans {
            changes.push(format!(
                "bans [{}] -> [{}]",
                old.bans.join(", "),
                new.bans.join(", ")
            ));
        }
        if new.name != old.name {
            let shown = |n: &Option<String>| n.clone().unwrap_or_else(|| "(none)".into());
            changes.push(format!("name {} -> {}", shown(&old.name), shown(&new.name)));
        }
        if new.poll_interval != old.poll_interval {
            changes.push(format!(
                "poll interval {} ms -> {} ms",
                old.poll_interval.as_millis(),
                new.poll_interval.as_millis()
            ));
        }
        changes.extend(logfilter::reload(
            old.log_level.as_ref(),
            new.log_level.as_ref(),
        ));
        let held = old.restart_needed(&new);
        if !held.is_empty() {
            warn!(
                "SIGHUP: {} changed; that takes a restart, so the old value stays until then",
                held.join(", ")
            );
        }
        let (bans_changed, poll_changed) =
            (new.bans != old.bans, new.poll_interval != old.poll_interval);
        // A new name is asked of the manager, as `/nick` does, and taken when it
        // answers; no name at all is only a prefix, taken at once.
        let asked = new.name.clone().filter(|n| old.name.as_ref() != Some(n));
        let name = if asked.is_some() {
            old.name.clone()
        } else {
            new.name.clone()
        };
        self.config = Config {
            connmgr_host: old.connmgr_host.clone(),
            connmgr_port: old.connmgr_port,
            more_connmgrs: old.more_connmgrs.clone(),
            bind: old.bind,
            headless: old.headless,
            name,
            private: old.private.clone(),
            ..new
        };
        self.console.set_timestamps(self.config.timestamps);
        if let Some(name) = asked {
            self.ask_name(r, name);
        }
        if bans_changed {
            let targets = self.config.bans.clone();
            self.bans.replace(&targets, r);
        }
        let new = &self.config;
        if poll_changed {
            // The next poll comes no later than the new interval from now.
            if let Some(at) = r.timer_due(POLL) {
                r.set_timer(POLL, at.min(r.now() + new.poll_interval));
            }
            r.set_idle_timeout(Some(IDLE_TIMEOUT.max(new.poll_interval * 3)));
        }
        let from = self
            .config
            .overrides
            .config
            .as_ref()
            .map_or_else(|| "./config.xml".to_string(), |p| p.display().to_string());
        if changes.is_empty() {
            info!("SIGHUP: read {from} again; nothing changed");
        } else {
            info!("SIGHUP: read {from} again: {}", changes.join(", "));
        }
        notify::ready();
    }
}
