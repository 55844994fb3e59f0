//! A connection's one wake-up source besides its socket: published messages queued in
//! its outbox, a kill, the server shutting down.
//!
//! The connection task waits on it in every `select!` of its read loop, so it is polled
//! once per read. A `tokio::sync::Notify` waiter costs hundreds of instructions per poll
//! (it takes the waiter list's lock to look for a notification; three of them, plus a
//! `watch` receiver, were about a fifth of a GET at pipeline depth 1 under callgrind);
//! this is a flag and one stored waker, for the single task that waits.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::task::{Context, Poll, RawWakerVTable, Waker};

/// A flag raised by [`Attention::signal`] and consumed by the waiting task.
///
/// The task polls it twice per request at pipeline depth 1, and nearly always finds the
/// flag down and its own waker already stored; that case takes no lock and no
/// read-modify-write (a locked instruction costs ~20 cycles and a full barrier).
/// `armed` says the slot holds a waker that no signal has taken yet, and `data`/`vtable`
/// identify it, so a poll can tell without the lock that its waker is already there.
/// `armed` only changes under the lock, together with the slot.
pub struct Attention {
    raised: AtomicBool,
    armed: AtomicBool,
    data: AtomicPtr<()>,
    vtable: AtomicPtr<RawWakerVTable>,
    waker: Mutex<Option<Waker>>,
}

impl Default for Attention {
    fn default() -> Self {
        Attention {
            raised: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            data: AtomicPtr::new(std::ptr::null_mut()),
            vtable: AtomicPtr::new(std::ptr::null_mut()),
            waker: Mutex::new(None),
        }
    }
}

impl Attention {
    /// Raises the flag and wakes the waiting task, if any. Signals raised before the
    /// task waits are not lost; several are seen as one.
    pub fn signal(&self) {
        // SeqCst pairs with `poll_wait`'s store of `armed` and load of `raised`: either
        // this sees the waker armed, or the poll sees the flag raised.
        self.raised.store(true, Ordering::SeqCst);
        if self.armed.load(Ordering::SeqCst) {
            // `armed` is lowered under the lock, in one step with taking the waker: lowered
            // before the lock, a poll could re-arm in between and have its new waker taken
            // here, leaving `armed` up over an empty slot, and a later poll would then
            // trust the fast path with no waker stored (a lost wake-up).
            let waker = {
                let mut slot = self.waker.lock();
                self.armed.store(false, Ordering::SeqCst);
                slot.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }

    /// Lowers the flag if it is raised; true if it was.
    fn take_raised(&self) -> bool {
        self.raised.load(Ordering::SeqCst) && self.raised.swap(false, Ordering::AcqRel)
    }

    /// Whether the armed waker is `waker` (same task), read without the lock.
    fn holds(&self, waker: &Waker) -> bool {
        self.armed.load(Ordering::Acquire)
            && std::ptr::eq(self.data.load(Ordering::Acquire), waker.data())
            && std::ptr::eq(self.vtable.load(Ordering::Acquire), waker.vtable())
    }

    /// Ready (and lowers the flag) once the flag is raised; otherwise remembers the
    /// task to wake. Only one task may wait at a time.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take_raised() {
            return Poll::Ready(());
        }
        if !self.holds(cx.waker()) {
            let waker = cx.waker();
            let mut slot = self.waker.lock();
            *slot = Some(waker.clone());
            self.data.store(waker.data().cast_mut(), Ordering::Release);
            let vtable: *const RawWakerVTable = waker.vtable();
            self.vtable.store(vtable.cast_mut(), Ordering::Release);
            self.armed.store(true, Ordering::SeqCst);
        }
        // A signal that found no waker armed raised the flag before it looked: look again.
        if self.take_raised() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Waits until the flag is raised (and lowers it).
    pub async fn wait(&self) {
        std::future::poll_fn(|cx| self.poll_wait(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_signal_before_or_during_the_wait_is_seen_once() {
        let a = Arc::new(Attention::default());
        // Raised before anyone waits: the next wait returns at once.
        a.signal();
        a.signal();
        tokio::time::timeout(Duration::from_secs(5), a.wait())
            .await
            .expect("raised before the wait");
        // Both signals were consumed by that one wait.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), a.wait())
                .await
                .is_err()
        );
        // Raised by another task while waiting.
        let b = a.clone();
        let t = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            b.signal();
        });
        tokio::time::timeout(Duration::from_secs(5), a.wait())
            .await
            .expect("woken while waiting");
        t.await.expect("signaller");
    }

    #[tokio::test]
    async fn a_new_waiting_task_replaces_the_armed_waker() {
        let a = Arc::new(Attention::default());
        // The first task waits and gives up, leaving its waker armed.
        let first = a.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_millis(20), first.wait()).await;
        })
        .await
        .expect("first waiter");
        // A second task waits: the signal must wake it, not the first task's stale waker.
        let second = a.clone();
        let waiter = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), second.wait()).await
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        a.signal();
        assert!(waiter.await.expect("second waiter").is_ok());
        // And a waiter that polls again with its own stored waker still gets woken.
        let third = a.clone();
        let waiter = tokio::spawn(async move {
            let mut wait = std::pin::pin!(third.wait());
            // Poll twice with the same waker (the fast path on the second poll).
            let _ = tokio::time::timeout(Duration::from_millis(10), &mut wait).await;
            tokio::time::timeout(Duration::from_secs(5), &mut wait).await
        });
        tokio::time::sleep(Duration::from_millis(40)).await;
        a.signal();
        assert!(waiter.await.expect("third waiter").is_ok());
    }

    /// Records that it was woken.
    struct Flag(AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Spins (yielding the thread now and then) until `done` or `limit` has passed.
    fn spin_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let start = std::time::Instant::now();
        let mut turns = 0u32;
        while !done() {
            if start.elapsed() > limit {
                return false;
            }
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        true
    }

    #[test]
    fn no_signal_is_lost_when_signals_race_the_polls() {
        // One thread polls as a connection task runs: only when woken, and then until the
        // flag is down (each ready poll consumes a signal). The other thread signals as
        // soon as the previous signal was consumed, often while that poll loop is still
        // going, so signals land at every point of a poll, the slow path's re-arming
        // included. A lost wake-up stops the count: the poller waits to be woken while
        // the flag is up (a signal took a waker that a poll then took to be armed).
        const SIGNALS: u64 = 1_000_000;
        let a = Arc::new(Attention::default());
        let seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = {
            let (a, seen, stop) = (a.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                let woken = Arc::new(Flag(AtomicBool::new(true)));
                let waker = Waker::from(woken.clone());
                let mut cx = Context::from_waker(&waker);
                while !stop.load(Ordering::SeqCst) {
                    if !woken.0.swap(false, Ordering::SeqCst) {
                        std::hint::spin_loop();
                        continue;
                    }
                    while a.poll_wait(&mut cx).is_ready() {
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        };
        let mut lost = None;
        for i in 0..SIGNALS {
            if !spin_until(Duration::from_secs(10), || seen.load(Ordering::SeqCst) >= i) {
                lost = Some(i);
                break;
            }
            a.signal();
        }
        let all_seen = spin_until(Duration::from_secs(10), || {
            seen.load(Ordering::SeqCst) >= SIGNALS
        });
        stop.store(true, Ordering::SeqCst);
        poller.join().expect("poller");
        assert_eq!(lost, None, "a signal never reached the polling thread");
        assert!(all_seen, "the last signal never reached the polling thread");
    }
}
