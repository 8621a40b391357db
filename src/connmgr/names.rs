//! Servants' names: a servant says `name NAME` and the manager lists it in that
//! servant's `<peer>` entry ([`crate::wire::name`]), so every user list and every
//! join or leave a servant shows can say who it is. The article's manager knew
//! servants only by address and port.

use log::{debug, info};

use super::membership::Membership;
use crate::reactor::Index;
use crate::wire::name;

impl Membership {
    /// `name NAME`: list it (or, bare, forget it). A name that fails
    /// [`name::check`] is refused and the old one kept. Returns whether the list
    /// changed, to be pushed as a join would be.
    pub(super) fn name_request(&mut self, index: Index, text: &[u8]) -> bool {
        let text = String::from_utf8_lossy(text);
        let wanted = if text.trim().is_empty() {
            None
        } else {
            match name::check(&text) {
                Ok(n) => Some(n),
                Err(why) => {
                    debug!("offset {index} asked for a name that {why}; keeping its old one");
                    return false;
                }
            }
        };
        let changed = self.rename(index, wanted);
        if changed {
            match wanted {
                Some(n) => info!("offset {index} is called {n:?}"),
                None => info!("offset {index} has no name now"),
            }
        }
        changed
    }
}
