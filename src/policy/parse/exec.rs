//! The `[group.NAME.exec]` table: what `cgmgr exec` builds a run's
//! sandbox from.

use super::*;
use crate::policy::run::{self, Mount};

/// Keys of the `[group.NAME.exec]` table.
pub const EXEC_KEYS: [&str; 17] = [
    "rootfs",
    "readonly_root",
    "namespaces",
    "hostname",
    "uid",
    "gid",
    "env",
    "cwd",
    "seccomp",
    "nested_userns",
    "standby",
    "mounts",
    "network",
    "time_limit",
    "wall_limit",
    "extra_time",
    "rlimits",
];

/// Keys of one entry of `mounts`: a bind or a tmpfs.
pub const MOUNT_KEYS: [&str; 5] = ["bind", "at", "readonly", "tmpfs", "size"];

/// The most sandboxes the daemon keeps built ahead for one group.
pub const MAX_STANDBY: u32 = 16;

/// A hostname that [`check_hostname`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{hostname:?} is not a hostname: 1 to 64 letters, digits, `-` and `.`, not starting with `-`"
)]
pub struct HostnameError {
    /// What was asked.
    pub hostname: String,
}

/// A hostname the sandbox may get: 1 to 64 letters, digits, `-` and `.`,
/// not starting with `-` (the kernel takes any 64 bytes; resolvers do not).
pub fn check_hostname(s: &str) -> Result<(), HostnameError> {
    let valid_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if s.is_empty() || s.len() > 64 || !valid_chars || s.starts_with('-') {
        return Err(HostnameError { hostname: s.into() });
    }
    Ok(())
}

impl Parser<'_> {
    pub(super) fn exec(&mut self, value: &Value<'_>, group: &str) -> Option<ExecConfig> {
        let what = format!("[group.{group}.exec]");
        let DeValue::Table(t) = value.get_ref() else {
            self.wrong_type(value, &format!("`exec` in group `{group}`"), "a table");
            return None;
        };
        let mut exec = ExecConfig::default();
        for (key, value) in t {
            let ctx = format!("`{}` in {what}", key.get_ref());
            match key.get_ref().as_ref() {
                "rootfs" => exec.rootfs = self.abs_path(value, &ctx),
                "cwd" => exec.cwd = self.abs_path(value, &ctx),
                "hostname" => exec.hostname = self.hostname(value, &ctx),
                "uid" => exec.uid = self.id(value, &ctx),
                "gid" => exec.gid = self.id(value, &ctx),
                "namespaces" => exec.namespaces = self.namespaces(value, &ctx),
                "env" => exec.env = self.env(value, &ctx),
                "seccomp" => exec.seccomp = self.seccomp(value, &ctx),
                "nested_userns" => exec.nested_userns = self.flag(value, &ctx),
                "readonly_root" => exec.readonly_root = self.flag(value, &ctx),
                "standby" => {
                    exec.standby = self
                        .int(
                            value,
                            &ctx,
                            0..u64::from(MAX_STANDBY) + 1,
                            &format!("an integer from 0 to {MAX_STANDBY}"),
                        )
                        .and_then(|v| u32::try_from(v).ok());
                }
                "mounts" => exec.mounts = self.mounts(value, &ctx),
                "network" => {
                    exec.network = self.choice(value, &ctx, &crate::policy::run::Network::ALL)
                }
                "time_limit" => exec.time_limit = self.run_time(value, &ctx, run::run_time),
                "wall_limit" => exec.wall_limit = self.run_time(value, &ctx, run::run_time),
                "extra_time" => exec.extra_time = self.run_time(value, &ctx, run::extra_time),
                "rlimits" => exec.rlimits = self.rlimits(value, &ctx),
                _ => self.unknown_key(key, &format!("in {what}"), &EXEC_KEYS),
            }
        }
        Some(exec)
    }

    /// A user or group id; 4294967295 is (uid_t)-1, "no change", not an id.
    fn id(&mut self, value: &Value<'_>, what: &str) -> Option<u32> {
        self.int(
            value,
            what,
            0..u64::from(u32::MAX),
            "an integer id from 0 to 4294967294",
        )
        .and_then(|v| u32::try_from(v).ok())
    }

    fn abs_path(&mut self, value: &Value<'_>, what: &str) -> Option<PathBuf> {
        let s = self.string(value, what)?;
        if !s.starts_with('/') || s.contains('\0') {
            self.invalid(value, what, format!("{s:?} must be an absolute path"));
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn seccomp(
        &mut self,
        value: &Value<'_>,
        what: &str,
    ) -> Option<crate::policy::seccomp::Seccomp> {
        let s = self.string(value, what)?;
        crate::policy::seccomp::parse_setting(s)
            .map_err(|e| self.invalid(value, what, e))
            .ok()
    }

    fn hostname(&mut self, value: &Value<'_>, what: &str) -> Option<String> {
        let s = self.string(value, what)?;
        if let Err(e) = check_hostname(s) {
            self.invalid(value, what, e);
            return None;
        }
        Some(s.to_string())
    }

    fn namespaces(&mut self, value: &Value<'_>, what: &str) -> Option<BTreeSet<Namespace>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, what, "an array of names like [\"mount\", \"pid\"]");
            return None;
        };
        let names: Vec<&str> = Namespace::ALL.iter().map(|(n, _)| *n).collect();
        let mut set = BTreeSet::new();
        let mut ok = true;
        for item in items.iter() {
            let Some(name) = self.string(item, what) else {
                ok = false;
                continue;
            };
            match Namespace::from_name(name) {
                Some(ns) if set.insert(ns) => {}
                Some(_) => {
                    self.invalid(item, what, format!("{name:?} is listed twice"));
                    ok = false;
                }
                None => {
                    let hint = suggestion(name, &names)
                        .or_else(|| Some(format!("namespaces are: {}", names.join(", "))));
                    self.error(
                        item.span(),
                        format!("{what}: unknown namespace {name:?}"),
                        hint,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(set)
    }

    fn env(&mut self, value: &Value<'_>, what: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let DeValue::Table(t) = value.get_ref() else {
            self.wrong_type(value, what, "a table like { PATH = \"/bin:/usr/bin\" }");
            return env;
        };
        for (key, v) in t {
            let k = key.get_ref();
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                self.error(
                    key.span(),
                    format!("{what}: {k:?} is not a variable name (no `=`, not empty)"),
                    None,
                );
                continue;
            }
            if let Some(s) = self.string(v, &format!("{what}: `{k}`")) {
                if s.contains('\0') {
                    self.invalid(v, what, "values cannot contain NUL");
                    continue;
                }
                env.insert(k.to_string(), s.to_string());
            }
        }
        env
    }

    /// A time limit, checked by `check` (its range).
    fn run_time(
        &mut self,
        value: &Value<'_>,
        what: &str,
        check: fn(&str) -> Result<Duration, run::RunError>,
    ) -> Option<Duration> {
        let s = self.string(value, what)?;
        check(s).map_err(|e| self.invalid(value, what, e)).ok()
    }

    /// `mounts = [{ bind = "/src", at = "/dst", readonly = true }, { tmpfs = "/box", size = "64M" }]`.
    fn mounts(&mut self, value: &Value<'_>, what: &str) -> Vec<Mount> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value,
                what,
                "an array of tables like [{ bind = \"/srv/in\", at = \"/in\", readonly = true }]",
            );
            return Vec::new();
        };
        let mut mounts: Vec<Mount> = Vec::new();
        for item in items {
            let Some(mount) = self.mount(item, what) else {
                continue;
            };
            if mounts.iter().any(|m| m.at() == mount.at()) {
                let at = mount.at().display();
                self.error(
                    item.span(),
                    format!("{what}: two mounts at {at}"),
                    Some("keep one of them".into()),
                );
                continue;
            }
            mounts.push(mount);
        }
        mounts
    }

    fn mount(&mut self, item: &Value<'_>, what: &str) -> Option<Mount> {
        let DeValue::Table(t) = item.get_ref() else {
            self.wrong_type(item, what, "a table like { bind = \"/srv/in\", at = \"/in\" } or { tmpfs = \"/box\", size = \"64M\" }");
            return None;
        };
        let (mut bind, mut at, mut readonly, mut tmpfs, mut size) = (None, None, None, None, None);
        let mut ok = true;
        for (key, value) in t {
            let ctx = format!("{what}: `{}`", key.get_ref());
            let path = |p: &mut Self, check: fn(&str) -> Result<PathBuf, run::RunError>| {
                let s = p.string(value, &ctx)?;
                check(s).map_err(|e| p.invalid(value, &ctx, e)).ok()
            };
            match key.get_ref().as_ref() {
                "bind" => bind = Some(path(self, run::check_source)),
                "at" => at = Some(path(self, run::check_destination)),
                "tmpfs" => tmpfs = Some(path(self, run::check_destination)),
                "readonly" => readonly = Some(self.flag(value, &ctx)),
                "size" => {
                    size = Some(self.string(value, &ctx).and_then(|s| {
                        run::tmpfs_size(s)
                            .map_err(|e| self.invalid(value, &ctx, e))
                            .ok()
                    }))
                }
                _ => {
                    self.unknown_key(key, &format!("in an entry of {what}"), &MOUNT_KEYS);
                    ok = false;
                }
            }
        }
        let shape = |p: &mut Self, why: &str| {
            p.error(
                item.span(),
                format!("{what}: {why}"),
                Some("write { bind = \"/host/path\", at = \"/path\", readonly = true } or { tmpfs = \"/path\", size = \"64M\" }".into()),
            );
            None
        };
        match (bind, tmpfs) {
            (Some(_), Some(_)) => shape(self, "an entry is either a bind or a tmpfs, not both"),
            (Some(source), None) => {
                if size.is_some() {
                    return shape(self, "`size` is for a tmpfs, not a bind");
                }
                let Some(at) = at else {
                    return shape(self, "a bind has no `at`");
                };
                Some(Mount::Bind {
                    source: source?,
                    at: at?,
                    readonly: readonly.flatten().unwrap_or(false),
                })
                .filter(|_| ok)
            }
            (None, Some(at_tmpfs)) => {
                if at.is_some() || readonly.is_some() {
                    return shape(
                        self,
                        "a tmpfs names its place itself (tmpfs = \"/path\"): no `at` or `readonly`",
                    );
                }
                Some(Mount::Tmpfs {
                    at: at_tmpfs?,
                    size: size.flatten(),
                })
                .filter(|_| ok)
            }
            (None, None) => shape(self, "an entry has neither `bind` nor `tmpfs`"),
        }
    }

    /// `rlimits = { fsize = "1M", nofile = 64 }`.
    fn rlimits(&mut self, value: &Value<'_>, what: &str) -> Vec<(run::Rlimit, u64)> {
        let DeValue::Table(t) = value.get_ref() else {
            self.wrong_type(value, what, "a table like { nofile = 64, fsize = \"1M\" }");
            return Vec::new();
        };
        let names = run::rlimit_names();
        let mut limits = Vec::new();
        for (key, v) in t {
            let Some(limit) = run::rlimit(key.get_ref()) else {
                self.unknown_key(key, &format!("in {what}"), &names);
                continue;
            };
            let ctx = format!("{what}: `{}`", limit.name);
            let parsed = match v.get_ref() {
                DeValue::Integer(_) => self.int(v, &ctx, 0..u64::MAX, "a non-negative integer"),
                DeValue::String(s) => run::rlimit_value(limit, s)
                    .map_err(|e| self.invalid(v, &ctx, e))
                    .ok(),
                _ => {
                    let expected = if limit.size {
                        "a size: an integer number of bytes, or a string like \"1M\" or \"max\""
                    } else {
                        "an integer, or \"max\""
                    };
                    self.wrong_type(v, &ctx, expected);
                    None
                }
            };
            if let Some(n) = parsed {
                limits.push((limit, n));
            }
        }
        limits
    }
}
