//! Logging through `tracing`, at Redis's levels and in Redis's line format
//! (`pid:M 23 Nov 2026 01:06:00.123 * message`).
//!
//! Levels map as: debug → TRACE, verbose → DEBUG, notice → INFO, warning → WARN
//! (and ERROR), nothing → off. The level can change at runtime (CONFIG SET loglevel).

use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

static LEVEL: AtomicU8 = AtomicU8::new(2);

fn rank(level: &Level) -> u8 {
    match *level {
        Level::TRACE => 0,
        Level::DEBUG => 1,
        Level::INFO => 2,
        Level::WARN | Level::ERROR => 3,
    }
}

/// Sets the active level from a Redis level name (unknown names leave it unchanged).
pub fn set_level(name: &str) {
    let v = match name {
        "debug" => 0,
        "verbose" => 1,
        "notice" => 2,
        "warning" => 3,
        "nothing" => 4,
        _ => return,
    };
    LEVEL.store(v, Ordering::Relaxed);
}

struct RedisFormat;

impl<S, N> FormatEvent<S, N> for RedisFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mark = match *event.metadata().level() {
            Level::TRACE => '.',
            Level::DEBUG => '-',
            Level::INFO => '*',
            Level::WARN | Level::ERROR => '#',
        };
        write!(w, "{}:M {} {} ", std::process::id(), timestamp(), mark)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// `23 Nov 2026 01:06:00.123`, UTC.
fn timestamp() -> String {
    let ms = crate::server::unix_ms();
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        ms % 1000
    )
}

/// Days since 1970-01-01 → (year, month 1-12, day 1-31) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Installs the global subscriber writing to `logfile` (stdout when empty).
pub fn init(level: &str, logfile: &str) -> std::io::Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    set_level(level);
    let filter = tracing_subscriber::filter::filter_fn(|meta| {
        let active = LEVEL.load(Ordering::Relaxed);
        active < 4 && rank(meta.level()) >= active && meta.target().starts_with("basalt")
    });
    let writer: Box<dyn Fn() -> Box<dyn Write> + Send + Sync> = if logfile.is_empty() {
        Box::new(|| Box::new(std::io::stdout()))
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logfile)?;
        let file = std::sync::Arc::new(parking_lot::Mutex::new(file));
        Box::new(move || Box::new(LockedFile(file.clone())))
    };
    let layer = tracing_subscriber::fmt::layer()
        .event_format(RedisFormat)
        .with_ansi(false)
        .with_writer(writer);
    let _ = tracing_subscriber::registry()
        .with(tracing_subscriber::Layer::with_filter(layer, filter))
        .try_init();
    Ok(())
}

struct LockedFile(std::sync::Arc<parking_lot::Mutex<std::fs::File>>);

impl Write for LockedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
