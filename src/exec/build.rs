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

/// The libraries a dynamic binary needs, as its own ELF interpreter lists
/// them (`ld.so --list`, what `ldd` runs); none for a static binary.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let bad = |reason: String| BuildError::Binary {
        path: bin.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(bin).map_err(|e| bad(format!("reading: {e}")))?;
    let Some(interp) = elf_interpreter(&bytes).map_err(bad)? else {
        return Ok(Vec::new());
    };
    let out = Command::new(&interp)
        .arg("--list")
        .arg(bin)
        .output()
        .map_err(|e| {
            bad(format!(
                "running its interpreter {} --list: {e}",
                interp.display()
            ))
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = parse_ldd(&text).map_err(|library| BuildError::MissingLibrary {
        binary: bin.to_path_buf(),
        library,
    })?;
    if !libs.contains(&interp) {
        libs.push(interp);
    }
    Ok(libs)
}

/// The `PT_INTERP` path of a 64-bit little-endian ELF file, `None` for a
/// static binary.
pub fn elf_interpreter(bytes: &[u8]) -> Result<Option<PathBuf>, String> {
    if bytes.get(..4) != Some(b"\x7fELF") {
        return Err(
            "not an ELF binary (for a script, add its interpreter with another --bin)".into(),
        );
    }
    if bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err("only 64-bit little-endian ELF binaries are supported".into());
    }
    let truncated = || "truncated ELF header".to_string();
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    };
    let phoff = usize::try_from(u64_at(0x20).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(0x36).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(0x38).ok_or_else(truncated)?);
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        if u32_at(ph).ok_or_else(truncated)? != 3 {
            continue; // not PT_INTERP
        }
        let offset =
            usize::try_from(u64_at(ph + 8).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let size =
            usize::try_from(u64_at(ph + 32).ok_or_else(truncated)?).map_err(|_| truncated())?;
        let raw = bytes
            .get(offset..offset.saturating_add(size))
            .ok_or_else(truncated)?;
        let path = std::str::from_utf8(raw).map_err(|_| "PT_INTERP is not UTF-8".to_string())?;
        return Ok(Some(PathBuf::from(path.trim_end_matches('\0'))));
    }
    Ok(None)
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
    let tmp = dest.with_extension("cgmgr-tmp");
    std::fs::copy(file, &tmp).map_err(|source| BuildError::Io {
        what: "copying to",
        path: tmp.clone(),
        source,
    })?;
    std::fs::rename(&tmp, &dest).map_err(|source| BuildError::Io {
        what: "renaming to",
        path: dest,
        source,
    })
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
                .contains("truncated")
        );
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
