//! The operations kit: alert rules checked and unit-tested with promtool,
//! the Grafana dashboard well-formed, the example scrape config accepted.
//! (Each dashboard expression is run against a real Prometheus scraping a
//! real cgmgr in tests/vm.rs.)

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards"))
        .output()
        .expect("promtool is needed (Debian package prometheus; tests/prereqs.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn alert_rules_are_valid_and_their_unit_tests_pass() {
    let checked = promtool(&["check", "rules", "cgmgr.rules.yml"]);
    assert!(checked.contains("SUCCESS: 11 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "cgmgr.rules.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
    // Every alert has a unit test.
    let rules = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/cgmgr.rules.yml"),
    )
    .unwrap();
    let tests = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/cgmgr.rules.test.yml"),
    )
    .unwrap();
    for line in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        assert!(
            tests.contains(&format!("alertname: {line}")),
            "alert {line} has no unit test"
        );
    }
}

#[test]
fn dashboard_has_the_group_variable_and_the_panels() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/cgmgr.json"),
    )
    .unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert!(vars.contains(&"group"), "{vars:?}");
    let titles: Vec<&str> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for wanted in [
        "CPU used vs limit",
        "throttling",
        "Memory",
        "OOM kills",
        "pids.max",
        "Pressure stall",
        "Pressure actions",
        "reloads",
        "Drift",
        "Prepared sandboxes",
        "Frozen groups",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no panel about {wanted}: {titles:?}"
        );
    }
}

#[test]
fn example_scrape_config_is_accepted() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn kubernetes_manifest_is_valid_and_its_policy_checks() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = repo.join("systemd/kubernetes/cgmgr.yaml");
    let out = Command::new("kubernetes-validate")
        .arg("--strict")
        .arg(&manifest)
        .output()
        .expect("kubernetes-validate is needed (pip install kubernetes-validate; tests/prereqs.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for kind in [
        "namespace/cgmgr",
        "configmap/cgmgr-policies",
        "daemonset/cgmgr",
    ] {
        assert!(
            text.contains(&format!("passed for resource {kind}")),
            "{text}"
        );
    }
    // The policy shipped in the ConfigMap is itself valid.
    let yaml = std::fs::read_to_string(&manifest).unwrap();
    let policy: String = yaml
        .lines()
        .skip_while(|l| !l.contains("sandbox.toml: |"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    assert!(policy.contains("[group.sandbox]"), "{policy}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sandbox.toml"), policy).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_cgmgr"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
}
