//! The manager's settings: defaults (the article's where it had them), then
//! `--config FILE`, then command-line flags, each overriding the one before.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{parse_duration, Unit};
use crate::config::{ConfigError, ConfigFile};
use crate::logfilter::Filter;

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
    /// Drop a servant that sends nothing for this long; zero turns it off.
    pub idle_timeout: Duration,
    /// At most one pushed list per servant per this window; zero turns pushing off.
    pub push_interval: Duration,
    /// Longest request line accepted.
    pub max_line: usize,
    /// `<loglevel>` from the file, if any (`--log-level` and `RUST_LOG` beat it).
    pub log_level: Option<Filter>,
    /// What the command line said, kept so that a reload (SIGHUP) reads the file
    /// again and puts the flags back over it.
    pub overrides: Overrides,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: None,
            port: 85,
            first_port: 2224,
            max_servants: 10_000,
            idle_timeout: Duration::from_secs(30),
            push_interval: Duration::from_millis(100),
            max_line: 4096,
            log_level: None,
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
    pub idle_timeout: Option<Duration>,
    pub push_interval: Option<Duration>,
    pub max_line: Option<usize>,
}

/// The elements `conf/connmgr.xml` may hold.
const KNOWN: &[&str] = &[
    "bind",
    "port",
    "firstport",
    "maxservants",
    "idletimeout",
    "pushinterval",
    "maxline",
    "loglevel",
];

impl Config {
    /// Defaults, then the config file if one is named, then the flags.
    pub fn load(o: &Overrides) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(path) = &o.config {
            c.apply_file(&ConfigFile::load(path, "connmgr")?)?;
        }
        c.bind = o.bind.or(c.bind);
        c.port = o.port.unwrap_or(c.port);
        c.first_port = o.first_port.unwrap_or(c.first_port);
        c.max_servants = o.max_servants.unwrap_or(c.max_servants);
        c.idle_timeout = o.idle_timeout.unwrap_or(c.idle_timeout);
        c.push_interval = o.push_interval.unwrap_or(c.push_interval);
        c.max_line = o.max_line.unwrap_or(c.max_line);
        c.overrides = o.clone();
        c.check(if o.first_port.is_some() {
            "--first-port"
        } else {
            "first port"
        })?;
        if o.max_line == Some(0) {
            return Err(ConfigError::new("--max-line", "must be at least 1 byte"));
        }
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
        if let Some(v) = duration(f, "idletimeout", Unit::Secs)? {
            self.idle_timeout = v;
        }
        if let Some(v) = duration(f, "pushinterval", Unit::Millis)? {
            self.push_interval = v;
        }
        if let Some(el) = f.root.child("maxline") {
            self.max_line = crate::config::parse_value::<usize>(el.value(), "a number of bytes")
                .and_then(|n| match n {
                    0 => Err("must be at least 1 byte".to_string()),
                    n => Ok(n),
                })
                .map_err(|r| ConfigError::new(f.place(el), format!("<maxline> {r}")))?;
        }
        if let Some(el) = f.root.child("loglevel") {
            let filter = Filter::parse(el.value())
                .map_err(|r| ConfigError::new(f.place(el), format!("<loglevel> {r}")))?;
            self.log_level = Some(filter);
        }
        if let Some(el) = f.root.child("firstport") {
            self.check(&f.place(el))?;
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
        names
    }

    fn check(&self, place: &str) -> Result<(), ConfigError> {
        if self.first_port == 0 {
            return Err(ConfigError::new(
                place,
                "the first servant port must be from 1 to 65535, not 0",
            ));
        }
        Ok(())
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
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_articles() {
        let c = Config::load(&Overrides::default()).unwrap();
        assert_eq!((c.port, c.first_port), (85, 2224));
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let path = std::env::temp_dir().join(format!("p2pchat-connmgr-{}.xml", std::process::id()));
        std::fs::write(&path, "<connmgr><port>8585</port><firstport>3000</firstport><idletimeout>0</idletimeout></connmgr>").unwrap();
        let o = Overrides {
            config: Some(path.clone()),
            port: Some(9000),
            ..Overrides::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(
            (c.port, c.first_port, c.idle_timeout),
            (9000, 3000, Duration::ZERO)
        );
        assert_eq!(c.max_servants, 10_000);
        std::fs::write(&path, "<connmgr>\n<firstport>0</firstport></connmgr>").unwrap();
        let e = Config::load(&o).unwrap_err();
        assert!(e.to_string().contains(":2: the first servant port"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn durations_take_units_and_every_element_is_read() {
        let path =
            std::env::temp_dir().join(format!("p2pchat-connmgr-units-{}.xml", std::process::id()));
        std::fs::write(&path, "<connmgr><idletimeout>2m</idletimeout><pushinterval>1s</pushinterval>\n<maxline>100</maxline><loglevel>warn,p2pchat::connmgr=debug</loglevel></connmgr>").unwrap();
        let mut o = Overrides {
            config: Some(path.clone()),
            ..Overrides::default()
        };
        let c = Config::load(&o).unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(120));
        assert_eq!(c.push_interval, Duration::from_secs(1));
        assert_eq!(c.max_line, 100);
        assert_eq!(
            c.log_level.as_ref().map(ToString::to_string).as_deref(),
            Some("warn,p2pchat::connmgr=debug")
        );
        assert_eq!(c.overrides, o);
        o.max_line = Some(50);
        o.idle_timeout = Some(Duration::from_millis(1500));
        let c = Config::load(&o).unwrap();
        assert_eq!(
            (c.max_line, c.idle_timeout),
            (50, Duration::from_millis(1500))
        );
        std::fs::write(
            &path,
            "<connmgr>\n<idletimeout>soon</idletimeout></connmgr>",
        )
        .unwrap();
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(e.contains(":2: <idletimeout> must be a duration"), "{e}");
        std::fs::write(&path, "<connmgr>\n<loglevel>loud=x</loglevel></connmgr>").unwrap();
        let e = Config::load(&o).unwrap_err().to_string();
        assert!(e.contains(":2: <loglevel>"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn first_port_zero_from_a_flag_is_rejected() {
        let o = Overrides {
            first_port: Some(0),
            ..Overrides::default()
        };
        assert_eq!(Config::load(&o).unwrap_err().place, "--first-port");
    }
}
