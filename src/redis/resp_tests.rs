use super::*;

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

/// Every reply type, each with its one encoding.
fn fixtures() -> Vec<(&'static [u8], Reply)> {
    vec![
        (b"+OK\r\n", Reply::Simple(b"OK".to_vec())),
        (b"+\r\n", Reply::Simple(Vec::new())),
        (
            b"-ERR unknown command\r\n",
            Reply::Error(b"ERR unknown command".to_vec()),
        ),
        (b":0\r\n", Reply::Integer(0)),
        (b":1000\r\n", Reply::Integer(1000)),
        (b":-42\r\n", Reply::Integer(-42)),
        (b":9223372036854775807\r\n", Reply::Integer(i64::MAX)),
        (b":-9223372036854775808\r\n", Reply::Integer(i64::MIN)),
        (b"$3\r\nfoo\r\n", bulk("foo")),
        (b"$0\r\n\r\n", bulk("")),
        (b"$4\r\na\r\nb\r\n", bulk("a\r\nb")),
        (b"$-1\r\n", Reply::Bulk(None)),
        (b"*0\r\n", Reply::Array(Some(Vec::new()))),
        (b"*-1\r\n", Reply::Array(None)),
        (
            b"*3\r\n:1\r\n$3\r\nbar\r\n*2\r\n*0\r\n$-1\r\n",
            Reply::Array(Some(vec![
                Reply::Integer(1),
                bulk("bar"),
                Reply::Array(Some(vec![Reply::Array(Some(vec![])), Reply::Bulk(None)])),
            ])),
        ),
    ]
}

fn read_all(r: &mut Reader) -> Vec<Reply> {
    let mut out = Vec::new();
    while let Some(reply) = r.next() {
        out.push(reply.expect("a valid reply"));
    }
    out
}

#[test]
fn every_type_reads_and_reencodes_to_its_bytes() {
    for (bytes, want) in fixtures() {
        let mut r = Reader::default();
        r.feed(bytes);
        assert_eq!(read_all(&mut r), vec![want.clone()], "{bytes:?}");
        assert_eq!(r.buffered(), 0);
        let mut out = Vec::new();
        want.encode(&mut out);
        assert_eq!(out, bytes);
    }
}

#[test]
fn a_pipeline_split_at_every_byte_boundary_reads_the_same() {
    let all: Vec<u8> = fixtures().iter().flat_map(|f| f.0.to_vec()).collect();
    let want: Vec<Reply> = fixtures().into_iter().map(|f| f.1).collect();
    for cut in 0..=all.len() {
        let mut r = Reader::default();
        r.feed(&all[..cut]);
        let mut got = read_all(&mut r);
        r.feed(&all[cut..]);
        got.extend(read_all(&mut r));
        assert_eq!(got, want, "cut at {cut}");
    }
    // And one byte at a time.
    let mut r = Reader::default();
    let mut got = Vec::new();
    for b in &all {
        r.feed(std::slice::from_ref(b));
        got.extend(read_all(&mut r));
    }
    assert_eq!(got, want);
}

#[test]
fn the_command_writer_makes_arrays_of_bulk_strings() {
    let mut out = Vec::new();
    write_command(&mut out, &["SET", "key", "a b"]);
    assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\na b\r\n");
    out.clear();
    let empty: [&[u8]; 2] = [b"GET", b""];
    write_command(&mut out, &empty);
    assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    assert_eq!(Int::new(i64::MIN).as_bytes(), b"-9223372036854775808");
    assert_eq!(Int::new(0).as_bytes(), b"0");
}

fn first_error(bytes: &[u8], limits: Limits) -> RespError {
    let mut r = Reader::new(limits);
    r.feed(bytes);
    loop {
        match r.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                // The reader stays stopped at its first error.
                assert_eq!(r.next(), Some(Err(e.clone())));
                return e;
            }
            None => panic!("no error in {bytes:?}"),
        }
    }
}

#[test]
fn each_error_names_what_was_wrong() {
    let d = Limits::default();
    let small = Limits {
        max_bulk: 4,
        max_array: 2,
        max_depth: 2,
        max_line: 8,
    };
    let cases: Vec<(&[u8], Limits, &str)> = vec![
        (
            b"\x01",
            d,
            "Protocol error, got \"\\x01\" as reply type byte",
        ),
        (b":12a\r\n", d, "Protocol error, got \"a\" in an integer"),
        (b": 1\r\n", d, "Protocol error, got \" \" in an integer"),
        (
            b":01\r\n",
            d,
            "Protocol error, an integer is empty or has a leading zero",
        ),
        (
            b":-0\r\n",
            d,
            "Protocol error, an integer is empty or has a leading zero",
        ),
        (
            b":\r\n",
            d,
            "Protocol error, an integer is empty or has a leading zero",
        ),
        (
            b":9223372036854775808\r\n",
            d,
            "Protocol error, an integer overflows 64 bits",
        ),
        (b"$-2\r\n", d, "Protocol error, a bulk length of -2"),
        (
            b"$5\r\nhello\r\n",
            small,
            "Protocol error, a bulk string of 5 is over the cap of 4",
        ),
        (
            b"*3\r\n",
            small,
            "Protocol error, an array of 3 is over the cap of 2",
        ),
        (
            b"*1\r\n*1\r\n*1\r\n:1\r\n",
            small,
            "Protocol error, arrays nested deeper than 2",
        ),
        (
            b"*1\r\n*1\r\n*0\r\n",
            small,
            "Protocol error, arrays nested deeper than 2",
        ),
        (
            b"+123456789",
            small,
            "Protocol error, a line longer than 8 bytes",
        ),
        (b"+a\nb\r\n", d, "Protocol error, got \"\\n\" inside a line"),
        (b"+a\rb\r\n", d, "Protocol error, got \"b\" inside a line"),
        (
            b"$2\r\nabc\r\n",
            d,
            "Protocol error, got \"c\" where a bulk string ends",
        ),
        (
            b"$2\r\nab\rx",
            d,
            "Protocol error, got \"x\" where a bulk string ends",
        ),
    ];
    for (bytes, limits, want) in cases {
        assert_eq!(first_error(bytes, limits).to_string(), want, "{bytes:?}");
    }
}

#[test]
fn a_claimed_length_allocates_nothing_before_its_bytes() {
    let mut r = Reader::default();
    r.feed(b"*1048576\r\n$16777216\r\nab");
    assert_eq!(r.next(), None);
    // Only the bytes fed are held, and the array has room for a few elements.
    assert!(r.buf.capacity() < 4096, "{}", r.buf.capacity());
    assert!(r.stack[0].items.capacity() <= 16);
}

#[test]
fn the_protocol_maximum_bounds_a_configured_cap() {
    let r = Reader::new(Limits {
        max_bulk: usize::MAX,
        ..Limits::default()
    });
    assert_eq!(r.limits().max_bulk, PROTOCOL_MAX_BULK);
}

#[test]
fn a_line_split_inside_its_crlf_waits_for_the_lf() {
    let mut r = Reader::default();
    r.feed(b"+OK\r");
    assert_eq!(r.next(), None);
    r.feed(b"\n");
    assert_eq!(r.next(), Some(Ok(Reply::Simple(b"OK".to_vec()))));
}
