//! A private link's responder ([`p2pchat::noise::Link`]) fed arbitrary bytes, in
//! pieces, admitting whatever key it is shown: it must never panic, and without an
//! initiator's private key nothing must ever authenticate or decrypt. The seeds
//! include a recorded opening (a replay): it is answered, but goes no further.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use p2pchat::noise::{Keypair, Link, Step};

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    // The key the seeds' recorded opening was made for.
    let mut link = Link::responder(Rc::new(Keypair::from_private([2; 32])));
    let (mut plain, mut wire) = (Vec::new(), Vec::new());
    for piece in stream.chunks(usize::from(split) + 1) {
        match link.receive(piece, &mut plain, &mut wire) {
            Ok(Step::Admit(_)) => {
                if link.admit(&mut wire).is_err() {
                    return;
                }
            }
            Ok(Step::More) => {}
            Ok(Step::Up) => panic!("authenticated without the initiator's key"),
            Err(_) => {
                assert_eq!(link.phase(), "closing");
                assert!(link.receive(b"x", &mut plain, &mut wire).is_err());
                break;
            }
        }
        assert!(plain.is_empty(), "plaintext from nobody");
        assert!(link.peer_key().is_none());
    }
});
