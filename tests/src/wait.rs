//! Polling with a deadline, the suite's only way to wait: no fixed sleeps.

use std::time::{Duration, Instant};

/// Long enough for a loaded 2-core CI machine; a healthy wait returns in milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` (with a short, growing back-off) until it yields a value, or panics
/// after `within`, naming `what` was awaited.
pub fn until<T>(what: &str, within: Duration, check: impl FnMut() -> Option<T>) -> T {
    polled(within, check).unwrap_or_else(|| panic!("timed out after {within:?} waiting for {what}"))
}

/// [`until`], but `None` after `within`, for a caller that says more about what it saw.
pub fn polled<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
