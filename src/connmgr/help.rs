//! `connmgr --help`: kept with the daemon it describes, so that `bins/connmgr.rs` only
//! parses flags and calls [`super::run`]. `tests/docs.rs` holds it against the README
//! and the guides.

/// What `connmgr --help` prints.
pub const HELP: &str = "\
connmgr - the p2pchat connection manager

Servants connect here; each is given a unique listening port and an entry in the
peer document, which it fetches with the line `needs peer list`. When a servant
disconnects it leaves the document and the others are sent the new list.
A servant that peers cannot reach, and that a dial-back confirms is behind a
port-blocking router, is told to pull from a reachable servant (docs/RELAY.md).

USAGE:
    connmgr [OPTIONS]
    connmgr keygen FILE    write a new private key to FILE (mode 0600, never over an
                           existing file) and print its public key
    connmgr pubkey FILE    print the public key of the private key in FILE

OPTIONS:
    --config FILE          XML settings (see conf/connmgr.xml); flags override it
    --bind ADDR            address to listen on [default: every interface, :: or 0.0.0.0]
    --port N               port to listen on; 0 lets the OS choose [default: 85]
    --first-port N         port given to the first servant, counting up [default: 2224]
    --max-servants N       refuse connections beyond this many [default: 10000]
    --max-per-address N    refuse connections from one address beyond this many, so one
                           host cannot fill --max-servants [default: 64]
    --ipv6-prefix N        count IPv6 servants per /N for --max-per-address (a shared
                           /64, an office or cloud subnet, shares one allowance);
                           IPv4 per address [default: 64]
    --idle-timeout TIME    drop a servant silent this long (no whole request); 0 = never
                           [default: 30s]
    --push-interval TIME   at most one pushed list per servant per TIME; 0 = no pushes
                           [default: 100ms]
    --max-line BYTES       a longer request line closes that connection [default: 4096]
    --relay-threshold N    complaints (`cannot reach`) each peer must make about a servant
                           before it is dialed back; 0 = never relay [default: 2]
    --relay-share PCT      more than PCT percent of the other servants must complain;
                           0 = any one [default: 50, i.e. most]
    --relay-window TIME    complaints older than this are forgotten; a servant must have
                           asked for the list this recently to be judged [default: 60s]
    --relay-recheck TIME   dial relayed servants back this often; release those that
                           answer [default: 60s]
    --relay-dial-timeout TIME  a dial-back not connected by then failed [default: 3s]
    --relay-pullers N      servants one relay pulls for at most [default: 16]
    --relay-probe-interval TIME  probe a chosen relay this often (10x less once a probe
                           came back); 0 = no probes [default: 3s]
    --relay-probe-timeout TIME  a probe its puller has not answered by then is a miss
                           [default: 10s]
    --relay-probe-misses N  misses in a row that drop a relay [default: 4]
    --relay-ban TIME       a dropped relay is chosen for no one this long [default: 10m]
    --key FILE             this manager's private key (from `connmgr keygen`): with
                           --members, run a private network (docs/PRIVATE.md)
    --members FILE         who may join a private network: <members><member><name>
                           and <key> each</members>; SIGHUP reads it again
    --cluster URL          share one network with the other managers on this Redis:
                           redis://[USER:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH
                           (docs/CLUSTER.md) [default: none, this manager alone]
    --cluster-prefix NAME  the cluster's Redis keys start with {NAME}: [default: p2pchat]
    --log-level LEVEL      off, error, warn, info, debug or trace, or env_logger's list
                           such as info,p2pchat::connmgr=debug
                           [default: $RUST_LOG, else the file's <loglevel>, else info]
    -h, --help             print this help
    -V, --version          print the version

TIME is a number and a unit: 30s, 100ms, 2m, 1h. A bare number keeps the unit the
flag always had: seconds for --idle-timeout, --relay-window, --relay-recheck and
--relay-ban, milliseconds for --push-interval, --relay-dial-timeout and the probe
interval and timeout.
Flags take `--flag VALUE` or `--flag=VALUE`, once each.

When ready it logs `listening on ADDR:PORT` to stderr (at every level but off) and,
under systemd (Type=notify), sends READY=1. SIGINT or SIGTERM stop it. SIGHUP reads
--config again and applies max servants, max per address, IPv6 prefix, idle
timeout, push interval, max line, the relay settings and log level; the address and ports need a restart. A bad
file keeps the old settings.
Port 85 needs root or CAP_NET_BIND_SERVICE; try `connmgr --port 8585`.

EXIT STATUS: 0 after a clean shutdown, 1 if it could not start, 2 for bad options or config.
";
