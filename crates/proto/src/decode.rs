//! A general decoder of RESP2/RESP3 replies, for Basalt's own clients (test client,
//! benchmark tool).
//!
//! Unlike the server's [`crate::RequestDecoder`] it is stateless: it parses from the start
//! of the buffer each time and reports how many bytes the frame took, or that the frame is
//! incomplete. That is simple and fine for replies of ordinary size; a client receiving a
//! huge aggregate in many reads re-parses it on each attempt.
//!
//! It is strict where the stream could be misread (every line and payload must end in
//! `\r\n`, lengths must be integers) and never trusts a declared count for allocation.
//! Streamed RESP3 types (`$?`, `*?`) are not supported.

use bytes::Bytes;

use crate::Frame;
use crate::error::FrameError;

/// Never reserve room for more elements than this from a declared count.
const PREALLOC_CAP: usize = 1024;

type Step<T> = Result<Option<T>, FrameError>;

/// Unwraps `Ok(Some(v))`, returns early with `Ok(None)` or the error.
macro_rules! ready {
    ($e:expr) => {
        match $e? {
            Some(v) => v,
            None => return Ok(None),
        }
    };
}

/// Decodes one frame from the start of `buf`: `Ok(Some((frame, consumed)))`, or `Ok(None)`
/// when `buf` holds only part of a frame.
///
/// Aggregates (arrays, maps, sets, pushes, attributes) may nest at most `max_depth` levels:
/// with `max_depth == 1` a flat array is fine but an array inside an array is
/// [`FrameError::TooDeep`]. `$-1` and `_` decode to [`Frame::Null`], `*-1` to
/// [`Frame::NullArray`], `!` blob errors to [`Frame::Error`].
///
/// ```
/// use basalt_proto::{decode_frame, Frame};
/// let buf = b"*2\r\n:1\r\n$-1\r\n+OK\r\n";
/// let (frame, used) = decode_frame(buf, 8).unwrap().unwrap();
/// assert_eq!(frame, Frame::Array(vec![Frame::Integer(1), Frame::Null]));
/// assert_eq!(used, 13);
/// assert_eq!(decode_frame(&buf[..12], 8), Ok(None));
/// ```
pub fn decode_frame(buf: &[u8], max_depth: usize) -> Result<Option<(Frame, usize)>, FrameError> {
    let mut parser = Parser {
        buf,
        pos: 0,
        max_depth,
    };
    let frame = ready!(parser.frame(0));
    Ok(Some((frame, parser.pos)))
}

struct Parser<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl Parser<'_> {
    /// The rest of the current line (without its CRLF), consuming both.
    fn line(&mut self) -> Step<&[u8]> {
        let rest = &self.buf[self.pos..];
        let Some(cr) = memchr::memchr(b'\r', rest) else {
            return Ok(None);
        };
        match rest.get(cr + 1) {
            None => Ok(None),
            Some(b'\n') => {
                let start = self.pos;
                self.pos += cr + 2;
                Ok(Some(&self.buf[start..start + cr]))
            }
            Some(_) => Err(FrameError::InvalidLineEnding),
        }
    }

    /// A length line: `Some(None)` for `-1`, `Some(Some(n))` otherwise.
    fn length(&mut self) -> Step<Option<usize>> {
        let line = ready!(self.line());
        let n = parse_int(line).ok_or(FrameError::InvalidLength)?;
        if n == -1 {
            return Ok(Some(None));
        }
        let n = usize::try_from(n).map_err(|_| FrameError::InvalidLength)?;
        Ok(Some(Some(n)))
    }

    /// `n` payload bytes followed by CRLF.
    fn payload(&mut self, n: usize) -> Step<&[u8]> {
        let start = self.pos;
        let end = start.checked_add(n).ok_or(FrameError::InvalidLength)?;
        let Some(after) = end.checked_add(2) else {
            return Err(FrameError::InvalidLength);
        };
        if self.buf.len() < after {
            return Ok(None);
        }
        if &self.buf[end..after] != b"\r\n" {
            return Err(FrameError::InvalidLineEnding);
        }
        self.pos = after;
        Ok(Some(&self.buf[start..end]))
    }

    /// A length that must not be `-1`.
    fn count(&mut self) -> Step<usize> {
        match ready!(self.length()) {
            Some(n) => Ok(Some(n)),
            None => Err(FrameError::InvalidLength),
        }
    }

    fn frame(&mut self, depth: usize) -> Step<Frame> {
        let Some(&kind) = self.buf.get(self.pos) else {
            return Ok(None);
        };
        if matches!(kind, b'*' | b'%' | b'~' | b'|' | b'>') && depth >= self.max_depth {
            return Err(FrameError::TooDeep);
        }
        self.pos += 1;
        let frame = match kind {
            b'+' => Frame::Simple(Bytes::copy_from_slice(ready!(self.line()))),
            b'-' => Frame::Error(Bytes::copy_from_slice(ready!(self.line()))),
            b':' => {
                let line = ready!(self.line());
                Frame::Integer(parse_int(line).ok_or(FrameError::InvalidInteger)?)
            }
            b'$' => match ready!(self.length()) {
                None => Frame::Null,
                Some(n) => Frame::Bulk(Bytes::copy_from_slice(ready!(self.payload(n)))),
            },
            b'!' => {
                let n = ready!(self.count());
                Frame::Error(Bytes::copy_from_slice(ready!(self.payload(n))))
            }
            b'=' => {
                let n = ready!(self.count());
                let body = ready!(self.payload(n));
                match body {
                    [a, b, c, b':', text @ ..] => Frame::Verbatim {
                        format: [*a, *b, *c],
                        text: Bytes::copy_from_slice(text),
                    },
                    _ => return Err(FrameError::InvalidVerbatim),
                }
            }
            b'_' => {
                if !ready!(self.line()).is_empty() {
                    return Err(FrameError::InvalidLength);
                }
                Frame::Null
            }
            b'#' => match ready!(self.line()) {
                b"t" => Frame::Boolean(true),
                b"f" => Frame::Boolean(false),
                _ => return Err(FrameError::InvalidBoolean),
            },
            b',' => {
                let line = ready!(self.line());
                let v = std::str::from_utf8(line)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
                    .ok_or(FrameError::InvalidDouble)?;
                Frame::Double(v)
            }
            b'(' => {
                let line = ready!(self.line());
                let digits = line.strip_prefix(b"-").unwrap_or(line);
                if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                    return Err(FrameError::InvalidBigNumber);
                }
                Frame::BigNumber(Bytes::copy_from_slice(line))
            }
            b'*' => match ready!(self.length()) {
                None => Frame::NullArray,
                Some(n) => Frame::Array(ready!(self.items(n, depth))),
            },
            b'~' => {
                let n = ready!(self.count());
                Frame::Set(ready!(self.items(n, depth)))
            }
            b'>' => {
                let n = ready!(self.count());
                Frame::Push(ready!(self.items(n, depth)))
            }
            b'%' => {
                let n = ready!(self.count());
                Frame::Map(ready!(self.pairs(n, depth)))
            }
            b'|' => {
                let n = ready!(self.count());
                let attrs = ready!(self.pairs(n, depth));
                // The described frame counts one level deeper so that a chain of
                // attributes cannot recurse without bound.
                let data = ready!(self.frame(depth + 1));
                Frame::Attribute {
                    attrs,
                    data: Box::new(data),
                }
            }
            other => return Err(FrameError::UnknownType(other)),
        };
        Ok(Some(frame))
    }

    fn items(&mut self, n: usize, depth: usize) -> Step<Vec<Frame>> {
        let mut items = Vec::with_capacity(n.min(PREALLOC_CAP));
        for _ in 0..n {
            items.push(ready!(self.frame(depth + 1)));
        }
        Ok(Some(items))
    }

    fn pairs(&mut self, n: usize, depth: usize) -> Step<Vec<(Frame, Frame)>> {
        let mut pairs = Vec::with_capacity(n.min(PREALLOC_CAP));
        for _ in 0..n {
            let k = ready!(self.frame(depth + 1));
            let v = ready!(self.frame(depth + 1));
            pairs.push((k, v));
        }
        Ok(Some(pairs))
    }
}

/// An optionally signed decimal integer; replies are not held to `string2ll` strictness.
fn parse_int(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> Frame {
        match decode_frame(buf, 16) {
            Ok(Some((frame, used))) => {
                assert_eq!(used, buf.len(), "{:?}", String::from_utf8_lossy(buf));
                frame
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn every_type() {
        assert_eq!(one(b"+OK\r\n"), Frame::ok());
        assert_eq!(one(b"-ERR x\r\n"), Frame::Error(b(b"ERR x")));
        assert_eq!(one(b"!5\r\nERR x\r\n"), Frame::Error(b(b"ERR x")));
        assert_eq!(one(b":-42\r\n"), Frame::Integer(-42));
        assert_eq!(one(b"$3\r\na\r\n\r\n"), Frame::Bulk(b(b"a\r\n")));
        assert_eq!(one(b"$0\r\n\r\n"), Frame::Bulk(b(b"")));
        assert_eq!(one(b"$-1\r\n"), Frame::Null);
        assert_eq!(one(b"*-1\r\n"), Frame::NullArray);
        assert_eq!(one(b"_\r\n"), Frame::Null);
        assert_eq!(one(b"#t\r\n"), Frame::Boolean(true));
        assert_eq!(one(b"#f\r\n"), Frame::Boolean(false));
        assert_eq!(one(b",1.5\r\n"), Frame::Double(1.5));
        assert_eq!(one(b",inf\r\n"), Frame::Double(f64::INFINITY));
        assert_eq!(one(b",-inf\r\n"), Frame::Double(f64::NEG_INFINITY));
        assert!(matches!(one(b",nan\r\n"), Frame::Double(v) if v.is_nan()));
        assert_eq!(one(b",1e+20\r\n"), Frame::Double(1e20));
        assert_eq!(one(b"(-123\r\n"), Frame::BigNumber(b(b"-123")));
        assert_eq!(
            one(b"=15\r\ntxt:Some string\r\n"),
            Frame::Verbatim {
                format: *b"txt",
                text: b(b"Some string")
            }
        );
        assert_eq!(
            one(b"*2\r\n:1\r\n*1\r\n+a\r\n"),
            Frame::Array(vec![
                Frame::Integer(1),
                Frame::Array(vec![Frame::simple("a")])
            ])
        );
        assert_eq!(
            one(b"%1\r\n+k\r\n:1\r\n"),
            Frame::Map(vec![(Frame::simple("k"), Frame::Integer(1))])
        );
        assert_eq!(
            one(b"~2\r\n:1\r\n:2\r\n"),
            Frame::Set(vec![Frame::Integer(1), Frame::Integer(2)])
        );
        assert_eq!(
            one(b">2\r\n+message\r\n$1\r\nx\r\n"),
            Frame::Push(vec![Frame::simple("message"), Frame::bulk(b"x")])
        );
        assert_eq!(
            one(b"|1\r\n+ttl\r\n:3\r\n$1\r\nv\r\n"),
            Frame::Attribute {
                attrs: vec![(Frame::simple("ttl"), Frame::Integer(3))],
                data: Box::new(Frame::bulk(b"v")),
            }
        );
    }

    #[test]
    fn pipelined_frames_in_one_buffer() {
        let buf = b"+OK\r\n:1\r\n*2\r\n$1\r\na\r\n_\r\n%0\r\n$-1\r\n";
        let mut pos = 0;
        let mut frames = Vec::new();
        while let Some((frame, used)) = decode_frame(&buf[pos..], 4).unwrap() {
            frames.push(frame);
            pos += used;
        }
        assert_eq!(pos, buf.len());
        assert_eq!(
            frames,
            vec![
                Frame::ok(),
                Frame::Integer(1),
                Frame::Array(vec![Frame::bulk(b"a"), Frame::Null]),
                Frame::Map(vec![]),
                Frame::Null,
            ]
        );
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf = b"*3\r\n$5\r\nhello\r\n%1\r\n+a\r\n,2.5\r\n|1\r\n+k\r\n#t\r\n=7\r\ntxt:abc\r\n";
        for end in 0..buf.len() {
            assert_eq!(decode_frame(&buf[..end], 8), Ok(None), "prefix {end}");
        }
        assert!(decode_frame(buf, 8).unwrap().is_some());
    }

    #[test]
    fn errors() {
        let table: &[(&[u8], FrameError)] = &[
            (b"?\r\n", FrameError::UnknownType(b'?')),
            (b"$?\r\n", FrameError::InvalidLength),
            (b"*?\r\n", FrameError::InvalidLength),
            (b"$-2\r\n", FrameError::InvalidLength),
            (b"*-2\r\n", FrameError::InvalidLength),
            (b"%-1\r\n", FrameError::InvalidLength),
            (b"!-1\r\n", FrameError::InvalidLength),
            (b"$x\r\n", FrameError::InvalidLength),
            (b"$99999999999999999999\r\n", FrameError::InvalidLength),
            (b":1.5\r\n", FrameError::InvalidInteger),
            (b",abc\r\n", FrameError::InvalidDouble),
            (b"#x\r\n", FrameError::InvalidBoolean),
            (b"(12a\r\n", FrameError::InvalidBigNumber),
            (b"(\r\n", FrameError::InvalidBigNumber),
            (b"=3\r\ntxt\r\n", FrameError::InvalidVerbatim),
            (b"=4\r\ntxtx\r\n", FrameError::InvalidVerbatim),
            (b"+OK\rX", FrameError::InvalidLineEnding),
            (b"$1\r\naXY", FrameError::InvalidLineEnding),
            (b"_x\r\n", FrameError::InvalidLength),
        ];
        for (input, want) in table {
            assert_eq!(
                decode_frame(input, 8),
                Err(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn depth_limit() {
        assert_eq!(decode_frame(b":1\r\n", 0).unwrap().unwrap().1, 4);
        assert_eq!(decode_frame(b"*0\r\n", 0), Err(FrameError::TooDeep));
        assert!(decode_frame(b"*1\r\n:1\r\n", 1).unwrap().is_some());
        assert_eq!(decode_frame(b"*1\r\n*0\r\n", 1), Err(FrameError::TooDeep));
        assert!(decode_frame(b"*1\r\n*0\r\n", 2).unwrap().is_some());
        // A long chain of attributes is bounded too.
        let chain = b"|0\r\n".repeat(100_000);
        assert_eq!(decode_frame(&chain, 64), Err(FrameError::TooDeep));
        let deep = b"*1\r\n".repeat(100_000);
        assert_eq!(decode_frame(&deep, 64), Err(FrameError::TooDeep));
    }

    #[test]
    fn huge_declared_counts_do_not_allocate() {
        // Would need terabytes if preallocated; incomplete instead.
        assert_eq!(decode_frame(b"*9223372036854775807\r\n:1\r\n", 4), Ok(None));
        assert_eq!(decode_frame(b"%4611686018427387903\r\n", 4), Ok(None));
        assert_eq!(decode_frame(b"$9223372036854775807\r\nab", 4), Ok(None));
    }
}
