//! JSON for churn's summaries: a value type, a writer, and a reader for the
//! summaries `churn compare` and the benchmarks read back. No dependency: what
//! churn writes is a small object of numbers, strings, one array of arguments and
//! one of seconds, and what it reads back is what it wrote (or a file a person
//! hands it, which is why the reader limits nesting and names where it stopped).

use std::fmt::Write as _;

/// Nesting the reader accepts; churn writes 3 levels.
const MAX_DEPTH: usize = 32;

/// A JSON value. Objects keep their keys in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Value>),
    Obj(Vec<(String, Value)>),
}

impl Value {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Obj(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<f64> {
        match self {
            Value::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn arr(&self) -> Option<&[Value]> {
        match self {
            Value::Arr(a) => Some(a),
            _ => None,
        }
    }

    /// Reads one JSON value that fills `text` (whitespace aside).
    pub fn parse(text: &str) -> Result<Value, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            at: 0,
        };
        let v = p.value(0)?;
        p.space();
        if p.at < p.s.len() {
            return Err(p.error("text after the value"));
        }
        Ok(v)
    }

    /// The value as compact JSON. Numbers are written as integers when whole, else
    /// with 3 decimals; infinities and NaN (an empty run's ratios) as `null`.
    pub fn write(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(v) if !v.is_finite() => out.push_str("null"),
            Value::Num(v) if v.fract() == 0.0 && v.abs() < 1e15 => {
                let _ = write!(out, "{}", *v as i64);
            }
            Value::Num(v) => {
                let _ = write!(out, "{v:.3}");
            }
            Value::Str(s) => write_str(out, s),
            Value::Arr(items) => {
                out.push('[');
                for (k, item) in items.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Value::Obj(members) => {
                out.push('{');
                for (k, (key, v)) in members.iter().enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    write_str(out, key);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = String::new();
        self.write(&mut s);
        f.write_str(&s)
    }
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An object under construction, members in the order they are added.
#[derive(Default)]
pub struct Obj(pub Vec<(String, Value)>);

impl Obj {
    pub fn num(&mut self, key: &str, v: f64) {
        self.0.push((key.to_string(), Value::Num(v)));
    }

    pub fn str(&mut self, key: &str, v: &str) {
        self.0.push((key.to_string(), Value::Str(v.to_string())));
    }

    pub fn val(&mut self, key: &str, v: Value) {
        self.0.push((key.to_string(), v));
    }

    pub fn done(self) -> Value {
        Value::Obj(self.0)
    }
}

/// The number under top-level `key` in a JSON object such as churn's summary
/// (for tests and benchmarks that read churn's output); `None` if the text is not
/// JSON or the key is missing or not a number.
pub fn json_number(json: &str, key: &str) -> Option<f64> {
    Value::parse(json).ok()?.get(key)?.num()
}

/// A cursor over the JSON text being read.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("not JSON at byte {}: {what}", self.at)
    }

    fn space(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.space();
        let hit = self.s.get(self.at) == Some(&b);
        self.at += usize::from(hit);
        hit
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deeply"));
        }
        self.space();
        match self.s.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if self.eat(b'}') {
                    return Ok(Value::Obj(members));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.error("expected ':'"));
                    }
                    members.push((key, self.value(depth + 1)?));
                    if self.eat(b'}') {
                        return Ok(Value::Obj(members));
                    }
                    if !self.eat(b',') {
                        return Err(self.error("expected ',' or '}'"));
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::Arr(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Value::Arr(items));
                    }
                    if !self.eat(b',') {
                        return Err(self.error("expected ',' or ']'"));
                    }
                }
            }
            Some(b'"') => self.string().map(Value::Str),
            Some(_) => self.word(),
            None => Err(self.error("the text ends where a value should be")),
        }
    }

    fn word(&mut self) -> Result<Value, String> {
        let start = self.at;
        while self.at < self.s.len() && !b",]} \t\r\n".contains(&self.s[self.at]) {
            self.at += 1;
        }
        let word = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
        match word {
            "null" => Ok(Value::Null),
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => word.parse().map(Value::Num).map_err(|_| {
                self.at = start;
                self.error("expected a value")
            }),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.at) != Some(&b'"') {
            return Err(self.error("expected a string"));
        }
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.at) else {
                return Err(self.error("unterminated string"));
            };
            self.at += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|_| self.error("not UTF-8")),
                b'\\' => {
                    let Some(&e) = self.s.get(self.at) else {
                        return Err(self.error("unterminated string"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'u' => {
                            let hex = self.s.get(self.at..self.at + 4).unwrap_or_default();
                            self.at += 4;
                            let code = std::str::from_utf8(hex)
                                .ok()
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .ok_or_else(|| self.error("bad \\u escape"))?;
                            // Surrogate pairs do not occur in what churn writes.
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return Err(self.error("bad escape")),
                    };
                    let mut utf8 = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                }
                _ => out.push(b),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_back() {
        let mut o = Obj::default();
        o.str("mode", "join-leave \"x\"\n\u{1b}");
        o.num("ops", 12.0);
        o.num("rate", 1.23456);
        o.num("ratio", f64::NAN);
        o.val(
            "series",
            Value::Arr(vec![Value::Obj(vec![("t".into(), Value::Num(1.0))])]),
        );
        o.val("ok", Value::Bool(true));
        let text = o.done().to_string();
        assert_eq!(
            text,
            r#"{"mode":"join-leave \"x\"\n\u001b","ops":12,"rate":1.235,"ratio":null,"series":[{"t":1}],"ok":true}"#
        );
        let v = Value::parse(&text).unwrap();
        assert_eq!(
            v.get("mode").unwrap().str(),
            Some("join-leave \"x\"\n\u{1b}")
        );
        assert_eq!(json_number(&text, "ops"), Some(12.0));
        assert_eq!(json_number(&text, "rate"), Some(1.235));
        assert_eq!(json_number(&text, "ratio"), None);
        assert_eq!(json_number(&text, "nope"), None);
        let series = v.get("series").unwrap().arr().unwrap();
        assert_eq!(series[0].get("t").unwrap().num(), Some(1.0));
        assert_eq!(Obj::default().done().to_string(), "{}");
    }

    #[test]
    fn bad_json_is_named_not_panicked_on() {
        for bad in [
            "",
            "{",
            "{\"a\" 1}",
            "[1,]",
            "{\"a\":1} x",
            "\"\\q\"",
            "tru",
        ] {
            assert!(Value::parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(Value::parse(&deep).unwrap_err().contains("deeply"));
        assert_eq!(
            Value::parse(" [1, -2.5e3, \"\\u00e9\"] ").unwrap(),
            Value::Arr(vec![
                Value::Num(1.0),
                Value::Num(-2500.0),
                Value::Str("é".into())
            ])
        );
    }
}
