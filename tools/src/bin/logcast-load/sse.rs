//! Incremental, allocation-free Server-Sent Events parsing.
//!
//! The parser follows the WHATWG event-stream interpretation: lines end with
//! CRLF, LF or CR; a line starting with `:` is a comment; `name: value` with one
//! optional space after the colon; a line without a colon is a field with an
//! empty value; an empty line dispatches the event if it had any `data` field.
//! It does not keep the data: it only remembers what the load generator needs
//! (does the data start with `MARK <ns>[ <seq>]`, and the event type when it is
//! `end`, `shutdown` or `reset`), so its state is a few bytes per connection and
//! input may be split anywhere, down to one byte per call. A leading BOM is not
//! stripped (no SSE server sends one).
//!
//! With [`SseParser::with_time_lines`], a first data line that starts with
//! `[<RFC 3339 time>]` or `[LOG CREATED] <RFC 3339 time>` (the lines of
//! logcast's own simulated writer that carry the time they were written) is a
//! mark too, without a seq, stamped with that time (parsed incrementally, as
//! everything else here).
//!
//! The same parser reads nchan's EventSource subscriber (`: hi` comment at the
//! start, `id: <time>:<n>` ids, the published body as `data:`, no chunked
//! coding): a message published as `MARK <ns> <seq>` is a mark.
//!
//! [`Chunked`] removes HTTP/1.1 chunked transfer coding, for servers that use it.

/// Event type, as far as the load generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Message,
    End,
    Shutdown,
    Reset,
    Other,
}

/// One dispatched event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    /// `Some((unix_ns, seq))` when the data starts with `MARK <digits>`;
    /// seq is `None` when the number is not followed by ` <digits>`.
    pub mark: Option<(u64, Option<u32>)>,
}

// parser states
const LINE_START: u8 = 0;
const NAME: u8 = 1;
const VALUE: u8 = 2;
const COMMENT: u8 = 3;

// field being parsed
const F_OTHER: u8 = 0;
const F_DATA: u8 = 1;
const F_EVENT: u8 = 2;

// flags
const CR_PENDING: u8 = 1; // last byte was CR: a following LF belongs to it
const SKIP_SPACE: u8 = 2; // first value byte: skip one space
const HAS_DATA: u8 = 4; // this event has a data field
const DATA_LINE_DONE: u8 = 8; // the first data line of the event has ended
const IS_MARK: u8 = 16; // the first data line is a mark
const HAS_SEQ: u8 = 32; // ... with a sequence number
const TIME_LINES: u8 = 64; // mode: `[<RFC 3339>]` lines are marks too (kept across events)

// candidates for name matching ("data", "event") and event type values
const NAMES: [&[u8]; 2] = [b"data", b"event"];
const KINDS: [&[u8]; 4] = [b"message", b"end", b"shutdown", b"reset"];
const NO_CAND: u8 = 0xFF;

// mark matcher: 0..=4 match "MARK ", then:
const M_NS0: u8 = 5; // expecting the first ns digit
const M_NS: u8 = 6; // in ns digits
const M_SEQ0: u8 = 7; // after the space, expecting the first seq digit
const M_SEQ: u8 = 8; // in seq digits
                     // time lines (TIME_LINES mode): `[` then either `LOG CREATED] ` or the time
const T_OPEN: u8 = 11; // after `[`
const T_LOGC: u8 = 12; // in `LOG CREATED] ` (pos: bytes matched)
const T_DATE: u8 = 13; // in `YYYY-MM-DDTHH:MM:SS` (pos: index; seq: digits so far)
const T_SEC_END: u8 = 14; // after the seconds: `.`, `Z` or an offset
const T_FRAC: u8 = 15; // fraction digits (pos: how many, at most 9 kept)
const T_ZONE: u8 = 16; // after the fraction: `Z` or an offset
const T_OFF: u8 = 17; // in the offset `HH:MM` (pos: index; cand: 1 for `-`)
const M_TAIL: u8 = 200; // a mark, rest of the line ignored
const M_NO: u8 = 201; // not a mark (or not the first data line)

const LOG_CREATED: &[u8] = b"LOG CREATED] ";

/// Days from 1970-01-01 to the proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u64;
    let mp = (m as u64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as u64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i64 - 719_468
}

/// Parser state: 24 bytes.
#[derive(Clone, Debug)]
pub struct SseParser {
    ns: u64,
    seq: u32,
    state: u8,
    field: u8,
    cand: u8,
    pos: u8,
    flags: u8,
    mark: u8,
    kind: u8,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

fn kind_from(i: u8) -> Kind {
    match i {
        0 => Kind::Message,
        1 => Kind::End,
        2 => Kind::Shutdown,
        3 => Kind::Reset,
        _ => Kind::Other,
    }
}

impl SseParser {
    /// A parser for which data lines starting with `[<RFC 3339 time>]` or
    /// `[LOG CREATED] <RFC 3339 time>` are marks (seq `None`) too.
    pub fn with_time_lines() -> Self {
        let mut p = SseParser::new();
        p.flags |= TIME_LINES;
        p
    }

    pub fn new() -> Self {
        SseParser {
            ns: 0,
            seq: 0,
            state: LINE_START,
            field: F_OTHER,
            cand: NO_CAND,
            pos: 0,
            flags: 0,
            mark: M_NO,
            kind: 0,
        }
    }

    /// Feeds bytes; calls `on_event` for every dispatched event.
    pub fn feed<F: FnMut(Event)>(&mut self, buf: &[u8], mut on_event: F) {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            if self.flags & CR_PENDING != 0 {
                self.flags &= !CR_PENDING;
                if b == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match self.state {
                LINE_START => {
                    i += 1;
                    match b {
                        b'\r' | b'\n' => {
                            self.line_end(b);
                            self.dispatch(&mut on_event);
                        }
                        b':' => self.state = COMMENT,
                        _ => {
                            self.state = NAME;
                            self.cand = NAMES
                                .iter()
                                .position(|n| n[0] == b)
                                .map_or(NO_CAND, |p| p as u8);
                            self.pos = 1;
                        }
                    }
                }
                NAME => {
                    i += 1;
                    match b {
                        b':' => {
                            self.begin_value();
                            self.flags |= SKIP_SPACE;
                        }
                        b'\r' | b'\n' => {
                            self.begin_value();
                            self.end_field();
                            self.line_end(b);
                        }
                        _ => self.advance_cand(&NAMES, b),
                    }
                }
                VALUE => {
                    if self.flags & SKIP_SPACE != 0 {
                        self.flags &= !SKIP_SPACE;
                        if b == b' ' {
                            i += 1;
                            continue;
                        }
                    }
                    if b == b'\r' || b == b'\n' {
                        i += 1;
                        self.end_field();
                        self.line_end(b);
                    } else if self.field == F_DATA && self.mark < M_TAIL {
                        i += 1;
                        self.mark_byte(b);
                    } else if self.field == F_EVENT {
                        i += 1;
                        self.advance_cand(&KINDS, b);
                    } else {
                        i += skip_to_eol(&buf[i..]);
                    }
                }
                _ => {
                    // COMMENT
                    if b == b'\r' || b == b'\n' {
                        i += 1;
                        self.line_end(b);
                    } else {
                        i += skip_to_eol(&buf[i..]);
                    }
                }
            }
        }
    }

    fn line_end(&mut self, b: u8) {
        self.state = LINE_START;
        if b == b'\r' {
            self.flags |= CR_PENDING;
        }
    }

    fn advance_cand(&mut self, set: &[&[u8]], b: u8) {
        if self.cand != NO_CAND {
            let name = set[self.cand as usize];
            let p = self.pos as usize;
            if p < name.len() && name[p] == b {
                self.pos += 1;
            } else {
                // another candidate with the same prefix?
                self.cand = set
                    .iter()
                    .position(|n| n.len() > p && n[..p] == name[..p] && n[p] == b)
                    .map_or(NO_CAND, |c| c as u8);
                // pos > 0 also tells "the value was not empty"
                self.pos = self.pos.saturating_add(1);
            }
        }
    }

    fn cand_complete(&self, set: &[&[u8]]) -> Option<u8> {
        if self.cand != NO_CAND && set[self.cand as usize].len() == self.pos as usize {
            Some(self.cand)
        } else {
            None
        }
    }

    fn begin_value(&mut self) {
        self.state = VALUE;
        self.field = match self.cand_complete(&NAMES) {
            Some(0) => F_DATA,
            Some(_) => F_EVENT,
            None => F_OTHER,
        };
        match self.field {
            F_DATA => {
                self.mark = if self.flags & DATA_LINE_DONE == 0 {
                    0
                } else {
                    M_NO
                };
            }
            F_EVENT => {
                // an empty value means "message"
                self.cand = 0;
                self.pos = 0;
            }
            _ => {}
        }
    }

    fn mark_byte(&mut self, b: u8) {
        const PREFIX: &[u8] = b"MARK ";
        match self.mark {
            0 if b == b'[' && self.flags & TIME_LINES != 0 => self.mark = T_OPEN,
            m @ 0..=4 => {
                self.mark = if PREFIX[m as usize] == b { m + 1 } else { M_NO };
                if self.mark == M_NS0 {
                    self.ns = 0;
                    self.seq = 0;
                }
            }
            M_NS0 | M_NS => {
                if b.is_ascii_digit() {
                    self.ns = self.ns.wrapping_mul(10).wrapping_add((b - b'0') as u64);
                    self.mark = M_NS;
                } else if self.mark == M_NS && b == b' ' {
                    self.mark = M_SEQ0;
                } else if self.mark == M_NS {
                    self.mark = M_TAIL;
                } else {
                    self.mark = M_NO;
                }
            }
            M_SEQ0 | M_SEQ => {
                if b.is_ascii_digit() {
                    self.seq = self.seq.wrapping_mul(10).wrapping_add((b - b'0') as u32);
                    self.mark = M_SEQ;
                    self.flags |= HAS_SEQ;
                } else {
                    self.mark = M_TAIL;
                }
            }
            T_OPEN => {
                self.ns = 0;
                self.seq = 0;
                self.pos = 0;
                if b == LOG_CREATED[0] {
                    self.mark = T_LOGC;
                    self.pos = 1;
                } else {
                    self.mark = T_DATE;
                    self.time_byte(b);
                }
            }
            T_LOGC => {
                if LOG_CREATED[self.pos as usize] != b {
                    self.mark = M_NO;
                } else {
                    self.pos += 1;
                    if self.pos as usize == LOG_CREATED.len() {
                        self.mark = T_DATE;
                        self.pos = 0;
                    }
                }
            }
            _ => self.time_byte(b),
        }
    }

    /// One byte of an RFC 3339 time (`YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`):
    /// `ns` ends as unix nanoseconds; the mark becomes `M_TAIL` when complete.
    fn time_byte(&mut self, b: u8) {
        let digit = b.is_ascii_digit();
        let d = b.wrapping_sub(b'0') as u32;
        match self.mark {
            T_DATE => {
                let ok = match self.pos {
                    4 | 7 => b == b'-',
                    10 => matches!(b, b'T' | b't' | b' '),
                    13 | 16 => b == b':',
                    _ => digit,
                };
                if !ok {
                    self.mark = M_NO;
                    return;
                }
                if digit {
                    self.seq = self.seq * 10 + d;
                }
                if self.pos == 10 {
                    // seq = YYYYMMDD
                    let (y, m, day) = (self.seq / 10_000, self.seq / 100 % 100, self.seq % 100);
                    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || y < 1970 {
                        self.mark = M_NO;
                        return;
                    }
                    self.ns = days_from_civil(y as i64, m, day) as u64 * 86_400;
                    self.seq = 0;
                } else if self.pos == 18 {
                    // seq = HHMMSS
                    let (h, m, sec) = (self.seq / 10_000, self.seq / 100 % 100, self.seq % 100);
                    if h > 23 || m > 59 || sec > 60 {
                        self.mark = M_NO;
                        return;
                    }
                    self.ns += (h * 3600 + m * 60 + sec) as u64;
                    self.mark = T_SEC_END;
                    return;
                }
                self.pos += 1;
            }
            T_SEC_END => {
                self.ns = self.ns.wrapping_mul(1_000_000_000);
                match b {
                    b'.' => {
                        self.mark = T_FRAC;
                        self.seq = 0;
                        self.pos = 0;
                    }
                    _ => {
                        self.mark = T_ZONE;
                        self.time_byte(b);
                    }
                }
            }
            T_FRAC => {
                if digit {
                    if self.pos < 9 {
                        self.seq = self.seq * 10 + d;
                        self.pos += 1;
                    }
                } else if self.pos == 0 {
                    self.mark = M_NO;
                } else {
                    self.ns += self.seq as u64 * 10u64.pow(9 - self.pos as u32);
                    self.mark = T_ZONE;
                    self.time_byte(b);
                }
            }
            T_ZONE => match b {
                b'Z' | b'z' => self.mark = M_TAIL,
                b'+' | b'-' => {
                    self.mark = T_OFF;
                    self.cand = (b == b'-') as u8;
                    self.seq = 0;
                    self.pos = 0;
                }
                _ => self.mark = M_NO,
            },
            T_OFF => {
                let ok = if self.pos == 2 { b == b':' } else { digit };
                if !ok {
                    self.mark = M_NO;
                    return;
                }
                if digit {
                    self.seq = self.seq * 10 + d;
                }
                if self.pos == 4 {
                    let (h, m) = (self.seq / 100, self.seq % 100);
                    if h > 23 || m > 59 {
                        self.mark = M_NO;
                        return;
                    }
                    let off = (h * 3600 + m * 60) as u64 * 1_000_000_000;
                    // local = UTC + offset
                    self.ns = if self.cand == 1 {
                        self.ns.wrapping_add(off)
                    } else {
                        self.ns.wrapping_sub(off)
                    };
                    self.mark = M_TAIL;
                    return;
                }
                self.pos += 1;
            }
            _ => self.mark = M_NO,
        }
    }

    fn end_field(&mut self) {
        match self.field {
            F_DATA => {
                self.flags |= HAS_DATA;
                if self.flags & DATA_LINE_DONE == 0 {
                    self.flags |= DATA_LINE_DONE;
                    if matches!(self.mark, M_NS | M_SEQ0 | M_SEQ | M_TAIL) {
                        self.flags |= IS_MARK;
                    }
                }
                self.mark = M_NO;
            }
            F_EVENT => {
                self.kind = match self.cand_complete(&KINDS) {
                    Some(k) => k,
                    None if self.pos == 0 => 0,
                    None => 4,
                };
            }
            _ => {}
        }
        self.field = F_OTHER;
    }

    fn dispatch<F: FnMut(Event)>(&mut self, on_event: &mut F) {
        if self.flags & HAS_DATA != 0 {
            let mark = if self.flags & IS_MARK != 0 {
                Some((
                    self.ns,
                    if self.flags & HAS_SEQ != 0 {
                        Some(self.seq)
                    } else {
                        None
                    },
                ))
            } else {
                None
            };
            on_event(Event {
                kind: kind_from(self.kind),
                mark,
            });
        }
        self.flags &= CR_PENDING | TIME_LINES;
        self.kind = 0;
        self.mark = M_NO;
    }
}

fn skip_to_eol(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(buf.len())
}

/// Decoder of HTTP/1.1 chunked transfer coding (8 bytes of state).
#[derive(Clone, Debug, Default)]
pub struct Chunked {
    remaining: u32,
    state: u8,
}

const C_SIZE0: u8 = 0; // expecting the first hex digit of a chunk size
const C_SIZE: u8 = 1; // in hex digits
const C_EXT: u8 = 2; // chunk extension, skip to LF
const C_DATA: u8 = 3;
const C_DATA_END: u8 = 4; // CRLF after the chunk data
const C_TRAILER0: u8 = 5; // start of a trailer line (or the final empty line)
const C_TRAILER: u8 = 6; // in a trailer line
const C_DONE: u8 = 7;

impl Chunked {
    pub fn new() -> Self {
        Chunked::default()
    }

    /// True once the last chunk and trailer have been read.
    pub fn done(&self) -> bool {
        self.state == C_DONE
    }

    /// Feeds raw bytes; calls `out` with decoded body slices. Err on a
    /// malformed chunk size.
    pub fn feed<F: FnMut(&[u8])>(&mut self, buf: &[u8], mut out: F) -> Result<(), ()> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            match self.state {
                C_SIZE0 | C_SIZE => {
                    i += 1;
                    if let Some(d) = (b as char).to_digit(16) {
                        if self.remaining >= 1 << 27 {
                            return Err(());
                        }
                        self.remaining = self.remaining * 16 + d;
                        self.state = C_SIZE;
                    } else if self.state == C_SIZE0 {
                        return Err(());
                    } else {
                        match b {
                            b'\n' => self.size_done(),
                            b'\r' | b';' | b' ' | b'\t' => self.state = C_EXT,
                            _ => return Err(()),
                        }
                    }
                }
                C_EXT => {
                    i += 1;
                    if b == b'\n' {
                        self.size_done();
                    }
                }
                C_DATA => {
                    let n = (buf.len() - i).min(self.remaining as usize);
                    out(&buf[i..i + n]);
                    i += n;
                    self.remaining -= n as u32;
                    if self.remaining == 0 {
                        self.state = C_DATA_END;
                    }
                }
                C_DATA_END => {
                    i += 1;
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = C_SIZE0,
                        _ => return Err(()),
                    }
                }
                C_TRAILER0 => {
                    i += 1;
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = C_DONE,
                        _ => self.state = C_TRAILER,
                    }
                }
                C_TRAILER => {
                    i += 1;
                    if b == b'\n' {
                        self.state = C_TRAILER0;
                    }
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    fn size_done(&mut self) {
        self.state = if self.remaining == 0 {
            C_TRAILER0
        } else {
            C_DATA
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e));
        }
        out
    }

    /// Parses `input` whole, then split at every position, then one byte at
    /// a time; all must agree.
    fn parse_every_split(input: &[u8]) -> Vec<Event> {
        let whole = parse_all(&[input]);
        for k in 0..=input.len() {
            let (a, b) = input.split_at(k);
            assert_eq!(parse_all(&[a, b]), whole, "split at {k}");
            for m in k..=input.len() {
                let (b1, b2) = b.split_at(m - k);
                assert_eq!(parse_all(&[a, b1, b2]), whole, "split at {k},{m}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole, "byte at a time");
        whole
    }

    fn msg(mark: Option<(u64, Option<u32>)>) -> Event {
        Event {
            kind: Kind::Message,
            mark,
        }
    }

    #[test]
    fn logcast_frames() {
        let s = b"id: 10\ndata: hello\n\nid: 40\ndata: MARK 1700000000123456789 7\n\n";
        assert_eq!(
            parse_every_split(s),
            vec![msg(None), msg(Some((1700000000123456789, Some(7))))]
        );
    }

    #[test]
    fn line_endings_crlf_cr_lf_mixed() {
        for s in [
            &b"data: MARK 5 1\r\n\r\ndata: x\r\n\r\n"[..],
            &b"data: MARK 5 1\r\rdata: x\r\r"[..],
            &b"data: MARK 5 1\n\ndata: x\n\n"[..],
            &b"data: MARK 5 1\r\n\rdata: x\n\r\n"[..],
        ] {
            assert_eq!(
                parse_every_split(s),
                vec![msg(Some((5, Some(1)))), msg(None)],
                "{:?}",
                String::from_utf8_lossy(s)
            );
        }
        // CR then LF split across reads is one line end, not two
        assert_eq!(
            parse_all(&[b"data: a\r", b"\n", b"data: b\n\n"]),
            vec![msg(None)]
        );
        // CR CR is an empty line
        assert_eq!(parse_all(&[b"data: a\r", b"\r"]), vec![msg(None)]);
    }

    #[test]
    fn comments_and_keepalives_are_not_events() {
        let s = b": keepalive\n\n: hi\ndata: MARK 9 2\n: inner comment\n\n:\n\n";
        assert_eq!(parse_every_split(s), vec![msg(Some((9, Some(2))))]);
    }

    #[test]
    fn multi_data_only_first_line_decides_mark() {
        let s = b"data: MARK 1 2\ndata: more\n\ndata: first\ndata: MARK 3 4\n\ndata: MA\ndata: RK 5 6\n\n";
        assert_eq!(
            parse_every_split(s),
            vec![msg(Some((1, Some(2)))), msg(None), msg(None)]
        );
    }

    #[test]
    fn mark_forms() {
        let s = b"data:MARK 12 3\n\ndata: MARK 12\n\ndata: MARK 12 \n\ndata: MARK 12 34 tail\n\ndata: MARK x\n\ndata: MARK \n\ndata: MARKER 1 2\n\ndata:  MARK 1 2\n\ndata: MARK 12x\n\n";
        assert_eq!(
            parse_every_split(s),
            vec![
                msg(Some((12, Some(3)))),
                msg(Some((12, None))),
                msg(Some((12, None))),
                msg(Some((12, Some(34)))),
                msg(None),
                msg(None),
                msg(None),
                msg(None), // two spaces: data is " MARK 1 2"
                msg(Some((12, None))),
            ]
        );
    }

    #[test]
    fn fields_without_colon_ids_retry_unknown() {
        // "data" alone: data is empty string, still dispatched
        let s = b"data\n\nid: 5\nretry: 100\nfoo: MARK 1 1\n\nid\n\ndat: MARK 1 1\n\ndataa: x\n\n";
        assert_eq!(parse_every_split(s), vec![msg(None)]);
    }

    #[test]
    fn event_types() {
        let s = b"event: end\ndata: {\"reason\": \"finished\"}\n\nevent: shutdown\ndata: {}\n\nid: 0\nevent: reset\ndata: {\"offset\": 0}\n\nevent: message\ndata: MARK 1 1\n\nevent: other\ndata: x\n\nevent:\ndata: y\n\nevent: en\ndata: z\n\nevent: ends\ndata: z\n\nevent: end\n\ndata: after\n\n";
        let kinds: Vec<Kind> = parse_every_split(s).iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            vec![
                Kind::End,
                Kind::Shutdown,
                Kind::Reset,
                Kind::Message,
                Kind::Other,
                Kind::Message,
                Kind::Other,
                Kind::Other,
                // event without data is not dispatched and its type is reset
                Kind::Message,
            ]
        );
    }

    #[test]
    fn no_dispatch_without_blank_line() {
        assert_eq!(parse_all(&[b"data: MARK 1 1\n"]), vec![]);
        assert_eq!(parse_all(&[b"data: MARK 1 1"]), vec![]);
    }

    #[test]
    fn chunked_decoding_every_split() {
        let body = b"id: 1\ndata: MARK 77 1\n\n: keepalive\n\ndata: x\r\n\r\n";
        let mut enc = Vec::new();
        for part in [&body[..10], &body[10..11], &body[11..]] {
            enc.extend_from_slice(format!("{:X};ext=1\r\n", part.len()).as_bytes());
            enc.extend_from_slice(part);
            enc.extend_from_slice(b"\r\n");
        }
        enc.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        for k in 0..=enc.len() {
            let mut c = Chunked::new();
            let mut out = Vec::new();
            c.feed(&enc[..k], |s| out.extend_from_slice(s)).unwrap();
            c.feed(&enc[k..], |s| out.extend_from_slice(s)).unwrap();
            assert_eq!(out, body);
            assert!(c.done());
        }
        let mut c = Chunked::new();
        let mut p = SseParser::new();
        let mut ev = Vec::new();
        for byte in enc.chunks(1) {
            c.feed(byte, |s| p.feed(s, |e| ev.push(e))).unwrap();
        }
        assert_eq!(ev, vec![msg(Some((77, Some(1)))), msg(None)]);
    }

    #[test]
    fn chunked_rejects_garbage() {
        assert!(Chunked::new().feed(b"zz\r\n", |_| {}).is_err());
        assert!(Chunked::new().feed(b"\r\n", |_| {}).is_err());
        assert!(Chunked::new().feed(b"FFFFFFFFFF\r\n", |_| {}).is_err());
        assert!(Chunked::new().feed(b"1\r\nab", |_| {}).is_err());
    }

    fn parse_time_lines(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = SseParser::with_time_lines();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |e| out.push(e));
        }
        out
    }

    #[test]
    fn time_lines_of_logcasts_writer() {
        let s: &[u8] = b"id: 39\ndata: [LOG CREATED] 2026-11-27T18:02:06.123Z\n\n\
id: 80\ndata: [2000-02-29T00:00:00.000Z] The quick brown fox.\n\n\
id: 90\ndata: a sentence [2000-02-29T00:00:00.000Z]\n\n\
id: 99\ndata: [2026-12-01T08:16:37.5+01:30] x\n\n\
data: [2024-03-01T23:59:59-00:45]\n\n\
data: [2024-03-01t23:59:59.123456789123z]\n\n\
data: MARK 5 6\n\n";
        let want = vec![
            msg(Some((1_795_802_526_123_000_000, None))),
            msg(Some((951_782_400_000_000_000, None))),
            msg(None),
            msg(Some((1_796_107_597_500_000_000, None))),
            msg(Some((1_709_340_299_000_000_000, None))),
            msg(Some((1_709_337_599_123_456_789, None))),
            msg(Some((5, Some(6)))),
        ];
        // whole, split at every point, byte by byte
        assert_eq!(parse_time_lines(&[s]), want);
        for k in 0..=s.len() {
            let (a, b) = s.split_at(k);
            assert_eq!(parse_time_lines(&[a, b]), want, "split at {k}");
        }
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(parse_time_lines(&bytes), want);
        // without the mode, only the MARK line is a mark
        let plain: Vec<Event> = parse_all(&[s]);
        assert_eq!(plain.iter().filter(|e| e.mark.is_some()).count(), 1);
    }

    #[test]
    fn time_lines_reject_what_is_not_a_time() {
        for line in [
            &b"[LOG CREATED]2026-11-27T18:02:06.123Z"[..],
            b"[LOG CREATE] 2026-11-27T18:02:06.123Z",
            b"[2026-13-27T18:02:06.123Z]",
            b"[2026-11-27T24:02:06.123Z]",
            b"[2026-11-27T18:02:06.Z]",
            b"[2026-11-27T18:02:06.123]",
            b"[2026-11-27T18:02:06.123+0100]",
            b"[2026-11-27 18:02]",
            b"[1969-12-31T23:59:59Z]",
            b"[x]",
            b"[",
        ] {
            let mut s = b"data: ".to_vec();
            s.extend_from_slice(line);
            s.extend_from_slice(b"\n\n");
            assert_eq!(
                parse_time_lines(&[&s]),
                vec![msg(None)],
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // a space is a valid date/time separator (RFC 3339, 5.6 note)
        assert_eq!(
            parse_time_lines(&[b"data: [1970-01-02 00:00:01Z]\n\n"]),
            vec![msg(Some((86_401_000_000_000, None)))]
        );
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 11, 27), 20_784);
    }

    #[test]
    fn nchan_eventsource_frames() {
        // bytes as nchan 1.3.6 (Debian's libnginx-mod-nchan) sends them after
        // its response head: a `: hi` comment, then one event per published
        // message with a `<time>:<n>` id
        let s = b": hi\n\nid: 1796112997:0\ndata: MARK 123 0\n\nid: 1796112997:1\ndata: MARK 124 1\n\n: ping\n\nid: 1796112998:0\ndata: not a mark\n\n";
        assert_eq!(
            parse_every_split(s),
            vec![
                msg(Some((123, Some(0)))),
                msg(Some((124, Some(1)))),
                msg(None)
            ]
        );
        // a message published with a newline in it arrives as two data lines
        assert_eq!(
            parse_every_split(b"id: 1:2\ndata: MARK 7 3\ndata: second line\n\n"),
            vec![msg(Some((7, Some(3))))]
        );
    }

    #[test]
    fn parser_state_is_small() {
        assert!(std::mem::size_of::<SseParser>() <= 24);
        assert!(std::mem::size_of::<Chunked>() <= 8);
    }
}
