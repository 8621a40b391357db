//! A member's public key on the wire: the `<key>` element a private network's
//! manager carries in each `<peer>` entry, after `<me>`, `<relay>` and `<name>`
//! (docs/PRIVATE.md). A servant connects to a listed peer only by the key listed
//! for it, and shows a line only as from the member whose key sent it.
//!
//! The key is 44 characters of standard base64 (as `wg pubkey` prints one), so it
//! holds no markup and needs no escaping. An open network's manager lists no keys:
//! its document is byte for byte what it was.

use crate::noise::PublicKey;
use crate::xml::Element;

/// Appends `<key>BASE64</key>`.
pub(crate) fn render(out: &mut Vec<u8>, key: &PublicKey) {
    out.extend_from_slice(b"<key>");
    out.extend_from_slice(key.to_string().as_bytes());
    out.extend_from_slice(b"</key>");
}

/// Reads a `<peer>`'s `<key>` child, if it has one. A malformed key is an error of
/// the whole list, as a malformed `<relay>` is: a private servant must not guess
/// whom an entry stands for.
pub(crate) fn read(peer: &Element) -> Result<Option<PublicKey>, String> {
    let Some(el) = peer.child("key") else {
        return Ok(None);
    };
    PublicKey::parse(el.value())
        .map(Some)
        .map_err(|why| format!("<key> is not a public key: {why}"))
}
