//! Servants' names: a servant says `name NAME` and the manager lists it in that
//! servant's `<peer>` entry ([`crate::wire::name`]), so every user list and every
//! join or leave a servant shows can say who it is. The article's manager knew
//! servants only by address and port.

use log::{debug, info};

use super::{Manager, Slot};
use crate::reactor::{Index, Reactor};
use crate::wire::name;

impl Manager {
    /// `name NAME`: list it (or, bare, forget it) and push the new list as a join
    /// would. A name that fails [`name::check`] is refused and the old one kept.
    pub(super) fn name_request(&mut self, r: &mut Reactor<Slot>, index: Index, text: &[u8]) {
        let text = String::from_utf8_lossy(text);
        let wanted = if text.trim().is_empty() {
            None
        } else {
            match name::check(&text) {
                Ok(n) => Some(n),
                Err(why) => {
                    return debug!(
                        "offset {index} asked for a name that {why}; keeping its old one"
                    )
                }
            }
        };
        if self.doc.set_name(index, wanted) {
            match wanted {
                Some(n) => info!("offset {index} is called {n:?}"),
                None => info!("offset {index} has no name now"),
            }
            self.membership_changed(r);
        }
    }
}
