//! Cron math, time zones with their DST changes, and the firing decisions, on an
//! injected clock.

use super::*;

/// Unix ms of an RFC 3339 instant.
fn ms(s: &str) -> u64 {
    s.parse::<Timestamp>().unwrap().as_millisecond() as u64
}

fn utc(t: u64) -> String {
    Timestamp::from_millisecond(t as i64).unwrap().to_string()
}

fn cron(expr: &str, zone: Option<&str>) -> Trigger {
    Trigger::cron(expr, zone).unwrap()
}

/// The next `n` ticks strictly after `from`, as UTC strings.
fn next_n(t: &Trigger, from: &str, n: usize) -> Vec<String> {
    let mut at = ms(from);
    (0..n)
        .map(|_| {
            at = t.next_after(at).unwrap();
            utc(at)
        })
        .collect()
}

#[test]
fn five_field_expressions_with_ranges_steps_and_names() {
    let t = cron("*/20 9-10 * * MON-FRI", None);
    // Friday 2026-01-02 10:40 is the last of the week; Monday 09:00 follows.
    assert_eq!(
        next_n(&t, "2026-01-02T10:20:00Z", 3),
        [
            "2026-01-02T10:40:00Z",
            "2026-01-05T09:00:00Z",
            "2026-01-05T09:20:00Z"
        ]
    );
    let t = cron("0 12 1 jan,jul *", None);
    assert_eq!(
        next_n(&t, "2026-01-01T12:00:00Z", 2),
        ["2026-07-01T12:00:00Z", "2027-01-01T12:00:00Z"]
    );
    // Both day fields restricted: either matches (Vixie cron).
    let t = cron("0 0 13 * FRI", None);
    assert_eq!(
        next_n(&t, "2026-02-01T00:00:00Z", 3),
        [
            "2026-02-06T00:00:00Z",
            "2026-02-13T00:00:00Z",
            "2026-02-20T00:00:00Z"
        ]
    );
}

#[test]
fn seconds_field_and_aliases() {
    let t = cron("*/15 * * * * *", None);
    assert_eq!(
        next_n(&t, "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-01T00:00:15Z",
            "2026-01-01T00:00:30Z",
            "2026-01-01T00:00:45Z"
        ]
    );
    // Seven fields: a year last; past its last year there is no next tick.
    let t = cron("0 0 12 1 JAN * 2027", None);
    assert_eq!(
        next_n(&t, "2026-01-01T00:00:00Z", 1),
        ["2027-01-01T12:00:00Z"]
    );
    assert_eq!(t.next_after(ms("2027-01-01T12:00:00Z")), None);
    assert_eq!(
        next_n(&cron("@hourly", None), "2026-01-01T00:30:00Z", 2),
        ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@daily", None), "2026-01-01T00:00:00Z", 1),
        ["2026-01-02T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@weekly", None), "2026-01-01T00:00:00Z", 1),
        ["2026-01-04T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@monthly", None), "2026-01-01T00:00:00Z", 1),
        ["2026-02-01T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("@yearly", None), "2026-01-01T00:00:00Z", 1),
        ["2027-01-01T00:00:00Z"]
    );
}

#[test]
fn last_weekday_and_nth_specifiers() {
    // L: last day of the month (February 2026 has 28 days).
    assert_eq!(
        next_n(&cron("0 0 L * *", None), "2026-01-01T00:00:00Z", 3),
        [
            "2026-01-31T00:00:00Z",
            "2026-02-28T00:00:00Z",
            "2026-03-31T00:00:00Z"
        ]
    );
    // 15W: the weekday nearest the 15th (2026-02-15 is a Sunday: Monday the 16th).
    assert_eq!(
        next_n(&cron("0 0 15W * *", None), "2026-02-01T00:00:00Z", 2),
        ["2026-02-16T00:00:00Z", "2026-03-16T00:00:00Z"]
    );
    // 5#2: the second Friday; 5L: the last Friday.
    assert_eq!(
        next_n(&cron("0 0 * * 5#2", None), "2026-01-01T00:00:00Z", 2),
        ["2026-01-09T00:00:00Z", "2026-02-13T00:00:00Z"]
    );
    assert_eq!(
        next_n(&cron("0 0 * * FRI#L", None), "2026-01-01T00:00:00Z", 2),
        ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]
    );
}

#[test]
fn next_is_strictly_after_and_latest_is_at_or_before() {
    let t = cron("0 * * * *", None);
    let at = ms("2026-01-01T05:00:00Z");
    assert_eq!(t.next_after(at), Some(ms("2026-01-01T06:00:00Z")));
    assert_eq!(t.next_after(at - 1), Some(at));
    assert_eq!(t.next_after(at + 999), Some(ms("2026-01-01T06:00:00Z")));
    assert_eq!(t.latest_at_or_before(at), Some(at));
    assert_eq!(
        t.latest_at_or_before(at - 1),
        Some(ms("2026-01-01T04:00:00Z"))
    );
    let e = Trigger::every(200).unwrap();
    assert_eq!(e.next_after(1000), Some(1200));
    assert_eq!(e.next_after(1199), Some(1200));
    assert_eq!(e.latest_at_or_before(1199), Some(1000));
    assert_eq!(e.latest_at_or_before(199), None);
    assert_eq!(e.next_after(MAX_TIME_MS), None);
}

#[test]
fn bad_expressions_and_zones_are_errors() {
    for bad in [
        "61 * * * *",
        "* * * *",
        "* * * * * * * *",
        "0 0 32 * *",
        "x * * * *",
        "",
    ] {
        assert!(Trigger::cron(bad, None).is_err(), "{bad}");
    }
    assert!(Trigger::cron(&"1,".repeat(200), None).is_err());
    assert!(Trigger::cron("0 * * * *", Some("Mars/Olympus_Mons")).is_err());
    assert!(Trigger::cron("0 * * * *", Some(&"A".repeat(MAX_ZONE_LEN + 1))).is_err());
    assert!(Trigger::every(0).is_err());
    assert!(Trigger::every(MAX_TIME_MS + 1).is_err());
    assert!(Trigger::every(MAX_TIME_MS).is_ok());
    // Valid syntax that never matches: no next tick.
    assert_eq!(cron("0 0 30 2 *", None).next_after(0), None);
}

#[test]
fn new_york_spring_forward_2026_03_08() {
    let ny = Some("America/New_York");
    // 02:30 does not exist that night: it fires at 03:00 EDT (07:00Z), once.
    assert_eq!(
        next_n(&cron("30 2 * * *", ny), "2026-03-07T12:00:00Z", 3),
        [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z"
        ]
    );
    // Every half hour: no tick in the missing hour (01:30 EST, then 03:00 EDT).
    assert_eq!(
        next_n(&cron("*/30 * * * *", ny), "2026-03-08T06:00:00Z", 3),
        [
            "2026-03-08T06:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T07:30:00Z"
        ]
    );
}

#[test]
fn new_york_fall_back_2026_11_01() {
    let ny = Some("America/New_York");
    // 01:30 happens twice: a fixed time fires on the first (EDT, 05:30Z) only.
    assert_eq!(
        next_n(&cron("30 1 * * *", ny), "2026-10-31T12:00:00Z", 2),
        ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
    );
    // An interval fires in both passes through the hour.
    assert_eq!(
        next_n(&cron("*/30 * * * *", ny), "2026-11-01T04:45:00Z", 6),
        [
            "2026-11-01T05:00:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:00:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:00:00Z",
            "2026-11-01T07:30:00Z",
        ]
    );
    // Asked from inside the repeated hour's second pass, the next tick is not the
    // first pass again.
    assert_eq!(
        next_n(&cron("30 1 * * *", ny), "2026-11-01T06:00:00Z", 1),
        ["2026-11-02T06:30:00Z"]
    );
}

#[test]
fn berlin_changes_2026() {
    let be = Some("Europe/Berlin");
    // 29 March: 02:00 CET jumps to 03:00 CEST; 02:00 fires at 03:00 CEST (01:00Z).
    assert_eq!(
        next_n(&cron("0 2 * * *", be), "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"]
    );
    // 25 October: 03:00 CEST goes back to 02:00 CET; hourly ticks at 02:00 twice.
    assert_eq!(
        next_n(&cron("0 * * * *", be), "2026-10-24T23:30:00Z", 4),
        [
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z",
            "2026-10-25T03:00:00Z",
        ]
    );
    assert_eq!(
        next_n(&cron("30 2 * * *", be), "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
}

/// Runs firing passes every `step` ms from `start` to `end` (the server "down" during
/// `down`, no pass then), applying each pass's result as the server does, and returns
/// every fired tick and the skipped count.
fn simulate(
    t: &Trigger,
    start: u64,
    end: u64,
    step: u64,
    down: Option<(u64, u64)>,
    missed: Missed,
    grace: u64,
) -> (Vec<u64>, u64) {
    let mut cursor = start;
    let mut fired = Vec::new();
    let mut skipped = 0;
    let mut now = start;
    while now <= end {
        if !down.is_some_and(|(a, b)| now >= a && now < b) {
            let due = due_ticks(t, cursor, now, missed, grace, 1000);
            assert!(due.fire.windows(2).all(|w| w[0] < w[1]));
            assert!(due.fire.iter().all(|&f| f > cursor && f <= now));
            fired.extend(&due.fire);
            skipped += due.skipped;
            cursor = due.cursor;
        }
        now += step;
    }
    (fired, skipped)
}

#[test]
fn a_simulated_day_fires_every_tick_once() {
    // A quarter-hourly schedule over New York's 25-hour day (1 November 2026, local
    // midnight to midnight), a pass every 7 s: 100 ticks, all on the UTC quarter hours.
    let t = cron("*/15 * * * *", Some("America/New_York"));
    let start = ms("2026-11-01T03:59:59Z");
    let end = ms("2026-11-02T04:59:59Z");
    let (fired, skipped) = simulate(&t, start, end, 7_000, None, Missed::Latest, 60_000);
    let expected: Vec<u64> = (0..100)
        .map(|i| ms("2026-11-01T04:00:00Z") + i * 900_000)
        .collect();
    assert_eq!(fired, expected);
    assert_eq!(skipped, 0);
    // The 23-hour day of 8 March: 92 ticks.
    let start = ms("2026-03-08T04:59:59Z");
    let end = ms("2026-03-09T03:59:59Z");
    let (fired, _) = simulate(&t, start, end, 7_000, None, Missed::Latest, 60_000);
    assert_eq!(fired.len(), 92);
    assert_eq!(fired[0], ms("2026-03-08T05:00:00Z"));
    assert!(fired.windows(2).all(|w| w[1] - w[0] == 900_000));
    // Fixed times over both change days: 02:30 is moved to 03:00 in March, 01:30
    // fires once in November.
    let day = |t: &Trigger, from: &str, to: &str| {
        let (fired, _) = simulate(t, ms(from), ms(to), 30_000, None, Missed::Latest, 60_000);
        fired.iter().map(|&f| utc(f)).collect::<Vec<_>>()
    };
    let ny = Some("America/New_York");
    let (mar, mar_end) = ("2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z");
    let (nov, nov_end) = ("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z");
    assert_eq!(
        day(&cron("30 2 * * *", ny), mar, mar_end),
        ["2026-03-08T07:00:00Z"]
    );
    assert_eq!(
        day(&cron("30 1 * * *", ny), nov, nov_end),
        ["2026-11-01T05:30:00Z"]
    );
    // A list or range in the hour field makes an interval (croner's rule, not Vixie's):
    // a listed hour that is skipped has no tick, a repeated one ticks twice.
    let t = cron("30 1,2 * * *", ny);
    assert_eq!(day(&t, mar, mar_end), ["2026-03-08T06:30:00Z"]);
    assert_eq!(
        day(&t, nov, nov_end),
        [
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
            "2026-11-01T07:30:00Z"
        ]
    );
}

#[test]
fn a_restart_follows_the_missed_policy() {
    // Every 5 minutes in Berlin on its fall-back day; the server is down from 10:02
    // to 10:31 local (08:02Z to 08:31Z): ticks 08:05 .. 08:30Z are missed (six).
    let t = cron("*/5 * * * *", Some("Europe/Berlin"));
    let start = ms("2026-10-25T00:00:00Z");
    let end = ms("2026-10-25T12:00:00Z");
    let down = Some((ms("2026-10-25T08:02:00Z"), ms("2026-10-25T08:31:00Z")));
    let every_tick: Vec<u64> = (1..=144).map(|i| start + i * 300_000).collect();
    let missed: Vec<u64> = (1..=6)
        .map(|i| ms("2026-10-25T08:00:00Z") + i * 300_000)
        .collect();

    let (fired, skipped) = simulate(&t, start, end, 10_000, down, Missed::All, 60_000);
    assert_eq!(fired, every_tick);
    assert_eq!(skipped, 0);

    let (fired, skipped) = simulate(&t, start, end, 10_000, down, Missed::Latest, 60_000);
    let expected: Vec<u64> = every_tick
        .iter()
        .copied()
        .filter(|t| !missed[..5].contains(t))
        .collect();
    assert_eq!(fired, expected);
    assert_eq!(skipped, 5);

    let (fired, skipped) = simulate(&t, start, end, 10_000, down, Missed::Skip, 60_000);
    let expected: Vec<u64> = every_tick
        .iter()
        .copied()
        .filter(|t| !missed.contains(t))
        .collect();
    assert_eq!(fired, expected);
    assert_eq!(skipped, 6);

    // Back within the grace period: nothing counts as missed.
    let down = Some((ms("2026-10-25T08:04:30Z"), ms("2026-10-25T08:05:50Z")));
    let (fired, skipped) = simulate(&t, start, end, 10_000, down, Missed::Skip, 60_000);
    assert_eq!(fired, every_tick);
    assert_eq!(skipped, 0);
}

#[test]
fn grace_boundary() {
    let t = Trigger::every(1000).unwrap();
    // Late by grace - 1: on time. Late by exactly grace: missed.
    let d = due_ticks(&t, 500, 1000 + 99, Missed::Skip, 100, 10);
    assert_eq!(d.fire, [1000]);
    let d = due_ticks(&t, 500, 1000 + 100, Missed::Skip, 100, 10);
    assert_eq!((d.fire.len(), d.skipped, d.cursor), (0, 1, 1000));
    let d = due_ticks(&t, 500, 1000 + 100, Missed::Latest, 100, 10);
    assert_eq!((d.fire.clone(), d.skipped, d.cursor), (vec![1000], 0, 1000));
    // Grace 0: every due tick is missed.
    let d = due_ticks(&t, 0, 5000, Missed::Latest, 0, 10);
    assert_eq!((d.fire.clone(), d.skipped), (vec![5000], 4));
}

#[test]
fn max_fires_defers_the_rest_to_the_next_pass() {
    let t = Trigger::every(10).unwrap();
    let d = due_ticks(&t, 0, 1000, Missed::All, 60_000, 30);
    assert_eq!(d.fire, (1..=30).map(|i| i * 10).collect::<Vec<_>>());
    assert_eq!(d.cursor, 300);
    let d = due_ticks(&t, d.cursor, 1000, Missed::All, 60_000, 100);
    assert_eq!(d.fire.len(), 70);
    assert_eq!(d.cursor, 1000);
    // Nothing due, a clock behind the cursor, or max 0: nothing happens.
    assert_eq!(due_ticks(&t, 1000, 1005, Missed::All, 0, 10).fire.len(), 0);
    assert_eq!(due_ticks(&t, 1000, 900, Missed::All, 0, 10).cursor, 1000);
    assert_eq!(due_ticks(&t, 0, 1000, Missed::All, 0, 0).cursor, 0);
}

#[test]
fn skipped_cron_ticks_are_counted_up_to_the_cap() {
    let t = cron("* * * * * *", None);
    let day = 86_400_000;
    let d = due_ticks(&t, 0, day, Missed::Skip, 60_000, 10);
    assert_eq!(d.skipped, MAX_SKIP_COUNT);
    // The last missed tick, then ten on time.
    assert_eq!(d.fire.len(), 10);
    assert_eq!(d.fire[0], day - 59_000);
    assert_eq!(d.cursor, day - 50_000);
    // EVERY counts exactly.
    let d = due_ticks(
        &Trigger::every(1000).unwrap(),
        0,
        day,
        Missed::Skip,
        60_000,
        10,
    );
    assert_eq!(d.skipped, 86_340);
}

#[test]
fn spec_round_trips_through_its_words() {
    let words: Vec<&[u8]> = vec![
        b"q",
        b"cron",
        b"0 9 * * MON",
        b"tz",
        b"Europe/Berlin",
        b"missed",
        b"all",
        b"template",
        b"{}",
        b"PRIORITY",
        b"7",
    ];
    let s = Spec::parse(&words).unwrap();
    assert_eq!(s.missed, Missed::All);
    assert_eq!(s.options, vec![b"PRIORITY".to_vec(), b"7".to_vec()]);
    let back = s.to_args();
    let refs: Vec<&[u8]> = back.iter().map(Vec::as_slice).collect();
    assert_eq!(Spec::parse(&refs).unwrap(), s);
    let s = Spec::parse(&[b"q", b"EVERY", b"200", b"TEMPLATE", b"p"]).unwrap();
    assert_eq!(
        s.trigger.to_args(),
        vec![b"EVERY".to_vec(), b"200".to_vec()]
    );
    assert_eq!(s.missed, Missed::Latest);
    for bad in [
        &[&b"q"[..], b"EVERY", b"200"][..],
        &[b"q", b"TEMPLATE", b"p"],
        &[b"q", b"EVERY", b"x", b"TEMPLATE", b"p"],
        &[b"q", b"EVERY", b"0", b"TEMPLATE", b"p"],
        &[b"q", b"EVERY", b"1", b"EVERY", b"2", b"TEMPLATE", b"p"],
        &[b"q", b"EVERY", b"1", b"MISSED", b"SOME", b"TEMPLATE", b"p"],
        &[b"q", b"CRON", b"0 * * * *", b"TZ"],
        &[b"q", b"CRON", b"bad", b"TEMPLATE", b"p"],
        &[b"q", b"EVERY", b"1", b"TEMPLATE"],
        &[b"q", b"NOPE", b"1", b"TEMPLATE", b"p"],
    ] {
        assert!(Spec::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn registry_limits_and_generations() {
    let spec = Spec::parse(&[b"q", b"EVERY", b"200", b"TEMPLATE", b"p"]).unwrap();
    let s = Schedule {
        db: 0,
        spec,
        progress: Progress::default(),
        created: 0,
        last_error: String::new(),
    };
    let mut r = Schedules::default();
    r.put(b"a", s.clone(), 2).unwrap();
    r.put(b"b", s.clone(), 2).unwrap();
    assert!(r.put(b"c", s.clone(), 2).is_err());
    // Replacing an existing one is not refused at the limit.
    r.put(b"b", s.clone(), 2).unwrap();
    assert!(r.put(b"", s.clone(), 10).is_err());
    assert!(r.put(&[b'x'; MAX_NAME_LEN + 1], s.clone(), 10).is_err());
    r.put(&[b'x'; MAX_NAME_LEN], s.clone(), 10).unwrap();
    let (g, _) = r.get_gen(b"a").unwrap();
    // Not due before its first tick (200 ms after its cursor, 0).
    assert_eq!(r.due(199).count(), 0);
    assert_eq!(r.due(200).count(), 3);
    let p = Progress {
        cursor: 200,
        ..Progress::default()
    };
    assert!(r.advance(b"a", g, p, None));
    assert_eq!(r.get(b"a").unwrap().progress.cursor, 200);
    assert_eq!(
        r.due(200).map(|(n, _, _)| n.clone()).collect::<Vec<_>>(),
        vec![b"b".to_vec(), vec![b'x'; MAX_NAME_LEN]]
    );
    assert_eq!(r.due(400).count(), 3);
    r.put(b"a", s, 10).unwrap();
    assert!(!r.advance(b"a", g, p, None), "replaced since");
    assert!(r.del(b"a"));
    assert!(!r.del(b"a"));
    assert_eq!(jid(b"nightly", 1234), b"nightly:1234");
    let args = p.to_args();
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    assert_eq!(Progress::parse(&refs), Some(p));
    assert_eq!(Progress::parse(&refs[..4]), None);
}

#[test]
fn zones_resolve_without_a_system_database() {
    // The copy of the tzdb built into the binary (a machine without
    // /usr/share/zoneinfo falls back to it) knows the zones and their 2026 rules.
    let db = jiff::tz::TimeZoneDatabase::bundled();
    for z in ["America/New_York", "Europe/Berlin", "Asia/Tokyo", "UTC"] {
        assert!(db.get(z).is_ok(), "{z}");
    }
    let ny = db.get("America/New_York").unwrap();
    let t = Timestamp::from_millisecond(ms("2026-03-08T07:00:00Z") as i64).unwrap();
    assert_eq!(ny.to_offset(t), jiff::tz::offset(-4));
    assert_eq!(
        ny.to_offset(t - jiff::SignedDuration::from_secs(1)),
        jiff::tz::offset(-5)
    );
}
