//! Error replies, word for word what Redis 7.0 says.
//!
//! Handlers return `Result<Frame, Error>`; the dispatcher turns an `Error` into an error
//! frame and counts it in `INFO errorstats` by its first word (`ERR`, `WRONGTYPE`, ...).

use basalt_proto::Frame;

/// `-ERR syntax error`
pub const SYNTAX: &str = "ERR syntax error";
/// `-WRONGTYPE ...`
pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Not a canonical 64-bit integer.
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// Not a float Redis accepts.
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
/// INCR/DECR overflow.
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
/// RENAME and friends on a missing key.
pub const NO_SUCH_KEY: &str = "ERR no such key";
/// SELECT/MOVE/SWAPDB/COPY with a bad index.
pub const DB_OUT_OF_RANGE: &str = "ERR DB index is out of range";
/// Commands that need authentication first.
pub const NOAUTH: &str = "NOAUTH Authentication required.";
/// Refusal of a command without the `loading` flag while the dataset loads.
pub const LOADING: &str = "LOADING Redis is loading the dataset in memory";
/// Bad password.
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// A count or index must be positive.
pub const NOT_POSITIVE: &str = "ERR value is out of range, must be positive";
/// A `denyoom` command refused because used memory is over `maxmemory` and nothing
/// could be evicted.
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
/// SETRANGE/APPEND beyond proto-max-bulk-len.
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

/// An error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error from its full text (`"ERR ..."`, `"WRONGTYPE ..."`).
    pub fn msg(s: impl Into<String>) -> Error {
        Error(s.into())
    }

    /// `ERR wrong number of arguments for 'name' command`.
    pub fn arity(fullname: &str) -> Error {
        Error(format!(
            "ERR wrong number of arguments for '{fullname}' command"
        ))
    }

    /// `ERR invalid expire time in 'name' command`.
    pub fn expire_time(fullname: &str) -> Error {
        Error(format!("ERR invalid expire time in '{fullname}' command"))
    }

    /// The error code: the first word of the message.
    pub fn code(&self) -> &str {
        self.0.split(' ').next().unwrap_or("ERR")
    }

    /// The reply frame.
    pub fn into_frame(self) -> Frame {
        Frame::Error(self.0.into())
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error(s.to_string())
    }
}

/// What every handler returns.
pub type CmdResult = Result<Frame, Error>;
