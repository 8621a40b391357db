//! `servant --help`: kept with the daemon it describes, so that `bins/servant.rs` only
//! parses flags and calls [`super::run`]. `tests/docs.rs` holds it against the README
//! and the guides.

/// What `servant --help` prints.
pub const HELP: &str = "\
servant - a p2pchat peer

Asks the connection manager for the peer list (at start, then every poll interval,
and takes the lists it pushes), listens on the port the manager assigns, and sends
each line typed on stdin to every peer, itself included. What peers send is printed
on stdout, one message per line; logs go to stderr. On a terminal it is a chat
window instead: a prompt kept below the transcript, joins, leaves and warnings shown
as dim lines, and routine log lines only when --log-level asks for them.

USAGE:
    servant [OPTIONS]
    servant keygen FILE    write a new private key to FILE (mode 0600, never over an
                           existing file) and print its public key
    servant pubkey FILE    print the public key of the private key in FILE

OPTIONS:
    --config FILE          the article's config.xml (see conf/config.xml)
                           [default: ./config.xml; if it is missing, the article's
                           defaults: manager 127.0.0.1:85, no bans]
    --connmgr HOST[:PORT]  the connection manager (address, or host name looked up in
                           /etc/hosts, then DNS); overrides <connectionmgr>. Given more
                           than once (or several <connectionmgr>): used in order, the
                           next when the one in use is lost, closed or silent
    --port N               the connection manager's port; overrides both (and is the
                           port of a further manager that names none) [default: 85]
    --bind ADDR            local address for the listener and all outgoing connections,
                           so servants on one host can stand for 127.0.0.2, 127.0.0.3, ...
                           [default: listen on every interface, :: or 0.0.0.0]
    --name NAME            prefix outgoing lines with `NAME: ` and be listed by that
                           name (at most 32 characters); overrides <name>
    --poll-interval TIME   ask for the peer list this often, at least 100ms: 2s, 500ms,
                           1m; a bare number is milliseconds [default: 2s]
    --max-peers N          refuse a peer list longer than this, keeping the last good
                           one; each entry costs a connection per line [default: 10000]
    --ban TARGET           refuse connections from this IP address or host name, as
                           a <ban> in config.xml; may be given more than once
    --headless             do not read stdin; run until SIGINT or SIGTERM
    --key FILE             this servant's private key (from `servant keygen`): with
                           --manager-key, join a private network (docs/PRIVATE.md);
                           overrides <key>
    --manager-key BASE64   the private network's manager's public key (`connmgr
                           pubkey`); overrides <managerkey>
    --rekey-after TIME     on a private network, every link renews its sending key this
                           often, and a link to a peer this old is replaced by a new
                           handshake at its next line; a bare number is seconds, at
                           least 1s [default: 2m]
    --log-level LEVEL      off, error, warn, info, debug or trace, or env_logger's list
                           such as info,p2pchat::servant=debug
                           [default: $RUST_LOG, else config.xml's <loglevel>, else info;
                           on a terminal, only warnings and errors are shown unless asked]
    --log-file PATH        append log lines to PATH instead of stderr
    --timestamps           HH:MM (local time) before each transcript line, in a pipe too
    --no-timestamps        no time stamps, on a terminal either; overrides <timestamps>
                           [default: on a terminal, off in a pipe]
    -h, --help             print this help
    -V, --version          print the version

INPUT:
    A line is chat. /peers (or /names) prints the user list (* marks this servant;
    name, address, port, how long here), /who the names and how long each has been
    here, /msg NAME TEXT a line for NAME only (direct, not secret), /help the
    commands, /me ACTION an action, /nick NAME a new name, /clear clears the
    screen, /quit leaves. //text sends /text. An unknown /command is an error, not
    chat.
    On a terminal there is a `> ` prompt with line editing (arrows, Home, End,
    Ctrl-A/E/K/U/W/Y/L, Up and Down and Ctrl-R through the history, kept between
    runs), Tab completing names, Page Up/Down scrolling and a status line; Ctrl-D leaves.
    From a pipe or file, end of input leaves once every line has been delivered
    (at most 5 s later). Lines typed before the first peer list are held and
    sent when it arrives. With stdin at /dev/null, or --headless, it runs until
    SIGINT or SIGTERM.

Flags take `--flag VALUE` or `--flag=VALUE`, each once (but --ban and --connmgr).

When it listens it logs `listening on ADDR:PORT` (at every level but off), and
`peers: N (...)` whenever the list changes. If the manager goes away it keeps
chatting with the peers it knows and reconnects with backoff (0.1 s doubling to 5 s);
with several managers it moves to the next after 0-500 ms, and leaves one that
leaves a request unanswered for a poll interval plus 1 s.
Under systemd (Type=notify) it sends READY=1 once started. SIGHUP reads config.xml
again and applies bans, name, poll interval and log level (a bad file changes
nothing); the manager's address and --bind need a restart.

EXIT STATUS: 0 after leaving cleanly, 1 if it could not start, 2 for bad options or config.
";
