//! Subordinate ids for a user's runs: the ranges `/etc/subuid` and
//! `/etc/subgid` grant the caller, mapped by the setuid helpers
//! `newuidmap` and `newgidmap` (shadow's `uidmap` package), as rootless
//! podman does.
//!
//! A user may map nothing but their own uid and gid into a user namespace
//! they make; with a grant, the helpers map the range too. The run's inside
//! root is then the caller (files the caller owns stay theirs) and inside
//! ids 1..=N are the range: a workload run as one of them (`uid = 1000` in
//! its `[exec]` table) is not the caller on the host, so it can neither
//! write the caller's files nor signal or trace the caller's processes, and
//! a root file system's files can keep owners of their own.
//!
//! The files and the helpers are read here, once per resolution; the
//! parsers are pure functions over the files' text.

use std::path::{Path, PathBuf};

/// The most subordinate ids a run maps: with the caller's own id at inside
/// 0, inside ids span 0..65536, as a root run's leased range does.
pub const MAX_COUNT: u32 = 65_535;

/// One line of an id map: inside id, outside id, count.
pub type MapEntry = (u32, u32, u32);

/// A range of host ids: `start..start + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubRange {
    /// The first host id.
    pub start: u32,
    /// How many.
    pub count: u32,
}

/// What a user's run maps beyond their own ids: a uid range, a gid range
/// and the helpers that may write them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subordinate {
    /// From `/etc/subuid`, at most [`MAX_COUNT`] ids.
    pub uids: SubRange,
    /// From `/etc/subgid`, at most [`MAX_COUNT`] ids.
    pub gids: SubRange,
    /// The `newuidmap` found.
    pub newuidmap: PathBuf,
    /// The `newgidmap` found.
    pub newgidmap: PathBuf,
}

/// The outcome of looking for a user's subordinate ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Both files grant a range and both helpers are installed.
    Granted(Subordinate),
    /// Neither file grants the user anything: their own ids are all a run
    /// maps, as for most users.
    NotGranted,
    /// Something is granted but cannot be used; the text says what is
    /// missing and how to get it. The run maps the user's own ids.
    Unusable(String),
}

/// The files and the search path the lookup reads.
#[derive(Debug, Clone)]
pub struct Sources<'a> {
    /// `/etc/passwd`'s text (the user's name: ranges are granted by name).
    pub passwd: &'a str,
    /// `/etc/subuid`'s text, if it exists.
    pub subuid: Option<&'a str>,
    /// `/etc/subgid`'s text, if it exists.
    pub subgid: Option<&'a str>,
    /// `PATH`, where the helpers are looked for.
    pub path: &'a str,
    /// Whether this process runs with `no_new_privs` (`NoNewPrivs: 1` in
    /// `/proc/self/status`): a setuid helper it starts gains nothing.
    pub no_new_privs: bool,
}

/// Looks up the subordinate ids of the user `uid` in `/etc` and the
/// helpers in `PATH` (`/usr/bin:/bin` when unset).
pub fn lookup(uid: u32) -> Lookup {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let passwd = read("/etc/passwd").unwrap_or_default();
    let (subuid, subgid) = (read("/etc/subuid"), read("/etc/subgid"));
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let status = read("/proc/self/status").unwrap_or_default();
    let sources = Sources {
        passwd: &passwd,
        subuid: subuid.as_deref(),
        subgid: subgid.as_deref(),
        path: &path,
        no_new_privs: runs_with_no_new_privs(&status),
    };
    lookup_in(&sources, uid, is_executable_file)
}

/// [`lookup`] over given texts; `exists` tells whether a helper candidate
/// is an executable file.
pub fn lookup_in(src: &Sources<'_>, uid: u32, exists: impl Fn(&Path) -> bool) -> Lookup {
    let name = passwd_name(src.passwd, uid);
    let grant = |text: Option<&str>| text.and_then(|t| granted_range(t, name, uid));
    let (uids, gids) = (grant(src.subuid), grant(src.subgid));
    let who = name.map_or_else(|| format!("uid {uid}"), |n| format!("{n} (uid {uid})"));
    let (uids, gids) = match (uids, gids) {
        (None, None) => return Lookup::NotGranted,
        (Some(u), Some(g)) => (u, g),
        (Some(_), None) => return half_grant(&who, name, "uid", "gid"),
        (None, Some(_)) => return half_grant(&who, name, "gid", "uid"),
    };
    let find = |helper| find_in_path(src.path, helper, &exists);
    match (find("newuidmap"), find("newgidmap")) {
        (Some(_), Some(_)) if src.no_new_privs => Lookup::Unusable(format!(
            "/etc/subuid and /etc/subgid grant {who} ids from {} and {}, but this cgmgr runs \
             with no_new_privs, so the setuid newuidmap and newgidmap cannot map them: this run \
             maps your own uid and gid only (a systemd unit: drop NoNewPrivileges= and the \
             options that imply it)",
            uids.start, gids.start
        )),
        (Some(newuidmap), Some(newgidmap)) => Lookup::Granted(Subordinate {
            uids,
            gids,
            newuidmap,
            newgidmap,
        }),
        _ => Lookup::Unusable(format!(
            "/etc/subuid and /etc/subgid grant {who} ids from {} and {}, but newuidmap and \
             newgidmap are not both on PATH ({}): this run maps your own uid and gid only \
             (install them: `apt install uidmap` on Debian, `dnf install shadow-utils` on Fedora)",
            uids.start, gids.start, src.path
        )),
    }
}

/// Whether a `/proc/self/status` text says no_new_privs is set (read by
/// the status parser `cgmgr doctor` uses).
fn runs_with_no_new_privs(status: &str) -> bool {
    crate::doctor::parse::proc_status(status).is_ok_and(|s| s.no_new_privs)
}

/// Half a grant: `/etc/sub{has}` grants `who` a range, `/etc/sub{lacks}`
/// none; the text says how to add the missing one.
fn half_grant(who: &str, name: Option<&str>, has: &str, lacks: &str) -> Lookup {
    let name = name.unwrap_or("NAME");
    Lookup::Unusable(format!(
        "/etc/sub{has} grants {who} a range but /etc/sub{lacks} grants none: this run maps your \
         own uid and gid only (add a line `{name}:START:65536` to /etc/sub{lacks}, or run \
         `usermod --add-sub{lacks}s START-END {name}`)"
    ))
}

/// The name of the user `uid` in an `/etc/passwd` text.
pub fn passwd_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then_some(name)
    })
}

/// The first range an `/etc/subuid` or `/etc/subgid` text grants the user
/// named `name` or numbered `uid` (both forms are valid owners there), at
/// most [`MAX_COUNT`] ids of it. Malformed lines are passed over, as
/// newuidmap does.
pub fn granted_range(text: &str, name: Option<&str>, uid: u32) -> Option<SubRange> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let start: u32 = fields.next()?.parse().ok()?;
        let count: u32 = fields.next()?.parse().ok()?;
        let mine = owner == uid || Some(owner) == name;
        let fits = count > 0 && u64::from(start) + u64::from(count) <= u64::from(u32::MAX);
        (mine && fits && fields.next().is_none()).then_some(SubRange {
            start,
            count: count.min(MAX_COUNT),
        })
    })
}

/// The first `dir/name` of a `PATH` that `exists`; relative entries (an
/// empty one means the current directory) are passed over, so the helper
/// found never depends on where cgmgr was started.
pub fn find_in_path(path: &str, name: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    path.split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| Path::new(dir).join(name))
        .find(|p| exists(p))
}

fn is_executable_file(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The lines (inside, outside, count) of a user's run map: inside 0 is the
/// caller's `own` id, inside 1.. the range.
pub fn map_entries(own: u32, range: SubRange) -> [MapEntry; 2] {
    [(0, own, 1), (1, range.start, range.count)]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/etc/passwd`, `/etc/subuid` and `/etc/subgid` as `useradd` leaves
    /// them on Debian 12 for two users (SUB_UID_COUNT 65536).
    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        u:x:1000:1000::/home/u:/bin/sh\n\
        v:x:1001:1001::/home/v:/bin/sh\n";
    const SUBUID: &str = "u:100000:65536\nv:165536:65536\n";

    fn sources<'a>(subuid: Option<&'a str>, subgid: Option<&'a str>) -> Sources<'a> {
        Sources {
            passwd: PASSWD,
            subuid,
            subgid,
            path: "bin:/usr/local/bin:/usr/bin:/bin",
            no_new_privs: false,
        }
    }

    #[test]
    fn a_range_is_granted_by_name_or_by_number() {
        assert_eq!(
            granted_range(SUBUID, Some("v"), 1001),
            Some(SubRange {
                start: 165_536,
                count: 65_535
            })
        );
        assert_eq!(
            granted_range("1000:200000:1000\n", Some("u"), 1000),
            Some(SubRange {
                start: 200_000,
                count: 1000
            })
        );
        assert_eq!(granted_range(SUBUID, Some("w"), 1002), None);
        assert_eq!(
            granted_range(SUBUID, None, 1000),
            None,
            "u is a name, not 1000"
        );
    }

    #[test]
    fn malformed_or_empty_grants_are_passed_over() {
        let text = "u:abc:65536\nu:100000\nu:100000:0\nu:4294967295:2\nu:1:2:3\n\nu:300000:10\n";
        assert_eq!(
            granted_range(text, Some("u"), 1000),
            Some(SubRange {
                start: 300_000,
                count: 10
            })
        );
        assert_eq!(granted_range("", Some("u"), 1000), None);
    }

    #[test]
    fn the_name_comes_from_passwd() {
        assert_eq!(passwd_name(PASSWD, 1000), Some("u"));
        assert_eq!(passwd_name(PASSWD, 0), Some("root"));
        assert_eq!(passwd_name(PASSWD, 4242), None);
        assert_eq!(passwd_name("broken\n:x:7:7::/:/bin/sh\n", 7), None);
    }

    #[test]
    fn helpers_are_found_in_absolute_path_entries_only() {
        let found = find_in_path("bin::/usr/local/bin:/usr/bin", "newuidmap", |p| {
            p == Path::new("/usr/bin/newuidmap") || p.is_relative()
        });
        assert_eq!(found, Some(PathBuf::from("/usr/bin/newuidmap")));
        assert_eq!(find_in_path("bin:.", "newuidmap", |_| true), None);
    }

    #[test]
    fn both_grants_and_both_helpers_give_a_range() {
        let all = |p: &Path| p.starts_with("/usr/bin");
        let got = lookup_in(&sources(Some(SUBUID), Some(SUBUID)), 1000, all);
        assert_eq!(
            got,
            Lookup::Granted(Subordinate {
                uids: SubRange {
                    start: 100_000,
                    count: 65_535
                },
                gids: SubRange {
                    start: 100_000,
                    count: 65_535
                },
                newuidmap: "/usr/bin/newuidmap".into(),
                newgidmap: "/usr/bin/newgidmap".into(),
            })
        );
    }

    #[test]
    fn no_grant_is_silent_and_half_a_grant_says_what_is_missing() {
        let all = |_: &Path| true;
        assert_eq!(
            lookup_in(&sources(None, None), 1000, all),
            Lookup::NotGranted
        );
        assert_eq!(
            lookup_in(&sources(Some(""), Some("")), 1000, all),
            Lookup::NotGranted,
            "empty files, as Debian's passwd package ships them"
        );
        let Lookup::Unusable(why) = lookup_in(&sources(Some(SUBUID), Some("")), 1000, all) else {
            panic!("half a grant")
        };
        assert!(why.contains("/etc/subgid grants none"), "{why}");
        assert!(why.contains("usermod --add-subgids START-END u"), "{why}");
        let Lookup::Unusable(why) = lookup_in(&sources(None, Some(SUBUID)), 1000, all) else {
            panic!("half a grant")
        };
        assert!(why.contains("/etc/subuid grants none"), "{why}");
    }

    #[test]
    fn a_missing_helper_names_the_package() {
        let only_uid = |p: &Path| p == Path::new("/usr/bin/newuidmap");
        let Lookup::Unusable(why) = lookup_in(&sources(Some(SUBUID), Some(SUBUID)), 1000, only_uid)
        else {
            panic!("no newgidmap")
        };
        assert!(why.contains("ids from 100000 and 100000"), "{why}");
        assert!(why.contains("apt install uidmap"), "{why}");
    }

    /// `/proc/self/status` of a process in the Linux 6.1 VM.
    const STATUS: &str = include_str!("../../tests/fixtures/kernel/vm-6.1.status");

    #[test]
    fn no_new_privs_is_read_from_the_status_file() {
        assert!(!runs_with_no_new_privs(STATUS));
        assert!(runs_with_no_new_privs(
            &STATUS.replace("NoNewPrivs:\t0", "NoNewPrivs:\t1")
        ));
        assert!(
            !runs_with_no_new_privs("Name:\tcgmgr\n"),
            "a kernel without the line"
        );
    }

    #[test]
    fn under_no_new_privs_the_helpers_cannot_map_a_grant() {
        let all = |_: &Path| true;
        let src = Sources {
            no_new_privs: true,
            ..sources(Some(SUBUID), Some(SUBUID))
        };
        let Lookup::Unusable(why) = lookup_in(&src, 1000, all) else {
            panic!("setuid helpers under no_new_privs")
        };
        assert!(why.contains("runs with no_new_privs"), "{why}");
        assert!(why.contains("drop NoNewPrivileges="), "{why}");
        let src = Sources {
            no_new_privs: true,
            ..sources(None, None)
        };
        assert_eq!(lookup_in(&src, 1000, all), Lookup::NotGranted);
    }

    #[test]
    fn the_map_puts_the_caller_at_inside_root() {
        let range = SubRange {
            start: 100_000,
            count: 65_535,
        };
        assert_eq!(
            map_entries(1000, range),
            [(0, 1000, 1), (1, 100_000, 65_535)]
        );
    }
}
