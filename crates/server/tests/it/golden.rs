//! Differential tests: every sequence in tests/golden replayed against Basalt, compared
//! byte for byte with the replies recorded from redis-server 7.0.15.

use basalt_testkit::{golden_dir, run_all_except};

/// Files whose sequences need features Basalt does not have yet.
const NOT_YET: &[&str] = &[];

#[test]
fn golden_sequences_match_redis() {
    // No save points: FLUSHALL (run before every sequence) would otherwise save each time.
    let server = crate::start(&["--save", ""]);
    let mismatches = run_all_except(&golden_dir(), server.port(), NOT_YET);
    let report: Vec<String> = mismatches.iter().map(|m| m.to_string()).collect();
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        report.join("\n")
    );
}
