//! The servant's settings: the article's defaults, then `config.xml`, then flags.
//!
//! The file keeps the article's shape, with two optional additions:
//!
//! ```xml
//! <config>
//!   <connectionmgr>127.0.0.1</connectionmgr>  <!-- HOST or HOST:PORT; more than -->
//!   <connectionmgr>10.0.0.2:85</connectionmgr> <!-- one: tried in order       -->
//!   <port>85</port>
//!   <name>alice</name>                        <!-- optional: lines go out as "alice: ..." -->
//!   <pollinterval>2s</pollinterval>           <!-- optional; a bare number is milliseconds -->
//!   <maxpeers>10000</maxpeers>                <!-- optional: longer peer lists are refused -->
//!   <loglevel>info</loglevel>                 <!-- optional; RUST_LOG's syntax -->
//!   <timestamps>false</timestamps>            <!-- optional: HH:MM before each line -->
//!   <bans><ban><target>1.1.1.1</target></ban></bans>
//! </config>
//! ```
//!
//! SIGHUP reads the file again (`reload.rs`): bans, name, poll interval and log
//! level change at once; the managers' addresses, the port and `--bind` need a restart.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::info;

use crate::cli::{parse_duration, Unit};
use crate::config::{ConfigError, ConfigFile};
use crate::logfilter::Filter;
use crate::noise::PublicKey;

/// The config file read when `--config` is not given.
const DEFAULT_FILE: &str = "config.xml";
/// The shortest poll interval accepted: asking more often only loads the manager
/// (it pushes every change within its push interval, 100 ms by default).
const MIN_POLL: Duration = Duration::from_millis(100);

/// Everything the servant can be told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The connection manager's host: an address or a name, resolved before the loop.
    pub connmgr_host: String,
    /// The manager's port (the article's 85).
    pub connmgr_port: u16,
    /// Further managers, in order, to fail over to: each host and its port, if
    /// named (else `connmgr_port`). Empty: one manager, as the article had.
    pub more_connmgrs: Vec<(String, Option<u16>)>,
    /// Local address for the listener and every outgoing connection; `None` = any.
    pub bind: Option<IpAddr>,
    /// Prefix for outgoing lines (`name: text`).
    pub name: Option<String>,
    /// How often the peer list is asked for.
    pub poll_interval: Duration,
    /// A peer list longer than this is refused and the last good one kept: every
    /// entry costs a connection per line typed.
    pub max_peers: usize,
    /// `<ban><target>` values, addresses or host names, in file order.
    pub bans: Vec<String>,
    /// Do not read stdin at all (`--headless`).
    pub headless: bool,
    /// `<loglevel>` from the file, if any (`--log-level` and `RUST_LOG` beat it).
    pub log_level: Option<Filter>,
    /// What the command line said, kept so that a reload (SIGHUP) reads the file
    /// again and puts the flags back over it.
    pub overrides: Overrides,
    /// `--log-file`: log lines go there instead of stderr.
    pub log_file: Option<PathBuf>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// `HH:MM ` before each transcript line: `Some` when `<timestamps>` or a flag
    /// said; else on for a terminal, off for a pipe.
    pub timestamps: Option<bool>,
    /// A private network's key file and manager key (docs/PRIVATE.md); `None`: open.
    pub private: Option<Private>,
}

/// What makes a servant a private network's member: its own key file, and the
/// key the manager must prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Private {
    pub key: PathBuf,
    pub manager_key: PublicKey,
    /// Every private link's sending key is renewed this often, and a link kept
    /// to a peer is replaced with a new handshake at this age (`--rekey-after`).
    pub rekey_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            connmgr_host: "127.0.0.1".into(),
            connmgr_port: 85,
            more_connmgrs: Vec::new(),
            bind: None,
            name: None,
            poll_interval: Duration::from_secs(2),
            max_peers: 10_000,
            bans: Vec::new(),
            headless: false,
            log_level: None,
            overrides: Overrides::default(),
            log_file: None,
            file: None,
            timestamps: None,
            private: None,
        }
    }
}

/// Values given on the command line; `None` leaves the file's or the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    /// `HOST[:PORT]`, once per manager (`--connmgr` may repeat), in order.
    pub connmgr: Vec<String>,
    pub port: Option<u16>,
    pub bind: Option<IpAddr>,
    pub name: Option<String>,
    pub poll_interval: Option<Duration>,
    pub max_peers: Option<usize>,
    /// `--ban TARGET`, any number of times: added to the file's bans.
    pub bans: Vec<String>,
    pub headless: bool,
    pub log_file: Option<PathBuf>,
    /// `--timestamps` (true) or `--no-timestamps` (false).
    pub timestamps: Option<bool>,
    pub key: Option<PathBuf>,
    /// `--manager-key BASE64`.
    pub manager_key: Option<String>,
    /// `--rekey-after TIME`.
    pub rekey_after: Option<Duration>,
}

impl Overrides {
    /// `--timestamps` and `--no-timestamps`: which one was given, if either.
    pub fn timestamps(on: bool, off: bool) -> Result<Option<bool>, ConfigError> {
        match (on, off) {
            (true, true) => Err(ConfigError::new(
                "--timestamps",
                "and --no-timestamps contradict each other; give one",
            )),
            _ => Ok((on || off).then_some(on)),
        }
    }
}

const KNOWN: &[&str] = &[
    "connectionmgr",
    "port",
    "name",
    "pollinterval",
    "maxpeers",
    "bans",
    "loglevel",
    "timestamps",
    "key",
    "managerkey",
];

impl Config {
    /// Defaults, then the config file (`--config`, else `./config.xml` if it exists),
    /// then the flags.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let file = match &o.config {
            Some(path) => Some(path.clone()),
            None => Path::new(DEFAULT_FILE)
                .exists()
                .then(|| DEFAULT_FILE.into()),
        };
        let mut c = Config {
            file,
            ..Config::default()
        };
        let file = match &c.file {
            Some(path) => Some(ConfigFile::load(path, "config")?),
            None => None,
        };
        if let Some(f) = &file {
            c.apply_file(f)?;
        }
        c.private = private(file.as_ref(), c.file.as_deref(), o)?;
        if let Some((first, more)) = o.connmgr.split_first() {
            let split =
                |text: &String| split_host_port(text).map_err(|r| ConfigError::new("--connmgr", r));
            let (host, port) = split(first)?;
            c.connmgr_host = host;
            c.connmgr_port = port.unwrap_or(c.connmgr_port);
            c.more_connmgrs = more.iter().map(split).collect::<Result<_, _>>()?;
        }
        c.connmgr_port = o.port.unwrap_or(c.connmgr_port);
        c.bind = o.bind.or(c.bind);
        if let Some(name) = &o.name {
            c.name = Some(check_name(name).map_err(|r| ConfigError::new("--name", r))?);
        }
        if let Some(every) = o.poll_interval {
            c.poll_interval =
                poll_interval(every).map_err(|r| ConfigError::new("--poll-interval", r))?;
        }
        if let Some(n) = o.max_peers {
            max_peers(&n).map_err(|r| ConfigError::new("--max-peers", r))?;
            c.max_peers = n;
        }
        for target in &o.bans {
            c.bans
                .push(check_ban(target).map_err(|r| ConfigError::new("--ban", r))?);
        }
        c.headless |= o.headless;
        c.timestamps = o.timestamps.or(c.timestamps);
        c.overrides = o.clone();
        c.log_file = o.log_file.clone();
        if c.connmgr_port == 0 {
            let place = if o.port.is_some() {
                "--port"
            } else {
                "connection manager port"
            };
            return Err(ConfigError::new(place, "must be from 1 to 65535, not 0"));
        }
        Ok(c)
    }

    /// Says where the settings came from when no file was read. Logged once the
    /// servant runs, not while loading: on a terminal the console decides by then
    /// which log lines the chat window shows.
    pub fn log_source(&self) {
        if self.file.is_none() {
            info!("no ./{DEFAULT_FILE}; using the article's defaults (no bans) where flags say nothing");
        }
    }

    /// The settings in a config file's text, as if read from `path`: the file part
    /// of [`Config::load`] (the fuzz target's entry).
    pub fn from_xml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        c.apply_file(&ConfigFile::parse(text, path, "config")?)?;
        Ok(c)
    }

    fn apply_file(&mut self, f: &ConfigFile) -> Result<(), ConfigError> {
        f.allow_only(KNOWN)?;
        let mut managers = f.root.children_named("connectionmgr").map(|el| {
            split_host_port(el.value())
                .map_err(|r| ConfigError::new(f.place(el), format!("<connectionmgr> {r}")))
        });
        if let Some(first) = managers.next() {
            let (host, port) = first?;
            self.connmgr_host = host;
            if let Some(p) = port {
                self.connmgr_port = p;
            }
            self.more_connmgrs = managers.collect::<Result<_, _>>()?;
        }
        let port = f.checked("port", "a port number from 1 to 65535", |&p: &u16| {
            (p != 0)
                .then_some(())
                .ok_or("must be from 1 to 65535, not 0".into())
        })?;
        if let Some(p) = port {
            self.connmgr_port = p;
        }
        if let Some(el) = f.root.child("name") {
            self.name = Some(
                check_name(el.value())
                    .map_err(|r| ConfigError::new(f.place(el), format!("<name> {r}")))?,
            );
        }
        if let Some(el) = f.root.child("pollinterval") {
            let every = parse_duration(el.value(), Unit::Millis)
                .and_then(poll_interval)
                .map_err(|r| ConfigError::new(f.place(el), format!("<pollinterval> {r}")))?;
            self.poll_interval = every;
        }
        if let Some(n) = f.checked("maxpeers", "a number of peers", max_peers)? {
            self.max_peers = n;
        }
        if let Some(el) = f.root.child("loglevel") {
            let filter = Filter::parse(el.value())
                .map_err(|r| ConfigError::new(f.place(el), format!("<loglevel> {r}")))?;
            self.log_level = Some(filter);
        }
        if let Some(el) = f.root.child("timestamps") {
            self.timestamps = Some(match el.value().trim() {
                "true" | "TRUE" | "1" => true,
                "false" | "FALSE" | "0" => false,
                other => {
                    return Err(ConfigError::new(
                        f.place(el),
                        format!("<timestamps> must be true or false, not {other:?}"),
                    ))
                }
            });
        }
        for bans in f.root.children_named("bans") {
            for ban in &bans.children {
                if ban.name != "ban" {
                    return Err(ConfigError::new(
                        f.place(ban),
                        format!("unknown element <{}> in <bans> (expected <ban>)", ban.name),
                    ));
                }
                let target = ban.child("target").map(|t| t.value()).unwrap_or_default();
                if target.is_empty() {
                    return Err(ConfigError::new(
                        f.place(ban),
                        "<ban> needs a <target> with an IP address or a host name",
                    ));
                }
                let target = check_ban(target)
                    .map_err(|r| ConfigError::new(f.place(ban), format!("<target> {r}")))?;
                self.bans.push(target);
            }
        }
        Ok(())
    }
}

/// `HOST`, `HOST:PORT`, `[V6]:PORT` or a bare IPv6 address.
fn split_host_port(text: &str) -> Result<(String, Option<u16>), String> {
    let text = text.trim();
    let bad_port =
        |p: &str| format!("has a bad port {p:?} (expected HOST or HOST:PORT, port 1-65535)");
    if text.is_empty() {
        return Err("is empty: expected HOST or HOST:PORT".into());
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok((text.to_string(), None));
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("{text:?}: an unclosed [ (expected [IPV6]:PORT)"))?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Ok((host.to_string(), None)),
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 => Ok((host.to_string(), Some(n))),
                _ => Err(bad_port(p)),
            },
            None => Err(format!("{text:?}: unexpected {after:?} after ]")),
        };
    }
    match text.rsplit_once(':') {
        Some((host, p)) => match p.parse::<u16>() {
            Ok(n) if n != 0 && !host.is_empty() => Ok((host.to_string(), Some(n))),
            _ => Err(bad_port(p)),
        },
        None => Ok((text.to_string(), None)),
    }
}

/// The name is also told to the manager and listed: the wire's rules hold.
/// `--key FILE` and `--manager-key BASE64`, or `<key>` (relative to the config
/// file's folder) and `<managerkey>`: both make a private network's member, one
/// without the other is an error naming what is missing.
fn private(
    file: Option<&ConfigFile>,
    path: Option<&Path>,
    o: &Overrides,
) -> Result<Option<Private>, ConfigError> {
    let element = |name: &str| file.and_then(|f| Some((f.root.child(name)?, f)));
    let key = match (&o.key, element("key")) {
        (Some(k), _) => Some((k.clone(), "--key".to_string())),
        (None, Some((el, f))) => {
            let folder = path.and_then(Path::parent).unwrap_or(Path::new(""));
            Some((folder.join(el.value().trim()), f.place(el)))
        }
        (None, None) => None,
    };
    let manager_key = match (&o.manager_key, element("managerkey")) {
        (Some(text), _) => Some(
            PublicKey::parse(text)
                .map(|k| (k, "--manager-key".to_string()))
                .map_err(|r| {
                    ConfigError::new("--manager-key", format!("is not a public key: {r}"))
                })?,
        ),
        (None, Some((el, f))) => Some(
            PublicKey::parse(el.value())
                .map(|k| (k, f.place(el)))
                .map_err(|r| {
                    ConfigError::new(
                        f.place(el),
                        format!("<managerkey> is not a public key: {r}"),
                    )
                })?,
        ),
        (None, None) => None,
    };
    let rekey_after = match o.rekey_after {
        Some(t) if t < Duration::from_secs(1) => {
            return Err(ConfigError::new("--rekey-after", "must be at least 1s"))
        }
        Some(t) => t,
        None => crate::reactor::REKEY_AFTER,
    };
    match (key, manager_key) {
        (None, None) if o.rekey_after.is_some() => Err(ConfigError::new(
            "--rekey-after",
            "applies to a private network's links; give --key and --manager-key too",
        )),
        (None, None) => Ok(None),
        (Some((_, place)), None) => Err(ConfigError::new(
            place,
            "a private network needs the manager's public key too (--manager-key BASE64 or <managerkey>)",
        )),
        (None, Some((_, place))) => Err(ConfigError::new(
            place,
            "a private network needs this servant's key file too (--key FILE or <key>)",
        )),
        (Some((key, _)), Some((manager_key, _))) => Ok(Some(Private {
            key,
            manager_key,
            rekey_after,
        })),
    }
}

fn check_name(name: &str) -> Result<String, String> {
    crate::wire::name::check(name).map(str::to_string)
}

impl Config {
    /// The settings a running servant cannot take without a restart, by name, where
    /// `self` and `other` differ.
    pub fn restart_needed(&self, other: &Config) -> Vec<&'static str> {
        let mut names = Vec::new();
        let managers = |c: &Config| {
            (
                c.connmgr_host.clone(),
                c.connmgr_port,
                c.more_connmgrs.clone(),
            )
        };
        if managers(self) != managers(other) {
            names.push("connection manager");
        }
        if self.bind != other.bind {
            names.push("bind address");
        }
        if self.private != other.private {
            names.push("private network keys");
        }
        names
    }
}

fn check_ban(target: &str) -> Result<String, String> {
    let target = target.trim();
    if target.is_empty() || target.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{target:?} is neither an IP address nor a host name"
        ));
    }
    Ok(target.to_string())
}

fn poll_interval(every: Duration) -> Result<Duration, String> {
    if every < MIN_POLL {
        return Err(format!(
            "must be at least {} ms, not {every:?}: the manager pushes every change anyway, and asking more often only loads it",
            MIN_POLL.as_millis()
        ));
    }
    Ok(every)
}

fn max_peers(n: &usize) -> Result<(), String> {
    match n {
        0 => Err("must be at least 1: a servant is on its own list".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
