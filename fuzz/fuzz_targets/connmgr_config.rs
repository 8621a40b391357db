//! The manager's config file ([`p2pchat::connmgr::Config::from_xml`]) from arbitrary
//! text: it never panics, and every refusal names the file and a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("connmgr.xml");
    if let Err(e) = p2pchat::connmgr::Config::from_xml(text, path) {
        let line = e.place.strip_prefix("connmgr.xml:");
        assert!(line.is_some_and(|l| l.parse::<usize>().is_ok()), "{e}");
    }
});
