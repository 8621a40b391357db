//! The manager's settings: defaults (the article's where it had them), then
//! `--config FILE`, then command-line flags, each overriding the one before.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{parse_duration, Unit};
use crate::config::{ConfigError, ConfigFile};
use crate::logfilter::Filter;

pub use super::members::{Members, Private};

/// Everything the manager can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Listen address; `None` means every interface (`::`, or `0.0.0.0` without IPv6).
    pub bind: Option<IpAddr>,
    /// The manager's port: 85 in the article; 0 lets the OS choose.
    pub port: u16,
    /// The port the first servant gets (the article's 2224), then upwards.
    pub first_port: u16,
    /// Connections beyond this are refused with a line saying so.
    pub max_servants: usize,
    /// Servants from one address beyond this are refused, so that one host cannot
    /// fill `max_servants` and lock everyone else out.
    pub max_per_address: usize,
    /// IPv6 servants are counted against `max_per_address` by this many leading
    /// bits of their address (1 to 128; 64, one site's subnet); IPv4 by address.
    pub ipv6_prefix: u8,
    /// Drop a servant that sends nothing for this long; zero turns it off.
    pub idle_timeout: Duration,
    /// At most one pushed list per servant per this window; zero turns pushing off.
    pub push_interval: Duration,
    /// Longest request line accepted.
    pub max_line: usize,
    /// When a servant is found behind a port-blocking router, and who relays for it.
    pub relay: RelayConfig,
    /// `<loglevel>` from the file, if any (`--log-level` and `RUST_LOG` beat it).
    pub log_level: Option<Filter>,
    /// A private network's key file and members (docs/PRIVATE.md); `None`: open.
    pub private: Option<Private>,
    /// The Redis server several managers share one network through
    /// (docs/CLUSTER.md), as a URL; `None`: this manager is the whole network.
    pub cluster: Option<String>,
    /// The name every cluster key starts with, so several networks can share one
    /// Redis.
    pub cluster_prefix: String,
    /// What the command line said, kept so that a reload (SIGHUP) reads the file
    /// again and puts the flags back over it.
    pub overrides: Overrides,
}

/// The verdict and the relay (`docs/RELAY.md`): when complaints make the manager
/// dial a servant back, how often a relayed one is checked again, and how many
/// servants one relay carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayConfig {
    /// Complaints each complainer must make about a servant (the article's "2 or
    /// 3"); 0 turns verdicts off.
    pub threshold: u32,
    /// More than this percent of the other servants must have complained that
    /// often (50: most of them, as the article says); 0 = any one.
    pub share: u32,
    /// Complaints older than this are forgotten; a servant must have asked for the
    /// list this recently (its heartbeat) to be judged.
    pub window: Duration,
    /// A relayed servant is dialed back this often, and released when it answers;
    /// a servant that answered is not dialed again for complaints sooner.
    pub recheck: Duration,
    /// A dial-back that has not connected by then has failed.
    pub dial_timeout: Duration,
    /// Servants one relay pulls for at most.
    pub pullers: u32,
    /// A chosen relay is probed this often until a probe comes back, then ten
    /// times less often; zero turns probes off.
    pub probe_interval: Duration,
    /// A probe not answered by its puller within this is a miss.
    pub probe_timeout: Duration,
    /// This many misses in a row drop the relay.
    pub probe_misses: u32,
    /// A dropped relay is chosen for no one for this long.
    pub ban: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            threshold: 2,
            share: 50,
            window: Duration::from_secs(60),
            recheck: Duration::from_secs(60),
            dial_timeout: Duration::from_secs(3),
            pullers: 16,
            probe_interval: Duration::from_secs(3),
            probe_timeout: Duration::from_secs(10),
            probe_misses: 4,
            ban: Duration::from_secs(600),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: None,
            port: 85,
            first_port: 2224,
            max_servants: 10_000,
            max_per_address: 64,
            ipv6_prefix: crate::connmgr::membership::IPV6_PREFIX,
            idle_timeout: Duration::from_secs(30),
            push_interval: Duration::from_millis(100),
            max_line: 4096,
            relay: RelayConfig::default(),
            log_level: None,
            private: None,
            cluster: None,
            cluster_prefix: "p2pchat".into(),
            overrides: Overrides::default(),
        }
    }
}

/// Values given on the command line; `None` leaves the file's or the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub first_port: Option<u16>,
    pub max_servants: Option<usize>,
    pub max_per_address: Option<usize>,
    pub ipv6_prefix: Option<u8>,
    pub idle_timeout: Option<Duration>,
    pub push_interval: Option<Duration>,
    pub max_line: Option<usize>,
    pub relay_threshold: Option<u32>,
    /// Percent.
    pub relay_share: Option<u32>,
    pub relay_window: Option<Duration>,
    pub relay_recheck: Option<Duration>,
    pub relay_dial_timeout: Option<Duration>,
    pub relay_pullers: Option<u32>,
    pub relay_probe_interval: Option<Duration>,
    pub relay_probe_timeout: Option<Duration>,
    pub relay_probe_misses: Option<u32>,
    pub relay_ban: Option<Duration>,
    pub key: Option<PathBuf>,
    pub members: Option<PathBuf>,
    pub cluster: Option<String>,
    pub cluster_prefix: Option<String>,
}

/// The elements `conf/connmgr.xml` may hold.
const KNOWN: &[&str] = &[
    "bind",
    "port",
    "firstport",
    "maxservants",
    "maxperaddress",
    "ipv6prefix",
    "idletimeout",
    "pushinterval",
    "maxline",
    "relaythreshold",
    "relayshare",
    "relaywindow",
    "relayrecheck",
    "relaydialtimeout",
    "relaypullers",
    "relayprobeinterval",
    "relayprobetimeout",
    "relayprobemisses",
    "relayban",
    "loglevel",
    "key",
    "members",
    "cluster",
    "clusterprefix",
];

impl Config {
    /// Defaults, then the config file if one is named, then the flags. A value
    /// that makes no sense is refused naming where it came from: the flag, or the
    /// file and line.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config {
            Some(path) => Some(ConfigFile::load(path, "connmgr")?),
            None => None,
        };
        let mut c = Config::default();
        if let Some(f) = &file {
            c.apply_file(f)?;
        }
        c.bind = o.bind.or(c.bind);
        c.port = o.port.unwrap_or(c.port);
        c.first_port = o.first_port.unwrap_or(c.first_port);
        c.max_servants = o.max_servants.unwrap_or(c.max_servants);
        c.max_per_address = o.max_per_address.unwrap_or(c.max_per_address);
        c.ipv6_prefix = o.ipv6_prefix.unwrap_or(c.ipv6_prefix);
        c.idle_timeout = o.idle_timeout.unwrap_or(c.idle_timeout);
        c.push_interval = o.push_interval.unwrap_or(c.push_interval);
        c.max_line = o.max_line.unwrap_or(c.max_line);
        let r = &mut c.relay;
        r.threshold = o.relay_threshold.unwrap_or(r.threshold);
        r.share = o.relay_share.unwrap_or(r.share);
        r.window = o.relay_window.unwrap_or(r.window);
        r.recheck = o.relay_recheck.unwrap_or(r.recheck);
        r.dial_timeout = o.relay_dial_timeout.unwrap_or(r.dial_timeout);
        r.pullers = o.relay_pullers.unwrap_or(r.pullers);
        r.probe_interval = o.relay_probe_interval.unwrap_or(r.probe_interval);
        r.probe_timeout = o.relay_probe_timeout.unwrap_or(r.probe_timeout);
        r.probe_misses = o.relay_probe_misses.unwrap_or(r.probe_misses);
        r.ban = o.relay_ban.unwrap_or(r.ban);
        c.cluster = o.cluster.clone().or(c.cluster);
        c.cluster_prefix = o.cluster_prefix.clone().unwrap_or(c.cluster_prefix);
        c.private = super::members::settings(
            file.as_ref(),
            o.config.as_deref(),
            o.key.as_ref(),
            o.members.as_ref(),
        )?;
        c.overrides = o.clone();
        c.check(&|element, flag| {
            if o.given(flag) {
                flag.to_string()
            } else {
                file.as_ref()
                    .and_then(|f| f.root.child(element).map(|el| f.place(el)))
                    .unwrap_or_else(|| format!("<{element}>"))
            }
        })?;
        Ok(c)
    }

    /// The settings in a config file's text, as if read from `path`: the file part
    /// of [`Config::load`], with the same checks (the fuzz target's entry).
    pub fn from_xml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let f = ConfigFile::parse(text, path, "connmgr")?;
        let mut c = Config::default();
        c.apply_file(&f)?;
        c.check(&|element, _| {
            f.root
                .child(element)
                .map_or_else(|| format!("<{element}>"), |el| f.place(el))
        })?;
        Ok(c)
    }

    fn apply_file(&mut self, f: &ConfigFile) -> Result<(), ConfigError> {
        f.allow_only(KNOWN)?;
        if let Some(v) = f.value("bind", "an IP address such as 0.0.0.0 or ::")? {
            self.bind = Some(v);
        }
        if let Some(v) = f.value("port", "a port number from 0 to 65535")? {
            self.port = v;
        }
        if let Some(v) = f.value("firstport", "a port number from 1 to 65535")? {
            self.first_port = v;
        }
        if let Some(v) = f.value("maxservants", "a whole number")? {
            self.max_servants = v;
        }
        if let Some(v) = f.value("maxperaddress", "a whole number")? {
            self.max_per_address = v;
        }
        if let Some(v) = f.value("ipv6prefix", "a prefix length from 1 to 128")? {
            self.ipv6_prefix = v;
        }
        if let Some(v) = duration(f, "idletimeout", Unit::Secs)? {
            self.idle_timeout = v;
        }
        if let Some(v) = duration(f, "pushinterval", Unit::Millis)? {
            self.push_interval = v;
        }
        if let Some(v) = f.value("maxline", "a number of bytes")? {
            self.max_line = v;
        }
        if let Some(el) = f.root.child("loglevel") {
            let filter = Filter::parse(el.value())
                .map_err(|r| ConfigError::new(f.place(el), format!("<loglevel> {r}")))?;
            self.log_level = Some(filter);
        }
        if let Some(el) = f.root.child("cluster") {
            self.cluster = Some(el.value().trim().to_string());
        }
        if let Some(el) = f.root.child("clusterprefix") {
            self.cluster_prefix = el.value().trim().to_string();
        }
        self.apply_relay(f)
    }

    fn apply_relay(&mut self, f: &ConfigFile) -> Result<(), ConfigError> {
        let r = &mut self.relay;
        if let Some(v) = f.value("relaythreshold", "a number of complaints (0 = no verdicts)")? {
            r.threshold = v;
        }
        if let Some(v) = f.value("relayshare", "a percentage from 0 to 99")? {
            r.share = v;
        }
        if let Some(v) = duration(f, "relaywindow", Unit::Secs)? {
            r.window = v;
        }
        if let Some(v) = duration(f, "relayrecheck", Unit::Secs)? {
            r.recheck = v;
        }
        if let Some(v) = duration(f, "relaydialtimeout", Unit::Millis)? {
            r.dial_timeout = v;
        }
        if let Some(v) = f.value("relaypullers", "a number of servants")? {
            r.pullers = v;
        }
        if let Some(v) = duration(f, "relayprobeinterval", Unit::Millis)? {
            r.probe_interval = v;
        }
        if let Some(v) = duration(f, "relayprobetimeout", Unit::Millis)? {
            r.probe_timeout = v;
        }
        if let Some(v) = f.value("relayprobemisses", "a number of probes")? {
            r.probe_misses = v;
        }
        if let Some(v) = duration(f, "relayban", Unit::Secs)? {
            r.ban = v;
        }
        Ok(())
    }

    /// Values that would make the manager misbehave rather than merely be slow.
    /// `place(element, flag)` says where a setting came from.
    fn check(&self, place: &dyn Fn(&str, &str) -> String) -> Result<(), ConfigError> {
        let bad = |element: &str, flag: &str, reason: String| {
            Err(ConfigError::new(place(element, flag), reason))
        };
        if self.first_port == 0 {
            return bad(
                "firstport",
                "--first-port",
                "the first servant port must be from 1 to 65535, not 0".into(),
            );
        }
        if self.max_servants == 0 {
            return bad(
                "maxservants",
                "--max-servants",
                "must be at least 1: with 0 every servant would be refused".into(),
            );
        }
        if self.max_per_address == 0 {
            return bad(
                "maxperaddress",
                "--max-per-address",
                "must be at least 1: with 0 every servant would be refused".into(),
            );
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return bad(
                "ipv6prefix",
                "--ipv6-prefix",
                format!(
                    "the IPv6 prefix length must be from 1 to 128, not {}",
                    self.ipv6_prefix
                ),
            );
        }
        if self.max_line == 0 {
            return bad("maxline", "--max-line", "must be at least 1 byte".into());
        }
        if let Some(url) = &self.cluster {
            if let Err(e) = crate::redis::RedisUrl::parse(url) {
                return bad("cluster", "--cluster", e);
            }
        }
        let p = &self.cluster_prefix;
        if p.is_empty()
            || p.len() > 64
            || !p
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        {
            return bad(
                "clusterprefix",
                "--cluster-prefix",
                format!(
                    "the cluster prefix is 1 to 64 letters, digits, '_', '-' or '.', not {p:?}"
                ),
            );
        }
        let r = &self.relay;
        if r.share > 99 {
            return bad(
                "relayshare",
                "--relay-share",
                format!(
                    "the share of complaining servants is a percentage below 100, not {}",
                    r.share
                ),
            );
        }
        if !r.probe_interval.is_zero() && (r.probe_timeout.is_zero() || r.probe_misses == 0) {
            let (element, flag) = match r.probe_misses {
                0 => ("relayprobemisses", "--relay-probe-misses"),
                _ => ("relayprobetimeout", "--relay-probe-timeout"),
            };
            return bad(
                element,
                flag,
                "must be more than 0 while relays are probed (--relay-probe-interval 0 turns probes off)".into(),
            );
        }
        for (what, element, flag, d) in [
            ("window", "relaywindow", "--relay-window", r.window),
            ("recheck", "relayrecheck", "--relay-recheck", r.recheck),
            (
                "dial timeout",
                "relaydialtimeout",
                "--relay-dial-timeout",
                r.dial_timeout,
            ),
        ] {
            if r.threshold > 0 && d.is_zero() {
                return bad(
                    element,
                    flag,
                    format!("the relay {what} must be more than 0 while verdicts are on (relay threshold {})", r.threshold),
                );
            }
        }
        Ok(())
    }

    /// The settings a running manager cannot take without a restart, by name,
    /// where `self` and `other` differ.
    pub fn restart_needed(&self, other: &Config) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.bind != other.bind {
            names.push("bind address");
        }
        if self.port != other.port {
            names.push("port");
        }
        if self.first_port != other.first_port {
            names.push("first servant port");
        }
        let key = |c: &Config| c.private.as_ref().map(|p| p.key.clone());
        if key(self) != key(other) {
            names.push("private network key");
        }
        if self.cluster != other.cluster || self.cluster_prefix != other.cluster_prefix {
            names.push("cluster");
        }
        names
    }
}

impl Overrides {
    /// Whether `flag` was given on the command line.
    fn given(&self, flag: &str) -> bool {
        match flag {
            "--first-port" => self.first_port.is_some(),
            "--max-servants" => self.max_servants.is_some(),
            "--max-per-address" => self.max_per_address.is_some(),
            "--ipv6-prefix" => self.ipv6_prefix.is_some(),
            "--relay-probe-timeout" => self.relay_probe_timeout.is_some(),
            "--relay-probe-misses" => self.relay_probe_misses.is_some(),
            "--max-line" => self.max_line.is_some(),
            "--relay-share" => self.relay_share.is_some(),
            "--relay-window" => self.relay_window.is_some(),
            "--relay-recheck" => self.relay_recheck.is_some(),
            "--relay-dial-timeout" => self.relay_dial_timeout.is_some(),
            "--cluster" => self.cluster.is_some(),
            "--cluster-prefix" => self.cluster_prefix.is_some(),
            _ => false,
        }
    }
}

/// `<name>` as a duration (`30s`, `100ms`, `2m`), a bare number in `bare` units.
fn duration(f: &ConfigFile, name: &str, bare: Unit) -> Result<Option<Duration>, ConfigError> {
    let Some(el) = f.root.child(name) else {
        return Ok(None);
    };
    parse_duration(el.value(), bare)
        .map(Some)
        .map_err(|r| ConfigError::new(f.place(el), format!("<{name}> {r}")))
}

#[cfg(test)]
mod tests;
