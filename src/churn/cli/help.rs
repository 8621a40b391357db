//! `churn --help`: every mode and flag, the text docs/CHURN.md is checked against.

pub const HELP: &str = "\
churn - a connection-churn load generator for the p2pchat connection manager,
and for any TCP server

Plays many clients at once from one single-threaded event loop (or several,
one per thread, with --workers) and reports throughput, a latency percentile
ladder and errors, second by second and in total (in the manner of
redis-benchmark, wrk2 and memtier). docs/CHURN.md is the benchmarker's guide.

USAGE:
    churn join-leave [OPTIONS]   each client: connect, ask (`needs peer list`, or
                                 --request), read the whole answer, close; again.
                                 Reports cycles/s and cycle latency. With
                                 --keep-alive, asks again on the same connection.
    churn steady [OPTIONS]       --steady N servants stay connected and ask every
                                 --interval; reports their answer latency (and,
                                 with -c, that of churners in this same process,
                                 which delay them: run churners from another churn).
    churn fanout [OPTIONS]       -c servants register and listen on the ports the
                                 manager gives them; a sender sends numbered lines to
                                 every peer, one at a time; reports the time until
                                 the last listener has each line.
    churn flood [OPTIONS]        first fills the manager (servants join from churn's
                                 address until one is refused, and stay), then -c
                                 connections: each connects, sends nothing, reads
                                 the refusal, closes, and connects again at once.
                                 Reports refusals/s and connect-to-refusal time.
    churn compare A.json B.json  two --json summaries side by side, ratios B/A
    churn merge A.json B.json ... [--json]
                                 runs made at once (from several hosts at one
                                 server) as one summary: counts summed, percentiles
                                 from their merged latency histograms
    churn baseline-server [--bind ADDR] [--port N] [--reply-bytes N | --reply STR]
                          [--request-end STR] [--close]
                                 a trivial mio server answering every request (bytes
                                 up to --request-end, default \\n) with the same
                                 bytes from a static buffer: N bytes framed as a
                                 peer document [default: 1000], or STR; --close
                                 hangs up after each reply (the benchmarks' baseline)

TARGET AND PROTOCOL:
    -t, --target HOST[:PORT]  the server [default: 127.0.0.1:85; port 85 if left out]
    --request STR           join-leave: send STR instead of `needs peer list`, to
                            any TCP server; escapes \\r \\n \\t \\0 \\\\ \\xNN
    --expect STR            an answer is whole when the bytes received end with
                            STR; without it, when the server closes
                            (redis: --request 'PING\\r\\n' --expect '+PONG\\r\\n')
    --keep-alive            join-leave: keep each connection and ask again on it
                            (with --request, needs --expect)
    --private               join-leave and fanout: churn makes keys and a members
                            file (in a temporary folder it removes), starts its own
                            private connmgr (the one next to churn) at -t's address
                            [default: 127.0.0.1, a port the OS chooses] and plays
                            members over Noise IK links, each connection with its
                            own member key; fanout's sender is a real private
                            servant. Reports the manager's CPU and the handshakes
                            (docs/PRIVATE.md)

LOAD:
    -c, --concurrency N     clients at once: join-leave and steady churners, kept
                            connections, fanout listeners, flood connections;
                            with --rate, the most in flight
                            [default: 50; steady: 0; fanout: 100; flood: 1000]
    --rate N                join-leave: start N cycles (or requests) per second
                            whatever the answers do, and time each from when it
                            was due: a stalled server shows in every latency it
                            delayed (no coordinated omission). Also shows the
                            service time, from the actual start [default: each
                            client starts again when done]
    --workers N|auto        join-leave: N event loops, each in its own thread,
                            sharing out -c, --rate, -n and the --bind addresses;
                            one summary of them all; auto: one per core
                            [default: 1]
    -n, --count N           stop after N measured cycles (join-leave), steady
                            answers (steady), lines (fanout) or refusals (flood)
    -d, --duration TIME     stop after measuring this long [default: 10s, unless -n]
    --warmup TIME           run this long before measuring [default: 0]
    --interval TIME         steady: time between one servant's requests [default: 1s];
                            fanout: pause between lines [default: 0]
    --steady N              steady: servants that stay connected [default: 100]
    --bind ADDRS            source addresses, used in turn, one per connection: an
                            address, a list or a range, e.g. 127.0.0.2-127.0.0.40,
                            so that ephemeral ports do not run out [default:
                            join-leave against 127.x: 127.200.0.1-127.200.0.254;
                            otherwise chosen by the OS]
    --timeout TIME          per cycle, answer, line or refusal; later counts as an
                            error [default: 5s]
    --verify                parse every whole document; check it names the asker
                            exactly once (costs client CPU)
    --bare                  play the article's servants: ask `needs peer list` and
                            get the whole document every time. By default each
                            connection says the version it has (`needs peer list
                            since N`) and follows the manager's deltas
    --stay TIME             churners stay this long after their answer before they
                            leave (from half to one and a half times it, at
                            random), so each makes a join and a leave that steady
                            servants see; in steady mode their lists are timed
                            until they show each change (give churners their own
                            source addresses with --bind) [default: 0]
    --server-pid PID        report this process's CPU per operation and % of a core
                            (each second too) and its memory, read from /proc
    --sender servant|self   fanout: who sends the lines [default: servant if one is
                            found, else self]
    --servant PATH          the servant binary for --sender servant [default: the
                            `servant` next to this churn]

OUTPUT:
    --json                  the summary as one JSON object on stdout: version,
                            arguments, start time, figures, the first error of each
                            kind, and the series of seconds; the human summary then
                            goes to stderr
    --csv                   the summary as a CSV header and row like
                            redis-benchmark --csv, plus errors, on stdout; the human
                            summary then goes to stderr
    --hdr FILE              write the latencies in HdrHistogram's percentile
                            distribution format (milliseconds), for its plotters
    --svg FILE              draw throughput, p50/p99/max latency and CPU over time
                            as an SVG file a browser opens
    --quiet                 no line per second on stderr (on a terminal, one line
                            is rewritten; otherwise a line per second is kept)
    --log-level LEVEL       off, error, warn, info, debug or trace [default: warn]
    -h, --help              print this help
    -V, --version           print the version

TIME is a number and a unit: 10s, 500ms, 2m. A bare number keeps the flag's old
unit: seconds for -d and --warmup, milliseconds for --interval and --timeout.
Flags take `--flag VALUE` or `--flag=VALUE`, once each.

Every failed operation is counted by kind (connect_refused, connect_failed,
no_source_port, reset, timeout, closed_early, malformed, refused_full,
refused_per_address, ...) and shown with its
first message, server bytes escaped as --expect takes them. SIGINT stops the run
and prints what was measured. Raise the manager's --max-servants for big runs,
and run it with --push-interval 0 when pushes would be mistaken for answers.

EXIT STATUS: 0 when every operation succeeded, 3 when some failed (see the
summary), 1 if the run could not be done, 2 for bad options.
";
