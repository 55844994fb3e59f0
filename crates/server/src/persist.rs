//! Snapshots on the server side: `SAVE`, `BGSAVE` without fork, `save <seconds> <changes>`
//! points, loading the RDB at startup and saving it at shutdown. The file format is
//! `basalt-persist`'s.
//!
//! ## Consistency of a snapshot
//!
//! Redis forks and the child writes the memory image of one instant. Basalt does not
//! fork: BGSAVE freezes the keyspace at one instant (every shard locked at once, briefly;
//! see [`basalt_engine::Keyspace::freeze`]) and a background thread then walks each shard
//! [`SAVE_CHUNK_ENTRIES`] entries at a time, releasing the lock between chunks; entries
//! are serialized, LZF compressed and written with no lock held. A key changed before
//! the walk reaches it first hands its old entry to the save (copy-on-write per key), so
//! the file is the dataset of the BGSAVE instant, like a fork's. The AOF rewrite uses the
//! same freeze, and only one exists at a time: BGSAVE and BGREWRITEAOF take turns with
//! Redis's replies and scheduling.
//!
//! SAVE, the save at shutdown and DEBUG RELOAD (nothing else runs) copy each shard whole
//! under its lock instead: a shard is captured at one instant, different shards at
//! slightly different ones.

use crate::server::{Server, unix_ms};
use basalt_engine::Value;
use basalt_persist::rdb::RdbError;
use basalt_persist::rdb::encode::{EncodeOptions, Encoder};
use basalt_persist::rdb::file::{FileWriter, LoadOptions, LoadedKey, load, standard_aux};
use bytes::Bytes;
use parking_lot::Mutex;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Seconds between a failed background save and the next save-point attempt (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
pub const BGSAVE_RETRY_DELAY_SECS: u64 = 5;

/// Buffer between the serializer and the file.
const WRITE_BUFFER: usize = 1 << 20;

/// Bytes a snapshot or rewrite writes between two syncs with `rdb-save-incremental-fsync`
/// / `aof-rewrite-incremental-fsync` (Redis's `REDIS_AUTOSYNC_BYTES`).
pub const AUTOSYNC_BYTES: u64 = 4 << 20;

/// A file being written that syncs its data every `every` bytes (never with `None`):
/// Redis's `rioSetAutoSync`. The writing thread waits for each sync; the writeback of
/// a large file is spread over its writing instead of arriving in one burst at the end.
pub struct AutoSync {
    file: File,
    every: Option<u64>,
    pending: u64,
    syncs: u64,
}

impl AutoSync {
    /// Wraps `file`.
    pub fn new(file: File, every: Option<u64>) -> AutoSync {
        AutoSync {
            file,
            every,
            pending: 0,
            syncs: 0,
        }
    }

    /// Syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// The file, for its final sync.
    pub fn into_file(self) -> File {
        self.file
    }
}

impl std::io::Write for AutoSync {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(every) = self.every {
            self.pending += n as u64;
            if self.pending >= every {
                self.file.sync_data()?;
                self.pending = 0;
                self.syncs += 1;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Redis's MISCONF reply while writes are refused after a failed background save.
pub const MISCONF: &str = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. Commands that may modify the data set are disabled, because this instance is configured to report errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Snapshot state and counters (`INFO persistence`).
pub struct Persistence {
    /// Changes since the last successful save, counted as Redis's `server.dirty`
    /// (`rdb_changes_since_last_save`; see [`crate::server::Changes`]).
    pub dirty: AtomicU64,
    dirty_at_start: AtomicU64,
    /// Unix seconds of the last successful save (server start before any).
    pub lastsave: AtomicU64,
    last_ok: AtomicBool,
    last_try: AtomicU64,
    /// Successful saves.
    pub saves: AtomicU64,
    /// A save (foreground or background) is running.
    in_progress: AtomicBool,
    /// A background save is running.
    pub bgsave_running: AtomicBool,
    /// `BGSAVE SCHEDULE` waits for the running AOF rewrite (Redis's
    /// `rdb_bgsave_scheduled`); the cron starts the save once the rewrite is over.
    pub bgsave_scheduled: AtomicBool,
    /// Held while a background job (BGSAVE, AOF rewrite) checks the other and starts:
    /// the two freeze the keyspace, and only one freeze exists at a time.
    pub bg_start: Mutex<()>,
    bgsave_started: Mutex<Option<Instant>>,
    /// Duration of the last background save in seconds (-1: none yet).
    pub last_bgsave_secs: AtomicI64,
    /// Asks a running background save to stop (shutdown).
    cancel: AtomicBool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Writes are refused with MISCONF.
    pub deny_writes: AtomicBool,
    /// Keys processed / to process by the running save.
    pub keys_processed: AtomicU64,
    /// Keys in the dataset when the running save started.
    pub keys_total: AtomicU64,
    /// Keys loaded by the last load.
    pub loaded_keys: AtomicU64,
    /// Keys found expired (and skipped) by the last load.
    pub loaded_expired: AtomicU64,
    /// The dataset is being loaded at startup (`loading:1`, `-LOADING` replies).
    pub loading: AtomicBool,
    /// Unix seconds when the load started (`loading_start_time`).
    pub loading_start: AtomicU64,
    /// Bytes of the files to load (`loading_total_bytes`).
    pub loading_total: AtomicU64,
    /// Bytes read so far (`loading_loaded_bytes`).
    pub loading_loaded: AtomicU64,
    /// The `used-mem` aux field of the RDB being loaded (`loading_rdb_used_mem`).
    pub loading_rdb_used_mem: AtomicU64,
}

impl Persistence {
    /// Fresh state; `now_secs` stands for the last save until there is one.
    pub fn new(now_secs: u64) -> Persistence {
        Persistence {
            dirty: AtomicU64::new(0),
            dirty_at_start: AtomicU64::new(0),
            lastsave: AtomicU64::new(now_secs),
            last_ok: AtomicBool::new(true),
            last_try: AtomicU64::new(0),
            saves: AtomicU64::new(0),
            in_progress: AtomicBool::new(false),
            bgsave_running: AtomicBool::new(false),
            bgsave_scheduled: AtomicBool::new(false),
            bg_start: Mutex::new(()),
            bgsave_started: Mutex::new(None),
            last_bgsave_secs: AtomicI64::new(-1),
            cancel: AtomicBool::new(false),
            thread: Mutex::new(None),
            deny_writes: AtomicBool::new(false),
            keys_processed: AtomicU64::new(0),
            keys_total: AtomicU64::new(0),
            loaded_keys: AtomicU64::new(0),
            loaded_expired: AtomicU64::new(0),
            loading: AtomicBool::new(false),
            loading_start: AtomicU64::new(0),
            loading_total: AtomicU64::new(0),
            loading_loaded: AtomicU64::new(0),
            loading_rdb_used_mem: AtomicU64::new(0),
        }
    }

    /// Enters the loading state for `total` bytes of files (Redis's `startLoading`); the
    /// server leaves it with [`Persistence::stop_loading`] once the AOF is open too.
    pub fn start_loading(&self, total: u64) {
        self.loading_start.store(unix_secs(), Ordering::Relaxed);
        self.loading_total.store(total, Ordering::Relaxed);
        self.loading_loaded.store(0, Ordering::Relaxed);
        self.loading_rdb_used_mem.store(0, Ordering::Relaxed);
        self.loading.store(true, Ordering::Release);
    }

    /// Leaves the loading state (Redis's `stopLoading`).
    pub fn stop_loading(&self) {
        self.loading.store(false, Ordering::Release);
    }

    /// Adds the changes a command made (see [`crate::server::Changes`]).
    #[inline]
    pub fn note_changes(&self, n: u64) {
        if n > 0 {
            self.dirty.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Status of the last background (or foreground) save, for INFO.
    pub fn last_status_ok(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed)
    }

    /// Seconds the running background save has taken (-1: none running).
    pub fn current_bgsave_secs(&self) -> i64 {
        match *self.bgsave_started.lock() {
            Some(t) if self.bgsave_running.load(Ordering::Relaxed) => t.elapsed().as_secs() as i64,
            _ => -1,
        }
    }
}

fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Recomputes whether writes are refused (after a save finished, an AOF write failed
/// or succeeded again, or CONFIG SET).
pub fn update_deny_writes(srv: &Server) {
    let c = srv.config.read();
    let deny = c.stop_writes_on_bgsave_error
        && !c.save.is_empty()
        && !srv.persist.last_ok.load(Ordering::Relaxed);
    let aof_failing = srv.aof.is_on() && !srv.aof.last_write_ok.load(Ordering::Relaxed);
    srv.persist
        .deny_writes
        .store(deny || aof_failing, Ordering::Relaxed);
}

/// The reply refusing a write while writes are denied: the AOF's error if the AOF
/// cannot write, else the RDB one.
pub fn misconf(srv: &Server) -> String {
    if srv.aof.is_on() && !srv.aof.last_write_ok.load(Ordering::Relaxed) {
        format!(
            "MISCONF Errors writing to the AOF file: {}",
            srv.aof.last_write_error()
        )
    } else {
        MISCONF.to_string()
    }
}

/// The RDB file's path: `dir` / `dbfilename`.
pub fn rdb_path(srv: &Server) -> PathBuf {
    let c = srv.config.read();
    c.dir.join(&c.dbfilename)
}

/// What a finished save wrote.
#[derive(Debug, Clone, Copy)]
pub struct SaveStats {
    /// Keys written.
    pub keys: u64,
    /// File size in bytes.
    pub bytes: u64,
}

/// Most entries a background save (or an AOF rewrite) copies out of a frozen shard
/// under one hold of its lock (see [`basalt_engine::Keyspace::frozen_chunk`]): a client
/// touching that shard waits at most for one such chunk. Measured with 2M keys of 100
/// bytes in 64 shards (`lock_hold_of_a_save` in the engine, release build, loaded
/// machine): the median hold is about 0.11 ms for 256 entries (0.18 ms for 512, 0.37
/// ms for 1024), against 17.6 ms for a whole shard; 256 keeps a hold a fraction of the
/// steady p99 of a request (0.45 ms) for about 8k lock acquisitions per 2M keys.
pub const SAVE_CHUNK_ENTRIES: usize = 256;

/// `rdb-key-save-delay` (Redis's `debugDelay`), applied after each key a snapshot or a
/// rewrite writes, with no lock held: tests use it to keep a save running.
pub struct KeyDelay {
    usec: i64,
    keys: u64,
}

impl KeyDelay {
    /// The delay configured now (read once per save, as Redis's child reads it at fork).
    pub fn new(srv: &Server) -> KeyDelay {
        KeyDelay {
            usec: srv.config.read().rdb_key_save_delay,
            keys: 0,
        }
    }

    /// Sleeps after a key: `usec` microseconds, or 1 µs every `-usec` keys.
    pub fn after_key(&mut self) {
        let sleep = match self.usec {
            0 => return,
            u if u > 0 => u.unsigned_abs(),
            u => {
                self.keys += 1;
                u64::from(self.keys.is_multiple_of(u.unsigned_abs()))
            }
        };
        if sleep > 0 {
            std::thread::sleep(std::time::Duration::from_micros(sleep));
        }
    }
}

/// A point-in-time view being saved: the keyspace is frozen (see
/// [`basalt_engine::Keyspace::freeze`]) and what the file carries besides the keys was
/// taken at the same moment.
pub struct Frozen {
    /// Unix milliseconds of the freeze (keys with an earlier deadline are left out).
    pub at_ms: u64,
    /// The function libraries at the freeze.
    pub libraries: Vec<Bytes>,
    /// The coordination state, taken right after the freeze (its fence counter covers
    /// every fence the view holds).
    pub coord: crate::coord::CoordState,
    /// (keys, volatile keys) per database at the freeze (the resize-db hints).
    pub sizes: Vec<(usize, usize)>,
    /// The recurring jobs' aux fields, taken just *before* the freeze (see
    /// `job_schedule::aux_values`).
    pub schedules: Vec<Vec<u8>>,
}

/// Freezes the keyspace for a background save. None if a view is already being saved
/// (an AOF rewrite).
fn freeze(srv: &Server) -> Option<Frozen> {
    let at_ms = unix_ms();
    let libraries = library_codes(srv);
    // Hints for the loader only: taken just before the freeze.
    let sizes = srv.keyspace.db_sizes();
    let schedules = crate::families::job_schedule::aux_values(srv);
    let mut g = srv.keyspace.lock_all(at_ms);
    if !srv.keyspace.freeze(&mut g) {
        return None;
    }
    drop(g);
    let coord = srv.coord.state();
    Some(Frozen {
        at_ms,
        libraries,
        coord,
        sizes,
        schedules,
    })
}

/// Writes a snapshot of the whole keyspace to `path` through a temp file in the same
/// directory, fsyncs it, renames it over `path` and fsyncs the directory. On any error
/// the temp file is removed and `path` is untouched. With `frozen`, the file holds that
/// point-in-time view, walked a chunk at a time; without, each shard as it is when the
/// walk reaches it (SAVE, shutdown, DEBUG RELOAD: nothing else runs).
pub fn write_snapshot(
    srv: &Server,
    path: &Path,
    cancel: Option<&AtomicBool>,
    frozen: Option<&Frozen>,
) -> Result<SaveStats, String> {
    let (compression, checksum, fill, autosync) = {
        let c = srv.config.read();
        (
            c.rdbcompression,
            c.rdbchecksum,
            c.enc.list_max_listpack_size,
            c.rdb_save_incremental_fsync.then_some(AUTOSYNC_BYTES),
        )
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let tmp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let file = File::create(&tmp).map_err(|e| {
        format!(
            "Failed opening the temp RDB file {} (in server root dir {}) for saving: {e}",
            tmp.display(),
            dir.display()
        )
    })?;
    let file = AutoSync::new(file, autosync);
    let written = write_keyspace(srv, file, compression, checksum, fill, cancel, frozen);
    let stats = match written {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!(
            "Error moving temp DB file {} on the final destination {} (in server root dir {}): {e}",
            tmp.display(),
            path.display(),
            dir.display()
        ));
    }
    // The rename is durable once the directory is synced.
    if let Ok(d) = File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(stats)
}

fn write_keyspace(
    srv: &Server,
    file: AutoSync,
    compression: bool,
    checksum: bool,
    fill: i64,
    cancel: Option<&AtomicBool>,
    frozen: Option<&Frozen>,
) -> Result<SaveStats, String> {
    let werr = |e: std::io::Error| format!("Write error saving DB on disk: {e}");
    let mut w =
        FileWriter::new(BufWriter::with_capacity(WRITE_BUFFER, file), checksum).map_err(werr)?;
    let mut enc = Encoder::new(EncodeOptions {
        compression,
        list_fill: fill,
    });
    let aux = standard_aux(
        &mut enc,
        unix_secs(),
        crate::alloc::allocated() as u64,
        false,
    );
    w.write(&aux).map_err(werr)?;
    w.write(&policy_aux(&mut enc, srv)).map_err(werr)?;
    let schedules = match frozen {
        Some(f) => f.schedules.clone(),
        None => crate::families::job_schedule::aux_values(srv),
    };
    w.write(&schedule_aux(&mut enc, &schedules)).map_err(werr)?;
    // Function libraries come before the databases, as Redis writes them.
    let libraries = match frozen {
        Some(f) => f.libraries.clone(),
        None => library_codes(srv),
    };
    w.write(&function_records(&mut enc, &libraries))
        .map_err(werr)?;
    let sizes = match frozen {
        Some(f) => f.sizes.clone(),
        None => srv.keyspace.db_sizes(),
    };
    let total: u64 = sizes.iter().map(|(k, _)| *k as u64).sum();
    srv.persist.keys_total.store(total, Ordering::Relaxed);
    srv.persist.keys_processed.store(0, Ordering::Relaxed);
    let mut resized = vec![false; sizes.len()];
    let mut buf = Vec::with_capacity(64 << 10);
    let mut keys = 0u64;
    let walk = match frozen {
        Some(f) => Walk::Frozen(f.at_ms),
        None => Walk::Live,
    };
    walk_keys(srv, walk, cancel, |db, key, value, expire| {
        let resize = (!resized[db]).then(|| {
            let (k, v) = sizes.get(db).copied().unwrap_or_default();
            (k as u64, v as u64)
        });
        resized[db] = true;
        w.select_db(db, resize).map_err(werr)?;
        buf.clear();
        enc.key_value(&mut buf, key, value, expire);
        w.write(&buf).map_err(werr)?;
        keys += 1;
        srv.persist.keys_processed.store(keys, Ordering::Relaxed);
        Ok(())
    })?;
    // Written after the keys, so the counter covers every fence the snapshot holds (a
    // loader reads aux fields anywhere). Absent when coordination was never used.
    let now_state;
    let coord = match frozen {
        Some(f) => &f.coord,
        None => {
            now_state = srv.coord.state();
            &now_state
        }
    };
    for (name, value) in coord.aux_fields() {
        buf.clear();
        enc.aux(&mut buf, name, &value);
        w.write(&buf).map_err(werr)?;
    }
    let (bw, bytes) = w.finish().map_err(werr)?;
    let file = bw.into_inner().map_err(|e| werr(e.into_error()))?;
    file.into_file().sync_all().map_err(werr)?;
    Ok(SaveStats { keys, bytes })
}

/// Which view of the keyspace a save walks.
pub(crate) enum Walk {
    /// The frozen view (BGSAVE, AOF rewrite), in chunks with the shard lock released
    /// between them; keys past their deadline at the freeze instant (Unix ms) are left
    /// out.
    Frozen(u64),
    /// The frozen view, each shard taken whole (the AOF base written at startup).
    FrozenWhole(u64),
    /// The live keyspace, each shard copied whole under its lock (SAVE, shutdown,
    /// DEBUG RELOAD).
    Live,
}

/// Calls `f` with every key of `walk`'s view (database, name, value, deadline), copying
/// entries out under the shard lock and calling `f` without it. Stops with an error when
/// `cancel` is raised (shutdown, FLUSHALL) or `f` fails; honours `rdb-key-save-delay`.
/// Names and string values are copied into one reused buffer, so a save of many string
/// keys allocates nothing per key; only other types are cloned.
pub(crate) fn walk_keys(
    srv: &Server,
    walk: Walk,
    cancel: Option<&AtomicBool>,
    mut f: impl FnMut(usize, &[u8], basalt_engine::ValueRef<'_>, u64) -> Result<(), String>,
) -> Result<(), String> {
    use basalt_engine::{EntryRef, StrRef, ValueRef};
    use std::ops::Range;
    /// A value copied out: string bytes in the arena (with their encoding), an integer,
    /// or a clone of another type.
    enum Copied {
        Embstr(Range<usize>),
        Raw(Range<usize>),
        Int(i64),
        Other(Value),
    }
    let mut batch: Vec<(usize, Range<usize>, Copied, u64)> = Vec::new();
    let mut arena: Vec<u8> = Vec::new();
    let copy = |arena: &mut Vec<u8>, db: usize, k: &[u8], e: EntryRef<'_>| {
        let at = arena.len();
        arena.extend_from_slice(k);
        let key = at..arena.len();
        let value = match e.value() {
            ValueRef::Str(StrRef::Int(i)) => Copied::Int(i),
            ValueRef::Str(StrRef::Embstr(b)) => {
                let at = arena.len();
                arena.extend_from_slice(b);
                Copied::Embstr(at..arena.len())
            }
            ValueRef::Str(StrRef::Raw(b)) => {
                let at = arena.len();
                arena.extend_from_slice(b);
                Copied::Raw(at..arena.len())
            }
            ValueRef::Other(v) => Copied::Other(v.clone()),
        };
        (db, key, value, e.expire_at())
    };
    let mut delay = KeyDelay::new(srv);
    for shard in 0..srv.keyspace.shard_count() {
        let mut done = false;
        while !done {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err("Background saving interrupted (the server is shutting down)".into());
            }
            // The only part under the shard's lock: copying entries out.
            let live_at = |now: u64| move |e: EntryRef<'_>| !e.is_expired(now);
            match walk {
                Walk::Frozen(now) => {
                    let live = live_at(now);
                    done = srv
                        .keyspace
                        .frozen_chunk(shard, SAVE_CHUNK_ENTRIES, |db, k, e| {
                            if live(e) {
                                batch.push(copy(&mut arena, db, k, e));
                            }
                        });
                }
                Walk::FrozenWhole(now) => {
                    let live = live_at(now);
                    srv.keyspace.take_frozen(shard, |db, k, e| {
                        if live(e) {
                            batch.push(copy(&mut arena, db, k, e));
                        }
                    });
                    done = true;
                }
                Walk::Live => {
                    let now = unix_ms();
                    srv.keyspace.with_shard(shard, |s| {
                        s.for_each_live(now, |db, k, e| {
                            batch.push(copy(&mut arena, db, k, e));
                        });
                    });
                    done = true;
                }
            }
            for (db, key, value, expire) in batch.drain(..) {
                let value = match &value {
                    Copied::Embstr(r) => ValueRef::Str(StrRef::Embstr(&arena[r.clone()])),
                    Copied::Raw(r) => ValueRef::Str(StrRef::Raw(&arena[r.clone()])),
                    Copied::Int(i) => ValueRef::Str(StrRef::Int(*i)),
                    Copied::Other(v) => ValueRef::Other(v),
                };
                f(db, &arena[key], value, expire)?;
                delay.after_key();
            }
            arena.clear();
            saver_tick();
        }
    }
    Ok(())
}

/// The source of every function library (what FUNCTION DUMP / an RDB file carries).
pub fn library_codes(srv: &Server) -> Vec<bytes::Bytes> {
    srv.scripting
        .functions
        .lock()
        .libraries
        .values()
        .map(|l| l.code.clone())
        .collect()
}

/// `RDB_OPCODE_FUNCTION2` records of `codes`, as Redis writes them before the databases.
pub fn function_records(enc: &mut Encoder, codes: &[bytes::Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for code in codes {
        out.push(crate::scripting::dump::OPCODE_FUNCTION2);
        enc.string(&mut out, code);
    }
    out
}

/// Recurring jobs as aux fields (`basalt-job-schedule`, one per schedule), from
/// `job_schedule::aux_values`.
pub fn schedule_aux(enc: &mut Encoder, values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        enc.aux(
            &mut out,
            crate::families::job_schedule::AUX_FIELD.as_bytes(),
            v,
        );
    }
    out
}

/// The rate-limit policies as aux fields (`basalt-rl-policy`, one per policy).
pub fn policy_aux(enc: &mut Encoder, srv: &Server) -> Vec<u8> {
    let mut out = Vec::new();
    for v in crate::families::rl_policy::aux_values(srv) {
        enc.aux(
            &mut out,
            crate::families::rl_policy::AUX_FIELD.as_bytes(),
            &v,
        );
    }
    out
}

fn begin(srv: &Server) -> bool {
    let p = &srv.persist;
    if p.in_progress
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return false;
    }
    p.dirty_at_start
        .store(p.dirty.load(Ordering::Relaxed), Ordering::Relaxed);
    p.last_try.store(unix_secs(), Ordering::Relaxed);
    true
}

fn end(srv: &Server, result: &Result<SaveStats, String>) {
    let p = &srv.persist;
    match result {
        Ok(_) => {
            let before = p.dirty_at_start.load(Ordering::Relaxed);
            // Writes made while saving stay counted.
            let _ = p
                .dirty
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| {
                    Some(d.saturating_sub(before))
                });
            p.lastsave.store(unix_secs(), Ordering::Relaxed);
            p.saves.fetch_add(1, Ordering::Relaxed);
            p.last_ok.store(true, Ordering::Relaxed);
        }
        // A save stopped on purpose (FLUSHALL, shutdown) is not a failure: Redis kills
        // its child with SIGUSR1 for the same reason.
        Err(_) if p.cancel.load(Ordering::Relaxed) => {}
        Err(_) => p.last_ok.store(false, Ordering::Relaxed),
    }
    p.in_progress.store(false, Ordering::Release);
    update_deny_writes(srv);
}

/// `SAVE`: a snapshot written by the calling thread. Other clients keep being served
/// (only the shard being copied is locked at any moment). `Err(None)`: a save is already
/// running; `Err(Some(msg))`: the save failed (logged).
pub fn save(srv: &Server) -> Result<SaveStats, Option<String>> {
    if !begin(srv) {
        return Err(None);
    }
    let r = write_snapshot(srv, &rdb_path(srv), None, None);
    end(srv, &r);
    match r {
        Ok(s) => {
            tracing::info!("DB saved on disk");
            Ok(s)
        }
        Err(e) => {
            tracing::warn!("{e}");
            Err(Some(e))
        }
    }
}

/// How a request to start a background save ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BgsaveStart {
    /// The save runs.
    Started,
    /// A save (background or foreground) is already running.
    Running,
    /// An AOF rewrite runs (it holds the keyspace's one freeze).
    RewriteRunning,
    /// The thread could not be started (logged).
    Failed,
}

/// `BGSAVE`: freezes the keyspace (one instant, like Redis's fork) and writes that view
/// from a background thread.
pub fn bgsave(srv: &Server) -> BgsaveStart {
    let Some(arc) = srv.me.upgrade() else {
        return BgsaveStart::Failed;
    };
    let p = &srv.persist;
    let _start = p.bg_start.lock();
    if srv.aof.rewrite_running.load(Ordering::Acquire) {
        return BgsaveStart::RewriteRunning;
    }
    if !begin(srv) {
        return BgsaveStart::Running;
    }
    let Some(frozen) = freeze(srv) else {
        // Unreachable while starts are serialized by `bg_start`; refuse rather than
        // save a view that is not one instant.
        end(
            srv,
            &Err("a point-in-time view is already being saved".into()),
        );
        return BgsaveStart::RewriteRunning;
    };
    p.cancel.store(false, Ordering::Relaxed);
    p.bgsave_running.store(true, Ordering::Relaxed);
    *p.bgsave_started.lock() = Some(Instant::now());
    tracing::info!("Background saving started");
    let path = rdb_path(srv);
    let spawned = std::thread::Builder::new()
        .name("basalt-bgsave".into())
        .spawn(move || run_bgsave(arc, path, frozen));
    match spawned {
        Ok(h) => {
            *p.thread.lock() = Some(h);
            BgsaveStart::Started
        }
        Err(e) => {
            tracing::warn!("Can't save in background: thread spawn failed: {e}");
            srv.keyspace.thaw();
            let r = Err(e.to_string());
            p.bgsave_running.store(false, Ordering::Relaxed);
            end(srv, &r);
            BgsaveStart::Failed
        }
    }
}

/// Nice value of the threads writing snapshots and AOF rewrites once they stop yielding
/// (see [`background_priority`]): a fork-based Redis's child competes with the server at
/// equal priority on a shared core; nice 10 weighs about a tenth of nice 0, so a
/// snapshot still finishes under full load, only slower.
const BACKGROUND_NICE: libc::c_int = 10;

/// A saving thread that still runs under SCHED_IDLE.
#[derive(Clone, Copy)]
struct Yielding {
    /// When it started.
    start: Instant,
    /// Its run delay (see [`run_delay`]) when it started.
    delay0: Option<Duration>,
    /// When [`saver_tick`] looks next: not before `save-yield-seconds` (how long it may
    /// starve before it falls back to nice 10), then every 100 ms (it reads /proc).
    next_check: Instant,
}

std::thread_local! {
    static YIELDING: std::cell::Cell<Option<Yielding>> = const { std::cell::Cell::new(None) };
    /// This thread is a background saver ([`background_priority`]).
    static BACKGROUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Time the calling thread has spent runnable but waiting for a CPU
/// (`/proc/thread-self/schedstat`), if the kernel reports it.
fn run_delay() -> Option<Duration> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Makes the calling thread a background saver (BGSAVE, AOF rewrite; Linux: scheduling
/// is per thread). It gets nice 10 and, with `yield_secs` > 0, the SCHED_IDLE policy:
/// a thread serving clients that wakes up preempts it at once. A nice value alone only
/// lowers a thread's share: under the kernel's EEVDF scheduler a nice-10 saver that is
/// picked keeps the core for its slice, up to milliseconds, while requests wait — that
/// was most of the p99 of other clients during BGSAVE with the server on one core.
/// Because a SCHED_IDLE thread gets almost nothing on a core that is never idle,
/// [`saver_tick`] (called between chunks) falls back to plain nice 10 once the save has
/// run `yield_secs` and spent nine tenths of that time waiting for a CPU. Failures only
/// cost latency and are ignored.
pub fn background_priority(yield_secs: u64) {
    // SAFETY: plain syscalls on the calling thread's own id.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE);
        BACKGROUND.set(true);
        if yield_secs > 0 {
            let param = libc::sched_param { sched_priority: 0 };
            if libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 {
                let start = Instant::now();
                let limit = Duration::from_secs(yield_secs);
                YIELDING.set(Some(Yielding {
                    start,
                    delay0: run_delay(),
                    next_check: start + limit,
                }));
            }
        }
    }
}

/// Between two chunks of a background save: a saver still under SCHED_IDLE that has
/// run its `save-yield-seconds` and spent nine tenths of that time waiting for a CPU
/// (starved by cores that are never idle) goes back to the normal policy at nice 10.
/// Only waiting counts: a saver that gets a share of a busy core keeps yielding (at nice
/// 10 the kernel would give it whole slices of milliseconds while requests wait), and
/// time spent writing or syncing the file is not starvation. Without the kernel's run
/// delay, less than a tenth of the time on a CPU counts as starved. Does nothing on
/// other threads.
pub fn saver_tick() {
    if !BACKGROUND.get() {
        return;
    }
    // The kernel (EEVDF) still picks a SCHED_IDLE or nice-10 saver now and then while a
    // worker is runnable, and then lets it run a whole slice (3 ms and more, measured
    // with `perf sched`: most of the p99 of other clients during BGSAVE). Giving the
    // core back after every chunk (about 0.1 ms of work) bounds that to one chunk; with
    // nobody else runnable it returns at once.
    // SAFETY: a plain syscall.
    unsafe { libc::sched_yield() };
    let Some(mut y) = YIELDING.get() else {
        return;
    };
    let now = Instant::now();
    if now < y.next_check {
        return;
    }
    y.next_check = now + Duration::from_millis(100);
    YIELDING.set(Some(y));
    let wall = now - y.start;
    let starved = match (y.delay0, run_delay()) {
        (Some(d0), Some(d)) => d.saturating_sub(d0) * 10 >= wall * 9,
        _ => thread_cpu_time() * 10 < wall,
    };
    if !starved {
        return;
    }
    YIELDING.set(None);
    // SAFETY: a plain syscall on the calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 0 };
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
    }
    tracing::info!(
        "Background save ran {:.1} s mostly without CPU: it stops yielding (nice {BACKGROUND_NICE})",
        wall.as_secs_f64()
    );
}

/// CPU time the calling thread has used.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes the calling thread's CPU clock into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The `save-yield-seconds` in force.
pub fn save_yield_secs(srv: &Server) -> u64 {
    srv.config.read().save_yield_seconds.max(0) as u64
}

fn run_bgsave(srv: Arc<Server>, path: PathBuf, frozen: Frozen) {
    background_priority(save_yield_secs(&srv));
    let p = &srv.persist;
    let r = write_snapshot(&srv, &path, Some(&p.cancel), Some(&frozen));
    if r.is_err() {
        // The shards not saved yet stop keeping old entries (and free them).
        srv.keyspace.thaw();
    }
    let started = p.bgsave_started.lock().take();
    if let Some(t) = started {
        p.last_bgsave_secs
            .store(t.elapsed().as_secs() as i64, Ordering::Relaxed);
    }
    match &r {
        Ok(_) => {
            tracing::info!("DB saved on disk");
            tracing::info!("Background saving terminated with success");
        }
        Err(_) if p.cancel.load(Ordering::Relaxed) => {
            tracing::warn!("Background saving terminated by signal 10");
        }
        Err(e) => {
            tracing::warn!("{e}");
            tracing::warn!("Background saving error");
        }
    }
    p.bgsave_running.store(false, Ordering::Relaxed);
    end(&srv, &r);
}

/// Stops a running background save (its temp file is removed) and waits for it.
pub fn kill_bgsave(srv: &Server) {
    let p = &srv.persist;
    let handle = p.thread.lock().take();
    if let Some(h) = handle {
        if p.bgsave_running.load(Ordering::Relaxed) {
            tracing::warn!("There is a child saving an .rdb. Killing it!");
        }
        p.cancel.store(true, Ordering::Relaxed);
        let _ = h.join();
        p.cancel.store(false, Ordering::Relaxed);
    }
}

/// Run by the cron every tick: starts a background save when a save point is reached.
pub fn cron(srv: &Server) {
    let p = &srv.persist;
    // Reap a finished background thread.
    if !p.bgsave_running.load(Ordering::Relaxed)
        && let Some(h) = p.thread.lock().take()
    {
        let _ = h.join();
    }
    // Like Redis, nothing starts while the other background job (an AOF rewrite) runs.
    if p.in_progress.load(Ordering::Relaxed) || srv.aof.rewrite_running.load(Ordering::Relaxed) {
        return;
    }
    // The freeze must fall between commands, never inside an EXEC or a script (they
    // hold the gate exclusively): try again next tick rather than wait.
    let Some(_gate) = srv.exec_gate.try_read() else {
        return;
    };
    let now = unix_secs();
    let retry_ok = p.last_ok.load(Ordering::Relaxed)
        || now.saturating_sub(p.last_try.load(Ordering::Relaxed)) > BGSAVE_RETRY_DELAY_SECS;
    // A BGSAVE SCHEDULE that waited for a rewrite (Redis's `rdb_bgsave_scheduled`).
    if p.bgsave_scheduled.load(Ordering::Relaxed) && retry_ok {
        if bgsave(srv) == BgsaveStart::Started {
            p.bgsave_scheduled.store(false, Ordering::Relaxed);
        }
        return;
    }
    let rules = srv.config.read().save.clone();
    let dirty = p.dirty.load(Ordering::Relaxed);
    let lastsave = p.lastsave.load(Ordering::Relaxed);
    for r in rules {
        if dirty >= r.changes.max(0) as u64
            && now.saturating_sub(lastsave) as i64 > r.seconds
            && retry_ok
        {
            tracing::info!("{} changes in {} seconds. Saving...", r.changes, r.seconds);
            bgsave(srv);
            break;
        }
    }
}

/// FLUSHALL's persistence side (Redis's `flushAllDataAndResetRDB`): stops a running
/// background save and, with save points configured, saves the empty dataset.
pub fn after_flushall(srv: &Server) {
    kill_bgsave(srv);
    if !srv.config.read().save.is_empty() {
        let _ = save(srv);
    }
}

/// How SHUTDOWN (or a signal) treats the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSave {
    /// Save if save points are configured.
    Default,
    /// `SHUTDOWN SAVE`.
    Save,
    /// `SHUTDOWN NOSAVE`.
    NoSave,
}

/// Redis's `prepareForShutdown`: stops a background save and writes the final snapshot
/// if asked to. False when that save failed and `force` is off: the server must keep
/// running.
pub fn prepare_shutdown(srv: &Server, mode: ShutdownSave, force: bool) -> bool {
    tracing::warn!("User requested shutdown...");
    kill_bgsave(srv);
    // While the dataset is still loading, saving would overwrite the file with part of
    // it: Redis turns every shutdown into NOSAVE then, and so does Basalt.
    let loading = srv.persist.loading.load(Ordering::Acquire);
    let want = match mode {
        _ if loading => false,
        ShutdownSave::Save => true,
        ShutdownSave::NoSave => false,
        ShutdownSave::Default => !srv.config.read().save.is_empty(),
    };
    if want {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        match save(srv) {
            Ok(_) => {}
            Err(_) if force => tracing::warn!("Error trying to save the DB. Exit anyway."),
            Err(_) => {
                tracing::warn!("Error trying to save the DB, can't exit.");
                return false;
            }
        }
    }
    crate::aof::shutdown(srv);
    true
}

/// Restores the fence counter and the sessions saved in `basalt-*` aux fields. Sessions
/// come back with a full TTL (their clients get one lease to reconnect, as etcd's leases
/// do after a leader change); grants of a session that was not saved are released.
fn restore_coordination(
    srv: &Server,
    summary: &basalt_persist::rdb::file::LoadSummary,
    session_locks: Vec<(u64, usize, Bytes)>,
    now: u64,
) {
    if let Some(v) = summary.aux_field("basalt-fence")
        && let Some(f) = std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    {
        srv.coord.raise_fence(f);
    }
    if let Some(v) = summary.aux_field("basalt-sessions") {
        match crate::coord::Coord::parse_sessions_aux(v) {
            Some(list) => {
                for (id, s) in list {
                    srv.coord.restore(id, s, now);
                }
            }
            None => tracing::warn!("ignoring a malformed basalt-sessions aux field"),
        }
    }
    for (sid, db, key) in session_locks {
        if !srv.coord.add_held(sid, db, &key, now) {
            // Its session is unknown: release the grant now.
            let s = crate::coord::Session {
                ttl: 1,
                lockdelay: 0,
                on_expire: crate::coord::OnExpire::Release,
                expire_at: now,
                held: [(db, key)].into_iter().collect(),
            };
            crate::families::coord::end_session(srv, sid, s, now, false, None);
        }
    }
}

/// A reader that adds what it reads to `loading_loaded_bytes`.
pub struct Progress<'a, R> {
    inner: R,
    counter: &'a AtomicU64,
}

impl<'a, R> Progress<'a, R> {
    /// Counts the bytes read from `inner` into the server's load progress.
    pub fn new(inner: R, srv: &'a Server) -> Progress<'a, R> {
        Progress {
            inner,
            counter: &srv.persist.loading_loaded,
        }
    }
}

impl<R: std::io::Read> std::io::Read for Progress<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Loads `dir`/`dbfilename` into the (empty) keyspace, if the file exists. An error
/// leaves the file untouched and the keyspace empty; the caller refuses to start.
pub fn load_at_startup(srv: &Server) -> Result<(), String> {
    let path = rdb_path(srv);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "Fatal error loading the DB: {e}. Exiting. (file {})",
                path.display()
            ));
        }
    };
    let len = file
        .metadata()
        .map_err(|e| format!("Fatal error loading the DB: {e}. Exiting."))?
        .len();
    let start = Instant::now();
    srv.persist.start_loading(len);
    load_rdb_stream(
        srv,
        BufReader::with_capacity(WRITE_BUFFER, Progress::new(file, srv)),
        len,
        false,
    )
    .map_err(|e| {
        format!(
            "Fatal error loading the DB from {}: {e}. Exiting.",
            path.display()
        )
    })?;
    tracing::info!(
        "DB loaded from disk: {:.3} seconds",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Loads an RDB stream of at most `len` bytes into the keyspace (an RDB file, or the
/// RDB base of an AOF: `aof_base`), logging what Redis logs. Returns the bytes the RDB
/// took (an old-style AOF continues with commands after them). On error every database
/// is emptied again.
pub fn load_rdb_stream<R: std::io::Read>(
    srv: &Server,
    input: R,
    len: u64,
    aof_base: bool,
) -> Result<u64, String> {
    load_rdb_into(srv, input, len, aof_base, false)
}

/// `DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]`: saves the RDB (unless `save` is false),
/// empties every database (unless `flush` is false) and loads the file back. With
/// `merge`, a key of the file replaces the key of the same name in memory; without it
/// such a conflict is an error (Redis kills the server there; Basalt replies with an
/// error and leaves the databases empty, as after any failed load).
pub fn debug_reload(srv: &Server, save: bool, flush: bool, merge: bool) -> Result<(), String> {
    if save && let Err(e) = self::save(srv) {
        return Err(e.unwrap_or_else(|| "a background save is in progress".into()));
    }
    let path = rdb_path(srv);
    let file = File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if flush {
        let mut g = srv.keyspace.lock_all(unix_ms());
        for db in 0..srv.keyspace.databases() {
            srv.watches.touch_db(db, |k| crate::transaction::Replaced {
                existed: g.stored(db, k).is_some(),
                replacement: None,
            });
            g.flush_db(db);
        }
    }
    let start = Instant::now();
    load_rdb_into(
        srv,
        BufReader::with_capacity(WRITE_BUFFER, file),
        len,
        false,
        merge,
    )?;
    tracing::info!(
        "DB reloaded by DEBUG RELOAD: {:.3} seconds",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn load_rdb_into<R: std::io::Read>(
    srv: &Server,
    input: R,
    len: u64,
    aof_base: bool,
    merge: bool,
) -> Result<u64, String> {
    let (limits, verify) = {
        let c = srv.config.read();
        (c.enc, c.rdbchecksum)
    };
    let opts = LoadOptions {
        limits,
        verify_checksum: verify,
    };
    let now = unix_ms();
    let dbs = srv.keyspace.databases();
    let mut expired = 0u64;
    let mut session_locks: Vec<(u64, usize, Bytes)> = Vec::new();
    let loading = srv.persist.loading.load(Ordering::Relaxed);
    let delay = if loading {
        srv.config.read().key_load_delay
    } else {
        0
    };
    let mut g = Some(srv.keyspace.lock_all(now));
    let mut seen = 0u64;
    let result = load(input, len, &opts, |k: LoadedKey| {
        seen += 1;
        if loading && (delay != 0 || seen.is_multiple_of(1024)) {
            // Between keys of the load at startup the shards are let go for a moment, so
            // the commands allowed while loading (INFO's keyspace and memory sections
            // count per shard) are not held up until the end.
            drop(g.take());
            // A shutdown requested while the server loads stops the load.
            if *srv.shutdown.borrow() {
                return Err(RdbError::Unsupported(
                    "loading interrupted by a shutdown".into(),
                ));
            }
            if delay > 0 {
                std::thread::sleep(std::time::Duration::from_micros(delay as u64));
            } else if delay < 0 && seen.is_multiple_of(delay.unsigned_abs()) {
                std::thread::sleep(std::time::Duration::from_micros(1));
            }
        }
        let g = g.get_or_insert_with(|| srv.keyspace.lock_all(now));
        if k.db >= dbs {
            return Err(RdbError::Unsupported(format!(
                "FATAL: Data file was created with a Redis server configured to handle more than {dbs} databases. Exiting"
            )));
        }
        if k.expire_ms != 0 && k.expire_ms < now {
            expired += 1;
            return Ok(());
        }
        if merge {
            g.remove(k.db, &k.key);
        } else if g.exists(k.db, &k.key) {
            return Err(RdbError::Unsupported(format!(
                "RDB has duplicated key '{}' in DB {}",
                String::from_utf8_lossy(&k.key),
                k.db
            )));
        }
        if let Value::Lock(l) = &k.value {
            srv.coord.raise_fence(l.fence());
            crate::families::coord::watch_loaded_leader(srv, k.db, &k.key, l);
            for h in l.holders().iter().filter(|h| h.session != 0) {
                session_locks.push((h.session, k.db, Bytes::copy_from_slice(&k.key)));
            }
        }
        crate::families::jobs::adopt(srv, &k.value, k.db, &k.key);
        g.insert(k.db, &k.key, k.value, k.expire_ms);
        g.restore_usage(k.db, &k.key, k.idle, k.freq);
        Ok(())
    });
    let mut g = g.unwrap_or_else(|| srv.keyspace.lock_all(now));
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            for db in 0..dbs {
                g.flush_db(db);
            }
            return Err(e.to_string());
        }
    };
    drop(g);
    restore_coordination(srv, &summary, session_locks, now);
    if let Some(v) = summary.aux_field("redis-ver") {
        tracing::info!(
            "Loading RDB produced by version {}",
            String::from_utf8_lossy(v)
        );
    }
    if let Some(ctime) = summary
        .aux_field("ctime")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<i64>().ok())
    {
        tracing::info!("RDB age {} seconds", unix_secs() as i64 - ctime);
    }
    if let Some(mem) = summary
        .aux_field("used-mem")
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
    {
        tracing::info!(
            "RDB memory usage when created {:.2} Mb",
            mem as f64 / (1024.0 * 1024.0)
        );
    }
    if aof_base && summary.aux_field("aof-base") == Some(&b"1"[..]) {
        tracing::info!("RDB is base AOF");
    }
    for (k, v) in &summary.aux {
        if k.as_slice() == crate::families::rl_policy::AUX_FIELD.as_bytes() {
            crate::families::rl_policy::load_aux(srv, v)?;
        }
        if k.as_slice() == crate::families::job_schedule::AUX_FIELD.as_bytes() {
            crate::families::job_schedule::load_aux(srv, v)?;
        }
    }
    if summary.empty_skipped > 0 {
        tracing::info!("Skipped {} empty keys", summary.empty_skipped);
    }
    if !summary.functions.is_empty() {
        let mut engine = srv.scripting.functions.lock();
        for code in &summary.functions {
            // REPLACE: a reload (DEBUG RELOAD, an AOF base) brings back the same libraries.
            if let Err(e) = engine.load(&bytes::Bytes::copy_from_slice(code), true) {
                return Err(format!("Failed loading library: {e}"));
            }
        }
        drop(engine);
        srv.scripting.refresh_function_counts();
    }
    let loaded = summary.keys - expired;
    srv.persist.loaded_keys.store(loaded, Ordering::Relaxed);
    srv.persist.loaded_expired.store(expired, Ordering::Relaxed);
    tracing::info!("Done loading RDB, keys loaded: {loaded}, keys expired: {expired}.");
    Ok(summary.bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn syncs_every_so_many_bytes_or_never() {
        let dir = std::env::temp_dir().join(format!("basalt-autosync-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let chunk = vec![7u8; 1000];
        for (every, want) in [(Some(4000), 2), (None, 0)] {
            let path = dir.join("f");
            let mut w = super::AutoSync::new(std::fs::File::create(&path).expect("create"), every);
            for _ in 0..9 {
                std::io::Write::write_all(&mut w, &chunk).expect("write");
            }
            assert_eq!(w.syncs(), want, "every {every:?}");
            drop(w.into_file());
            assert_eq!(std::fs::metadata(&path).expect("meta").len(), 9000);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The calling thread's nice value.
    fn nice() -> libc::c_int {
        // SAFETY: reads the calling thread's own priority.
        unsafe {
            libc::getpriority(
                libc::PRIO_PROCESS,
                libc::syscall(libc::SYS_gettid) as libc::id_t,
            )
        }
    }

    #[test]
    fn background_threads_run_at_the_background_nice_value() {
        let before = nice();
        let (was, now, policy) = std::thread::spawn(|| {
            let was = nice();
            super::background_priority(0);
            // SAFETY: reads the calling thread's policy.
            (was, nice(), unsafe { libc::sched_getscheduler(0) })
        })
        .join()
        .expect("thread");
        // Unless the tests already run nicer than that (then it cannot be lowered).
        if was <= super::BACKGROUND_NICE {
            assert_eq!(now, super::BACKGROUND_NICE);
        }
        // save-yield-seconds 0: no SCHED_IDLE.
        assert_eq!(policy, libc::SCHED_OTHER);
        // Only the calling thread changes.
        assert_eq!(nice(), before);
    }

    /// Pins the calling thread to `cpu`.
    fn pin(cpu: usize) {
        // SAFETY: a zeroed cpu_set_t is valid; the calls only touch the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }

    #[test]
    fn a_saver_yields_until_it_has_starved_for_its_limit() {
        use std::sync::atomic::{AtomicBool, Ordering};
        // SAFETY (all uses): read the calling thread's scheduling policy.
        let policy = || unsafe { libc::sched_getscheduler(0) };
        // SAFETY: returns the calling thread's CPU.
        let cpu = unsafe { libc::sched_getcpu() }.max(0) as usize;
        let (idle, still_idle, after_sleep) = std::thread::spawn(move || {
            super::background_priority(1);
            let idle = policy();
            // Within its limit: keeps yielding.
            super::saver_tick();
            let still_idle = policy();
            // A second off the CPU by its own choice (writing, syncing): not starved.
            let started = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_millis(1100));
            super::saver_tick();
            // (Unless the machine is so busy that this idle-policy thread waited for a
            // CPU most of that time after all: that is starvation.)
            let waited = super::run_delay().unwrap_or_default() * 10 >= started.elapsed() * 9;
            (idle, still_idle, (policy(), waited))
        })
        .join()
        .expect("thread");
        assert_eq!(idle, libc::SCHED_IDLE);
        assert_eq!(still_idle, libc::SCHED_IDLE);
        let (after_sleep, waited) = after_sleep;
        assert!(
            after_sleep == libc::SCHED_IDLE || waited,
            "sleeping is not starving"
        );
        // A saver sharing its core with a thread that never sleeps waits for the CPU
        // all the time: after its limit it stops yielding.
        let busy = std::sync::Arc::new(AtomicBool::new(true));
        let spinner = {
            let busy = busy.clone();
            std::thread::spawn(move || {
                pin(cpu);
                while busy.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        };
        let after_starving = std::thread::spawn(move || {
            pin(cpu);
            super::background_priority(1);
            let start = std::time::Instant::now();
            let mut p = policy();
            while p == libc::SCHED_IDLE && start.elapsed() < std::time::Duration::from_secs(20) {
                super::saver_tick();
                p = policy();
            }
            p
        })
        .join()
        .expect("thread");
        busy.store(false, Ordering::Relaxed);
        spinner.join().expect("spinner");
        assert_eq!(after_starving, libc::SCHED_OTHER);
        // Other threads are untouched, and ticking on them does nothing.
        super::saver_tick();
        assert_eq!(policy(), libc::SCHED_OTHER);
    }
}
