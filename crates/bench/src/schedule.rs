//! The open-loop send schedule of one connection.
//!
//! Under `--rate` every request has an intended send time fixed in advance; latency is
//! measured from that time, not from when the request actually left, so a server stall
//! shows up in full in the percentiles instead of silently pausing the load ("coordinated
//! omission"). Times are plain nanosecond counts so tests can drive the schedule with a
//! simulated clock.

/// Evenly spaced intended send times: `start + phase + k * interval`.
#[derive(Debug, Clone)]
pub struct Schedule {
    origin: f64,
    interval: f64,
    next: u64,
}

impl Schedule {
    /// A schedule sending `rate` requests per second starting at `start_ns`, shifted by
    /// `phase` (in `[0, 1)`) of one interval so connections sharing a rate do not all fire
    /// at the same instant.
    pub fn new(start_ns: u64, rate: f64, phase: f64) -> Schedule {
        let interval = if rate > 0.0 {
            1e9 / rate
        } else {
            f64::INFINITY
        };
        Schedule {
            origin: start_ns as f64 + phase * interval,
            interval,
            next: 0,
        }
    }

    /// The intended time of the next request, saturated at `u64::MAX` for a zero rate.
    pub fn next_due(&self) -> u64 {
        let t = self.origin + self.next as f64 * self.interval;
        if t.is_finite() && t < u64::MAX as f64 {
            t as u64
        } else {
            u64::MAX
        }
    }

    /// If the next request is due at `now_ns`, consumes it and returns its intended time.
    pub fn take_due(&mut self, now_ns: u64) -> Option<u64> {
        let due = self.next_due();
        if due <= now_ns {
            self.next += 1;
            Some(due)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn fifty_connections_send_at_the_requested_total_rate() {
        let rate = 123_457.0;
        let conns = 50;
        let mut schedules: Vec<Schedule> = (0..conns)
            .map(|c| Schedule::new(1_000, rate / conns as f64, c as f64 / conns as f64))
            .collect();
        // Simulated time advancing in irregular steps, as an event loop wakes up.
        let mut rng = Rng::new(1);
        let mut now = 1_000u64;
        let end = 1_000 + 2_000_000_000; // two simulated seconds
        let mut sent = 0u64;
        let mut per_second = [0u64; 2];
        while now < end {
            for s in &mut schedules {
                while let Some(t) = s.take_due(now) {
                    assert!(t <= now, "a request was sent before its time");
                    sent += 1;
                    per_second[((t - 1_000) / 1_000_000_000) as usize] += 1;
                }
            }
            now += 1 + rng.below(300_000);
        }
        // Requests due before the last step may still be unsent: allow one per connection.
        let expected = rate * 2.0;
        assert!(
            (sent as f64 - expected).abs() <= conns as f64,
            "sent {sent}, expected {expected}"
        );
        for c in per_second {
            assert!(
                (c as f64 - rate).abs() <= conns as f64 + 1.0,
                "{c} in one second"
            );
        }
    }

    #[test]
    fn late_wakeups_keep_intended_times() {
        // A stalled sender catches up with a burst, but each request keeps its own slot:
        // that is what makes the latency measurement free of coordinated omission.
        let mut s = Schedule::new(0, 1000.0, 0.0); // one per millisecond
        assert_eq!(s.take_due(0), Some(0));
        assert_eq!(s.take_due(500_000), None);
        let burst: Vec<u64> = std::iter::from_fn(|| s.take_due(5_000_000)).collect();
        assert_eq!(
            burst,
            vec![1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000]
        );
        assert_eq!(s.next_due(), 6_000_000);
    }

    #[test]
    fn zero_rate_never_fires() {
        let mut s = Schedule::new(0, 0.0, 0.0);
        assert_eq!(s.next_due(), u64::MAX);
        assert_eq!(s.take_due(u64::MAX - 1), None);
    }
}
