//! A fast RESP reply boundary scanner for the load generator's hot path.
//!
//! The benchmark never needs reply values, only where each reply ends and whether it is an
//! error (and which one) or a null (a cache miss). Scanning without building frames keeps
//! the client's cost per reply far below the server's, which is what makes the numbers
//! about the server. Full decoding for control commands uses `basalt_proto` instead.

/// What kind of reply was scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyKind {
    /// An error reply; the range is its first word (`ERR`, `WRONGTYPE`, ...) in the buffer.
    Error(std::ops::Range<usize>),
    /// A null bulk string, null array or RESP3 null.
    Null,
    /// Anything else.
    Value,
}

/// A malformed reply stream: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError(pub &'static str);

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "protocol error: {}", self.0)
    }
}

/// Largest bulk length accepted (Redis's own maximum `proto-max-bulk-len`).
const MAX_BULK: i64 = 512 * 1024 * 1024;
/// Largest aggregate length accepted; replies of the benchmark are tiny, so this only
/// guards the pending counter against a garbage header.
const MAX_AGGREGATE: i64 = 1 << 32;

/// Scans one complete reply at the start of `buf`. Returns its length and kind, `Ok(None)`
/// if `buf` holds only a prefix of it, or an error for bytes that are not RESP.
pub fn scan_reply(buf: &[u8]) -> Result<Option<(usize, ReplyKind)>, ScanError> {
    let mut pos = 0usize;
    // Elements still to be scanned: aggregates add their children to it.
    let mut pending: u64 = 1;
    let mut kind: Option<ReplyKind> = None;
    while pending > 0 {
        let Some(&ty) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(cr) = find_crlf(buf, pos + 1) else {
            return Ok(None);
        };
        let line_start = pos + 1;
        let next = cr + 2;
        let first = kind.is_none();
        match ty {
            b'+' | b':' | b',' | b'(' | b'#' => {
                pos = next;
                if first {
                    kind = Some(ReplyKind::Value);
                }
            }
            b'_' => {
                pos = next;
                if first {
                    kind = Some(ReplyKind::Null);
                }
            }
            b'-' => {
                pos = next;
                if first {
                    kind = Some(ReplyKind::Error(first_word(buf, line_start, cr)));
                }
            }
            b'$' | b'=' | b'!' => {
                let n = parse_len(&buf[line_start..cr])?;
                if n < 0 {
                    if ty != b'$' || n != -1 {
                        return Err(ScanError("negative length"));
                    }
                    pos = next;
                    if first {
                        kind = Some(ReplyKind::Null);
                    }
                } else {
                    if n > MAX_BULK {
                        return Err(ScanError("bulk length too large"));
                    }
                    let end = next + n as usize;
                    if buf.len() < end + 2 {
                        return Ok(None);
                    }
                    if &buf[end..end + 2] != b"\r\n" {
                        return Err(ScanError("bulk string not terminated by CRLF"));
                    }
                    pos = end + 2;
                    if first {
                        kind = Some(if ty == b'!' {
                            ReplyKind::Error(first_word(buf, next, end))
                        } else {
                            ReplyKind::Value
                        });
                    }
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_len(&buf[line_start..cr])?;
                pos = next;
                if n < 0 {
                    if ty != b'*' || n != -1 {
                        return Err(ScanError("negative aggregate length"));
                    }
                    if first {
                        kind = Some(ReplyKind::Null);
                    }
                } else {
                    if n > MAX_AGGREGATE {
                        return Err(ScanError("aggregate length too large"));
                    }
                    let n = n as u64;
                    pending += match ty {
                        b'%' => 2 * n,
                        // An attribute map is followed by the value it annotates.
                        b'|' => 2 * n + 1,
                        _ => n,
                    };
                    if first && ty != b'|' {
                        kind = Some(ReplyKind::Value);
                    }
                }
            }
            _ => return Err(ScanError("unknown reply type byte")),
        }
        pending -= 1;
    }
    Ok(Some((pos, kind.unwrap_or(ReplyKind::Value))))
}

/// Position of the `\r` of the first CRLF at or after `from`.
#[inline]
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    loop {
        let cr = i + buf.get(i..)?.iter().position(|&b| b == b'\r')?;
        match buf.get(cr + 1) {
            Some(b'\n') => return Some(cr),
            Some(_) => i = cr + 1,
            None => return None,
        }
    }
}

/// A decimal length, possibly negative.
fn parse_len(s: &[u8]) -> Result<i64, ScanError> {
    let (neg, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 18 {
        return Err(ScanError("bad length"));
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(ScanError("bad length"));
        }
        v = v * 10 + i64::from(d - b'0');
    }
    Ok(if neg { -v } else { v })
}

/// The first space-separated word of `buf[start..end]`.
fn first_word(buf: &[u8], start: usize, end: usize) -> std::ops::Range<usize> {
    let len = buf[start..end]
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(end - start);
    start..start + len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(s: &[u8]) -> Option<(usize, ReplyKind)> {
        scan_reply(s).unwrap()
    }

    #[test]
    fn simple_replies() {
        assert_eq!(scan(b"+OK\r\n"), Some((5, ReplyKind::Value)));
        assert_eq!(scan(b":42\r\n+OK\r\n"), Some((5, ReplyKind::Value)));
        assert_eq!(scan(b"$3\r\nfoo\r\n"), Some((9, ReplyKind::Value)));
        assert_eq!(scan(b"$0\r\n\r\n"), Some((6, ReplyKind::Value)));
        assert_eq!(scan(b"_\r\n"), Some((3, ReplyKind::Null)));
        assert_eq!(scan(b"#t\r\n"), Some((4, ReplyKind::Value)));
    }

    #[test]
    fn nulls_are_misses() {
        assert_eq!(scan(b"$-1\r\n"), Some((5, ReplyKind::Null)));
        assert_eq!(scan(b"*-1\r\n"), Some((5, ReplyKind::Null)));
    }

    #[test]
    fn errors_report_their_first_word() {
        let buf = b"-WRONGTYPE Operation against a key\r\n";
        let (len, kind) = scan(buf).unwrap();
        assert_eq!(len, buf.len());
        let ReplyKind::Error(r) = kind else {
            panic!("not an error: {kind:?}")
        };
        assert_eq!(&buf[r], b"WRONGTYPE");
        let buf = b"-OOM\r\n";
        let Some((_, ReplyKind::Error(r))) = scan(buf) else {
            panic!()
        };
        assert_eq!(&buf[r], b"OOM");
        let buf = b"!8\r\nERR nope\r\n";
        let Some((14, ReplyKind::Error(r))) = scan(buf) else {
            panic!()
        };
        assert_eq!(&buf[r], b"ERR");
    }

    #[test]
    fn nested_aggregates() {
        let buf = b"*3\r\n$1\r\na\r\n*2\r\n:1\r\n$-1\r\n%1\r\n+k\r\n+v\r\n+next\r\n";
        assert_eq!(scan(buf), Some((buf.len() - 7, ReplyKind::Value)));
        assert_eq!(scan(b"*0\r\n"), Some((4, ReplyKind::Value)));
        let attr = b"|1\r\n+a\r\n+b\r\n$-1\r\n";
        assert_eq!(scan(attr), Some((attr.len(), ReplyKind::Value)));
    }

    #[test]
    fn every_prefix_is_incomplete() {
        let buf: &[u8] = b"*2\r\n$5\r\nhello\r\n*1\r\n-ERR x\r\n";
        for cut in 0..buf.len() {
            assert_eq!(scan(&buf[..cut]), None, "prefix of {cut} bytes");
        }
        assert_eq!(scan(buf).map(|r| r.0), Some(buf.len()));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(scan_reply(b"hello\r\n").is_err());
        assert!(scan_reply(b"$x\r\n").is_err());
        assert!(scan_reply(b"$3\r\nfooXY").is_err());
        assert!(scan_reply(b"$-2\r\n").is_err());
        assert!(scan_reply(b"$99999999999999999999\r\n").is_err());
    }
}
