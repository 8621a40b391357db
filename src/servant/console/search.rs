//! Ctrl-R, as in readline: search the history backwards for what is typed. Each
//! character narrows the search, Backspace widens it again, Ctrl-R goes on to an
//! older line holding the same text, Enter sends the line found, Esc or Ctrl-G
//! gives back the line as it was before Ctrl-R, and any other key (an arrow,
//! Ctrl-A, ...) takes the line found into the input and acts on it there.

use super::editor::{Editor, Effect, Search};
use super::keys::Key;

impl Editor {
    /// Ctrl-R outside a search: start one, with nothing typed yet.
    pub(super) fn search_start(&mut self) -> Effect {
        self.search = Some(Search {
            query: Vec::new(),
            found: None,
            failed: false,
            before: (self.text.clone(), self.cursor),
        });
        Effect::Redraw
    }

    /// What the prompt says during a search: `(search 'bo'): `, or `(failed
    /// search 'bo'): ` when no line holds it.
    pub fn search_prompt(&self) -> Option<String> {
        let s = self.search.as_ref()?;
        let query: String = s.query.iter().collect();
        let failed = if s.failed { "failed " } else { "" };
        Some(format!("({failed}search '{query}'): "))
    }

    /// A key during a search: its effect, or `None` when it ends the search and
    /// is then applied to the line found like any key.
    pub(super) fn search_key(&mut self, key: Key) -> Option<Effect> {
        let s = self.search.as_mut()?;
        match key {
            Key::Char(c) if !c.is_control() && !crate::text::is_unsafe(c) => {
                s.query.push(c);
                let from = s.found.map_or(self.history.len(), |k| k + 1);
                Some(self.narrowed(from))
            }
            Key::Backspace => {
                s.query.pop();
                Some(self.narrowed(self.history.len()))
            }
            Key::Ctrl(b'r') => {
                let from = s.found.unwrap_or(self.history.len());
                Some(self.find(from))
            }
            Key::Escape | Key::Ctrl(b'g') => {
                let (text, cursor) = self.search.take()?.before;
                self.text = text;
                self.cursor = cursor;
                Some(Effect::Redraw)
            }
            Key::Enter => {
                self.search = None;
                Some(self.enter())
            }
            _ => {
                self.search = None;
                None
            }
        }
    }

    /// The query changed: found from `from` back, or marked failed.
    fn narrowed(&mut self, from: usize) -> Effect {
        let effect = self.find(from);
        if let Some(s) = self.search.as_mut() {
            s.failed = effect == Effect::Bell;
        }
        effect
    }

    /// Shows the newest line before `history[from]` that holds the query; rings
    /// the bell and keeps what is shown when none does.
    fn find(&mut self, from: usize) -> Effect {
        let Some(s) = self.search.as_mut() else {
            return Effect::None;
        };
        let query: String = s.query.iter().collect();
        let hit = (self.history[..from.min(self.history.len())].iter())
            .enumerate()
            .rev()
            .find_map(|(k, line)| line.find(&query).map(|at| (k, at)));
        let Some((k, at)) = hit else {
            return Effect::Bell;
        };
        s.found = Some(k);
        self.text = self.history[k].chars().collect();
        self.cursor = self.history[k][..at].chars().count();
        Effect::Redraw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor() -> Editor {
        let mut e = Editor::default();
        e.load_history(vec![
            "hello bob".into(),
            "/peers".into(),
            "bob: see you".into(),
        ]);
        e
    }

    fn keys(e: &mut Editor, keys: &[Key]) -> Vec<Effect> {
        keys.iter().map(|&k| e.key(k)).collect()
    }

    fn line(e: &Editor) -> String {
        e.text().iter().collect()
    }

    #[test]
    fn typing_narrows_and_ctrl_r_goes_older() {
        let mut e = editor();
        keys(&mut e, &[Key::Ctrl(b'r'), Key::Char('b'), Key::Char('o')]);
        assert_eq!(line(&e), "bob: see you");
        assert_eq!(e.search_prompt().unwrap(), "(search 'bo'): ");
        assert_eq!(e.key(Key::Ctrl(b'r')), Effect::Redraw);
        assert_eq!((line(&e), e.cursor()), ("hello bob".into(), 6));
        assert_eq!(e.key(Key::Ctrl(b'r')), Effect::Bell, "nothing older");
        assert_eq!(line(&e), "hello bob");
        assert_eq!(e.key(Key::Enter), Effect::Line("hello bob".into()));
        assert!(e.search_prompt().is_none());
    }

    #[test]
    fn escape_gives_back_the_line_and_an_arrow_keeps_the_match() {
        let mut e = editor();
        keys(&mut e, &[Key::Char('x'), Key::Ctrl(b'r'), Key::Char('/')]);
        assert_eq!(line(&e), "/peers");
        e.key(Key::Escape);
        assert_eq!((line(&e), e.cursor()), ("x".into(), 1));
        keys(&mut e, &[Key::Ctrl(b'r'), Key::Char('s'), Key::Char('e')]);
        keys(&mut e, &[Key::End, Key::Char('!')]);
        assert_eq!(line(&e), "bob: see you!");
        assert!(e.search_prompt().is_none());
        keys(&mut e, &[Key::Ctrl(b'r'), Key::Char('q')]);
        assert_eq!(e.search_prompt().unwrap(), "(failed search 'q'): ");
        e.key(Key::Ctrl(b'g'));
        assert_eq!(line(&e), "bob: see you!");
    }
}
