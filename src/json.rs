//! Minimal JSON output: string escaping and an object writer. logcast only
//! ever *writes* JSON (small, flat objects), so a serializer crate would be
//! all weight. Separators follow Python's `json.dumps` (`", "` and `": "`),
//! the format of the proof of concept this daemon replaces.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal (RFC 8259 section 7) to `out`.
pub fn push_str_literal(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A value in a flat JSON object.
pub enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
}

/// Builds a flat object from `(key, value)` pairs: `{"a": 1, "b": "x"}`.
pub fn object(fields: &[(&str, Value<'_>)]) -> String {
    let mut out = String::with_capacity(64);
    push_object(&mut out, fields);
    out
}

/// Appends a flat object to `out`.
pub fn push_object(out: &mut String, fields: &[(&str, Value<'_>)]) {
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_str_literal(out, key);
        out.push_str(": ");
        match value {
            Value::Str(s) => push_str_literal(out, s),
            Value::Num(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        }
    }
    out.push('}');
}

/// `{"error": "<message>"}`: the body of every error response.
pub fn error(message: &str) -> String {
    object(&[("error", Value::Str(message))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_controls_and_keeps_unicode() {
        let mut out = String::new();
        push_str_literal(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn object_uses_python_separators() {
        let o = object(&[
            ("a", Value::Num(1)),
            ("b", Value::Str("x")),
            ("c", Value::Bool(false)),
        ]);
        assert_eq!(o, r#"{"a": 1, "b": "x", "c": false}"#);
        assert_eq!(error("nope"), r#"{"error": "nope"}"#);
    }
}
