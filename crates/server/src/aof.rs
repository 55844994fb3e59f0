//! The append-only file: Redis 7's multi-part layout (a base file, incremental files,
//! a manifest) in `dir`/`appenddirname`, one writer thread with group commit, the
//! rewrite (`BGREWRITEAOF`) without fork, and loading at startup.
//!
//! ## What is logged
//!
//! Every command that changed the dataset is logged as its effect, after it ran, in the
//! database it ran in (a `SELECT` is written whenever the database changes):
//!
//! - a write command (`write` flag) that succeeded is logged as it was sent, unless its
//!   handler said otherwise: [`Ctx::propagate`] replaces it by deterministic commands
//!   (relative expiries become `PEXPIREAT`/`SET ... PXAT`, `SPOP` becomes `SREM`,
//!   blocking pops their non-blocking forms, `XADD *` the ID it generated, `XREADGROUP`
//!   the `XCLAIM`s of what it delivered...), [`Ctx::propagate_nothing`] logs nothing (a
//!   write that changed nothing, e.g. `SORT` without `STORE`);
//! - the commands of an `EXEC` are logged as `MULTI` ... `EXEC` (one effect alone is
//!   logged bare);
//! - a key deleted because it expired or was evicted is logged as `DEL` (`UNLINK` under
//!   `lazyfree-lazy-expire` / `lazyfree-lazy-eviction`).
//!
//! "Changed the dataset" is judged by the handler (the `write` flag plus the handler's
//! own knowledge). Each command's change count ([`crate::server::Changes`], Redis's
//! `server.dirty` delta) could decide it as Redis does ("logged iff the count moved");
//! it is not used for that yet. A write that changed nothing and is logged anyway is
//! harmless: it changes nothing on replay either.
//!
//! ## Ordering
//!
//! Effects must reach the file in the order the commands changed the keys. A command
//! releases its shard locks before its effect is appended, so while the AOF is on,
//! write commands run one at a time under [`Aof::order`] (taken before the handler,
//! released after the append); reads do not take it. An `EXEC` already runs alone (it
//! holds the exec gate for writing). Expired keys are appended by the keyspace's hook
//! while the shard is still locked.
//!
//! ## Group commit
//!
//! Appends go to an in-memory buffer; one thread writes the buffer to the current
//! incremental file and publishes the highest sequence number written, then (with
//! `appendfsync always`) fsyncs and publishes it as synced. A connection that ran writes
//! waits, before sending its replies, until its last effect is written (`everysec`,
//! `no`) or synced (`always`): every client waiting while one fsync runs is released by
//! the next one, so many clients share one fsync. With `everysec` a second thread
//! fsyncs once per second.
//!
//! ## Rewrite without fork
//!
//! `BGREWRITEAOF` (and the automatic rewrite): a new incremental file is created and
//! added to the manifest; then, with every command stopped for a moment (the exec gate
//! taken for writing, every shard locked), the keyspace is frozen
//! ([`basalt_engine::Keyspace::freeze`]) and the writer switches to the new file at that
//! exact point. A background thread then writes the frozen view, walked a chunk at a
//! time as BGSAVE does, into a temp base file (a key changed before the walk reaches it
//! keeps its old version aside until its shard is saved), fsyncs it, renames it to the new base name and switches the manifest (written to a
//! temp file, fsynced, renamed, directory fsynced). The old files are deleted. A crash
//! at any point leaves a manifest that names complete files.

use crate::config::AppendFsync;
use crate::server::{Client, Server, unix_ms};
use basalt_persist::aof::manifest::{self, AofFile, FileKind, Manifest};
use basalt_persist::aof::resp::{CommandReader, ReadError, encode_command};
use basalt_persist::rdb::encode::{EncodeOptions, Encoder};
use basalt_persist::rdb::file::{FileWriter, standard_aux};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Reply to BGREWRITEAOF while one runs.
pub const REWRITE_IN_PROGRESS: &str =
    "ERR Background append only file rewriting already in progress";

/// Buffer between the rewrite and the base file.
const WRITE_BUFFER: usize = 1 << 20;

/// The writer's pending bytes.
#[derive(Default)]
struct Buf {
    bytes: Vec<u8>,
    /// Sequence number of the last effect appended.
    seq: u64,
    /// The database the file's last `SELECT` chose (`None`: write one first).
    db: Option<usize>,
    /// Incremental-file switches: the bytes that still belong to the old file, and the
    /// new file.
    switches: Vec<(Vec<u8>, Arc<File>, String)>,
    /// Ask the writer to flush everything, fsync and exit.
    stop: bool,
}

/// The files of the AOF.
#[derive(Default)]
struct Files {
    manifest: Manifest,
    /// The incremental file appended to.
    current: Option<Arc<File>>,
}

/// AOF state shared by the server, the writer thread and the rewrite.
pub struct Aof {
    on: AtomicBool,
    /// Serializes write commands while the AOF is on (see the module docs).
    pub order: Mutex<()>,
    buf: Mutex<Buf>,
    wake: Condvar,
    written: tokio::sync::watch::Sender<u64>,
    synced: tokio::sync::watch::Sender<u64>,
    files: Mutex<Files>,
    writer: Mutex<Vec<std::thread::JoinHandle<()>>>,
    fsync_policy: AtomicU8,
    no_fsync_on_rewrite: AtomicBool,
    /// The last write to the file succeeded (`aof_last_write_status`).
    pub last_write_ok: AtomicBool,
    last_write_error: Mutex<String>,
    /// A rewrite runs.
    pub rewrite_running: AtomicBool,
    /// A BGREWRITEAOF waits for the running BGSAVE (Redis's `aof_rewrite_scheduled`);
    /// the cron starts it once the save is over.
    pub rewrite_scheduled: AtomicBool,
    rewrite_started: Mutex<Option<Instant>>,
    /// Rewrites started (`aof_rewrites`).
    pub rewrites: AtomicU64,
    /// Failed rewrites in a row.
    pub rewrite_failures: AtomicU64,
    /// The last rewrite succeeded.
    pub last_rewrite_ok: AtomicBool,
    /// Seconds the last rewrite took (-1: none yet).
    pub last_rewrite_secs: AtomicI64,
    /// Bytes of the base and incremental files (`aof_current_size`).
    pub current_size: AtomicU64,
    /// Size after the last rewrite or load (`aof_base_size`).
    pub base_size: AtomicU64,
    /// fsyncs that took longer than the interval between them (`aof_delayed_fsync`).
    pub delayed_fsync: AtomicU64,
    /// Bytes waiting for the writer (`aof_buffer_length`).
    pub buffer_len: AtomicU64,
    /// `CONFIG SET appendonly yes` arrived while a rewrite ran: enable when it ends.
    pub enable_pending: AtomicBool,
    unlink_expired: AtomicBool,
    unlink_evicted: AtomicBool,
}

impl Default for Aof {
    fn default() -> Self {
        Aof {
            on: AtomicBool::new(false),
            order: Mutex::new(()),
            buf: Mutex::new(Buf::default()),
            wake: Condvar::new(),
            written: tokio::sync::watch::Sender::new(0),
            synced: tokio::sync::watch::Sender::new(0),
            files: Mutex::new(Files::default()),
            writer: Mutex::new(Vec::new()),
            fsync_policy: AtomicU8::new(AppendFsync::EverySec as u8),
            no_fsync_on_rewrite: AtomicBool::new(false),
            last_write_ok: AtomicBool::new(true),
            last_write_error: Mutex::new(String::new()),
            rewrite_running: AtomicBool::new(false),
            rewrite_scheduled: AtomicBool::new(false),
            rewrite_started: Mutex::new(None),
            rewrites: AtomicU64::new(0),
            rewrite_failures: AtomicU64::new(0),
            last_rewrite_ok: AtomicBool::new(true),
            last_rewrite_secs: AtomicI64::new(-1),
            current_size: AtomicU64::new(0),
            base_size: AtomicU64::new(0),
            delayed_fsync: AtomicU64::new(0),
            buffer_len: AtomicU64::new(0),
            enable_pending: AtomicBool::new(false),
            unlink_expired: AtomicBool::new(false),
            unlink_evicted: AtomicBool::new(false),
        }
    }
}

fn policy_of(v: u8) -> AppendFsync {
    match v {
        x if x == AppendFsync::Always as u8 => AppendFsync::Always,
        x if x == AppendFsync::No as u8 => AppendFsync::No,
        _ => AppendFsync::EverySec,
    }
}

impl Aof {
    /// True while effects are logged: the hot path's one atomic load.
    #[inline]
    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// The fsync policy in force.
    pub fn policy(&self) -> AppendFsync {
        policy_of(self.fsync_policy.load(Ordering::Relaxed))
    }

    /// Copies `appendfsync`, `no-appendfsync-on-rewrite` and the lazy-free choices
    /// that decide between DEL and UNLINK for expired and evicted keys.
    pub fn apply_config(&self, c: &crate::config::Config) {
        self.fsync_policy
            .store(c.appendfsync as u8, Ordering::Relaxed);
        self.no_fsync_on_rewrite
            .store(c.no_appendfsync_on_rewrite, Ordering::Relaxed);
        self.unlink_expired
            .store(c.lazyfree_lazy_expire, Ordering::Relaxed);
        self.unlink_evicted
            .store(c.lazyfree_lazy_eviction, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The message of the last failed write (for MISCONF).
    pub fn last_write_error(&self) -> String {
        self.last_write_error.lock().clone()
    }

    fn encode_into(b: &mut Buf, db: usize, args: &[Bytes]) {
        if b.db != Some(db) {
            let n = db.to_string();
            encode_command(&mut b.bytes, &[&b"SELECT"[..], n.as_bytes()]);
            b.db = Some(db);
        }
        encode_command(&mut b.bytes, args);
    }

    /// Appends the effects of one command (or one transaction when there are several:
    /// they are wrapped in `MULTI`/`EXEC`). Returns the sequence number to wait for.
    pub fn append(&self, effects: &[(usize, Vec<Bytes>)]) -> u64 {
        let mut b = self.buf.lock();
        let wrap = effects.len() > 1;
        if wrap {
            let db = effects[0].0;
            Self::encode_into(&mut b, db, &[Bytes::from_static(b"MULTI")]);
        }
        for (db, args) in effects {
            Self::encode_into(&mut b, *db, args);
        }
        if wrap {
            let db = b.db.unwrap_or(0);
            Self::encode_into(&mut b, db, &[Bytes::from_static(b"EXEC")]);
        }
        b.seq += 1;
        let seq = b.seq;
        self.buffer_len
            .store(b.bytes.len() as u64, Ordering::Relaxed);
        drop(b);
        self.wake.notify_one();
        seq
    }

    /// Logs the deletion of an expired or evicted key (called with the key's shard
    /// locked): `DEL`, or `UNLINK` under `lazyfree-lazy-expire` /
    /// `lazyfree-lazy-eviction`, as Redis's `propagateDeletion`.
    pub fn append_deleted(&self, db: usize, key: &[u8], why: basalt_engine::Removal) {
        let unlink = match why {
            basalt_engine::Removal::Expired => &self.unlink_expired,
            basalt_engine::Removal::Evicted => &self.unlink_evicted,
        }
        .load(Ordering::Relaxed);
        let name = Bytes::from_static(if unlink { b"UNLINK" } else { b"DEL" });
        let mut b = self.buf.lock();
        Self::encode_into(&mut b, db, &[name, Bytes::copy_from_slice(key)]);
        b.seq += 1;
        drop(b);
        self.wake.notify_one();
    }

    /// Waits until the effect numbered `seq` is as durable as the policy promises:
    /// fsynced with `always`, written to the file otherwise.
    pub async fn wait(&self, seq: u64) {
        let tx = if self.policy() == AppendFsync::Always {
            &self.synced
        } else {
            &self.written
        };
        let mut rx = tx.subscribe();
        let _ = rx.wait_for(|v| *v >= seq).await;
    }
}

// ---------------------------------------------------------------------------------------
// Paths and the manifest
// ---------------------------------------------------------------------------------------

struct Names {
    /// `dir`: where a Redis 6 style single-file AOF lives.
    data_dir: PathBuf,
    /// `dir`/`appenddirname`.
    dir: PathBuf,
    /// `appenddirname` (for the log).
    dir_name: String,
    file: String,
    rdb_preamble: bool,
}

fn names(srv: &Server) -> Names {
    let c = srv.config.read();
    Names {
        data_dir: c.dir.clone(),
        dir: c.dir.join(&c.appenddirname),
        dir_name: c.appenddirname.clone(),
        file: c.appendfilename.clone(),
        rdb_preamble: c.aof_use_rdb_preamble,
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes the manifest crash-safely: temp file, fsync, rename, fsync of the directory.
fn persist_manifest(n: &Names, m: &Manifest) -> Result<(), String> {
    let name = manifest::manifest_name(&n.file);
    let tmp = n.dir.join(format!("temp-{name}"));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(m.render().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, n.dir.join(&name))?;
        sync_dir(&n.dir);
        Ok(())
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("Can't persist the AOF manifest file {name}: {e}")
    })
}

fn read_manifest(n: &Names) -> Result<Option<Manifest>, String> {
    let path = n.dir.join(manifest::manifest_name(&n.file));
    match std::fs::read(&path) {
        Ok(text) => Manifest::parse(&text)
            .map(Some)
            .map_err(|e| format!("{e} (manifest {})", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "Can't open the AOF manifest {} for reading: {e}",
            path.display()
        )),
    }
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn open_append(p: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
}

// ---------------------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------------------

fn start_writer(srv: &Arc<Server>, file: Arc<File>) {
    let aof = srv.aof.clone();
    {
        let mut b = aof.buf.lock();
        b.stop = false;
        b.db = None;
    }
    aof.files.lock().current = Some(file.clone());
    let mut handles = aof.writer.lock();
    let a = aof.clone();
    let s = srv.clone();
    if let Ok(h) = std::thread::Builder::new()
        .name("basalt-aof".into())
        .spawn(move || writer_loop(s, a, file))
    {
        handles.push(h);
    }
    let a = aof.clone();
    if let Ok(h) = std::thread::Builder::new()
        .name("basalt-aof-fsync".into())
        .spawn(move || fsync_loop(a))
    {
        handles.push(h);
    }
}

/// Writes `bytes` at the end of `file`; on failure cuts the file back to where it was
/// (a half-written command must not stay in the middle of the log).
fn write_file(file: &File, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = file;
    let before = f.seek(std::io::SeekFrom::End(0))?;
    if let Err(e) = f.write_all(bytes) {
        let _ = file.set_len(before);
        return Err(e);
    }
    Ok(())
}

fn writer_loop(srv: Arc<Server>, aof: Arc<Aof>, mut file: Arc<File>) {
    loop {
        let (switches, bytes, seq, stop) = {
            let mut b = aof.buf.lock();
            while b.bytes.is_empty() && b.switches.is_empty() && !b.stop {
                aof.wake.wait_for(&mut b, Duration::from_millis(1000));
            }
            let bytes = std::mem::take(&mut b.bytes);
            (std::mem::take(&mut b.switches), bytes, b.seq, b.stop)
        };
        for (before, next, name) in switches {
            write_retrying(&srv, &aof, &file, &before);
            let _ = file.sync_data();
            tracing::debug!("AOF writer switched to {name}");
            file = next;
            aof.files.lock().current = Some(file.clone());
        }
        if !bytes.is_empty() {
            write_retrying(&srv, &aof, &file, &bytes);
            aof.current_size
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        aof.buffer_len.store(0, Ordering::Relaxed);
        aof.written.send_if_modified(|v| {
            let changed = *v < seq;
            *v = (*v).max(seq);
            changed
        });
        let skip = aof.no_fsync_on_rewrite.load(Ordering::Relaxed)
            && aof.rewrite_running.load(Ordering::Relaxed);
        if aof.policy() == AppendFsync::Always || stop {
            if (!skip || stop)
                && let Err(e) = file.sync_data()
            {
                tracing::warn!(
                    "Can't persist the AOF: fsync failed: {e}. Exiting (appendfsync always)..."
                );
                if aof.policy() == AppendFsync::Always {
                    std::process::exit(1);
                }
            }
            aof.synced.send_if_modified(|v| {
                let changed = *v < seq;
                *v = (*v).max(seq);
                changed
            });
        }
        if stop {
            return;
        }
    }
}

/// Writes until it succeeds. With `appendfsync always` a failed write stops the server
/// (as Redis: it cannot promise anything any more); otherwise writes are refused with
/// MISCONF until the disk accepts the data again.
fn write_retrying(srv: &Server, aof: &Aof, file: &File, bytes: &[u8]) {
    loop {
        match write_file(file, bytes) {
            Ok(()) => {
                if !aof.last_write_ok.swap(true, Ordering::Relaxed) {
                    tracing::warn!("AOF write error looks solved, Redis can write again.");
                    crate::persist::update_deny_writes(srv);
                }
                return;
            }
            Err(e) => {
                tracing::warn!("Error writing to the AOF file: {e}");
                if aof.policy() == AppendFsync::Always {
                    tracing::warn!(
                        "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
                    );
                    std::process::exit(1);
                }
                *aof.last_write_error.lock() = e.to_string();
                aof.last_write_ok.store(false, Ordering::Relaxed);
                crate::persist::update_deny_writes(srv);
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// `everysec`: fsyncs what was written, once per second, off the writer thread.
fn fsync_loop(aof: Arc<Aof>) {
    let mut last = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if aof.buf.lock().stop && !aof.is_on() {
            return;
        }
        if aof.policy() != AppendFsync::EverySec || last.elapsed() < Duration::from_secs(1) {
            continue;
        }
        if aof.no_fsync_on_rewrite.load(Ordering::Relaxed)
            && aof.rewrite_running.load(Ordering::Relaxed)
        {
            continue;
        }
        let written = *aof.written.borrow();
        if written <= *aof.synced.borrow() {
            last = Instant::now();
            continue;
        }
        let file = aof.files.lock().current.clone();
        if let Some(f) = file {
            let t0 = Instant::now();
            if f.sync_data().is_ok() {
                aof.synced.send_if_modified(|v| {
                    let changed = *v < written;
                    *v = (*v).max(written);
                    changed
                });
            }
            if t0.elapsed() > Duration::from_secs(2) {
                aof.delayed_fsync.fetch_add(1, Ordering::Relaxed);
            }
        }
        last = Instant::now();
    }
}

/// Stops logging: flushes and fsyncs what was appended, stops the writer threads.
/// Called with no command running (startup, shutdown, or under the exec gate).
fn stop_writer(aof: &Aof) {
    aof.on.store(false, Ordering::Release);
    aof.buf.lock().stop = true;
    aof.wake.notify_all();
    let handles = std::mem::take(&mut *aof.writer.lock());
    for h in handles {
        let _ = h.join();
    }
    aof.files.lock().current = None;
}

/// Shutdown: the last appended effects are written and fsynced (Redis: "Calling fsync()
/// on the AOF file.").
pub fn shutdown(srv: &Server) {
    if srv.aof.is_on() {
        tracing::info!("Calling fsync() on the AOF file.");
        stop_writer(&srv.aof);
    }
}

// ---------------------------------------------------------------------------------------
// Startup: loading and opening
// ---------------------------------------------------------------------------------------

/// How a file of the log ended.
enum Replay {
    /// Read to the end.
    Complete,
    /// Ended in the middle of a command (or of a transaction); the offset just after
    /// the last complete one.
    Truncated(u64),
}

/// Runs the commands of an AOF stream through the command table, as a client whose
/// replies go nowhere. A transaction left open at the end counts as truncated at its
/// `MULTI`.
fn replay<R: std::io::BufRead>(
    srv: &Server,
    client: &mut Client,
    reader: &mut CommandReader<R>,
    name: &str,
) -> Result<Replay, String> {
    let mut multi_at: Option<u64> = None;
    loop {
        let before = reader.valid_up_to();
        let args = match reader.next_command() {
            Ok(Some(a)) => a,
            Ok(None) => break,
            Err(ReadError::Truncated { .. }) => {
                let at = multi_at.unwrap_or(before);
                srv.end_transaction(client);
                return Ok(Replay::Truncated(at));
            }
            Err(ReadError::Format { offset, what }) => {
                return Err(format!(
                    "Bad file format reading the append only file {name}: make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest> (offset {offset}: {what})"
                ));
            }
            Err(ReadError::Io(e)) => {
                return Err(format!(
                    "Unrecoverable error reading the append only file {name}: {e}"
                ));
            }
        };
        let args: Vec<Bytes> = args.into_iter().map(Bytes::from).collect();
        let resolved = match srv.prepare(client, &args) {
            Ok(r) => r,
            Err(e) => {
                if e.0.starts_with("ERR unknown command") {
                    return Err(format!(
                        "Unknown command '{}' reading the append only file {name}",
                        String::from_utf8_lossy(&args[0])
                    ));
                }
                return Err(format!(
                    "Error reading the append only file {name} at offset {before}: {}",
                    e.0
                ));
            }
        };
        let is_multi = args[0].eq_ignore_ascii_case(b"multi");
        if srv
            .queue_in_multi(client, resolved, &args, unix_ms())
            .is_some()
        {
            continue;
        }
        if is_multi {
            multi_at = Some(before);
        }
        if args[0].eq_ignore_ascii_case(b"exec") {
            multi_at = None;
        }
        let _ = srv.execute(client, resolved, &args, unix_ms());
        client.block = None;
    }
    if let Some(at) = multi_at {
        tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
        srv.end_transaction(client);
        return Ok(Replay::Truncated(at));
    }
    Ok(Replay::Complete)
}

/// Loads one file of the log: an RDB (possibly followed by commands, the old preamble
/// form) or commands. `old_style`: the base is a single-file AOF moved in by the
/// upgrade (Redis logs its RDB part as a preamble then).
fn load_file(
    srv: &Server,
    client: &mut Client,
    path: &Path,
    name: &str,
    is_base: bool,
    old_style: bool,
) -> Result<Replay, String> {
    let file = File::open(path).map_err(|e| {
        format!("Fatal error: can't open the append log file {name} for reading: {e}")
    })?;
    let len = file
        .metadata()
        .map_err(|e| format!("Unable to obtain the AOF file {name} length. stat: {e}"))?
        .len();
    if len == 0 {
        return Ok(Replay::Complete);
    }
    let mut r = BufReader::with_capacity(WRITE_BUFFER, crate::persist::Progress::new(file, srv));
    let mut head = [0u8; 5];
    let n = len.min(5) as usize;
    r.read_exact(&mut head[..n])
        .map_err(|e| format!("Unrecoverable error reading the append only file {name}: {e}"))?;
    let mut start = 0u64;
    let mut r: Box<dyn std::io::BufRead + '_> = if n == 5 && &head == b"REDIS" {
        if is_base && !old_style {
            tracing::info!("Reading RDB base file on AOF loading...");
        } else {
            tracing::info!("Reading RDB preamble from AOF file...");
        }
        let chained = std::io::Cursor::new(head.to_vec()).chain(r);
        let mut chained = BufReader::new(chained);
        let loaded = crate::persist::load_rdb_stream(srv, &mut chained, len, true)
            .map_err(|e| format!("Error reading the RDB preamble of the AOF file {name}, AOF loading aborted: {e}"))?;
        start = loaded;
        if old_style {
            tracing::info!("Reading the remaining AOF tail...");
        }
        Box::new(chained)
    } else {
        Box::new(std::io::Cursor::new(head[..n].to_vec()).chain(r))
    };
    let mut reader = CommandReader::new(&mut r, len - start, start);
    replay(srv, client, &mut reader, name)
}

/// Loads the AOF named by the manifest (base, then every incremental file). Nothing
/// happens if there is none. Corruption stops the start with Redis's messages, naming
/// the file and the offset; a torn last command is cut off with `aof-load-truncated
/// yes` (the only change ever made to a file here).
pub fn load_at_startup(srv: &Server) -> Result<(), String> {
    let n = names(srv);
    upgrade_old_style(&n)?;
    let Some(m) = read_manifest(&n)? else {
        return Ok(());
    };
    let truncated_ok = srv.config.read().aof_load_truncated;
    let start = Instant::now();
    let mut files: Vec<(&AofFile, bool)> = Vec::new();
    if let Some(b) = &m.base {
        files.push((b, true));
    }
    for f in &m.incrs {
        files.push((f, false));
    }
    if files.is_empty() {
        return Ok(());
    }
    for (f, _) in &files {
        if !n.dir.join(&f.name).exists() {
            return Err(format!(
                "The AOF file {} listed in the manifest doesn't exist (in {})",
                f.name,
                n.dir.display()
            ));
        }
    }
    let mut client = Client::new(Arc::new(crate::client::ClientShared::new(
        crate::client::LOADER_CLIENT_ID,
        String::new(),
        String::new(),
        -1,
        unix_ms(),
    )));
    client.authenticated = true;
    let total: u64 = files
        .iter()
        .map(|(f, _)| file_size(&n.dir.join(&f.name)))
        .sum();
    srv.persist.start_loading(total);
    load_files(srv, &mut client, &n, &files, truncated_ok)?;
    let size: u64 = files
        .iter()
        .map(|(f, _)| file_size(&n.dir.join(&f.name)))
        .sum();
    srv.aof.current_size.store(size, Ordering::Relaxed);
    srv.aof.base_size.store(size, Ordering::Relaxed);
    srv.persist.dirty.store(0, Ordering::Relaxed);
    tracing::info!(
        "DB loaded from append only file: {:.3} seconds",
        start.elapsed().as_secs_f64()
    );
    srv.aof.files.lock().manifest = m;
    Ok(())
}

/// Redis 7.0's upgrade of a single-file AOF (what Redis 6.2 and older wrote:
/// `dir`/`appendfilename`, RESP commands, maybe after an RDB preamble) into the multi-part
/// layout, done at startup before loading, under Redis's conditions: the file exists
/// and the AOF directory does not, or holds no manifest, or its manifest names only a
/// base called `appendfilename` that is not in the directory yet (an upgrade cut short
/// between its two steps).
///
/// The steps are Redis's `aofUpgradePrepare`, in its order: create the directory, write
/// the manifest naming the old file as the base (`file appendonly.aof seq 1 type b`;
/// temp file, fsync, rename, fsync of the directory), then move the file into the
/// directory (a rename, fsynced on both sides). A crash before the manifest is in place
/// leaves the old layout, one after it the third condition above: the next start
/// finishes the upgrade either way, and the old file is never copied or rewritten. The
/// first incremental file (`appendonly.aof.1.incr.aof`) is created when the AOF is
/// opened, after the load.
fn upgrade_old_style(n: &Names) -> Result<(), String> {
    let old = n.data_dir.join(&n.file);
    if !std::fs::metadata(&old).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    let manifest = if n.dir.is_dir() {
        read_manifest(n)?
    } else {
        None
    };
    let interrupted = |m: &Manifest| {
        m.incrs.is_empty()
            && m.base.as_ref().is_some_and(|b| b.name == n.file)
            && !n.dir.join(&n.file).exists()
    };
    let mut m = match manifest {
        None => Manifest::default(),
        Some(m) if m.is_empty() || interrupted(&m) => m,
        // A multi-part AOF is there: the old file is left alone, as Redis does.
        Some(_) => return Ok(()),
    };
    std::fs::create_dir_all(&n.dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            n.dir.display()
        )
    })?;
    sync_dir(&n.data_dir);
    m.base = Some(AofFile {
        name: n.file.clone(),
        seq: 1,
        kind: FileKind::Base,
    });
    persist_manifest(n, &m)?;
    let to = n.dir.join(&n.file);
    std::fs::rename(&old, &to).map_err(|e| {
        format!(
            "Error trying to rename the existing AOF to {} in the Upgrade process: {e}",
            to.display()
        )
    })?;
    sync_dir(&n.dir);
    sync_dir(&n.data_dir);
    tracing::info!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        n.file,
        n.dir_name
    );
    Ok(())
}

/// Replays the files of the manifest in order (base first).
fn load_files(
    srv: &Server,
    client: &mut Client,
    n: &Names,
    files: &[(&AofFile, bool)],
    truncated_ok: bool,
) -> Result<(), String> {
    let last = files.len() - 1;
    for (i, (f, is_base)) in files.iter().enumerate() {
        let path = n.dir.join(&f.name);
        let t0 = Instant::now();
        let old_style = *is_base && f.name == n.file;
        match load_file(srv, client, &path, &f.name, *is_base, old_style)? {
            Replay::Complete => {}
            Replay::Truncated(at) => {
                if i != last {
                    return Err(format!(
                        "Fatal error: the truncated file {} is not the last file",
                        f.name
                    ));
                }
                if !truncated_ok {
                    return Err(format!(
                        "Unexpected end of file reading the append only file {}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server.",
                        f.name
                    ));
                }
                tracing::warn!(
                    "!!! Warning: short read while loading the AOF file {}!!!",
                    f.name
                );
                tracing::warn!("!!! Truncating the AOF {} at offset {at} !!!", f.name);
                let cut = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|file| file.set_len(at).and_then(|_| file.sync_all()));
                if let Err(e) = cut {
                    return Err(format!("Error truncating the AOF file {}: {e}", f.name));
                }
                tracing::warn!(
                    "AOF {} loaded anyway because aof-load-truncated is enabled",
                    f.name
                );
            }
        }
        tracing::info!(
            "DB loaded from {} file {}: {:.3} seconds",
            if *is_base { "base" } else { "incr" },
            f.name,
            t0.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Turns logging on at startup (`appendonly yes`): appends to the manifest's last
/// incremental file, or creates the base (of the dataset just loaded) and a first
/// incremental file when there is no AOF yet, as Redis does.
pub fn open_at_startup(srv: &Arc<Server>) -> Result<(), String> {
    let n = names(srv);
    std::fs::create_dir_all(&n.dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            n.dir.display()
        )
    })?;
    // A rewrite or a manifest switch cut short by a crash leaves its temp file behind.
    let temp_manifest = format!("temp-{}", manifest::manifest_name(&n.file));
    if let Ok(entries) = std::fs::read_dir(&n.dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("temp-rewriteaof-") || name == temp_manifest {
                tracing::info!("Removing the leftover temp file {name}");
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let mut m = read_manifest(&n)?.unwrap_or_default();
    if m.base.is_none() && m.incrs.is_empty() {
        let seq = m.base_seq() + 1;
        let name = manifest::base_name(&n.file, seq, n.rdb_preamble);
        let tmp = n
            .dir
            .join(format!("temp-rewriteaof-{}.aof", std::process::id()));
        let libraries = crate::persist::library_codes(srv);
        write_base(
            srv,
            &tmp,
            n.rdb_preamble,
            None,
            &libraries,
            &srv.coord.state(),
            &crate::families::job_schedule::restore_commands(srv),
        )?;
        std::fs::rename(&tmp, n.dir.join(&name)).map_err(|e| e.to_string())?;
        tracing::info!("Creating AOF base file {name} on server start");
        m.base = Some(AofFile {
            name,
            seq,
            kind: FileKind::Base,
        });
    }
    let file = match m.incrs.last() {
        Some(f) => {
            tracing::info!("Opening AOF incr file {} on server start", f.name);
            open_append(&n.dir.join(&f.name))
        }
        None => {
            let seq = m.incr_seq() + 1;
            let name = manifest::incr_name(&n.file, seq);
            tracing::info!("Creating AOF incr file {name} on server start");
            m.incrs.push(AofFile {
                name: name.clone(),
                seq,
                kind: FileKind::Incr,
            });
            open_append(&n.dir.join(&name))
        }
    }
    .map_err(|e| format!("Can't open the append-only file: {e}"))?;
    persist_manifest(&n, &m)?;
    let size: u64 = m
        .base
        .iter()
        .chain(m.incrs.iter())
        .map(|f| file_size(&n.dir.join(&f.name)))
        .sum();
    srv.aof.current_size.store(size, Ordering::Relaxed);
    srv.aof.base_size.store(size, Ordering::Relaxed);
    srv.aof.files.lock().manifest = m;
    start_writer(srv, Arc::new(file));
    srv.aof.on.store(true, Ordering::Release);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The base file
// ---------------------------------------------------------------------------------------

/// Writes a base file at `tmp` (fsynced): the frozen view if `frozen` says when the
/// freeze happened, else the current content shard by shard (startup, nothing runs).
/// Writes a base file of the keyspace (the frozen view when `frozen` gives its instant)
/// and of `libraries`, the function libraries at that instant. `coord` is the
/// coordination state (fence counter, sessions) taken at the same point:
/// aux fields after the keys of an RDB base, commands before the keys of a RESP one.
/// `schedules` are the recurring jobs' `JOB.SCHEDULE RESTORE` commands, taken at that
/// point too (aux fields before the keys, or commands).
fn write_base(
    srv: &Server,
    tmp: &Path,
    rdb: bool,
    frozen: Option<u64>,
    libraries: &[Bytes],
    coord: &crate::coord::CoordState,
    schedules: &[Vec<Vec<u8>>],
) -> Result<u64, String> {
    let werr = |e: std::io::Error| format!("Write error writing the AOF base file: {e}");
    let file = File::create(tmp).map_err(|e| {
        format!("Opening the temp file for AOF rewrite in rewriteAppendOnlyFile(): {e}")
    })?;
    let (compression, checksum, fill, autosync) = {
        let c = srv.config.read();
        (
            c.rdbcompression,
            c.rdbchecksum,
            c.enc.list_max_listpack_size,
            c.aof_rewrite_incremental_fsync
                .then_some(crate::persist::AUTOSYNC_BYTES),
        )
    };
    let file = crate::persist::AutoSync::new(file, autosync);
    let now = frozen.unwrap_or_else(unix_ms);
    // A background rewrite walks its freeze in chunks; the base written at startup
    // takes each frozen shard whole.
    let walk = || match frozen {
        Some(_) => crate::persist::Walk::Frozen(now),
        None => crate::persist::Walk::FrozenWhole(now),
    };
    let result = (|| -> Result<(), String> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        let mut enc = Encoder::new(EncodeOptions {
            compression,
            list_fill: fill,
        });
        if rdb {
            let mut w = FileWriter::new(&mut out, checksum).map_err(werr)?;
            let aux = standard_aux(
                &mut enc,
                unix_ms() / 1000,
                crate::alloc::allocated() as u64,
                true,
            );
            w.write(&aux).map_err(werr)?;
            w.write(&crate::persist::policy_aux(&mut enc, srv))
                .map_err(werr)?;
            let values = crate::families::job_schedule::aux_of(schedules);
            w.write(&crate::persist::schedule_aux(&mut enc, &values))
                .map_err(werr)?;
            w.write(&crate::persist::function_records(&mut enc, libraries))
                .map_err(werr)?;
            let mut buf = Vec::with_capacity(64 << 10);
            crate::persist::walk_keys(srv, walk(), None, |db, key, value, exp| {
                w.select_db(db, None).map_err(werr)?;
                buf.clear();
                enc.key_value(&mut buf, key, value, exp);
                w.write(&buf).map_err(werr)
            })?;
            for (name, value) in coord.aux_fields() {
                buf.clear();
                enc.aux(&mut buf, name, &value);
                w.write(&buf).map_err(werr)?;
            }
            w.finish().map_err(werr)?;
        } else {
            let mut buf = Vec::with_capacity(64 << 10);
            // Server state first: the rate-limit policies and the function libraries
            // (FUNCTION LOAD, as Redis's rewriteFunctions).
            for cmd in crate::families::rl_policy::set_commands(srv) {
                encode_command(&mut buf, &cmd);
            }
            for cmd in schedules {
                encode_command(&mut buf, cmd);
            }
            for code in libraries {
                encode_command(&mut buf, &[&b"FUNCTION"[..], b"LOAD", code]);
            }
            // Then the coordination state: the fence counter and the sessions.
            for c in coord.commands() {
                encode_command(&mut buf, &c);
            }
            out.write_all(&buf).map_err(werr)?;
            let mut cur_db: Option<usize> = None;
            crate::persist::walk_keys(srv, walk(), None, |db, key, value, exp| {
                buf.clear();
                if cur_db != Some(db) {
                    let n = db.to_string();
                    encode_command(&mut buf, &[&b"SELECT"[..], n.as_bytes()]);
                    cur_db = Some(db);
                }
                basalt_persist::aof::rewrite::key_commands(key, value, exp, |cmd| {
                    encode_command(&mut buf, &cmd);
                });
                out.write_all(&buf).map_err(werr)
            })?;
        }
        let file = out.into_inner().map_err(|e| werr(e.into_error()))?;
        file.into_file().sync_all().map_err(werr)?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(file_size(tmp)),
        Err(e) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rewrite
// ---------------------------------------------------------------------------------------

/// How a request to start a rewrite ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewriteStart {
    /// The rewrite runs.
    Started,
    /// A rewrite is already running.
    Running,
    /// A BGSAVE runs (it holds the keyspace's one freeze): try again once it is over.
    BgsaveRunning,
    /// The thread could not be started.
    Failed,
}

/// Starts a rewrite in the background (`BGREWRITEAOF`, the automatic rewrite, and
/// `CONFIG SET appendonly yes` with `enable`).
pub fn start_rewrite(srv: &Server, enable: bool) -> RewriteStart {
    let Some(arc) = srv.me.upgrade() else {
        return RewriteStart::Failed;
    };
    let _start = srv.persist.bg_start.lock();
    if srv.persist.bgsave_running.load(Ordering::Relaxed) {
        return RewriteStart::BgsaveRunning;
    }
    if srv
        .aof
        .rewrite_running
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        return RewriteStart::Running;
    }
    srv.aof.rewrite_scheduled.store(false, Ordering::Relaxed);
    *srv.aof.rewrite_started.lock() = Some(Instant::now());
    srv.aof.rewrites.fetch_add(1, Ordering::Relaxed);
    let spawned = std::thread::Builder::new()
        .name("basalt-aofrw".into())
        .spawn(move || {
            crate::persist::background_priority(crate::persist::save_yield_secs(&arc));
            let t0 = Instant::now();
            let r = rewrite(&arc, enable);
            let aof = &arc.aof;
            aof.last_rewrite_secs
                .store(t0.elapsed().as_secs() as i64, Ordering::Relaxed);
            match r {
                Ok(()) => {
                    aof.last_rewrite_ok.store(true, Ordering::Relaxed);
                    aof.rewrite_failures.store(0, Ordering::Relaxed);
                    tracing::info!("Background AOF rewrite finished successfully");
                }
                Err(e) => {
                    arc.keyspace.thaw();
                    aof.last_rewrite_ok.store(false, Ordering::Relaxed);
                    aof.rewrite_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("{e}");
                    tracing::warn!("Background AOF rewrite terminated with error");
                }
            }
            *aof.rewrite_started.lock() = None;
            aof.rewrite_running.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        srv.aof.rewrite_running.store(false, Ordering::Release);
        return RewriteStart::Failed;
    }
    RewriteStart::Started
}

/// Seconds the running rewrite has taken (-1: none).
pub fn current_rewrite_secs(srv: &Server) -> i64 {
    match *srv.aof.rewrite_started.lock() {
        Some(t) => t.elapsed().as_secs() as i64,
        None => -1,
    }
}

fn rewrite(srv: &Arc<Server>, enable: bool) -> Result<(), String> {
    let n = names(srv);
    std::fs::create_dir_all(&n.dir).map_err(|e| {
        format!(
            "Can't open or create append-only dir {}: {e}",
            n.dir.display()
        )
    })?;
    let on = srv.aof.is_on();
    let logging = on || enable;
    let old = if on {
        srv.aof.files.lock().manifest.clone()
    } else {
        read_manifest(&n)?.unwrap_or_default()
    };
    let base_seq = old.base_seq() + 1;
    let incr_seq = old.incr_seq() + 1;
    let mut new_incr: Option<(Arc<File>, String)> = None;
    if logging {
        let name = manifest::incr_name(&n.file, incr_seq);
        let file = open_append(&n.dir.join(&name))
            .map_err(|e| format!("Can't open the append-only file {name}: {e}"))?;
        if on {
            // From now on a crash replays the old files and the (empty) new one.
            let mut m = old.clone();
            m.incrs.push(AofFile {
                name: name.clone(),
                seq: incr_seq,
                kind: FileKind::Incr,
            });
            persist_manifest(&n, &m)?;
            srv.aof.files.lock().manifest = m;
        }
        tracing::info!("Creating AOF incr file {name} on background rewrite");
        new_incr = Some((Arc::new(file), name));
    }
    // The point in time: no command runs while the view is frozen and the writer is
    // told where the new incremental file begins.
    let (frozen_at, libraries, coord, schedules) = {
        let _gate = srv.exec_gate.write();
        // The recurring jobs at the same instant (their firing pass holds the gate too).
        let schedules = crate::families::job_schedule::restore_commands(srv);
        let now = unix_ms();
        // The libraries at the same instant: a FUNCTION LOAD after it is in the new
        // incremental file, never in both.
        let libraries = crate::persist::library_codes(srv);
        let mut g = srv.keyspace.lock_all(now);
        if !srv.keyspace.freeze(&mut g) {
            return Err(
                "Background AOF rewrite failed: a point-in-time view is already being saved".into(),
            );
        }
        // No command runs and the cron's session expiry waits for the gate too: no
        // grant takes a fence and no session changes meanwhile.
        let coord = srv.coord.state();
        drop(g);
        if let Some((file, name)) = &new_incr {
            if srv.aof.is_on() {
                let mut b = srv.aof.buf.lock();
                let before = std::mem::take(&mut b.bytes);
                b.switches.push((before, file.clone(), name.clone()));
                b.db = None;
                drop(b);
                srv.aof.wake.notify_one();
            } else {
                start_writer(srv, file.clone());
                srv.aof.on.store(true, Ordering::Release);
            }
        }
        (now, libraries, coord, schedules)
    };
    tracing::info!(
        "Background append only file rewriting started by pid {}",
        std::process::id()
    );
    let tmp = n
        .dir
        .join(format!("temp-rewriteaof-bg-{}.aof", std::process::id()));
    let base_bytes = write_base(
        srv,
        &tmp,
        n.rdb_preamble,
        Some(frozen_at),
        &libraries,
        &coord,
        &schedules,
    )?;
    tracing::info!(
        "Successfully created the temporary AOF base file {}",
        tmp.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    );
    let base_name = manifest::base_name(&n.file, base_seq, n.rdb_preamble);
    std::fs::rename(&tmp, n.dir.join(&base_name)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("Error trying to rename the temporary AOF base file: {e}")
    })?;
    tracing::info!(
        "Successfully renamed the temporary AOF base file {} into {base_name}",
        tmp.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default()
    );
    let mut m = Manifest {
        base: Some(AofFile {
            name: base_name.clone(),
            seq: base_seq,
            kind: FileKind::Base,
        }),
        incrs: Vec::new(),
        history: Vec::new(),
    };
    if let Some((_, name)) = &new_incr {
        m.incrs.push(AofFile {
            name: name.clone(),
            seq: incr_seq,
            kind: FileKind::Incr,
        });
    }
    persist_manifest(&n, &m)?;
    let current = m
        .incrs
        .iter()
        .map(|f| file_size(&n.dir.join(&f.name)))
        .sum::<u64>()
        + base_bytes;
    srv.aof.files.lock().manifest = m.clone();
    srv.aof.current_size.store(current, Ordering::Relaxed);
    srv.aof.base_size.store(base_bytes, Ordering::Relaxed);
    for f in old
        .base
        .iter()
        .chain(old.incrs.iter())
        .chain(old.history.iter())
    {
        if m.incrs.iter().any(|x| x.name == f.name) || f.name == base_name {
            continue;
        }
        tracing::info!("Removing the history file {} in the background", f.name);
        let _ = std::fs::remove_file(n.dir.join(&f.name));
    }
    sync_dir(&n.dir);
    Ok(())
}

/// `CONFIG SET appendonly`: turns logging on (a rewrite writes the base first, as
/// Redis) or off (in the background: the writer is flushed and stopped with no command
/// running).
pub fn set_enabled(srv: &Server, yes: bool) {
    if yes == srv.aof.is_on() {
        return;
    }
    if yes {
        if start_rewrite(srv, true) != RewriteStart::Started {
            // A rewrite (without logging) or a BGSAVE runs: try again from the cron.
            srv.aof.enable_pending.store(true, Ordering::Relaxed);
        }
        return;
    }
    let Some(arc) = srv.me.upgrade() else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("basalt-aofoff".into())
        .spawn(move || {
            let _gate = arc.exec_gate.write();
            stop_writer(&arc.aof);
            tracing::info!("AOF disabled");
        });
}

/// Run by the cron: a pending enable, and the automatic rewrite when the AOF grew by
/// `auto-aof-rewrite-percentage` over its size after the last rewrite (and is at least
/// `auto-aof-rewrite-min-size`).
pub fn cron(srv: &Server) {
    let aof = &srv.aof;
    // Like Redis, nothing starts while the other background job (a BGSAVE) runs.
    if aof.rewrite_running.load(Ordering::Relaxed)
        || srv.persist.bgsave_running.load(Ordering::Relaxed)
    {
        return;
    }
    if aof.enable_pending.load(Ordering::Relaxed) {
        let wanted = srv.config.read().appendonly && !aof.is_on();
        if !wanted || start_rewrite(srv, true) == RewriteStart::Started {
            aof.enable_pending.store(false, Ordering::Relaxed);
        }
        return;
    }
    // A BGREWRITEAOF that waited for a BGSAVE (Redis's `aof_rewrite_scheduled`).
    if aof.rewrite_scheduled.load(Ordering::Relaxed) {
        start_rewrite(srv, false);
        return;
    }
    if !aof.is_on() {
        return;
    }
    let (perc, min) = {
        let c = srv.config.read();
        (c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
    };
    let size = aof.current_size.load(Ordering::Relaxed);
    if perc <= 0 || size < min {
        return;
    }
    let base = aof.base_size.load(Ordering::Relaxed).max(1);
    let growth = (size.saturating_sub(base) as u128 * 100 / u128::from(base)) as i64;
    if growth >= perc {
        tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
        start_rewrite(srv, false);
    }
}

/// Builds an effect command from its parts.
pub fn cmd<const N: usize>(parts: [&[u8]; N]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

/// An integer argument.
pub fn int_arg(v: impl itoa::Integer) -> Bytes {
    Bytes::copy_from_slice(itoa::Buffer::new().format(v).as_bytes())
}
