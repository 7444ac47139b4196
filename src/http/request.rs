//! Request heads: finding where a head ends (without re-scanning old bytes,
//! so a slowloris client sending one byte at a time costs linear work), then
//! parsing it with `httparse` into an owned [`RequestHead`] that holds only
//! what the daemon acts on. The read buffer is not borrowed past parsing.

use super::HttpError;

/// Request heads over this size get 431 (SPEC section 2).
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers beyond this count also get 431.
const MAX_HEADERS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Delete,
    Options,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(m) => m,
        }
    }
}

/// How the request body is framed (RFC 9112 section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// The parts of a request head the daemon acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// Path without the query, still percent-encoded.
    pub path: String,
    /// The query string without `?` (empty when absent).
    pub query: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    pub body: BodyKind,
    /// The `Last-Event-ID` header an EventSource sends when it reconnects.
    pub last_event_id: Option<String>,
    /// `Expect: 100-continue`: the client waits for a go-ahead before its body.
    pub expect_continue: bool,
    /// `Authorization` (checked against `--token-file`; never logged).
    pub authorization: Option<String>,
    /// `Origin` (answered with CORS headers when `--cors-origin` allows it).
    pub origin: Option<String>,
    /// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
    pub preflight: bool,
    /// `Range` (several fields are joined into one list, which then asks
    /// for several ranges).
    pub range: Option<String>,
    /// `If-None-Match`, every field joined into one list (RFC 9110 section 5.3).
    pub if_none_match: Option<String>,
}

/// Finds the end of a head (`\r\n\r\n`, or a bare `\n\n`, which RFC 9112
/// section 2.2 lets a recipient accept) in `buf`, looking only at bytes from
/// `scanned` on (minus the 3 bytes a terminator can straddle). Returns the
/// length of the head including its terminator.
pub fn find_head_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let start = scanned.saturating_sub(3);
    let mut i = start;
    while let Some(pos) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + pos;
        if nl + 1 < buf.len() && buf[nl + 1] == b'\n' {
            return Some(nl + 2);
        }
        if nl + 2 < buf.len() && buf[nl + 1] == b'\r' && buf[nl + 2] == b'\n' {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

/// Parses the head at the start of `buf`. `Ok(None)`: not complete yet (the
/// caller should read more). `Ok(Some((head, n)))`: the head is the first `n`
/// bytes; whatever follows is body or the next pipelined request.
pub fn parse_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HttpError> {
    let end = match find_head_end(buf, 0) {
        Some(end) if end > MAX_HEAD => return Err(HttpError::HeadTooLarge),
        Some(end) => end,
        None if buf.len() > MAX_HEAD => return Err(HttpError::HeadTooLarge),
        None => return Ok(None),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) => Ok(Some((build_head(&req)?, n))),
        Ok(httparse::Status::Partial) => Err(HttpError::Malformed("incomplete head")),
        Err(httparse::Error::TooManyHeaders) => Err(HttpError::HeadTooLarge),
        Err(httparse::Error::Version) => Err(HttpError::Malformed("unsupported HTTP version")),
        Err(_) => Err(HttpError::Malformed("invalid request line or header")),
    }
}

fn build_head(req: &httparse::Request<'_, '_>) -> Result<RequestHead, HttpError> {
    let minor_version = req.version.unwrap_or(1);
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        other => Method::Other(other.to_string()),
    };
    let (path, query) = split_target(req.path.unwrap_or(""))?;
    let framing = Framing::from_headers(req.headers)?;
    // RFC 9112 section 3.2: a server MUST answer 400 to an HTTP/1.1 request
    // without Host, and to any request with more than one.
    if minor_version == 1 && framing.hosts == 0 {
        return Err(HttpError::Malformed("missing Host header"));
    }
    if framing.hosts > 1 {
        return Err(HttpError::Malformed("more than one Host header"));
    }
    let keep_alive = match minor_version {
        // RFC 9112 section 6.1: after an HTTP/1.0 request with
        // Transfer-Encoding the server MUST close the connection.
        0 => framing.keep_alive_token && framing.transfer_codings.is_empty(),
        _ => !framing.close_token,
    };
    Ok(RequestHead {
        method,
        path,
        query,
        minor_version,
        keep_alive,
        body: framing.body_kind()?,
        last_event_id: framing.last_event_id,
        expect_continue: framing.expect_continue && minor_version == 1,
        authorization: framing.authorization,
        origin: framing.origin,
        preflight: framing.preflight,
        range: framing.range,
        if_none_match: framing.if_none_match,
    })
}

/// Splits a request target into path and query. Accepts origin-form
/// (`/path?q`) and absolute-form (`http://host/path?q`, RFC 9112 section 3.2.2).
fn split_target(target: &str) -> Result<(String, String), HttpError> {
    let origin = match target.find("://") {
        Some(i)
            if target[..i].eq_ignore_ascii_case("http")
                || target[..i].eq_ignore_ascii_case("https") =>
        {
            let rest = &target[i + 3..];
            rest.find('/').map_or("/", |slash| &rest[slash..])
        }
        _ => target,
    };
    if !origin.starts_with('/') {
        return Err(HttpError::Malformed("request target must start with '/'"));
    }
    let origin = origin.split('#').next().unwrap_or(origin);
    Ok(match origin.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (origin.to_string(), String::new()),
    })
}

/// What the headers say about framing and the connection.
#[derive(Default)]
struct Framing {
    content_length: Option<u64>,
    transfer_codings: Vec<String>,
    close_token: bool,
    keep_alive_token: bool,
    hosts: usize,
    expect_continue: bool,
    last_event_id: Option<String>,
    authorization: Option<String>,
    origin: Option<String>,
    preflight: bool,
    range: Option<String>,
    if_none_match: Option<String>,
}

impl Framing {
    fn from_headers(headers: &[httparse::Header<'_>]) -> Result<Framing, HttpError> {
        let mut f = Framing::default();
        for h in headers {
            let value = std::str::from_utf8(h.value).ok();
            if h.name.eq_ignore_ascii_case("content-length") {
                f.add_content_length(value.ok_or(HttpError::Malformed("bad Content-Length"))?)?;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let value = value.ok_or(HttpError::UnsupportedTransferCoding)?;
                f.transfer_codings
                    .extend(tokens(value).map(str::to_ascii_lowercase));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for t in tokens(value.unwrap_or("")) {
                    f.close_token |= t.eq_ignore_ascii_case("close");
                    f.keep_alive_token |= t.eq_ignore_ascii_case("keep-alive");
                }
            } else if h.name.eq_ignore_ascii_case("host") {
                f.hosts += 1;
            } else if h.name.eq_ignore_ascii_case("expect") {
                f.expect_continue =
                    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
            } else if h.name.eq_ignore_ascii_case("last-event-id") {
                f.last_event_id = Some(String::from_utf8_lossy(h.value).trim().to_string());
            } else if h.name.eq_ignore_ascii_case("authorization") {
                f.authorization = value.map(|v| v.trim().to_string());
            } else if h.name.eq_ignore_ascii_case("origin") {
                f.origin = value.map(|v| v.trim().to_string());
            } else if h.name.eq_ignore_ascii_case("access-control-request-method") {
                f.preflight = true;
            } else if h.name.eq_ignore_ascii_case("range") {
                join_list(&mut f.range, value);
            } else if h.name.eq_ignore_ascii_case("if-none-match") {
                join_list(&mut f.if_none_match, value);
            }
        }
        Ok(f)
    }

    /// Every `Content-Length` (and every element of a list in one) must be
    /// the same decimal number (RFC 9110 section 8.6).
    fn add_content_length(&mut self, value: &str) -> Result<(), HttpError> {
        for token in value.split(',').map(str::trim) {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) || token.len() > 18 {
                return Err(HttpError::Malformed("bad Content-Length"));
            }
            let n: u64 = token
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length"))?;
            match self.content_length {
                Some(prev) if prev != n => {
                    return Err(HttpError::Smuggling("conflicting Content-Length values"))
                }
                _ => self.content_length = Some(n),
            }
        }
        Ok(())
    }

    fn body_kind(&self) -> Result<BodyKind, HttpError> {
        match (self.content_length, self.transfer_codings.is_empty()) {
            (Some(_), false) => Err(HttpError::Smuggling(
                "Content-Length with Transfer-Encoding",
            )),
            (Some(0), true) | (None, true) => Ok(BodyKind::None),
            (Some(n), true) => Ok(BodyKind::Length(n)),
            (None, false) if self.transfer_codings == ["chunked"] => Ok(BodyKind::Chunked),
            (None, false) => Err(HttpError::UnsupportedTransferCoding),
        }
    }
}

/// Adds a field's value to a list from earlier fields of the same name
/// (RFC 9110 section 5.3); a value that is not text becomes an element
/// that matches nothing.
fn join_list(list: &mut Option<String>, value: Option<&str>) {
    let value = value.unwrap_or("\u{fffd}").trim();
    match list {
        Some(l) => {
            l.push_str(", ");
            l.push_str(value);
        }
        None => *list = Some(value.to_string()),
    }
}

/// Comma-separated list elements, trimmed, empty ones skipped (RFC 9110 section 5.6.1).
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<(RequestHead, usize)>, HttpError> {
        parse_head(raw.as_bytes())
    }

    fn head(raw: &str) -> RequestHead {
        parse(raw).expect("valid").expect("complete").0
    }

    #[test]
    fn parses_a_simple_get() {
        let h =
            head("GET /api/logs/x/stream?tail=2 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 42\r\n\r\n");
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path, "/api/logs/x/stream");
        assert_eq!(h.query, "tail=2");
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyKind::None);
        assert_eq!(h.last_event_id.as_deref(), Some("42"));
    }

    #[test]
    fn partial_at_every_split_point() {
        let raw = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        for cut in 0..raw.len() {
            assert_eq!(parse_head(&raw[..cut]), Ok(None), "cut at {cut}");
        }
        assert!(parse_head(raw).expect("ok").is_some());
    }

    #[test]
    fn head_end_scan_resumes_where_it_stopped() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
        for scanned in 0..raw.len() - 4 {
            assert_eq!(
                find_head_end(raw, scanned),
                Some(raw.len() - 4),
                "scanned {scanned}"
            );
        }
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\n", 0), Some(16));
    }

    #[test]
    fn connection_semantics_by_version() {
        assert!(!head("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn body_framing() {
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(5));
        let h =
            head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.body, BodyKind::Length(5));
        let h = head("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.body, BodyKind::Chunked);
    }

    #[test]
    fn smuggling_shapes_and_codings_are_refused() {
        let cases = [
            ("Content-Length: 5\r\nContent-Length: 6\r\n", 400),
            ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400),
            ("Content-Length: +5\r\n", 400),
            ("Content-Length: 5 5\r\n", 400),
            ("Transfer-Encoding: gzip\r\n", 501),
            ("Transfer-Encoding: chunked, gzip\r\n", 501),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                501,
            ),
        ];
        for (headers, status) in cases {
            let raw = format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
            assert_eq!(
                parse(&raw).map_err(|e| e.status()),
                Err(status),
                "{headers}"
            );
        }
    }

    #[test]
    fn malformed_heads() {
        for raw in [
            "GARBAGE\r\n\r\n",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET nopath HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",
        ] {
            assert_eq!(parse(raw).map_err(|e| e.status()), Err(400), "{raw:?}");
        }
    }

    #[test]
    fn oversized_heads_get_431() {
        let big = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        assert_eq!(parse(&big), Err(HttpError::HeadTooLarge));
        assert_eq!(parse(&big[..MAX_HEAD + 10]), Err(HttpError::HeadTooLarge));
        let many: String = (0..70).map(|i| format!("X{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n");
        assert_eq!(parse(&raw), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn host_rules_and_http10_framing() {
        assert_eq!(
            parse("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n").map_err(|e| e.status()),
            Err(400)
        );
        let h =
            head("GET / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(!h.keep_alive);
        let h =
            head("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn range_and_validators_are_kept_as_lists() {
        let h = head("GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=0-4\r\n\r\n");
        assert_eq!(h.range.as_deref(), Some("bytes=0-4"));
        assert_eq!(h.if_none_match, None);
        let h = head(
            "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"a\"\r\nif-none-match: W/\"b\" \r\n\r\n",
        );
        assert_eq!(h.if_none_match.as_deref(), Some("\"a\", W/\"b\""));
    }

    #[test]
    fn absolute_form_targets() {
        let h = head("GET http://example.com/healthz?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/healthz", "x=1"));
    }
}
