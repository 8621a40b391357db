//! `p2pchat-demo --private`: the demo's conversation on a private network. The
//! demo makes a key for the manager and one for each servant with the daemons'
//! own `keygen` (mode 0600, in a temporary folder of mode 0700), writes the
//! members file naming the three keys, starts the manager with `--key` and
//! `--members` and each servant with `--key` and `--manager-key`, and removes
//! the folder when it ends, whether the conversation went through or not.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::{converse, program, start, Program, STEP, WHO};

/// The temporary folder, removed on drop.
struct Folder(PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `program keygen FILE` and returns the public key it prints.
fn keygen(program: &Program, file: &Path) -> Result<String, String> {
    let mut p = start("keygen", program, &["keygen", &file.to_string_lossy()])?;
    let public = p.stdout_line(STEP).map_err(|e| e.to_string())?;
    super::exited(&mut p)?;
    Ok(public.trim().to_string())
}

/// Runs the private demo, printing what happens on stdout.
pub fn run() -> Result<(), String> {
    let err = |e: std::io::Error| e.to_string();
    let dir = Folder(std::env::temp_dir().join(format!("p2pchat-demo-{}", std::process::id())));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir.0)
        .map_err(|e| format!("cannot create {}: {e}", dir.0.display()))?;
    println!("Making keys in {} ...", dir.0.display());
    let (connmgr, servant) = (program("connmgr")?, program("servant")?);
    let manager_key = keygen(&connmgr, &dir.0.join("connmgr.key"))?;
    println!("  connmgr's public key: {manager_key}");
    let mut members = String::from("<members>\n");
    for (name, _) in WHO {
        let key = keygen(&servant, &dir.0.join(format!("{name}.key")))?;
        println!("  {name}'s public key: {key}");
        members += &format!("  <member><name>{name}</name><key>{key}</key></member>\n");
    }
    members += "</members>\n";
    let members_file = dir.0.join("members.xml");
    std::fs::write(&members_file, members)
        .map_err(|e| format!("cannot write {}: {e}", members_file.display()))?;
    println!("  members.xml names alice, bob and carol by their keys");

    println!("Starting a private connection manager on 127.0.0.1 ...");
    let key = dir.0.join("connmgr.key");
    let mut manager = start(
        "connmgr",
        &connmgr,
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--key",
            &key.to_string_lossy(),
            "--members",
            &members_file.to_string_lossy(),
        ],
    )?;
    let addr = manager.listening_addr(STEP).map_err(err)?.to_string();
    println!("  manager listening on {addr}");

    let mut servants = Vec::new();
    for (name, ip) in WHO {
        println!("Starting private servant {name} on {ip} ...");
        let key = dir.0.join(format!("{name}.key"));
        let args = [
            "--connmgr",
            &addr,
            "--bind",
            ip,
            "--poll-interval",
            "500",
            "--key",
            &key.to_string_lossy(),
            "--manager-key",
            &manager_key,
        ];
        servants.push(start(name, &servant, &args)?);
    }
    converse(&mut servants, &mut manager)
}
