//! The one bounded wait: ask, sleep a step, ask again, until an answer or
//! the deadline. Each ask must be bounded itself (a query has its
//! session's deadline, a child process its own). A stop request
//! ([`crate::shutdown`]) ends the wait early, as a timeout.

use std::time::{Duration, Instant};

/// Calls `ask` every `step` until it gives `Some`, for at most `limit`
/// (the first call is at once, the last at or after the deadline). None
/// when the deadline passed, or a stop was requested.
pub fn until<T>(limit: Duration, step: Duration, mut ask: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = ask() {
            return Some(v);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || crate::shutdown::requested() {
            return None;
        }
        sleep(step.min(left));
    }
}

/// Sleeps `d`, waking early when a stop is requested.
pub fn sleep(d: Duration) {
    let deadline = Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || crate::shutdown::requested() {
            return;
        }
        std::thread::sleep(left.min(crate::shutdown::POLL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_the_first_answer() {
        let mut n = 0;
        let got = until(Duration::from_secs(5), Duration::from_millis(1), || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(got, Some(3));
    }

    #[test]
    fn gives_up_at_the_deadline_after_a_last_ask() {
        let mut asked = 0;
        let got: Option<()> = until(Duration::from_millis(30), Duration::from_millis(10), || {
            asked += 1;
            None
        });
        assert_eq!(got, None);
        assert!(asked >= 2, "{asked}");
    }
}
