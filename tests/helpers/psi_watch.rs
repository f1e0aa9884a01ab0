//! Benchmark helper: how long after a group's stall crossed a threshold was
//! it emptied?
//!
//! `psi_watch GROUP_DIR PERCENT WINDOW_MS [POLL_MS]` reads the group's
//! `memory.pressure` (`full total=`) and `cgroup.events` every 5 ms. The
//! stall *crosses* at the first reading where the stall within the last
//! WINDOW_MS (or since the first reading, earlier on) reaches PERCENT of
//! the window: the kernel trigger's own rule (growth within the window
//! reaches the threshold). With POLL_MS it also plays a polling monitor
//! (what oomd and systemd-oomd do): every POLL_MS, from a random phase, it
//! looks only at its own readings taken POLL_MS apart and writes
//! `cgroup.kill` once the same rule holds for them. Start it before the
//! workload: it waits for the group to be populated, then exits when the
//! group is empty again and prints `crossed_ms=… emptied_ms=… reaction_ms=…`, times
//! from its start.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!("usage: psi_watch GROUP_DIR PERCENT WINDOW_MS [POLL_MS]");
        std::process::exit(2);
    }
    let dir = PathBuf::from(&args[0]);
    let percent: f64 = args[1].parse().expect("PERCENT");
    let window = Duration::from_millis(args[2].parse().expect("WINDOW_MS"));
    let poll = args
        .get(3)
        .map(|p| Duration::from_millis(p.parse().expect("POLL_MS")));
    let start = Instant::now();
    let mut history: VecDeque<(Instant, u64)> = VecDeque::new();
    let mut polled: VecDeque<(Instant, u64)> = VecDeque::new();
    // A monitor's polls fall anywhere relative to when a stall begins.
    let phase = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    );
    let mut next_poll = start
        + poll.map_or(Duration::ZERO, |p| {
            Duration::from_nanos(phase % u64::try_from(p.as_nanos()).unwrap_or(1).max(1))
        });
    let mut crossed: Option<Instant> = None;
    let mut seen = false;
    loop {
        let now = Instant::now();
        let busy = populated(&dir);
        seen |= busy;
        if seen && !busy {
            let ms = |t: Instant| t.duration_since(start).as_secs_f64() * 1e3;
            match crossed {
                Some(c) => println!(
                    "crossed_ms={:.0} emptied_ms={:.0} reaction_ms={:.0}",
                    ms(c),
                    ms(now),
                    ms(now) - ms(c)
                ),
                None => println!("crossed_ms=none emptied_ms={:.0}", ms(now)),
            }
            return;
        }
        let total = full_total(&dir);
        history.push_back((now, total));
        while history.len() > 2 && now.duration_since(history[1].0) >= window {
            history.pop_front();
        }
        if crossed.is_none() && above(&history, window, percent) {
            crossed = Some(now);
        }
        if let Some(period) = poll
            && now >= next_poll
        {
            polled.push_back((now, total));
            while polled.len() > 2 && now.duration_since(polled[1].0) >= window {
                polled.pop_front();
            }
            if above(&polled, window, percent) {
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            }
            next_poll += period;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// True when the stall between the oldest and the newest reading (at most
/// a window apart) reaches `percent` of the window.
fn above(readings: &VecDeque<(Instant, u64)>, window: Duration, percent: f64) -> bool {
    let (Some(first), Some(last)) = (readings.front(), readings.back()) else {
        return false;
    };
    let stalled_us = last.1.saturating_sub(first.1) as f64;
    stalled_us >= window.as_micros() as f64 * percent / 100.0
}

fn full_total(dir: &Path) -> u64 {
    let text = std::fs::read_to_string(dir.join("memory.pressure")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("full "))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("total=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn populated(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}
