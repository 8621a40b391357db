//! SIGHUP: the manager reads its config file again, puts the command line's flags
//! back over it, and applies what can change while servants stay connected: the
//! servant limit, the per-address limit and IPv6 prefix (the members are
//! recounted by the new prefix), the idle timeout, the push interval, the line
//! limit, the relay settings (from the next verdict, dial, recheck or probe) and
//! the log level. The address and ports would mean a new listener and new port numbering,
//! so a change there is reported and waits for a restart. A file that cannot be
//! read or parsed changes nothing: the error is logged and the old settings stay.
//!
//! VB had no counterpart: its settings were constants in the form.

use std::time::Duration;

use log::{info, warn};

use super::config::RelayConfig;
use super::{Config, Slot};
use crate::logfilter;
use crate::notify;
use crate::reactor::Reactor;

impl Config {
    /// Re-reads the config, applies what it can, and logs what changed.
    /// `servants`: how many are connected now.
    pub(super) fn reload(&mut self, r: &mut Reactor<Slot>, servants: usize) {
        notify::reloading();
        // A private network's members file is read again with or without --config.
        let members = self.private.as_ref().map(|p| p.members_file.clone());
        let file = self.overrides.config.clone().or(members);
        let Some(path) = file else {
            info!("SIGHUP: no --config file to read again; nothing changed");
            notify::ready();
            return;
        };
        let new = match Config::load(&self.overrides) {
            Ok(c) => c,
            Err(e) => {
                warn!("SIGHUP: {e}; keeping the current settings");
                notify::ready();
                return;
            }
        };
        let mut changes = Vec::new();
        if new.max_servants != self.max_servants {
            changes.push(format!(
                "max servants {} -> {}",
                self.max_servants, new.max_servants
            ));
            if servants > new.max_servants {
                info!(
                    "{servants} servants are connected, above the new limit: they stay; newcomers are refused"
                );
            }
        }
        if new.ipv6_prefix != self.ipv6_prefix {
            changes.push(format!(
                "IPv6 prefix /{} -> /{} (servants recounted)",
                self.ipv6_prefix, new.ipv6_prefix
            ));
        }
        if new.max_per_address != self.max_per_address {
            changes.push(format!(
                "max per address {} -> {}",
                self.max_per_address, new.max_per_address
            ));
        }
        if new.idle_timeout != self.idle_timeout {
            changes.push(format!(
                "idle timeout {} -> {}",
                show(self.idle_timeout, "never"),
                show(new.idle_timeout, "never")
            ));
            r.set_idle_timeout((!new.idle_timeout.is_zero()).then_some(new.idle_timeout));
        }
        if new.push_interval != self.push_interval {
            changes.push(format!(
                "push interval {} -> {}",
                show(self.push_interval, "no pushes"),
                show(new.push_interval, "no pushes")
            ));
        }
        if new.max_line != self.max_line {
            changes.push(format!(
                "max line {} -> {} bytes",
                self.max_line, new.max_line
            ));
        }
        changes.extend(relay_changes(&self.relay, &new.relay));
        changes.extend(logfilter::reload(
            self.log_level.as_ref(),
            new.log_level.as_ref(),
        ));
        let held = self.restart_needed(&new);
        if !held.is_empty() {
            warn!(
                "SIGHUP: {} changed in {}; that takes a restart, so the old value stays until then",
                held.join(", "),
                path.display()
            );
        }
        // What needs a restart keeps its running value, so the next reload compares
        // against what is really in force.
        let key = |c: &Config| c.private.as_ref().map(|p| p.key.clone());
        let private = if key(self) == key(&new) {
            if let (Some(old), Some(now)) = (&self.private, &new.private) {
                if old.members != now.members {
                    changes.push(format!("members file ({} members)", now.members.len()));
                }
            }
            new.private.clone()
        } else {
            self.private.clone()
        };
        *self = Config {
            bind: self.bind,
            port: self.port,
            first_port: self.first_port,
            ..new
        };
        self.private = private;
        if changes.is_empty() {
            info!("SIGHUP: read {} again; nothing changed", path.display());
        } else {
            info!(
                "SIGHUP: read {} again: {}",
                path.display(),
                changes.join(", ")
            );
        }
        notify::ready();
    }
}

/// What differs between two relay settings, one `name old -> new` each.
fn relay_changes(old: &RelayConfig, new: &RelayConfig) -> Vec<String> {
    let mut changes = Vec::new();
    let mut count = |name: &str, a: u32, b: u32| {
        if a != b {
            changes.push(format!("relay {name} {a} -> {b}"));
        }
    };
    count("threshold", old.threshold, new.threshold);
    count("share", old.share, new.share);
    count("pullers", old.pullers, new.pullers);
    count("probe misses", old.probe_misses, new.probe_misses);
    for (name, a, b) in [
        ("window", old.window, new.window),
        ("recheck", old.recheck, new.recheck),
        ("dial timeout", old.dial_timeout, new.dial_timeout),
        ("probe interval", old.probe_interval, new.probe_interval),
        ("probe timeout", old.probe_timeout, new.probe_timeout),
        ("ban", old.ban, new.ban),
    ] {
        if a != b {
            changes.push(format!("relay {name} {a:?} -> {b:?}"));
        }
    }
    changes
}

/// `30s`, `100ms`, `1.5s`, or `zero` when zero turns the feature off.
fn show(d: Duration, zero: &str) -> String {
    if d.is_zero() {
        zero.to_string()
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_changes_name_each_setting() {
        let old = RelayConfig::default();
        let new = RelayConfig {
            threshold: 3,
            window: Duration::from_secs(90),
            ..RelayConfig::default()
        };
        assert_eq!(
            relay_changes(&old, &new),
            ["relay threshold 2 -> 3", "relay window 60s -> 90s"]
        );
        assert!(relay_changes(&old, &old).is_empty());
    }

    #[test]
    fn durations_are_shown_with_their_unit() {
        assert_eq!(show(Duration::from_secs(30), "never"), "30s");
        assert_eq!(show(Duration::from_millis(100), "never"), "100ms");
        assert_eq!(show(Duration::from_millis(1500), "never"), "1.5s");
        assert_eq!(show(Duration::ZERO, "no pushes"), "no pushes");
    }
}
