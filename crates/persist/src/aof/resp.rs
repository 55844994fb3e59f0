//! The command stream of AOF files: RESP arrays of bulk strings, as Redis writes them
//! (`*<n>\r\n` then `$<len>\r\n<bytes>\r\n` per argument), with Redis 7's annotation
//! lines (`#...\r\n`, e.g. timestamps) skipped on reading.
//!
//! The reader tells a file that ends in the middle of a command (`Truncated`, with the
//! offset just after the last complete command, where `aof-load-truncated` cuts it)
//! from a file with bytes that are not RESP (`Format`, with the offset of the bad byte).
//! No length read from the file makes it allocate more than the file still holds.

use std::io::{BufRead, Read};

/// Longest `*<n>` / `$<len>` / annotation line accepted (Redis reads them into a
/// 128-byte buffer).
pub const MAX_LINE: usize = 128;

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The input ended in the middle of a command.
    Truncated {
        /// Offset just after the last complete command.
        valid_up_to: u64,
    },
    /// Bytes that are not an AOF command.
    Format {
        /// Offset of the command that could not be read.
        offset: u64,
        /// What was wrong.
        what: &'static str,
    },
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Truncated { valid_up_to } => {
                write!(
                    f,
                    "unexpected end of file (last valid command ends at offset {valid_up_to})"
                )
            }
            ReadError::Format { offset, what } => {
                write!(f, "bad file format at offset {offset}: {what}")
            }
            ReadError::Io(e) => write!(f, "read error: {e}"),
        }
    }
}

/// Reads commands one by one.
pub struct CommandReader<R> {
    r: R,
    /// Offset of the next unread byte.
    offset: u64,
    /// Offset just after the last complete command (or annotation).
    valid: u64,
    /// Bytes left in the input.
    remaining: u64,
}

impl<R: BufRead> CommandReader<R> {
    /// A reader over `r`, which holds `len` more bytes and starts at file offset
    /// `start` (after an RDB preamble, say).
    pub fn new(r: R, len: u64, start: u64) -> CommandReader<R> {
        CommandReader {
            r,
            offset: start,
            valid: start,
            remaining: len,
        }
    }

    /// Offset just after the last complete command.
    pub fn valid_up_to(&self) -> u64 {
        self.valid
    }

    fn truncated(&self) -> ReadError {
        ReadError::Truncated {
            valid_up_to: self.valid,
        }
    }

    fn format(&self, what: &'static str) -> ReadError {
        ReadError::Format {
            offset: self.valid,
            what,
        }
    }

    /// One line including its `\n`; `Ok(None)` at a clean end of input (nothing read).
    fn line(&mut self, buf: &mut Vec<u8>) -> Result<Option<()>, ReadError> {
        buf.clear();
        let limit = (MAX_LINE as u64 + 1).min(self.remaining);
        let n = std::io::Read::by_ref(&mut self.r)
            .take(limit)
            .read_until(b'\n', buf)
            .map_err(ReadError::Io)?;
        self.offset += n as u64;
        self.remaining -= n as u64;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            return Err(if self.remaining == 0 {
                self.truncated()
            } else {
                self.format("line too long")
            });
        }
        Ok(Some(()))
    }

    fn number(line: &[u8]) -> Option<u64> {
        let digits = line.strip_suffix(b"\r\n")?;
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    }

    /// The next command, `Ok(None)` at the end of the input.
    pub fn next_command(&mut self) -> Result<Option<Vec<Vec<u8>>>, ReadError> {
        let mut line = Vec::with_capacity(32);
        loop {
            if self.line(&mut line)?.is_none() {
                return Ok(None);
            }
            if line[0] == b'#' {
                // An annotation (timestamp): skipped, as Redis does.
                self.valid = self.offset;
                continue;
            }
            break;
        }
        if line[0] != b'*' {
            return Err(self.format("expected '*'"));
        }
        let argc = Self::number(&line[1..]).ok_or_else(|| self.format("bad argument count"))?;
        if argc == 0 {
            return Err(self.format("bad argument count"));
        }
        // Every argument takes at least 6 bytes (`$0\r\n\r\n`).
        let mut args = Vec::with_capacity(argc.min(self.remaining / 6) as usize);
        for _ in 0..argc {
            if self.line(&mut line)?.is_none() {
                return Err(self.truncated());
            }
            if line[0] != b'$' {
                return Err(self.format("expected '$'"));
            }
            let len = Self::number(&line[1..]).ok_or_else(|| self.format("bad bulk length"))?;
            if len.saturating_add(2) > self.remaining {
                return Err(self.truncated());
            }
            let mut arg = vec![0u8; len as usize + 2];
            self.r.read_exact(&mut arg).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    self.truncated()
                } else {
                    ReadError::Io(e)
                }
            })?;
            self.offset += len + 2;
            self.remaining -= len + 2;
            if !arg.ends_with(b"\r\n") {
                return Err(self.format("bulk string not terminated by CRLF"));
            }
            arg.truncate(len as usize);
            args.push(arg);
        }
        self.valid = self.offset;
        Ok(Some(args))
    }
}

/// Appends `args` as a RESP array of bulk strings.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for a in args {
        let a = a.as_ref();
        out.push(b'$');
        out.extend_from_slice(n.format(a.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Each command of `cmds` without its first `skip` words (`RL.POLICY SET`,
/// `JOB.SCHEDULE RESTORE`) as its own RESP array: the form server state takes in RDB aux
/// fields, read back with [`CommandReader`].
pub fn encode_tails(cmds: &[Vec<Vec<u8>>], skip: usize) -> Vec<Vec<u8>> {
    cmds.iter()
        .map(|cmd| {
            let mut out = Vec::new();
            encode_command(&mut out, cmd.get(skip..).unwrap_or_default());
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(b: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<ReadError>) {
        let mut r = CommandReader::new(b, b.len() as u64, 0);
        let mut out = Vec::new();
        loop {
            match r.next_command() {
                Ok(Some(c)) => out.push(c),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn commands_round_trip() {
        let mut b = Vec::new();
        encode_command(&mut b, &[&b"SET"[..], b"k", b"a\r\nb"]);
        b.extend_from_slice(b"#TS:1700000000\r\n");
        encode_command(&mut b, &[&b"DEL"[..], b""]);
        let (cmds, err) = read_all(&b);
        assert!(err.is_none());
        assert_eq!(
            cmds,
            vec![
                vec![b"SET".to_vec(), b"k".to_vec(), b"a\r\nb".to_vec()],
                vec![b"DEL".to_vec(), Vec::new()]
            ]
        );
    }

    #[test]
    fn every_cut_is_a_truncation_at_the_last_whole_command() {
        let mut b = Vec::new();
        encode_command(&mut b, &[&b"SET"[..], b"k", b"v"]);
        let first = b.len() as u64;
        encode_command(&mut b, &[&b"INCR"[..], b"counter"]);
        for cut in 1..b.len() {
            let (cmds, err) = read_all(&b[..cut]);
            if cut as u64 == first {
                assert!(err.is_none());
                continue;
            }
            match err {
                Some(ReadError::Truncated { valid_up_to }) => {
                    let want = if (cut as u64) < first { 0 } else { first };
                    assert_eq!(valid_up_to, want, "cut {cut}");
                    assert_eq!(cmds.len(), usize::from(want > 0));
                }
                other => panic!("cut {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_a_format_error_with_its_offset() {
        let mut b = Vec::new();
        encode_command(&mut b, &[&b"SET"[..], b"k", b"v"]);
        let at = b.len() as u64;
        b.extend_from_slice(b"garbage\r\n");
        encode_command(&mut b, &[&b"DEL"[..], b"k"]);
        match read_all(&b).1 {
            Some(ReadError::Format { offset, .. }) => assert_eq!(offset, at),
            other => panic!("{other:?}"),
        }
        // A bulk length far beyond the file is a truncation, not an allocation.
        let (_, err) = read_all(b"*1\r\n$99999999999\r\nab");
        assert!(matches!(err, Some(ReadError::Truncated { valid_up_to: 0 })));
        let (_, err) = read_all(b"*1\r\n$2\r\nabXY");
        assert!(matches!(err, Some(ReadError::Format { .. })));
        let (_, err) = read_all(b"*0\r\n");
        assert!(matches!(err, Some(ReadError::Format { .. })));
    }
}
