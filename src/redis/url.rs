//! Where a Redis server is and how to log in: `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`
//! (port 6379 if none; an IPv6 host in brackets) or `unix:///path/redis.sock[?db=N]`.
//! The password is never shown: `Debug` and `Display` print `<redacted>`.

use std::fmt;
use std::path::PathBuf;

/// Redis's own port.
pub const DEFAULT_PORT: u16 = 6379;

/// The server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A host name or IP literal (without brackets) and a port.
    Tcp { host: String, port: u16 },
    /// A Unix socket's path.
    Unix(PathBuf),
}

/// A parsed Redis URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    pub target: Target,
    /// The ACL user (Redis 6+); with only a password, `AUTH password`.
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database to SELECT; none means Redis's default, 0.
    pub db: Option<u32>,
}

impl RedisUrl {
    pub fn parse(url: &str) -> Result<RedisUrl, String> {
        if let Some(rest) = url.strip_prefix("unix://") {
            return parse_unix(rest);
        }
        let Some(rest) = url.strip_prefix("redis://") else {
            let scheme = url.split_once("://").map_or("none", |(s, _)| s);
            return Err(format!(
                "a Redis URL starts with redis:// or unix://, not {scheme:?} (in {url:?})"
            ));
        };
        let (authority, db) = match rest.split_once('/') {
            Some((a, "")) => (a, None),
            Some((a, db)) => (a, Some(parse_db(db)?)),
            None => (rest, None),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(u) => {
                let (user, pass) = u.split_once(':').unwrap_or((u, ""));
                let user = decode(user, "user")?;
                let pass = decode(pass, "password")?;
                ((!user.is_empty()).then_some(user), Some(pass))
            }
        };
        if user.is_some() && password.as_deref() == Some("") {
            return Err("a user without a password: write redis://USER:PASSWORD@HOST".into());
        }
        let (host, port) = split_host_port(hostport)?;
        Ok(RedisUrl {
            target: Target::Tcp { host, port },
            user,
            password: password.filter(|p| !p.is_empty()),
            db,
        })
    }
}

fn parse_unix(rest: &str) -> Result<RedisUrl, String> {
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if !path.starts_with('/') {
        return Err(format!(
            "a Unix socket URL needs an absolute path, unix:///path/redis.sock, not unix://{path}"
        ));
    }
    let db = match query {
        None => None,
        Some(q) => match q.strip_prefix("db=") {
            Some(db) => Some(parse_db(db)?),
            None => return Err(format!("a Unix socket URL takes only ?db=N, not ?{q}")),
        },
    };
    Ok(RedisUrl {
        target: Target::Unix(PathBuf::from(path)),
        user: None,
        password: None,
        db,
    })
}

fn parse_db(db: &str) -> Result<u32, String> {
    let ok = !db.is_empty() && db.bytes().all(|b| b.is_ascii_digit()) && db.len() <= 9;
    match ok {
        true => Ok(db.parse().expect("up to nine digits")),
        false => Err(format!("the database must be a number, not {db:?}")),
    }
}

fn split_host_port(hostport: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("an IPv6 host without its closing ]: {hostport:?}"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(p) => (host, Some(p)),
                None => return Err(format!("{after:?} after an IPv6 host, not :PORT")),
            },
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!("an IPv6 host goes in brackets: [{h}]"));
            }
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err("no host in the Redis URL".into());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("the port must be 1-65535, not {p:?}")),
        },
    };
    Ok((host.to_string(), port))
}

/// Undoes percent-encoding, which a password with `@`, `:` or `/` needs.
fn decode(s: &str, what: &str) -> Result<String, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex = [bytes.next(), bytes.next()];
        let digit = |d: Option<u8>| d.and_then(|d| (d as char).to_digit(16));
        match (digit(hex[0]), digit(hex[1])) {
            (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
            // The password itself must not appear in the message.
            _ => return Err(format!("a bad %-escape in the {what}")),
        }
    }
    String::from_utf8(out).map_err(|_| format!("the {what} is not UTF-8 once %-decoded"))
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            Target::Unix(path) => {
                write!(f, "unix://{}", path.display())?;
                if let Some(db) = self.db {
                    write!(f, "?db={db}")?;
                }
                Ok(())
            }
            Target::Tcp { host, port } => {
                f.write_str("redis://")?;
                if let Some(user) = &self.user {
                    write!(f, "{user}:")?;
                }
                if self.password.is_some() {
                    let colon = if self.user.is_some() { "" } else { ":" };
                    write!(f, "{colon}<redacted>@")?;
                }
                match host.contains(':') {
                    true => write!(f, "[{host}]:{port}")?,
                    false => write!(f, "{host}:{port}")?,
                }
                if let Some(db) = self.db {
                    write!(f, "/{db}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisUrl")
            .field("target", &self.target)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Target {
        Target::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn the_forms_parse() {
        let u = RedisUrl::parse("redis://10.0.0.1:6380").unwrap();
        assert_eq!(
            (u.target, u.user, u.password, u.db),
            (tcp("10.0.0.1", 6380), None, None, None)
        );
        let u = RedisUrl::parse("redis://:s%40cret@redis.lan/3").unwrap();
        assert_eq!(u.target, tcp("redis.lan", DEFAULT_PORT));
        assert_eq!(
            (u.user, u.password.as_deref(), u.db),
            (None, Some("s@cret"), Some(3))
        );
        let u = RedisUrl::parse("redis://app:pw@[::1]:7000/").unwrap();
        assert_eq!(u.target, tcp("::1", 7000));
        assert_eq!(
            (u.user.as_deref(), u.password.as_deref()),
            (Some("app"), Some("pw"))
        );
        let u = RedisUrl::parse("unix:///run/redis/redis.sock?db=2").unwrap();
        assert_eq!(u.target, Target::Unix("/run/redis/redis.sock".into()));
        assert_eq!(u.db, Some(2));
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |s| RedisUrl::parse(s).unwrap_err();
        assert!(err("http://x").contains("redis:// or unix://"));
        assert!(err("redis://host:0").contains("port must be 1-65535"));
        assert!(err("redis://host:http").contains("\"http\""));
        assert!(err("redis://host/x").contains("database must be a number"));
        assert!(err("redis://:6379").contains("no host"));
        assert!(err("redis://::1:6379").contains("brackets"));
        assert!(err("redis://[::1").contains("closing ]"));
        assert!(err("unix://run/redis.sock").contains("absolute path"));
        assert!(err("unix:///r.sock?pass=x").contains("only ?db=N"));
        let bad = err("redis://:hunter%zz2@host");
        assert!(bad.contains("%-escape in the password") && !bad.contains("hunter"));
    }

    #[test]
    fn the_password_is_never_shown() {
        let u = RedisUrl::parse("redis://app:hunter2@host:1/4").unwrap();
        assert_eq!(u.to_string(), "redis://app:<redacted>@host:1/4");
        assert!(!format!("{u:?}").contains("hunter2"));
        assert!(format!("{u:?}").contains("<redacted>"));
        let u = RedisUrl::parse("redis://:hunter2@[::1]:1").unwrap();
        assert_eq!(u.to_string(), "redis://:<redacted>@[::1]:1");
    }
}
