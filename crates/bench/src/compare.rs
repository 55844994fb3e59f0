//! `basalt-bench compare`: the side-by-side comparison of basalt-server and redis-server
//! (being written; the load generator itself is complete).

/// Options of the comparison.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {}

/// Runs the comparison.
pub fn main(_args: &CompareArgs) -> anyhow::Result<()> {
    anyhow::bail!("compare is not available in this build yet")
}
