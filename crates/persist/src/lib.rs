//! Basalt's persistence formats, with no tokio and no clock: Redis's RDB (version 10)
//! written and read byte-compatibly with redis-server 7.0, `DUMP`/`RESTORE` payloads,
//! and the CRC-64 and LZF codecs they rest on.
//!
//! The server drives these (snapshots, startup load, commands); the AOF's RDB preamble
//! uses the same writer and loader, and [`aof`] has the AOF's manifest and command
//! stream.

pub mod aof;
pub mod crc64;
pub mod dump;
pub mod lzf;
pub mod packed;
pub mod rdb;

/// The Redis version Basalt answers as, written in the `redis-ver` aux field.
pub const REDIS_VERSION: &str = "7.0.15";
