//! RESP2/RESP3 for Basalt: the [`Frame`] model, a streaming request decoder (multibulk and
//! inline commands, with Redis's limits and error strings), a general reply decoder for
//! clients, and the encoder that writes a `Frame` in the connection's protocol.
//!
//! No tokio, no clock, no I/O: bytes in, frames out.
//!
//! * Server side: [`RequestDecoder`] turns a connection's read buffer into argument vectors;
//!   [`encode`] writes replies; [`ProtocolError::to_frame`] is the reply to a bad request.
//! * Client side: [`encode_command`] writes requests; [`decode_frame`] reads any reply.
//! * Shared Redis number text: [`parse_i64_strict`] (`string2ll`) and [`format_double`]
//!   (`%.17g`); [`split_args`] (`sdssplitargs`) for inline commands and config files.

mod decode;
mod encode;
mod error;
mod frame;
mod limits;
mod number;
mod request;
mod split;

pub use decode::decode_frame;
pub use encode::{encode, encode_command, encode_push};
pub use error::{FrameError, ProtocolError};
pub use frame::{BulkList, Frame, Protocol};
pub use limits::{Limits, PROTO_INLINE_MAX_SIZE, PROTO_MBULK_BIG_ARG};
pub use number::{format_double, format_double_human, parse_i64_strict};
pub use request::RequestDecoder;
pub use split::split_args;
