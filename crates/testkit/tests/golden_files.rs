//! Checks of the committed differential test data in `tests/golden/`.
//!
//! The first test needs no server: it proves every `.cmds` sequence has an up-to-date
//! recording, so an edited sequence that was not re-recorded fails `cargo test`. The second
//! replays everything against a live `redis-server` (the reference the goldens came from)
//! and is ignored by default; run it with
//! `cargo test -p basalt-testkit --test golden_files -- --ignored`.

use basalt_testkit::{TestServer, golden, golden_dir, run_all, verify_recordings};

/// The suite is meant to be broad; shrinking it by accident should be noticed.
const MIN_SEQUENCES: usize = 320;

#[test]
fn every_sequence_has_an_up_to_date_recording() {
    let dir = golden_dir();
    let problems = verify_recordings(&dir);
    let report: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{}", report.join("\n"));

    let mut total = 0;
    for f in golden::cmds_files(&dir).unwrap() {
        total += golden::load_cmds(&f).unwrap().len();
    }
    assert!(
        total >= MIN_SEQUENCES,
        "only {total} sequences in {}",
        dir.display()
    );
}

#[test]
#[ignore = "needs redis-server on PATH"]
fn goldens_match_live_redis_server() {
    let server = TestServer::start_redis(&[]).unwrap();
    let mismatches = run_all(&golden_dir(), server.port());
    let report: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    assert!(mismatches.is_empty(), "{}", report.join("\n"));
}
