//! What the system says about names: `/etc/hosts` and `/etc/resolv.conf`, read
//! as glibc reads them, so a name resolves here as it does for `getent hosts`
//! on a host whose `nsswitch.conf` says `hosts: files dns` (the usual line).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::net::canonical_ip;

/// `/etc/hosts`: addresses by name, in file order.
#[derive(Debug, Default, Clone)]
pub struct Hosts {
    entries: Vec<(String, IpAddr)>,
}

impl Hosts {
    /// Lines of `ADDRESS NAME [ALIAS...]`, `#` to the end of a line a comment.
    /// A line whose address does not parse (a scoped `fe80::1%eth0`, say) is
    /// skipped, as glibc skips it.
    pub fn parse(text: &str) -> Hosts {
        let mut entries = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
                continue;
            };
            entries.extend(fields.map(|name| (lower(name), ip)));
        }
        Hosts { entries }
    }

    /// Every address listed for `name` (any case, a trailing dot ignored), each once.
    pub fn lookup(&self, name: &str) -> Vec<IpAddr> {
        let name = lower(name);
        let mut found = Vec::new();
        for (n, ip) in &self.entries {
            if *n == name && !found.contains(ip) {
                found.push(*ip);
            }
        }
        found
    }
}

fn lower(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// glibc's limits on `/etc/resolv.conf`: three servers, `ndots` up to 15,
/// `timeout` up to 30 s, `attempts` up to 5.
const MAX_SERVERS: usize = 3;
const MAX_NDOTS: usize = 15;
const MAX_TIMEOUT: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;

/// `/etc/resolv.conf`: where to ask, and how names are completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// At most three, port 53; with none listed, the local host (glibc's default).
    pub nameservers: Vec<SocketAddr>,
    /// Domains tried after (or before, see `ndots`) the name itself.
    pub search: Vec<String>,
    /// A name with fewer dots than this is tried with the search domains first.
    pub ndots: usize,
    /// How long one question to one server waits.
    pub timeout: Duration,
    /// Rounds over all the servers before giving up.
    pub attempts: u32,
}

impl Default for ResolvConf {
    fn default() -> Self {
        ResolvConf {
            nameservers: vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

impl ResolvConf {
    /// `nameserver`, `domain`, `search` (the last of `domain`/`search` wins) and
    /// `options ndots:N timeout:N attempts:N`; anything else is ignored, as glibc
    /// ignores it. The host name's own domain is not used as a default search
    /// domain (glibc does that): list it in `search` if it matters.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut fields = line.split_ascii_whitespace();
            match fields.next() {
                Some("nameserver") => {
                    // As replies' senders are compared: ::ffff:a.b.c.d is a.b.c.d,
                    // and a link-local server keeps its zone (fe80::1%eth0).
                    let server = fields.next().and_then(|a| match a.parse::<IpAddr>() {
                        Ok(ip) => Some(SocketAddr::new(canonical_ip(ip), 53)),
                        Err(_) => super::scoped_literal(a, 53),
                    });
                    if let Some(server) = server.filter(|_| conf.nameservers.len() < MAX_SERVERS) {
                        conf.nameservers.push(server);
                    }
                }
                Some("domain" | "search") => {
                    conf.search = fields.map(lower).filter(|d| !d.is_empty()).collect();
                }
                Some("options") => fields.for_each(|o| conf.option(o)),
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf
    }

    fn option(&mut self, option: &str) {
        let Some((key, value)) = option.split_once(':') else {
            return;
        };
        let Ok(n) = value.parse::<u64>() else {
            return;
        };
        match key {
            "ndots" => self.ndots = n.min(MAX_NDOTS as u64) as usize,
            "timeout" => self.timeout = Duration::from_secs(n.clamp(1, MAX_TIMEOUT)),
            "attempts" => self.attempts = n.clamp(1, u64::from(MAX_ATTEMPTS)) as u32,
            _ => {}
        }
    }

    /// The names to ask the servers for `name`, in order: a name ending in a dot
    /// only as it is; one with at least `ndots` dots as it is, then with each
    /// search domain; one with fewer, with each search domain first.
    pub fn candidates(&self, name: &str) -> Vec<String> {
        if let Some(absolute) = name.strip_suffix('.') {
            return vec![absolute.to_ascii_lowercase()];
        }
        let name = name.to_ascii_lowercase();
        let searched = self.search.iter().map(|d| format!("{name}.{d}"));
        if name.matches('.').count() >= self.ndots {
            std::iter::once(name.clone()).chain(searched).collect()
        } else {
            searched.chain(std::iter::once(name.clone())).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_lists_every_address_of_a_name_and_alias_in_any_case() {
        let hosts = Hosts::parse(
            "# a comment\n\
             127.0.0.1\tlocalhost\n\
             192.0.2.10  manager.example.  manager # the manager\n\
             fe80::1%eth0 scoped\n\
             2001:db8::10 Manager.Example\n\
             192.0.2.10 manager\n\
             not-an-address name\n",
        );
        assert_eq!(
            hosts.lookup("MANAGER.example"),
            [ip("192.0.2.10"), ip("2001:db8::10")]
        );
        assert_eq!(hosts.lookup("manager"), [ip("192.0.2.10")]);
        assert_eq!(
            hosts.lookup("manager.example."),
            hosts.lookup("manager.example")
        );
        assert!(hosts.lookup("scoped").is_empty());
        assert!(hosts.lookup("name").is_empty());
        assert!(hosts.lookup("the").is_empty(), "comments are not names");
    }

    #[test]
    fn resolv_conf_reads_servers_search_and_options_within_glibc_limits() {
        let conf = ResolvConf::parse(
            "; generated\n\
             domain old.example\n\
             search Corp.Example lab.example\n\
             nameserver 192.0.2.53\n\
             nameserver 2001:db8::53 # v6\n\
             nameserver bogus\n\
             nameserver fe80::53%no-such-interface\n\
             nameserver ::ffff:198.51.100.53\n\
             nameserver 203.0.113.53\n\
             options ndots:2 timeout:99 attempts:0 rotate\n",
        );
        assert_eq!(
            conf.nameservers,
            [
                "192.0.2.53:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "198.51.100.53:53".parse().unwrap(), // as replies come from it
            ]
        );
        assert_eq!(conf.search, ["corp.example", "lab.example"]);
        assert_eq!(conf.ndots, 2);
        assert_eq!(conf.timeout, Duration::from_secs(30));
        assert_eq!(conf.attempts, 1);
    }

    #[test]
    fn a_link_local_nameserver_keeps_its_zone() {
        let conf = ResolvConf::parse("nameserver fe80::53%lo\n");
        let [SocketAddr::V6(server)] = conf.nameservers[..] else {
            panic!("{:?}", conf.nameservers)
        };
        assert!(server.scope_id() > 0 && server.port() == 53, "{server}");
    }

    #[test]
    fn an_empty_resolv_conf_asks_the_local_host() {
        assert_eq!(ResolvConf::parse(""), ResolvConf::default());
        assert_eq!(
            ResolvConf::default().nameservers,
            ["127.0.0.1:53".parse().unwrap()]
        );
    }

    #[test]
    fn candidates_follow_ndots_and_the_search_list() {
        let conf = ResolvConf::parse("search a.example b.example\noptions ndots:1");
        assert_eq!(
            conf.candidates("Host"),
            ["host.a.example", "host.b.example", "host"]
        );
        assert_eq!(
            conf.candidates("host.sub"),
            ["host.sub", "host.sub.a.example", "host.sub.b.example"]
        );
        assert_eq!(conf.candidates("host.sub."), ["host.sub"]);
        assert_eq!(ResolvConf::default().candidates("host"), ["host"]);
    }
}
