//! Closing triggers off the pressure thread.
//!
//! Closing a pressure file that holds a trigger makes the kernel wait for an
//! RCU grace period (`psi_trigger_destroy` calls `synchronize_rcu`): 8-16 ms
//! on our host. One after another on the pressure thread, the 1,024 triggers
//! a reload replaces kept it from acting for 16 s; left to the process exit,
//! which closes descriptors one by one, they made a stop take 9 s. Callers
//! waiting at once share one grace period, so a [`Releaser`] closes them on
//! up to [`MAX_THREADS`] threads of its own, started when there is work and
//! gone after [`IDLE_EXIT`] without any. [`Held`] is the one way the engine
//! lets go of a trigger: dropping it hands the trigger over.

use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// At most this many closing threads: 1,024 triggers (the policy cap) take
/// 16 rounds of concurrent grace periods.
pub const MAX_THREADS: usize = 64;

/// A closing thread with nothing to close for this long ends.
pub const IDLE_EXIT: Duration = Duration::from_secs(2);

/// Each thread only drops a file: a small stack is plenty.
const STACK: usize = 64 * 1024;

/// Drops what it is given on threads of its own; cloning shares them.
pub struct Releaser<T: Send + 'static> {
    pool: Arc<Pool<T>>,
    max_threads: usize,
}

impl<T: Send + 'static> Clone for Releaser<T> {
    fn clone(&self) -> Self {
        Releaser {
            pool: self.pool.clone(),
            max_threads: self.max_threads,
        }
    }
}

struct Pool<T> {
    state: Mutex<State<T>>,
    /// Signalled when work is queued.
    work: Condvar,
    /// Signalled when nothing is queued or being dropped.
    idle: Condvar,
}

struct State<T> {
    queue: Vec<T>,
    /// Queued or being dropped.
    pending: usize,
    threads: usize,
}

impl<T> Pool<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One item dropped: wakes the waiters of [`Releaser::wait_idle`] when
    /// it was the last.
    fn done(&self) {
        let mut state = self.lock();
        state.pending -= 1;
        if state.pending == 0 {
            self.idle.notify_all();
        }
    }
}

impl<T: Send + 'static> Releaser<T> {
    /// A releaser of at most `max_threads` threads (at least one).
    pub fn new(max_threads: usize) -> Releaser<T> {
        Releaser {
            pool: Arc::new(Pool {
                state: Mutex::new(State {
                    queue: Vec::new(),
                    pending: 0,
                    threads: 0,
                }),
                work: Condvar::new(),
                idle: Condvar::new(),
            }),
            max_threads: max_threads.max(1),
        }
    }

    /// Queues `item` to be dropped by a releasing thread, starting one when
    /// every running thread already has something to drop. Where no thread
    /// runs and none can be started, drops it here rather than never.
    pub fn release(&self, item: T) {
        let mut state = self.pool.lock();
        state.queue.push(item);
        state.pending += 1;
        if state.threads >= self.max_threads || state.threads >= state.pending {
            self.pool.work.notify_one();
            return;
        }
        state.threads += 1;
        let pool = self.pool.clone();
        let started = std::thread::Builder::new()
            .name("psi-release".into())
            .stack_size(STACK)
            .spawn(move || work(&pool));
        if started.is_err() {
            state.threads -= 1;
            if state.threads == 0 {
                let orphan = state.queue.pop();
                drop(state);
                drop(orphan);
                self.pool.done();
            } else {
                self.pool.work.notify_one();
            }
        }
    }

    /// Waits until everything released so far is dropped, at most
    /// `within`; how many are still queued or being dropped then.
    pub fn wait_idle(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let mut state = self.pool.lock();
        while state.pending > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .pool
                .idle
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.pending
    }
}

/// A releasing thread: drops queued items until none has come for
/// [`IDLE_EXIT`].
fn work<T>(pool: &Pool<T>) {
    let mut state = pool.lock();
    loop {
        if let Some(item) = state.queue.pop() {
            drop(state);
            drop(item);
            pool.done();
            state = pool.lock();
            continue;
        }
        let (next, waited) = pool
            .work
            .wait_timeout(state, IDLE_EXIT)
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        if waited.timed_out() && state.queue.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

/// A value the engine holds until it lets go: dropping it hands the value
/// to its releaser, never drops it on the dropping thread.
pub struct Held<T: Send + 'static> {
    value: Option<T>,
    releaser: Releaser<T>,
}

impl<T: Send + 'static> Held<T> {
    /// `value`, to be dropped by `releaser`.
    pub fn new(value: T, releaser: &Releaser<T>) -> Held<T> {
        Held {
            value: Some(value),
            releaser: releaser.clone(),
        }
    }
}

impl<T: Send + 'static> Deref for Held<T> {
    type Target = T;

    fn deref(&self) -> &T {
        // Taken only by `drop`.
        self.value
            .as_ref()
            .expect("a Held value is present until dropped")
    }
}

impl<T: Send + 'static> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            self.releaser.release(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sleeps when dropped, as a trigger's close waits for a grace period,
    /// and counts how many are being dropped at once.
    struct Slow {
        sleep: Duration,
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }

    impl Drop for Slow {
        fn drop(&mut self) {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            std::thread::sleep(self.sleep);
            self.now.fetch_sub(1, Ordering::SeqCst);
            self.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[derive(Default, Clone)]
    struct Counts {
        now: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
        dropped: Arc<AtomicUsize>,
    }

    impl Counts {
        fn slow(&self, ms: u64) -> Slow {
            Slow {
                sleep: Duration::from_millis(ms),
                now: self.now.clone(),
                most: self.most.clone(),
                dropped: self.dropped.clone(),
            }
        }
    }

    /// 64 drops of 100 ms each take about 100 ms, not 6.4 s, and the
    /// caller does not wait for any of them.
    #[test]
    fn drops_run_at_once_off_the_calling_thread() {
        let counts = Counts::default();
        let releaser = Releaser::new(64);
        let start = Instant::now();
        for _ in 0..64 {
            releaser.release(counts.slow(100));
        }
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "release waited"
        );
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "64 drops took {took:?}");
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 64);
        assert!(counts.most.load(Ordering::SeqCst) > 32);
    }

    /// Never more threads than the bound: 8 drops on 2 threads take four
    /// rounds.
    #[test]
    fn threads_are_bounded() {
        let counts = Counts::default();
        let releaser = Releaser::new(2);
        let start = Instant::now();
        for _ in 0..8 {
            releaser.release(counts.slow(50));
        }
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert_eq!(counts.most.load(Ordering::SeqCst), 2);
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 8);
    }

    /// `wait_idle` gives up at its bound and says how many are left.
    #[test]
    fn waiting_is_bounded_and_counts_what_is_left() {
        let counts = Counts::default();
        let releaser = Releaser::new(1);
        releaser.release(counts.slow(300));
        releaser.release(counts.slow(300));
        assert_eq!(releaser.wait_idle(Duration::from_millis(50)), 2);
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 2);
    }

    /// Dropping a `Held` hands the value over: the drop returns at once.
    #[test]
    fn dropping_a_held_value_releases_it() {
        let counts = Counts::default();
        let releaser = Releaser::new(4);
        let held = Held::new(counts.slow(200), &releaser);
        assert_eq!(held.sleep, Duration::from_millis(200));
        let start = Instant::now();
        drop(held);
        assert!(start.elapsed() < Duration::from_millis(100));
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 1);
    }

    /// Threads that ran out of work end; a later release starts one again.
    #[test]
    fn idle_threads_end_and_come_back() {
        let counts = Counts::default();
        let releaser = Releaser::new(4);
        releaser.release(counts.slow(1));
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        std::thread::sleep(IDLE_EXIT + Duration::from_millis(300));
        assert_eq!(releaser.pool.lock().threads, 0);
        releaser.release(counts.slow(1));
        assert_eq!(releaser.wait_idle(Duration::from_secs(5)), 0);
        assert_eq!(counts.dropped.load(Ordering::SeqCst), 2);
    }
}
