//! Command families: each module declares its commands (`COMMANDS`) next to their
//! handlers. `crate::cmd::FAMILIES` lists them.

pub mod connection;
pub mod keys;
pub mod server;
pub mod strings;
