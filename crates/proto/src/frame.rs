//! The RESP value model shared by requests, replies, the server and its clients.
//!
//! One enum covers RESP2 and every RESP3 type. Replies are built as `Frame`s and encoded
//! per connection protocol by [`crate::encode`]; RESP3-only types are downgraded to their
//! RESP2 shapes the way Redis does (maps become flat arrays, doubles bulk strings, ...).

use bytes::Bytes;

/// Which protocol a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// RESP2, the default for a new connection.
    #[default]
    Resp2,
    /// RESP3, after `HELLO 3`.
    Resp3,
}

/// One RESP value.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`: a status reply. Must not contain CR or LF.
    Simple(Bytes),
    /// `-ERR message`: an error reply, stored without the leading `-`.
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo`
    Bulk(Bytes),
    /// The null bulk string: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// The null array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `*N` followed by N frames.
    Array(Vec<Frame>),
    /// RESP3 `#t` / `#f`; RESP2 `:1` / `:0`.
    Boolean(bool),
    /// RESP3 `,1.5`; RESP2 a bulk string with Redis's `%.17g` formatting.
    Double(f64),
    /// A double already formatted by the server (Redis's `addReplyHumanLongDouble`, used
    /// by GEOPOS): RESP3 `,text`; RESP2 a bulk string of the same text.
    FormattedDouble(Bytes),
    /// RESP3 `(1234...`; RESP2 a bulk string. Holds the decimal digits.
    BigNumber(Bytes),
    /// RESP3 `=15\r\ntxt:Some string`; RESP2 a bulk string holding only the text.
    Verbatim {
        /// Three-byte format such as `txt` or `mkd`.
        format: [u8; 3],
        /// The text, without the `fmt:` prefix.
        text: Bytes,
    },
    /// RESP3 `%N` map; RESP2 a flat array of 2N frames.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `~N` set; RESP2 an array.
    Set(Vec<Frame>),
    /// RESP3 `|N` attribute map that precedes the frame it describes; dropped in RESP2.
    Attribute {
        /// The attribute pairs.
        attrs: Vec<(Frame, Frame)>,
        /// The frame the attributes belong to.
        data: Box<Frame>,
    },
    /// RESP3 `>N` out-of-band push; RESP2 an array.
    Push(Vec<Frame>),
    /// An array of bulk strings kept back to back in one buffer, already in their wire
    /// form: what a range read (ZRANGE, LRANGE, ...) answers with one allocation instead
    /// of one per element. Encodes exactly as `Array` of `Bulk`s, in both protocols.
    Bulks(BulkList),
}

/// The elements of a [`Frame::Bulks`]: `$len\r\nbytes\r\n` each, appended in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BulkList {
    wire: Vec<u8>,
    len: usize,
}

impl BulkList {
    /// An empty list with room for `n` elements of `bytes` bytes in all.
    pub fn with_capacity(n: usize, bytes: usize) -> BulkList {
        BulkList {
            wire: Vec::with_capacity(bytes + n * 8),
            len: 0,
        }
    }

    /// Sizes a list that is still empty for `n` elements of about `each` bytes (the wire
    /// form adds up to 8 bytes per element), capped at 64 KiB; does nothing once it holds
    /// elements. A range reply knows its length before its elements: called with each
    /// element before pushing it, the first one's size stands for all, and one
    /// reservation replaces the doublings (and copies) of growing.
    pub fn presize(&mut self, n: usize, each: usize) {
        const CAP: usize = 64 << 10;
        if self.wire.is_empty() {
            self.wire.reserve(n.saturating_mul(each + 8).min(CAP));
        }
    }

    /// Appends one element.
    pub fn push(&mut self, data: &[u8]) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(data.len()).as_bytes();
        self.wire.reserve(data.len() + digits.len() + 5);
        self.wire.push(b'$');
        self.wire.extend_from_slice(digits);
        self.wire.extend_from_slice(b"\r\n");
        self.wire.extend_from_slice(data);
        self.wire.extend_from_slice(b"\r\n");
        self.len += 1;
    }

    /// Appends a double as RESP2 sends one (`%.17g`, as `Frame::Double` encodes there).
    pub fn push_double(&mut self, v: f64) {
        self.push(crate::number::g17(v).as_bytes());
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True without elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements in their wire form, back to back (what follows the `*N` header).
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The elements' bytes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = &self.wire[..];
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            // Written by `push`: `$`, digits, CRLF, data, CRLF.
            let crlf = rest.iter().position(|&c| c == b'\r')?;
            let n: usize = std::str::from_utf8(&rest[1..crlf]).ok()?.parse().ok()?;
            let data = &rest[crlf + 2..crlf + 2 + n];
            rest = &rest[crlf + 4 + n..];
            Some(data)
        })
    }

    /// The same elements as `Bulk` frames.
    pub fn to_frames(&self) -> Vec<Frame> {
        self.iter().map(Frame::bulk).collect()
    }
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple(Bytes::from_static(b"OK"))
    }

    /// A status reply from a static string.
    pub fn simple(s: &'static str) -> Frame {
        Frame::Simple(Bytes::from_static(s.as_bytes()))
    }

    /// An error reply; `msg` is the whole text after `-` (for example `ERR syntax error`).
    pub fn error(msg: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(msg.into()))
    }

    /// A bulk string copied from a byte slice.
    pub fn bulk(b: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(b))
    }

    /// True for `Frame::Error`.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }
}
