//! `connmgr keygen FILE`, `connmgr pubkey FILE` (and the servant's): the key
//! subcommands, the same for both daemons, dispatched before any flag is parsed.

use std::path::Path;

/// Runs `NAME keygen FILE` or `NAME pubkey FILE` if the arguments are one of them,
/// and returns the exit status; `None` for anything else (the daemon runs).
pub fn subcommand(name: &str) -> Option<u8> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, rest) = args.split_first()?;
    if verb != "keygen" && verb != "pubkey" {
        return None;
    }
    let [file] = rest else {
        eprintln!("{name}: usage: {name} {verb} FILE");
        return Some(2);
    };
    let result = if verb == "keygen" {
        keygen(Path::new(file))
    } else {
        pubkey(Path::new(file))
    };
    Some(match result {
        Ok(public) => {
            println!("{public}");
            0
        }
        Err(e) => {
            eprintln!("{name}: {e}");
            1
        }
    })
}

/// Writes a new private key to `path` (mode 0600, never over an existing file);
/// returns its public key.
pub fn keygen(path: &Path) -> Result<super::PublicKey, String> {
    let pair = super::Keypair::generate()?;
    pair.save_new(path)?;
    Ok(*pair.public())
}

/// The public key of the key file `path`.
pub fn pubkey(path: &Path) -> Result<super::PublicKey, String> {
    super::Keypair::load(path).map(|pair| *pair.public())
}
