use super::*;

fn temp(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("p2pchat-servant-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn with_file(path: &Path) -> Overrides {
    Overrides {
        config: Some(path.to_path_buf()),
        ..Overrides::default()
    }
}

#[test]
fn reads_the_articles_shape() {
    let p = temp(
        "article.xml",
        "<config>\n  <connectionmgr>chat.example.org</connectionmgr>\n  <port>8585</port>\n  <bans>\n    <ban><target>1.1.1.1</target></ban>\n    <ban><target>fooUser234.fooISP23423.com</target></ban>\n  </bans>\n</config>\n",
    );
    let c = Config::load(&with_file(&p)).unwrap();
    assert_eq!(
        (c.connmgr_host.as_str(), c.connmgr_port),
        ("chat.example.org", 8585)
    );
    assert_eq!(c.bans, ["1.1.1.1", "fooUser234.fooISP23423.com"]);
    assert_eq!(c.poll_interval, Duration::from_secs(2));
    let _ = std::fs::remove_file(p);
}

#[test]
fn flags_beat_the_file() {
    let p = temp(
        "flags.xml",
        "<config><connectionmgr>10.0.0.1:99</connectionmgr><name>file</name><pollinterval>500</pollinterval></config>",
    );
    let mut o = with_file(&p);
    let c = Config::load(&o).unwrap();
    assert_eq!((c.connmgr_host.as_str(), c.connmgr_port), ("10.0.0.1", 99));
    assert_eq!(c.name.as_deref(), Some("file"));
    assert_eq!(c.poll_interval, Duration::from_millis(500));
    o.connmgr = vec!["localhost:7000".into()];
    o.port = Some(7001);
    o.name = Some("flag".into());
    o.poll_interval = Some(Duration::from_millis(200));
    o.bans = vec!["10.9.9.9".into()];
    let c = Config::load(&o).unwrap();
    assert_eq!(
        (c.connmgr_host.as_str(), c.connmgr_port),
        ("localhost", 7001)
    );
    assert_eq!(c.name.as_deref(), Some("flag"));
    assert_eq!(c.poll_interval, Duration::from_millis(200));
    assert_eq!(c.bans, ["10.9.9.9"]);
    assert_eq!(c.overrides, o);
    let _ = std::fs::remove_file(p);
}

#[test]
fn poll_intervals_take_units_and_the_log_level_is_read() {
    let p = temp(
        "units.xml",
        "<config><pollinterval>1.5s</pollinterval><loglevel>p2pchat=debug</loglevel></config>",
    );
    let c = Config::load(&with_file(&p)).unwrap();
    assert_eq!(c.poll_interval, Duration::from_millis(1500));
    assert_eq!(c.log_level, Some(Filter::parse("p2pchat=debug").unwrap()));
    let _ = std::fs::remove_file(p);
}

#[test]
fn bad_files_name_the_line_and_reason() {
    let cases = [
        (
            "<config>\n<bans>\n<ban></ban></bans></config>",
            ":3",
            "needs a <target>",
        ),
        (
            "<config>\n<bans><block/></bans></config>",
            ":2",
            "unknown element <block>",
        ),
        (
            "<config>\n\n<port>http</port></config>",
            ":3",
            "a port number",
        ),
        (
            "<config>\n<colour/></config>",
            ":2",
            "unknown element <colour>",
        ),
        (
            "<config>\n<connectionmgr>host:0</connectionmgr></config>",
            ":2",
            "bad port",
        ),
        (
            "<config>\n<pollinterval>0</pollinterval></config>",
            ":2",
            "at least 100",
        ),
        (
            "<config>\n\n<pollinterval>99</pollinterval></config>",
            ":3",
            "at least 100",
        ),
        ("<config>\n<port>0</port></config>", ":2", "not 0"),
        (
            "<config>\n<maxpeers>0</maxpeers></config>",
            ":2",
            "at least 1",
        ),
        ("<config>\n<bans>\n", ":", ""),
    ];
    for (i, (text, line, reason)) in cases.iter().enumerate() {
        let p = temp(&format!("bad{i}.xml"), text);
        let e = Config::load(&with_file(&p)).unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("{}{line}", p.display())),
            "{shown}"
        );
        assert!(shown.contains(reason), "{shown}");
        let _ = std::fs::remove_file(p);
    }
}

#[test]
fn an_explicit_missing_file_is_an_error() {
    let o = with_file(Path::new("/nonexistent/p2pchat/config.xml"));
    assert!(Config::load(&o)
        .unwrap_err()
        .reason
        .contains("cannot read it"));
}

#[test]
fn host_port_forms() {
    let ok = |s: &str| split_host_port(s).unwrap();
    assert_eq!(ok("localhost"), ("localhost".into(), None));
    assert_eq!(ok("127.0.0.1:85"), ("127.0.0.1".into(), Some(85)));
    assert_eq!(ok("::1"), ("::1".into(), None));
    assert_eq!(ok("[::1]:8585"), ("::1".into(), Some(8585)));
    assert!(split_host_port("host:http").is_err());
    assert!(split_host_port(":85").is_err());
    assert!(split_host_port("").is_err());
}

#[test]
fn several_managers_in_order_from_the_file_or_the_flags() {
    let p = temp(
        "several.xml",
        "<config>\n<connectionmgr>10.0.0.1</connectionmgr>\n<connectionmgr>10.0.0.2:99</connectionmgr>\n<connectionmgr>b.example</connectionmgr>\n<port>86</port>\n</config>",
    );
    let c = Config::load(&with_file(&p)).unwrap();
    assert_eq!((c.connmgr_host.as_str(), c.connmgr_port), ("10.0.0.1", 86));
    let more = [
        ("10.0.0.2".to_string(), Some(99)),
        ("b.example".into(), None),
    ];
    assert_eq!(c.more_connmgrs, more);
    let mut o = with_file(&p);
    o.connmgr = vec!["a:1".into(), "[::1]:2".into()];
    let c = Config::load(&o).unwrap();
    assert_eq!((c.connmgr_host.as_str(), c.connmgr_port), ("a", 1));
    assert_eq!(c.more_connmgrs, [("::1".to_string(), Some(2))]);
    assert!(c
        .restart_needed(&Config::load(&with_file(&p)).unwrap())
        .contains(&"connection manager"));
    let p = temp(
        "bad-second.xml",
        "<config>\n<connectionmgr>a</connectionmgr>\n<connectionmgr>b:0</connectionmgr>\n</config>",
    );
    let e = Config::load(&with_file(&p)).unwrap_err().to_string();
    assert!(
        e.contains("bad-second.xml:3") && e.contains("<connectionmgr>"),
        "{e}"
    );
    let o = Overrides {
        connmgr: vec!["a".into(), "b:x".into()],
        ..Overrides::default()
    };
    assert!(Config::load(&o)
        .unwrap_err()
        .to_string()
        .contains("--connmgr"));
}
