//! Connections to other repmgrds kept open between requests: a primary
//! renews its lease with every voter several times a second, and a new
//! TCP connection (and the serving thread it woke) for each renewal cost
//! more than the renewal itself. A connection idle longer than
//! [`KEEP_FOR`] is not reused (the other side closes its end after
//! [`SERVER_IDLE`]), and one that fails is dropped, never put back.

use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a client keeps an idle connection for reuse.
pub const KEEP_FOR: Duration = Duration::from_secs(5);
/// How long a server waits for the next request on a connection whose
/// first request authenticated. Longer than KEEP_FOR, so that a client
/// seldom sends into a connection being closed.
pub const SERVER_IDLE: Duration = Duration::from_secs(10);
/// Idle connections kept per address at most (requests to one peer may
/// overlap: a heartbeat and a status round).
const PER_ADDRESS: usize = 2;

static IDLE: Mutex<Vec<(SocketAddr, TcpStream, Instant)>> = Mutex::new(Vec::new());

fn idle() -> std::sync::MutexGuard<'static, Vec<(SocketAddr, TcpStream, Instant)>> {
    IDLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// An idle connection to `addr` young enough to reuse.
pub fn take(addr: SocketAddr) -> Option<TcpStream> {
    let mut all = idle();
    all.retain(|(_, _, since)| since.elapsed() < KEEP_FOR);
    let at = all.iter().rposition(|(a, _, _)| *a == addr)?;
    Some(all.swap_remove(at).1)
}

/// Keeps `stream` (which has just carried a whole exchange) for the next
/// request to `addr`.
pub fn put(addr: SocketAddr, stream: TcpStream) {
    let mut all = idle();
    if all.iter().filter(|(a, _, _)| *a == addr).count() < PER_ADDRESS {
        all.push((addr, stream, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_connection_put_back_is_taken_again_for_its_address_only() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        put(addr, TcpStream::connect(addr).unwrap());
        assert!(take(other).is_none());
        assert!(take(addr).is_some());
        assert!(take(addr).is_none());
    }
}
