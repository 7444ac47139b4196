//! Entity tags and `If-None-Match` (RFC 9110 sections 8.8.3 and 13.1.2):
//! a client that already holds a response's bytes says so with the tag it
//! was given, and gets `304 Not Modified` instead of the bytes again. Pure.

/// A strong tag for fixed bytes, `"` + 16 hex digits of their FNV-1a hash +
/// `"`, computable by the compiler so that a page embedded in the binary
/// has its tag without any work at start.
pub const fn strong_tag(bytes: &[u8]) -> [u8; 18] {
    let hash = fnv1a(bytes);
    let mut tag = [b'"'; 18];
    let mut i = 0;
    while i < 16 {
        let nibble = (hash >> (60 - 4 * i)) & 0xf;
        tag[1 + i] = b"0123456789abcdef"[nibble as usize];
        i += 1;
    }
    tag
}

/// FNV-1a, 64 bits: a change of any byte changes the tag (it is not a
/// defence against anyone, only a fingerprint of our own bytes).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// Whether an `If-None-Match` value matches `etag` (which includes its
/// quotes): `*`, or any tag in the list equal to it under the weak
/// comparison that section 13.1.2 prescribes for this header (a `W/`
/// prefix on either side is ignored). A malformed list matches only as far
/// as it could be read.
pub fn if_none_match(value: &str, etag: &str) -> bool {
    let ours = etag.strip_prefix("W/").unwrap_or(etag);
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        if let Some(after) = rest.strip_prefix('*') {
            // `*` stands alone (section 13.1.2); anything else is malformed.
            return after.trim().is_empty();
        }
        let Some((tag, after)) = next_tag(rest) else {
            return false;
        };
        if tag == ours {
            return true;
        }
        rest = after;
    }
}

/// The opaque tag (with its quotes) at the start of `s`, and what follows.
/// A tag may contain commas, so the list is scanned, not split.
fn next_tag(s: &str) -> Option<(&str, &str)> {
    let s = s.strip_prefix("W/").unwrap_or(s);
    let inner = s.strip_prefix('"')?;
    let close = inner.find('"')?;
    Some((&s[..close + 2], &inner[close + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "\"0123456789abcdef\"";

    #[test]
    fn tags_are_quoted_hex_and_differ() {
        let a = strong_tag(b"page one");
        let b = strong_tag(b"page two");
        assert_ne!(a, b);
        let text = std::str::from_utf8(&a).expect("ascii");
        assert!(text.starts_with('"') && text.ends_with('"'), "{text}");
        assert!(text[1..17].bytes().all(|c| c.is_ascii_hexdigit()), "{text}");
        // Known FNV-1a 64 value of the empty input.
        assert_eq!(&strong_tag(b""), b"\"cbf29ce484222325\"");
    }

    #[test]
    fn matching() {
        assert!(if_none_match(TAG, TAG));
        assert!(if_none_match(&format!("W/{TAG}"), TAG));
        assert!(if_none_match(&format!("\"x\", {TAG}"), TAG));
        assert!(if_none_match(&format!("\"a,b\" ,W/\"c\",{TAG}"), TAG));
        assert!(if_none_match("*", TAG));
        assert!(if_none_match(" * ", TAG));
        assert!(if_none_match(TAG, &format!("W/{TAG}")));
    }

    #[test]
    fn not_matching() {
        assert!(!if_none_match("", TAG));
        assert!(!if_none_match("\"other\"", TAG));
        assert!(!if_none_match("0123456789abcdef", TAG));
        assert!(!if_none_match("\"0123456789abcdef", TAG));
        assert!(!if_none_match("*, \"x\"", TAG));
        assert!(!if_none_match(&format!("garbage {TAG}"), TAG));
    }
}
