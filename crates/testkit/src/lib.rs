//! Test support for Basalt: start `basalt-server` (or `redis-server`) on a free loopback
//! port, talk to it with a raw RESP client that returns exact reply bytes, and replay the
//! differential sequences of `tests/golden/` against recordings from redis-server 7.0.15.
//!
//! Nothing here is used by the server at run time; it is a dev-dependency of the other
//! crates and the home of the `basalt-golden` recorder. See `docs/testing.md`.

mod client;
pub mod golden;
pub mod resp;
pub mod seqfile;
mod server;

pub use client::{DEFAULT_TIMEOUT, RawClient};
pub use golden::{Mismatch, golden_dir, run_all, run_all_except, run_file, verify_recordings};
pub use seqfile::{Check, Sequence, Step, parse_cmds};
pub use server::{
    READY_TIMEOUT, STOP_TIMEOUT, TestServer, free_port, redis_server_available, server_binary,
};

/// Re-exported so callers of [`RawClient::read_reply`] need not depend on `basalt-proto`.
pub use basalt_proto::Frame;
