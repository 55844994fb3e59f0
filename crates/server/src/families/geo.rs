//! The geo family: GEOADD, GEOPOS, GEODIST, GEOHASH, GEOSEARCH, GEOSEARCHSTORE and the
//! deprecated GEORADIUS, GEORADIUSBYMEMBER and their `_RO` forms.
//!
//! A geo index is a plain sorted set whose scores are 52-bit geohashes
//! (`basalt_engine::geo` does the arithmetic); these handlers parse arguments in Redis
//! 7.0's order (geo.c), so the same bad request gets the same error, collect the
//! candidates of the nine search cells in the order Redis visits them, and sort them as
//! Redis does: a stable sort when every match is returned, and Redis's partial quicksort
//! (`crate::families::sort::partial_sort`) under COUNT, which decides the order of
//! members at equal distance. Distances print with `%.4f` as bulk strings in both
//! protocols, coordinates with `%.17Lf` trimmed (RESP3 doubles), as redis-server 7.0.15
//! does.

use crate::cmd::args;
use crate::cmd::flags::*;
use crate::cmd::{BeginSearch, Command, FindKeys, KeySpec, acl};
use crate::error::{self, CmdResult, Error};
use crate::families::sort::partial_sort;
use crate::pubsub::notify as ev;
use crate::server::Ctx;
use basalt_engine::geo::{self, Extent, Shape};
use basalt_engine::types::ZSetValue;
use basalt_engine::types::zset::ScoreRange;
use basalt_engine::{Guard, Value, ValueRef};
use basalt_proto::Frame;
use bytes::Bytes;
use std::cmp::Ordering;

const RO_ACCESS: &[&str] = &["RO", "access"];
const OW_UPDATE: &[&str] = &["OW", "update"];

const ONE_RO: &[KeySpec] = &[KeySpec::single(1, RO_ACCESS)];

const fn store_keyword(keyword: &'static str, startfrom: i32) -> KeySpec {
    KeySpec {
        notes: "",
        flags: OW_UPDATE,
        begin: BeginSearch::Keyword { keyword, startfrom },
        find: FindKeys::Range {
            lastkey: 0,
            step: 1,
            limit: 0,
        },
    }
}

const RADIUS_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.";
const SEARCH_COMPLEXITY: &str = "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";

macro_rules! geo_cmd {
    ($($t:tt)*) => {
        $crate::keyed_cmd!(acl::GEO, "geo"; $($t)*)
    };
}

/// The geo family's commands.
pub const COMMANDS: &[Command] = &[
    geo_cmd!(
        "geoadd",
        -5,
        WRITE | DENYOOM,
        (1, 1, 1),
        &[KeySpec::single(1, &["RW", "update"])],
        "3.2.0",
        "Add one or more geospatial items in the geospatial index represented using a sorted set",
        "O(log(N)) for each item added, where N is the number of elements in the sorted set.",
        geoadd
    ),
    geo_cmd!(
        "geopos",
        -2,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "3.2.0",
        "Returns longitude and latitude of members of a geospatial index",
        "O(N) where N is the number of members requested.",
        geopos
    ),
    geo_cmd!(
        "geodist",
        -4,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "3.2.0",
        "Returns the distance between two members of a geospatial index",
        "O(log(N))",
        geodist
    ),
    geo_cmd!(
        "geohash",
        -2,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "3.2.0",
        "Returns members of a geospatial index as standard geohash strings",
        "O(log(N)) for each member requested, where N is the number of elements in the sorted set.",
        geohash
    ),
    geo_cmd!(
        "geosearch",
        -7,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "6.2.0",
        "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.",
        SEARCH_COMPLEXITY,
        geosearch
    ),
    geo_cmd!(
        "geosearchstore",
        -8,
        WRITE | DENYOOM,
        (1, 2, 1),
        &[KeySpec::single(1, OW_UPDATE), KeySpec::single(2, RO_ACCESS)],
        "6.2.0",
        "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.",
        SEARCH_COMPLEXITY,
        geosearchstore
    ),
    geo_cmd!(
        "georadius",
        -6,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        &[
            KeySpec::single(1, RO_ACCESS),
            store_keyword("STORE", 6),
            store_keyword("STOREDIST", 6)
        ],
        "3.2.0",
        "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point",
        RADIUS_COMPLEXITY,
        georadius
    ),
    geo_cmd!(
        "georadiusbymember",
        -5,
        WRITE | DENYOOM | MOVABLE_KEYS,
        (1, 1, 1),
        &[
            KeySpec::single(1, RO_ACCESS),
            store_keyword("STORE", 5),
            store_keyword("STOREDIST", 5)
        ],
        "3.2.0",
        "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member",
        RADIUS_COMPLEXITY,
        georadiusbymember
    ),
    geo_cmd!(
        "georadius_ro",
        -6,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "3.2.10",
        "A read-only variant for GEORADIUS",
        RADIUS_COMPLEXITY,
        georadius_ro
    ),
    geo_cmd!(
        "georadiusbymember_ro",
        -5,
        READONLY,
        (1, 1, 1),
        ONE_RO,
        "3.2.10",
        "A read-only variant for GEORADIUSBYMEMBER",
        RADIUS_COMPLEXITY,
        georadiusbymember_ro
    ),
];

// ---------------------------------------------------------------------------------------
// Argument helpers

/// The argument as C sees it: up to its first NUL byte. Redis compares options and units
/// with `strcasecmp` on the raw buffer, so `withdist\0junk` is WITHDIST.
fn cstr(arg: &[u8]) -> &[u8] {
    match memchr::memchr(0, arg) {
        Some(i) => &arg[..i],
        None => arg,
    }
}

fn kw(arg: &[u8], keyword: &str) -> bool {
    cstr(arg).eq_ignore_ascii_case(keyword.as_bytes())
}

fn syntax() -> Error {
    Error::msg(error::SYNTAX)
}

/// A float argument with Redis's `getDoubleFromObjectOrReply` rules and message.
fn float_or(arg: &[u8], msg: &str) -> Result<f64, Error> {
    basalt_engine::num::parse_f64(arg).ok_or_else(|| Error::msg(msg))
}

/// `longitude latitude`: both parsed, then checked against the geohash limits.
fn lonlat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), Error> {
    let lon = float_or(lon, error::NOT_FLOAT)?;
    let lat = float_or(lat, error::NOT_FLOAT)?;
    if !geo::valid_lonlat(lon, lat) {
        return Err(Error::msg(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Meters per unit for `m`, `km`, `ft` and `mi` (any case).
fn unit(arg: &[u8]) -> Result<f64, Error> {
    let u = cstr(arg);
    if u.eq_ignore_ascii_case(b"m") {
        Ok(1.0)
    } else if u.eq_ignore_ascii_case(b"km") {
        Ok(1000.0)
    } else if u.eq_ignore_ascii_case(b"ft") {
        Ok(0.3048)
    } else if u.eq_ignore_ascii_case(b"mi") {
        Ok(1609.34)
    } else {
        Err(Error::msg(
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

/// `radius unit`: the radius and the unit's meters.
fn radius_arg(radius: &[u8], u: &[u8]) -> Result<(f64, f64), Error> {
    let r = float_or(radius, "ERR need numeric radius")?;
    if r < 0.0 {
        return Err(Error::msg("ERR radius cannot be negative"));
    }
    Ok((r, unit(u)?))
}

/// `width height unit`: the box and the unit's meters.
fn box_arg(width: &[u8], height: &[u8], u: &[u8]) -> Result<(f64, f64, f64), Error> {
    let w = float_or(width, "ERR need numeric width")?;
    let h = float_or(height, "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(Error::msg("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(u)?))
}

/// `%.17Lf` with trailing zeros (and a trailing point) removed, as Redis's
/// `addReplyHumanLongDouble` prints coordinates; `-0` prints as `0`.
fn human_double(v: f64) -> Frame {
    let text = if v.is_infinite() {
        if v > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        }
    } else {
        let mut s = format!("{v:.17}");
        if s.contains('.') {
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
        if s == "-0" {
            s = "0".to_string();
        }
        s
    };
    Frame::FormattedDouble(Bytes::from(text))
}

/// A distance as Redis prints it: `%.4f`, a bulk string in both protocols.
fn distance_reply(d: f64) -> Frame {
    Frame::Bulk(Bytes::from(format!("{d:.4}")))
}

/// The sorted set at `key` for reading (counts a keyspace hit or miss).
fn read_zset<'g>(
    g: &'g mut Guard<'_>,
    db: usize,
    key: &[u8],
) -> Result<Option<&'g ZSetValue>, Error> {
    match g.lookup_read(db, key) {
        None => Ok(None),
        Some(e) => match e.into_value() {
            ValueRef::Other(Value::ZSet(z)) => Ok(Some(&**z)),
            _ => Err(Error::msg(error::WRONGTYPE)),
        },
    }
}

// ---------------------------------------------------------------------------------------
// GEOADD, GEOPOS, GEODIST, GEOHASH

fn geoadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut longidx = 2;
    while longidx < args.len() {
        let a = &args[longidx];
        if kw(a, "nx") {
            nx = true;
        } else if kw(a, "xx") {
            xx = true;
        } else if kw(a, "ch") {
            ch = true;
        } else {
            break;
        }
        longidx += 1;
    }
    let rest = args.len() - longidx;
    // GEOADD hands over to ZADD, which refuses an empty list of members.
    if !rest.is_multiple_of(3) || (nx && xx) || rest == 0 {
        return Err(syntax());
    }
    let mut items = Vec::with_capacity(rest / 3);
    for triple in args[longidx..].chunks_exact(3) {
        let (lon, lat) = lonlat(&triple[0], &triple[1])?;
        let score = geo::score_of(lon, lat).unwrap_or(0) as f64;
        items.push((score, &triple[2]));
    }
    let db = ctx.client.db;
    let key = &args[1];
    let enc = ctx.enc();
    let mut g = ctx.srv.keyspace.lock_key(key, ctx.now);
    let exists = match g.get(db, key) {
        None => false,
        Some(e) if matches!(e.value().as_other(), Some(Value::ZSet(_))) => true,
        Some(_) => return Err(Error::msg(error::WRONGTYPE)),
    };
    if !exists {
        if xx {
            return Ok(Frame::Integer(0));
        }
        let first = items.first().map_or(0, |(_, m)| m.len());
        g.insert(
            db,
            key,
            Value::from(ZSetValue::for_first_member(&enc, first)),
            0,
        );
    }
    let (mut added, mut updated) = (0i64, 0i64);
    if let Some(e) = g.get(db, key)
        && let Some(Value::ZSet(z)) = e.into_value_mut()
    {
        for (score, member) in items {
            match z.score(member) {
                Some(cur) => {
                    if !nx && cur != score {
                        z.insert(member, score, &enc);
                        updated += 1;
                    }
                }
                None => {
                    if !xx {
                        z.insert(member, score, &enc);
                        added += 1;
                    }
                }
            }
        }
    }
    if added > 0 || updated > 0 {
        // GEOADD is ZADD underneath: reply first, then `zadd`.
        ctx.reply_here();
        ctx.notify(ev::ZSET, "zadd", key);
    }
    ctx.changed((added + updated) as u64);
    drop(g);
    if added > 0 {
        ctx.signal_ready(db, key);
    }
    Ok(Frame::Integer(if ch { added + updated } else { added }))
}

fn geopos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let z = read_zset(&mut g, ctx.client.db, &args[1])?;
    let out = args[2..]
        .iter()
        .map(|m| match z.and_then(|z| z.score(m)) {
            None => Frame::NullArray,
            Some(score) => {
                let (lon, lat) = geo::decode_score(score);
                Frame::Array(vec![human_double(lon), human_double(lat)])
            }
        })
        .collect();
    Ok(Frame::Array(out))
}

fn geodist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let to_meter = match args.len() {
        4 => 1.0,
        5 => unit(&args[4])?,
        _ => return Err(syntax()),
    };
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let Some(z) = read_zset(&mut g, ctx.client.db, &args[1])? else {
        return Ok(Frame::Null);
    };
    let (Some(s1), Some(s2)) = (z.score(&args[2]), z.score(&args[3])) else {
        return Ok(Frame::Null);
    };
    let (lon1, lat1) = geo::decode_score(s1);
    let (lon2, lat2) = geo::decode_score(s2);
    Ok(distance_reply(
        geo::distance(lon1, lat1, lon2, lat2) / to_meter,
    ))
}

fn geohash(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut g = ctx.srv.keyspace.lock_key(&args[1], ctx.now);
    let z = read_zset(&mut g, ctx.client.db, &args[1])?;
    let out = args[2..]
        .iter()
        .map(|m| match z.and_then(|z| z.score(m)) {
            None => Frame::Null,
            Some(score) => Frame::Bulk(Bytes::copy_from_slice(&geo::geohash_string(score))),
        })
        .collect();
    Ok(Frame::Array(out))
}

// ---------------------------------------------------------------------------------------
// Searches

/// Which search command is running (Redis's RADIUS_* / GEOSEARCH* flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS, GEORADIUS_RO: centre and radius in fixed positions.
    Coords,
    /// GEORADIUSBYMEMBER(_RO): a member and radius in fixed positions.
    Member,
    /// GEOSEARCH: FROMMEMBER/FROMLONLAT and BYRADIUS/BYBOX options.
    Search,
    /// GEOSEARCHSTORE: GEOSEARCH storing into `args[1]`.
    SearchStore,
}

impl Variant {
    fn is_search(self) -> bool {
        matches!(self, Variant::Search | Variant::SearchStore)
    }

    /// Where the source key is and where the options start.
    fn layout(self) -> (usize, usize) {
        match self {
            Variant::Coords => (1, 6),
            Variant::Member => (1, 5),
            Variant::Search => (1, 2),
            Variant::SearchStore => (2, 3),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// One match.
struct Point {
    member: Bytes,
    score: f64,
    lon: f64,
    lat: f64,
    /// Meters from the centre.
    dist: f64,
}

/// Finds the argument STORE/STOREDIST name without looking at any value, walking the
/// options exactly as [`parse_search`] does, so the destination's shard can be locked
/// together with the source before the real parse (which reads the source).
fn find_store_key(args: &[Bytes], variant: Variant, nostore: bool) -> Option<usize> {
    if variant == Variant::SearchStore {
        return Some(1);
    }
    let (_, base) = variant.layout();
    let remaining = args.len().saturating_sub(base);
    let search = variant.is_search();
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut store = None;
    let mut i = 0;
    while i < remaining {
        let a = &args[base + i];
        if kw(a, "withdist")
            || kw(a, "withhash")
            || kw(a, "withcoord")
            || kw(a, "any")
            || kw(a, "asc")
            || kw(a, "desc")
        {
        } else if kw(a, "count") && i + 1 < remaining {
            i += 1;
        } else if (kw(a, "store") || kw(a, "storedist")) && i + 1 < remaining && !nostore && !search
        {
            store = Some(base + i + 1);
            i += 1;
        } else if kw(a, "frommember") && i + 1 < remaining && search && !fromloc {
            frommember = true;
            i += 1;
        } else if kw(a, "fromlonlat") && i + 2 < remaining && search && !frommember {
            fromloc = true;
            i += 2;
        } else if kw(a, "byradius") && i + 2 < remaining && search && !bybox {
            byradius = true;
            i += 2;
        } else if kw(a, "bybox") && i + 3 < remaining && search && !byradius {
            bybox = true;
            i += 3;
        } else {
            // A syntax error: the real parse replies with it.
            return store;
        }
        i += 1;
    }
    store
}

/// A parsed search request.
struct Search {
    shape: Option<Shape>,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    any: bool,
    order: Order,
    count: usize,
    store: Option<usize>,
    storedist: bool,
}

/// Parses a search command in geo.c's order, reading the source set `z` where Redis
/// does (a FROMMEMBER or BYMEMBER centre), so errors come in the same order.
fn parse_search(
    args: &[Bytes],
    variant: Variant,
    nostore: bool,
    z: Option<&ZSetValue>,
) -> Result<Search, Error> {
    let (_, base) = variant.layout();
    let mut center: Option<(f64, f64)> = None;
    let mut extent: Option<(Extent, f64)> = None;
    let member_center = |z: &ZSetValue, m: &[u8]| {
        z.score(m)
            .map(geo::decode_score)
            .ok_or_else(|| Error::msg("ERR could not decode requested zset member"))
    };
    match variant {
        Variant::Coords => {
            center = Some(lonlat(&args[2], &args[3])?);
            let (r, conv) = radius_arg(&args[4], &args[5])?;
            extent = Some((Extent::Radius(r), conv));
        }
        Variant::Member => {
            if let Some(z) = z {
                center = Some(member_center(z, &args[2])?);
                let (r, conv) = radius_arg(&args[3], &args[4])?;
                extent = Some((Extent::Radius(r), conv));
            }
        }
        Variant::Search | Variant::SearchStore => {}
    }
    let search = variant.is_search();
    let mut s = Search {
        shape: None,
        withdist: false,
        withhash: false,
        withcoord: false,
        any: false,
        order: Order::None,
        count: 0,
        store: (variant == Variant::SearchStore).then_some(1),
        storedist: false,
    };
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let remaining = args.len().saturating_sub(base);
    let mut i = 0;
    while i < remaining {
        let a = &args[base + i];
        let next = |k: usize| &args[base + i + k];
        if kw(a, "withdist") {
            s.withdist = true;
        } else if kw(a, "withhash") {
            s.withhash = true;
        } else if kw(a, "withcoord") {
            s.withcoord = true;
        } else if kw(a, "any") {
            s.any = true;
        } else if kw(a, "asc") {
            s.order = Order::Asc;
        } else if kw(a, "desc") {
            s.order = Order::Desc;
        } else if kw(a, "count") && i + 1 < remaining {
            let n = args::int(next(1))?;
            if n <= 0 {
                return Err(Error::msg("ERR COUNT must be > 0"));
            }
            s.count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 1;
        } else if kw(a, "store") && i + 1 < remaining && !nostore && !search {
            s.store = Some(base + i + 1);
            s.storedist = false;
            i += 1;
        } else if kw(a, "storedist") && i + 1 < remaining && !nostore && !search {
            s.store = Some(base + i + 1);
            s.storedist = true;
            i += 1;
        } else if kw(a, "storedist") && variant == Variant::SearchStore {
            s.storedist = true;
        } else if kw(a, "frommember") && i + 1 < remaining && search && !fromloc {
            // Without a source the member is not looked up; the reply is empty anyway.
            if let Some(z) = z {
                center = Some(member_center(z, next(1))?);
            }
            frommember = true;
            i += 1;
        } else if kw(a, "fromlonlat") && i + 2 < remaining && search && !frommember {
            center = Some(lonlat(next(1), next(2))?);
            fromloc = true;
            i += 2;
        } else if kw(a, "byradius") && i + 2 < remaining && search && !bybox {
            let (r, conv) = radius_arg(next(1), next(2))?;
            extent = Some((Extent::Radius(r), conv));
            byradius = true;
            i += 2;
        } else if kw(a, "bybox") && i + 3 < remaining && search && !byradius {
            let (width, height, conv) = box_arg(next(1), next(2), next(3))?;
            extent = Some((Extent::Box { width, height }, conv));
            bybox = true;
            i += 3;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    if s.store.is_some() && (s.withdist || s.withhash || s.withcoord) {
        let what = if variant == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Error::msg(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        )));
    }
    let name = args::text(&args[0]);
    if search && !(frommember || fromloc) {
        return Err(Error::msg(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        )));
    }
    if search && !(byradius || bybox) {
        return Err(Error::msg(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        )));
    }
    if s.any && s.count == 0 {
        return Err(Error::msg("ERR the ANY argument requires COUNT argument"));
    }
    if let (Some((lon, lat)), Some((extent, conversion))) = (center, extent) {
        s.shape = Some(Shape {
            lon,
            lat,
            conversion,
            extent,
        });
    }
    Ok(s)
}

/// The members of the search cells that lie in `shape`, in the order Redis finds them
/// (cell by cell, ascending scores), stopping once `limit` were found (0: no limit).
fn collect_points(z: &ZSetValue, shape: &Shape, limit: usize) -> Vec<Point> {
    let cells = shape.search_cells();
    let mut out: Vec<Point> = Vec::new();
    let full = |out: &Vec<Point>| limit != 0 && out.len() >= limit;
    // Index of the last cell scanned; 0 (the centre) also means "none yet", as in Redis,
    // which only skips a neighbour equal to the previously scanned one.
    let mut last = 0usize;
    for (i, cell) in cells.iter().enumerate() {
        if cell.is_zero() {
            continue;
        }
        if last != 0 && *cell == cells[last] {
            continue;
        }
        if full(&out) {
            break;
        }
        let (min, max) = geo::cell_score_range(*cell);
        let range = ScoreRange {
            min: min as f64,
            max: max as f64,
            minex: false,
            maxex: true,
        };
        let (lo, hi) = z.score_ranks(&range);
        if lo < hi {
            let mut rank = lo;
            z.walk(lo, false, |m, score| {
                let (lon, lat) = geo::decode_score(score);
                if let Some(dist) = shape.distance_if_within(lon, lat) {
                    out.push(Point {
                        member: Bytes::copy_from_slice(m),
                        score,
                        lon,
                        lat,
                        dist,
                    });
                }
                rank += 1;
                rank < hi && !full(&out)
            });
        }
        last = i;
    }
    out
}

fn georadius_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    variant: Variant,
    nostore: bool,
) -> CmdResult {
    let (src_idx, _) = variant.layout();
    let db = ctx.client.db;
    let enc = ctx.enc();
    let store_idx = find_store_key(args, variant, nostore);
    let mut g = match store_idx {
        Some(d) => ctx
            .srv
            .keyspace
            .lock_keys(&[&args[src_idx], &args[d]], ctx.now),
        None => ctx.srv.keyspace.lock_key(&args[src_idx], ctx.now),
    };
    let z = read_zset(&mut g, db, &args[src_idx])?;
    let s = parse_search(args, variant, nostore, z)?;
    let (Some(z), Some(shape)) = (z, s.shape) else {
        // No source: delete the destination, or an empty reply.
        return Ok(match s.store {
            Some(d) => {
                if g.remove(db, &args[d]).is_some() {
                    ctx.notify(ev::GENERIC, "del", &args[d]);
                }
                Frame::Integer(0)
            }
            None => Frame::Array(Vec::new()),
        });
    };
    let mut order = s.order;
    // COUNT returns the nearest matches, so it sorts unless ANY asked for any matches.
    if s.count != 0 && order == Order::None && !s.any {
        order = Order::Asc;
    }
    let mut points = collect_points(z, &shape, if s.any { s.count } else { 0 });
    if points.is_empty() && s.store.is_none() {
        return Ok(Frame::Array(Vec::new()));
    }
    let total = points.len();
    let returned = if s.count == 0 || total < s.count {
        total
    } else {
        s.count
    };
    if order != Order::None {
        let desc = order == Order::Desc;
        let cmp = |a: &Point, b: &Point| {
            let c = a.dist.partial_cmp(&b.dist).unwrap_or(Ordering::Equal);
            if desc { c.reverse() } else { c }
        };
        if returned == total {
            // glibc's qsort is a stable merge sort.
            points.sort_by(cmp);
        } else {
            partial_sort(&mut points, 0, returned as i64 - 1, cmp);
        }
    }
    points.truncate(returned);
    let Some(d) = s.store else {
        drop(g);
        let extra = usize::from(s.withdist) + usize::from(s.withhash) + usize::from(s.withcoord);
        let out = points
            .into_iter()
            .map(|p| {
                if extra == 0 {
                    return Frame::Bulk(p.member);
                }
                let mut item = Vec::with_capacity(extra + 1);
                item.push(Frame::Bulk(p.member));
                if s.withdist {
                    item.push(distance_reply(p.dist / shape.conversion));
                }
                if s.withhash {
                    item.push(Frame::Integer(geo::score_to_i64(p.score)));
                }
                if s.withcoord {
                    item.push(Frame::Array(vec![human_double(p.lon), human_double(p.lat)]));
                }
                Frame::Array(item)
            })
            .collect();
        return Ok(Frame::Array(out));
    };
    let dst = &args[d];
    let n = points.len();
    if n == 0 {
        if g.remove(db, dst).is_some() {
            ctx.notify(ev::GENERIC, "del", dst);
        }
        return Ok(Frame::Integer(0));
    }
    let entries = points
        .into_iter()
        .map(|p| {
            let score = if s.storedist {
                p.dist / shape.conversion
            } else {
                p.score
            };
            (p.member, score)
        })
        .collect();
    g.insert(
        db,
        dst,
        Value::from(ZSetValue::from_entries(entries, &enc)),
        0,
    );
    let event = if matches!(variant, Variant::SearchStore) {
        "geosearchstore"
    } else {
        "georadiusstore"
    };
    ctx.notify(ev::ZSET, event, dst);
    // One change per member stored (Redis's `server.dirty += returned_items`).
    ctx.changed(n as u64);
    drop(g);
    ctx.signal_ready(db, dst);
    Ok(Frame::Integer(n as i64))
}

fn georadius(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::Coords, false)
}

fn georadius_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::Coords, true)
}

fn georadiusbymember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::Member, false)
}

fn georadiusbymember_ro(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::Member, true)
}

fn geosearch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::Search, false)
}

fn geosearchstore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    georadius_generic(ctx, args, Variant::SearchStore, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    #[test]
    fn human_doubles_trim_like_redis() {
        let text = |v: f64| match human_double(v) {
            Frame::FormattedDouble(t) => String::from_utf8_lossy(&t).into_owned(),
            _ => String::new(),
        };
        assert_eq!(text(180.0), "180");
        assert_eq!(text(85.05112878), "85.0511287799999991");
        assert_eq!(text(-0.0), "0");
        assert_eq!(text(0.5), "0.5");
        assert_eq!(text(-1e-20), "0");
    }

    #[test]
    fn store_key_is_found_like_the_parser_finds_it() {
        let a = b(&[
            "georadius",
            "k",
            "1",
            "2",
            "3",
            "km",
            "count",
            "store",
            "store",
            "d",
        ]);
        assert_eq!(find_store_key(&a, Variant::Coords, false), Some(9));
        assert_eq!(find_store_key(&a, Variant::Coords, true), None);
        let a = b(&[
            "geosearchstore",
            "d",
            "k",
            "frommember",
            "store",
            "byradius",
            "1",
            "m",
        ]);
        assert_eq!(find_store_key(&a, Variant::SearchStore, false), Some(1));
        let a = b(&[
            "georadiusbymember",
            "k",
            "m",
            "1",
            "km",
            "storedist",
            "x",
            "asc",
        ]);
        assert_eq!(find_store_key(&a, Variant::Member, false), Some(6));
    }

    #[test]
    fn units_and_options_read_as_c_strings() {
        assert_eq!(unit(b"KM"), Ok(1000.0));
        assert_eq!(unit(b"mi\0x"), Ok(1609.34));
        assert!(unit(b"kms").is_err());
        assert!(kw(b"WithDist\0zz", "withdist"));
    }
}
