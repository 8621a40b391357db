//! A tiny element tree over quick-xml: what the article's MSXML `loadXML` gave it,
//! minus XPath. Callers walk children by name, so no query is ever built by pasting
//! strings together (the article's `"[target = '" & remoteip & "']"` was injectable).
//!
//! Errors carry the 1-based line and column, so a config error can say where.

use std::fmt;

use quick_xml::events::Event;
use quick_xml::Reader;

/// An element: its name, its text (entity references resolved), its children, and
/// the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
    pub line: usize,
}

impl Element {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`, in document order.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text with surrounding whitespace removed.
    pub fn value(&self) -> &str {
        self.text.trim()
    }
}

/// Why a document was rejected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    pub line: usize,
    pub column: usize,
    pub reason: String,
}

impl fmt::Display for XmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for XmlError {}

/// 1-based line and column of byte `pos` in `input`.
fn line_col(input: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(input.len());
    let before = &input.as_bytes()[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = pos
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

/// Deepest nesting accepted. Peer documents are 3 deep and configs 4; a document
/// nested 300,000 deep would overflow the stack when its tree is dropped.
const MAX_DEPTH: usize = 32;

/// Parses a whole document with exactly one root element.
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(input);
    let err = |pos: u64, reason: String| {
        let (line, column) = line_col(input, pos as usize);
        XmlError {
            line,
            column,
            reason,
        }
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    // Lines are counted incrementally: from the start for every event made reading
    // a 1,000-peer document take 0.4 s.
    let mut lines = LineCounter::default();
    loop {
        let start = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| err(reader.error_position(), e.to_string()))?;
        let line = lines.line_at(input.as_bytes(), start as usize);
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let name = e.name().as_ref().to_string();
                return Err(err(
                    start,
                    format!("a second root element <{name}> after the document ended"),
                ));
            }
            Event::Start(_) if stack.len() >= MAX_DEPTH => {
                return Err(err(
                    start,
                    format!("elements nested more than {MAX_DEPTH} deep"),
                ));
            }
            Event::Start(e) => stack.push(element(e.name().as_ref(), line)),
            Event::Empty(e) => {
                let el = element(e.name().as_ref(), line);
                attach(&mut stack, &mut root, el);
            }
            Event::End(_) => {
                let el = stack.pop().expect("quick-xml checks end names");
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => push_text(&mut stack, &t, start, &err)?,
            Event::CData(t) => push_text(&mut stack, &t, start, &err)?,
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref()
                        .map_err(|e| err(start, e.to_string()))?
                        .map(String::from)
                } else {
                    quick_xml::escape::resolve_predefined_entity(&r).map(String::from)
                };
                let Some(text) = resolved else {
                    return Err(err(start, format!("unknown entity &{};", &*r)));
                };
                push_text(&mut stack, &text, start, &err)?
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(err(
                        input.len() as u64,
                        format!(
                            "document ended inside <{}> (opened on line {})",
                            open.name, open.line
                        ),
                    ));
                }
                return root.ok_or_else(|| err(0, "no root element".into()));
            }
            // Declarations, comments, processing instructions and DOCTYPEs carry no data
            // here; quick-xml never expands custom entities, so a DOCTYPE cannot inject any.
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// The line of a position, for positions that only move forward.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    line: usize,
}

impl LineCounter {
    fn line_at(&mut self, input: &[u8], pos: usize) -> usize {
        let pos = pos.min(input.len());
        if pos < self.pos {
            *self = LineCounter::default();
        }
        self.line += memchr::memchr_iter(b'\n', &input[self.pos..pos]).count();
        self.pos = pos;
        self.line + 1
    }
}

fn element(name: &str, line: usize) -> Element {
    Element {
        name: name.to_string(),
        text: String::new(),
        children: Vec::new(),
        line,
    }
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn push_text(
    stack: &mut [Element],
    text: &str,
    pos: u64,
    err: &dyn Fn(u64, String) -> XmlError,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(err(
            pos,
            format!("text outside the root element: {:?}", clip(text, 40)),
        )),
    }
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_tree_with_text_and_lines() {
        let doc = parse("<?xml version=\"1.0\"?>\n<config>\n  <port>85</port>\n  <bans><ban><target>1.1.1.1</target></ban><ban/></bans>\n</config>\n").unwrap();
        assert_eq!(doc.name, "config");
        assert_eq!(doc.line, 2);
        let port = doc.child("port").unwrap();
        assert_eq!((port.value(), port.line), ("85", 3));
        let bans: Vec<_> = doc.child("bans").unwrap().children_named("ban").collect();
        assert_eq!(bans.len(), 2);
        assert_eq!(bans[0].child("target").unwrap().value(), "1.1.1.1");
    }

    #[test]
    fn resolves_entities_and_cdata() {
        let doc = parse("<a>x &amp; y &lt;&#65;&#x42;<![CDATA[<raw>]]></a>").unwrap();
        assert_eq!(doc.text, "x & y <AB<raw>");
    }

    #[test]
    fn errors_say_where() {
        let e = parse("<config>\n  <port>85</prot>\n</config>").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        let e = parse("<config>\n<port>85</port>\n").unwrap_err();
        assert!(e.reason.contains("inside <config>"), "{e}");
        let e = parse("<a/><b/>").unwrap_err();
        assert!(e.reason.contains("second root"), "{e}");
        let e = parse("<a>&bogus;</a>").unwrap_err();
        assert!(e.reason.contains("&bogus;"), "{e}");
        assert!(parse("").unwrap_err().reason.contains("no root"));
        assert!(parse("hello").is_err());
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        let deep = format!(
            "<peers>{}{}</peers>",
            "<a>".repeat(300_000),
            "</a>".repeat(300_000)
        );
        let e = parse(&deep).unwrap_err();
        assert!(e.reason.contains("nested more than 32 deep"), "{e}");
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn lines_stay_right_through_a_large_document() {
        let entry =
            "<peer>\n<ip>127.0.0.1</ip><port>2224</port><offset>1</offset><me>FALSE</me></peer>\n";
        let doc = format!("<peers>\n{}</peers>", entry.repeat(20_000));
        let root = parse(&doc).unwrap();
        assert_eq!(root.children.len(), 20_000);
        assert_eq!(root.children[19_999].line, 2 + 2 * 19_999);
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(clip("abcdef", 3), "abc...");
        assert_eq!(clip("ab", 3), "ab");
    }
}
