//! Worker threads that outlive their job: a job goes to a worker that is
//! idle, or to a new one; a worker that has finished waits [`WORKER_IDLE`]
//! for the next job, then ends. Work that recurs every second or so (the
//! endpoint's health checks, the driver's heartbeats and checks) is thus
//! done by the same few threads: creating a thread per job cost more than
//! the job. An idle daemon keeps none.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a worker waits for its next client.
pub const WORKER_IDLE: Duration = Duration::from_secs(10);

/// Workers that run `handle` on each job given to [`Pool::dispatch`].
pub struct Pool<J> {
    /// The workers' thread name.
    name: &'static str,
    handle: Box<dyn Fn(J) + Send + Sync>,
    /// Workers waiting for a job: their number and where to send it.
    idle: Mutex<Vec<(u64, Sender<J>)>>,
    next_id: AtomicU64,
}

impl<J: Send + 'static> Pool<J> {
    pub fn new(name: &'static str, handle: impl Fn(J) + Send + Sync + 'static) -> Arc<Pool<J>> {
        Arc::new(Pool {
            name,
            handle: Box::new(handle),
            idle: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Sender<J>)>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `job` to an idle worker, or starts one for it. False when no
    /// thread could be started (the job is dropped).
    pub fn dispatch(self: &Arc<Self>, mut job: J) -> bool {
        loop {
            let Some((_, tx)) = self.idle().pop() else {
                break;
            };
            match tx.send(job) {
                Ok(()) => return true,
                // That worker has just ended: try the next.
                Err(back) => job = back.0,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = channel();
        let pool = self.clone();
        std::thread::Builder::new()
            .name(self.name.into())
            .stack_size(256 * 1024)
            .spawn(move || pool.work(id, tx, rx, job))
            .is_ok()
    }

    fn work(&self, id: u64, tx: Sender<J>, rx: Receiver<J>, first: J) {
        let mut job = Some(first);
        while let Some(j) = job.take() {
            (self.handle)(j);
            self.idle().push((id, tx.clone()));
            job = match rx.recv_timeout(WORKER_IDLE) {
                Ok(j) => Some(j),
                Err(RecvTimeoutError::Disconnected) => None,
                Err(RecvTimeoutError::Timeout) => {
                    let mut idle = self.idle();
                    match idle.iter().position(|(i, _)| *i == id) {
                        Some(at) => {
                            idle.remove(at);
                            None
                        }
                        // Taken just now: its job is on the way.
                        None => {
                            drop(idle);
                            rx.recv_timeout(Duration::from_secs(1)).ok()
                        }
                    }
                }
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn jobs_one_after_another_reuse_one_worker() {
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let pool = Pool::new("test", move |_: ()| {
            d.fetch_add(1, Ordering::SeqCst);
        });
        for n in 1..=5 {
            pool.dispatch(());
            let t = std::time::Instant::now();
            while done.load(Ordering::SeqCst) < n && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // The worker is back among the idle before the next job.
            while pool.idle().is_empty() && t.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), 5);
        assert_eq!(pool.next_id.load(Ordering::SeqCst), 1, "one worker for all");
    }
}
