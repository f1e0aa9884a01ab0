//! The signal thread: SIGHUP asks for a reload, SIGTERM and SIGINT for a
//! stop; a second stop signal exits at once.

use std::sync::mpsc::Sender;

use super::log::{Level, log};
use super::{DaemonError, Event};

/// Starts the thread that turns signals into events on `tx`.
pub(super) fn spawn_signal_thread(tx: Sender<Event>) -> Result<(), DaemonError> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGINT, SIGTERM])
        .map_err(|e| DaemonError::Setup(format!("signal handlers: {e}")))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut stopping = false;
            for sig in signals.forever() {
                if sig == SIGHUP {
                    let _ = tx.send(Event::Reload("SIGHUP"));
                } else if stopping {
                    log(Level::Warning, "second stop signal: exiting now");
                    std::process::exit(1);
                } else {
                    stopping = true;
                    let _ = tx.send(Event::Stop);
                }
            }
        })
        .map_err(|e| DaemonError::Setup(format!("signal thread: {e}")))?;
    Ok(())
}
