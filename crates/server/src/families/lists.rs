//! The lists family (being implemented).

use crate::cmd::Command;

/// The lists family's commands.
pub const COMMANDS: &[Command] = &[];
