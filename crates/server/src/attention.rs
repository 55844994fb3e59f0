//! A connection's one wake-up source besides its socket: published messages queued in
//! its outbox, a kill, the server shutting down.
//!
//! The connection task waits on it in every `select!` of its read loop, so it is polled
//! once per read. A `tokio::sync::Notify` waiter costs hundreds of instructions per poll
//! (it takes the waiter list's lock to look for a notification; three of them, plus a
//! `watch` receiver, were about a fifth of a GET at pipeline depth 1 under callgrind);
//! this is a flag and one stored waker, for the single task that waits.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

/// A flag raised by [`Attention::signal`] and consumed by the waiting task.
#[derive(Default)]
pub struct Attention {
    raised: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Attention {
    /// Raises the flag and wakes the waiting task, if any. Signals raised before the
    /// task waits are not lost; several are seen as one.
    pub fn signal(&self) {
        self.raised.store(true, Ordering::Release);
        let waker = self.waker.lock().take();
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Ready (and lowers the flag) once the flag is raised; otherwise remembers the
    /// task to wake. Only one task may wait at a time.
    pub fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.raised.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        {
            let mut slot = self.waker.lock();
            if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *slot = Some(cx.waker().clone());
            }
        }
        // A signal between the first look and storing the waker may have found no
        // waker to wake: look again.
        if self.raised.swap(false, Ordering::AcqRel) {
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
}
