//! Logging to stderr without timestamps (callers such as Podman capture it),
//! and a rate limiter for every line the namespace can trigger, so that junk
//! frames cannot flood a journal.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

struct StderrLogger;

impl ::log::Log for StderrLogger {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.level() <= ::log::max_level()
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // smoltcp's own trace output is far too chatty above trace level.
        if record.target().starts_with("smoltcp") && ::log::max_level() < ::log::LevelFilter::Trace
        {
            return;
        }
        let level = match record.level() {
            ::log::Level::Error => "error",
            ::log::Level::Warn => "warning",
            ::log::Level::Info => "info",
            ::log::Level::Debug => "debug",
            ::log::Level::Trace => "trace",
        };
        let _ = writeln!(
            std::io::stderr().lock(),
            "rlnet: {level}: {}",
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Install the stderr logger. Safe to call more than once (tests do).
pub fn init(level: ::log::LevelFilter) {
    let _ = ::log::set_logger(&LOGGER);
    ::log::set_max_level(level);
}

/// A per-call-site budget: at most `BURST` lines per second.
pub struct RateLimit {
    /// (second << 16) | count, packed so one atomic suffices.
    state: AtomicU64,
}

impl RateLimit {
    const BURST: u64 = 5;

    pub const fn new() -> Self {
        RateLimit {
            state: AtomicU64::new(0),
        }
    }

    /// True when this line may be logged now.
    pub fn allow(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cur = self.state.load(Ordering::Relaxed);
        let (sec, count) = (cur >> 16, cur & 0xffff);
        let next = if sec == now {
            if count >= Self::BURST {
                return false;
            }
            (now << 16) | (count + 1)
        } else {
            (now << 16) | 1
        };
        self.state.store(next, Ordering::Relaxed);
        true
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

/// `log` through a per-call-site [`RateLimit`]; use for anything the
/// namespace, the API or DNS clients can trigger.
#[macro_export]
macro_rules! limited {
    ($level:ident, $($arg:tt)+) => {{
        static RL: $crate::log::RateLimit = $crate::log::RateLimit::new();
        if ::log::log_enabled!(::log::Level::$level) && RL.allow() {
            ::log::log!(::log::Level::$level, $($arg)+);
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_caps_a_burst() {
        let rl = RateLimit::new();
        let allowed = (0..100).filter(|_| rl.allow()).count();
        // At most two seconds' budget even if the clock ticks during the loop.
        assert!((5..=10).contains(&allowed), "{allowed}");
    }
}
