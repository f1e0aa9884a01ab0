//! Typed values of cgroup v2 interface files.
//!
//! Each type parses the kernel's own text (`FromStr`) and writes it back in
//! exactly the format the kernel accepts (`Display`), so a value read from a
//! file and written back round-trips byte for byte.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// Why a kernel value did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(msg.into()))
}

/// A limit that is either the kernel's `max` (no limit) or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Limit<T> {
    /// No limit: the kernel writes and reads `max`.
    Max,
    /// A concrete limit.
    Value(T),
}

impl<T> Limit<T> {
    /// The concrete value, or `None` for `max`.
    pub fn value(&self) -> Option<&T> {
        match self {
            Limit::Max => None,
            Limit::Value(v) => Some(v),
        }
    }
}

impl<T: fmt::Display> fmt::Display for Limit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Max => f.write_str("max"),
            Limit::Value(v) => v.fmt(f),
        }
    }
}

impl<T: FromStr> FromStr for Limit<T> {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "max" => Ok(Limit::Max),
            v => v
                .parse()
                .map(Limit::Value)
                .map_err(|_| ValueError(format!("expected \"max\" or a number, found {v:?}"))),
        }
    }
}

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl Bytes {
    /// The value rounded down to a multiple of `page`, as the kernel stores
    /// memory limits (`page_counter_memparse`).
    pub fn round_down(self, page: u64) -> Bytes {
        Bytes(self.0 - self.0 % page.max(1))
    }

    /// A human-readable form with a binary unit, e.g. `32 MiB` or `1.5 GiB`.
    pub fn human(self) -> String {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut unit = 0;
        let mut scaled = self.0 as f64;
        while scaled >= 1024.0 && unit < UNITS.len() - 1 {
            scaled /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            format!("{} B", self.0)
        } else if scaled.fract() == 0.0 {
            format!("{scaled:.0} {}", UNITS[unit])
        } else {
            format!("{scaled:.1} {}", UNITS[unit])
        }
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Bytes {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        s.trim()
            .parse()
            .map(Bytes)
            .map_err(|_| ValueError(format!("expected a byte count, found {s:?}")))
    }
}

/// Default `cpu.max` period in microseconds (the kernel's default).
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// Smallest quota and period the kernel accepts, in microseconds.
pub const MIN_CPU_US: u64 = 1_000;
/// Largest period the kernel accepts, in microseconds.
pub const MAX_CPU_PERIOD_US: u64 = 1_000_000;
/// Largest quota the kernel accepts, in microseconds (`max_cfs_runtime`).
pub const MAX_CPU_QUOTA_US: u64 = (1 << 44) - 1;

/// The content of `cpu.max`: a quota per period, both in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuMax {
    /// Run time allowed per period, or `max` for no limit.
    pub quota: Limit<u64>,
    /// Length of one period.
    pub period: u64,
}

impl CpuMax {
    /// The limit as a number of CPUs (`quota / period`), `None` when unlimited.
    pub fn cores(&self) -> Option<f64> {
        self.quota.value().map(|q| *q as f64 / self.period as f64)
    }

    /// Checks the kernel's ranges, so a bad value fails before any write.
    pub fn check_range(&self) -> Result<(), ValueError> {
        if !(MIN_CPU_US..=MAX_CPU_PERIOD_US).contains(&self.period) {
            return err(format!(
                "period {} µs is out of the kernel's range {MIN_CPU_US}..={MAX_CPU_PERIOD_US} µs",
                self.period
            ));
        }
        if let Limit::Value(q) = self.quota {
            if q < MIN_CPU_US {
                return err(format!(
                    "quota {q} µs is below the kernel's minimum of {MIN_CPU_US} µs (1 ms per period)"
                ));
            }
            if q > MAX_CPU_QUOTA_US {
                return err(format!(
                    "quota {q} µs is above the kernel's maximum of {MAX_CPU_QUOTA_US} µs"
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for CpuMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.quota, self.period)
    }
}

impl FromStr for CpuMax {
    type Err = ValueError;
    /// Parses the kernel's `"$MAX $PERIOD"`; a lone `$MAX` keeps the default period.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let mut words = s.split_whitespace();
        let quota = match words.next() {
            Some(q) => q.parse::<Limit<u64>>()?,
            None => return err("empty cpu.max value"),
        };
        let period = match words.next() {
            Some(p) => p
                .parse()
                .map_err(|_| ValueError(format!("cpu.max period {p:?} is not an integer")))?,
            None => DEFAULT_CPU_PERIOD_US,
        };
        if words.next().is_some() {
            return err(format!("cpu.max has more than two fields: {s:?}"));
        }
        Ok(CpuMax { quota, period })
    }
}

/// A CPU list as in `cpuset.cpus`: `0-3,8,10-11`. Empty means "inherit".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuSet(pub BTreeSet<u32>);

/// Highest CPU number accepted in a list (the kernel's `NR_CPUS` upper bound).
pub const MAX_CPU_INDEX: u32 = 8191;

impl FromStr for CpuSet {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let mut set = BTreeSet::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(CpuSet(set));
        }
        for part in s.split(',') {
            let (lo, hi) = match part.split_once('-') {
                Some((a, b)) => (parse_cpu(a, s)?, parse_cpu(b, s)?),
                None => {
                    let c = parse_cpu(part, s)?;
                    (c, c)
                }
            };
            if lo > hi {
                return err(format!("range {part:?} in {s:?} is backwards"));
            }
            set.extend(lo..=hi);
        }
        Ok(CpuSet(set))
    }
}

fn parse_cpu(word: &str, whole: &str) -> Result<u32, ValueError> {
    let cpu: u32 = word.parse().map_err(|_| {
        ValueError(format!(
            "{word:?} in {whole:?} is not a CPU number (expected a list like \"0-3,8\")"
        ))
    })?;
    if cpu > MAX_CPU_INDEX {
        return err(format!("CPU {cpu} is above the limit of {MAX_CPU_INDEX}"));
    }
    Ok(cpu)
}

impl fmt::Display for CpuSet {
    /// The kernel's canonical form: ascending ranges joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut iter = self.0.iter().copied().peekable();
        let mut first = true;
        while let Some(lo) = iter.next() {
            let mut hi = lo;
            while iter.peek() == Some(&(hi + 1)) {
                hi += 1;
                iter.next();
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// A block device number, `MAJ:MIN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

impl FromStr for DevNum {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let parsed = s
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        match parsed {
            Some((major, minor)) => Ok(DevNum { major, minor }),
            None => err(format!("{s:?} is not a device number MAJ:MIN")),
        }
    }
}

/// The four limits of one `io.max` line; `None` means "not set by us".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoLimits {
    /// Read bytes per second.
    pub rbps: Option<Limit<u64>>,
    /// Write bytes per second.
    pub wbps: Option<Limit<u64>>,
    /// Read operations per second.
    pub riops: Option<Limit<u64>>,
    /// Write operations per second.
    pub wiops: Option<Limit<u64>>,
}

impl IoLimits {
    /// Every limit as `max`: how the kernel treats a device without a line.
    pub const UNLIMITED: IoLimits = IoLimits {
        rbps: Some(Limit::Max),
        wbps: Some(Limit::Max),
        riops: Some(Limit::Max),
        wiops: Some(Limit::Max),
    };

    fn fields(&self) -> [(&'static str, Option<Limit<u64>>); 4] {
        [
            ("rbps", self.rbps),
            ("wbps", self.wbps),
            ("riops", self.riops),
            ("wiops", self.wiops),
        ]
    }

    /// True when every limit set in `self` has the same value in `actual`.
    pub fn satisfied_by(&self, actual: &IoLimits) -> bool {
        self.fields()
            .iter()
            .zip(actual.fields())
            .all(|((_, want), (_, have))| want.is_none() || *want == have)
    }

    /// The limits of `actual` for the keys set in `self`: what to restore.
    pub fn restrict_to_keys_of(&self, actual: &IoLimits) -> IoLimits {
        let pick = |want: Option<Limit<u64>>, have: Option<Limit<u64>>| want.and(have);
        IoLimits {
            rbps: pick(self.rbps, actual.rbps),
            wbps: pick(self.wbps, actual.wbps),
            riops: pick(self.riops, actual.riops),
            wiops: pick(self.wiops, actual.wiops),
        }
    }
}

/// One line of `io.max`: a device and its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoMaxLine {
    /// The block device.
    pub device: DevNum,
    /// Its limits.
    pub limits: IoLimits,
}

impl fmt::Display for IoMaxLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.device)?;
        for (key, value) in self.limits.fields() {
            if let Some(v) = value {
                write!(f, " {key}={v}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for IoMaxLine {
    type Err = ValueError;
    /// Parses `8:0 rbps=max wbps=10485760 riops=1000 wiops=max`.
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let mut words = s.split_whitespace();
        let device = words.next().unwrap_or("").parse()?;
        let mut limits = IoLimits::default();
        for word in words {
            let Some((key, value)) = word.split_once('=') else {
                return err(format!("io.max field {word:?} is not KEY=VALUE"));
            };
            let value = Some(value.parse()?);
            match key {
                "rbps" => limits.rbps = value,
                "wbps" => limits.wbps = value,
                "riops" => limits.riops = value,
                "wiops" => limits.wiops = value,
                _ => return err(format!("unknown io.max key {key:?}")),
            }
        }
        Ok(IoMaxLine { device, limits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_round_trips() {
        for s in ["max", "0", "33554432"] {
            assert_eq!(s.parse::<Limit<Bytes>>().unwrap().to_string(), s);
        }
        assert!("maxx".parse::<Limit<u64>>().is_err());
        assert_eq!("max\n".parse::<Limit<u64>>().unwrap(), Limit::Max);
    }

    #[test]
    fn cpu_max_kernel_format() {
        let v: CpuMax = "max 100000\n".parse().unwrap();
        assert_eq!(
            v,
            CpuMax {
                quota: Limit::Max,
                period: 100_000
            }
        );
        assert_eq!(v.to_string(), "max 100000");
        let v: CpuMax = "20000 100000".parse().unwrap();
        assert_eq!(v.cores(), Some(0.2));
        assert_eq!(v.to_string(), "20000 100000");
        assert!("".parse::<CpuMax>().is_err());
        assert!("1 2 3".parse::<CpuMax>().is_err());
    }

    #[test]
    fn cpu_max_ranges() {
        let ok = CpuMax {
            quota: Limit::Value(1000),
            period: 1000,
        };
        assert!(ok.check_range().is_ok());
        let low = CpuMax {
            quota: Limit::Value(500),
            period: 100_000,
        };
        assert!(
            low.check_range()
                .unwrap_err()
                .0
                .contains("below the kernel's minimum")
        );
        let period = CpuMax {
            quota: Limit::Max,
            period: 2_000_000,
        };
        assert!(period.check_range().is_err());
    }

    #[test]
    fn cpuset_canonical() {
        let s: CpuSet = "3,0-1,2,8-9".parse().unwrap();
        assert_eq!(s.to_string(), "0-3,8-9");
        assert_eq!("".parse::<CpuSet>().unwrap().to_string(), "");
        assert!("1-0".parse::<CpuSet>().is_err());
        assert!("a".parse::<CpuSet>().is_err());
        assert!("0-99999".parse::<CpuSet>().is_err());
    }

    #[test]
    fn io_max_line_round_trip() {
        let line = "8:16 rbps=2097152 wbps=max riops=max wiops=120";
        let parsed: IoMaxLine = line.parse().unwrap();
        assert_eq!(parsed.to_string(), line);
        assert_eq!(
            parsed.device,
            DevNum {
                major: 8,
                minor: 16
            }
        );
        assert!("8:16 foo=1".parse::<IoMaxLine>().is_err());
        assert!("sda rbps=1".parse::<IoMaxLine>().is_err());
    }

    #[test]
    fn io_limits_satisfied_only_on_set_keys() {
        let want = IoLimits {
            rbps: Some(Limit::Value(10)),
            ..Default::default()
        };
        assert!(want.satisfied_by(&IoLimits {
            rbps: Some(Limit::Value(10)),
            ..IoLimits::UNLIMITED
        }));
        assert!(!want.satisfied_by(&IoLimits::UNLIMITED));
    }

    #[test]
    fn bytes_human() {
        assert_eq!(Bytes(33554432).human(), "32 MiB");
        assert_eq!(Bytes(1536 * 1024 * 1024).human(), "1.5 GiB");
        assert_eq!(Bytes(100).human(), "100 B");
        assert_eq!(Bytes(5000).round_down(4096), Bytes(4096));
    }
}

/// Property tests: every typed value survives its kernel text
/// (parse(display(v)) == v), and the kernel's own text of a value comes
/// back unchanged (display(parse(s)) == s).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn limit() -> impl Strategy<Value = Limit<u64>> {
        prop_oneof![Just(Limit::Max), any::<u64>().prop_map(Limit::Value)]
    }

    fn cpu_max() -> impl Strategy<Value = CpuMax> {
        let quota = prop_oneof![
            Just(Limit::Max),
            (MIN_CPU_US..=MAX_CPU_QUOTA_US).prop_map(Limit::Value)
        ];
        (quota, MIN_CPU_US..=MAX_CPU_PERIOD_US).prop_map(|(quota, period)| CpuMax { quota, period })
    }

    fn device() -> impl Strategy<Value = DevNum> {
        (any::<u32>(), any::<u32>()).prop_map(|(major, minor)| DevNum { major, minor })
    }

    proptest! {
        #[test]
        fn limits_round_trip(v in limit()) {
            prop_assert_eq!(v.to_string().parse::<Limit<u64>>().unwrap(), v);
        }

        #[test]
        fn byte_counts_round_trip(n in any::<u64>()) {
            let text = n.to_string();
            let parsed: Bytes = text.parse().unwrap();
            prop_assert_eq!(parsed, Bytes(n));
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn cpu_max_round_trips_and_keeps_the_kernel_text(v in cpu_max()) {
            let text = v.to_string(); // the kernel's "$MAX $PERIOD"
            let parsed: CpuMax = text.parse().unwrap();
            prop_assert_eq!(parsed, v);
            prop_assert_eq!(parsed.to_string(), text);
            prop_assert!(parsed.check_range().is_ok());
        }

        #[test]
        fn cpu_sets_round_trip_in_the_kernels_canonical_form(
            cpus in proptest::collection::btree_set(0..=MAX_CPU_INDEX, 0..24)
        ) {
            let v = CpuSet(cpus);
            let text = v.to_string();
            let parsed: CpuSet = text.parse().unwrap();
            prop_assert_eq!(&parsed, &v);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn device_numbers_round_trip(v in device()) {
            prop_assert_eq!(v.to_string().parse::<DevNum>().unwrap(), v);
        }

        #[test]
        fn io_max_lines_round_trip(
            device in device(),
            r in proptest::option::of(limit()),
            w in proptest::option::of(limit()),
            ri in proptest::option::of(limit()),
            wi in proptest::option::of(limit()),
        ) {
            let v = IoMaxLine { device, limits: IoLimits { rbps: r, wbps: w, riops: ri, wiops: wi } };
            let text = v.to_string();
            let parsed: IoMaxLine = text.parse().unwrap();
            prop_assert_eq!(parsed, v);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn the_kernels_io_max_text_is_kept(device in device(), l in [limit(), limit(), limit(), limit()]) {
            // The kernel prints every key of a device's line.
            let text = format!("{device} rbps={} wbps={} riops={} wiops={}", l[0], l[1], l[2], l[3]);
            prop_assert_eq!(text.parse::<IoMaxLine>().unwrap().to_string(), text);
        }
    }
}
