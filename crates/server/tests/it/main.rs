//! Integration tests: a real `basalt-server` process on a free loopback port, driven by
//! raw RESP, the `redis` crate, and the differential golden sequences.
//!
//! One test binary (modules below) keeps link time down.

mod admin;
mod aof;
mod bitmaps;
mod check;
mod clients;
mod coordination;
mod debug;
mod dirty;
mod faktory;
mod geo;
mod golden;
mod hashes;
mod hyperloglog;
mod job_schedule;
mod jobs;
mod jobs_crash;
mod lifecycle;
mod lists;
mod loading;
mod memory;
mod protocol;
mod pubsub;
mod ratelimit;
mod rdb;
mod rl;
mod rl_lease;
mod rl_policy;
mod scripting;
mod sets;
mod streams;
mod transactions;
mod waiting;
mod zsets;

use basalt_testkit::TestServer;
use std::path::Path;

/// Starts a server with extra arguments.
pub fn start(extra: &[&str]) -> TestServer {
    match TestServer::start(Path::new(env!("CARGO_BIN_EXE_basalt-server")), extra) {
        Ok(s) => s,
        Err(e) => panic!("basalt-server did not start: {e:#}"),
    }
}
