//! What other connections may see of a client: `CLIENT LIST`/`INFO` fields and the
//! kill switch used by `CLIENT KILL`.
//!
//! The owning connection task updates these fields; readers take short locks or atomic
//! loads. Nothing here is on the per-command hot path except [`ClientShared::touch`].

use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// The id of the internal client that replays the AOF at startup (allowed to run
/// commands while the server is loading).
pub const LOADER_CLIENT_ID: u64 = u64::MAX;

/// A client's shared, observable state.
pub struct ClientShared {
    /// Client id.
    pub id: u64,
    /// Peer address `ip:port`.
    pub addr: String,
    /// Local address `ip:port`.
    pub laddr: String,
    /// Socket file descriptor.
    pub fd: i32,
    /// Unix ms of connection.
    pub created_ms: u64,
    /// CLIENT SETNAME.
    pub name: Mutex<String>,
    /// CLIENT SETINFO LIB-NAME.
    pub lib_name: Mutex<String>,
    /// CLIENT SETINFO LIB-VER.
    pub lib_ver: Mutex<String>,
    /// Selected database.
    pub db: AtomicUsize,
    /// RESP version (2 or 3).
    pub resp: AtomicU8,
    /// Unix ms of the last command.
    pub last_interaction_ms: AtomicU64,
    /// Last command's table id + 1 (0: none yet); an atomic so the hot path takes no lock.
    pub last_cmd: AtomicUsize,
    /// Bytes in the query buffer.
    pub qbuf: AtomicUsize,
    /// Channels subscribed to (`sub=`).
    pub sub: AtomicUsize,
    /// Patterns subscribed to (`psub=`).
    pub psub: AtomicUsize,
    /// Shard channels subscribed to (`ssub=`).
    pub ssub: AtomicUsize,
    /// Published messages waiting for this connection, and its output accounting.
    pub outbox: crate::pubsub::Outbox,
    /// CLIENT NO-EVICT.
    pub no_evict: AtomicBool,
    /// Commands queued by MULTI (-1: not in a transaction).
    pub multi: AtomicI64,
    /// Bytes held by the queued commands.
    pub multi_mem: AtomicUsize,
    /// A WATCHed key was modified (shared with the client's watch state).
    pub watch_dirty: Arc<AtomicBool>,
    /// Set by CLIENT KILL; the connection closes at its next wakeup.
    pub killed: AtomicBool,
    /// Wakes the connection task when killed.
    pub kill: tokio::sync::Notify,
}

impl ClientShared {
    /// A new client's record.
    pub fn new(id: u64, addr: String, laddr: String, fd: i32, now_ms: u64) -> ClientShared {
        ClientShared {
            id,
            addr,
            laddr,
            fd,
            created_ms: now_ms,
            name: Mutex::new(String::new()),
            lib_name: Mutex::new(String::new()),
            lib_ver: Mutex::new(String::new()),
            db: AtomicUsize::new(0),
            resp: AtomicU8::new(2),
            last_interaction_ms: AtomicU64::new(now_ms),
            last_cmd: AtomicUsize::new(0),
            qbuf: AtomicUsize::new(0),
            sub: AtomicUsize::new(0),
            psub: AtomicUsize::new(0),
            ssub: AtomicUsize::new(0),
            outbox: crate::pubsub::Outbox::default(),
            no_evict: AtomicBool::new(false),
            multi: AtomicI64::new(-1),
            multi_mem: AtomicUsize::new(0),
            watch_dirty: Arc::new(AtomicBool::new(false)),
            killed: AtomicBool::new(false),
            kill: tokio::sync::Notify::new(),
        }
    }

    /// Records a command execution.
    pub fn touch(&self, now_ms: u64, cmd_id: usize) {
        self.last_interaction_ms.store(now_ms, Ordering::Relaxed);
        self.last_cmd.store(cmd_id + 1, Ordering::Relaxed);
    }

    /// Mirrors the connection's subscription counts for CLIENT LIST.
    pub fn set_sub_counts(&self, subs: &crate::pubsub::Subscriptions) {
        self.sub.store(subs.channels.len(), Ordering::Relaxed);
        self.psub.store(subs.patterns.len(), Ordering::Relaxed);
        self.ssub.store(subs.shard.len(), Ordering::Relaxed);
    }

    /// True while subscribed to anything (Redis's CLIENT_PUBSUB flag).
    pub fn is_pubsub(&self) -> bool {
        self.sub.load(Ordering::Relaxed)
            + self.psub.load(Ordering::Relaxed)
            + self.ssub.load(Ordering::Relaxed)
            > 0
    }

    /// Asks the connection to close.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        // Every waiter must wake: the read loop keeps one kill waiter for the whole
        // connection while a write stuck on a full socket waits on another, and
        // `notify_one` would wake only the older. `notify_waiters` reaches every
        // `Notified` created so far (polled or not); the permit `notify_one` then leaves
        // covers a waiter created later.
        self.kill.notify_waiters();
        self.kill.notify_one();
        self.outbox.attention.signal();
    }

    /// One `CLIENT LIST` line (without the trailing newline), fields as Redis 7 prints
    /// them (plus 7.2's `lib-name`/`lib-ver`, since CLIENT SETINFO is supported).
    pub fn info_line(&self, now_ms: u64, commands: &crate::cmd::CommandTable) -> String {
        let last = match self.last_cmd.load(Ordering::Relaxed) {
            0 => "NULL",
            id => commands
                .entries()
                .get(id - 1)
                .map(|r| r.fullname.as_str())
                .unwrap_or("NULL"),
        };
        let age = now_ms.saturating_sub(self.created_ms) / 1000;
        let idle = now_ms.saturating_sub(self.last_interaction_ms.load(Ordering::Relaxed)) / 1000;
        // Redis's flag letters, in its order (catClientInfoString); N when none.
        let mut flags = String::new();
        if self.is_pubsub() {
            flags.push('P');
        }
        let multi = self.multi.load(Ordering::Relaxed);
        if multi >= 0 {
            flags.push('x');
        }
        if self.watch_dirty.load(Ordering::Relaxed) {
            flags.push('d');
        }
        if self.no_evict.load(Ordering::Relaxed) {
            flags.push('e');
        }
        if flags.is_empty() {
            flags.push('N');
        }
        let qbuf = self.qbuf.load(Ordering::Relaxed);
        let omem = self.outbox.pending();
        let oll = self.outbox.queued_messages();
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi={} qbuf={} qbuf-free={} argv-mem=0 multi-mem={} rbs={} rbp={} obl=0 oll={} omem={} tot-mem={} events={} cmd={} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            self.name.lock(),
            age,
            idle,
            flags,
            self.db.load(Ordering::Relaxed),
            self.sub.load(Ordering::Relaxed),
            self.psub.load(Ordering::Relaxed),
            self.ssub.load(Ordering::Relaxed),
            multi,
            qbuf,
            16384usize.saturating_sub(qbuf),
            self.multi_mem.load(Ordering::Relaxed),
            qbuf.max(16384),
            qbuf,
            oll,
            omem,
            qbuf + omem + 16384,
            if omem > 0 { "rw" } else { "r" },
            last,
            self.resp.load(Ordering::Relaxed),
            self.lib_name.lock(),
            self.lib_ver.lock(),
        )
    }
}
