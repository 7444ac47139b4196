//! Responses, formatted into the connection's output buffer. Every response
//! carries `Server: logcast`; every one but 204 and 304, which have no body,
//! carries `Content-Length` (SPEC section 2). Event streams have their own head, [`stream_head`].
//! A body the buffer need not hold (fixed bytes, a file) is announced by
//! [`Response::write_head`] and sent by the connection from where it lies.

use std::borrow::Cow;

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

/// A complete, non-streaming response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Cow<'static, [u8]>,
    /// Extra header lines, e.g. `("Allow", "GET, HEAD")`.
    pub headers: Vec<(&'static str, String)>,
    /// Close the connection after this response.
    pub close: bool,
    /// The length to announce when the bytes are not in `body`: a range of
    /// a file, or the representation a 304 or a HEAD stands for.
    pub length: Option<u64>,
}

impl Response {
    pub fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
            close: false,
            length: None,
        }
    }

    /// A response whose `length` bytes of body are sent from elsewhere
    /// (or, for HEAD and 304, not at all).
    pub fn announcing(status: u16, content_type: &'static str, length: u64) -> Response {
        Response {
            length: Some(length),
            ..Response::new(status, content_type, &b""[..])
        }
    }

    pub fn json(status: u16, body: String) -> Response {
        Response::new(status, JSON, body.into_bytes())
    }

    /// A JSON error `{"error": "..."}`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(status, crate::json::error(message))
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    /// Appends the response to `out`; `head_only` for HEAD requests (the
    /// headers still announce the body's length, RFC 9110 section 9.3.2).
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool) {
        self.write_head(out);
        if !head_only && self.has_body() {
            out.extend_from_slice(&self.body);
        }
    }

    /// Appends the status line and headers only.
    pub fn write_head(&self, out: &mut Vec<u8>) {
        write_status_line(out, self.status);
        out.extend_from_slice(b"Server: logcast\r\n");
        match self.status {
            // RFC 9110 section 8.6 would let a 304 announce the length of
            // the 200 it stands for, but clients that frame by that header
            // alone (wrk's http_parser) then wait for a body that never comes.
            204 | 304 => {}
            _ => {
                push_header(out, "Content-Type", self.content_type);
                push_header(out, "Content-Length", &self.len().to_string());
            }
        }
        for (name, value) in &self.headers {
            push_header(out, name, value);
        }
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Whether bytes follow the head (RFC 9110 sections 15.3.5, 15.4.5).
    pub fn has_body(&self) -> bool {
        !matches!(self.status, 204 | 304)
    }

    /// The length `Content-Length` announces.
    fn len(&self) -> u64 {
        self.length.unwrap_or(self.body.len() as u64)
    }

    /// The whole response as bytes (used to pre-render static responses once).
    pub fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 160);
        self.write_to(&mut out, head_only);
        out
    }
}

/// The head of an event stream: no length, never compressed, and headers that
/// stop proxies from buffering (SSE-NOTES, "Deployment pitfalls").
/// `extra` carries per-request headers (CORS).
pub fn stream_head(out: &mut Vec<u8>, extra: &[(&'static str, String)]) {
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\n\
          Server: logcast\r\n\
          Content-Type: text/event-stream\r\n\
          Cache-Control: no-cache\r\n\
          X-Accel-Buffering: no\r\n\
          Connection: keep-alive\r\n",
    );
    for (name, value) in extra {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Reason phrases for the statuses logcast sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_json_error() {
        let r = Response::error(404, "no such log").closing();
        let text = String::from_utf8(r.to_bytes(false)).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nServer: logcast\r\nContent-Type: application/json\r\n\
             Content-Length: 24\r\nConnection: close\r\n\r\n{\"error\": \"no such log\"}"
        );
    }

    #[test]
    fn head_keeps_length_but_drops_body() {
        let r = Response::new(200, TEXT, &b"ok"[..]);
        let text = String::from_utf8(r.to_bytes(true)).expect("utf8");
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn announced_lengths_have_no_body_here() {
        let r = Response::announcing(206, TEXT, 1 << 40).header("Content-Range", "x");
        let text = String::from_utf8(r.to_bytes(false)).expect("utf8");
        assert!(text.contains("Content-Length: 1099511627776\r\n"), "{text}");
        assert!(text.ends_with("Content-Range: x\r\n\r\n"), "{text}");
        let r = Response::announcing(304, HTML, 10).header("ETag", "\"t\"");
        let text = String::from_utf8(r.to_bytes(false)).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 304 Not Modified\r\nServer: logcast\r\nETag: \"t\"\r\n\r\n"
        );
    }

    #[test]
    fn no_content_has_no_length() {
        let text =
            String::from_utf8(Response::new(204, TEXT, &b""[..]).to_bytes(false)).expect("utf8");
        assert_eq!(text, "HTTP/1.1 204 No Content\r\nServer: logcast\r\n\r\n");
    }
}
