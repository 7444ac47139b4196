//! `?grep=` and `?exclude=` on streams: which lines a stream is sent.
//!
//! Expressions are compiled by the `regex` crate, whose matching is linear
//! in the line whatever the pattern (no backtracking: a hostile pattern
//! cannot make one line cost seconds), with its compiled-size limits set so
//! a hostile pattern cannot take memory either. A line passes when `grep`
//! (if given) matches it and `exclude` (if given) does not.
//!
//! Every stream of a log with the same filter text shares one [`Filter`]
//! and one framing per line (see [`crate::engine::fanout`]); the filter's
//! memory goes with the last stream using it.

use regex::bytes::{Regex, RegexBuilder};

/// Longest expression accepted, in bytes (a URL carries it anyway).
pub const MAX_PATTERN: usize = 1024;

/// Compiled size limit per expression (the crate's default is 10 MiB).
const SIZE_LIMIT: usize = 1 << 20;

/// What a stream asked for, as text: the key streams are grouped by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FilterSpec {
    pub grep: Option<String>,
    pub exclude: Option<String>,
}

impl FilterSpec {
    /// No filter at all: the stream gets every line.
    pub fn is_none(&self) -> bool {
        self.grep.is_none() && self.exclude.is_none()
    }
}

/// A compiled filter.
#[derive(Debug)]
pub struct Filter {
    spec: FilterSpec,
    grep: Option<Regex>,
    exclude: Option<Regex>,
}

impl Filter {
    /// Compiles `spec`; the error names the parameter and the problem
    /// (what a 400 says).
    pub fn compile(spec: &FilterSpec) -> Result<Filter, String> {
        Ok(Filter {
            grep: compile_one("grep", spec.grep.as_deref())?,
            exclude: compile_one("exclude", spec.exclude.as_deref())?,
            spec: spec.clone(),
        })
    }

    pub fn spec(&self) -> &FilterSpec {
        &self.spec
    }

    /// Whether `line` (without its line end) is sent.
    pub fn passes(&self, line: &[u8]) -> bool {
        self.grep.as_ref().is_none_or(|r| r.is_match(line))
            && !self.exclude.as_ref().is_some_and(|r| r.is_match(line))
    }
}

fn compile_one(name: &str, pattern: Option<&str>) -> Result<Option<Regex>, String> {
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    if pattern.len() > MAX_PATTERN {
        return Err(format!(
            "{name}: expression longer than {MAX_PATTERN} bytes"
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(SIZE_LIMIT)
        .build()
        .map(Some)
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => {
                format!("{name}: expression too big (compiled size over {limit} bytes)")
            }
            e => format!("{name}: invalid regular expression: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(grep: Option<&str>, exclude: Option<&str>) -> FilterSpec {
        FilterSpec {
            grep: grep.map(str::to_string),
            exclude: exclude.map(str::to_string),
        }
    }

    #[test]
    fn grep_and_exclude() {
        let f = Filter::compile(&spec(Some("(?i)error"), Some("ignored"))).expect("compile");
        assert!(f.passes(b"an ERROR here"));
        assert!(!f.passes(b"an error, ignored"));
        assert!(!f.passes(b"all fine"));
        let f = Filter::compile(&spec(None, Some("^debug"))).expect("compile");
        assert!(f.passes(b"info x"));
        assert!(!f.passes(b"debug x"));
    }

    #[test]
    fn bad_and_oversized_expressions_say_what_is_wrong() {
        let e = Filter::compile(&spec(Some("(unclosed"), None)).expect_err("bad");
        assert!(e.starts_with("grep: invalid regular expression"), "{e}");
        let e = Filter::compile(&spec(None, Some(&"a".repeat(MAX_PATTERN + 1)))).expect_err("long");
        assert!(e.starts_with("exclude: expression longer"), "{e}");
        let e = Filter::compile(&spec(Some(r"\w{1000}\w{1000}"), None)).expect_err("big");
        assert!(e.contains("too big"), "{e}");
    }

    #[test]
    fn invalid_utf8_lines_still_match() {
        let f = Filter::compile(&spec(Some("ok"), None)).expect("compile");
        assert!(f.passes(b"\xff\xfe ok"));
    }
}
