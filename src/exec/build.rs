//! `cgmgr rootfs build DIR --bin PATH...`: a minimal root filesystem from
//! host binaries and the shared libraries the dynamic loader needs for them
//! (as `ldd` lists), plus the directories a sandbox needs.
//!
//! Files keep their host paths (`/usr/bin/env` → `DIR/usr/bin/env`), so the
//! ELF interpreter path compiled into each binary resolves inside. Running it
//! twice gives the same tree.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// Directories every rootfs gets (mount points and `/etc`).
pub const SKELETON: [(&str, u32); 4] = [("proc", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("etc", 0o755)];

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
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io("chmod", &path))?;
    }
    let mut copied = Vec::new();
    for bin in bins {
        if !bin.is_absolute() || !bin.is_file() {
            return Err(BuildError::Binary { path: bin.clone(), reason: "not an absolute path to a file".into() });
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

/// The libraries and interpreter `ldd` lists for `bin`.
fn libraries(bin: &Path) -> Result<Vec<PathBuf>, BuildError> {
    let out = Command::new("ldd").arg(bin).output().map_err(|e| BuildError::Binary {
        path: bin.to_path_buf(),
        reason: format!("running ldd: {e}"),
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse_ldd(&text).map_err(|library| BuildError::MissingLibrary { binary: bin.to_path_buf(), library })
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
            if let Some(path) = target.split_whitespace().next().filter(|p| p.starts_with('/')) {
                libs.push(PathBuf::from(path));
            }
        } else if let Some(path) = line.split_whitespace().next().filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path)); // the ELF interpreter
        }
    }
    Ok(libs)
}

/// Copies a host file to the same path under `dir` (content of the final
/// symlink target, mode kept), through a temporary file and a rename.
fn copy_into(dir: &Path, file: &Path) -> Result<(), BuildError> {
    let relative: PathBuf = file.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    let dest = dir.join(&relative);
    let mut partial = dir.to_path_buf();
    for component in relative.components() {
        partial.push(component);
        refuse_symlink(&partial, dir)?;
    }
    let parent = dest.parent().unwrap_or(dir);
    std::fs::create_dir_all(parent).map_err(|source| BuildError::Io { what: "creating", path: parent.into(), source })?;
    let tmp = dest.with_extension("cgmgr-tmp");
    std::fs::copy(file, &tmp).map_err(|source| BuildError::Io { what: "copying to", path: tmp.clone(), source })?;
    std::fs::rename(&tmp, &dest).map_err(|source| BuildError::Io { what: "renaming to", path: dest, source })
}

fn refuse_symlink(path: &Path, root: &Path) -> Result<(), BuildError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(BuildError::Symlink { path: path.into(), root: root.into() }),
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
            [PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
        assert_eq!(parse_ldd("\tnot a dynamic executable\n").unwrap(), Vec::<PathBuf>::new());
        assert_eq!(parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(), "libfoo.so.1");
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
