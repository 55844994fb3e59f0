//! The sets family (being implemented).

use crate::cmd::Command;

/// The sets family's commands.
pub const COMMANDS: &[Command] = &[];
