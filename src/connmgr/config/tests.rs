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
fn relay_settings_come_from_the_file_and_flags_and_are_checked() {
    let path =
        std::env::temp_dir().join(format!("p2pchat-connmgr-relay-{}.xml", std::process::id()));
    std::fs::write(
        &path,
        "<connmgr><relaythreshold>3</relaythreshold><relaypullers>1</relaypullers></connmgr>",
    )
    .unwrap();
    let o = Overrides {
        config: Some(path.clone()),
        relay_dial_timeout: Some(Duration::from_millis(250)),
        ..Overrides::default()
    };
    let c = Config::load(&o).unwrap();
    assert_eq!((c.relay.threshold, c.relay.pullers), (3, 1));
    assert_eq!(c.relay.dial_timeout, Duration::from_millis(250));
    assert_eq!(c.relay.share, 50);
    std::fs::write(&path, "<connmgr>\n\n<relayshare>150</relayshare></connmgr>").unwrap();
    let e = Config::load(&Overrides {
        config: Some(path.clone()),
        ..Overrides::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains(":3: the share"), "{e}");
    let _ = std::fs::remove_file(path);
    let o = Overrides {
        relay_window: Some(Duration::ZERO),
        ..Overrides::default()
    };
    assert!(Config::load(&o).unwrap_err().to_string().contains("window"));
}

#[test]
fn durations_take_units_and_every_element_is_read() {
    let path =
        std::env::temp_dir().join(format!("p2pchat-connmgr-units-{}.xml", std::process::id()));
    std::fs::write(&path, "<connmgr><idletimeout>2m</idletimeout><relaywindow>90s</relaywindow><pushinterval>1s</pushinterval>\n<maxline>100</maxline><loglevel>warn,p2pchat::connmgr=debug</loglevel></connmgr>").unwrap();
    let mut o = Overrides {
        config: Some(path.clone()),
        ..Overrides::default()
    };
    let c = Config::load(&o).unwrap();
    assert_eq!(c.idle_timeout, Duration::from_secs(120));
    assert_eq!(c.push_interval, Duration::from_secs(1));
    assert_eq!(c.max_line, 100);
    assert_eq!(c.relay.window, Duration::from_secs(90));
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

#[test]
fn nonsense_values_are_refused_naming_the_flag_or_the_file_and_line() {
    for (flags, place, reason) in [
        (
            Overrides {
                max_servants: Some(0),
                ..Overrides::default()
            },
            "--max-servants",
            "at least 1",
        ),
        (
            Overrides {
                max_per_address: Some(0),
                ..Overrides::default()
            },
            "--max-per-address",
            "at least 1",
        ),
    ] {
        let e = Config::load(&flags).unwrap_err();
        assert_eq!(e.place, place);
        assert!(e.reason.contains(reason), "{e}");
    }
    let path = Path::new("conf/connmgr.xml");
    for (text, line, reason) in [
        (
            "<connmgr>\n<maxservants>0</maxservants></connmgr>",
            2,
            "at least 1",
        ),
        (
            "<connmgr>\n\n<maxperaddress>0</maxperaddress></connmgr>",
            3,
            "at least 1",
        ),
        (
            "<connmgr>\n<maxline>0</maxline></connmgr>",
            2,
            "at least 1 byte",
        ),
        (
            "<connmgr><relaythreshold>1</relaythreshold>\n<relaywindow>0</relaywindow></connmgr>",
            2,
            "window",
        ),
        (
            "<connmgr>\n<maxperaddress>-1</maxperaddress></connmgr>",
            2,
            "whole number",
        ),
    ] {
        let e = Config::from_xml(text, path).unwrap_err();
        assert_eq!(e.place, format!("conf/connmgr.xml:{line}"), "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    let c = Config::from_xml("<connmgr><maxperaddress>3</maxperaddress></connmgr>", path);
    assert_eq!(c.unwrap().max_per_address, 3);
    for (text, reason) in [
        (
            "<connmgr>\n<ipv6prefix>0</ipv6prefix></connmgr>",
            "from 1 to 128",
        ),
        (
            "<connmgr>\n<ipv6prefix>129</ipv6prefix></connmgr>",
            "from 1 to 128",
        ),
        (
            "<connmgr>\n<relayprobemisses>0</relayprobemisses></connmgr>",
            "probed",
        ),
    ] {
        let e = Config::from_xml(text, path).unwrap_err();
        assert_eq!(e.place, "conf/connmgr.xml:2", "{e}");
        assert!(e.reason.contains(reason), "{e}");
    }
    let c = Config::from_xml(
        "<connmgr><ipv6prefix>48</ipv6prefix><relayprobeinterval>250</relayprobeinterval><relayban>1m</relayban></connmgr>",
        path,
    )
    .unwrap();
    assert_eq!(c.ipv6_prefix, 48);
    assert_eq!(c.relay.probe_interval, Duration::from_millis(250));
    assert_eq!(c.relay.ban, Duration::from_secs(60));
}
