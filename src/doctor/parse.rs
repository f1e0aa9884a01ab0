//! Pure readers of the kernel files `cgmgr doctor` looks at: which cgroup
//! filesystems are mounted where (`/proc/self/mountinfo`), which controller
//! is bound to which v1 hierarchy (`/proc/cgroups`), this process's seccomp
//! mode and effective capabilities (`/proc/self/status`), the user
//! namespace sysctls, and systemd's version string. Each is strict about
//! the shape it reads: a line that is not what the kernel writes is an
//! error naming it, and the caller decides what that means for its row.

use crate::cgroup::locate::unescape_mountinfo;
use std::path::PathBuf;

/// A file that is not shaped as the kernel writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}: {line:?}")]
pub struct ParseError {
    /// The file (`/proc/self/mountinfo`...).
    pub file: &'static str,
    /// What is wrong.
    pub reason: &'static str,
    /// The offending line (or the whole text of a one-value file).
    pub line: String,
}

fn bad(file: &'static str, reason: &'static str, line: &str) -> ParseError {
    ParseError {
        file,
        reason,
        line: line.to_string(),
    }
}

/// The cgroup2 mount: its root within the hierarchy and its mount point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Mount {
    /// The root of the mount within the hierarchy (`/` unless a subtree
    /// is bind-mounted, as in some containers).
    pub root: String,
    /// Where it is mounted.
    pub point: PathBuf,
}

/// A cgroup v1 hierarchy's mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    /// Where it is mounted.
    pub point: PathBuf,
    /// Its super options (`rw`, the controller names, `name=systemd`...).
    pub options: Vec<String>,
}

/// Every cgroup filesystem mountinfo lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// The first cgroup2 mount, if any.
    pub v2: Option<V2Mount>,
    /// Every cgroup v1 mount, in mountinfo's order.
    pub v1: Vec<V1Mount>,
}

/// How the host lays out its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// cgroup2 only: every controller can be in v2.
    Unified,
    /// cgroup2 beside v1 hierarchies that hold controllers.
    Hybrid,
    /// No cgroup2 mount at all.
    None,
}

impl Mode {
    /// The word the report uses.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Unified => "unified",
            Mode::Hybrid => "hybrid",
            Mode::None => "none",
        }
    }
}

impl CgroupMounts {
    /// Unified, hybrid (a v1 hierarchy holds a controller, not only a
    /// named one such as `name=systemd`) or none.
    pub fn mode(&self) -> Mode {
        let v1_controllers = self
            .v1
            .iter()
            .any(|m| m.options.iter().any(|o| is_controller_option(o)));
        match (&self.v2, v1_controllers) {
            (None, _) => Mode::None,
            (Some(_), true) => Mode::Hybrid,
            (Some(_), false) => Mode::Unified,
        }
    }

    /// The mount point of the v1 hierarchy that holds `controller`.
    pub fn v1_point(&self, controller: &str) -> Option<&PathBuf> {
        self.v1
            .iter()
            .find(|m| m.options.iter().any(|o| o == controller))
            .map(|m| &m.point)
    }
}

/// Super options of a v1 cgroup mount that are not controller names.
fn is_controller_option(option: &str) -> bool {
    !matches!(
        option,
        "rw" | "ro" | "xattr" | "noprefix" | "clone_children" | "cpuset_v2_mode" | "none"
    ) && !option.contains('=')
}

/// The cgroup filesystems of `/proc/self/mountinfo`: `ID PARENT MAJ:MIN
/// ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
pub fn mountinfo(text: &str) -> Result<CgroupMounts, ParseError> {
    const FILE: &str = "/proc/self/mountinfo";
    let mut out = CgroupMounts::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (left, right) = line
            .split_once(" - ")
            .ok_or_else(|| bad(FILE, "no ' - ' separator", line))?;
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 6 || right.len() < 3 {
            return Err(bad(FILE, "too few fields", line));
        }
        let point = PathBuf::from(unescape_mountinfo(left[4]));
        match right[0] {
            "cgroup2" if out.v2.is_none() => {
                out.v2 = Some(V2Mount {
                    root: unescape_mountinfo(left[3]),
                    point,
                });
            }
            "cgroup" => out.v1.push(V1Mount {
                point,
                options: right[2].split(',').map(str::to_string).collect(),
            }),
            _ => {}
        }
    }
    Ok(out)
}

/// One line of `/proc/cgroups`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subsystem {
    /// The controller's name.
    pub name: String,
    /// Its v1 hierarchy's id; 0 when it is in no v1 hierarchy (so free for
    /// cgroup v2).
    pub hierarchy: u32,
    /// Whether the kernel has it enabled (`cgroup_disable=` turns it off).
    pub enabled: bool,
}

/// `/proc/cgroups`: `#subsys_name hierarchy num_cgroups enabled`, one
/// controller a line.
pub fn proc_cgroups(text: &str) -> Result<Vec<Subsystem>, ParseError> {
    const FILE: &str = "/proc/cgroups";
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, hierarchy, _count, enabled] = fields[..] else {
            return Err(bad(FILE, "expected four fields", line));
        };
        out.push(Subsystem {
            name: name.to_string(),
            hierarchy: hierarchy
                .parse()
                .map_err(|_| bad(FILE, "hierarchy is not a number", line))?,
            enabled: match enabled {
                "1" => true,
                "0" => false,
                _ => return Err(bad(FILE, "enabled is neither 0 nor 1", line)),
            },
        });
    }
    Ok(out)
}

/// The controllers of `subsystems` bound to a v1 hierarchy, with its id.
pub fn bound_to_v1(subsystems: &[Subsystem]) -> Vec<(&str, u32)> {
    subsystems
        .iter()
        .filter(|s| s.enabled && s.hierarchy != 0)
        .map(|s| (s.name.as_str(), s.hierarchy))
        .collect()
}

/// This process's seccomp mode (`Seccomp:` of `/proc/self/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompMode {
    /// 0: no filter.
    Disabled,
    /// 1: strict mode.
    Strict,
    /// 2: one or more filters.
    Filter,
}

/// What `cgmgr doctor` reads of `/proc/self/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStatus {
    /// `Seccomp:`; absent on kernels built without seccomp.
    pub seccomp: Option<SeccompMode>,
    /// `Seccomp_filters:` (Linux 5.9): how many filters this process runs under.
    pub seccomp_filters: Option<u32>,
    /// `CapEff:`, the effective capability set as a bit mask.
    pub cap_eff: u64,
    /// `NoNewPrivs:`.
    pub no_new_privs: bool,
}

/// `CAP_SYS_RESOURCE`: PSI triggers with windows that are not a multiple
/// of 2 s need it.
pub const CAP_SYS_RESOURCE: u32 = 24;

impl ProcStatus {
    /// Whether `cap` is in the effective set.
    pub fn has_cap(&self, cap: u32) -> bool {
        self.cap_eff & (1u64 << cap) != 0
    }
}

/// `/proc/self/status`: `Key:\tvalue` lines; `CapEff:` must be there.
pub fn proc_status(text: &str) -> Result<ProcStatus, ParseError> {
    const FILE: &str = "/proc/self/status";
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .map(str::trim)
    };
    let cap_line = field("CapEff").ok_or_else(|| bad(FILE, "no CapEff: line", text))?;
    let cap_eff = u64::from_str_radix(cap_line, 16)
        .map_err(|_| bad(FILE, "CapEff is not a hexadecimal mask", cap_line))?;
    let seccomp = field("Seccomp")
        .map(|v| match v {
            "0" => Ok(SeccompMode::Disabled),
            "1" => Ok(SeccompMode::Strict),
            "2" => Ok(SeccompMode::Filter),
            _ => Err(bad(FILE, "Seccomp is not 0, 1 or 2", v)),
        })
        .transpose()?;
    let seccomp_filters = field("Seccomp_filters")
        .map(|v| {
            v.parse()
                .map_err(|_| bad(FILE, "Seccomp_filters is not a number", v))
        })
        .transpose()?;
    let no_new_privs = field("NoNewPrivs") == Some("1");
    Ok(ProcStatus {
        seccomp,
        seccomp_filters,
        cap_eff,
        no_new_privs,
    })
}

/// A sysctl file holding one unsigned number (`/proc/sys/user/max_user_namespaces`,
/// `/proc/sys/kernel/unprivileged_userns_clone`).
pub fn sysctl_number(file: &'static str, text: &str) -> Result<u64, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| bad(file, "not an unsigned number", text))
}

/// The major version of systemd's version string (`252.38-1~deb12u1`,
/// `v257`, `247`).
pub fn systemd_major(version: &str) -> Option<u32> {
    let digits: String = version
        .trim()
        .trim_start_matches('v')
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The version in the first line of `systemctl --version`: the package
/// version in parentheses (`systemd 252 (252.39-1~deb12u2)`), else the
/// number (`systemd 247`).
pub fn systemctl_version(output: &str) -> Option<String> {
    let first = output.lines().next()?.strip_prefix("systemd ")?;
    let (number, rest) = first.split_once(' ').unwrap_or((first, ""));
    let package = rest
        .strip_prefix('(')
        .and_then(|r| r.split_once(')'))
        .map(|(p, _)| p.to_string());
    Some(package.unwrap_or_else(|| number.to_string())).filter(|v| systemd_major(v).is_some())
}

/// The directory of the v2 cgroup this process runs in: the `0::` line of
/// `/proc/self/cgroup`, below `mount` (its root stripped).
pub fn own_v2_cgroup(proc_self_cgroup: &str, mount: &V2Mount) -> Result<PathBuf, ParseError> {
    const FILE: &str = "/proc/self/cgroup";
    let path = proc_self_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| bad(FILE, "no cgroup v2 line (0::/path)", proc_self_cgroup))?;
    if path.ends_with(" (deleted)") || path.split('/').any(|s| s == "..") {
        return Err(bad(
            FILE,
            "the cgroup is removed or outside the mount",
            path,
        ));
    }
    let relative = path
        .strip_prefix(mount.root.trim_end_matches('/'))
        .unwrap_or(path)
        .trim_start_matches('/');
    Ok(if relative.is_empty() {
        mount.point.clone()
    } else {
        mount.point.join(relative)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_MOUNTINFO: &str =
        include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.mountinfo");
    const HOST_CGROUPS: &str =
        include_str!("../../tests/fixtures/kernel/host-6.18-hybrid.proc-cgroups");
    const HOST_STATUS: &str = include_str!("../../tests/fixtures/kernel/host-6.18.status");
    const VM_MOUNTINFO: &str = include_str!("../../tests/fixtures/kernel/vm-6.1.mountinfo");
    const VM_CGROUPS: &str = include_str!("../../tests/fixtures/kernel/vm-6.1.proc-cgroups");
    const VM_STATUS: &str = include_str!("../../tests/fixtures/kernel/vm-6.1.status");
    const SYSTEMD_STATUS: &str =
        include_str!("../../tests/fixtures/kernel/vm-6.1-systemd-restricted.status");

    #[test]
    fn the_hosts_hybrid_layout() {
        let m = mountinfo(HOST_MOUNTINFO).unwrap();
        assert_eq!(m.mode(), Mode::Hybrid);
        let v2 = m.v2.as_ref().unwrap();
        assert_eq!(v2.point, PathBuf::from("/sys/fs/cgroup/unified"));
        assert_eq!(v2.root, "/");
        assert_eq!(
            m.v1_point("memory"),
            Some(&PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(m.v1_point("hugetlb"), None);
        let subsystems = proc_cgroups(HOST_CGROUPS).unwrap();
        let bound: Vec<&str> = bound_to_v1(&subsystems).iter().map(|b| b.0).collect();
        assert_eq!(
            bound,
            [
                "cpuset", "cpu", "cpuacct", "blkio", "memory", "devices", "freezer", "pids"
            ]
        );
        let memory = subsystems.iter().find(|s| s.name == "memory").unwrap();
        assert_eq!((memory.hierarchy, memory.enabled), (4, true));
    }

    #[test]
    fn a_vms_unified_layout() {
        let m = mountinfo(VM_MOUNTINFO).unwrap();
        assert_eq!(m.mode(), Mode::Unified);
        assert_eq!(m.v2.unwrap().point, PathBuf::from("/sys/fs/cgroup"));
        assert!(m.v1.is_empty());
        let subsystems = proc_cgroups(VM_CGROUPS).unwrap();
        assert!(bound_to_v1(&subsystems).is_empty());
        assert!(subsystems.iter().any(|s| s.name == "pids" && s.enabled));
    }

    #[test]
    fn a_named_v1_hierarchy_alone_is_still_unified() {
        // systemd's compatibility mount holds no controller.
        let text = "30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n\
                    31 30 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n";
        assert_eq!(mountinfo(text).unwrap().mode(), Mode::Unified);
        let v1_only = "31 23 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu,cpuacct\n";
        let m = mountinfo(v1_only).unwrap();
        assert_eq!(m.mode(), Mode::None);
        assert_eq!(
            m.v1_point("cpuacct"),
            Some(&PathBuf::from("/sys/fs/cgroup/cpu"))
        );
        assert_eq!(mountinfo("").unwrap().mode(), Mode::None);
    }

    #[test]
    fn mountinfo_paths_are_unescaped_and_bad_lines_named() {
        let text = "30 23 0:26 /a\\040b /mnt/my\\040cg rw shared:1 - cgroup2 cgroup2 rw\n";
        let v2 = mountinfo(text).unwrap().v2.unwrap();
        assert_eq!(v2.point, PathBuf::from("/mnt/my cg"));
        assert_eq!(v2.root, "/a b");
        let e = mountinfo("30 23 0:26 / /x rw cgroup2\n").unwrap_err();
        assert_eq!(e.reason, "no ' - ' separator");
        assert!(e.to_string().starts_with("/proc/self/mountinfo: "), "{e}");
        assert_eq!(
            mountinfo("30 23 / - cgroup2 x rw\n").unwrap_err().reason,
            "too few fields"
        );
    }

    #[test]
    fn proc_cgroups_refuses_what_the_kernel_does_not_write() {
        assert!(proc_cgroups("").unwrap().is_empty());
        assert_eq!(
            proc_cgroups("memory\t4\t1\n").unwrap_err().reason,
            "expected four fields"
        );
        assert_eq!(
            proc_cgroups("memory\tfour\t1\t1\n").unwrap_err().reason,
            "hierarchy is not a number"
        );
        assert_eq!(
            proc_cgroups("memory\t4\t1\tyes\n").unwrap_err().reason,
            "enabled is neither 0 nor 1"
        );
        let off = proc_cgroups("memory\t0\t1\t0\n").unwrap();
        assert!(!off[0].enabled);
        assert!(
            bound_to_v1(&off).is_empty(),
            "a disabled controller is bound nowhere"
        );
    }

    #[test]
    fn status_of_a_root_shell_and_of_a_sandboxed_unit() {
        // This host's root: no CAP_SYS_RESOURCE (bit 24 clear), no filter.
        let host = proc_status(HOST_STATUS).unwrap();
        assert_eq!(host.seccomp, Some(SeccompMode::Disabled));
        assert_eq!(host.seccomp_filters, Some(0));
        assert_eq!(host.cap_eff, 0x1ff_feff_ffff);
        assert!(!host.has_cap(CAP_SYS_RESOURCE));
        assert!(host.has_cap(21), "CAP_SYS_ADMIN");
        assert!(!host.no_new_privs);
        // Root in the VM: every capability.
        let vm = proc_status(VM_STATUS).unwrap();
        assert!(vm.has_cap(CAP_SYS_RESOURCE));
        assert_eq!(vm.seccomp, Some(SeccompMode::Disabled));
        // Under systemd-run -p RestrictSUIDSGID=yes: systemd's filters
        // (root loads them without no_new_privs).
        let unit = proc_status(SYSTEMD_STATUS).unwrap();
        assert_eq!(unit.seccomp, Some(SeccompMode::Filter));
        assert_eq!(unit.seccomp_filters, Some(3));
        assert!(!unit.no_new_privs);
        assert!(unit.has_cap(CAP_SYS_RESOURCE));
    }

    #[test]
    fn status_errors_name_the_field() {
        assert_eq!(
            proc_status("Name:\tx\n").unwrap_err().reason,
            "no CapEff: line"
        );
        assert_eq!(
            proc_status("CapEff:\tzz\n").unwrap_err().reason,
            "CapEff is not a hexadecimal mask"
        );
        assert_eq!(
            proc_status("CapEff:\t0\nSeccomp:\t3\n").unwrap_err().reason,
            "Seccomp is not 0, 1 or 2"
        );
        // A kernel without seccomp has no Seccomp: line at all.
        let none = proc_status("CapEff:\t0000000000000000\n").unwrap();
        assert_eq!((none.seccomp, none.seccomp_filters), (None, None));
    }

    /// First lines of `systemctl --version` of Debian 11, 12 and 13.
    #[test]
    fn systemctl_versions() {
        assert_eq!(
            systemctl_version("systemd 247 (247.3-7+deb11u5)\n+PAM +AUDIT\n").as_deref(),
            Some("247.3-7+deb11u5")
        );
        assert_eq!(
            systemctl_version("systemd 252 (252.39-1~deb12u2)\n").as_deref(),
            Some("252.39-1~deb12u2")
        );
        assert_eq!(
            systemctl_version("systemd 257 (257.13-1~deb13u1)\n").as_deref(),
            Some("257.13-1~deb13u1")
        );
        assert_eq!(systemctl_version("systemd 249\n").as_deref(), Some("249"));
        assert_eq!(systemctl_version("not systemd\n"), None);
        assert_eq!(systemctl_version(""), None);
    }

    #[test]
    fn sysctls_and_systemd_versions() {
        let host = include_str!("../../tests/fixtures/kernel/host-6.18.max_user_namespaces");
        assert_eq!(
            sysctl_number("/proc/sys/user/max_user_namespaces", host).unwrap(),
            96363
        );
        assert_eq!(sysctl_number("x", "0\n").unwrap(), 0);
        assert!(sysctl_number("x", "-1\n").is_err());
        assert!(sysctl_number("x", "").is_err());
        assert_eq!(systemd_major("252.38-1~deb12u1"), Some(252));
        assert_eq!(systemd_major("247.3-7+deb11u6"), Some(247));
        assert_eq!(systemd_major("v257"), Some(257));
        assert_eq!(systemd_major("unknown"), None);
    }

    #[test]
    fn own_cgroup_below_the_mount() {
        let m = mountinfo(HOST_MOUNTINFO).unwrap().v2.unwrap();
        assert_eq!(
            own_v2_cgroup("1:cpu:/\n0::/\n", &m).unwrap(),
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        let vm = V2Mount {
            root: "/".into(),
            point: "/sys/fs/cgroup".into(),
        };
        assert_eq!(
            own_v2_cgroup("0::/system.slice/x.service\n", &vm).unwrap(),
            PathBuf::from("/sys/fs/cgroup/system.slice/x.service")
        );
        let bound = V2Mount {
            root: "/docker/abc".into(),
            point: "/sys/fs/cgroup".into(),
        };
        assert_eq!(
            own_v2_cgroup("0::/docker/abc/inner\n", &bound).unwrap(),
            PathBuf::from("/sys/fs/cgroup/inner")
        );
        assert!(own_v2_cgroup("1:cpu:/\n", &vm).is_err());
        assert!(own_v2_cgroup("0::/../x\n", &vm).is_err());
        assert!(own_v2_cgroup("0::/gone (deleted)\n", &vm).is_err());
    }
}
