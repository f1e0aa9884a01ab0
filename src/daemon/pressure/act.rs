//! Acting on a pressure rule whose stall lasted: freezing or killing its
//! group (never one that holds the daemon), logging the decision and
//! counting it in the daemon's metrics.

use crate::policy::model::PressureAction;

use crate::daemon::log::{Level, log};

use super::Engine;
use super::episode::{Measured, describe};

impl Engine {
    /// A freeze rule whose group is still frozen (`cgroup.freeze` 1, by an
    /// earlier decision or by hand) has nothing to do. Tasks sleeping in the
    /// kernel (memory.high throttling, reclaim) reach the freezer only when
    /// they return to user space, so a group can go on reporting stall for
    /// a few windows after it was told to freeze: that is the same stall,
    /// not a second decision.
    pub(super) fn still_frozen(&self, i: usize) -> bool {
        let a = &self.armed[i];
        if a.rule.action != PressureAction::Freeze {
            return false;
        }
        let frozen =
            crate::cgroup::control::freeze_requested(&self.root, &a.group).unwrap_or(false);
        if frozen {
            a.note("still stalled, already frozen (cgroup.freeze 1): nothing to do");
        }
        frozen
    }

    /// Carries out the rule's action; false when it failed.
    pub(super) fn act(&mut self, i: usize, measured: Option<Measured>) -> bool {
        let a = &self.armed[i];
        let stops = matches!(a.rule.action, PressureAction::Freeze | PressureAction::Kill);
        let result = if a.rule.dry_run {
            Ok("dry_run")
        } else if stops && crate::cgroup::locate::this_process_is_within(&self.root, &a.group) {
            // Checked again at every decision: the daemon may have been
            // moved into the group since the rule was armed.
            Err(holds_daemon(a.rule.action))
        } else {
            let write = |file, value| {
                self.root
                    .write(&a.group, file, value)
                    .map(|()| "done")
                    .map_err(|e| e.to_string())
            };
            match a.rule.action {
                PressureAction::Log => Ok("done"),
                PressureAction::Freeze => write("cgroup.freeze", "1"),
                PressureAction::Kill => {
                    crate::cgroup::control::kill_processes(&self.root, &a.group)
                        .map(|_| "done")
                        .map_err(|e| e.to_string())
                }
            }
        };
        let (label, level, why) = match &result {
            Ok(r) => (*r, Level::Warning, String::new()),
            Err(e) => ("failed", Level::Error, format!(": {e}")),
        };
        log(
            level,
            &format!(
                "pressure: group={} resource={} kind={} stall={} (above {} for {}) action={} result={label}{why}",
                a.group,
                a.rule.resource.name(),
                a.rule.kind.name(),
                describe(measured.as_ref(), a.rule.window),
                a.rule.above_text(),
                crate::policy::parse::show_duration(a.rule.sustain),
                a.rule.action.name(),
            ),
        );
        self.shared
            .own
            .pressure_actions
            .with_label_values(&[
                a.group.as_str(),
                a.rule.resource.name(),
                a.rule.action.name(),
                label,
            ])
            .inc();
        result.is_ok()
    }
}

/// Why a freeze or kill rule does not act on a group that holds the daemon.
pub(super) fn holds_daemon(action: PressureAction) -> String {
    format!(
        "the group holds cgmgr's own daemon; a {} would stop the daemon itself (use action = \"log\" or dry_run there)",
        action.name()
    )
}
