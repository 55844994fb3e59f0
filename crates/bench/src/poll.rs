//! Thin safe wrappers over the Linux primitives of the load generator's event loop:
//! `CLOCK_MONOTONIC` and epoll with nanosecond timeouts (`epoll_pwait2`).
//!
//! Why not tokio: its timer wheel has a 1 ms granularity, so an open-loop sender would fire
//! its requests up to a millisecond late and every latency percentile would carry that
//! client-side error. `epoll_pwait2` takes a nanosecond timeout (and the thread's timer slack
//! is set to 1 ns), so a wake-up for the next scheduled send costs no extra system call and
//! lands within microseconds. Kernels before 5.11 lack it: the loop then falls back to
//! `epoll_wait` and millisecond timeouts.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds on `CLOCK_MONOTONIC`.
#[inline]
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux,
    // so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Asks the kernel to wake this thread's timers as precisely as it can (default slack is
/// 50 us, which would show up in open-loop latencies). Best effort.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong);
    }
}

/// One readiness event.
#[derive(Debug, Clone, Copy)]
pub struct Event {
    /// The token the descriptor was registered with.
    pub token: u64,
    /// Data (or a hang-up/error, which a read will report) can be read.
    pub readable: bool,
    /// The socket can take more bytes.
    pub writable: bool,
}

/// An epoll instance (level-triggered).
pub struct Epoll {
    fd: OwnedFd,
    buf: Vec<libc::epoll_event>,
    /// Cleared when the kernel says `epoll_pwait2` does not exist.
    pwait2: bool,
}

impl Epoll {
    /// A new epoll instance able to report up to `capacity` events per wait.
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned descriptor is checked and then owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            buf: vec![libc::epoll_event { events: 0, u64: 0 }; capacity.max(1)],
            pwait2: true,
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, token: u64, writable: bool) -> io::Result<()> {
        let mut events = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
        if writable {
            events |= libc::EPOLLOUT as u32;
        }
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call; the kernel
        // validates both descriptors.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for reading (and writing if `writable`), reporting `token`.
    pub fn add(&self, fd: RawFd, token: u64, writable: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, token, writable)
    }

    /// Changes whether `fd` is watched for writability.
    pub fn modify(&self, fd: RawFd, token: u64, writable: bool) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, token, writable)
    }

    /// Stops watching `fd`.
    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, false)
    }

    /// Waits until an event or the absolute monotonic time `deadline_ns` (at most 100 ms
    /// from now) and appends the events to `out`.
    pub fn wait_until(&mut self, out: &mut Vec<Event>, deadline_ns: u64) -> io::Result<()> {
        let rel = deadline_ns.saturating_sub(now_ns()).min(100_000_000);
        let n = if self.pwait2 {
            let ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: rel as libc::c_long,
            };
            // SAFETY: `buf` holds `buf.len()` initialised epoll_event slots the kernel may
            // overwrite; `ts` outlives the call; a null sigmask leaves the mask unchanged.
            unsafe {
                libc::epoll_pwait2(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    self.buf.len() as libc::c_int,
                    &ts,
                    std::ptr::null(),
                )
            }
        } else {
            // SAFETY: as above; the timeout is rounded up to whole milliseconds.
            unsafe {
                libc::epoll_wait(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    self.buf.len() as libc::c_int,
                    rel.div_ceil(1_000_000) as libc::c_int,
                )
            }
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EINTR) => Ok(()),
                Some(libc::ENOSYS) if self.pwait2 => {
                    self.pwait2 = false;
                    Ok(())
                }
                _ => Err(err),
            };
        }
        for ev in &self.buf[..n as usize] {
            let bits = ev.events;
            let readable =
                (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;
            out.push(Event {
                token: ev.u64,
                readable: bits & readable != 0,
                writable: bits & libc::EPOLLOUT as u32 != 0,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        assert!(a > 0);
    }

    #[test]
    fn wait_returns_at_its_deadline_not_before() {
        tighten_timer_slack();
        let mut ep = Epoll::new(4).unwrap();
        let mut evs = Vec::new();
        for _ in 0..2 {
            let deadline = now_ns() + 2_000_000;
            // Without any descriptor the wait can only end by the timeout (or EINTR).
            while now_ns() < deadline {
                ep.wait_until(&mut evs, deadline).unwrap();
            }
            assert!(evs.is_empty());
            // The second round exercises the fallback path.
            ep.pwait2 = false;
        }
    }

    #[test]
    fn socket_readiness_is_reported() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut ep = Epoll::new(4).unwrap();
        ep.add(server.as_raw_fd(), 3, true).unwrap();
        let mut evs = Vec::new();
        ep.wait_until(&mut evs, now_ns() + 50_000_000).unwrap();
        assert!(
            evs.iter()
                .any(|e| e.token == 3 && e.writable && !e.readable)
        );
        ep.modify(server.as_raw_fd(), 3, false).unwrap();
        client.write_all(b"x").unwrap();
        evs.clear();
        ep.wait_until(&mut evs, now_ns() + 50_000_000).unwrap();
        assert!(
            evs.iter()
                .any(|e| e.token == 3 && e.readable && !e.writable)
        );
        ep.delete(server.as_raw_fd()).unwrap();
    }
}
