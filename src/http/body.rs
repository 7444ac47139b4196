//! Request bodies, read and thrown away: no endpoint needs one, but RFC 9112
//! section 6 requires a server to find where a body ends before it can read
//! the next pipelined request, and section 7.1 requires every HTTP/1.1
//! recipient to decode `chunked`. The decoder is a byte-at-a-time state
//! machine, so a body split at any byte decodes the same.

use super::{BodyKind, HttpError, MAX_BODY};

/// Where a body is in its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyDecoder {
    /// `Content-Length`: this many bytes still to skip.
    Length(u64),
    /// `data` counts chunk data (limited to [`MAX_BODY`]); `total` counts
    /// every byte read, framing (sizes, extensions, trailers) included, so no
    /// part of a chunked body escapes a limit.
    Chunked {
        state: ChunkState,
        data: u64,
        total: u64,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Reading hex digits of a chunk size (`size` so far, `digits` seen).
    Size {
        size: u64,
        digits: u8,
    },
    /// Skipping a chunk extension up to CRLF.
    Extension {
        size: u64,
    },
    /// Expecting the LF of the size line.
    SizeLf {
        size: u64,
    },
    /// Skipping chunk data.
    Data {
        left: u64,
    },
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    TrailerLf,
    /// Expecting the LF of the empty line that ends the body.
    EndLf,
    /// The body is over.
    Complete,
}

/// What feeding bytes achieved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyProgress {
    /// All `n` bytes were body; more is needed.
    NeedMore,
    /// The body ended after `n` bytes of the input; the rest is the next request.
    Done(usize),
}

impl BodyDecoder {
    /// A decoder for `kind`, or `None` when there is no body. A declared
    /// length over the limit is refused before any byte is read.
    pub fn new(kind: BodyKind) -> Result<Option<BodyDecoder>, HttpError> {
        match kind {
            BodyKind::None => Ok(None),
            BodyKind::Length(n) if n > MAX_BODY => Err(HttpError::BodyTooLarge),
            BodyKind::Length(n) => Ok(Some(BodyDecoder::Length(n))),
            BodyKind::Chunked => Ok(Some(BodyDecoder::Chunked {
                state: ChunkState::Size { size: 0, digits: 0 },
                data: 0,
                total: 0,
            })),
        }
    }

    /// Consumes body bytes from the start of `input`.
    pub fn feed(&mut self, input: &[u8]) -> Result<BodyProgress, HttpError> {
        match self {
            BodyDecoder::Length(left) => {
                let take = (*left).min(input.len() as u64);
                *left -= take;
                Ok(if *left == 0 {
                    BodyProgress::Done(take as usize)
                } else {
                    BodyProgress::NeedMore
                })
            }
            BodyDecoder::Chunked { state, data, total } => feed_chunked(state, data, total, input),
        }
    }
}

fn feed_chunked(
    state: &mut ChunkState,
    data: &mut u64,
    total: &mut u64,
    input: &[u8],
) -> Result<BodyProgress, HttpError> {
    let mut i = 0;
    while i < input.len() {
        if let ChunkState::Data { left } = state {
            // Skip data in bulk rather than byte by byte.
            let take = (*left).min((input.len() - i) as u64);
            *left -= take;
            i += take as usize;
            if *left == 0 {
                *state = ChunkState::DataCr;
            }
            continue;
        }
        let next = step(*state, input[i])?;
        i += 1;
        *total += 1;
        if let ChunkState::Data { left } = next {
            *data += left;
            *total += left;
        }
        if *data > MAX_BODY || *total > MAX_BODY + FRAMING_ALLOWANCE {
            return Err(HttpError::BodyTooLarge);
        }
        if next == ChunkState::Complete {
            return Ok(BodyProgress::Done(i));
        }
        *state = next;
    }
    Ok(BodyProgress::NeedMore)
}

/// Room for chunk-size lines around 1 MiB of data (the limit is on the
/// body as sent, framing included, with this much slack for the framing).
const FRAMING_ALLOWANCE: u64 = 16 * 1024;

const BAD: HttpError = HttpError::Malformed("bad chunked encoding");

/// One byte of chunked framing outside chunk data (RFC 9112 section 7.1).
/// Returns `Complete` once the body is over.
fn step(state: ChunkState, b: u8) -> Result<ChunkState, HttpError> {
    use ChunkState::*;
    Ok(match state {
        Size { size, digits } => match (b as char).to_digit(16) {
            Some(d) if digits < 15 => Size {
                size: size * 16 + u64::from(d),
                digits: digits + 1,
            },
            Some(_) => return Err(HttpError::BodyTooLarge),
            None if digits == 0 => return Err(BAD),
            None if b == b';' || b == b' ' || b == b'\t' => Extension { size },
            None if b == b'\r' => SizeLf { size },
            None => return Err(BAD),
        },
        Extension { size } => match b {
            b'\r' => SizeLf { size },
            b'\n' => return Err(BAD),
            _ => Extension { size },
        },
        SizeLf { size } => match (b, size) {
            (b'\n', 0) => TrailerStart,
            (b'\n', left) => Data { left },
            _ => return Err(BAD),
        },
        // Data is skipped in bulk by the caller; a zero-length remainder
        // cannot occur because `Data` is only entered with `left > 0`.
        Data { left } => Data { left },
        DataCr if b == b'\r' => DataLf,
        DataLf if b == b'\n' => Size { size: 0, digits: 0 },
        TrailerStart if b == b'\r' => EndLf,
        TrailerStart | Trailer if b != b'\r' && b != b'\n' => Trailer,
        Trailer if b == b'\r' => TrailerLf,
        TrailerLf if b == b'\n' => TrailerStart,
        EndLf if b == b'\n' => Complete,
        _ => return Err(BAD),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(body: &[u8], kind: BodyKind) -> Result<Option<usize>, HttpError> {
        // Feed one byte at a time; the result must not depend on the split.
        let mut d = BodyDecoder::new(kind)?.expect("has body");
        for (i, b) in body.iter().enumerate() {
            if let BodyProgress::Done(n) = d.feed(std::slice::from_ref(b))? {
                assert_eq!(n, 1);
                return Ok(Some(i + 1));
            }
        }
        Ok(None)
    }

    fn decode_whole(body: &[u8], kind: BodyKind) -> Result<Option<usize>, HttpError> {
        let mut d = BodyDecoder::new(kind)?.expect("has body");
        Ok(match d.feed(body)? {
            BodyProgress::Done(n) => Some(n),
            BodyProgress::NeedMore => None,
        })
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"5;name=val\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /next";
        let end = body.len() - "GET /next".len();
        assert_eq!(decode_whole(body, BodyKind::Chunked), Ok(Some(end)));
        assert_eq!(decode_split(body, BodyKind::Chunked), Ok(Some(end)));
    }

    #[test]
    fn chunked_simple_and_incomplete() {
        let body = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
        assert_eq!(decode_whole(body, BodyKind::Chunked), Ok(Some(body.len())));
        assert_eq!(
            decode_whole(&body[..body.len() - 1], BodyKind::Chunked),
            Ok(None)
        );
    }

    #[test]
    fn chunked_errors() {
        for bad in [
            &b"x\r\n"[..],
            b"5\nhello",
            b"5\r\nhelloXX",
            b"\r\n",
            b"0\r\n\n",
        ] {
            assert!(decode_whole(bad, BodyKind::Chunked).is_err(), "{bad:?}");
        }
        assert_eq!(
            decode_whole(b"100001\r\n", BodyKind::Chunked),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(
            decode_whole(b"ffffffffffffffffff\r\n", BodyKind::Chunked),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn chunked_total_over_limit_is_413() {
        let mut body = Vec::new();
        for _ in 0..17 {
            body.extend_from_slice(b"10000\r\n");
            body.extend_from_slice(&[b'a'; 0x10000]);
            body.extend_from_slice(b"\r\n");
        }
        assert_eq!(
            decode_whole(&body, BodyKind::Chunked),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn extensions_and_trailers_count_toward_the_limit() {
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'e', 2 << 20));
        assert_eq!(
            decode_whole(&long_ext, BodyKind::Chunked),
            Err(HttpError::BodyTooLarge)
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..100_000 {
            trailers.extend_from_slice(b"X-T: aaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(
            decode_whole(&trailers, BodyKind::Chunked),
            Err(HttpError::BodyTooLarge)
        );
    }

    #[test]
    fn content_length() {
        assert_eq!(decode_whole(b"abcdeNEXT", BodyKind::Length(5)), Ok(Some(5)));
        assert_eq!(decode_split(b"abcde", BodyKind::Length(5)), Ok(Some(5)));
        assert_eq!(
            BodyDecoder::new(BodyKind::Length(MAX_BODY + 1)),
            Err(HttpError::BodyTooLarge)
        );
        assert_eq!(BodyDecoder::new(BodyKind::None), Ok(None));
    }
}
