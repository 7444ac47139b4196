//! Which endpoint a request names, with its parameters checked: the whole
//! URL surface of SPEC section 3 in one table-like function. Pure: the
//! server does the I/O. Path segments are percent-decoded *after* splitting,
//! so an encoded `/` can never change which route matches, and ids are
//! checked by [`crate::logs::valid_id`] before any file is touched.

use crate::filter::FilterSpec;
use crate::http::{Method, RequestHead, Response};
use crate::logs::index::{Cursor, DEFAULT_PAGE, MAX_PAGE};
use crate::logs::valid_id;

/// Default and limits of `POST /api/logs?duration=N`, in seconds.
pub const DEFAULT_DURATION_S: u64 = 30;
pub const MAX_DURATION_S: u64 = 3600;

#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    Page {
        log: Option<String>,
    },
    Healthz,
    Metrics,
    ListLogs {
        limit: usize,
        before: Option<Cursor>,
    },
    CreateLog {
        duration_s: u64,
    },
    LogInfo {
        id: String,
    },
    DeleteLog {
        id: String,
    },
    /// A CORS preflight (`OPTIONS` with `Access-Control-Request-Method`)
    /// on an `/api/` path.
    Preflight,
    Stream(StreamRequest),
    /// `GET /api/events`, resuming after the change named by
    /// `Last-Event-ID` (wins), `?since=` or `?last_event_id=`.
    Events {
        since: Option<String>,
    },
    Raw(RawRequest),
}

/// `GET /api/logs/<id>/raw`: the file itself (the range is in the head).
#[derive(Debug, PartialEq, Eq)]
pub struct RawRequest {
    pub id: String,
    /// `?download=1`: `Content-Disposition: attachment`.
    pub download: bool,
}

/// Where a stream should start.
#[derive(Debug, PartialEq, Eq)]
pub struct StreamRequest {
    pub id: String,
    /// A byte offset from `Last-Event-ID` (wins), `?last_event_id=` or `?from=`.
    pub resume: Option<u64>,
    /// `?tail=n`: start with the last n lines (ignored when resuming).
    pub tail: Option<u64>,
    /// `?grep=` and `?exclude=`, as given (compiled by the engine, once per
    /// distinct filter on a log).
    pub filter: FilterSpec,
}

/// Maps a request to its endpoint, or to the error response it earns.
pub fn route(head: &RequestHead) -> Result<Endpoint, Response> {
    let segments: Vec<&str> = head.path.split('/').skip(1).collect();
    let query = Query(&head.query);
    if head.method == Method::Options && head.preflight && segments.first() == Some(&"api") {
        return Ok(Endpoint::Preflight);
    }
    match segments.as_slice() {
        [""] => get_only(head, "GET, HEAD", || Endpoint::Page {
            log: query.get("log"),
        }),
        ["healthz"] => get_only(head, "GET, HEAD", || Endpoint::Healthz),
        ["metrics"] => get_only(head, "GET, HEAD", || Endpoint::Metrics),
        ["api", "logs"] => match head.method {
            Method::Get | Method::Head => list(&query),
            Method::Post => Ok(Endpoint::CreateLog {
                duration_s: duration(&query)?,
            }),
            _ => Err(not_allowed("GET, HEAD, POST")),
        },
        ["api", "logs", id] => {
            let id = log_id(id)?;
            match head.method {
                Method::Get | Method::Head => Ok(Endpoint::LogInfo { id }),
                Method::Delete => Ok(Endpoint::DeleteLog { id }),
                _ => Err(not_allowed("GET, HEAD, DELETE")),
            }
        }
        ["api", "logs", id, "stream"] => {
            let id = log_id(id)?;
            if head.method != Method::Get {
                return Err(not_allowed("GET"));
            }
            Ok(Endpoint::Stream(stream_request(id, head, &query)?))
        }
        ["api", "events"] => {
            if head.method != Method::Get {
                return Err(not_allowed("GET"));
            }
            let since = (head.last_event_id.clone().into_iter())
                .chain(query.get("since"))
                .chain(query.get("last_event_id"))
                .find(|id| !id.is_empty());
            Ok(Endpoint::Events { since })
        }
        ["api", "logs", id, "raw"] => {
            let id = log_id(id)?;
            let download = download(&query)?;
            get_only(head, "GET, HEAD", || {
                Endpoint::Raw(RawRequest { id, download })
            })
        }
        _ => Err(Response::error(404, "not found")),
    }
}

/// `?download=1` (or `true`); `0`, `false` or no parameter: shown inline.
fn download(query: &Query<'_>) -> Result<bool, Response> {
    match query.get("download").as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true" | "") => Ok(true),
        Some(_) => Err(Response::error(400, "download must be 1 or 0")),
    }
}

fn get_only(
    head: &RequestHead,
    allow: &'static str,
    endpoint: impl FnOnce() -> Endpoint,
) -> Result<Endpoint, Response> {
    match head.method {
        Method::Get | Method::Head => Ok(endpoint()),
        _ => Err(not_allowed(allow)),
    }
}

fn not_allowed(allow: &'static str) -> Response {
    Response::error(405, "method not allowed").header("Allow", allow)
}

fn log_id(segment: &str) -> Result<String, Response> {
    match percent_decode(segment) {
        Some(id) if valid_id(&id) => Ok(id),
        _ => Err(Response::error(404, "no such log")),
    }
}

fn duration(query: &Query<'_>) -> Result<u64, Response> {
    let Some(raw) = query.get("duration") else {
        return Ok(DEFAULT_DURATION_S);
    };
    match parse_number(&raw) {
        Some(n) if (1..=MAX_DURATION_S).contains(&n) => Ok(n),
        _ => Err(Response::error(
            400,
            "duration must be a whole number of seconds from 1 to 3600",
        )),
    }
}

/// `?limit=N` (1..=10000) and `?before=CURSOR` of the list.
fn list(query: &Query<'_>) -> Result<Endpoint, Response> {
    let limit = match query.get("limit") {
        None => DEFAULT_PAGE,
        Some(raw) => match parse_number(&raw) {
            Some(n) if (1..=MAX_PAGE as u64).contains(&n) => n as usize,
            _ => {
                return Err(Response::error(
                    400,
                    "limit must be a whole number from 1 to 10000",
                ))
            }
        },
    };
    let before =
        match (query.get("before"), query.has("before")) {
            (None, false) => None,
            (raw, _) => Some(raw.as_deref().and_then(Cursor::parse).ok_or_else(|| {
                Response::error(400, "before must be a cursor from a Link header")
            })?),
        };
    Ok(Endpoint::ListLogs { limit, before })
}

fn stream_request(
    id: String,
    head: &RequestHead,
    query: &Query<'_>,
) -> Result<StreamRequest, Response> {
    // A value that is not a number is ignored (SPEC section 3).
    let resume = head
        .last_event_id
        .as_deref()
        .and_then(parse_number)
        .or_else(|| query.get("last_event_id").as_deref().and_then(parse_number))
        .or_else(|| query.get("from").as_deref().and_then(parse_number));
    let tail = match query.get("tail") {
        None => None,
        Some(raw) => Some(
            parse_number(&raw)
                .ok_or_else(|| Response::error(400, "tail must be a whole number"))?,
        ),
    };
    let filter = FilterSpec {
        grep: filter_param(query, "grep")?,
        exclude: filter_param(query, "exclude")?,
    };
    Ok(StreamRequest {
        id,
        resume,
        tail,
        filter,
    })
}

/// A filter expression from the query; one that does not decode is a 400,
/// not a stream of everything. An empty one is no filter.
fn filter_param(query: &Query, name: &str) -> Result<Option<String>, Response> {
    match query.get(name) {
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => Ok(Some(v)),
        None if query.has(name) => Err(Response::error(
            400,
            &format!("{name}: not valid percent-encoded UTF-8"),
        )),
        None => Ok(None),
    }
}

/// Digits only (no sign, no spaces), as a u64.
pub fn parse_number(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A raw query string.
struct Query<'a>(&'a str);

impl Query<'_> {
    /// Whether a pair named `name` is present, whatever its value.
    fn has(&self, name: &str) -> bool {
        self.0
            .split('&')
            .any(|pair| pair.split_once('=').map_or(pair, |(k, _)| k) == name)
    }

    /// The decoded value of the first `name=value` pair for `name`.
    fn get(&self, name: &str) -> Option<String> {
        self.0.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(&k.replace('+', " "))?;
            (k == name)
                .then(|| percent_decode(&v.replace('+', " ")))
                .flatten()
        })
    }
}

/// Decodes `%XX` escapes; `None` on a bad escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::BodyKind;

    fn head(method: Method, target: &str) -> RequestHead {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        RequestHead {
            method,
            path: path.to_string(),
            query: query.to_string(),
            minor_version: 1,
            keep_alive: true,
            body: BodyKind::None,
            last_event_id: None,
            expect_continue: false,
            authorization: None,
            origin: None,
            preflight: false,
            range: None,
            if_none_match: None,
        }
    }

    fn status(method: Method, target: &str) -> u16 {
        route(&head(method, target)).err().map_or(200, |r| r.status)
    }

    #[test]
    fn routes_and_methods() {
        assert_eq!(
            route(&head(Method::Get, "/")),
            Ok(Endpoint::Page { log: None })
        );
        assert_eq!(
            route(&head(Method::Head, "/healthz")),
            Ok(Endpoint::Healthz)
        );
        assert_eq!(
            route(&head(Method::Post, "/api/logs?duration=5")),
            Ok(Endpoint::CreateLog { duration_s: 5 })
        );
        assert_eq!(
            route(&head(Method::Post, "/api/logs")),
            Ok(Endpoint::CreateLog { duration_s: 30 })
        );
        assert_eq!(status(Method::Post, "/healthz"), 405);
        assert_eq!(status(Method::Head, "/api/logs/x/stream"), 405);
        assert_eq!(status(Method::Get, "/nope"), 404);
        let err = route(&head(Method::Post, "/")).expect_err("405");
        assert!(err.headers.contains(&("Allow", "GET, HEAD".to_string())));
    }

    #[test]
    fn durations() {
        for bad in ["0", "-1", "abc", "99999", "3601", "1.5", ""] {
            assert_eq!(
                status(Method::Post, &format!("/api/logs?duration={bad}")),
                400,
                "{bad}"
            );
        }
        assert_eq!(status(Method::Post, "/api/logs?duration=3600"), 200);
    }

    #[test]
    fn traversal_never_routes() {
        for target in [
            "/api/logs/..",
            "/api/logs/%2e%2e",
            "/api/logs/..%2F..%2Fetc%2Fpasswd",
            "/api/logs/%2Fetc%2Fpasswd/stream",
            "/api/logs//etc/passwd",
            "/api/logs/.hidden",
            "/api/logs/a%00b",
            "/api/logs/%zz",
        ] {
            assert_eq!(status(Method::Get, target), 404, "{target}");
        }
    }

    #[test]
    fn raw_parameters() {
        assert_eq!(
            route(&head(Method::Get, "/api/logs/abc/raw?download=1")),
            Ok(Endpoint::Raw(RawRequest {
                id: "abc".into(),
                download: true
            }))
        );
        assert_eq!(
            route(&head(Method::Head, "/api/logs/abc/raw")),
            Ok(Endpoint::Raw(RawRequest {
                id: "abc".into(),
                download: false
            }))
        );
        assert_eq!(status(Method::Get, "/api/logs/abc/raw?download=yes"), 400);
        assert_eq!(status(Method::Post, "/api/logs/abc/raw"), 405);
        assert_eq!(
            status(Method::Get, "/api/logs/..%2f..%2fetc%2fpasswd/raw"),
            404
        );
        assert_eq!(status(Method::Get, "/api/logs/%2e%2e/raw"), 404);
    }

    #[test]
    fn stream_parameters() {
        let mut h = head(Method::Get, "/api/logs/abc/stream?from=10&tail=2");
        let Ok(Endpoint::Stream(s)) = route(&h) else {
            panic!("stream")
        };
        assert_eq!(
            (s.id.as_str(), s.resume, s.tail),
            ("abc", Some(10), Some(2))
        );
        h.last_event_id = Some("42".into());
        let Ok(Endpoint::Stream(s)) = route(&h) else {
            panic!("stream")
        };
        assert_eq!(s.resume, Some(42));
        let h = head(Method::Get, "/api/logs/abc/stream?last_event_id=x");
        let Ok(Endpoint::Stream(s)) = route(&h) else {
            panic!("stream")
        };
        assert_eq!(s.resume, None);
    }

    #[test]
    fn events_resume_from_the_header_first() {
        let mut h = head(Method::Get, "/api/events?since=a-1");
        assert_eq!(
            route(&h),
            Ok(Endpoint::Events {
                since: Some("a-1".into())
            })
        );
        h.last_event_id = Some("a-2".into());
        assert_eq!(
            route(&h),
            Ok(Endpoint::Events {
                since: Some("a-2".into())
            })
        );
        assert_eq!(
            route(&head(Method::Get, "/api/events?since=")),
            Ok(Endpoint::Events { since: None })
        );
        assert_eq!(status(Method::Head, "/api/events"), 405);
    }
}
