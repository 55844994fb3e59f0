//! Thin safe wrappers over the Linux primitives of the load generator's event loop:
//! `CLOCK_MONOTONIC`, epoll and a timerfd.
//!
//! Why not tokio: its timer wheel has a 1 ms granularity, so an open-loop sender would fire
//! its requests up to a millisecond late and every latency percentile would carry that
//! client-side error. A timerfd armed with an absolute nanosecond deadline (and the thread's
//! timer slack set to 1 ns) wakes within microseconds, and one epoll loop per thread keeps
//! the client's own cost per request small.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Nanoseconds on `CLOCK_MONOTONIC` (the clock timerfd deadlines use).
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

    /// Waits up to `timeout_ms` (-1: forever, 0: poll) and appends the events to `out`.
    pub fn wait(&mut self, out: &mut Vec<Event>, timeout_ms: i32) -> io::Result<()> {
        // SAFETY: `buf` holds `buf.len()` initialised epoll_event slots the kernel may
        // overwrite; it returns how many it filled.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.len() as libc::c_int,
                timeout_ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(err);
        }
        for ev in &self.buf[..n as usize] {
            let bits = ev.events;
            out.push(Event {
                token: ev.u64,
                readable: bits
                    & (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32
                    != 0,
                writable: bits & libc::EPOLLOUT as u32 != 0,
            });
        }
        Ok(())
    }
}

/// A one-shot timer on `CLOCK_MONOTONIC` with nanosecond deadlines, pollable by epoll.
pub struct Timer {
    fd: OwnedFd,
    armed_at: u64,
}

impl Timer {
    /// A disarmed timer.
    pub fn new() -> io::Result<Timer> {
        // SAFETY: plain syscall; the descriptor is checked and then owned.
        let fd = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Timer {
            // SAFETY: `fd` is a fresh descriptor nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed_at: 0,
        })
    }

    /// The descriptor to register with epoll.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Fires at absolute monotonic time `deadline_ns` (re-arming only if it changed).
    pub fn arm(&mut self, deadline_ns: u64) -> io::Result<()> {
        // A zero it_value would disarm the timer: deadlines are never zero in practice.
        let deadline_ns = deadline_ns.max(1);
        if deadline_ns == self.armed_at {
            return Ok(());
        }
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
                tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; a null old-value pointer is allowed.
        let rc = unsafe {
            libc::timerfd_settime(
                self.fd.as_raw_fd(),
                libc::TFD_TIMER_ABSTIME,
                &spec,
                std::ptr::null_mut(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        self.armed_at = deadline_ns;
        Ok(())
    }

    /// Consumes an expiry so a level-triggered epoll stops reporting it.
    pub fn acknowledge(&mut self) {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into an 8-byte buffer; EAGAIN (not expired) is fine.
        unsafe {
            libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len());
        }
        self.armed_at = 0;
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
    fn timer_wakes_epoll_after_its_deadline() {
        tighten_timer_slack();
        let mut ep = Epoll::new(4).unwrap();
        let mut t = Timer::new().unwrap();
        ep.add(t.raw_fd(), 7, false).unwrap();
        let deadline = now_ns() + 2_000_000;
        t.arm(deadline).unwrap();
        let mut evs = Vec::new();
        // Loop until the timer reports: epoll may return early only through EINTR.
        while evs.is_empty() {
            ep.wait(&mut evs, 1000).unwrap();
        }
        assert!(now_ns() >= deadline, "woke before the deadline");
        assert_eq!(evs[0].token, 7);
        assert!(evs[0].readable);
        t.acknowledge();
        evs.clear();
        ep.wait(&mut evs, 0).unwrap();
        assert!(evs.is_empty(), "acknowledged timer still readable");
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
        ep.wait(&mut evs, 1000).unwrap();
        assert!(
            evs.iter()
                .any(|e| e.token == 3 && e.writable && !e.readable)
        );
        ep.modify(server.as_raw_fd(), 3, false).unwrap();
        client.write_all(b"x").unwrap();
        evs.clear();
        ep.wait(&mut evs, 1000).unwrap();
        assert!(
            evs.iter()
                .any(|e| e.token == 3 && e.readable && !e.writable)
        );
        ep.delete(server.as_raw_fd()).unwrap();
    }
}
