//! The server's streaming decoder of client requests, following Redis 7.0's
//! `processInputBuffer` rule for rule.
//!
//! A request starting with `*` is a multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`); anything
//! else is an inline command, one line split like a shell would (see [`crate::split_args`]).
//! Empty inline lines and `*0`/`*-1` are skipped.
//!
//! The decoder is stateful so that each call only looks at bytes it has not examined yet:
//! finished arguments of a partial multibulk are split off the read buffer and kept, the
//! length of the bulk being received is remembered, and the search for a line end resumes
//! where it stopped. A 500 MB argument arriving in 64 KB reads costs linear time, and
//! [`RequestDecoder::wanted_capacity`] lets the caller grow its buffer once for it.
//!
//! Redis quirks kept on purpose, because clients can observe them:
//! * the byte after a `\r` ending a `*N`/`$N` line, and the two bytes after a bulk payload,
//!   are skipped without checking that they are `\n` / `\r\n`;
//! * Redis finds line ends with `strchr`, which stops at a NUL byte: a NUL before the line end
//!   means the line never ends, and the request fails once it exceeds `max_inline_len`;
//! * numbers are parsed with `string2ll` strictness ([`crate::parse_i64_strict`]).
//!
//! One deliberate difference: Redis checks the 64 KiB line limit only when a read leaves no
//! line end in its buffer, so whether a 70 KiB inline command is accepted depends on how the
//! kernel split the stream. Here a line end must appear within the first `max_inline_len + 1`
//! bytes, whatever the chunking, so the outcome depends only on the bytes sent.

use bytes::{Buf, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::limits::{Limits, PROTO_MBULK_BIG_ARG};
use crate::number::parse_i64_strict;
use crate::split::split_args;

/// Never reserve room for more arguments than this from a client-declared count: memory
/// must follow the bytes actually received.
const ARGV_PREALLOC_CAP: usize = 1024;
/// Before authentication Redis allows at most this many arguments per request...
const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// ...and bulk arguments of at most this many bytes.
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// Outcome of looking for the end of the line at the front of the buffer.
enum LineEnd {
    /// The terminator is at this index.
    At(usize),
    /// Not there yet; more bytes may bring it.
    Wait,
    /// More than `max_inline_len` bytes and still no line end.
    TooBig,
}

/// Stateful decoder of client requests for one connection.
///
/// ```
/// use basalt_proto::{Limits, RequestDecoder};
/// use bytes::BytesMut;
///
/// let mut dec = RequestDecoder::new(Limits::default());
/// let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
/// assert_eq!(dec.decode(&mut buf), Ok(None));
/// buf.extend_from_slice(b"\nk\r\nPING\r\n");
/// assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), vec![&b"GET"[..], &b"k"[..]]);
/// assert_eq!(dec.decode(&mut buf).unwrap().unwrap(), vec![&b"PING"[..]]);
/// assert_eq!(dec.decode(&mut buf), Ok(None));
/// ```
#[derive(Debug)]
pub struct RequestDecoder {
    limits: Limits,
    /// Whether the connection still has to authenticate (Redis's `authRequired`), which
    /// tightens the limits.
    auth_required: bool,
    /// Finished arguments of the multibulk being received.
    args: Vec<Bytes>,
    /// Sum of the lengths in `args`.
    pending: usize,
    /// Arguments still expected; 0 when no multibulk is in progress.
    remaining: usize,
    /// Length of the bulk being received, once its `$N` line was read.
    bulk_len: Option<usize>,
    /// `buf.len()` when `decode` last waited for the bulk payload (for `wanted_capacity`).
    bulk_have: usize,
    /// Bytes at the front of the buffer already searched for a line end.
    scanned: usize,
    /// The error already reported: the decoder is unusable after it.
    failed: Option<ProtocolError>,
    /// Whether complete requests take [`RequestDecoder::whole_command`] (tests compare
    /// both paths).
    fast_path: bool,
}

impl Default for RequestDecoder {
    fn default() -> Self {
        RequestDecoder::new(Limits::default())
    }
}

/// How many bytes the fast path of line scanning looks at before falling back to memchr.
const QUICK_SCAN: usize = 24;

impl RequestDecoder {
    /// A decoder at the start of a connection.
    pub fn new(limits: Limits) -> Self {
        RequestDecoder {
            limits,
            auth_required: false,
            args: Vec::new(),
            pending: 0,
            remaining: 0,
            bulk_len: None,
            bulk_have: 0,
            scanned: 0,
            failed: None,
            fast_path: true,
        }
    }

    /// Turns the whole-request fast path off or on; the replies and errors are the same
    /// either way (property tests check it), only the work differs.
    #[doc(hidden)]
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path = on;
    }

    /// Replaces the limits (for example after `CONFIG SET proto-max-bulk-len`); they apply
    /// to lines and lengths read from now on.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Tells the decoder whether the connection still has to authenticate. While it does,
    /// Redis rejects requests of more than 10 arguments (`unauthenticated multibulk length`)
    /// and bulks over 16384 bytes (`unauthenticated bulk length`). Call it between
    /// [`RequestDecoder::decode`] calls, after running each command: a request is only
    /// examined once the previous one was returned, so an `AUTH` lifts the limits for the
    /// next request of the same pipeline, as in Redis.
    pub fn set_auth_required(&mut self, required: bool) {
        self.auth_required = required;
    }

    /// Consumes bytes from the front of `buf` and returns the next command's arguments, or
    /// `Ok(None)` when more bytes are needed.
    ///
    /// `buf` must be the same buffer on every call, holding the bytes after those this
    /// decoder consumed (the caller only appends to it). Arguments of multibulk requests
    /// are zero-copy slices of it: copy small ones before keeping them for long, or they pin
    /// the whole read buffer.
    ///
    /// After an error the caller should send [`ProtocolError::to_frame`] and close the
    /// connection; further calls return the same error.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.decode_inner(buf);
        if let Err(err) = result {
            self.failed = Some(err);
        }
        result
    }

    /// While a bulk argument of at least 32 KiB ([`PROTO_MBULK_BIG_ARG`]) is being received,
    /// how many more bytes it needs (payload and its trailing CRLF), counted from the buffer
    /// length at the last [`RequestDecoder::decode`] call. Pass it to `BytesMut::reserve` to
    /// grow the buffer once instead of repeatedly.
    pub fn wanted_capacity(&self) -> Option<usize> {
        let len = self.bulk_len?;
        if len < PROTO_MBULK_BIG_ARG {
            return None;
        }
        let need = len.saturating_add(2);
        (need > self.bulk_have).then(|| need - self.bulk_have)
    }

    /// Bytes held in the already-parsed arguments of the incomplete request. Together with
    /// the read buffer's length this is the client's query buffer size, which the server
    /// checks against `client-query-buffer-limit`.
    pub fn pending_bytes(&self) -> usize {
        self.pending
    }

    /// Memory held by the incomplete request: argument bytes plus the per-argument
    /// bookkeeping, so that a flood of empty arguments (`*2147483647` then `$0` forever)
    /// is bounded by `client-query-buffer-limit` too.
    pub fn pending_memory(&self) -> usize {
        self.pending + self.args.len() * std::mem::size_of::<Bytes>()
    }

    fn decode_inner(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        if self.remaining == 0
            && self.fast_path
            && !self.auth_required
            && let Some(args) = self.whole_command(buf)
        {
            return Ok(Some(args));
        }
        loop {
            if self.remaining == 0 {
                let Some(&first) = buf.first() else {
                    return Ok(None);
                };
                if first == b'*' {
                    match self.multibulk_header(buf)? {
                        None => return Ok(None),
                        // `*0` and `*-N` carry no command: Redis resets and reads on.
                        Some(count) if count <= 0 => continue,
                        Some(count) => {
                            // Positive and at most max_multibulk_len; on 32-bit targets it
                            // may still not fit a usize.
                            let count = usize::try_from(count)
                                .map_err(|_| ProtocolError::InvalidMultibulkLength)?;
                            self.remaining = count;
                            self.args = Vec::with_capacity(count.min(ARGV_PREALLOC_CAP));
                            self.pending = 0;
                        }
                    }
                } else {
                    match self.inline(buf)? {
                        None => return Ok(None),
                        Some(args) if args.is_empty() => continue,
                        Some(args) => return Ok(Some(args)),
                    }
                }
            }

            while self.remaining > 0 {
                let len = match self.bulk_len {
                    Some(len) => len,
                    None => match self.bulk_header(buf)? {
                        None => return Ok(None),
                        Some(len) => {
                            self.bulk_len = Some(len);
                            len
                        }
                    },
                };
                // `len` is at most i64::MAX, so this cannot overflow on 64-bit targets.
                let needed = len.saturating_add(2);
                if buf.len() < needed {
                    self.bulk_have = buf.len();
                    return Ok(None);
                }
                let arg = buf.split_to(len).freeze();
                // Redis skips the two bytes after the payload without looking at them.
                buf.advance(2);
                self.pending += len;
                self.args.push(arg);
                self.bulk_len = None;
                self.bulk_have = 0;
                self.remaining -= 1;
            }
            self.pending = 0;
            return Ok(Some(std::mem::take(&mut self.args)));
        }
    }

    /// The fast path for the common case: a complete, well-formed multibulk request of
    /// short header lines at the front of `buf`. It is checked whole, taken out with one
    /// split, and its arguments are split off it (one reference count each) instead of
    /// one split and one advance per line. Anything else — an incomplete request, a malformed or
    /// unusual line, a count or length the slow path would refuse, a large argument —
    /// returns `None` with nothing consumed, and the general decoder handles it with
    /// its exact errors and waits.
    fn whole_command(&mut self, buf: &mut BytesMut) -> Option<Vec<Bytes>> {
        /// Most digits of a `*N` / `$N` line the fast path parses.
        const MAX_DIGITS: usize = 18;
        /// Arguments the fast path takes; longer requests use the general decoder.
        const MAX_ARGS: usize = 64;
        let b: &[u8] = buf;
        // `*<count>\r\n` or `$<len>\r\n` with a plain decimal count (no sign, no leading
        // zero, at most MAX_DIGITS digits; anything else is the general path's to judge):
        // the number, and where the next line starts. Digits are read in the same pass
        // that looks for the CR.
        let header = |at: usize, kind: u8| -> Option<(usize, usize)> {
            if b.get(at) != Some(&kind) {
                return None;
            }
            let digits = at + 1;
            let first = *b.get(digits)?;
            let mut v: usize = 0;
            let mut i = digits;
            loop {
                let c = *b.get(i)?;
                if c == b'\r' {
                    break;
                }
                if !c.is_ascii_digit() || i - digits == MAX_DIGITS {
                    return None;
                }
                v = v * 10 + usize::from(c - b'0');
                i += 1;
            }
            if i == digits || (first == b'0' && i > digits + 1) || b.get(i + 1) != Some(&b'\n') {
                return None;
            }
            Some((v, i + 2))
        };
        let (count, first_arg) = header(0, b'*')?;
        if count == 0 || count > MAX_ARGS || count as u64 > self.limits.max_multibulk_len {
            return None;
        }
        // First pass: the whole request is here and every length is acceptable.
        let mut at = first_arg;
        for _ in 0..count {
            let (len, start) = header(at, b'$')?;
            if len as u64 > self.limits.max_bulk_len || len >= PROTO_MBULK_BIG_ARG {
                return None;
            }
            let end = start + len;
            // Like the general path, the two bytes after the payload are not looked at.
            if b.len() < end + 2 {
                return None;
            }
            at = end + 2;
        }
        // Second pass: the request is split off once; each argument but the last is
        // split off the front of it, and the last one becomes the request's own handle.
        // That is one reference to the shared read buffer per argument (an atomic
        // increment, and a decrement when it is dropped), where slicing the request kept
        // one more alive.
        let mut rest = buf.split_to(at).freeze();
        let mut args = Vec::with_capacity(count);
        let mut at = first_arg;
        for i in 0..count {
            let (len, start) = header_at(&rest, at);
            if i + 1 == count {
                rest.advance(start);
                rest.truncate(len);
                args.push(rest);
                break;
            }
            rest.advance(start);
            args.push(rest.split_to(len));
            rest.advance(2);
            at = 0;
        }
        self.scanned = 0;
        Some(args)
    }

    /// Finds `terminator` in the first `max_inline_len + 1` bytes of `buf`, resuming where
    /// the previous search stopped. A NUL byte hides everything after it, as with `strchr`.
    fn find_line_end(&mut self, buf: &[u8], terminator: u8) -> LineEnd {
        let max = self.limits.max_inline_len;
        // Fast path for the short `$16`/`*3` lines that make up most of the traffic: a
        // plain loop beats setting up a SIMD search for a handful of bytes. Anything
        // unusual (a NUL, no terminator yet) takes the general path below.
        if self.scanned == 0 {
            let n = buf.len().min(QUICK_SCAN).min(max.saturating_add(1));
            for (i, &c) in buf[..n].iter().enumerate() {
                if c == terminator {
                    return LineEnd::At(i);
                }
                if c == 0 {
                    break;
                }
            }
        }
        let window = buf.len().min(max.saturating_add(1));
        let from = self.scanned.min(window);
        let found = memchr::memchr2(terminator, 0, &buf[from..window]).map(|i| from + i);
        match found {
            Some(i) if buf[i] == terminator => {
                self.scanned = i;
                return LineEnd::At(i);
            }
            // A NUL: the line can never end; keep finding the NUL cheaply next time.
            Some(i) => self.scanned = i,
            None => self.scanned = window,
        }
        if buf.len() > max {
            LineEnd::TooBig
        } else {
            LineEnd::Wait
        }
    }

    /// Reads a `*N` line; `Some(N)` once it is complete (N may be zero or negative).
    fn multibulk_header(&mut self, buf: &mut BytesMut) -> Result<Option<i64>, ProtocolError> {
        let cr = match self.find_line_end(buf, b'\r') {
            LineEnd::At(i) => i,
            LineEnd::Wait => return Ok(None),
            LineEnd::TooBig => return Err(ProtocolError::TooBigMbulkCountString),
        };
        // Redis waits until one more byte (normally the `\n`) follows the `\r`.
        if cr + 1 >= buf.len() {
            return Ok(None);
        }
        let digits = buf.get(1..cr).unwrap_or_default();
        let count = match parse_i64_strict(digits) {
            Some(n) if n <= 0 || n.unsigned_abs() <= self.limits.max_multibulk_len => n,
            _ => return Err(ProtocolError::InvalidMultibulkLength),
        };
        if self.auth_required && count > UNAUTH_MAX_MULTIBULK {
            return Err(ProtocolError::UnauthenticatedMultibulkLength);
        }
        buf.advance(cr + 2);
        self.scanned = 0;
        Ok(Some(count))
    }

    /// Reads a `$N` line; `Some(N)` once it is complete.
    fn bulk_header(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let cr = match self.find_line_end(buf, b'\r') {
            LineEnd::At(i) => i,
            LineEnd::Wait => return Ok(None),
            LineEnd::TooBig => return Err(ProtocolError::TooBigBulkCountString),
        };
        if cr + 1 >= buf.len() {
            return Ok(None);
        }
        // Checked only once the whole line is there, like Redis (an empty line reports
        // "got '\r'").
        let first = buf[0];
        if first != b'$' {
            return Err(ProtocolError::ExpectedDollar(first));
        }
        let digits = buf.get(1..cr).unwrap_or_default();
        let len = match parse_i64_strict(digits) {
            Some(n) if n >= 0 && n.unsigned_abs() <= self.limits.max_bulk_len => n,
            _ => return Err(ProtocolError::InvalidBulkLength),
        };
        if self.auth_required && len > UNAUTH_MAX_BULK {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidBulkLength)?;
        buf.advance(cr + 2);
        self.scanned = 0;
        Ok(Some(len))
    }

    /// Reads an inline command line; `Some(args)` once complete (possibly empty).
    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let lf = match self.find_line_end(buf, b'\n') {
            LineEnd::At(i) => i,
            LineEnd::Wait => return Ok(None),
            LineEnd::TooBig => return Err(ProtocolError::TooBigInlineRequest),
        };
        // One `\r` before the `\n` belongs to the line ending.
        let end = if lf > 0 && buf[lf - 1] == b'\r' {
            lf - 1
        } else {
            lf
        };
        let parts = split_args(&buf[..end]).ok_or(ProtocolError::UnbalancedQuotes)?;
        buf.advance(lf + 1);
        self.scanned = 0;
        Ok(Some(parts.into_iter().map(Bytes::from).collect()))
    }
}

/// A `$<len>\r\n` line at `at` of a request [`RequestDecoder::whole_command`] has
/// already checked: the length, and where the payload starts (relative to `b`).
fn header_at(b: &[u8], at: usize) -> (usize, usize) {
    let mut v = 0usize;
    let mut i = at + 1;
    while b[i] != b'\r' {
        v = v * 10 + usize::from(b[i] - b'0');
        i += 1;
    }
    (v, i + 2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::PROTO_INLINE_MAX_SIZE;

    /// Decodes everything in `input` at once: the commands, then the error or `None`.
    fn run(limits: Limits, input: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ProtocolError>) {
        let mut dec = RequestDecoder::new(limits);
        let mut buf = BytesMut::from(input);
        let mut cmds = Vec::new();
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(args)) => cmds.push(args.iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return (cmds, None),
                Err(e) => return (cmds, Some(e)),
            }
        }
    }

    fn cmds(input: &[u8]) -> Vec<Vec<Vec<u8>>> {
        let (cmds, err) = run(Limits::default(), input);
        assert_eq!(err, None, "{:?}", String::from_utf8_lossy(input));
        cmds
    }

    fn err(input: &[u8]) -> ProtocolError {
        match run(Limits::default(), input) {
            (_, Some(e)) => e,
            (c, None) => panic!(
                "no error for {:?}, got {c:?}",
                String::from_utf8_lossy(input)
            ),
        }
    }

    fn v(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn multibulk_and_inline_pipelined() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\nPING\r\n\r\n\n*0\r\n*-1\r\n\
                      *-10\r\nset a \"b c\"\n*1\r\n$0\r\n\r\n";
        assert_eq!(
            cmds(input),
            vec![
                v(&["SET", "k", "hello"]),
                v(&["PING"]),
                v(&["set", "a", "b c"]),
                v(&[""]),
            ]
        );
    }

    #[test]
    fn binary_safe_bulks() {
        let input = b"*2\r\n$4\r\n\r\n\0\xff\r\n$2\r\n*1\r\n";
        assert_eq!(
            cmds(input),
            vec![vec![b"\r\n\0\xff".to_vec(), b"*1".to_vec()]]
        );
    }

    #[test]
    fn inline_line_endings() {
        assert_eq!(cmds(b"a\r\r\n"), vec![v(&["a"])]);
        assert_eq!(cmds(b"a b\n"), vec![v(&["a", "b"])]);
        assert_eq!(cmds(b"   \r\n\t\nx\n"), vec![v(&["x"])]);
        // No line end yet: nothing.
        assert_eq!(cmds(b"PING"), Vec::<Vec<Vec<u8>>>::new());
        assert_eq!(cmds(b"PING\r"), Vec::<Vec<Vec<u8>>>::new());
    }

    #[test]
    fn redis_test_suite_cases() {
        // tests/unit/protocol.tcl
        assert_eq!(
            err(b"*3000000000\r\n"),
            ProtocolError::InvalidMultibulkLength
        );
        assert_eq!(
            err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n"),
            ProtocolError::ExpectedDollar(b'f')
        );
        assert_eq!(
            err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n"),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(
            err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n"),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(
            err(b"*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n"),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(err(b"*1\r\nfoo\r\n"), ProtocolError::ExpectedDollar(b'f'));
        let (done, e) = run(
            Limits::default(),
            b"set \"\"\"test-key\"\"\" test-value\r\nping\r\n",
        );
        assert!(done.is_empty());
        assert_eq!(e, Some(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn multibulk_length_strictness() {
        for bad in [
            &b"*+1\r\n"[..],
            b"*01\r\n",
            b"*-0\r\n",
            b"* 1\r\n",
            b"*1 \r\n",
            b"*\r\n",
            b"*x\r\n",
            b"*1.0\r\n",
            b"*2147483648\r\n",
            b"*99999999999999999999\r\n",
        ] {
            assert_eq!(
                err(bad),
                ProtocolError::InvalidMultibulkLength,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // i32::MAX itself is accepted (and costs nothing up front).
        let (done, e) = run(Limits::default(), b"*2147483647\r\n$1\r\na\r\n");
        assert!(done.is_empty());
        assert_eq!(e, None);
        // A configured lower limit.
        let small = Limits {
            max_multibulk_len: 3,
            ..Limits::default()
        };
        assert_eq!(
            run(small, b"*4\r\n").1,
            Some(ProtocolError::InvalidMultibulkLength)
        );
        assert_eq!(run(small, b"*3\r\n").1, None);
    }

    #[test]
    fn bulk_length_strictness() {
        for bad in [
            &b"*1\r\n$+1\r\n"[..],
            b"*1\r\n$01\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n$-0\r\n",
            b"*1\r\n$\r\n",
            b"*1\r\n$ 1\r\n",
            b"*1\r\n$536870913\r\n",
            b"*1\r\n$9223372036854775808\r\n",
        ] {
            assert_eq!(
                err(bad),
                ProtocolError::InvalidBulkLength,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Exactly proto-max-bulk-len is fine (the payload is simply awaited).
        assert_eq!(run(Limits::default(), b"*1\r\n$536870912\r\n").1, None);
        let small = Limits {
            max_bulk_len: 5,
            ..Limits::default()
        };
        assert_eq!(
            run(small, b"*1\r\n$6\r\n").1,
            Some(ProtocolError::InvalidBulkLength)
        );
        assert_eq!(run(small, b"*1\r\n$5\r\nhello\r\n").0, vec![v(&["hello"])]);
    }

    #[test]
    fn expected_dollar_reports_the_byte() {
        assert_eq!(err(b"*1\r\n\r\n"), ProtocolError::ExpectedDollar(b'\r'));
        assert_eq!(
            err(b"*2\r\n$1\r\na\r\n:1\r\n"),
            ProtocolError::ExpectedDollar(b':')
        );
        assert_eq!(err(b"*1\r\n*1\r\n"), ProtocolError::ExpectedDollar(b'*'));
        // Only once the whole line is there.
        assert_eq!(run(Limits::default(), b"*1\r\nfoo").1, None);
        assert_eq!(run(Limits::default(), b"*1\r\nfoo\r").1, None);
    }

    #[test]
    fn cr_without_lf_waits_then_skips_one_byte() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Redis does not check that the byte after '\r' is '\n'.
        buf.extend_from_slice(b"X$1\rYa??");
        assert_eq!(
            dec.decode(&mut buf).unwrap().unwrap(),
            vec![Bytes::from_static(b"a")]
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn too_big_lines() {
        let max = PROTO_INLINE_MAX_SIZE;
        // Exactly max bytes without a line end: still waiting.
        let mut line = vec![b'a'; max];
        assert_eq!(run(Limits::default(), &line), (vec![], None));
        line.push(b'a');
        assert_eq!(err(&line), ProtocolError::TooBigInlineRequest);
        // A line of max bytes plus its newline is fine.
        let mut ok = vec![b'a'; max];
        ok.push(b'\n');
        assert_eq!(cmds(&ok).len(), 1);
        // The newline must come within max + 1 bytes even if it is already buffered.
        let mut long = vec![b'a'; max + 1];
        long.push(b'\n');
        assert_eq!(err(&long), ProtocolError::TooBigInlineRequest);

        let mut mbulk = b"*".to_vec();
        mbulk.extend(std::iter::repeat_n(b'1', max));
        assert_eq!(err(&mbulk), ProtocolError::TooBigMbulkCountString);
        let mut bulk = b"*1\r\n$".to_vec();
        bulk.extend(std::iter::repeat_n(b'1', max));
        assert_eq!(err(&bulk), ProtocolError::TooBigBulkCountString);
        // A long count line that does end is an invalid length.
        let mut digits = b"*".to_vec();
        digits.extend(std::iter::repeat_n(b'1', 30));
        digits.extend_from_slice(b"\r\n");
        assert_eq!(err(&digits), ProtocolError::InvalidMultibulkLength);
    }

    #[test]
    fn nul_hides_the_line_end_like_strchr() {
        // Redis's protocol desync regression tests: "\x00", "*\x00", "$\x00" then junk.
        let junk = b"payload".repeat(10_000);
        for (prefix, want) in [
            (&b"\x00"[..], ProtocolError::TooBigInlineRequest),
            (b"*\x00", ProtocolError::TooBigMbulkCountString),
            (b"$\x00", ProtocolError::TooBigInlineRequest),
        ] {
            let mut input = prefix.to_vec();
            input.extend_from_slice(&junk);
            assert_eq!(err(&input), want);
        }
        // Even with line ends after the NUL, the line does not end.
        assert_eq!(
            run(Limits::default(), b"GET a\0b\r\nPING\r\n"),
            (vec![], None)
        );
        assert_eq!(run(Limits::default(), b"*1\0\r\n"), (vec![], None));
        let mut input = b"PING a\0\n".to_vec();
        input.extend(std::iter::repeat_n(b'\n', PROTO_INLINE_MAX_SIZE));
        assert_eq!(err(&input), ProtocolError::TooBigInlineRequest);
    }

    #[test]
    fn unauthenticated_limits() {
        let mut dec = RequestDecoder::default();
        dec.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*100\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedMultibulkLength)
        );

        let mut dec = RequestDecoder::default();
        dec.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*1\r\n$100000000\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::UnauthenticatedBulkLength)
        );

        // Within the limits; then AUTH lifts them for the next request of the pipeline.
        let mut dec = RequestDecoder::default();
        dec.set_auth_required(true);
        let mut input = b"*2\r\n$4\r\nAUTH\r\n$16384\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'p', 16384));
        input.extend_from_slice(b"\r\n*11\r\n");
        for _ in 0..11 {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut buf = BytesMut::from(&input[..]);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().len(), 2);
        dec.set_auth_required(false);
        assert_eq!(dec.decode(&mut buf).unwrap().unwrap().len(), 11);
        // An invalid length is reported before the unauthenticated one.
        let mut dec = RequestDecoder::default();
        dec.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*3000000000\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::InvalidMultibulkLength)
        );
    }

    #[test]
    fn errors_are_sticky() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*x\r\n"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::InvalidMultibulkLength)
        );
        buf.clear();
        buf.extend_from_slice(b"PING\r\n");
        assert_eq!(
            dec.decode(&mut buf),
            Err(ProtocolError::InvalidMultibulkLength)
        );
    }

    #[test]
    fn commands_before_an_error_are_returned() {
        let (done, e) = run(Limits::default(), b"PING\r\n*1\r\n$1\r\na\r\n*1\r\n$x\r\n");
        assert_eq!(done, vec![v(&["PING"]), v(&["a"])]);
        assert_eq!(e, Some(ProtocolError::InvalidBulkLength));
    }

    #[test]
    fn large_bulk_in_small_chunks() {
        let size = 1_000_000;
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${size}\r\n").into_bytes();
        input.extend_from_slice(&payload);
        input.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");

        let header_len = input.len() - payload.len() - 2 - 14;
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut fed = 0;
        for chunk in input.chunks(4096) {
            buf.extend_from_slice(chunk);
            fed += chunk.len();
            while let Some(args) = dec.decode(&mut buf).unwrap() {
                got.push(args);
            }
            if fed > header_len && got.is_empty() {
                // Mid-payload: the remainder of the payload plus CRLF is still missing.
                let received = fed - header_len;
                assert_eq!(dec.wanted_capacity(), Some(size + 2 - received));
                assert_eq!(dec.pending_bytes(), 4);
                assert!(dec.pending_memory() > 4);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0][0], &b"SET"[..]);
        assert_eq!(got[0][1], &b"k"[..]);
        assert_eq!(got[0][2], &payload[..]);
        assert_eq!(got[1], vec![Bytes::from_static(b"PING")]);
        assert_eq!(dec.wanted_capacity(), None);
        assert_eq!(dec.pending_bytes(), 0);
        assert!(buf.is_empty());
    }

    #[test]
    fn small_bulks_want_no_capacity() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$32767\r\nabc"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.wanted_capacity(), None);
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*1\r\n$32768\r\nabc"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(dec.wanted_capacity(), Some(32768 + 2 - 3));
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let input =
            b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\nset 'a b' \"c\\x41\"\r\n\r\n*0\r\n*1\r\n$0\r\n\r\n";
        let whole = cmds(input);
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            while let Some(args) = dec.decode(&mut buf).unwrap() {
                got.push(args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        assert_eq!(got, whole);
        assert_eq!(whole.len(), 3);
    }

    #[test]
    fn huge_declared_count_does_not_preallocate() {
        let mut dec = RequestDecoder::default();
        let mut buf = BytesMut::from(&b"*2147483647\r\n$1\r\na\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert!(dec.args.capacity() <= ARGV_PREALLOC_CAP);
        assert_eq!(dec.pending_bytes(), 1);
    }
}
