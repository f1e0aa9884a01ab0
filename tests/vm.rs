//! Enforcement tests on a real cgroup v2 kernel: each test boots a
//! throwaway QEMU VM (tests/vm/run.sh) and runs one script from tests/vm/
//! inside it. A missing prerequisite (qemu, busybox, the kernel package)
//! fails the test: it is never skipped.

use std::path::Path;
use std::process::Command;

/// A test helper from tests/helpers, built by `cargo test` as an example.
fn helper(name: &str) -> std::path::PathBuf {
    let exe = Path::new(env!("CARGO_BIN_EXE_cgmgr"));
    let path = exe.parent().unwrap().join("examples").join(name);
    assert!(
        path.exists(),
        "{} was not built (cargo test builds examples)",
        path.display()
    );
    path
}

fn run_in_vm(script: &str) -> String {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(repo.join("tests/vm/run.sh"))
        .arg(repo.join("tests/vm").join(script))
        .arg(env!("CARGO_BIN_EXE_cgmgr"))
        .arg("/usr/bin/unshare")
        .arg(helper("tiocsti"))
        .output()
        .expect("running tests/vm/run.sh");
    let log = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed in the VM\n--- serial console ---\n{log}\n--- harness ---\n{err}"
    );
    assert!(
        log.contains("\nPASS\n"),
        "{script} did not reach its end:\n{log}"
    );
    log
}

/// memory.max OOM kill, pids.max fork failures, cpu.max throttling.
#[test]
fn vm_kernel_enforces_applied_limits() {
    run_in_vm("limits.sh");
}

/// Dry run, nested groups, idempotence, refusal, rollback, prune, restart.
#[test]
fn vm_apply_is_a_transaction() {
    run_in_vm("plan.sh");
}

/// Evacuation of a delegated root whose processes keep forking.
#[test]
fn vm_tree_setup_loses_no_process() {
    run_in_vm("evacuate.sh");
}

/// A cgroup-namespace root, as in `docker run --privileged`, and `--root self`.
#[test]
fn vm_cgroup_namespace_root() {
    run_in_vm("cgroupns.sh");
}

/// An invalid policy set writes nothing; a missing controller is explained.
#[test]
fn vm_invalid_policy_writes_nothing() {
    run_in_vm("invalid.sh");
}

/// cgmgr exec: placement, namespaces, rootfs, init, hygiene, exit codes.
#[test]
fn vm_exec_isolates_the_workload() {
    run_in_vm("exec.sh");
}

/// cgmgr daemon: metrics, limit events, hot reload, drift, HTTP, signals;
/// the scraped text passes `promtool check metrics` without a warning.
#[test]
fn vm_daemon_enforces_and_exports() {
    let log = run_in_vm("daemon.sh");
    let begin = log
        .find("---METRICS-BEGIN---\n")
        .expect("metrics start marker")
        + "---METRICS-BEGIN---\n".len();
    let end = log.find("---METRICS-END---").expect("metrics end marker");
    let metrics = &log[begin..end];
    assert!(
        metrics.contains("cgmgr_memory_events_total{group=\"sandbox\",event=\"oom_kill\"} 1"),
        "{metrics}"
    );
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; tests/prereqs.sh installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{metrics}"
    );
}
