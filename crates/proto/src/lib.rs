//! RESP2/RESP3 for Basalt: the [`Frame`] model, a streaming request decoder (multibulk and
//! inline commands, with Redis's limits and error strings), a general reply decoder for
//! clients, and the encoder that writes a `Frame` in the connection's protocol.
//!
//! No tokio, no clock, no I/O: bytes in, frames out.

mod frame;

pub use frame::{Frame, Protocol};
