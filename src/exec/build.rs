//! `cgmgr rootfs build DIR --bin PATH...`: a minimal root filesystem from
//! host binaries and the shared libraries the dynamic loader needs for them
//! (as the ELF interpreter lists them: `ld.so --list`, what `ldd` runs),
//! plus the directories a sandbox needs.
//!
//! Files keep their host paths (`/usr/bin/env` → `DIR/usr/bin/env`), so the
//! ELF interpreter path compiled into each binary resolves inside. Running it
//! twice gives the same tree.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Directories every rootfs gets (mount points and `/etc`).
pub const SKELETON: [(&str, u32); 4] = [
    ("proc", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("etc", 0o755),
];

/// A failure building the rootfs.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A binary given with --bin is unusable.
    #[error("--bin {path}: {reason}")]
    Binary {
        /// The binary.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A library the loader needs was not found on the host.
    #[error("{binary}: ldd cannot find {library}")]
    MissingLibrary {
        /// The binary.
        binary: PathBuf,
        /// The library.
        library: String,
    },
    /// A path inside the rootfs is a symlink we refuse to write through.
    #[error("{path} is a symlink: refusing to write through it (it could lead outside {root})")]
    Symlink {
        /// The symlink.
        path: PathBuf,
        /// The rootfs.
        root: PathBuf,
    },
    /// Copying or creating failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds (or refreshes) the rootfs; returns the files copied, in order.
pub fn build(dir: &Path, bins: &[PathBuf]) -> Result<Vec<PathBuf>, BuildError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { what, path, source }
    };
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    for (name, mode) in SKELETON {
        let path = dir.join(name);
        refuse_symlink(&path, dir)?;
        std::fs::create_dir_all(&path).map_err(io("creating", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io("chmod", &path))?;
    }
    let mut copied = Vec::new();
    for bin in bins {
        if !bin.is_absolute() || !bin.is_file() {
            return Err(BuildError::Binary {
                path: bin.clone(),
                reason: "not an absolute path to a file".into(),
            });
        }
        let mut files = vec![bin.clone()];
        files.extend(libraries(bin)?);
        for file in files {
            if !copied.contains(&file) {
                copy_into(dir, &file)?;
                copied.push(file);
            }
        }
    }
    Ok(copied)
}

/// System dynamic loaders cgmgr will run to list a binary's libraries. The
/// `PT_INTERP` of a file given to `rootfs build` is only compared with these,
/// never executed: the file may be untrusted, and its interpreter field may
/// name any program.
pub const TRUSTED_LOADERS: [&str; 6] = [
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/ld-linux-aarch64.so.1",
    "/lib/ld-linux-armhf.so.3",
    "/lib/ld-linux.so.2",
    "/lib/ld64.so.2",
    "/lib/ld-linux-riscv64-lp64d.so.1",
];

/// The libraries a dynamic binary needs, as the system loader it names
/// lists them (`ld.so --list`, what `ldd` runs); none for a static binary.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let bad = |reason: String| BuildError::Binary {
        path: bin.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(bin).map_err(|e| bad(format!("reading: {e}")))?;
    let Some(interp) = elf_interpreter(&bytes).map_err(bad)? else {
        return Ok(Vec::new());
    };
    let Some(loader) = TRUSTED_LOADERS
        .iter()
        .find(|l| Path::new(l) == interp)
        .map(PathBuf::from)
    else {
        return Err(bad(format!(
            "its ELF interpreter {} is not a system loader ({}); cgmgr does not run programs a file names",
            interp.display(),
            TRUSTED_LOADERS.join(", ")
        )));
    };
    let out = Command::new(&loader)
        .arg("--list")
        .arg(bin)
        .output()
        .map_err(|e| {
            bad(format!(
                "running the system loader {} --list: {e}",
                loader.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = parse_ldd(&text).map_err(|library| BuildError::MissingLibrary {
        binary: bin.to_path_buf(),
        library,
    })?;
    if !libs.contains(&loader) {
        libs.push(loader);
    }
    Ok(libs)
}

/// The `PT_INTERP` path of an ELF file, `None` for a static binary. Parsed
/// by `goblin`, which bounds every offset against the file: a crafted
/// header gives an error, never an overflow or a read out of bounds.
pub fn elf_interpreter(bytes: &[u8]) -> Result<Option<PathBuf>, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(
            "not an ELF binary (for a script, add its interpreter with another --bin)".into(),
        );
    }
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| format!("malformed ELF: {e}"))?;
    Ok(elf
        .interpreter
        .map(|i| PathBuf::from(i.trim_end_matches('\0'))))
}

/// Parses `ldd` output into library paths; `Err(name)` for a library not found.
/// A static binary ("not a dynamic executable", "statically linked") has none.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some((name, rest)) = line.split_once("=>") {
            let target = rest.trim();
            if target.starts_with("not found") {
                return Err(name.trim().to_string());
            }
            if let Some(path) = target
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/'))
            {
                libs.push(PathBuf::from(path));
            }
        } else if let Some(path) = line
            .split_whitespace()
            .next()
            .filter(|p| p.starts_with('/'))
        {
            libs.push(PathBuf::from(path)); // the ELF interpreter
        }
    }
    Ok(libs)
}

/// Copies a host file to the same path under `dir` (content of the final
/// symlink target, mode kept), through a temporary file and a rename.
fn copy_into(dir: &Path, file: &Path) -> Result<(), BuildError> {
    let relative: PathBuf = file
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let dest = dir.join(&relative);
    let mut partial = dir.to_path_buf();
    for component in relative.components() {
        partial.push(component);
        refuse_symlink(&partial, dir)?;
    }
    let parent = dest.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|source| BuildError::Io {
        what: "creating",
        path: parent.into(),
        source,
    })?;
    let tmp = copy_to_new_file(file, parent)?;
    std::fs::rename(&tmp, &dest).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        BuildError::Io {
            what: "renaming to",
            path: dest,
            source,
        }
    })
}

/// Copies `file` into a file of `dir` that this call creates (`O_EXCL`,
/// `O_NOFOLLOW`, an unpredictable name): nothing planted in `dir` is
/// written through. Returns its path.
fn copy_to_new_file(file: &Path, dir: &Path) -> Result<PathBuf, BuildError> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { what, path, source }
    };
    let mut source = std::fs::File::open(file).map_err(io("opening", file))?;
    let mode = source
        .metadata()
        .map_err(io("inspecting", file))?
        .permissions()
        .mode();
    // std's hasher keys are random per process: an unguessable name.
    let nonce = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    let tmp = dir.join(format!(".cgmgr-{nonce:016x}"));
    let mut dest = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    let copied = std::io::copy(&mut source, &mut dest)
        .and_then(|_| dest.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777)));
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("copying to", &tmp)(e));
    }
    Ok(tmp)
}

fn refuse_symlink(path: &Path, root: &Path) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(BuildError::Symlink {
            path: path.into(),
            root: root.into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDD_UNSHARE: &str = include_str!("../../tests/fixtures/ldd-unshare.txt");

    #[test]
    fn parses_real_ldd_output() {
        let libs = parse_ldd(LDD_UNSHARE).unwrap();
        assert_eq!(
            libs,
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(),
            "libfoo.so.1"
        );
    }

    #[test]
    fn finds_the_interpreter_of_real_binaries() {
        let dynamic = std::fs::read("/usr/bin/unshare").unwrap();
        assert_eq!(
            elf_interpreter(&dynamic).unwrap(),
            Some(PathBuf::from("/lib64/ld-linux-x86-64.so.2"))
        );
        let stat = std::fs::read("/bin/busybox").unwrap();
        assert_eq!(elf_interpreter(&stat).unwrap(), None);
        assert!(
            elf_interpreter(b"#!/bin/sh\n")
                .unwrap_err()
                .contains("not an ELF")
        );
        assert!(
            elf_interpreter(b"\x7fELF\x02\x01")
                .unwrap_err()
                .contains("malformed ELF")
        );
    }

    /// A header whose program-header offset and count overflow when
    /// multiplied: an error, not a panic.
    #[test]
    fn a_crafted_header_is_an_error() {
        let mut elf = std::fs::read("/usr/bin/unshare").unwrap();
        elf[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&u16::MAX.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&u16::MAX.to_le_bytes()); // e_phnum
        assert!(elf_interpreter(&elf).is_err());
    }

    #[test]
    fn an_interpreter_that_is_not_a_system_loader_is_never_run() {
        let tmp = tempfile::tempdir().unwrap();
        // A copy of a real binary whose PT_INTERP names a program of ours.
        let mut elf = std::fs::read("/usr/bin/unshare").unwrap();
        let at = elf
            .windows(27)
            .position(|w| w == b"/lib64/ld-linux-x86-64.so.2")
            .unwrap();
        let evil = tmp.path().join("x");
        let name = evil.display().to_string();
        assert!(name.len() <= 27, "{name}");
        elf[at..at + 27].copy_from_slice(format!("{name:\0<27}").as_bytes());
        let marker = tmp.path().join("ran");
        std::fs::write(&evil, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = tmp.path().join("crafted");
        std::fs::write(&bin, &elf).unwrap();
        let e = build(&tmp.path().join("root"), &[bin])
            .unwrap_err()
            .to_string();
        assert!(e.contains("is not a system loader"), "{e}");
        assert!(!marker.exists(), "the file's interpreter was executed");
    }

    #[test]
    fn a_planted_symlink_at_a_temporary_name_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::create_dir_all(tmp.path().join("bin")).unwrap();
        // The name the earlier code used, predictably.
        std::os::unix::fs::symlink(&victim, tmp.path().join("bin/busybox.cgmgr-tmp")).unwrap();
        build(tmp.path(), &[PathBuf::from("/bin/busybox")]).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert!(tmp.path().join("bin/busybox").is_file());
    }

    #[test]
    fn refuses_to_write_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("bin")).unwrap();
        let e = build(tmp.path(), &[PathBuf::from("/bin/sh")]).unwrap_err();
        assert!(matches!(e, BuildError::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    }
}
