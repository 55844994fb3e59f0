//! Command families: each module declares its commands (`COMMANDS`) next to their
//! handlers. `crate::cmd::FAMILIES` lists them.

pub mod bitmaps;
pub mod connection;
pub mod coord;
pub mod debug;
pub mod geo;
pub mod hashes;
pub mod hyperloglog;
pub mod job_schedule;
pub mod jobs;
pub mod keys;
pub mod lists;
pub mod memory;
pub mod persistence;
pub mod pubsub;
pub mod ratelimit;
pub mod rl;
pub mod rl_policy;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod streams;
pub mod strings;
pub mod transactions;
pub mod zsets;
