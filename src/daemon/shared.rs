//! What the loop shares with the HTTP threads: the status it last
//! recorded, the daemon's own metrics, the heartbeat and the one scrape in
//! flight ([`Scrape`]), and the answers to `/metrics` and `/healthz` built
//! from them.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::cgroup::{CgroupRoot, GroupName};
use crate::metrics::Collector;
use crate::metrics::own::OwnMetrics;

use super::health;
use super::http::Response;

/// State shared with the HTTP threads.
pub(super) struct Shared {
    /// What the loop last recorded; locked only to copy in or out.
    pub(super) status: Mutex<Status>,
    /// The daemon's own metrics (atomic counters: no lock).
    pub(super) own: OwnMetrics,
    /// Beaten by the loop on every turn.
    pub(super) heartbeat: health::Heartbeat,
    /// The metrics collector and the scrape in flight.
    pub(super) scrape: Scrape,
}

/// The loop's view for the HTTP threads.
#[derive(Default)]
pub(super) struct Status {
    pub(super) groups: Arc<Vec<GroupName>>,
    /// What works less well than it should (`/healthz` says each).
    pub(super) degraded: health::Degraded,
    pub(super) conditions: health::Conditions,
}

impl Shared {
    pub(super) fn status(&self) -> MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Concurrent scrapes share one collection: a request that arrives while
/// one runs waits for it and gets its text (at most one collection old),
/// instead of queueing for a collection of its own behind it.
#[derive(Default)]
pub(super) struct Scrape {
    collector: Mutex<Collector>,
    flight: Mutex<Flight>,
    finished: Condvar,
}

#[derive(Default)]
struct Flight {
    running: bool,
    generation: u64,
    last: Arc<String>,
}

impl Scrape {
    fn run(&self, collect: impl FnOnce(&mut Collector) -> String) -> Arc<String> {
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if flight.running {
            let seen = flight.generation;
            while flight.running && flight.generation == seen {
                flight = self
                    .finished
                    .wait(flight)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if flight.generation != seen {
                return flight.last.clone();
            }
            // The one in flight ended without a result: collect here.
        }
        flight.running = true;
        drop(flight);
        let landing = Landing(self);
        let body = Arc::new(collect(
            &mut self
                .collector
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        ));
        let mut flight = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.last = body.clone();
        flight.generation += 1;
        drop(flight);
        drop(landing);
        body
    }
}

/// Ends a flight, also when the collection panicked: waiters never hang.
struct Landing<'a>(&'a Scrape);

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flight = self.0.flight.lock().unwrap_or_else(PoisonError::into_inner);
        flight.running = false;
        drop(flight);
        self.0.finished.notify_all();
    }
}

/// The answer to an HTTP request for `path`.
pub(super) fn respond(root: &CgroupRoot, shared: &Shared, path: &str) -> Response {
    match path {
        "/metrics" => {
            let body = shared.scrape.run(|collector| {
                let groups = shared.status().groups.clone();
                collector.scrape(root, &groups, Some(&shared.own))
            });
            Response {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: String::clone(&body),
            }
        }
        "/healthz" => {
            let (conditions, degraded) = {
                let status = shared.status();
                (status.conditions.clone(), status.degraded.clone())
            };
            let (status, text) = health::verdict(&conditions, &degraded, shared.heartbeat.since());
            Response::text(status, text)
        }
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Eight scrapes arriving together cost one or two collections, not
    /// eight in a row, and all get the text.
    #[test]
    fn concurrent_scrapes_share_a_collection() {
        let scrape = Arc::new(Scrape::default());
        let collections = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (scrape, collections, start) =
                    (scrape.clone(), collections.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    scrape.run(|_| {
                        let n = collections.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        format!("collection {n}")
                    })
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap().starts_with("collection "));
        }
        let n = collections.load(Ordering::SeqCst);
        assert!((1..=2).contains(&n), "{n} collections for 8 scrapes");
    }

    /// A collection that panics does not leave the others waiting forever.
    #[test]
    fn a_panicking_collection_releases_the_waiters() {
        let scrape = Arc::new(Scrape::default());
        let first = {
            let scrape = scrape.clone();
            std::thread::spawn(move || {
                scrape.run(|_| {
                    std::thread::sleep(Duration::from_millis(100));
                    panic!("collector bug")
                })
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        let body = scrape.run(|_| "second".to_string());
        assert_eq!(body.as_str(), "second");
        assert!(first.join().is_err());
    }
}
