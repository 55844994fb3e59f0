//! The zsets family (being implemented).

use crate::cmd::Command;

/// The zsets family's commands.
pub const COMMANDS: &[Command] = &[];
