//! Tab completes the peer name before the cursor, as irssi and weechat do: `bo`
//! becomes `bob`, at the start of the line `bob: `, the way a line is addressed
//! to someone, and after `/msg ` `bob ` (the text comes next). Tab again goes on to the next name that fits, and round
//! to the first; any other key keeps the name and edits on from there.

use super::editor::{Completion, Editor, Effect};

impl Editor {
    /// Tab: the first name that fits the word before the cursor, or the next one.
    pub(super) fn complete(&mut self) -> Effect {
        let next = match self.completing.take() {
            Some(mut c) => {
                self.text.drain(c.start..c.start + c.len);
                self.cursor = c.start;
                c.shown = (c.shown + 1) % c.fits.len();
                c
            }
            None => {
                let mut start = self.cursor;
                while start > 0 && !self.text[start - 1].is_whitespace() {
                    start -= 1;
                }
                let typed: String = self.text[start..self.cursor].iter().collect();
                let typed = typed.to_lowercase();
                let mut fits: Vec<String> = (self.names.iter())
                    .filter(|n| n.to_lowercase().starts_with(&typed))
                    .cloned()
                    .collect();
                fits.sort_by_key(|n| n.to_lowercase());
                fits.dedup();
                if fits.is_empty() {
                    return Effect::Bell;
                }
                self.text.drain(start..self.cursor);
                self.cursor = start;
                Completion {
                    start,
                    fits,
                    shown: 0,
                    len: 0,
                }
            }
        };
        let mut put: Vec<char> = next.fits[next.shown].chars().collect();
        if next.start == 0 {
            put.extend([':', ' ']);
        } else if self.text[..next.start].iter().copied().eq("/msg ".chars()) {
            put.push(' '); // the text comes next
        }
        let at = next.start;
        self.text.splice(at..at, put.iter().copied());
        self.cursor = at + put.len();
        self.completing = Some(Completion {
            len: put.len(),
            ..next
        });
        Effect::Redraw
    }
}

#[cfg(test)]
mod tests {
    use super::super::keys::Key;
    use super::*;

    fn editor(names: &[&str]) -> Editor {
        let mut e = Editor::default();
        e.names = names.iter().map(|n| n.to_string()).collect();
        e
    }

    fn typed(e: &mut Editor, keys: &str) {
        for c in keys.chars() {
            e.key(if c == '\t' { Key::Tab } else { Key::Char(c) });
        }
    }

    fn line(e: &Editor) -> String {
        e.text().iter().collect()
    }

    #[test]
    fn a_name_at_the_start_is_addressed_and_mid_line_is_just_the_name() {
        let mut e = editor(&["bob", "carol", "alice"]);
        typed(&mut e, "bo\t");
        assert_eq!((line(&e), e.cursor()), ("bob: ".into(), 5));
        typed(&mut e, "hi ca\t");
        assert_eq!(line(&e), "bob: hi carol");
        assert_eq!(e.key(Key::Tab), Effect::Redraw, "the only fit stays");
        assert_eq!(line(&e), "bob: hi carol");
        typed(&mut e, " zz");
        assert_eq!(e.key(Key::Tab), Effect::Bell, "no name fits");
    }

    #[test]
    fn after_msg_the_name_is_followed_by_a_space() {
        let mut e = editor(&["bob", "carol"]);
        typed(&mut e, "/msg ca\t");
        assert_eq!(line(&e), "/msg carol ");
        typed(&mut e, "hi");
        assert_eq!(line(&e), "/msg carol hi");
    }

    #[test]
    fn repeated_tabs_cycle_through_the_names_that_fit() {
        let mut e = editor(&["bobby", "Bob", "carol"]);
        typed(&mut e, "b\t");
        assert_eq!(line(&e), "Bob: ");
        typed(&mut e, "\t");
        assert_eq!(line(&e), "bobby: ");
        typed(&mut e, "\t");
        assert_eq!(line(&e), "Bob: ", "round to the first");
        typed(&mut e, "x");
        assert_eq!(line(&e), "Bob: x", "another key keeps the name");
    }
}
