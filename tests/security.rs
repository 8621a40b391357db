//! docs/SECURITY.md points each claim at the test that tries the attack. A claim
//! whose test was renamed or removed would point at nothing and still read as
//! tested: every `file::name` or `file::module::name` it cites must be a test.

use std::path::Path;

/// Every backticked `a::b` or `a::b::c` in `text` whose first part is a test file
/// and whose last is not a module, as (citation, file, test name).
fn citations(text: &str, tests: &Path) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    for quoted in text.split('`').skip(1).step_by(2) {
        let parts: Vec<&str> = quoted.split("::").collect();
        let ident = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if parts.len() < 2 || parts.len() > 3 || !parts.iter().all(ident) {
            continue;
        }
        if !tests.join(format!("{}.rs", parts[0])).is_file() {
            continue;
        }
        // `relay::marked` names a module of tests, not a test.
        if parts.len() == 2
            && tests
                .join(parts[0])
                .join(format!("{}.rs", parts[1]))
                .is_file()
        {
            continue;
        }
        let file = match parts.len() {
            2 => format!("{}.rs", parts[0]),
            _ => format!("{}/{}.rs", parts[0], parts[1]),
        };
        found.push((quoted.to_string(), file, parts[parts.len() - 1].to_string()));
    }
    found
}

#[test]
fn every_test_security_md_cites_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = root.join("tests");
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();
    let cited = citations(&doc, &tests);
    assert!(cited.len() >= 30, "only {} citations found", cited.len());
    let missing: Vec<&String> = (cited.iter())
        .filter(|(_, file, name)| {
            let source = std::fs::read_to_string(tests.join(file)).unwrap_or_default();
            let at = source.find(&format!("fn {name}() {{"));
            // The function must be a test: `#[test]` within its attributes above.
            !at.is_some_and(|at| {
                source[..at]
                    .rsplit("\n\n")
                    .next()
                    .is_some_and(|a| a.contains("#[test]"))
            })
        })
        .map(|(c, _, _)| c)
        .collect();
    assert!(
        missing.is_empty(),
        "SECURITY.md cites tests that do not exist: {missing:?}"
    );
}
