//! `connmgr keygen FILE` / `pubkey FILE` and the servant's: the key files of the
//! private network, made and read by the real binaries.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `bin args...` to its exit within the tests' deadline; status, stdout, stderr.
fn run(bin: &str, args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(common::bin(bin))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > common::DEADLINE {
            let _ = child.kill();
            panic!("{bin} {args:?} did not exit within {:?}", common::DEADLINE);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

/// A fresh directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("p2pchat-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn keygen_writes_a_private_key_0600_and_pubkey_prints_its_public_key() {
    let dir = scratch("keygen");
    for bin in ["connmgr", "servant"] {
        let file = dir.join(format!("{bin}.key"));
        let path = file.to_str().unwrap();
        let (status, public, err) = run(bin, &["keygen", path]);
        assert_eq!(status, 0, "{err}");
        let public = public.trim_end_matches('\n');
        assert_eq!(public.len(), 44, "{public:?}");
        assert!(
            public.ends_with('=') && !public.contains('\n'),
            "{public:?}"
        );
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        let private = fs::read_to_string(&file).unwrap();
        assert_eq!(private.len(), 45, "one line of base64: {}", private.len());
        assert_ne!(private.trim_end(), public, "the file holds the private key");
        let (status, again, err) = run(bin, &["pubkey", path]);
        assert_eq!((status, again.trim_end()), (0, public), "{err}");
        // Either binary reads either's key.
        let other = if bin == "connmgr" {
            "servant"
        } else {
            "connmgr"
        };
        assert_eq!(run(other, &["pubkey", path]).1.trim_end(), public);
    }
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn keygen_refuses_an_existing_file_and_leaves_it_untouched() {
    let dir = scratch("keygen-exists");
    let file = dir.join("taken");
    fs::write(&file, "precious\n").unwrap();
    let (status, out, err) = run("connmgr", &["keygen", file.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(fs::read_to_string(&file).unwrap(), "precious\n");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_key_file_others_can_read_is_refused_with_the_chmod_that_fixes_it() {
    let dir = scratch("keyperm");
    let file = dir.join("open.key");
    let path = file.to_str().unwrap();
    assert_eq!(run("servant", &["keygen", path]).0, 0);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let (status, out, err) = run("servant", &["pubkey", path]);
    assert_eq!(status, 1);
    assert!(out.is_empty());
    assert!(err.contains(&format!("chmod 600 {path}")), "{err}");
    assert!(err.contains("0644"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}

#[test]
fn a_malformed_key_file_is_named_with_its_line() {
    let dir = scratch("keybad");
    let file = dir.join("bad.key");
    fs::write(&file, "not a key\n").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let path = file.to_str().unwrap();
    let (status, _, err) = run("connmgr", &["pubkey", path]);
    assert_eq!(status, 1);
    assert!(err.contains(&format!("{path}:1: ")), "{err}");
    let (status, _, err) = run("connmgr", &["keygen"]);
    assert_eq!(status, 2);
    assert!(err.contains("usage: connmgr keygen FILE"), "{err}");
    let _ = fs::remove_dir_all(&dir);
}
