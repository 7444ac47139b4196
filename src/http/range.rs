//! `Range: bytes=` requests (RFC 9110 section 14): which part of a
//! representation of a known size a request asks for. Pure: the caller
//! has the size (of a file as it was when opened) and sends the bytes.
//!
//! One range is answered with 206. Several ranges would need a
//! `multipart/byteranges` body; RFC 9110 section 14.2 lets a server ignore
//! `Range`, so a request for several ranges gets the whole file (200), as
//! a request with a malformed `Range` does.

use std::ops::Range;

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// The whole representation: no `Range`, or one to ignore.
    Full,
    /// `206 Partial Content` with these bytes (never empty).
    Partial(Range<u64>),
    /// `416 Range Not Satisfiable`: nothing in the range exists.
    Unsatisfiable,
}

/// Resolves the `Range` header `value` (if any) against `size` bytes.
pub fn resolve(value: Option<&str>, size: u64) -> Ranged {
    let Some(value) = value else {
        return Ranged::Full;
    };
    let Some(spec) = single_spec(value) else {
        return Ranged::Full;
    };
    match spec {
        Spec::From { first, last } => {
            if first >= size {
                return Ranged::Unsatisfiable;
            }
            // A last position past the end means "to the end" (section 14.1.2).
            let end = last.map_or(size, |l| l.saturating_add(1).min(size));
            Ranged::Partial(first..end)
        }
        Spec::Suffix(0) => Ranged::Unsatisfiable,
        // Section 14.1.3: of an empty representation, only a suffix range
        // is satisfiable, and it selects nothing: 206 cannot say so
        // (`Content-Range` has no form for zero bytes), so send it all.
        Spec::Suffix(_) if size == 0 => Ranged::Full,
        Spec::Suffix(n) => Ranged::Partial(size.saturating_sub(n)..size),
    }
}

/// `Content-Range` of a 206: `bytes first-last/size`.
pub fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

/// `Content-Range` of a 416: `bytes */size` (RFC 9110 section 14.4).
pub fn unsatisfied_range(size: u64) -> String {
    format!("bytes */{size}")
}

/// One `range-spec`.
#[derive(Debug, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-`.
    From { first: u64, last: Option<u64> },
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// The one range-spec of a `bytes=` ranges-specifier; `None` for another
/// unit, a malformed specifier (both ignored, section 14.2) or several
/// ranges (answered whole, see the module doc).
fn single_spec(value: &str) -> Option<Spec> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    // A list may hold empty elements, which a recipient ignores (section 5.6.1).
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let spec = parse_spec(specs.next()?)?;
    match specs.next() {
        None => Some(spec),
        Some(_) => None,
    }
}

fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    let last = match last {
        "" => None,
        l => Some(digits(l)?),
    };
    // `last < first` makes the whole specifier invalid (section 14.1.1).
    if last.is_some_and(|l| l < first) {
        return None;
    }
    Some(Spec::From { first, last })
}

/// A run of ASCII digits; values past `u64::MAX` saturate (a position that
/// large is past the end of any file).
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(value: &str, size: u64) -> Ranged {
        resolve(Some(value), size)
    }

    #[test]
    fn the_three_forms() {
        assert_eq!(r("bytes=0-9", 100), Ranged::Partial(0..10));
        assert_eq!(r("bytes=90-", 100), Ranged::Partial(90..100));
        assert_eq!(r("bytes=-10", 100), Ranged::Partial(90..100));
        assert_eq!(r("BYTES = 5-5", 100), Ranged::Partial(5..6));
    }

    #[test]
    fn ends_are_clamped() {
        assert_eq!(r("bytes=50-1000", 100), Ranged::Partial(50..100));
        assert_eq!(r("bytes=-1000", 100), Ranged::Partial(0..100));
        assert_eq!(
            r("bytes=0-99999999999999999999999", 100),
            Ranged::Partial(0..100)
        );
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(r("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=100-200", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(
            r("bytes=99999999999999999999999-", 100),
            Ranged::Unsatisfiable
        );
    }

    #[test]
    fn ignored_means_full() {
        assert_eq!(resolve(None, 100), Ranged::Full);
        for bad in [
            "",
            "bytes",
            "bytes=",
            "bytes=abc",
            "bytes=5-3",
            "bytes=--5",
            "bytes=+1-2",
            "bytes=1-2-3",
            "items=0-5",
            "bytes=0-5,10-20",
            "bytes=0x10-",
        ] {
            assert_eq!(r(bad, 100), Ranged::Full, "{bad:?}");
        }
        assert_eq!(r("bytes=-5", 0), Ranged::Full);
        assert_eq!(r("bytes=0-5, ,", 100), Ranged::Partial(0..6));
    }

    #[test]
    fn header_values() {
        assert_eq!(content_range(&(0..10), 100), "bytes 0-9/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }
}
