//! Geo and SORT against a real server, for what golden sequences cannot express: writes
//! that store into a key wake clients blocked on it (BZPOPMIN on a GEOADD or *STORE
//! destination, BLPOP on a SORT ... STORE destination), and searches over a large index
//! agree with a brute-force scan of every member.

use crate::waiting::{client, reply, send, wait_blocked};
use basalt_engine::geo;
use basalt_testkit::RawClient;

fn cmd(c: &mut RawClient, line: &str) -> String {
    String::from_utf8_lossy(&c.cmd_line(line).expect("command")).into_owned()
}

#[test]
fn geo_writes_wake_sorted_set_waiters() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    let cases = [
        "GEOADD k 13.361389 38.115556 Palermo",
        "GEORADIUS src 15 37 200 km STORE k",
        "GEORADIUSBYMEMBER src Catania 1 km STOREDIST k",
        "GEOSEARCHSTORE k src FROMMEMBER Palermo BYRADIUS 1 km",
    ];
    for write in cases {
        cmd(&mut ctl, "FLUSHALL");
        cmd(
            &mut ctl,
            "GEOADD src 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
        );
        send(&mut w, "BZPOPMIN k 0");
        wait_blocked(&mut ctl, 1);
        let n = cmd(&mut ctl, write);
        assert!(n.starts_with(':') && n != ":0\r\n", "{write}: {n}");
        let got = reply(&mut w);
        assert!(
            got.starts_with("*3\r\n$1\r\nk\r\n"),
            "woken by {write}: {got}"
        );
        wait_blocked(&mut ctl, 0);
    }
}

#[test]
fn sort_store_wakes_a_list_waiter() {
    let server = crate::start(&[]);
    let mut ctl = client(&server);
    let mut w = client(&server);
    cmd(&mut ctl, "RPUSH src 3 1 2");
    send(&mut w, "BLPOP dst 0");
    wait_blocked(&mut ctl, 1);
    assert_eq!(cmd(&mut ctl, "SORT src STORE dst"), ":3\r\n");
    assert_eq!(reply(&mut w), "*2\r\n$3\r\ndst\r\n$1\r\n1\r\n");
    assert_eq!(
        cmd(&mut ctl, "LRANGE dst 0 -1"),
        "*2\r\n$1\r\n2\r\n$1\r\n3\r\n"
    );
}

/// Deterministic pseudo-random numbers for the test's points.
fn rng(mut x: u64) -> impl FnMut() -> f64 {
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Members named in a RESP array of bulk strings.
fn members(reply: &str) -> Vec<String> {
    let mut out: Vec<String> = reply
        .split("\r\n")
        .skip(1)
        .filter(|l| !l.starts_with('$') && !l.is_empty())
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

#[test]
fn searches_over_a_large_index_match_a_full_scan() {
    let server = crate::start(&[]);
    let mut c = client(&server);
    let mut next = rng(0x9E37_79B9_7F4A_7C15);
    // 20 000 points around Europe, added in batches.
    let mut points = Vec::new();
    for batch in 0..20 {
        let mut line = String::from("GEOADD g");
        for i in 0..1000 {
            let lon = -10.0 + next() * 40.0;
            let lat = 35.0 + next() * 25.0;
            let name = format!("p{}", batch * 1000 + i);
            line.push_str(&format!(" {lon:.6} {lat:.6} {name}"));
            points.push((name, lon, lat));
        }
        assert_eq!(cmd(&mut c, &line), ":1000\r\n");
    }
    // The stored (decoded) positions, as the server measures from them.
    let decoded: Vec<(String, f64, f64)> = points
        .iter()
        .map(|(n, lon, lat)| {
            let score = geo::score_of(*lon, *lat).expect("valid") as f64;
            let (dlon, dlat) = geo::decode_score(score);
            (n.clone(), dlon, dlat)
        })
        .collect();
    for q in 0..30 {
        let lon = -5.0 + next() * 30.0;
        let lat = 38.0 + next() * 20.0;
        let radius_km = [1.0, 10.0, 50.0, 200.0, 800.0][q % 5] * (0.5 + next());
        let got = members(&cmd(
            &mut c,
            &format!("GEOSEARCH g FROMLONLAT {lon} {lat} BYRADIUS {radius_km} km"),
        ));
        let mut want: Vec<String> = decoded
            .iter()
            .filter(|(_, plon, plat)| geo::distance(lon, lat, *plon, *plat) <= radius_km * 1000.0)
            .map(|(n, _, _)| n.clone())
            .collect();
        want.sort();
        assert_eq!(got, want, "radius {radius_km} km around {lon},{lat}");
        let (w, h) = (radius_km * 2.0, radius_km);
        let got = members(&cmd(
            &mut c,
            &format!("GEOSEARCH g FROMLONLAT {lon} {lat} BYBOX {w} {h} km"),
        ));
        let shape = geo::Shape {
            lon,
            lat,
            conversion: 1000.0,
            extent: geo::Extent::Box {
                width: w,
                height: h,
            },
        };
        let mut want: Vec<String> = decoded
            .iter()
            .filter(|(_, plon, plat)| shape.distance_if_within(*plon, *plat).is_some())
            .map(|(n, _, _)| n.clone())
            .collect();
        want.sort();
        assert_eq!(got, want, "box {w}x{h} km around {lon},{lat}");
    }
}
