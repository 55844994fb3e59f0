//! `basalt-bench evict-sim`: a trace-driven simulator of eviction policies on scenario
//! S5's workload, to choose and tune a policy before measuring it on real servers.
//!
//! The trace is S5's, phase by phase: a warm-up (`2 × requests`), a measurement
//! (`requests`), a one-shot scan of twice the keys held, and a second measurement. Zipf
//! phases draw keys exactly as `basalt-bench --key-pattern zipf:A` does (the same sampler,
//! the same scrambled ranks, 50 connections with their own streams, interleaved 16
//! requests at a time as a pipeline would), so the ranks' permutation changes with each
//! phase's seed like in the real runs. Each request is cache-aside: a GET, and on a miss
//! a SET of the key.
//!
//! The cache holds what fits in a byte budget: `budget / (bytes per key + the policy's
//! own bytes per key)` keys, so a policy pays for its queues, ghost tables and sketches
//! in keys it cannot hold, as it does under `maxmemory`.

use crate::keys::{KeyGen, KeyPattern};
use crate::rng::Rng;
use std::collections::VecDeque;

/// Arguments of `basalt-bench evict-sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Keys in the Zipf keyspace.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
    /// Keys a policy without metadata of its own holds (S5 at 32 MB: ~166k).
    #[arg(long, default_value_t = 166_000)]
    pub capacity: u64,
    /// Bytes one key costs besides any policy structure (node, name, value, bucket).
    #[arg(long, default_value_t = 200)]
    pub key_bytes: u64,
    /// Cache-aside operations of a measurement (the warm-up does twice as many).
    #[arg(long, default_value_t = 300_000)]
    pub requests: u64,
    /// Zipf exponents.
    #[arg(long, default_value = "0.99,0.8", value_delimiter = ',')]
    pub alphas: Vec<f64>,
    /// Runs per exponent (seeds as in S5: run*10+1, +2, +3).
    #[arg(long, default_value_t = 3)]
    pub runs: u64,
    /// Policies to simulate (see `--help` of each name in the module docs).
    #[arg(
        long,
        default_value = "lru,redis-lru,redis-lfu,s3fifo,wtinylfu,tinylfu",
        value_delimiter = ','
    )]
    pub policies: Vec<String>,
    /// Requests per second the server serves, for the one-second LRU clock of the
    /// sampled policies.
    #[arg(long, default_value_t = 150_000)]
    pub ops_per_sec: u64,
    /// Bytes of Basalt's keyspace accounting (`basalt_keyspace_bytes`: keys, values,
    /// tables, eviction structures) the `engine:POLICY` runs may use: what a real
    /// basalt-server held at rest under S5 at `maxmemory 32mb`.
    #[arg(long, default_value_t = 31_700_000)]
    pub engine_budget: u64,
    /// Keep the Zipf ranks' permutation of the warm-up for every phase (a stable
    /// popularity), instead of S5's permutation per phase seed.
    #[arg(long)]
    pub stable_ranks: bool,
}

/// Runs the simulation and prints one line per policy and exponent.
pub fn main(a: &SimArgs) -> anyhow::Result<()> {
    println!(
        "# evict-sim: {} keys, budget {} keys x {} B, {} requests per measurement, {} runs{}",
        a.keys,
        a.capacity,
        a.key_bytes,
        a.requests,
        a.runs,
        if a.stable_ranks { ", stable ranks" } else { "" }
    );
    println!(
        "{:<34} {:>6} {:>9} {:>9} {:>7} {:>9}",
        "policy", "zipf", "hit %", "scan %", "drop", "keys"
    );
    for &alpha in &a.alphas {
        let traces: Vec<Trace> = (0..a.runs).map(|r| Trace::new(a, alpha, r)).collect();
        if !a.stable_ranks {
            // Each phase ranks the keys by a new permutation, so what a cache holds when
            // a measurement starts is independent of that phase's popularity: every first
            // reference of the phase misses unless its key is held by chance (capacity /
            // keys). No policy can expect more hits than this.
            let bound = |ph: &[u32]| {
                let mut seen = vec![false; a.keys as usize];
                let distinct = ph
                    .iter()
                    .filter(|&&k| !std::mem::replace(&mut seen[k as usize], true))
                    .count();
                let by_chance = a.capacity as f64 / a.keys as f64;
                1.0 - distinct as f64 * (1.0 - by_chance) / ph.len() as f64
            };
            let b1: Vec<f64> = traces.iter().map(|t| bound(&t.m1)).collect();
            let b2: Vec<f64> = traces.iter().map(|t| bound(&t.m2)).collect();
            let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            println!(
                "{:<34} {:>6} {:>8.2}% {:>8.2}% {:>7} {:>9}",
                "(bound for any policy)",
                alpha,
                100.0 * avg(&b1),
                100.0 * avg(&b2),
                "",
                a.capacity
            );
        }
        for p in &a.policies {
            let mut hits = Vec::new();
            for t in &traces {
                let mut pol = make(p, a).map_err(anyhow::Error::msg)?;
                hits.push(t.run(pol.as_mut(), a));
            }
            let med = |i: usize| {
                let mut v: Vec<f64> = hits.iter().map(|h| h[i]).collect();
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            println!(
                "{:<34} {:>6} {:>8.2}% {:>8.2}% {:>7.2} {:>9.0}",
                p,
                alpha,
                100.0 * med(0),
                100.0 * med(1),
                100.0 * (med(0) - med(1)),
                med(2)
            );
        }
    }
    Ok(())
}

/// The Zipf phases of one run (the scan is generated when its length is known).
struct Trace {
    warm: Vec<u32>,
    m1: Vec<u32>,
    m2: Vec<u32>,
}

impl Trace {
    fn new(a: &SimArgs, alpha: f64, run: u64) -> Trace {
        let gen_phase = |seed: u64, scramble_seed: u64, n: u64| -> Vec<u32> {
            const CONNS: u64 = 50;
            let mut gens: Vec<(KeyGen, Rng, u64)> = (0..CONNS)
                .map(|id| {
                    let quota = n / CONNS + u64::from(id < n % CONNS);
                    (
                        KeyGen::new(&KeyPattern::Zipf(alpha), a.keys, scramble_seed, id, CONNS)
                            .expect("valid zipf"),
                        Rng::for_stream(seed, id),
                        quota,
                    )
                })
                .collect();
            let mut out = Vec::with_capacity(n as usize);
            while out.len() < n as usize {
                for (g, rng, q) in gens.iter_mut() {
                    for _ in 0..16 {
                        if *q == 0 {
                            break;
                        }
                        *q -= 1;
                        out.push(g.next(rng) as u32);
                    }
                }
            }
            out
        };
        let s = |i: u64| run * 10 + i;
        let perm = |i: u64| if a.stable_ranks { s(1) } else { s(i) };
        Trace {
            warm: gen_phase(s(1), perm(1), 2 * a.requests),
            m1: gen_phase(s(2), perm(2), a.requests),
            m2: gen_phase(s(3), perm(3), a.requests),
        }
    }

    /// Hit ratio of the first measurement, of the one after the scan, and the keys held.
    fn run(&self, p: &mut dyn SimPolicy, a: &SimArgs) -> [f64; 3] {
        let mut clock = 0u64;
        let mut phase = |keys: &mut dyn Iterator<Item = u32>, p: &mut dyn SimPolicy| {
            let (mut hits, mut n) = (0u64, 0u64);
            for k in keys {
                let now = (clock / a.ops_per_sec) as u32;
                clock += 1;
                n += 1;
                if p.get(k, now) {
                    hits += 1;
                } else {
                    p.set(k, now);
                }
            }
            hits as f64 / n.max(1) as f64
        };
        phase(&mut self.warm.iter().copied(), p);
        let h1 = phase(&mut self.m1.iter().copied(), p);
        let held = p.len() as u32;
        let base = a.keys as u32;
        phase(&mut (base..base + 2 * held), p);
        let h2 = phase(&mut self.m2.iter().copied(), p);
        [h1, h2, f64::from(held)]
    }
}

/// A simulated policy over key ids.
trait SimPolicy {
    /// A GET: true on a hit.
    fn get(&mut self, k: u32, now: u32) -> bool;
    /// The SET after a miss (the key is not held); evicts down to capacity.
    fn set(&mut self, k: u32, now: u32);
    /// Keys held.
    fn len(&self) -> usize;
}

/// Key ids cover the Zipf keyspace and the scan keys after it.
fn id_space(a: &SimArgs) -> usize {
    (a.keys + 4 * a.capacity + 1024) as usize
}

/// Keys a policy holds when it costs `extra` bytes per key.
fn capacity(a: &SimArgs, extra: f64) -> usize {
    ((a.capacity * a.key_bytes) as f64 / (a.key_bytes as f64 + extra)) as usize
}

fn make(name: &str, a: &SimArgs) -> Result<Box<dyn SimPolicy>, String> {
    let (base, params) = name.split_once(':').unwrap_or((name, ""));
    // `engine:POLICY[:k=v...]` names a Basalt policy before its parameters.
    let (engine_policy, params) = if base == "engine" {
        params.split_once(':').unwrap_or((params, ""))
    } else {
        ("", params)
    };
    let param = |key: &str, default: f64| -> Result<f64, String> {
        for kv in params.split(':').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("bad policy parameter {kv:?} in {name:?}"))?;
            if k == key {
                return v
                    .parse()
                    .map_err(|_| format!("bad value {v:?} for {k} in {name:?}"));
            }
        }
        Ok(default)
    };
    Ok(match base {
        "lru" => Box::new(ExactLru::new(a, capacity(a, 0.0))),
        "redis-lru" => Box::new(Sampled::new(
            a,
            capacity(a, 0.0),
            false,
            param("samples", 5.0)? as usize,
        )),
        "redis-lfu" => Box::new(Sampled::new(
            a,
            capacity(a, 0.0),
            true,
            param("samples", 5.0)? as usize,
        )),
        "s3fifo" => Box::new(S3Fifo::new(
            a,
            capacity(a, param("bytes", 10.0)?),
            param("small", 10.0)? as usize,
            None,
        )),
        "s3fifo-sketch" => {
            // The ghost table replaced by a sketch: a new key whose estimate reaches
            // `admit` goes straight to main.
            let cpk = param("cpk", 4.0)?;
            let cap = capacity(a, 8.0 * 1.1 + cpk / 2.0);
            let sk = Sketch::new(cap, cpk, param("age", 10.0)?);
            Box::new(S3Fifo::new(
                a,
                cap,
                param("small", 10.0)? as usize,
                Some((sk, param("admit", 2.0)? as u8)),
            ))
        }
        "wtinylfu" => {
            let cpk = param("cpk", 4.0)?;
            let cap = capacity(a, cpk / 2.0 + param("bytes", 8.0)?);
            Box::new(WTinyLfu::new(a, cap, param("window", 0.01)?, cpk))
        }
        "tinylfu" => {
            let cpk = param("cpk", 4.0)?;
            let window = param("window", 0.01)?;
            // The window ring holds 8-byte hashes for `window` of the keys.
            let cap = capacity(a, cpk / 2.0 + 8.0 * window);
            Box::new(SampledTinyLfu::new(
                a,
                cap,
                window,
                cpk,
                param("samples", 5.0)? as usize,
                param("pool", 16.0)? as usize,
                param("age", 10.0)?,
            ))
        }
        "engine" => Box::new(EngineSim::new(
            a,
            engine_policy,
            param("budget", a.engine_budget as f64)? as usize,
        )?),
        other => return Err(format!("unknown policy {other:?}")),
    })
}

/// Basalt's own keyspace and eviction code (`basalt_engine`), driven like the server
/// does: a read lookup per GET, an insert per SET, then eviction while the keyspace's
/// accounting is over the budget. The clock is the trace's (one second per
/// `--ops-per-sec` requests); keys are named as basalt-bench names them.
struct EngineSim {
    ks: basalt_engine::Keyspace,
    budget: usize,
    zipf_keys: u32,
    name: Vec<u8>,
    value: basalt_engine::Value,
}

impl EngineSim {
    fn new(a: &SimArgs, policy: &str, budget: usize) -> Result<EngineSim, String> {
        let p = (0..16)
            .map(basalt_engine::Policy::from_index)
            .find(|p| p.name() == policy)
            .ok_or_else(|| format!("engine: unknown maxmemory-policy {policy:?}"))?;
        let ks = basalt_engine::Keyspace::new(&basalt_engine::KeyspaceConfig {
            shards: 64,
            databases: 1,
            hash_seed: 0x5EED,
            rng_seed: 0x5A3D,
        });
        ks.set_policy(p, 0);
        Ok(EngineSim {
            ks,
            budget,
            zipf_keys: a.keys as u32,
            name: Vec::new(),
            value: basalt_engine::Value::Str(basalt_engine::StrValue::from_bytes(&[b'v'; 100])),
        })
    }

    fn name(&mut self, k: u32) {
        self.name.clear();
        if k < self.zipf_keys {
            crate::keys::format_key(&mut self.name, b"key:", u64::from(k), 0);
        } else {
            crate::keys::format_key(&mut self.name, b"scan:", u64::from(k - self.zipf_keys), 0);
        }
    }
}

impl SimPolicy for EngineSim {
    fn get(&mut self, k: u32, now: u32) -> bool {
        self.name(k);
        let now = u64::from(now) * 1000;
        let mut g = self.ks.lock_key(&self.name, now);
        g.lookup_read(0, &self.name).is_some()
    }
    fn set(&mut self, k: u32, now: u32) {
        self.name(k);
        let now = u64::from(now) * 1000;
        let mut g = self.ks.lock_key(&self.name, now);
        g.insert(0, &self.name, self.value.clone(), 0);
        drop(g);
        let used = self.ks.used_bytes();
        if used > self.budget {
            self.ks.evict(used - self.budget, now, 5, || true);
        }
    }
    fn len(&self) -> usize {
        self.ks.db_sizes()[0].0
    }
}

/// Keys held, with O(1) random sampling.
struct Held {
    keys: Vec<u32>,
    pos: Vec<u32>,
}

const NONE: u32 = u32::MAX;

impl Held {
    fn new(ids: usize) -> Held {
        Held {
            keys: Vec::new(),
            pos: vec![NONE; ids],
        }
    }
    fn has(&self, k: u32) -> bool {
        self.pos[k as usize] != NONE
    }
    fn add(&mut self, k: u32) {
        self.pos[k as usize] = self.keys.len() as u32;
        self.keys.push(k);
    }
    fn remove(&mut self, k: u32) {
        let i = self.pos[k as usize] as usize;
        self.pos[k as usize] = NONE;
        let last = self.keys.pop().expect("held");
        if i < self.keys.len() {
            self.keys[i] = last;
            self.pos[last as usize] = i as u32;
        }
    }
    fn sample(&self, rng: &mut Rng) -> u32 {
        self.keys[rng.below(self.keys.len() as u64) as usize]
    }
}

/// Exact LRU (reference): a doubly linked list over key ids.
struct ExactLru {
    cap: usize,
    len: usize,
    prev: Vec<u32>,
    next: Vec<u32>,
    head: u32,
    tail: u32,
    held: Vec<bool>,
}

impl ExactLru {
    fn new(a: &SimArgs, cap: usize) -> ExactLru {
        let n = id_space(a);
        ExactLru {
            cap,
            len: 0,
            prev: vec![NONE; n],
            next: vec![NONE; n],
            head: NONE,
            tail: NONE,
            held: vec![false; n],
        }
    }
    fn unlink(&mut self, k: u32) {
        let (p, n) = (self.prev[k as usize], self.next[k as usize]);
        if p == NONE {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NONE {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }
    fn push_front(&mut self, k: u32) {
        self.prev[k as usize] = NONE;
        self.next[k as usize] = self.head;
        if self.head != NONE {
            self.prev[self.head as usize] = k;
        }
        self.head = k;
        if self.tail == NONE {
            self.tail = k;
        }
    }
}

impl SimPolicy for ExactLru {
    fn get(&mut self, k: u32, _now: u32) -> bool {
        if !self.held[k as usize] {
            return false;
        }
        self.unlink(k);
        self.push_front(k);
        true
    }
    fn set(&mut self, k: u32, _now: u32) {
        self.held[k as usize] = true;
        self.push_front(k);
        self.len += 1;
        while self.len > self.cap {
            let t = self.tail;
            self.unlink(t);
            self.held[t as usize] = false;
            self.len -= 1;
        }
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// Redis's sampled LRU or LFU: `samples` keys per eviction into a pool of 16.
struct Sampled {
    cap: usize,
    lfu: bool,
    samples: usize,
    held: Held,
    /// LRU: last access second; LFU: the logarithmic counter.
    meta: Vec<u32>,
    pool: Vec<(u64, u32)>,
    rng: Rng,
}

impl Sampled {
    fn new(a: &SimArgs, cap: usize, lfu: bool, samples: usize) -> Sampled {
        let n = id_space(a);
        Sampled {
            cap,
            lfu,
            samples,
            held: Held::new(n),
            meta: vec![0; n],
            pool: Vec::new(),
            rng: Rng::new(7),
        }
    }
    fn score(&self, k: u32, now: u32) -> u64 {
        if self.lfu {
            255 - u64::from(self.meta[k as usize])
        } else {
            u64::from(now - self.meta[k as usize])
        }
    }
}

impl SimPolicy for Sampled {
    fn get(&mut self, k: u32, now: u32) -> bool {
        if !self.held.has(k) {
            return false;
        }
        if self.lfu {
            let c = self.meta[k as usize] as u8;
            let r = self.rng.next_f64();
            self.meta[k as usize] = u32::from(basalt_lfu_incr(c, r));
        } else {
            self.meta[k as usize] = now;
        }
        true
    }
    fn set(&mut self, k: u32, now: u32) {
        self.held.add(k);
        self.meta[k as usize] = if self.lfu { 5 } else { now };
        while self.held.keys.len() > self.cap {
            for _ in 0..self.samples {
                let c = self.held.sample(&mut self.rng);
                let sc = self.score(c, now);
                if self.pool.iter().any(|p| p.1 == c) {
                    continue;
                }
                if self.pool.len() == 16 && self.pool[0].0 >= sc {
                    continue;
                }
                let at = self.pool.partition_point(|p| p.0 < sc);
                self.pool.insert(at, (sc, c));
                if self.pool.len() > 16 {
                    self.pool.remove(0);
                }
            }
            while let Some((_, c)) = self.pool.pop() {
                if self.held.has(c) {
                    self.held.remove(c);
                    break;
                }
            }
        }
    }
    fn len(&self) -> usize {
        self.held.keys.len()
    }
}

/// Redis's LFU increment with `lfu-log-factor 10`.
fn basalt_lfu_incr(c: u8, r: f64) -> u8 {
    if c == 255 {
        return 255;
    }
    let base = f64::from(c.saturating_sub(5));
    if r < 1.0 / (base * 10.0 + 1.0) {
        c + 1
    } else {
        c
    }
}

/// S3-FIFO as `allkeys-s3fifo` does it: small 10%, main with a 2-bit counter, ghost of
/// fingerprints the size of main.
struct S3Fifo {
    cap: usize,
    small_percent: usize,
    sketch: Option<(Sketch, u8)>,
    small: VecDeque<u32>,
    main: VecDeque<u32>,
    ghost: Vec<u32>,
    /// 0: not held; 1: small; 2: main.
    queue: Vec<u8>,
    freq: Vec<u8>,
}

impl S3Fifo {
    fn new(a: &SimArgs, cap: usize, small_percent: usize, sketch: Option<(Sketch, u8)>) -> S3Fifo {
        let n = id_space(a);
        S3Fifo {
            cap,
            small_percent,
            sketch,
            small: VecDeque::new(),
            main: VecDeque::new(),
            // As Basalt's: one slot per main-queue key.
            ghost: vec![NONE; (cap * (100 - small_percent) / 100).max(1)],
            queue: vec![0; n],
            freq: vec![0; n],
        }
    }
    fn slot(&self, k: u32) -> usize {
        ((u128::from(mix(u64::from(k))) * self.ghost.len() as u128) >> 64) as usize
    }
}

impl SimPolicy for S3Fifo {
    fn get(&mut self, k: u32, _now: u32) -> bool {
        if let Some((sk, _)) = self.sketch.as_mut() {
            sk.add(k);
        }
        if self.queue[k as usize] == 0 {
            return false;
        }
        self.freq[k as usize] = (self.freq[k as usize] + 1).min(3);
        true
    }
    fn set(&mut self, k: u32, _now: u32) {
        let s = self.slot(k);
        self.freq[k as usize] = 0;
        let seen = match &self.sketch {
            Some((sk, admit)) => sk.estimate(k) >= *admit,
            None => self.ghost[s] == k,
        };
        if seen {
            self.ghost[s] = NONE;
            self.queue[k as usize] = 2;
            self.main.push_back(k);
        } else {
            self.queue[k as usize] = 1;
            self.small.push_back(k);
        }
        while self.small.len() + self.main.len() > self.cap {
            let from_small = !self.small.is_empty()
                && self.small.len() * 100 >= self.cap * self.small_percent
                || self.main.is_empty();
            if from_small {
                let v = self.small.pop_front().expect("small");
                if self.freq[v as usize] >= 1 {
                    self.freq[v as usize] = 0;
                    self.queue[v as usize] = 2;
                    self.main.push_back(v);
                } else {
                    self.queue[v as usize] = 0;
                    let s = self.slot(v);
                    self.ghost[s] = v;
                }
            } else {
                let v = self.main.pop_front().expect("main");
                if self.freq[v as usize] > 0 {
                    self.freq[v as usize] -= 1;
                    self.main.push_back(v);
                } else {
                    self.queue[v as usize] = 0;
                }
            }
        }
    }
    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }
}

fn mix(x: u64) -> u64 {
    crate::rng::SplitMix64::new(x).next_u64()
}

/// A count-min sketch of 4-bit counters, 4 rows, `cpk / 4` counters per row per key,
/// halved after `age × keys` increments.
struct Sketch {
    rows: [Vec<u8>; 4],
    width: u64,
    adds: u64,
    period: u64,
}

impl Sketch {
    fn new(keys: usize, cpk: f64, age: f64) -> Sketch {
        let width = ((keys as f64 * cpk / 4.0) as u64).max(16);
        let row = || vec![0u8; width as usize];
        Sketch {
            rows: [row(), row(), row(), row()],
            width,
            adds: 0,
            period: (age * keys as f64) as u64,
        }
    }
    fn idx(&self, h: u64, r: usize) -> usize {
        let x = h
            .rotate_left(16 * r as u32)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((u128::from(x) * u128::from(self.width)) >> 64) as usize
    }
    fn estimate(&self, k: u32) -> u8 {
        let h = mix(u64::from(k) ^ 0xABCD);
        (0..4)
            .map(|r| self.rows[r][self.idx(h, r)])
            .min()
            .unwrap_or(0)
    }
    fn add(&mut self, k: u32) {
        let h = mix(u64::from(k) ^ 0xABCD);
        // Conservative update: only the counters at the minimum grow.
        let m = self.estimate(k);
        if m < 15 {
            for r in 0..4 {
                let i = self.idx(h, r);
                if self.rows[r][i] == m {
                    self.rows[r][i] += 1;
                }
            }
        }
        self.adds += 1;
        if self.adds >= self.period {
            self.adds = 0;
            for row in self.rows.iter_mut() {
                for c in row.iter_mut() {
                    *c >>= 1;
                }
            }
        }
    }
}

/// Caffeine's W-TinyLFU (reference): LRU window, SLRU main (20% probation, 80%
/// protected), admission by the sketch.
struct WTinyLfu {
    wcap: usize,
    pcap: usize,
    cap: usize,
    lists: [ExactLru; 3],
    /// 0 none, 1 window, 2 probation, 3 protected.
    at: Vec<u8>,
    sketch: Sketch,
}

impl WTinyLfu {
    fn new(a: &SimArgs, cap: usize, window: f64, cpk: f64) -> WTinyLfu {
        let wcap = ((cap as f64 * window) as usize).max(1);
        let mk = || ExactLru::new(a, usize::MAX);
        WTinyLfu {
            wcap,
            pcap: (cap - wcap) * 8 / 10,
            cap,
            lists: [mk(), mk(), mk()],
            at: vec![0; id_space(a)],
            sketch: Sketch::new(cap, cpk, 10.0),
        }
    }
    fn take(&mut self, l: usize, k: u32) {
        self.lists[l].unlink(k);
        self.lists[l].len -= 1;
    }
    fn put(&mut self, l: usize, k: u32) {
        self.lists[l].push_front(k);
        self.lists[l].len += 1;
        self.at[k as usize] = l as u8 + 1;
    }
}

impl SimPolicy for WTinyLfu {
    fn get(&mut self, k: u32, _now: u32) -> bool {
        self.sketch.add(k);
        match self.at[k as usize] {
            0 => false,
            1 => {
                self.take(0, k);
                self.put(0, k);
                true
            }
            2 => {
                self.take(1, k);
                self.put(2, k);
                while self.lists[2].len > self.pcap {
                    let t = self.lists[2].tail;
                    self.take(2, t);
                    self.put(1, t);
                }
                true
            }
            _ => {
                self.take(2, k);
                self.put(2, k);
                true
            }
        }
    }
    fn set(&mut self, k: u32, _now: u32) {
        self.put(0, k);
        while self.lists[0].len > self.wcap {
            let c = self.lists[0].tail;
            self.take(0, c);
            self.put(1, c);
            if self.len() <= self.cap {
                continue;
            }
            // Candidate c against the probation victim.
            let v = self.lists[1].tail;
            let v = if v == c {
                self.lists[1].prev[c as usize]
            } else {
                v
            };
            let loser = if v == NONE || self.sketch.estimate(c) > self.sketch.estimate(v) {
                v
            } else {
                c
            };
            let loser = if loser == NONE { c } else { loser };
            self.take(1, loser);
            self.at[loser as usize] = 0;
        }
        while self.len() > self.cap {
            let l = if self.lists[1].len > 0 { 1 } else { 2 };
            let t = self.lists[l].tail;
            self.take(l, t);
            self.at[t as usize] = 0;
        }
    }
    fn len(&self) -> usize {
        self.lists.iter().map(|l| l.len).sum()
    }
}

/// The candidate for Basalt: no per-key queue. New keys enter a small FIFO window (a
/// ring of hashes); when the window is over its share, its oldest key is the candidate
/// and the main victim is the key of lowest sketch frequency among sampled keys (pool of
/// candidates kept across evictions, re-scored when used); the candidate takes the
/// victim's place only if it is more frequent.
struct SampledTinyLfu {
    cap: usize,
    wcap: usize,
    samples: usize,
    pool_size: usize,
    held: Held,
    in_window: Vec<bool>,
    window: VecDeque<u32>,
    window_live: usize,
    last: Vec<u32>,
    sketch: Sketch,
    pool: Vec<u32>,
    rng: Rng,
}

impl SampledTinyLfu {
    fn new(
        a: &SimArgs,
        cap: usize,
        window: f64,
        cpk: f64,
        samples: usize,
        pool: usize,
        age: f64,
    ) -> SampledTinyLfu {
        let n = id_space(a);
        SampledTinyLfu {
            cap,
            wcap: ((cap as f64 * window) as usize).max(1),
            samples,
            pool_size: pool,
            held: Held::new(n),
            in_window: vec![false; n],
            window: VecDeque::new(),
            window_live: 0,
            last: vec![0; n],
            sketch: Sketch::new(cap, cpk, age),
            pool: Vec::new(),
            rng: Rng::new(11),
        }
    }

    /// Lower is a better victim: frequency first, then the older access.
    fn score(&self, k: u32) -> (u8, u32) {
        (self.sketch.estimate(k), self.last[k as usize])
    }

    /// The main queue's victim (sampled), not removed.
    fn victim(&mut self) -> Option<u32> {
        for _ in 0..self.samples {
            let c = self.held.sample(&mut self.rng);
            if self.in_window[c as usize] || self.pool.contains(&c) {
                continue;
            }
            self.pool.push(c);
        }
        self.pool.retain(|&c| self.held.has(c));
        let mut scored: Vec<((u8, u32), u32)> =
            self.pool.iter().map(|&c| (self.score(c), c)).collect();
        scored.sort_unstable();
        scored.truncate(self.pool_size.max(1));
        self.pool = scored.iter().map(|s| s.1).collect();
        self.pool.first().copied()
    }

    fn evict(&mut self, k: u32) {
        self.held.remove(k);
        self.pool.retain(|&c| c != k);
    }
}

impl SimPolicy for SampledTinyLfu {
    fn get(&mut self, k: u32, now: u32) -> bool {
        self.sketch.add(k);
        if !self.held.has(k) {
            return false;
        }
        self.last[k as usize] = now;
        true
    }
    fn set(&mut self, k: u32, now: u32) {
        self.held.add(k);
        self.last[k as usize] = now;
        self.in_window[k as usize] = true;
        self.window.push_back(k);
        self.window_live += 1;
        while self.held.keys.len() > self.cap {
            if self.window_live > self.wcap {
                let c = self.window.pop_front().expect("window");
                if !self.in_window[c as usize] {
                    continue;
                }
                self.in_window[c as usize] = false;
                self.window_live -= 1;
                let main = self.held.keys.len() - self.window_live - 1;
                if main < self.cap - self.wcap {
                    continue; // main has room: c joins it
                }
                match self.victim() {
                    Some(v) if self.sketch.estimate(c) > self.sketch.estimate(v) => self.evict(v),
                    _ => self.evict(c),
                }
            } else if let Some(v) = self.victim() {
                self.evict(v);
            } else {
                let c = self.window.pop_front().expect("window");
                self.in_window[c as usize] = false;
                self.window_live -= 1;
                self.evict(c);
            }
        }
        let _ = now;
    }
    fn len(&self) -> usize {
        self.held.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(keys: u64, capacity: u64, requests: u64, stable: bool) -> SimArgs {
        SimArgs {
            keys,
            capacity,
            key_bytes: 200,
            requests,
            alphas: vec![0.99],
            runs: 1,
            policies: vec![],
            ops_per_sec: 150_000,
            engine_budget: 31_700_000,
            stable_ranks: stable,
        }
    }

    #[test]
    fn exact_lru_evicts_the_least_recently_used() {
        let a = args(100, 2, 10, false);
        let mut p = ExactLru::new(&a, 2);
        p.set(1, 0);
        p.set(2, 0);
        assert!(p.get(1, 0));
        p.set(3, 0); // evicts 2, the least recently used
        assert!(!p.get(2, 0));
        assert!(p.get(1, 0) && p.get(3, 0));
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn sketch_never_underestimates_and_ages() {
        let mut sk = Sketch::new(1000, 4.0, 10.0);
        for k in 0..1000u32 {
            for _ in 0..(k % 5) {
                sk.add(k);
            }
        }
        assert!((0..1000u32).all(|k| u32::from(sk.estimate(k)) >= k % 5));
        let before = sk.estimate(4);
        // The period is 10 x 1000 additions: reaching it halves every counter.
        let done = sk.adds;
        for _ in done..sk.period {
            sk.add(999_999);
        }
        assert_eq!(sk.adds, 0);
        assert!(sk.estimate(4) <= before / 2 + 1, "{}", sk.estimate(4));
    }

    #[test]
    fn capacity_pays_for_the_policy_metadata() {
        let a = args(1000, 1000, 10, false);
        assert_eq!(capacity(&a, 0.0), 1000);
        assert_eq!(capacity(&a, 20.0), 909);
        assert!(make("s3fifo:bytes=x", &a).is_err());
        assert!(make("nope", &a).is_err());
    }

    /// On a stable popularity a scan of twice the cache flushes LRU, while S3-FIFO keeps
    /// its hot keys.
    #[test]
    fn scans_flush_lru_not_s3fifo() {
        let a = args(200_000, 20_000, 60_000, true);
        let t = Trace::new(&a, 0.99, 0);
        let lru = t.run(make("lru", &a).unwrap().as_mut(), &a);
        let s3 = t.run(make("s3fifo", &a).unwrap().as_mut(), &a);
        assert!(lru[0] - lru[1] > 0.05, "{lru:?}");
        assert!(s3[0] - s3[1] < 0.02, "{s3:?}");
        // S3-FIFO pays for its queues and ghost in keys.
        assert_eq!(lru[2], 20_000.0);
        assert!(s3[2] < 20_000.0);
    }

    /// Basalt's own code behaves like its model: the engine's S3-FIFO keeps its hot keys
    /// through a scan and its LRU does not, within the byte budget.
    #[test]
    fn engine_policies_match_the_models() {
        let a = args(200_000, 20_000, 60_000, true);
        let t = Trace::new(&a, 0.99, 0);
        let budget = ":budget=3800000";
        let lru = t.run(
            make(&format!("engine:allkeys-lru{budget}"), &a)
                .unwrap()
                .as_mut(),
            &a,
        );
        let s3 = t.run(
            make(&format!("engine:allkeys-s3fifo{budget}"), &a)
                .unwrap()
                .as_mut(),
            &a,
        );
        assert!(lru[0] - lru[1] > 0.05, "{lru:?}");
        assert!(s3[0] - s3[1] < 0.02, "{s3:?}");
        assert!(s3[2] < lru[2] && lru[2] > 15_000.0, "{lru:?} {s3:?}");
        assert!(make("engine:allkeys-nope", &a).is_err());
    }
}
