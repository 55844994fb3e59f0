//! Bitmap behaviour the golden sequences cannot express: the offset limit follows
//! `proto-max-bulk-len` (a server-wide setting, changed live with CONFIG SET), and a long
//! random run of bit commands over the wire agrees with a `Vec<bool>` model.

use basalt_proto::Frame;
use basalt_testkit::RawClient;

const OFFSET_ERR: &[u8] = b"-ERR bit offset is not an integer or out of range\r\n";

fn client(port: u16) -> RawClient {
    RawClient::connect_port(port).expect("connect")
}

fn cmd(c: &mut RawClient, args: &[&str]) -> Vec<u8> {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    c.cmd(&args).expect("reply")
}

fn int(c: &mut RawClient, args: &[&str]) -> i64 {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match c.cmd_frame(&args).expect("reply") {
        Frame::Integer(i) => i,
        other => panic!("{args:?}: not an integer: {other:?}"),
    }
}

#[test]
fn offset_limit_follows_proto_max_bulk_len() {
    let server = crate::start(&["--proto-max-bulk-len", "1mb"]);
    let mut c = client(server.port());
    let limit_bits = 1024 * 1024 * 8;
    let at = limit_bits.to_string();
    let below = (limit_bits - 1).to_string();
    assert_eq!(cmd(&mut c, &["SETBIT", "k", &at, "1"]), OFFSET_ERR);
    assert_eq!(cmd(&mut c, &["GETBIT", "k", &at]), OFFSET_ERR);
    assert_eq!(
        cmd(&mut c, &["BITFIELD", "k", "GET", "u8", "#1048576"]),
        OFFSET_ERR
    );
    assert_eq!(int(&mut c, &["SETBIT", "k", &below, "1"]), 0);
    assert_eq!(int(&mut c, &["STRLEN", "k"]), 1024 * 1024);
    assert_eq!(int(&mut c, &["BITCOUNT", "k"]), 1);
    assert_eq!(int(&mut c, &["BITPOS", "k", "1"]), limit_bits - 1);
    // The last addressable byte, as an 8-bit field.
    assert_eq!(
        cmd(&mut c, &["BITFIELD", "k", "GET", "u8", "#1048575"]),
        b"*1\r\n:1\r\n"
    );
    // Raising the limit takes effect at once.
    assert_eq!(
        cmd(&mut c, &["CONFIG", "SET", "proto-max-bulk-len", "2mb"]),
        b"+OK\r\n"
    );
    assert_eq!(int(&mut c, &["SETBIT", "k", &at, "1"]), 0);
    assert_eq!(int(&mut c, &["STRLEN", "k"]), 1024 * 1024 + 1);
    let past = (2 * limit_bits).to_string();
    assert_eq!(cmd(&mut c, &["SETBIT", "k", &past, "1"]), OFFSET_ERR);
}

/// A tiny deterministic generator, so a failure replays exactly.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

#[test]
fn random_bit_commands_match_a_vec_bool_model() {
    let server = crate::start(&[]);
    let mut c = client(server.port());
    let mut rng = Lcg(0x5eed);
    let mut model: Vec<bool> = Vec::new();
    for step in 0..1500 {
        match rng.next(6) {
            0 | 1 => {
                let off = rng.next(600) as usize;
                let on = rng.next(2) == 1;
                let old = int(
                    &mut c,
                    &["SETBIT", "k", &off.to_string(), if on { "1" } else { "0" }],
                );
                let bytes = off / 8 + 1;
                if model.len() < bytes * 8 {
                    model.resize(bytes * 8, false);
                }
                assert_eq!(old, i64::from(model[off]), "step {step}: SETBIT {off}");
                model[off] = on;
            }
            2 => {
                let off = rng.next(700) as usize;
                let got = int(&mut c, &["GETBIT", "k", &off.to_string()]);
                let want = model.get(off).copied().unwrap_or(false);
                assert_eq!(got, i64::from(want), "step {step}: GETBIT {off}");
            }
            3 => {
                let len = model.len() as i64;
                let (a, b) = (rng.next(200) as i64 - 100, rng.next(200) as i64 - 100);
                let got = int(
                    &mut c,
                    &["BITCOUNT", "k", &a.to_string(), &b.to_string(), "BIT"],
                );
                let s = if a < 0 { (len + a).max(0) } else { a };
                let e = if b < 0 { (len + b).max(0) } else { b }.min(len - 1);
                let want = if (a < 0 && b < 0 && a > b) || s > e {
                    0
                } else {
                    (s..=e).filter(|&i| model[i as usize]).count() as i64
                };
                assert_eq!(got, want, "step {step}: BITCOUNT {a} {b} BIT");
            }
            4 => {
                let bit = rng.next(2) == 1;
                let got = int(&mut c, &["BITPOS", "k", if bit { "1" } else { "0" }]);
                let want = match model.iter().position(|&b| b == bit) {
                    Some(i) => i as i64,
                    // Clear bits continue past the end; a missing set bit is -1.
                    None if !bit && !model.is_empty() => model.len() as i64,
                    None if !bit => 0,
                    None => -1,
                };
                assert_eq!(got, want, "step {step}: BITPOS {bit}");
            }
            _ => {
                let width = 1 + rng.next(63);
                let off = rng.next(500);
                let reply = cmd(
                    &mut c,
                    &[
                        "BITFIELD_RO",
                        "k",
                        "GET",
                        &format!("u{width}"),
                        &off.to_string(),
                    ],
                );
                let mut want: u64 = 0;
                for i in off..off + width {
                    want = (want << 1) | u64::from(model.get(i as usize).copied().unwrap_or(false));
                }
                assert_eq!(
                    reply,
                    format!("*1\r\n:{want}\r\n").into_bytes(),
                    "step {step}"
                );
            }
        }
    }
    assert_eq!(
        int(&mut c, &["BITCOUNT", "k"]),
        model.iter().filter(|&&b| b).count() as i64
    );
}
