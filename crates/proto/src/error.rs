//! Errors of the two decoders.
//!
//! [`ProtocolError`] is what a client request can do wrong; its messages are word for word
//! those of Redis 7.0's `processInlineBuffer`/`processMultibulkBuffer`, because clients and
//! test suites match on them. [`FrameError`] is what a malformed reply can do wrong; it is
//! only seen by Basalt's own clients (tests, benchmark), so its wording is ours.

use bytes::Bytes;

use crate::Frame;

/// A malformed client request. After one, the connection must be closed (Redis replies with
/// the error and closes after the reply); the decoder keeps returning the same error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// `*N` where N is not a strict integer or exceeds `max_multibulk_len`.
    InvalidMultibulkLength,
    /// `$N` where N is not a strict integer, is negative or exceeds `max_bulk_len`.
    InvalidBulkLength,
    /// A line inside a multibulk that does not start with `$`; holds the byte found.
    ExpectedDollar(u8),
    /// An inline request without a newline within `max_inline_len` bytes.
    TooBigInlineRequest,
    /// A `*N` line without `\r` within `max_inline_len` bytes.
    TooBigMbulkCountString,
    /// A `$N` line without `\r` within `max_inline_len` bytes.
    TooBigBulkCountString,
    /// An inline request whose quotes do not balance (see [`crate::split_args`]).
    UnbalancedQuotes,
    /// `*N` with N > 10 while the connection must still authenticate.
    UnauthenticatedMultibulkLength,
    /// `$N` with N > 16384 while the connection must still authenticate.
    UnauthenticatedBulkLength,
}

impl ProtocolError {
    /// The message Redis replies with, without the `ERR ` prefix that Redis's
    /// `addReplyError` adds: for example `Protocol error: invalid multibulk length`.
    ///
    /// For [`ProtocolError::ExpectedDollar`] with a non-ASCII byte the byte appears as the
    /// Unicode character of the same number; [`ProtocolError::to_frame`] is byte-exact.
    pub fn reply_message(&self) -> String {
        match self {
            ProtocolError::ExpectedDollar(b) => {
                format!("Protocol error: expected '$', got '{}'", char::from(*b))
            }
            other => format!("Protocol error: {}", other.fixed_text()),
        }
    }

    /// The error reply Redis sends, `ERR Protocol error: ...`, byte for byte (the encoder
    /// turns CR/LF into spaces like Redis does).
    pub fn to_frame(&self) -> Frame {
        let mut v = b"ERR Protocol error: ".to_vec();
        match self {
            ProtocolError::ExpectedDollar(b) => {
                v.extend_from_slice(b"expected '$', got '");
                v.push(*b);
                v.push(b'\'');
            }
            other => v.extend_from_slice(other.fixed_text().as_bytes()),
        }
        Frame::Error(Bytes::from(v))
    }

    fn fixed_text(&self) -> &'static str {
        match self {
            ProtocolError::InvalidMultibulkLength => "invalid multibulk length",
            ProtocolError::InvalidBulkLength => "invalid bulk length",
            ProtocolError::ExpectedDollar(_) => "expected '$'",
            ProtocolError::TooBigInlineRequest => "too big inline request",
            ProtocolError::TooBigMbulkCountString => "too big mbulk count string",
            ProtocolError::TooBigBulkCountString => "too big bulk count string",
            ProtocolError::UnbalancedQuotes => "unbalanced quotes in request",
            ProtocolError::UnauthenticatedMultibulkLength => "unauthenticated multibulk length",
            ProtocolError::UnauthenticatedBulkLength => "unauthenticated bulk length",
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reply_message())
    }
}

impl std::error::Error for ProtocolError {}

/// A malformed reply seen by [`crate::decode_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// The first byte of a frame is not a known RESP2/RESP3 type (streamed types included).
    UnknownType(u8),
    /// A length or count that is not an integer, or is negative (other than the null `-1`
    /// of `$` and `*`), or does not fit in memory.
    InvalidLength,
    /// An `:` integer that does not parse as an `i64`.
    InvalidInteger,
    /// A `,` double that does not parse.
    InvalidDouble,
    /// A `#` boolean other than `t` or `f`.
    InvalidBoolean,
    /// A `(` big number that is not an optional `-` followed by digits.
    InvalidBigNumber,
    /// A `=` verbatim string shorter than 4 bytes or without `:` after the format.
    InvalidVerbatim,
    /// A line or bulk payload not terminated by `\r\n`.
    InvalidLineEnding,
    /// Aggregates nested deeper than the allowed depth.
    TooDeep,
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::UnknownType(b) => write!(f, "unknown RESP type byte 0x{b:02x}"),
            FrameError::InvalidLength => f.write_str("invalid RESP length"),
            FrameError::InvalidInteger => f.write_str("invalid RESP integer"),
            FrameError::InvalidDouble => f.write_str("invalid RESP double"),
            FrameError::InvalidBoolean => f.write_str("invalid RESP boolean"),
            FrameError::InvalidBigNumber => f.write_str("invalid RESP big number"),
            FrameError::InvalidVerbatim => f.write_str("invalid RESP verbatim string"),
            FrameError::InvalidLineEnding => f.write_str("RESP line not terminated by CRLF"),
            FrameError::TooDeep => f.write_str("RESP aggregates nested too deeply"),
        }
    }
}

impl std::error::Error for FrameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_redis() {
        let table = [
            (
                ProtocolError::InvalidMultibulkLength,
                "Protocol error: invalid multibulk length",
            ),
            (
                ProtocolError::InvalidBulkLength,
                "Protocol error: invalid bulk length",
            ),
            (
                ProtocolError::ExpectedDollar(b'f'),
                "Protocol error: expected '$', got 'f'",
            ),
            (
                ProtocolError::TooBigInlineRequest,
                "Protocol error: too big inline request",
            ),
            (
                ProtocolError::TooBigMbulkCountString,
                "Protocol error: too big mbulk count string",
            ),
            (
                ProtocolError::TooBigBulkCountString,
                "Protocol error: too big bulk count string",
            ),
            (
                ProtocolError::UnbalancedQuotes,
                "Protocol error: unbalanced quotes in request",
            ),
            (
                ProtocolError::UnauthenticatedMultibulkLength,
                "Protocol error: unauthenticated multibulk length",
            ),
            (
                ProtocolError::UnauthenticatedBulkLength,
                "Protocol error: unauthenticated bulk length",
            ),
        ];
        for (err, msg) in table {
            assert_eq!(err.reply_message(), msg);
            assert_eq!(err.to_string(), msg);
            assert_eq!(
                err.to_frame(),
                Frame::Error(Bytes::from(format!("ERR {msg}")))
            );
        }
    }

    #[test]
    fn expected_dollar_frame_is_byte_exact() {
        assert_eq!(
            ProtocolError::ExpectedDollar(0xff).to_frame(),
            Frame::Error(Bytes::from_static(
                b"ERR Protocol error: expected '$', got '\xff'"
            ))
        );
    }
}
