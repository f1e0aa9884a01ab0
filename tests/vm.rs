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

/// One Debian release whose kernel (busybox VM) or whole system (systemd
/// VM) a test boots: `suite` is tests/vm/kernel.sh's `CGMGR_VM_SUITE`.
#[derive(Clone, Copy, Debug)]
struct Lane {
    suite: &'static str,
    kernel: &'static str,
}

/// Debian 11, 12 and 13: Linux 5.10, 6.1 and 6.12, systemd 247, 252, 257.
const LANES: [Lane; 3] = [
    Lane {
        suite: "bullseye",
        kernel: "5.10",
    },
    Lane {
        suite: "bookworm",
        kernel: "6.1",
    },
    Lane {
        suite: "trixie",
        kernel: "6.12",
    },
];

/// The lanes every VM test runs in: all of [`LANES`], or those whose suite
/// `CGMGR_VM_LANES` lists (comma-separated), to rerun one lane by hand.
fn lanes() -> Vec<Lane> {
    let Ok(only) = std::env::var("CGMGR_VM_LANES") else {
        return LANES.to_vec();
    };
    let picked: Vec<Lane> = only
        .split(',')
        .map(|s| {
            *LANES
                .iter()
                .find(|l| l.suite == s.trim())
                .unwrap_or_else(|| {
                    panic!("CGMGR_VM_LANES: {s:?} is not one of bullseye, bookworm, trixie")
                })
        })
        .collect();
    assert!(!picked.is_empty(), "CGMGR_VM_LANES names no lane");
    picked
}

/// Runs `script` in the busybox VM (tests/vm/run.sh) in every lane.
fn run_in_vm(script: &str) -> Vec<(Lane, String)> {
    run_with_harness("run.sh", script)
}

/// Runs `script` under a harness of tests/vm in every lane: `run.sh`
/// (busybox init, cgmgr the only manager, the lane's kernel) or
/// `run-systemd.sh` (the lane's whole Debian system, its systemd as PID 1).
fn run_with_harness(harness: &str, script: &str) -> Vec<(Lane, String)> {
    run_with_env(harness, script, &[])
}

fn run_with_env(harness: &str, script: &str, env: &[(&str, &str)]) -> Vec<(Lane, String)> {
    run_with_extras(harness, script, env, &[])
}

/// Like [`run_with_env`], with more host programs copied into the VM. Every
/// lane runs even when one fails; the test then fails naming each failed
/// lane with its log. Returns each lane's serial log.
fn run_with_extras(
    harness: &str,
    script: &str,
    env: &[(&str, &str)],
    extras: &[&str],
) -> Vec<(Lane, String)> {
    let mut logs = Vec::new();
    let mut failed = Vec::new();
    for lane in lanes() {
        match run_one(harness, script, lane, env, extras) {
            Ok(log) => logs.push((lane, log)),
            Err(why) => failed.push(format!(
                "=== lane {} (Linux {}) ===\n{why}",
                lane.suite, lane.kernel
            )),
        }
    }
    assert!(
        failed.is_empty(),
        "{script} failed in {} of {} lanes:\n{}",
        failed.len(),
        failed.len() + logs.len(),
        failed.join("\n")
    );
    logs
}

/// Prints the `MEASURE` lines of each lane's log, with the lane.
fn print_measures(logs: &[(Lane, String)]) {
    for (lane, log) in logs {
        for line in log.lines().filter(|l| l.starts_with("MEASURE ")) {
            println!("{} (Linux {}): {line}", lane.suite, lane.kernel);
        }
    }
}

/// One boot of `script` in `lane`: its serial log, or why it failed.
fn run_one(
    harness: &str,
    script: &str,
    lane: Lane,
    env: &[(&str, &str)],
    extras: &[&str],
) -> Result<String, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for extra in extras {
        assert!(
            Path::new(extra).exists(),
            "{extra} is missing on this machine (tests/prereqs.sh installs it)"
        );
    }
    let output = Command::new(repo.join("tests/vm").join(harness))
        .env("CGMGR_VM_SUITE", lane.suite)
        .envs(env.iter().copied())
        .arg(repo.join("tests/vm").join(script))
        .arg(env!("CARGO_BIN_EXE_cgmgr"))
        .arg("/usr/bin/unshare")
        .arg(helper("tiocsti"))
        .arg(helper("keyring"))
        .arg(helper("no_openat2"))
        .arg(helper("ns_intruder"))
        .arg(helper("fd_sender"))
        .args(extras)
        .output()
        .expect("running tests/vm/run.sh");
    let log = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let err = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "{script} failed in the VM\n--- serial console ---\n{log}\n--- harness ---\n{err}"
        ));
    }
    if !log.contains("\nPASS\n") {
        return Err(format!("{script} did not reach its end:\n{log}"));
    }
    Ok(log)
}

/// A host whose PID 1 is systemd, the unit installed unchanged: ownership
/// refusals, start through READY=1, limits under the unit's cgroup, exec,
/// status and metrics finding the daemon, systemctl reload, a failed reload
/// at error priority in the journal, daemon-reload and other units leaving
/// the limits alone, the watchdog, restart after kill -9, a clean stop, and
/// exec with no daemon in a transient delegated scope.
#[test]
fn vm_systemd_host() {
    print_measures(&run_with_harness("run-systemd.sh", "systemd.sh"));
}

/// Sandbox depth: host root without a user namespace, the caller's keyring,
/// descriptors, the cgroup namespace, validation before anything is made.
#[test]
fn vm_exec_sandbox_depth() {
    run_in_vm("sandbox.sh");
}

/// Runs apart from each other and from host users:
/// a setuid file a run left gives a host user no way into the run, the
/// default filter refuses setuid bits, consecutive runs get distinct host
/// ids, a survivor's range is not leased again, a `cgmgr exec` in another
/// pid namespace leaves live runs and its own process group alone, the
/// rootfs is read-only, `/proc/cmdline` masked, an unreachable rootfs
/// refused before anything is made. On 5.10: no `cgroup.kill` (abandoned
/// runs are ended by hand, through pidfds, never pid 0), no
/// `mount_setattr` (the read-only root is one remount per mount).
#[test]
fn vm_runs_are_isolated_from_each_other_and_host_users() {
    run_with_extras("run.sh", "isolation.sh", &[], &["/usr/bin/setpriv"]);
}

/// cgmgr as uid 1000 in a subtree delegated the kernel's way: apply inside
/// it, exec in the user's own uid OOM-killed at the user's limit, the
/// user's daemon found from outside the subtree by status and exec (a
/// prepared sandbox), another uid not served, outside the subtree a
/// refusal naming what is missing with nothing written, and with
/// `/etc/subuid` grants a run mapping the range through newuidmap, whose
/// subordinate ids cannot write the user's files.
#[test]
fn vm_a_user_with_a_delegated_subtree() {
    run_with_extras(
        "run.sh",
        "user.sh",
        &[],
        &[
            "/usr/bin/setpriv",
            "/usr/bin/newuidmap",
            "/usr/bin/newgidmap",
        ],
    );
}

/// cgmgr as uid 1000 under a real systemd user manager (started by linger):
/// `systemctl --user start cgmgr` with the user unit, status and exec
/// (OOM-killed at the user's limit) finding the user's daemon, exec in a
/// transient scope of the user manager, runs mapping the subordinate ids
/// `useradd` granted (through the release's own newuidmap), and uid 1001
/// reaching none of it.
#[test]
fn vm_a_user_with_a_systemd_user_manager() {
    run_with_harness("run-systemd.sh", "systemd-user.sh");
}

/// `cgmgr kill` of a group with a fork loop below it, and of a frozen
/// group, and a run that ignores SIGTERM (killed after the grace period;
/// on 5.10 it ran on for ever before the one kill path), on 6.1
/// (`cgroup.kill`) and on Debian 11's 5.10 (by hand).
#[test]
fn vm_kill_on_kernels_with_and_without_cgroup_kill() {
    run_in_vm("kill.sh");
}

/// inotify watches exhausted: said loudly, limit events read on the tick.
#[test]
fn vm_daemon_without_enough_inotify_watches() {
    run_in_vm("watches.sh");
}

/// `/` stays the initial ramfs: exec moves the rootfs over it and chroots.
#[test]
fn vm_exec_on_an_initramfs_root() {
    run_with_env(
        "run.sh",
        "initramfs.sh",
        &[("CGMGR_VM_KEEP_INITRAMFS", "1")],
    );
}

/// Without openat2 (seccomp ENOSYS), a bind mount inside the root is refused.
#[test]
fn vm_walk_keeps_openat2_guarantees() {
    run_in_vm("walk.sh");
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

/// A root below ancestors that enable nothing (no systemd): set up top-down
/// as plan steps, rolled back on failure, EBUSY explained.
#[test]
fn vm_ancestors_set_up_on_a_bare_host() {
    run_in_vm("ancestors.sh");
}

/// freeze, thaw and kill: CPU time stops while frozen, a frozen group is
/// killed by SIGKILL and emptied, errors name the group.
#[test]
fn vm_freeze_thaw_kill() {
    run_in_vm("control.sh");
}

/// Pressure rules on a kernel-measured stall: stress-ng in memory thrash is
/// killed (an idle sibling is not), a dry run only counts, a freeze rule
/// freezes and `cgmgr kill` empties the frozen group; a group throttled by
/// its own cpu.max shows CPU pressure and the log says it is throttling.
#[test]
fn vm_pressure_rules_act_on_measured_stall() {
    run_with_extras("run.sh", "pressure.sh", &[], &["/usr/bin/stress-ng"]);
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
    for (lane, log) in run_in_vm("daemon.sh") {
        let begin = log
            .find("---METRICS-BEGIN---\n")
            .expect("metrics start marker")
            + "---METRICS-BEGIN---\n".len();
        let end = log.find("---METRICS-END---").expect("metrics end marker");
        check_exposition(lane, &log[begin..end]);
    }
}

/// The daemon's scraped text in `lane`: the sandbox's OOM kill, and no
/// error or warning from `promtool check metrics`.
fn check_exposition(lane: Lane, metrics: &str) {
    assert!(
        metrics.contains("cgmgr_memory_events_total{group=\"sandbox\",event=\"oom_kill\"} 1"),
        "{lane:?}: {metrics}"
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
        "{lane:?}: promtool check metrics:\n{said}\n{metrics}"
    );
}

/// A free TCP port on loopback (bound, then released for the caller).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A plain HTTP GET on loopback; the body, or None if the server is not up.
fn http_get(port: u16, path_and_query: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    write!(
        s,
        "GET {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

/// Kills the child on drop, so a failed assertion leaves no process behind.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every PromQL expression of dashboards/cgmgr.json, with the Grafana
/// variables replaced by what Grafana would send ($group = All).
fn dashboard_expressions() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(e)) = m.get("expr") {
                    out.push(e.replace("$group", ".+").replace("$__rate_interval", "30s"));
                }
                m.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/cgmgr.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = Vec::new();
    walk(&dashboard, &mut out);
    assert!(
        out.len() >= 10,
        "the dashboard has only {} expressions",
        out.len()
    );
    out
}

/// Percent-encodes a PromQL query for a URL.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// True when a Prometheus API answer is a success with at least one series.
fn has_data(answer: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(answer).is_ok_and(|v| {
        v["status"] == "success"
            && v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
    })
}

/// A real Prometheus (Debian's package) on the host scrapes the daemon in
/// the VM through a forwarded port: PromQL returns the sandbox's memory
/// limit, and every expression of the Grafana dashboard parses and returns data.
#[test]
fn vm_real_prometheus_scrapes_the_daemon() {
    for lane in lanes() {
        scrape_in(lane);
    }
}

/// [`vm_real_prometheus_scrapes_the_daemon`] in one lane.
fn scrape_in(lane: Lane) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (metrics_port, release_port, prom_port) = (free_port(), free_port(), free_port());
    let qemu_net = format!(
        "-netdev user,id=n0,hostfwd=tcp:127.0.0.1:{metrics_port}-:9765,hostfwd=tcp:127.0.0.1:{release_port}-:9999 -device virtio-net-pci,netdev=n0"
    );
    let vm = Command::new(repo.join("tests/vm/run.sh"))
        .arg(repo.join("tests/vm/prometheus.sh"))
        .arg(env!("CARGO_BIN_EXE_cgmgr"))
        .env("CGMGR_VM_SUITE", lane.suite)
        .env("CGMGR_VM_QEMU_ARGS", qemu_net)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting the VM");
    let mut vm = Reaped(vm);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: cgmgr\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus is needed (Debian package prometheus; tests/prereqs.sh installs it)");
    let _prometheus = Reaped(prometheus);

    let query = |q: &str| http_get(prom_port, &format!("/api/v1/query?query={}", url_encode(q)));
    // The VM may first wait for another test's VM (one at a time): the
    // deadline covers that wait, the boot and the workloads.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(480);
    let limit_query = "cgmgr_memory_limit_bytes{group=\"sandbox\"}";
    let mut limit_answer = String::new();
    let mut missing: Vec<String> = dashboard_expressions();
    while std::time::Instant::now() < deadline {
        limit_answer = query(limit_query).unwrap_or_default();
        missing.retain(|e| !query(e).is_some_and(|a| has_data(&a)));
        if limit_answer.contains("\"67108864\"") && missing.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1000));
    }
    let answers: Vec<String> = missing
        .iter()
        .map(|e| format!("{e}\n  -> {}", query(e).unwrap_or_default()))
        .collect();
    // Release the VM either way, then collect its log.
    let _ = std::net::TcpStream::connect(("127.0.0.1", release_port));
    let child = std::mem::replace(&mut vm.0, Command::new("true").spawn().unwrap());
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(
        limit_answer.contains("\"status\":\"success\"") && limit_answer.contains("\"67108864\""),
        "{lane:?}: Prometheus did not return the sandbox's memory limit; last answer: {limit_answer}\n--- VM ---\n{log}"
    );
    assert!(
        missing.is_empty(),
        "{lane:?}: dashboard expressions without data:\n{}\n--- VM ---\n{log}",
        answers.join("\n")
    );
    assert!(
        output.status.success(),
        "{lane:?}: the VM side failed:\n{log}"
    );
}

/// The systemd unit's layout: the daemon started in the unit's cgroup with
/// `--root self` moves itself into cgmgr.leaf and manages only that subtree.
#[test]
fn vm_root_self_in_a_delegated_cgroup() {
    run_in_vm("delegate.sh");
}

/// `cgmgr exec` for real work: a judge's verdicts (accepted, wrong, time,
/// wall, memory, output, a fork bomb, a crash) from --report-file, direct
/// and through prepared sandboxes, CPU at the time-limit kill within
/// 1.0-1.6 s; mounts (read-only and read-write binds, sized tmpfs), a CI
/// job that writes artifacts only to its bind; bad mounts refused. On 6.1
/// (mount_setattr) and 5.10 (a remount per mount).
#[test]
fn vm_exec_for_real_work() {
    print_measures(&run_in_vm("judge.sh"));
}

/// A CI job in a real distribution's root (Debian 12 minbase, made once by
/// tests/vm/distro-root.sh): source bound read-only, a sized tmpfs,
/// artifacts to a read-write bind, nothing written anywhere else.
#[test]
fn vm_a_ci_job_in_a_debian_root() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let made = Command::new(repo.join("tests/vm/distro-root.sh"))
        .output()
        .expect("running tests/vm/distro-root.sh");
    assert!(
        made.status.success(),
        "the Debian root could not be made: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let tree = String::from_utf8_lossy(&made.stdout).trim().to_string();
    run_with_env(
        "run.sh",
        "distro.sh",
        &[("CGMGR_VM_TREE", tree.as_str()), ("CGMGR_VM_MEM", "2048")],
    );
}

/// Prepared sandboxes (`standby = N`): runs that take one are enforced as
/// any run (OOM kill, pids.max, own host ids, nothing outlives them).
#[test]
fn vm_exec_through_prepared_sandboxes() {
    print_measures(&run_in_vm("standby.sh"));
}

/// The text between `begin` and `end` in a VM's log.
fn doctor_between<'a>(log: &'a str, begin: &str, end: &str) -> &'a str {
    let start = log
        .find(begin)
        .unwrap_or_else(|| panic!("no {begin:?} in the log:\n{log}"))
        + begin.len();
    let stop = log[start..]
        .find(end)
        .unwrap_or_else(|| panic!("no {end:?} after {begin:?}:\n{log}"));
    &log[start..start + stop]
}

/// `cgmgr doctor --json` as printed: the exact names in the contract's
/// order, each object's fields in the order name, available, detail,
/// fallback (checked in the text: a parsed map would not keep it); the
/// rows by name.
fn doctor_rows(json: &str) -> std::collections::BTreeMap<String, (bool, String)> {
    const NAMES: [&str; 13] = [
        "cgroup2",
        "cgroup.kill",
        "cgroup.freeze",
        "memory.peak",
        "pids.events.local",
        "psi",
        "psi_triggers",
        "clone_into_cgroup",
        "openat2",
        "user_namespaces",
        "seccomp",
        "so_passrights",
        "systemd",
    ];
    let v: serde_json::Value =
        serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}):\n{json}"));
    let top: Vec<&String> = v.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["features"], "{json}");
    let features = v["features"].as_array().expect("features is an array");
    let names: Vec<&str> = features
        .iter()
        .map(|f| f["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(names, NAMES, "{json}");
    for (i, object) in json.split("\"name\": ").skip(1).enumerate() {
        let at = |k: &str| object.find(&format!("\"{k}\": ")).map(|p| p as i64);
        let order = [at("available"), at("detail"), at("fallback")];
        assert!(
            order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]),
            "row {i} ({}): fields out of order:\n{object}",
            NAMES[i]
        );
    }
    for f in features {
        let keys: Vec<&String> = f.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "exactly four fields: {f}");
        assert!(
            !f["fallback"].as_str().unwrap().is_empty(),
            "every row says what cgmgr does without it: {f}"
        );
    }
    features
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                (
                    f["available"].as_bool().expect("available is a boolean"),
                    f["detail"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

/// `cgmgr doctor` on a bare host in the three busybox lanes: Debian 12's
/// 6.1 (cgroup.kill and memory.peak, no pids.events.local), Debian 11's
/// 5.10 (none of the three) and Debian 13's 6.12 (all three); openat2 and
/// clone3 into a cgroup everywhere, SO_PASSRIGHTS nowhere (Linux 6.16).
/// The script checks each row against the files of the kernel it runs on;
/// this test checks the JSON contract and what each lane's kernel has.
#[test]
fn vm_doctor_reports_what_each_kernel_has() {
    for (lane, log) in run_in_vm("doctor.sh") {
        let kernel = doctor_between(&log, "vm: kernel ", ",");
        assert!(
            kernel.starts_with(&format!("{}.", lane.kernel)),
            "lane {lane:?} booted {kernel}"
        );
        let rows = doctor_rows(doctor_between(
            &log,
            "---DOCTOR-JSON-BEGIN---\n",
            "---DOCTOR-JSON-END---",
        ));
        // What each lane's kernel has (keyed on its version here, in a
        // test; cgmgr itself probes).
        let (kill, peak, local) = match lane.kernel {
            "5.10" => (false, false, false),
            "6.1" => (true, true, false),
            _ => (true, true, true),
        };
        for (name, want) in [
            ("cgroup2", true),
            ("cgroup.kill", kill),
            ("cgroup.freeze", true),
            ("memory.peak", peak),
            ("pids.events.local", local),
            ("clone_into_cgroup", true),
            ("openat2", true),
            ("seccomp", true),
            ("so_passrights", false),
            ("systemd", false),
        ] {
            assert_eq!(rows[name].0, want, "{kernel}: {name}: {}", rows[name].1);
        }
        assert!(
            rows["cgroup2"]
                .1
                .starts_with("unified: cgroup2 at /sys/fs/cgroup;")
        );
        println!("{kernel}: available: {}", doctor_available(&rows));
    }
}

/// The names of the available rows, for the test's output.
fn doctor_available(rows: &std::collections::BTreeMap<String, (bool, String)>) -> String {
    let seen: Vec<&str> = rows
        .iter()
        .filter(|(_, (ok, _))| *ok)
        .map(|(n, _)| n.as_str())
        .collect();
    seen.join(" ")
}

/// `cgmgr doctor` where the lane's systemd (247, 252, 257) is PID 1: a
/// plain root command (exit 1: the default root is systemd's, not
/// delegated; no trigger written there), under the shipped unit's
/// sandboxing with Delegate=yes and --root self (exit 0: openat2 refused
/// by its seccomp filter, with EPERM by 247 and ENOSYS by 252 and 257; the
/// root delegated), and under RestrictSUIDSGID=yes alone (exit 1).
#[test]
fn vm_doctor_under_systemd() {
    for (lane, log) in run_with_harness("run-systemd.sh", "doctor-systemd.sh") {
        let systemd = match lane.suite {
            "bullseye" => "247",
            "bookworm" => "252",
            _ => "257",
        };
        let refusal = if systemd == "247" { "EPERM" } else { "ENOSYS" };
        let report = |which: &str| {
            doctor_rows(doctor_between(
                &log,
                &format!("---DOCTOR-JSON-BEGIN {which}---\n"),
                "---DOCTOR-JSON-END---",
            ))
        };
        let plain = report("plain");
        assert!(plain["openat2"].0, "{}", plain["openat2"].1);
        assert!(!plain["psi_triggers"].0, "{}", plain["psi_triggers"].1);
        assert!(plain["systemd"].0);
        assert!(
            plain["systemd"]
                .1
                .starts_with(&format!("systemd {systemd} ("))
                && plain["systemd"]
                    .1
                    .contains("/sys/fs/cgroup is not delegated"),
            "{}",
            plain["systemd"].1
        );
        let sandboxed = report("sandboxed");
        assert!(!sandboxed["openat2"].0);
        assert!(
            sandboxed["openat2"]
                .1
                .starts_with(&format!("refused with {refusal} by a seccomp filter")),
            "systemd {systemd}: {}",
            sandboxed["openat2"].1
        );
        assert!(
            sandboxed["systemd"].1.contains("is delegated"),
            "{}",
            sandboxed["systemd"].1
        );
        for name in [
            "cgroup.freeze",
            "psi_triggers",
            "clone_into_cgroup",
            "seccomp",
        ] {
            assert!(sandboxed[name].0, "{name}: {}", sandboxed[name].1);
        }
        let restricted = report("restricted");
        assert!(!restricted["openat2"].0);
        for (which, rows) in [
            ("plain", &plain),
            ("sandboxed", &sandboxed),
            ("restricted", &restricted),
        ] {
            println!(
                "systemd {systemd}, Linux {}, {which}: available: {}",
                lane.kernel,
                doctor_available(rows)
            );
        }
    }
}

/// pids.max refusals of `cgmgr exec` runs are the group's on every kernel:
/// 6.1 and 5.10 count a refused fork only in the run group, which goes
/// away with the run; 6.12 counts it at the group whose limit refused it.
/// The group's count in `cgmgr metrics`, the daemon's `/metrics`, `cgmgr
/// status` and the daemon's event log equals the sum of the runs' own
/// reports on each: live runs, two runs ending at once, an abandoned run
/// reaped by the next one, a daemon restart.
#[test]
fn vm_pids_refusals_are_the_groups_on_every_kernel() {
    print_measures(&run_in_vm("pids-events.sh"));
}
