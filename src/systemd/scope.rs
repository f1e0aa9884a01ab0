//! A transient scope with `Delegate=yes`, asked of systemd over D-Bus.
//!
//! `cgmgr exec` with no daemon on a systemd host must not create groups in
//! systemd's tree. It does what `systemd-run --scope -p Delegate=yes` does:
//! `StartTransientUnit` with this process's pid, so systemd moves cgmgr into a
//! new scope, marks it delegated, enables the controllers a delegated unit
//! gets, shows it in `systemctl status`, and removes it (subtree included)
//! when the last process in it exits. cgmgr then makes the workload's group
//! inside that scope.
//!
//! systemd answers on its private socket `/run/systemd/private` (root only,
//! no bus daemon needed) and on the system bus; the private socket is tried
//! first, as `systemctl` does. A user's cgmgr asks the user's own manager
//! (`user@UID.service`) the same way, as `systemd-run --user --scope` does:
//! its private socket `$XDG_RUNTIME_DIR/systemd/private`, then the user bus
//! `$XDG_RUNTIME_DIR/bus`.

use std::time::{Duration, Instant};

use super::dbus::{Arg, Connection, DbusError, PRIVATE_SOCKET, SYSTEM_BUS, connect_systemd};

/// How long systemd may take to move us into the scope (TCG VMs are slow).
const PLACEMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// A failure to get a delegated scope from systemd.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    /// Neither the private socket nor the system bus answered.
    #[error(
        "cannot reach systemd over D-Bus ({PRIVATE_SOCKET}: {private}; {SYSTEM_BUS}: {system}).\n  \
         hint: start the daemon (`systemctl start cgmgr`) and exec finds its groups, or pass a \
         delegated --root"
    )]
    Connect {
        /// Why the private socket failed.
        private: DbusError,
        /// Why the system bus failed.
        system: DbusError,
    },
    /// The user's manager answered on neither of its sockets (each error
    /// names its socket).
    #[error("cannot reach your systemd user manager ({private}; {bus})")]
    ConnectUser {
        /// Why its private socket failed.
        private: Box<DbusError>,
        /// Why the user bus failed.
        bus: Box<DbusError>,
    },
    /// systemd refused the unit.
    #[error("systemd refused the transient scope {unit}: {source}")]
    Start {
        /// The scope's name.
        unit: String,
        /// systemd's answer.
        source: DbusError,
    },
    /// The scope was started but this process never appeared in it.
    #[error("systemd started {unit}, but this process was not moved into it within {secs}s")]
    NotPlaced {
        /// The scope's name.
        unit: String,
        /// The bound waited.
        secs: u64,
    },
}

/// The name of the scope for a run of `group` by process `pid`:
/// `cgmgr-exec-batch-etl-1234.scope` for `batch/etl`.
pub fn unit_name(group: &str, pid: u32) -> String {
    let escaped: String = group
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("cgmgr-exec-{escaped}-{pid}.scope")
}

/// Moves this process into a new transient scope with `Delegate=yes` and
/// returns the scope's name once `/proc/self/cgroup` shows it.
pub fn enter_delegated_scope(group: &str) -> Result<String, ScopeError> {
    let pid = std::process::id();
    let unit = unit_name(group, pid);
    let mut conn = connect()?;
    let properties = vec![
        (
            "Description".to_string(),
            Arg::Str(format!("cgmgr exec --group {group}")),
        ),
        ("PIDs".to_string(), Arg::U32Array(vec![pid])),
        ("Delegate".to_string(), Arg::Bool(true)),
        // A failed run must not leave the scope behind for `reset-failed`.
        (
            "CollectMode".to_string(),
            Arg::Str("inactive-or-failed".into()),
        ),
    ];
    conn.call(
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
        "StartTransientUnit",
        &[
            Arg::Str(unit.clone()),
            Arg::Str("fail".into()),
            Arg::Properties(properties),
            Arg::AuxUnits(Vec::new()),
        ],
    )
    .map_err(|source| ScopeError::Start {
        unit: unit.clone(),
        source,
    })?;
    wait_until_placed(&unit)?;
    Ok(unit)
}

/// The private socket (root), else the system bus, as `systemctl` does;
/// for a user, their manager's private socket, else the user bus, as
/// `systemctl --user` does.
fn connect() -> Result<Connection, ScopeError> {
    if nix::unistd::geteuid().is_root() {
        return connect_systemd()
            .map_err(|(private, system)| ScopeError::Connect { private, system });
    }
    super::dbus::connect_user_manager().map_err(|(private, bus)| ScopeError::ConnectUser {
        private: Box::new(private),
        bus: Box::new(bus),
    })
}

fn wait_until_placed(unit: &str) -> Result<(), ScopeError> {
    let suffix = format!("/{unit}");
    let start = Instant::now();
    while start.elapsed() < PLACEMENT_TIMEOUT {
        let placed = std::fs::read_to_string("/proc/self/cgroup").is_ok_and(|c| {
            c.lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&suffix))
        });
        if placed {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(ScopeError::NotPlaced {
        unit: unit.to_string(),
        secs: PLACEMENT_TIMEOUT.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_valid_unit_names() {
        assert_eq!(unit_name("sandbox", 7), "cgmgr-exec-sandbox-7.scope");
        assert_eq!(
            unit_name("batch/etl-2", 1234),
            "cgmgr-exec-batch-etl-2-1234.scope"
        );
    }
}
