//! Shared server state, per-connection client state, and command dispatch.
//!
//! `Server` is shared by every connection task (`Arc<Server>`). `Client` is owned by one
//! connection task. [`Server::prepare`] and [`Server::execute`] implement Redis's
//! `processCommand` order: lookup, arity, authentication, then the handler, then
//! statistics. They are synchronous: a handler never awaits, so it can never hold a
//! shard lock across an `.await`.

use crate::client::ClientShared;
use crate::cmd::{CommandTable, Lookup, Resolved, flags};
use crate::config::Config;
use crate::error::{self, CmdResult, Error};
use crate::thread_slot;
use basalt_engine::{EncodingLimits, EvictStatus, Keyspace, KeyspaceConfig, Reason};
use basalt_proto::{Frame, Limits, Protocol};
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the wall clock. The only place the server
/// reads it for command semantics; the engine receives it as a parameter.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Microseconds since the Unix epoch.
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Per-command counters of the rarer events (`INFO commandstats`); calls and times are
/// in [`CallStats`].
#[derive(Default)]
pub struct CmdStats {
    /// Refused before execution (arity, auth, ...).
    pub rejected: AtomicU64,
    /// Executed but replied with an error.
    pub failed: AtomicU64,
}

/// Versions of [`EncCell`] values, unique across the servers of a process.
static ENC_VERSIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's copy of the encoding thresholds it last read, with their version.
    static ENC_COPY: std::cell::Cell<(u64, EncodingLimits)> =
        std::cell::Cell::new((0, EncodingLimits::default()));
}

/// The encoding thresholds, read by every collection write and changed only by CONFIG
/// SET: each thread keeps a copy and takes the lock only when the version it last read
/// is no longer current, so a read is two plain loads instead of a lock and unlock.
pub struct EncCell {
    limits: RwLock<EncodingLimits>,
    version: AtomicU64,
}

impl EncCell {
    fn new(limits: EncodingLimits) -> EncCell {
        EncCell {
            limits: RwLock::new(limits),
            version: AtomicU64::new(ENC_VERSIONS.fetch_add(1, Ordering::Relaxed)),
        }
    }

    /// The thresholds in force.
    #[inline]
    pub fn get(&self) -> EncodingLimits {
        // The version is published after the value (`set`), so a thread that sees the
        // new version reads the new value under the lock.
        let version = self.version.load(Ordering::Acquire);
        ENC_COPY.with(|copy| {
            let (seen, limits) = copy.get();
            if seen == version {
                return limits;
            }
            let limits = *self.limits.read();
            copy.set((version, limits));
            limits
        })
    }

    /// Replaces the thresholds.
    pub fn set(&self, limits: EncodingLimits) {
        *self.limits.write() = limits;
        self.version.store(
            ENC_VERSIONS.fetch_add(1, Ordering::Relaxed),
            Ordering::Release,
        );
    }
}

/// Calls and execution time of one command, in one thread slot.
#[derive(Default)]
struct CallSlot {
    calls: AtomicU64,
    /// Execution time in [`crate::ticks`].
    ticks: AtomicU64,
}

/// Per-command calls and execution times (`INFO commandstats`, `total_commands_processed`),
/// counted every command: one array per thread slot ([`crate::thread_slot`]), created
/// when the slot's thread first runs a command, so counting costs no locked instruction.
/// `CONFIG RESETSTAT` records the sums as a baseline that readers subtract (writing the
/// owners' counters from another thread would race with them).
pub struct CallStats {
    slots: Box<[OnceLock<Box<[CallSlot]>>]>,
    base: Box<[CallSlot]>,
}

impl CallStats {
    fn new(commands: usize) -> CallStats {
        let array = || (0..commands).map(|_| CallSlot::default()).collect();
        CallStats {
            slots: (0..thread_slot::SLOTS).map(|_| OnceLock::new()).collect(),
            base: array(),
        }
    }

    /// Counts one call of command `id` that took `ticks` ([`crate::ticks`]).
    #[inline]
    pub fn record(&self, id: usize, ticks: u64) {
        let slot = thread_slot::current();
        let n = self.base.len();
        let counts = self.slots[slot].get_or_init(|| (0..n).map(|_| CallSlot::default()).collect());
        let c = &counts[id];
        thread_slot::add_u64(&c.calls, slot, 1);
        thread_slot::add_u64(&c.ticks, slot, ticks);
    }

    fn sums(&self, id: usize) -> (u64, u64) {
        self.slots
            .iter()
            .filter_map(OnceLock::get)
            .fold((0, 0), |(calls, ticks), counts| {
                let c = &counts[id];
                (
                    calls + c.calls.load(Ordering::Relaxed),
                    ticks + c.ticks.load(Ordering::Relaxed),
                )
            })
    }

    /// Calls of command `id` and their total time in µs since start or the last reset.
    pub fn get(&self, id: usize) -> (u64, u64) {
        let b = &self.base[id];
        let (base_calls, base_ticks) = (
            b.calls.load(Ordering::Relaxed),
            b.ticks.load(Ordering::Relaxed),
        );
        let (calls, ticks) = self.sums(id);
        (
            calls.saturating_sub(base_calls),
            crate::ticks::to_micros(ticks.saturating_sub(base_ticks)),
        )
    }

    /// Calls of every command since start or the last reset.
    pub fn total_calls(&self) -> u64 {
        (0..self.base.len()).map(|id| self.get(id).0).sum()
    }

    /// `CONFIG RESETSTAT`: counts start again from zero.
    pub fn reset(&self) {
        for id in 0..self.base.len() {
            let (calls, ticks) = self.sums(id);
            self.base[id].calls.store(calls, Ordering::Relaxed);
            self.base[id].ticks.store(ticks, Ordering::Relaxed);
        }
    }
}

/// Server-wide counters (`INFO stats`).
#[derive(Default)]
pub struct Stats {
    /// Connections accepted.
    pub connections_received: AtomicU64,
    /// Connections refused by maxclients.
    pub rejected_connections: AtomicU64,
    /// Bytes read from clients.
    pub net_input_bytes: AtomicU64,
    /// Bytes written to clients.
    pub net_output_bytes: AtomicU64,
    /// Error replies sent.
    pub total_error_replies: AtomicU64,
    /// Errors replied by rejected commands.
    pub unexpected_error_replies: AtomicU64,
    /// Clients killed by CLIENT KILL or limits.
    pub client_query_buffer_limit_disconnections: AtomicU64,
    /// Peak of connected clients.
    pub max_clients_seen: AtomicUsize,
    /// Clients connected now (the length of `Server::clients`, readable without its lock).
    pub connected: AtomicUsize,
    /// Active expiry ticks that stopped at their time budget with due keys left.
    pub expired_time_cap_reached: AtomicU64,
    /// Time spent evicting, in microseconds (`total_eviction_exceeded_time` is close).
    pub eviction_usec: AtomicU64,
    /// Time spent in active expiry passes, in microseconds
    /// (`expire_cycle_cpu_milliseconds`).
    pub expire_cycle_usec: AtomicU64,
    /// Running estimate of the share of volatile keys that are past their deadline but
    /// not reclaimed yet, as `f64` bits (`expired_stale_perc`, Redis's 5%/95% average).
    pub expired_stale: AtomicU64,
}

/// `CLIENT PAUSE` state.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pause {
    /// Unix ms until which the pause lasts (0: not paused).
    pub until: u64,
    /// Only write commands are paused.
    pub write_only: bool,
}

/// Values applied from the configuration that the hot path reads without locking.
pub struct Live {
    /// maxclients.
    pub maxclients: AtomicUsize,
    /// timeout (seconds, 0 = none).
    pub timeout_secs: AtomicU64,
    /// proto-max-bulk-len.
    pub max_bulk_len: AtomicU64,
    /// proto-max-multibulk-len (Basalt).
    pub max_multibulk_len: AtomicU64,
    /// client-query-buffer-limit.
    pub query_buffer_limit: AtomicU64,
    /// hz.
    pub hz: AtomicU64,
    /// active-expire-effort (1..=10).
    pub active_expire_effort: AtomicU64,
    /// Whether the cron reclaims expired keys nobody reads (`DEBUG SET-ACTIVE-EXPIRE`).
    pub active_expire: AtomicBool,
    /// requirepass is non-empty.
    pub auth_required: AtomicBool,
    /// Collection encoding thresholds.
    pub enc: EncCell,
    /// maxmemory (0 = no limit).
    pub maxmemory: AtomicU64,
    /// maxmemory-samples.
    pub maxmemory_samples: AtomicU64,
    /// maxmemory-eviction-tenacity.
    pub eviction_tenacity: AtomicU64,
}

/// State shared by all connections.
pub struct Server {
    /// The data.
    pub keyspace: Keyspace,
    /// The configuration (CONFIG GET/SET/REWRITE).
    pub config: RwLock<Config>,
    /// Values from the configuration read on the hot path.
    pub live: Live,
    /// The command table.
    pub commands: CommandTable,
    /// Per-command statistics, indexed by `Resolved::id`.
    pub cmd_stats: Vec<CmdStats>,
    /// Per-command calls and times, indexed by `Resolved::id`.
    pub call_stats: CallStats,
    /// Error replies by code (`INFO errorstats`).
    pub error_stats: Mutex<HashMap<String, u64>>,
    /// Counters.
    pub stats: Stats,
    /// Connected clients by id.
    pub clients: Mutex<BTreeMap<u64, Arc<ClientShared>>>,
    next_client_id: AtomicU64,
    /// When the server started.
    pub started: Instant,
    /// Unix ms when the server started.
    pub started_unix_ms: u64,
    /// 40 hex characters identifying this run.
    pub run_id: String,
    /// The TCP port actually listened on.
    pub port: AtomicU64,
    /// Set when SHUTDOWN or a signal asked the server to stop.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// CLIENT PAUSE state.
    pub pause: Mutex<Pause>,
    /// `pause.until`, readable without the lock (0: never paused).
    pub pause_until: AtomicU64,
    /// Woken when a pause ends early (CLIENT UNPAUSE).
    pub unpause: tokio::sync::Notify,
    /// Peak of memory used (bytes), for INFO.
    pub peak_memory: AtomicU64,
    /// Samples behind INFO's instantaneous_* fields.
    pub metrics: Mutex<crate::info::Metrics>,
    /// The configuration file given on the command line, if any.
    pub config_file: Option<std::path::PathBuf>,
    /// The executable path.
    pub executable: String,
    /// Clients blocked on keys.
    pub blocking: Arc<crate::blocking::Registry>,
    /// Named rate-limit policies (`RL.POLICY`); server state, saved as RDB aux fields.
    pub rl_policies: parking_lot::RwLock<basalt_engine::rl_policy::Policies>,
    /// Recurring jobs (`JOB.SCHEDULE`); server state, saved as RDB aux fields and fired
    /// by the cron (`crate::schedule`).
    pub schedules: parking_lot::RwLock<basalt_engine::schedule::Schedules>,
    /// Timed wake-ups of blocked clients (lease expiries), run by `blocking::run_timers`.
    pub wake_timers: Arc<crate::blocking::Timers>,
    /// The fence counter and sessions of the coordination commands.
    pub coord: crate::coord::Coord,
    /// The jid index, workers registry and fetch rotation of the job queues.
    pub jobs: crate::jobs::Jobs,
    /// WATCHed keys.
    pub watches: Arc<crate::transaction::Watches>,
    /// Held for reading by every command and for writing by EXCLUSIVE commands (EXEC,
    /// EVAL, FCALL), so no command runs while a transaction or script executes (they are
    /// atomic across shards). Taken only by [`Server::try_execute`], never blocking a
    /// worker thread for long.
    pub exec_gate: RwLock<()>,
    /// Woken when a writer releases the exec gate (connections waiting for it retry).
    pub gate_released: tokio::sync::Notify,
    /// Lua scripting: the EVAL and FUNCTION engines and the running script's state.
    pub scripting: crate::scripting::Scripting,
    /// The table id of EXEC (CLIENT PAUSE WRITE holds it when it queued writes).
    exec_id: usize,
    /// Snapshot state (SAVE/BGSAVE, save points, INFO persistence).
    pub persist: crate::persist::Persistence,
    /// The append-only file.
    pub aof: Arc<crate::aof::Aof>,
    /// This server's own handle, for background jobs that outlive a command (BGSAVE).
    pub me: std::sync::Weak<Server>,
    /// Pub/Sub channels, output buffer limits and keyspace notifications.
    pub pubsub: Arc<crate::pubsub::Hub>,
}

/// How long a command tries to take the exec gate before waiting asynchronously.
const GATE_SPIN: std::time::Duration = std::time::Duration::from_millis(2);

/// The outcome of [`Server::try_execute`].
pub enum Attempt {
    /// The command ran (or was refused); the reply to send, if any.
    Done(Option<Frame>),
    /// The exec gate is held by a transaction or a script that is not busy yet: wait
    /// for [`Server::gate_released`] (or a short while) and try again.
    Wait,
}

/// What a handler sees.
pub struct Ctx<'a> {
    /// The server.
    pub srv: &'a Server,
    /// The calling client.
    pub client: &'a mut Client,
    /// The command's time (Unix ms), fixed for the whole command.
    pub now: u64,
    /// The command's full name (`get`, `config|set`), for error messages.
    pub fullname: &'a str,
    /// What the command changed, for `rdb_changes_since_last_save` (see
    /// [`Ctx::changed`]).
    pub changes: Changes,
    /// A woken waiter's re-run passed over a key that now holds another type (see
    /// [`Ctx::skipped_wrong_type`]).
    pub skipped_wrong: bool,
}

/// The changes one command made to the dataset, counted as Redis counts `server.dirty`
/// (`rdb_changes_since_last_save`, and the `changes` of `save <seconds> <changes>`).
///
/// By default a command that modified a key counts 1: every site that modifies a key
/// calls [`Ctx::notify`] (or [`Ctx::notify_event_only`], [`Ctx::modified`]), which marks
/// the command as having changed something, so `SET`, `EXPIRE`, `RENAME` count 1 and a
/// write that changed nothing (`SET NX` on an existing key, `DEL` of a missing key,
/// `PERSIST` without a TTL) counts 0. Commands for which Redis adds one per element
/// (`MSET`, `DEL`, `SADD`, `HSET`, `LPUSH`, `ZADD`, pops with a count, `FLUSHALL`, ...)
/// state their count with [`Ctx::changed`], which replaces the default.
#[derive(Debug, Default)]
pub struct Changes {
    stated: std::cell::Cell<Option<u64>>,
    touched: std::cell::Cell<bool>,
}

impl Changes {
    /// The count: the stated one, else 1 if a key was modified.
    pub fn count(&self) -> u64 {
        self.stated.get().unwrap_or(u64::from(self.touched.get()))
    }
}

/// CLIENT REPLY modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyMode {
    /// Normal.
    #[default]
    On,
    /// No replies until CLIENT REPLY ON.
    Off,
    /// Skip the reply of the next command.
    SkipNext,
    /// Skipping the current command's reply.
    Skip,
}

/// One connection's private state.
pub struct Client {
    /// Client id.
    pub id: u64,
    /// Selected database.
    pub db: usize,
    /// RESP version.
    pub proto: Protocol,
    /// Passed AUTH (or no password is required).
    pub authenticated: bool,
    /// State visible to other clients (CLIENT LIST, KILL).
    pub shared: Arc<ClientShared>,
    /// CLIENT REPLY mode.
    pub reply: ReplyMode,
    /// Close the connection once the pending replies are written.
    pub close_after_reply: bool,
    /// Set by a blocking command that found nothing to do (see [`Ctx::block`]).
    pub block: Option<BlockRequest>,
    /// Commands queued since MULTI (`None`: not in a transaction).
    pub multi: Option<crate::transaction::MultiState>,
    /// WATCHed keys.
    pub watch: crate::transaction::WatchState,
    /// Running the commands of an EXEC (blocking commands answer at once).
    pub in_exec: bool,
    /// Channels, patterns and shard channels this client is subscribed to.
    pub subs: crate::pubsub::Subscriptions,
    /// Set by a handler whose reply Redis sends before some of the notifications it
    /// caused: how many outbox messages go before the reply (see [`Ctx::reply_here`]);
    /// reset by the connection after each command.
    pub reply_at: Option<usize>,
    /// Set by a handler that queued its reply in the outbox itself (the subscription
    /// commands); the connection then sends no other reply for it.
    pub reply_in_outbox: bool,
    /// What the running command logs to the AOF instead of itself (`None`: itself, if
    /// it is a write that succeeded). Set through [`Ctx::propagate`].
    pub aof_effects: Option<Vec<Vec<Bytes>>>,
    /// Effects of the commands of the running EXEC, with their databases.
    pub aof_exec: Option<Vec<(usize, Vec<Bytes>)>>,
    /// Sequence number of this client's last logged effect.
    pub aof_seq: u64,
    /// The last sequence number known durable (replies up to it were released).
    pub aof_acked: u64,
    /// Running the commands of a script (blocking commands answer at once).
    pub in_script: bool,
    /// The error the running command returns was counted in the error stats already
    /// (a script's error from `redis.call`, Redis's `ignore_error_stats_update`):
    /// `Server::call` counts the failed call but not the error again.
    pub error_counted: bool,
}

impl Client {
    /// A client in database 0, RESP2, not authenticated, with default state.
    pub fn new(shared: Arc<ClientShared>) -> Client {
        Client {
            id: shared.id,
            db: 0,
            proto: Protocol::Resp2,
            authenticated: false,
            watch: crate::transaction::WatchState {
                dirty: shared.watch_dirty.clone(),
                keys: Vec::new(),
            },
            shared,
            reply: ReplyMode::default(),
            close_after_reply: false,
            block: None,
            multi: None,
            in_exec: false,
            in_script: false,
            error_counted: false,
            subs: Default::default(),
            reply_at: None,
            reply_in_outbox: false,
            aof_effects: None,
            aof_exec: None,
            aof_seq: 0,
            aof_acked: 0,
        }
    }
}

/// A command's request to wait for one of `keys` (BLPOP and friends).
#[derive(Clone)]
pub struct BlockRequest {
    /// The keys to wait on, in the client's selected database.
    pub keys: Vec<Bytes>,
    /// Unix ms deadline; `None` waits forever.
    pub deadline: Option<u64>,
    /// The arguments to re-run with when woken (`None`: the original ones). XREAD pins
    /// `$` to the ID it meant when the client blocked.
    pub rerun: Option<Vec<Bytes>>,
    /// When a re-run still finds nothing, wake the next waiter of the keys too: one
    /// XADD may serve many stream readers, while one push serves one list popper.
    pub pass_on: bool,
    /// Kept alive while the client waits (stream watchers that wake it when its
    /// stream is deleted).
    pub keepalive: Vec<Arc<basalt_engine::types::stream::Watcher>>,
    /// Re-run once right after queueing, so a wake-up sent between the command's
    /// refusal and the queueing is not lost (RL.LEASE: a lease released meanwhile).
    pub recheck: bool,
    /// On timeout, run these arguments once more (not blocking) and answer their reply
    /// instead of a null array (RL.LEASE answers its usual reply, `acquired` 0).
    pub timeout_rerun: Option<Vec<Bytes>>,
    /// Re-run the command at this Unix ms even if no key is signalled (a lock waiter
    /// looks again when a holder's lease passes, which no write announces).
    pub recheck_at: Option<u64>,
}

impl Ctx<'_> {
    /// True while the AOF logs effects: handlers build their replacement effects only
    /// then.
    #[inline]
    pub fn aof_on(&self) -> bool {
        self.srv.aof.is_on()
    }

    /// Logs `args` (one command) as this command's effect instead of the command itself;
    /// several calls log several commands, in order. Handlers call it only when
    /// [`Ctx::aof_on`].
    pub fn propagate(&mut self, args: Vec<Bytes>) {
        self.client
            .aof_effects
            .get_or_insert_with(Vec::new)
            .push(args);
    }

    /// States how many changes this command made, as Redis adds them to `server.dirty`
    /// (one per element added, removed or set, per key deleted...). Several calls add
    /// up; once called, the default count of [`Changes`] no longer applies.
    pub fn changed(&self, n: u64) {
        let c = &self.changes.stated;
        c.set(Some(c.get().unwrap_or(0) + n));
    }

    /// Logs nothing for this command (a write that changed nothing).
    pub fn propagate_nothing(&mut self) {
        self.client.aof_effects.get_or_insert_with(Vec::new);
    }

    /// The encoding thresholds in force.
    pub fn enc(&self) -> EncodingLimits {
        self.srv.live.enc.get()
    }

    /// False where a blocking command must not block (inside MULTI or a script): it then
    /// answers as if its timeout had expired.
    pub fn can_block(&self) -> bool {
        !self.client.in_exec && !self.client.in_script
    }

    /// Blocks the calling command until one of `keys` is signalled (then the command runs
    /// again from the start, with the same arguments) or `deadline` (Unix ms) passes (then
    /// the client gets a null array, as Redis replies on timeout). The handler returns
    /// this method's result directly; the placeholder reply is never sent.
    pub fn block(&mut self, keys: Vec<Bytes>, deadline: Option<u64>) -> CmdResult {
        self.client.block = Some(BlockRequest {
            keys,
            deadline,
            rerun: None,
            pass_on: self.skipped_wrong,
            keepalive: Vec::new(),
            recheck: false,
            timeout_rerun: None,
            recheck_at: None,
        });
        Ok(Frame::NullArray)
    }

    /// A blocked client's re-run (woken by a write) passed over one of its keys because
    /// it now holds another type: the write that woke it may serve another waiter of the
    /// key (a ZADD wakes a BLPOP queued before a BZPOPMIN), so if the command blocks
    /// again it passes the wake-up on to the next waiter, as Redis serves every client
    /// blocked on a ready key whose type fits.
    pub fn skipped_wrong_type(&mut self) {
        self.skipped_wrong = true;
    }

    /// [`Ctx::block`] for a FIFO resource (RL.LEASE): queued clients re-check once
    /// after queueing, and on timeout run `timeout_rerun` for their reply.
    pub fn block_fifo(
        &mut self,
        key: Bytes,
        deadline: Option<u64>,
        timeout_rerun: Vec<Bytes>,
    ) -> CmdResult {
        self.client.block = Some(BlockRequest {
            keys: vec![key],
            deadline,
            rerun: None,
            pass_on: false,
            keepalive: Vec::new(),
            recheck: true,
            timeout_rerun: Some(timeout_rerun),
            recheck_at: None,
        });
        Ok(Frame::NullArray)
    }

    /// [`Ctx::block`] that also re-runs the command at `recheck_at` (Unix ms) when that
    /// comes before `deadline` and nothing signalled the keys (lock waiters: a lease
    /// ends silently).
    pub fn block_recheck(
        &mut self,
        keys: Vec<Bytes>,
        deadline: Option<u64>,
        recheck_at: Option<u64>,
    ) -> CmdResult {
        self.client.block = Some(BlockRequest {
            keys,
            deadline,
            rerun: None,
            pass_on: false,
            keepalive: Vec::new(),
            recheck: false,
            timeout_rerun: None,
            recheck_at,
        });
        Ok(Frame::NullArray)
    }

    /// [`Ctx::block`] for stream reads: re-run with `rerun` instead of the original
    /// arguments, pass a wake-up on when a re-run still finds nothing, and keep
    /// `keepalive` (the stream watchers) alive while blocked.
    pub fn block_streams(
        &mut self,
        keys: Vec<Bytes>,
        deadline: Option<u64>,
        rerun: Vec<Bytes>,
        keepalive: Vec<Arc<basalt_engine::types::stream::Watcher>>,
    ) -> CmdResult {
        self.client.block = Some(BlockRequest {
            keys,
            deadline,
            rerun: Some(rerun),
            pass_on: true,
            keepalive,
            recheck: false,
            timeout_rerun: None,
            recheck_at: None,
        });
        Ok(Frame::NullArray)
    }

    /// Publishes a keyspace notification for `key` in the client's database: `class` is
    /// a `pubsub::notify` class bit (`GENERIC`, `STRING`, `LIST`, ...), `event` Redis's
    /// event name (`"set"`, `"lpush"`, `"expire"`, ...). One atomic load when that class
    /// is not enabled. Call it after the change, where Redis calls notifyKeyspaceEvent.
    #[inline]
    pub fn notify(&self, class: u32, event: &str, key: &[u8]) {
        self.notify_db(class, event, key, self.client.db);
    }

    /// [`Ctx::notify`] for a key in another database (MOVE, COPY ... DB).
    #[inline]
    pub fn notify_db(&self, class: u32, event: &str, key: &[u8], db: usize) {
        // Every notification site is a modification (Redis pairs notifyKeyspaceEvent
        // with signalModifiedKey), so this is where WATCH learns of writes too, and
        // where the command's change count learns that it changed something.
        self.changes.touched.set(true);
        self.srv.watches.touch(db, key);
        self.srv.pubsub.notify(class, event, key, db);
    }

    /// A keyspace event Redis publishes without signalling the key as modified (the
    /// consumer-group events of streams, XSETID): WATCH is not touched.
    pub fn notify_event_only(&self, class: u32, event: &str, key: &[u8]) {
        self.changes.touched.set(true);
        self.srv.pubsub.notify(class, event, key, self.client.db);
    }

    /// A modification Redis signals without a keyspace event (PFCOUNT refreshing its
    /// cached cardinality): touches WATCHed keys only.
    pub fn modified(&self, key: &[u8]) {
        self.changes.touched.set(true);
        self.srv.watches.touch(self.client.db, key);
    }

    /// Marks where this command's reply goes among the notifications it publishes: the
    /// ones published so far precede it, later ones follow (Redis replies before
    /// notifying in LPOP, between the two events of LMOVE, ...). Only observable by a
    /// client subscribed to its own keyspace events over RESP3.
    pub fn reply_here(&mut self) {
        let outbox = &self.client.shared.outbox;
        let n = if outbox.has_queued() {
            outbox.queued_messages()
        } else {
            0
        };
        self.client.reply_at = Some(n);
    }

    /// Tells blocked clients that `key` in `db` may now let them proceed (a push, a
    /// rename onto it, ...). Cheap when nobody is blocked. Writers that may serve a
    /// consuming waiter (pushes, XADD, ZADD) call it before releasing the key, so a
    /// waiter re-running under that lock sees whose turn it is ([`Ctx::turn_ahead`]).
    pub fn signal_ready(&self, db: usize, key: &[u8]) {
        self.srv.blocking.signal(db, key);
    }

    /// For a blocked client's re-run (called under `key`'s lock): true if a waiter queued
    /// before it on `key` of the current database was signalled and has not finished its
    /// own re-run. The client then leaves what `key` holds to that one, which passes the
    /// turn on when done (`Registry::turn_ahead`): waiters are served in arrival order.
    pub fn turn_ahead(&self, key: &[u8]) -> bool {
        self.srv
            .blocking
            .turn_ahead(self.client.db, key, self.client.id)
    }
}

impl Server {
    /// Builds the server state from a loaded configuration.
    pub fn new(config: Config, config_file: Option<std::path::PathBuf>) -> Arc<Server> {
        let seed = unix_us() ^ u64::from(std::process::id()).rotate_left(32);
        basalt_engine::hashing::seed(seed.rotate_left(29) ^ 0xA076_1D64_78BD_642F);
        let keyspace = Keyspace::new(&KeyspaceConfig {
            shards: config.shards,
            databases: config.databases,
            hash_seed: seed,
            rng_seed: seed.rotate_left(17) ^ 0x5DEE_CE66_D1CE_4E5B,
        });
        let commands = CommandTable::build();
        // An expired or evicted key is a modified key for WATCH, and a DEL in the AOF.
        let watches = Arc::new(crate::transaction::Watches::default());
        let aof = Arc::new(crate::aof::Aof::default());
        aof.apply_config(&config);
        let w = watches.clone();
        let a = aof.clone();
        keyspace.set_removal_hook(Box::new(move |db, key, why| {
            w.touch(db, key);
            if a.is_on() {
                a.append_deleted(db, key, why);
            }
        }));
        let exec_id = commands.get(b"exec").map(|r| r.id).unwrap_or(usize::MAX);
        let cmd_stats = (0..commands.len()).map(|_| CmdStats::default()).collect();
        crate::ticks::init();
        let call_stats = CallStats::new(commands.len());
        let live = Live {
            maxclients: AtomicUsize::new(config.maxclients),
            timeout_secs: AtomicU64::new(config.timeout),
            max_bulk_len: AtomicU64::new(config.proto_max_bulk_len),
            max_multibulk_len: AtomicU64::new(config.proto_max_multibulk_len),
            query_buffer_limit: AtomicU64::new(config.client_query_buffer_limit),
            hz: AtomicU64::new(config.hz),
            active_expire_effort: AtomicU64::new(config.active_expire_effort),
            active_expire: AtomicBool::new(true),
            auth_required: AtomicBool::new(!config.requirepass.is_empty()),
            enc: EncCell::new(config.enc),
            maxmemory: AtomicU64::new(config.maxmemory),
            maxmemory_samples: AtomicU64::new(config.maxmemory_samples),
            eviction_tenacity: AtomicU64::new(config.maxmemory_eviction_tenacity),
        };
        if let Err(e) = keyspace.lazyfree().start() {
            // Without the thread every value is freed in place: slower, still correct.
            tracing::warn!("lazy free thread not started: {e}");
        }
        let pubsub = Arc::new(crate::pubsub::Hub::new());
        pubsub.set_limits(&config.client_obuf_limits);
        pubsub.set_notify_flags(config.notify_keyspace_events);
        keyspace.set_event_sink(pubsub.clone());
        keyspace.set_event_mask(crate::pubsub::Hub::key_event_mask(
            config.notify_keyspace_events,
        ));
        let scripting =
            crate::scripting::Scripting::new(config.busy_reply_threshold, config.lua_memory_limit);

        let (shutdown, _) = tokio::sync::watch::channel(false);
        let mut run_id = String::with_capacity(40);
        let mut x = seed | 1;
        for _ in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            run_id.push(char::from(b"0123456789abcdef"[(x & 15) as usize]));
        }
        let started_unix_ms = unix_ms();
        let srv = Arc::new_cyclic(|me| Server {
            keyspace,
            port: AtomicU64::new(u64::from(config.port)),
            config: RwLock::new(config),
            live,
            commands,
            cmd_stats,
            call_stats,
            error_stats: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            clients: Mutex::new(BTreeMap::new()),
            next_client_id: AtomicU64::new(1),
            started: Instant::now(),
            started_unix_ms,
            run_id,
            shutdown,
            pause: Mutex::new(Pause::default()),
            pause_until: AtomicU64::new(0),
            unpause: tokio::sync::Notify::new(),
            peak_memory: AtomicU64::new(0),
            metrics: crate::info::new_metrics(),
            config_file,
            executable: std::env::args().next().unwrap_or_default(),
            blocking: Arc::new(crate::blocking::Registry::default()),
            wake_timers: Arc::new(crate::blocking::Timers::default()),
            rl_policies: parking_lot::RwLock::new(Default::default()),
            schedules: parking_lot::RwLock::new(Default::default()),
            coord: crate::coord::Coord::default(),
            jobs: crate::jobs::Jobs::default(),
            watches,
            exec_gate: RwLock::new(()),
            gate_released: tokio::sync::Notify::new(),
            scripting,
            exec_id,
            persist: crate::persist::Persistence::new(started_unix_ms / 1000),
            aof,
            me: me.clone(),
            pubsub,
        });
        srv.apply_live_config();
        srv
    }

    /// A fresh client id.
    pub fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The request decoder limits currently configured.
    pub fn proto_limits(&self) -> Limits {
        Limits {
            max_bulk_len: self.live.max_bulk_len.load(Ordering::Relaxed),
            max_multibulk_len: self.live.max_multibulk_len.load(Ordering::Relaxed),
            ..Limits::default()
        }
    }

    /// Applies configuration values to the hot-path copies (after CONFIG SET).
    pub fn apply_live_config(&self) {
        let c = self.config.read();
        self.live.maxclients.store(c.maxclients, Ordering::Relaxed);
        self.live.timeout_secs.store(c.timeout, Ordering::Relaxed);
        self.live
            .max_bulk_len
            .store(c.proto_max_bulk_len, Ordering::Relaxed);
        self.live
            .max_multibulk_len
            .store(c.proto_max_multibulk_len, Ordering::Relaxed);
        self.live
            .query_buffer_limit
            .store(c.client_query_buffer_limit, Ordering::Relaxed);
        self.live.hz.store(c.hz, Ordering::Relaxed);
        self.live
            .active_expire_effort
            .store(c.active_expire_effort, Ordering::Relaxed);
        self.live
            .auth_required
            .store(!c.requirepass.is_empty(), Ordering::Relaxed);
        self.live.enc.set(c.enc);
        self.live.maxmemory.store(c.maxmemory, Ordering::Relaxed);
        self.live
            .maxmemory_samples
            .store(c.maxmemory_samples, Ordering::Relaxed);
        self.live
            .eviction_tenacity
            .store(c.maxmemory_eviction_tenacity, Ordering::Relaxed);
        let ks = &self.keyspace;
        if ks.policy() != c.maxmemory_policy.engine() {
            ks.set_policy(c.maxmemory_policy.engine(), unix_ms());
        }
        ks.set_lfu(
            c.lfu_log_factor.min(u64::from(u32::MAX)) as u32,
            c.lfu_decay_time.min(u64::from(u32::MAX)) as u32,
        );
        let flag = |on: bool, r: Reason| if on { r as u8 } else { 0 };
        ks.lazyfree().set_flags(
            flag(c.lazyfree_lazy_eviction, Reason::Eviction)
                | flag(c.lazyfree_lazy_expire, Reason::Expire)
                | flag(c.lazyfree_lazy_server_del, Reason::ServerDel)
                | flag(c.lazyfree_lazy_user_del, Reason::UserDel)
                | flag(c.lazyfree_lazy_user_flush, Reason::UserFlush),
        );
        self.pubsub.set_limits(&c.client_obuf_limits);
        self.pubsub.set_notify_flags(c.notify_keyspace_events);
        self.keyspace
            .set_event_mask(crate::pubsub::Hub::key_event_mask(c.notify_keyspace_events));
        self.scripting
            .configure(c.busy_reply_threshold, c.lua_memory_limit);
        crate::logging::set_level(c.loglevel.as_str());
        self.aof.apply_config(&c);
        drop(c);
        crate::persist::update_deny_writes(self);
    }

    /// Asks every connection and the accept loop to stop.
    pub fn request_shutdown(&self) {
        self.shutdown.send_replace(true);
        // Connection tasks wait on their attention flag, not on the watch.
        for c in self.clients.lock().values() {
            c.outbox.attention.signal();
        }
    }

    /// Counts an error reply in INFO errorstats.
    pub fn count_error(&self, e: &Error) {
        self.stats
            .total_error_replies
            .fetch_add(1, Ordering::Relaxed);
        *self
            .error_stats
            .lock()
            .entry(e.code().to_string())
            .or_insert(0) += 1;
    }

    /// Moves one counted error from `e`'s code to `code` (the reply that was sent
    /// differs from the refusal that was counted: a refused EXEC).
    fn recount_error(&self, e: &Error, code: &str) {
        let mut stats = self.error_stats.lock();
        if let Some(n) = stats.get_mut(e.code()) {
            *n -= 1;
            if *n == 0 {
                stats.remove(e.code());
            }
        }
        *stats.entry(code.to_string()).or_insert(0) += 1;
    }

    /// Looks the request's command up and checks arity and authentication. On refusal
    /// returns the error reply (already counted).
    pub fn prepare(&self, client: &Client, args: &[Bytes]) -> Result<&Resolved, Error> {
        let resolved = match self.commands.lookup(args) {
            Lookup::Found(r) => r,
            Lookup::Unknown => {
                let e = unknown_command(args);
                self.count_error(&e);
                return Err(e);
            }
            Lookup::UnknownSub(top) => {
                let e = crate::cmd::args::unknown_subcommand(top.cmd.name, &args[1]);
                self.cmd_stats[top.id]
                    .rejected
                    .fetch_add(1, Ordering::Relaxed);
                self.count_error(&e);
                return Err(e);
            }
        };
        let reject = |e: Error| {
            self.cmd_stats[resolved.id]
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            self.count_error(&e);
            Err(e)
        };
        if !resolved.cmd.arity_ok(args.len()) {
            return reject(Error::arity(&resolved.fullname));
        }
        if !client.authenticated
            && !resolved.cmd.has(flags::NO_AUTH)
            && self.live.auth_required.load(Ordering::Relaxed)
        {
            return reject(Error::msg(error::NOAUTH));
        }
        // After a failed background save (with save points and
        // stop-writes-on-bgsave-error), writes, PING and an EXEC with queued writes are
        // refused, as in Redis. A write is what the request runs as: EVAL and FCALL of a
        // script with flags write unless `no-writes`; a compat-mode script is refused
        // only when it calls a write (`scripting::run`).
        if self.persist.deny_writes.load(Ordering::Relaxed)
            && (resolved.cmd.flags_for(self, args) & flags::WRITE != 0
                || resolved.cmd.name == "ping"
                || (resolved.id == self.exec_id
                    && client.multi.as_ref().is_some_and(|m| m.has(flags::WRITE))))
        {
            return reject(Error::msg(crate::persist::misconf(self)));
        }
        // While the dataset loads at startup, only commands flagged `loading` run (the
        // loader's own client replays the AOF meanwhile).
        if self.persist.loading.load(Ordering::Acquire)
            && client.id != crate::client::LOADER_CLIENT_ID
            && !resolved.cmd.has(flags::LOADING)
        {
            return reject(Error::msg(error::LOADING));
        }
        // RESP2 subscribed mode: only the (un)subscribe commands, PING, QUIT and RESET.
        if client.proto == Protocol::Resp2 && client.subs.active() {
            let top = resolved.parent.unwrap_or(resolved.cmd).name;
            if !matches!(
                top,
                "subscribe"
                    | "unsubscribe"
                    | "psubscribe"
                    | "punsubscribe"
                    | "ssubscribe"
                    | "sunsubscribe"
                    | "elect.observe"
                    | "ping"
                    | "quit"
                    | "reset"
            ) {
                return reject(Error::msg(format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                    resolved.fullname
                )));
            }
        }
        Ok(resolved)
    }

    /// The `-BUSY` refusal for a command arriving while a script is busy (commands
    /// flagged `allow_busy` pass).
    pub fn busy_refusal(&self, resolved: &Resolved) -> Option<Error> {
        let busy = self.scripting.run.busy_error()?;
        if resolved.cmd.has(flags::ALLOW_BUSY) {
            return None;
        }
        Some(Error::msg(busy))
    }

    /// Runs a prepared command if the exec gate allows it now, and returns its reply
    /// (`None` when the client asked not to get it, CLIENT REPLY OFF/SKIP). Never blocks
    /// a worker thread for more than a moment: when a transaction or script holds the
    /// gate it answers [`Attempt::Wait`]; while a script is busy it refuses with `-BUSY`
    /// or, for `allow_busy` commands (SCRIPT KILL, SHUTDOWN, ...), runs without the gate.
    pub fn try_execute(
        &self,
        client: &mut Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Attempt {
        let run = &self.scripting.run;
        // A FUNCTION LOAD runs its library code under the gate held for reading: other
        // commands need not wait for it.
        if run.is_running() && !run.loading.load(Ordering::Relaxed) {
            if run.busy_error().is_some() {
                if let Some(e) = self.busy_refusal(resolved) {
                    self.cmd_stats[resolved.id]
                        .rejected
                        .fetch_add(1, Ordering::Relaxed);
                    self.count_error(&e);
                    return Attempt::Done(Some(e.into_frame()));
                }
                return Attempt::Done(self.call_replying(client, resolved, args, now));
            }
            return Attempt::Wait;
        }
        if resolved.cmd.has(flags::EXCLUSIVE) {
            let Some(gate) = self.exec_gate.try_write_for(GATE_SPIN) else {
                return Attempt::Wait;
            };
            let reply = self.call_replying(client, resolved, args, now);
            drop(gate);
            self.gate_released.notify_waiters();
            Attempt::Done(reply)
        } else {
            let Some(_gate) = self.exec_gate.try_read_for(GATE_SPIN) else {
                return Attempt::Wait;
            };
            Attempt::Done(self.call_replying(client, resolved, args, now))
        }
    }

    /// Runs a prepared command, waiting (blocking this thread) for the exec gate if
    /// needed. For callers outside a connection task (tests, embedders); connections
    /// use [`Server::try_execute`] and wait asynchronously.
    pub fn execute(
        &self,
        client: &mut Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Option<Frame> {
        loop {
            match self.try_execute(client, resolved, args, now) {
                Attempt::Done(r) => return r,
                Attempt::Wait => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    /// [`Server::call`] under the client's CLIENT REPLY mode.
    fn call_replying(
        &self,
        client: &mut Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Option<Frame> {
        if client.reply == ReplyMode::SkipNext {
            client.reply = ReplyMode::Skip;
        }
        let frame = self.call(client, resolved, args, now);
        match client.reply {
            ReplyMode::On => Some(frame),
            ReplyMode::Off => None,
            ReplyMode::Skip => {
                client.reply = ReplyMode::On;
                None
            }
            // SkipNext was set by this very command (CLIENT REPLY SKIP): its own reply is
            // not sent, as in Redis.
            ReplyMode::SkipNext => None,
        }
    }

    /// True when `maxmemory` is set and exceeded (scripts without `allow-oom` refuse).
    pub fn over_maxmemory(&self) -> bool {
        let max = self.live.maxmemory.load(Ordering::Relaxed);
        max > 0 && crate::evict::used_for_limit(self) > max
    }

    /// Commands executed (`total_commands_processed`): the sum of the per-command call
    /// counts, which grow exactly when it would.
    pub fn commands_processed(&self) -> u64 {
        self.call_stats.total_calls()
    }

    /// Runs a command's handler and counts it (Redis's `call`): the reply, with an
    /// error turned into its frame. EXEC runs its queued commands through here.
    pub fn call(
        &self,
        client: &mut Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Frame {
        let Some(handler) = resolved.cmd.handler else {
            // Containers resolve to a subcommand or fail arity; a container without a
            // handler reaching here is a table bug.
            let e = Error::arity(&resolved.fullname);
            self.count_error(&e);
            return e.into_frame();
        };
        // As in Redis, the client's last command is set before it runs (CLIENT LIST shows
        // `cmd=client|list` for the caller).
        client.shared.touch(now, resolved.id);
        // With the AOF on, writes run one at a time so their effects reach the log in
        // the order they happened (an EXEC's commands already run alone).
        let logging = self.aof.is_on();
        let writes = resolved.cmd.has(flags::WRITE) || resolved.cmd.has(flags::MAY_REPLICATE);
        // (An EXEC's commands already run alone; a script's run under its EVAL/FCALL's
        // hold of the order lock.)
        let _order = (logging && writes && !client.in_exec && !client.in_script)
            .then(|| self.aof.order.lock());
        let db_before = client.db;
        let start = crate::ticks::now();
        let result: CmdResult = {
            let mut ctx = Ctx {
                srv: self,
                client,
                now,
                fullname: &resolved.fullname,
                changes: Changes::default(),
                skipped_wrong: false,
            };
            let result = handler(&mut ctx, args);
            // Counted whatever the result, as Redis's `server.dirty` (a command that
            // fails changes nothing, so this is 0 then).
            self.persist.note_changes(ctx.changes.count());
            result
        };
        self.call_stats
            .record(resolved.id, crate::ticks::now().wrapping_sub(start));
        let effects = client.aof_effects.take();
        if logging && result.is_ok() {
            let cmds = match effects {
                Some(v) => v,
                None if resolved.cmd.has(flags::WRITE) => vec![args.to_vec()],
                None => Vec::new(),
            };
            if !cmds.is_empty() {
                match client.aof_exec.as_mut() {
                    Some(collected) => collected.extend(cmds.into_iter().map(|c| (db_before, c))),
                    None => {
                        let effects: Vec<(usize, Vec<Bytes>)> =
                            cmds.into_iter().map(|c| (db_before, c)).collect();
                        client.aof_seq = self.aof.append(&effects);
                    }
                }
            }
        }
        match result {
            Ok(f) => f,
            Err(e) => {
                self.cmd_stats[resolved.id]
                    .failed
                    .fetch_add(1, Ordering::Relaxed);
                if !std::mem::take(&mut client.error_counted) {
                    self.count_error(&e);
                }
                e.into_frame()
            }
        }
    }

    /// Redis's maxmemory step of `processCommand`: while over `maxmemory`, evict first;
    /// if nothing could be evicted, refuse (with the OOM error, already counted) a
    /// `denyoom` command, any command being queued in MULTI but the transaction ones,
    /// and an EXEC whose queue holds a `denyoom` command. Reads and deletes run.
    pub fn check_oom(
        &self,
        client: &Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Option<Error> {
        if self.live.maxmemory.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // Never between the commands of an EXEC or a script. A script may hold the gate
        // for long: rather than park this worker thread, skip evicting now (the command
        // then waits for the gate in `try_execute`, and is checked again next time).
        let gate = self.exec_gate.try_read_for(GATE_SPIN)?;
        let status = crate::evict::perform(self, now);
        drop(gate);
        if status != EvictStatus::Fail {
            return None;
        }
        let top = resolved.parent.unwrap_or(resolved.cmd);
        let refuse = match (&client.multi, top.name) {
            (Some(m), "exec") => m.has(flags::DENYOOM),
            (Some(_), "discard" | "multi" | "watch" | "unwatch" | "quit" | "reset") => false,
            (Some(_), _) => true,
            // EVAL and FCALL: a script with flags and neither `allow-oom` nor
            // `no-writes` is `denyoom` (Redis's `scriptFlagsToCmdFlags`).
            (None, _) => resolved.cmd.flags_for(self, args) & flags::DENYOOM != 0,
        };
        if !refuse {
            return None;
        }
        let e = Error::msg(error::OOM);
        self.cmd_stats[resolved.id]
            .rejected
            .fetch_add(1, Ordering::Relaxed);
        self.count_error(&e);
        Some(e)
    }

    /// Queues the command if the client is inside MULTI (every command but the ones
    /// that act on the transaction itself): returns the reply to send instead of
    /// running it (`+QUEUED`, or the error of a command that may not be queued).
    pub fn queue_in_multi(
        &self,
        client: &mut Client,
        resolved: &Resolved,
        args: &[Bytes],
        now: u64,
    ) -> Option<Frame> {
        let multi = client.multi.as_mut()?;
        let top = resolved.parent.unwrap_or(resolved.cmd);
        if matches!(
            top.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        ) {
            return None;
        }
        if resolved.cmd.has(flags::NO_MULTI) || top.has(flags::NO_MULTI) {
            multi.aborted = true;
            let e = Error::msg("ERR Command not allowed inside a transaction");
            self.cmd_stats[resolved.id]
                .rejected
                .fetch_add(1, Ordering::Relaxed);
            self.count_error(&e);
            return Some(e.into_frame());
        }
        multi.push(resolved.id, args, resolved.cmd.flags_for(self, args));
        let shared = &client.shared;
        // CLIENT LIST shows the last queued command, as Redis does.
        shared.touch(now, resolved.id);
        shared
            .multi
            .store(multi.queued.len() as i64, Ordering::Relaxed);
        shared.multi_mem.store(multi.mem, Ordering::Relaxed);
        Some(Frame::simple("QUEUED"))
    }

    /// The reply to a command refused before it ran (unknown, arity, authentication).
    /// Inside MULTI the refusal makes the transaction fail at EXEC; a refused EXEC
    /// discards the transaction with Redis's `EXECABORT ... because of:` reply.
    pub fn reject(&self, client: &mut Client, args: &[Bytes], e: Error) -> Frame {
        if !args[0].eq_ignore_ascii_case(b"exec") {
            if let Some(m) = client.multi.as_mut() {
                m.aborted = true;
            }
            return e.into_frame();
        }
        // As Redis's rejectCommand: a refused EXEC always answers EXECABORT, in MULTI
        // or not, and that is the error INFO errorstats counts (`execCommandAbort`
        // replies through addReplyErrorFormat). Every refusal reaching here was counted
        // under its own code where it was found: move that count.
        self.recount_error(&e, "EXECABORT");
        self.end_transaction(client);
        let msg = e.0.strip_prefix("ERR ").unwrap_or(&e.0);
        Frame::error(format!("EXECABORT Transaction discarded because of: {msg}"))
    }

    /// Leaves MULTI (if in it) and forgets the watched keys: EXEC, DISCARD, RESET.
    pub fn end_transaction(&self, client: &mut Client) -> Option<crate::transaction::MultiState> {
        let state = client.multi.take();
        client.shared.multi.store(-1, Ordering::Relaxed);
        client.shared.multi_mem.store(0, Ordering::Relaxed);
        self.watches.unwatch_all(&mut client.watch);
        state
    }

    /// How long a command must wait because of CLIENT PAUSE (0: not at all).
    pub fn pause_remaining(
        &self,
        resolved: &Resolved,
        args: &[Bytes],
        queued_writes: bool,
        now: u64,
    ) -> u64 {
        if self.pause_until.load(Ordering::Acquire) <= now {
            return 0;
        }
        let p = *self.pause.lock();
        if p.until <= now {
            return 0;
        }
        let affected = if p.write_only {
            // EVAL and FCALL take their script's flags: a compat-mode script may write
            // (`may-replicate`), a script with flags writes unless `no-writes`.
            resolved.cmd.flags_for(self, args) & (flags::WRITE | flags::MAY_REPLICATE) != 0
                || (resolved.id == self.exec_id && queued_writes)
        } else {
            true
        };
        if affected { p.until - now } else { 0 }
    }
}

/// `ERR unknown command 'x', with args beginning with: 'a' 'b' `
fn unknown_command(args: &[Bytes]) -> Error {
    let name: String = args
        .first()
        .map(|a| String::from_utf8_lossy(a).chars().take(128).collect())
        .unwrap_or_default();
    let mut rest = String::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        let s = String::from_utf8_lossy(a);
        let mut piece = String::new();
        for ch in s.chars() {
            if piece.len() + ch.len_utf8() > room {
                break;
            }
            piece.push(ch);
        }
        rest.push('\'');
        rest.push_str(&piece);
        rest.push_str("' ");
    }
    Error::msg(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_command_message_matches_redis() {
        let args = vec![
            Bytes::from_static(b"foo"),
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
        ];
        assert_eq!(
            unknown_command(&args).0,
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            unknown_command(&args[..1]).0,
            "ERR unknown command 'foo', with args beginning with: "
        );
    }
}
