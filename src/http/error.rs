//! The errors a request can earn, each knowing its status code.

use std::fmt;

/// A request the daemon refuses; `status()` is what the client gets, and every
/// one of these closes the connection (the stream may be out of sync).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// 400: not HTTP, or a bad header value.
    Malformed(&'static str),
    /// 400: `Content-Length` with `Transfer-Encoding`, or conflicting lengths
    /// (RFC 9112 section 6.3: the request smuggling shapes).
    Smuggling(&'static str),
    /// 413: a body over [`super::MAX_BODY`].
    BodyTooLarge,
    /// 431: a head over [`super::MAX_HEAD`] or with too many headers.
    HeadTooLarge,
    /// 501: a transfer coding other than `chunked`.
    UnsupportedTransferCoding,
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::Smuggling(_) => 400,
            HttpError::BodyTooLarge => 413,
            HttpError::HeadTooLarge => 431,
            HttpError::UnsupportedTransferCoding => 501,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(why) => write!(f, "malformed request: {why}"),
            HttpError::Smuggling(why) => write!(f, "ambiguous request framing: {why}"),
            HttpError::BodyTooLarge => f.write_str("request body larger than 1 MiB"),
            HttpError::HeadTooLarge => f.write_str("request head larger than 8 KiB"),
            HttpError::UnsupportedTransferCoding => {
                f.write_str("unsupported transfer coding (only chunked)")
            }
        }
    }
}
