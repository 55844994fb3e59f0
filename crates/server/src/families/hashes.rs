//! The hashes family (being implemented).

use crate::cmd::Command;

/// The hashes family's commands.
pub const COMMANDS: &[Command] = &[];
