//! `io.max`: an array of per-device limits, each device named by number
//! or by a block device path resolved when the policy is validated.

use super::*;

/// Keys of one `io.max` entry.
pub const IO_MAX_KEYS: [&str; 5] = ["device", "rbps", "wbps", "riops", "wiops"];

impl Parser<'_> {
    /// The entries of an `io.max` array, each with its span.
    pub(super) fn io_max(
        &mut self,
        value: &Value<'_>,
        what: &str,
    ) -> Vec<(IoMaxLine, Range<usize>)> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value,
                what,
                "an array of tables like [{ device = \"8:0\", rbps = \"10M\" }]",
            );
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.io_max_entry(item, what).map(|l| (l, item.span())))
            .collect()
    }

    fn io_max_entry(&mut self, item: &Value<'_>, what: &str) -> Option<IoMaxLine> {
        let DeValue::Table(t) = item.get_ref() else {
            self.wrong_type(
                item,
                what,
                "a table like { device = \"8:0\", rbps = \"10M\" }",
            );
            return None;
        };
        let mut device = None;
        let mut limits = IoLimits::default();
        let mut ok = true;
        for (key, value) in t {
            let ctx = format!("{what}: `{}`", key.get_ref());
            let bps = |p: &mut Self| match value.get_ref() {
                DeValue::String(s) if s.trim() == "max" => Some(Limit::Max),
                _ => p
                    .size(value, &ctx)
                    .map(|l| l.value().map_or(Limit::Max, |b| Limit::Value(b.0))),
            };
            match key.get_ref().as_ref() {
                "device" => {
                    device = self
                        .string(value, &ctx)
                        .and_then(|s| self.device(value, &ctx, s))
                }
                "rbps" => limits.rbps = bps(self),
                "wbps" => limits.wbps = bps(self),
                "riops" => limits.riops = self.count(value, &ctx, u64::MAX - 1),
                "wiops" => limits.wiops = self.count(value, &ctx, u64::MAX - 1),
                _ => {
                    self.unknown_key(key, &format!("in an entry of {what}"), &IO_MAX_KEYS);
                    ok = false;
                }
            }
        }
        if device.is_none() && !t.keys().any(|k| k.get_ref() == "device") {
            self.error(
                item.span(),
                format!("{what}: an entry has no `device`"),
                Some("add device = \"MAJ:MIN\" or a block device path like \"/dev/sda\"".into()),
            );
        }
        if ok && limits == IoLimits::default() {
            self.error(
                item.span(),
                format!("{what}: an entry sets none of rbps, wbps, riops, wiops"),
                None,
            );
            ok = false;
        }
        match (ok, device) {
            (true, Some(device)) => Some(IoMaxLine { device, limits }),
            _ => None,
        }
    }

    fn device(&mut self, value: &Value<'_>, what: &str, text: &str) -> Option<DevNum> {
        if text.starts_with('/') {
            return match block_device_number(Path::new(text)) {
                Ok(dev) => Some(dev),
                Err(e) => {
                    self.invalid(value, what, e);
                    None
                }
            };
        }
        text.parse::<DevNum>()
            .map_err(|e| self.invalid(value, what, format!("{e}; write \"MAJ:MIN\" (see `lsblk -o NAME,MAJ:MIN`) or a path like \"/dev/sda\"")))
            .ok()
    }
}

/// A block device path of `io.max` that names no block device.
#[derive(Debug, thiserror::Error)]
enum DeviceError {
    #[error("cannot stat {}: {source}", path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a block device", path.display())]
    NotBlock { path: PathBuf },
}

/// The device number of a block device path.
fn block_device_number(path: &Path) -> Result<DevNum, DeviceError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).map_err(|source| DeviceError::Stat {
        path: path.into(),
        source,
    })?;
    if !meta.file_type().is_block_device() {
        return Err(DeviceError::NotBlock { path: path.into() });
    }
    let rdev = meta.rdev();
    Ok(DevNum {
        major: libc::major(rdev),
        minor: libc::minor(rdev),
    })
}
