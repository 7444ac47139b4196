//! HTTP/1.1 without I/O: request heads parsed with `httparse`, bodies decoded
//! (and discarded), responses formatted into byte buffers. Everything here
//! works on byte slices, so requests split at any byte, pipelined requests and
//! hostile input are unit-tested without sockets. Rules cite RFC 9112.

pub mod body;
pub mod error;
pub mod etag;
pub mod range;
pub mod request;
pub mod response;

pub use body::{BodyDecoder, BodyProgress};
pub use error::HttpError;
pub use request::{parse_head, BodyKind, Method, RequestHead, MAX_HEAD};
pub use response::Response;

/// Request bodies are read and discarded up to this size (SPEC section 2).
pub const MAX_BODY: u64 = 1024 * 1024;
