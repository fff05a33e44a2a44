//! One way to ask many nodes at once. Every node's work (connects,
//! queries, ssh) has deadlines of its own; asking in parallel makes a
//! command or a repmgrd cycle cost the slowest node's bound, not the sum.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `f` on every item at once, one thread each, and waits for all of
/// them. For work that borrows from the caller (an ssh session, the
/// configuration); each item's own steps must be bounded.
pub fn map<T, R, F>(items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let f = &f;
    std::thread::scope(|s| {
        let handles: Vec<_> = items.iter().map(|item| s.spawn(move || f(item))).collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(r) => r,
                // A panic in one item's work is a bug; keep it visible.
                Err(p) => std::panic::resume_unwind(p),
            })
            .collect()
    })
}

/// Runs `f` on every item at once and waits at most `limit` in total. An
/// item whose work is not done by then gives None; its thread is left to
/// end on its own bounded I/O and its answer is dropped.
pub fn map_within<T, R, F>(items: Vec<T>, limit: Duration, f: F) -> Vec<Option<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    map_within_sparing(items, limit, None, Duration::ZERO, f)
}

/// As [`map_within`], but the item at `late` (one expected not to answer)
/// is waited for at most `grace` once every other item is done.
pub fn map_within_sparing<T, R, F>(
    items: Vec<T>,
    limit: Duration,
    late: Option<usize>,
    grace: Duration,
    f: F,
) -> Vec<Option<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> R + Send + Sync + 'static,
{
    let n = items.len();
    let late = late.filter(|&l| l < n);
    let f = Arc::new(f);
    let (tx, rx) = mpsc::channel();
    for (i, item) in items.into_iter().enumerate() {
        let (f, tx) = (f.clone(), tx.clone());
        let spawned = std::thread::Builder::new()
            .name("ask-node".into())
            .spawn(move || {
                let _ = tx.send((i, f(item)));
            });
        if spawned.is_err() {
            crate::log_warning!("could not start a thread to ask a node; treating it as silent");
        }
    }
    drop(tx);
    let mut out: Vec<Option<R>> = (0..n).map(|_| None).collect();
    let mut deadline = Instant::now() + limit;
    let mut others = n - usize::from(late.is_some());
    for _ in 0..n {
        if others == 0 && late.is_some_and(|l| out[l].is_none()) {
            deadline = deadline.min(Instant::now() + grace);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => {
                if Some(i) != late {
                    others -= 1;
                }
                out[i] = Some(r);
            }
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_the_order_of_the_items() {
        assert_eq!(map(&[3, 1, 2], |x| x * 10), vec![30, 10, 20]);
    }

    #[test]
    fn map_within_sparing_waits_for_the_late_item_only_a_moment_after_the_others() {
        let start = Instant::now();
        let out = map_within_sparing(
            vec![5_000u64, 100, 0],
            Duration::from_secs(10),
            Some(0),
            Duration::from_millis(200),
            |ms| {
                std::thread::sleep(Duration::from_millis(ms));
                ms
            },
        );
        assert_eq!(out, vec![None, Some(100), Some(0)]);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        // A late item that answers within the grace is kept.
        let out = map_within_sparing(
            vec![150u64, 100],
            Duration::from_secs(10),
            Some(0),
            Duration::from_millis(500),
            |ms| {
                std::thread::sleep(Duration::from_millis(ms));
                ms
            },
        );
        assert_eq!(out, vec![Some(150), Some(100)]);
    }

    #[test]
    fn map_within_gives_none_for_work_past_the_limit() {
        let out = map_within(vec![0u64, 5_000], Duration::from_millis(300), |ms| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        });
        assert_eq!(out, vec![Some(0), None]);
    }
}
