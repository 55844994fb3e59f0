//! Whole RDB files: the streaming writer and the loader.
//!
//! Layout (Redis 7.0, version 10):
//!
//! ```text
//! "REDIS0010"  AUX(redis-ver, redis-bits, ctime, used-mem, aof-base, ...)
//! SELECTDB n  RESIZEDB keys expires  [EXPIRETIME_MS t] [IDLE s | FREQ f] type key value ...
//! ...         EOF  crc64 (8 bytes, little endian; 0 when rdbchecksum is off)
//! ```
//!
//! The writer takes keys in any order and any number of `SELECTDB`s (a snapshot taken
//! shard by shard revisits databases); Redis's loader and `redis-check-rdb` accept that.

use super::decode::{Reader, read_object};
use super::encode::{Encoder, write_len};
use super::{RDB_VERSION, RdbError, opcodes};
use basalt_engine::{EncodingLimits, Value};
use std::io::{Read, Write};

/// Writes an RDB file as a stream, keeping its CRC-64.
pub struct FileWriter<W: Write> {
    w: W,
    crc: u64,
    checksum: bool,
    written: u64,
    db: Option<usize>,
}

impl<W: Write> FileWriter<W> {
    /// Starts a file: writes the magic and version. `checksum`: `rdbchecksum`.
    pub fn new(w: W, checksum: bool) -> std::io::Result<FileWriter<W>> {
        let mut f = FileWriter {
            w,
            crc: 0,
            checksum,
            written: 0,
            db: None,
        };
        f.write(format!("REDIS{RDB_VERSION:04}").as_bytes())?;
        Ok(f)
    }

    /// Writes prepared bytes (aux fields, key/value records from [`Encoder`]).
    pub fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        if self.checksum {
            self.crc = crate::crc64::crc64(self.crc, b);
        }
        self.written += b.len() as u64;
        self.w.write_all(b)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Switches to database `db` unless it is the current one; `resize` (keys, keys with
    /// an expire) is written as a `RESIZEDB` hint.
    pub fn select_db(&mut self, db: usize, resize: Option<(u64, u64)>) -> std::io::Result<()> {
        if self.db == Some(db) {
            return Ok(());
        }
        self.db = Some(db);
        let mut b = vec![opcodes::SELECTDB];
        write_len(&mut b, db as u64);
        if let Some((keys, expires)) = resize {
            b.push(opcodes::RESIZEDB);
            write_len(&mut b, keys);
            write_len(&mut b, expires);
        }
        self.write(&b)
    }

    /// Writes `EOF` and the checksum, flushes, and returns the sink and the file size.
    pub fn finish(mut self) -> std::io::Result<(W, u64)> {
        self.write(&[opcodes::EOF])?;
        let crc = if self.checksum { self.crc } else { 0 };
        self.w.write_all(&crc.to_le_bytes())?;
        self.written += 8;
        self.w.flush()?;
        Ok((self.w, self.written))
    }
}

/// The aux fields Redis 7.0 writes, with Basalt's values.
pub fn standard_aux(enc: &mut Encoder, ctime_secs: u64, used_mem: u64, aof_base: bool) -> Vec<u8> {
    let mut out = Vec::new();
    enc.aux(&mut out, b"redis-ver", crate::REDIS_VERSION.as_bytes());
    enc.aux(&mut out, b"redis-bits", b"64");
    enc.aux(&mut out, b"ctime", ctime_secs.to_string().as_bytes());
    enc.aux(&mut out, b"used-mem", used_mem.to_string().as_bytes());
    enc.aux(&mut out, b"aof-base", if aof_base { b"1" } else { b"0" });
    enc.aux(
        &mut out,
        b"basalt-ver",
        env!("CARGO_PKG_VERSION").as_bytes(),
    );
    out
}

/// One key read from a file.
#[derive(Debug)]
pub struct LoadedKey {
    /// Database index.
    pub db: usize,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Value,
    /// Unix-ms deadline, 0 if none.
    pub expire_ms: u64,
    /// `IDLE` seconds recorded by an LRU-policy server, if any.
    pub idle: Option<u64>,
    /// `FREQ` counter recorded by an LFU-policy server, if any.
    pub freq: Option<u8>,
}

/// What a load found besides the keys.
#[derive(Debug, Default)]
pub struct LoadSummary {
    /// The file's RDB version.
    pub version: u16,
    /// Aux fields in file order.
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    /// Keys handed to the callback.
    pub keys: u64,
    /// Empty collections skipped.
    pub empty_skipped: u64,
    /// False when the file carried a zero checksum (saved with `rdbchecksum no`) or
    /// checking was off.
    pub checksum_verified: bool,
    /// Bytes consumed, checksum included.
    pub bytes: u64,
    /// Code of each function library (`FUNCTION2` records), in file order.
    pub functions: Vec<Vec<u8>>,
}

impl LoadSummary {
    /// The value of aux field `key`.
    pub fn aux_field(&self, key: &str) -> Option<&[u8]> {
        self.aux
            .iter()
            .find(|(k, _)| k == key.as_bytes())
            .map(|(_, v)| v.as_slice())
    }
}

/// Options of [`load`].
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Encoding thresholds the loaded values are built with.
    pub limits: EncodingLimits,
    /// Verify the CRC-64 trailer (`rdbchecksum yes`).
    pub verify_checksum: bool,
}

/// Reads a whole RDB file of `len` bytes from `input`, calling `on_key` for every key
/// in file order. The first error stops the load; the keys already handed over are the
/// caller's to discard.
pub fn load<R: Read>(
    input: R,
    len: u64,
    opts: &LoadOptions,
    mut on_key: impl FnMut(LoadedKey) -> Result<(), RdbError>,
) -> Result<LoadSummary, RdbError> {
    let mut r = Reader::new(input, len);
    let mut magic = [0u8; 9];
    r.read_into(&mut magic).map_err(|e| match e {
        RdbError::Truncated { .. } => RdbError::Corrupt {
            offset: 0,
            what: "Wrong signature trying to load DB from file".into(),
        },
        e => e,
    })?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::Corrupt {
            offset: 0,
            what: "Wrong signature trying to load DB from file".into(),
        });
    }
    let version = std::str::from_utf8(&magic[5..])
        .ok()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| RdbError::Corrupt {
            offset: 5,
            what: "Wrong signature trying to load DB from file".into(),
        })?;
    if !(1..=RDB_VERSION).contains(&version) {
        return Err(RdbError::Unsupported(format!(
            "Can't handle RDB format version {version}"
        )));
    }
    let mut summary = LoadSummary {
        version,
        ..LoadSummary::default()
    };
    let mut db = 0usize;
    let mut expire_ms = 0u64;
    let mut idle = None;
    let mut freq = None;
    loop {
        let op = r.u8()?;
        match op {
            opcodes::EXPIRETIME => {
                // Seconds, as a 32-bit integer (RDB version < 3).
                expire_ms = (i64::from(r.i32_le()?) * 1000).max(0) as u64;
                continue;
            }
            opcodes::EXPIRETIME_MS => {
                expire_ms = r.u64_le()?;
                continue;
            }
            opcodes::FREQ => {
                freq = Some(r.u8()?);
                continue;
            }
            opcodes::IDLE => {
                idle = Some(r.length()?);
                continue;
            }
            opcodes::EOF => break,
            opcodes::SELECTDB => {
                let n = r.length()?;
                db = usize::try_from(n).map_err(|_| r.corrupt("database index out of range"))?;
                continue;
            }
            opcodes::RESIZEDB => {
                r.length()?;
                r.length()?;
                continue;
            }
            opcodes::AUX => {
                let k = r.string()?;
                let v = r.string()?;
                summary.aux.push((k, v));
                continue;
            }
            opcodes::MODULE_AUX => {
                let id = r.length()?;
                return Err(RdbError::Unsupported(format!(
                    "The RDB file contains AUX module data I can't load: no matching module '{}'",
                    super::module_type_name(id)
                )));
            }
            opcodes::FUNCTION2 => {
                // A function library's code; the server loads it into its engine.
                summary.functions.push(r.string()?);
                continue;
            }
            opcodes::FUNCTION_PRE_GA => {
                return Err(RdbError::Unsupported(
                    "The RDB file contains functions in the Redis 7.0 release-candidate format, which Basalt cannot load"
                        .into(),
                ));
            }
            ty => {
                let key = r.string()?;
                let value = read_object(&mut r, ty, &opts.limits)?;
                match value {
                    None => summary.empty_skipped += 1,
                    Some(value) => {
                        on_key(LoadedKey {
                            db,
                            key,
                            value,
                            expire_ms,
                            idle,
                            freq,
                        })?;
                        summary.keys += 1;
                    }
                }
                expire_ms = 0;
                idle = None;
                freq = None;
            }
        }
    }
    if version >= 5 {
        let computed = r.crc();
        let mut b = [0u8; 8];
        r.read_into(&mut b)?;
        let stored = u64::from_le_bytes(b);
        if stored != 0 && opts.verify_checksum {
            if stored != computed {
                return Err(RdbError::Checksum {
                    expected: stored,
                    got: computed,
                });
            }
            summary.checksum_verified = true;
        }
    }
    summary.bytes = r.offset();
    Ok(summary)
}
