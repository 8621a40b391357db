//! The servant's config.xml ([`p2pchat::servant::Config::from_xml`]) from arbitrary
//! text: it never panics, every refusal names the file and a line, and what is
//! accepted is usable (a port, a poll interval, bans without blanks).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("config.xml");
    match p2pchat::servant::Config::from_xml(text, path) {
        Ok(c) => {
            assert!(c.connmgr_port != 0);
            assert!(c.poll_interval.as_millis() >= 100);
            assert!(c.max_peers >= 1);
            assert!(c.bans.iter().all(|b| !b.is_empty()));
            let _ = p2pchat::servant::bans::Bans::new(&c.bans);
        }
        Err(e) => {
            let line = e.place.strip_prefix("config.xml:");
            assert!(line.is_some_and(|l| l.parse::<usize>().is_ok()), "{e}");
        }
    }
});
