//! The daemon's own metrics, kept in a `prometheus` crate registry: the
//! standard process metrics every exporter has (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, `process_max_fds`,
//! `process_start_time_seconds`...) from the crate's process collector, and
//! cgmgr's manager counters, updated where things happen (the loop, the
//! pressure thread) without a lock.
//!
//! The per-group families are not here: they are written by the fast
//! writer in `families.rs`, because the crate's per-sample label objects
//! made a 10,000-group scrape 36% slower (520 against 381 ms, BENCHMARKS.md).

use prometheus::{
    Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The registry and the handles the daemon updates.
pub struct OwnMetrics {
    registry: Registry,
    /// `cgmgr_policy_groups`
    pub policy_groups: IntGauge,
    /// `cgmgr_policy_reloads_total{result}`
    pub reloads: IntCounterVec,
    /// `cgmgr_policy_last_reload_success_timestamp_seconds`
    pub last_reload_success: Gauge,
    /// `cgmgr_drift_corrections_total{group,file}`
    pub drift_corrections: IntCounterVec,
    /// `cgmgr_pressure_actions_total{group,resource,action,result}`
    pub pressure_actions: IntCounterVec,
    /// `cgmgr_limit_events_unwatched_files`
    pub unwatched_event_files: IntGauge,
    /// `cgmgr_pressure_rules_unarmed`
    pub pressure_rules_unarmed: IntGauge,
    /// `cgmgr_exec_standby_requests_total{group,result}`
    pub standby_requests: IntCounterVec,
    /// `cgmgr_exec_standby_ready{group}`
    pub standby_ready: IntGaugeVec,
}

impl OwnMetrics {
    /// A registry with the process collector and every manager family.
    pub fn new() -> Result<OwnMetrics, prometheus::Error> {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let policy_groups =
            IntGauge::new("cgmgr_policy_groups", "Groups in the loaded policy set.")?;
        let reloads = IntCounterVec::new(
            Opts::new("cgmgr_policy_reloads_total", "Policy reloads by result."),
            &["result"],
        )?;
        // Both results exist from the start: a rate over them needs no
        // first event.
        reloads.with_label_values(&["success"]);
        reloads.with_label_values(&["error"]);
        let last_reload_success = Gauge::new(
            "cgmgr_policy_last_reload_success_timestamp_seconds",
            "Unix time of the last successful policy reload.",
        )?;
        let drift_corrections = IntCounterVec::new(
            Opts::new(
                "cgmgr_drift_corrections_total",
                "Values rewritten because they differed from the policy.",
            ),
            &["group", "file"],
        )?;
        let pressure_actions = IntCounterVec::new(
            Opts::new(
                "cgmgr_pressure_actions_total",
                "Pressure rules that fired, by result: done, dry_run (logged and counted only) or failed. CPU pressure includes time a group is throttled by its own cpu.max.",
            ),
            &["group", "resource", "action", "result"],
        )?;
        let unwatched_event_files = IntGauge::new(
            "cgmgr_limit_events_unwatched_files",
            "Limit-event files without an inotify watch (fs.inotify.max_user_watches ran out); read every reconcile tick instead.",
        )?;
        let pressure_rules_unarmed = IntGauge::new(
            "cgmgr_pressure_rules_unarmed",
            "Pressure rules without a kernel trigger: refused by the kernel (the daemon's log says why; without CAP_SYS_RESOURCE only windows that are a multiple of 2 s are taken), on a group that is missing, or on a group that holds the daemon. Retried every reconcile tick.",
        )?;
        let standby_requests = IntCounterVec::new(
            Opts::new(
                "cgmgr_exec_standby_requests_total",
                "cgmgr exec requests for a group with prepared sandboxes, by result: served (a prepared sandbox ran it) or none (none was ready: cgmgr exec built its own).",
            ),
            &["group", "result"],
        )?;
        let standby_ready = IntGaugeVec::new(
            Opts::new(
                "cgmgr_exec_standby_ready",
                "Prepared sandboxes ready to take a run, by group.",
            ),
            &["group"],
        )?;
        registry.register(Box::new(policy_groups.clone()))?;
        registry.register(Box::new(standby_requests.clone()))?;
        registry.register(Box::new(standby_ready.clone()))?;
        registry.register(Box::new(reloads.clone()))?;
        registry.register(Box::new(last_reload_success.clone()))?;
        registry.register(Box::new(drift_corrections.clone()))?;
        registry.register(Box::new(pressure_actions.clone()))?;
        registry.register(Box::new(unwatched_event_files.clone()))?;
        registry.register(Box::new(pressure_rules_unarmed.clone()))?;
        Ok(OwnMetrics {
            registry,
            policy_groups,
            reloads,
            last_reload_success,
            drift_corrections,
            pressure_actions,
            unwatched_event_files,
            pressure_rules_unarmed,
            standby_requests,
            standby_ready,
        })
    }

    /// The text exposition of everything registered.
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            return format!("# cgmgr: encoding its own metrics failed: {e}\n");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_metrics_carry_the_process_families_and_the_manager_counters() {
        let m = OwnMetrics::new().unwrap();
        m.pressure_actions
            .with_label_values(&["batch", "memory", "kill", "done"])
            .inc();
        m.drift_corrections
            .with_label_values(&["web", "pids.max"])
            .inc_by(2);
        let text = m.encode();
        for family in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{family}:\n{text}"
            );
        }
        // At 0 from the start: an alert on it needs no first event.
        assert!(
            text.contains("\ncgmgr_pressure_rules_unarmed 0\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "# HELP cgmgr_pressure_rules_unarmed Pressure rules without a kernel trigger"
            ),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_policy_reloads_total{result=\"error\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "cgmgr_pressure_actions_total{action=\"kill\",group=\"batch\",resource=\"memory\",result=\"done\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("cgmgr_drift_corrections_total{file=\"pids.max\",group=\"web\"} 2"),
            "{text}"
        );
    }
}
