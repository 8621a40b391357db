//! Where `snow` gets its primitives: its own pure-Rust Curve25519, ChaChaPoly and
//! BLAKE2s, and random numbers straight from the kernel's `getrandom` system call.
//!
//! Why not snow's `use-getrandom`: the `getrandom` crate looks its symbol up with
//! `dlsym`, which a fully static binary (`cargo build-static`) cannot do. The
//! system call needs nothing but the kernel (Linux 3.17 and later).

use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

/// snow's default primitives with the kernel's random numbers.
pub struct Resolver;

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(KernelRandom))
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }

    // Only BLAKE2s: every pattern the project speaks names it, and asking snow for
    // that one constant lets the optimiser drop BLAKE2b, which the `use-blake2`
    // feature builds too (about 9 KB of each static binary).
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => DefaultResolver.resolve_hash(&HashChoice::Blake2s),
            _ => None,
        }
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// The kernel's CSPRNG, through `getrandom(2)`.
struct KernelRandom;

impl Random for KernelRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        fill_random(dest).map_err(|_| snow::Error::Rng)
    }
}

/// Fills `dest` from `getrandom(2)`, which blocks only before the kernel's pool is
/// first seeded at boot, never after.
pub(super) fn fill_random(dest: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < dest.len() {
        let rest = &mut dest[filled..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(())
}
