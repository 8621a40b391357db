//! The manager's settings: defaults (the article's where it had them), then
//! `--config FILE`, then command-line flags, each overriding the one before.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, ConfigFile};

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
        }
    }
}

/// Values given on the command line; `None` leaves the file's or the default.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub bind: Option<IpAddr>,
    pub port: Option<u16>,
    pub first_port: Option<u16>,
    pub max_servants: Option<usize>,
    pub idle_timeout: Option<u64>,
    pub push_interval: Option<u64>,
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
        c.idle_timeout = o.idle_timeout.map_or(c.idle_timeout, Duration::from_secs);
        c.push_interval = o
            .push_interval
            .map_or(c.push_interval, Duration::from_millis);
        c.check(if o.first_port.is_some() {
            "--first-port"
        } else {
            "first port"
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
        if let Some(v) = f.value::<u64>("idletimeout", "a number of seconds (0 = never)")? {
            self.idle_timeout = Duration::from_secs(v);
        }
        if let Some(v) =
            f.value::<u64>("pushinterval", "a number of milliseconds (0 = no pushes)")?
        {
            self.push_interval = Duration::from_millis(v);
        }
        if let Some(v) = f.value("maxline", "a number of bytes")? {
            self.max_line = v;
        }
        if let Some(el) = f.root.child("firstport") {
            self.check(&f.place(el))?;
        }
        Ok(())
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
    fn first_port_zero_from_a_flag_is_rejected() {
        let o = Overrides {
            first_port: Some(0),
            ..Overrides::default()
        };
        assert_eq!(Config::load(&o).unwrap_err().place, "--first-port");
    }
}
