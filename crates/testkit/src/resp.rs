//! Raw reply bytes: where one RESP2/RESP3 reply ends in a byte stream, and the escaped
//! one-line text form used by golden files and mismatch reports.
//!
//! The differential tests compare the *exact bytes* of each reply, so testkit finds reply
//! boundaries itself instead of decoding and re-encoding. The scanner is deliberately
//! independent of `basalt_proto`'s decoder: the oracle that slices the server's output should
//! not share code (and bugs) with the server it judges. Decoding into a `Frame` is left to
//! `basalt_proto::decode_frame`.

/// Why bytes from the server are not a valid reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError(pub String);

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed reply: {}", self.0)
    }
}

impl std::error::Error for ReplyError {}

fn bad(msg: impl Into<String>) -> ReplyError {
    ReplyError(msg.into())
}

/// Returns the line starting at `pos` (without CRLF) and the position after the CRLF, or
/// `None` when the CRLF has not arrived yet.
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let nl = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((&rest[..nl], pos + nl + 2))
}

fn parse_int(s: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(s)
        .ok()
        .and_then(|t| t.parse::<i64>().ok())
        .ok_or_else(|| bad(format!("bad integer {:?}", String::from_utf8_lossy(s))))
}

/// Length of the first complete reply in `buf`, `Ok(None)` if more bytes are needed.
///
/// A RESP3 attribute (`|`) is not a reply of its own: the attribute and the reply that
/// follows it are returned as one unit. A push frame (`>`) is a unit of its own.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, ReplyError> {
    // Count of frames still to read; aggregates add their children. Iterative, so a deeply
    // nested reply cannot overflow the stack.
    let mut pending: u64 = 1;
    let mut pos = 0;
    while pending > 0 {
        let Some(&tag) = buf.get(pos) else {
            return Ok(None);
        };
        let Some((line, next)) = line_at(buf, pos + 1) else {
            return Ok(None);
        };
        pending -= 1;
        pos = next;
        match tag {
            b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {}
            b'$' | b'!' | b'=' => {
                let n = parse_int(line)?;
                if n < -1 || (n == -1 && tag != b'$') {
                    return Err(bad(format!("bad length {n}")));
                }
                if n >= 0 {
                    let end = pos
                        .checked_add(n as usize)
                        .and_then(|e| e.checked_add(2))
                        .ok_or_else(|| bad("length overflow"))?;
                    if buf.len() < end {
                        return Ok(None);
                    }
                    if &buf[end - 2..end] != b"\r\n" {
                        return Err(bad("bulk not terminated by CRLF"));
                    }
                    pos = end;
                }
            }
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let n = parse_int(line)?;
                if n < -1 || (n == -1 && tag != b'*') {
                    return Err(bad(format!("bad aggregate length {n}")));
                }
                if n > 0 {
                    let n = n as u64;
                    let children = match tag {
                        b'%' => n * 2,
                        // The attribute's pairs, then the frame it annotates.
                        b'|' => n * 2 + 1,
                        _ => n,
                    };
                    pending = pending.saturating_add(children);
                } else if tag == b'|' {
                    pending += 1;
                }
            }
            other => return Err(bad(format!("unknown type byte {:?}", other as char))),
        }
    }
    Ok(Some(pos))
}

/// Escapes bytes into one printable ASCII line: `\\`, `\r`, `\n`, `\t`, `\xHH` for other
/// non-printables, everything else as is. [`unescape`] reverses it.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 8);
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// Reverses [`escape`]. Fails on an unknown or truncated escape.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1) {
            Some(b'\\') => out.push(b'\\'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'x') => {
                let hex = s
                    .get(i + 2..i + 4)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad \\x escape at byte {i}"))?;
                out.push(hex);
                i += 4;
                continue;
            }
            _ => return Err(format!("bad escape at byte {i}")),
        }
        i += 2;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_of_every_type() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":-12\r\n",
            b"$3\r\nfoo\r\n",
            b"$0\r\n\r\n",
            b"$-1\r\n",
            b"*-1\r\n",
            b"*0\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"_\r\n",
            b"#t\r\n",
            b",1.5\r\n",
            b"(123\r\n",
            b"!3\r\nerr\r\n",
            b"=7\r\ntxt:abc\r\n",
            b"%1\r\n+a\r\n:1\r\n",
            b"~2\r\n:1\r\n:2\r\n",
            b">2\r\n+message\r\n+x\r\n",
            b"|1\r\n+key\r\n+val\r\n:5\r\n",
        ];
        for c in cases {
            let mut buf = c.to_vec();
            buf.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(reply_len(&buf), Ok(Some(c.len())), "{}", escape(c));
            // Every proper prefix is incomplete, never an error.
            for cut in 0..c.len() {
                assert_eq!(reply_len(&c[..cut]), Ok(None), "{} cut {cut}", escape(c));
            }
        }
    }

    #[test]
    fn bulk_containing_crlf_is_one_reply() {
        let buf = b"$4\r\n\r\n\r\n\r\n";
        assert_eq!(reply_len(buf), Ok(Some(buf.len())));
    }

    #[test]
    fn nested_aggregates_and_attributes() {
        let buf = b"*3\r\n:1\r\n$-1\r\n%1\r\n+k\r\n#f\r\n";
        assert_eq!(reply_len(buf), Ok(Some(buf.len())));
        // An attribute whose annotated frame is itself an aggregate.
        let buf = b"|1\r\n+a\r\n*1\r\n:1\r\n*2\r\n:1\r\n:2\r\n";
        assert_eq!(reply_len(buf), Ok(Some(buf.len())));
        // An empty attribute still precedes a frame.
        assert_eq!(reply_len(b"|0\r\n"), Ok(None));
        assert_eq!(reply_len(b"|0\r\n:1\r\n"), Ok(Some(8)));
    }

    #[test]
    fn rejects_garbage() {
        assert!(reply_len(b"?x\r\n").is_err());
        assert!(reply_len(b"$abc\r\n").is_err());
        assert!(reply_len(b"$3\r\nfooXX").is_err());
        assert!(reply_len(b"%-1\r\n").is_err());
    }

    #[test]
    fn escape_round_trip() {
        let all: Vec<u8> = (0..=255u8).collect();
        let line = escape(&all);
        assert!(!line.contains('\n') && !line.contains('\r'));
        assert_eq!(unescape(&line).unwrap(), all);
        assert_eq!(escape(b"+OK\r\n"), "+OK\\r\\n");
        assert!(unescape("\\q").is_err());
        assert!(unescape("\\x4").is_err());
    }
}
