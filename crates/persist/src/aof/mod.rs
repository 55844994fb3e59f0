//! Redis 7's multi-part append-only file, the parts with no I/O policy in them:
//!
//! - [`manifest`]: the manifest naming the base file and the incremental files;
//! - [`resp`]: the RESP command stream of incremental files (reader and encoder);
//! - [`rewrite`]: a key as the commands that rebuild it (a base in RESP form).
//!
//! A base in RDB form is written and read by [`crate::rdb`]. Writing, fsync policies,
//! rewriting and loading are the server's (`basalt-server`'s `aof` module).

pub mod manifest;
pub mod resp;
pub mod rewrite;
