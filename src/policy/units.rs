//! The units users write in policies, turned into kernel values.
//!
//! Users write `"64M"`, `"50%"` or `"max"`; the kernel wants bytes and
//! microseconds. Every function here returns a [`UnitError`], whose message
//! says what was wrong and what would be right.

use std::time::Duration;

use crate::cgroup::values::{Bytes, CpuMax, DEFAULT_CPU_PERIOD_US, Limit, ValueError};

/// A value written with a unit that does not read as one; `text` is what
/// the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// No digits where a size was expected.
    #[error(
        "{text:?} is not a size: write bytes as an integer, or with a unit like \"64M\", \"1G\", \"512KiB\", or \"max\""
    )]
    NotASize { text: String },
    /// `"1.5G"`.
    #[error(
        "{text:?}: fractional sizes are not supported; use a smaller unit (\"1536M\" rather than \"1.5G\")"
    )]
    FractionalSize { text: String },
    /// A size unit other than K/M/G/T.
    #[error(
        "{text:?} has an unknown unit {unit:?}: use K, M, G or T (or KiB, MiB, GiB, TiB), all base 1024"
    )]
    SizeUnit { text: String, unit: String },
    /// More digits than 64 bits hold.
    #[error("{text:?} is too large: sizes must fit in 64 bits")]
    SizeDigits { text: String },
    /// A size whose unit takes it past 64 bits.
    #[error("{text:?} is too large: sizes must fit in 64 bits (at most 16 EiB)")]
    SizeTooLarge { text: String },
    /// Not `max`, `QUOTA PERIOD`, `QUOTA` or a percentage.
    #[error(
        "{text:?} is not a CPU limit ({reason}): write \"max\", \"QUOTA PERIOD\" in microseconds like \"50000 100000\", or a percentage of one CPU like \"50%\""
    )]
    NotACpuLimit { text: String, reason: ValueError },
    /// A CPU limit outside the kernel's range.
    #[error("{text:?}: {reason}")]
    CpuRange { text: String, reason: ValueError },
    /// A CPU percentage that is not a number.
    #[error(
        "{text:?} is not a percentage: write a number followed by %, like \"50%\" or \"12.5%\""
    )]
    NotACpuPercentage { text: String },
    /// A CPU percentage past 64 bits of microseconds.
    #[error("{text:?} is too large")]
    CpuPercentageTooLarge { text: String },
    /// A CPU percentage below the kernel's smallest quota.
    #[error(
        "{text:?} is {quota} µs per {DEFAULT_CPU_PERIOD_US} µs period: {reason}; the smallest percentage is 1%"
    )]
    CpuPercentageRange {
        text: String,
        quota: u64,
        reason: ValueError,
    },
    /// Not an integer or `max`.
    #[error("{text:?} is not a count: write a non-negative integer or \"max\"")]
    NotACount { text: String },
    /// A duration without a unit.
    #[error("{text:?} has no unit: write a duration like \"500ms\", \"2s\" or \"1m\"")]
    DurationWithoutUnit { text: String },
    /// A duration unit other than ms, s, m.
    #[error("{text:?} has an unknown unit {unit:?}: use ms, s or m")]
    DurationUnit { text: String, unit: String },
    /// Not a number of whole milliseconds.
    #[error(
        "{text:?} is not a duration: write a number of whole milliseconds or more, like \"500ms\", \"2s\", \"1.5s\""
    )]
    NotADuration { text: String },
    /// A share of time without `%`.
    #[error("{text:?} is not a percentage: write it with a % sign, like \"20%\"")]
    ShareWithoutPercent { text: String },
    /// A share of time that is not a number with two decimals at most.
    #[error(
        "{text:?} is not a percentage: write a number with at most two decimals, like \"20%\" or \"2.5%\""
    )]
    NotAShare { text: String },
    /// A share of time of 0% or above 100%.
    #[error("{text:?} is out of range: a share of time is more than 0% and at most 100%")]
    ShareRange { text: String },
}

/// Parses a byte size: `"123"`, `"64K"`, `"64M"`, `"2G"`, `"1T"`, `"64MiB"`…
/// (base 1024), or `"max"`.
pub fn parse_size(text: &str) -> Result<Limit<Bytes>, UnitError> {
    let t = text.trim();
    if t == "max" {
        return Ok(Limit::Max);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(UnitError::NotASize { text: text.into() });
    }
    let shift = match unit {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        u if u.starts_with('.') => {
            return Err(UnitError::FractionalSize { text: text.into() });
        }
        u => {
            return Err(UnitError::SizeUnit {
                text: text.into(),
                unit: u.into(),
            });
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| UnitError::SizeDigits { text: text.into() })?;
    n.checked_mul(1u64 << shift)
        .map(|b| Limit::Value(Bytes(b)))
        .ok_or_else(|| UnitError::SizeTooLarge { text: text.into() })
}

/// Parses `cpu.max`: `"max"`, `"QUOTA PERIOD"` in µs, `"QUOTA"` (period
/// 100000), or `"N%"` of one CPU over the default period (`"150%"` = 1.5 CPUs).
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, UnitError> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(percent) => percent_to_cpu_max(text, percent)?,
        None => t
            .parse::<CpuMax>()
            .map_err(|reason| UnitError::NotACpuLimit {
                text: text.into(),
                reason,
            })?,
    };
    value.check_range().map_err(|reason| UnitError::CpuRange {
        text: text.into(),
        reason,
    })?;
    Ok(value)
}

fn percent_to_cpu_max(text: &str, percent: &str) -> Result<CpuMax, UnitError> {
    let bad = || UnitError::NotACpuPercentage { text: text.into() };
    let (whole, fraction) = percent.split_once('.').unwrap_or((percent, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    // 1% of the default 100000 µs period is 1000 µs, so the quota is the
    // percentage with three decimals, in integer arithmetic (finer digits
    // would be below a microsecond and are dropped).
    let too_large = || UnitError::CpuPercentageTooLarge { text: text.into() };
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let milli: u64 = format!("{fraction:0<3}")[..3].parse().map_err(|_| bad())?;
    let quota = whole
        .checked_mul(DEFAULT_CPU_PERIOD_US / 100)
        .and_then(|q| q.checked_add(milli))
        .ok_or_else(too_large)?;
    let cpu_max = CpuMax {
        quota: Limit::Value(quota),
        period: DEFAULT_CPU_PERIOD_US,
    };
    cpu_max
        .check_range()
        .map_err(|reason| UnitError::CpuPercentageRange {
            text: text.into(),
            quota,
            reason,
        })?;
    Ok(cpu_max)
}

/// Parses a `"max"` or an integer written as a string, for `pids.max` and iops.
pub fn parse_count(text: &str) -> Result<Limit<u64>, UnitError> {
    text.trim()
        .parse::<Limit<u64>>()
        .map_err(|_| UnitError::NotACount { text: text.into() })
}

/// Parses a duration: `"500ms"`, `"2s"`, `"1.5s"`, `"1m"` (whole
/// milliseconds at most; a bare number is refused, its unit would be a guess).
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" | "min" => 60_000,
        "" => {
            return Err(UnitError::DurationWithoutUnit { text: text.into() });
        }
        u => {
            return Err(UnitError::DurationUnit {
                text: text.into(),
                unit: u.into(),
            });
        }
    };
    let ms = decimal_times(number, ms_per_unit)
        .ok_or_else(|| UnitError::NotADuration { text: text.into() })?;
    Ok(Duration::from_millis(ms))
}

/// Parses a share of time: `"20%"`, `"2.5%"`, in hundredths of a percent
/// (`"20%"` is 2000); more than 0 and at most 100%.
pub fn parse_percent(text: &str) -> Result<u32, UnitError> {
    let t = text.trim();
    let number = t
        .strip_suffix('%')
        .ok_or_else(|| UnitError::ShareWithoutPercent { text: text.into() })?;
    let hundredths = decimal_times(number.trim(), 100)
        .ok_or_else(|| UnitError::NotAShare { text: text.into() })?;
    match u32::try_from(hundredths) {
        Ok(h) if (1..=10_000).contains(&h) => Ok(h),
        _ => Err(UnitError::ShareRange { text: text.into() }),
    }
}

/// `number` (digits, at most one `.`) times `scale` (a power of ten), when
/// that is a whole number that fits.
fn decimal_times(number: &str, scale: u64) -> Option<u64> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    let places = u32::try_from(frac.len()).ok()?;
    let unit = 10u64.checked_pow(places)?;
    if !scale.is_multiple_of(unit) {
        return None; // finer than the unit allows
    }
    let whole = int.parse::<u64>().ok()?.checked_mul(scale)?;
    let part = if frac.is_empty() {
        0
    } else {
        frac.parse::<u64>().ok()?.checked_mul(scale / unit)?
    };
    whole.checked_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> u64 {
        parse_size(s).unwrap().value().unwrap().0
    }

    #[test]
    fn sizes() {
        assert_eq!(bytes("0"), 0);
        assert_eq!(bytes("123"), 123);
        assert_eq!(bytes("64K"), 64 << 10);
        assert_eq!(bytes("64KiB"), 64 << 10);
        assert_eq!(bytes("64M"), 64 << 20);
        assert_eq!(bytes("2G"), 2 << 30);
        assert_eq!(bytes("1TiB"), 1 << 40);
        assert_eq!(parse_size("max").unwrap(), Limit::Max);
    }

    #[test]
    fn bad_sizes() {
        let cases = [
            ("64MB", "unknown unit \"MB\""),
            ("64m", "unknown unit \"m\""),
            ("1.5G", "fractional"),
            ("", "is not a size"),
            ("-1", "is not a size"),
            ("M", "is not a size"),
            ("16777216T", "must fit in 64 bits"),
            ("99999999999999999999", "must fit in 64 bits"),
        ];
        for (input, want) in cases {
            let e = parse_size(input).unwrap_err();
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn cpu_percentages() {
        assert_eq!(parse_cpu_max("50%").unwrap().to_string(), "50000 100000");
        assert_eq!(parse_cpu_max("150%").unwrap().to_string(), "150000 100000");
        assert_eq!(parse_cpu_max("12.5%").unwrap().to_string(), "12500 100000");
        assert_eq!(parse_cpu_max("1%").unwrap().to_string(), "1000 100000");
        assert_eq!(
            parse_cpu_max("33.3333%").unwrap().to_string(),
            "33333 100000"
        );
        assert_eq!(parse_cpu_max("max").unwrap().to_string(), "max 100000");
        assert_eq!(
            parse_cpu_max("20000 50000").unwrap().to_string(),
            "20000 50000"
        );
        assert_eq!(parse_cpu_max("20000").unwrap().to_string(), "20000 100000");
    }

    #[test]
    fn bad_cpu_limits() {
        let cases = [
            ("0.5%", "below the kernel's minimum of 1000 µs"),
            ("0%", "below the kernel's minimum"),
            ("%", "is not a percentage"),
            ("-5%", "is not a percentage"),
            ("5 %", "is not a percentage"),
            ("1.2.3%", "is not a percentage"),
            (".5%", "is not a percentage"),
            ("99999999999999999999%", "too large"),
            ("500 100000", "below the kernel's minimum"),
            ("50000 2000000", "out of the kernel's range 1000..=1000000"),
            ("fast", "is not a CPU limit"),
            ("1 2 3", "is not a CPU limit"),
        ];
        for (input, want) in cases {
            let e = parse_cpu_max(input).unwrap_err();
            assert!(e.to_string().contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("max").unwrap(), Limit::Max);
        assert_eq!(parse_count("32").unwrap(), Limit::Value(32));
        assert!(
            parse_count("-1")
                .unwrap_err()
                .to_string()
                .contains("not a count")
        );
    }

    #[test]
    fn durations() {
        let ms = |s: &str| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("500ms"), Ok(500));
        assert_eq!(ms("2s"), Ok(2000));
        assert_eq!(ms(" 1.5s "), Ok(1500));
        assert_eq!(ms("1.250s"), Ok(1250));
        assert_eq!(ms("1m"), Ok(60_000));
        for bad in [
            "2", "s", "1.2345s", "0.5ms", "-1s", "1h", "1..2s", ".5s", "2 s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert!(
            parse_duration("2")
                .unwrap_err()
                .to_string()
                .contains("no unit")
        );
    }

    #[test]
    fn percentages() {
        assert_eq!(parse_percent("20%"), Ok(2000));
        assert_eq!(parse_percent("2.5%"), Ok(250));
        assert_eq!(parse_percent("0.01%"), Ok(1));
        assert_eq!(parse_percent("100%"), Ok(10_000));
        for bad in ["20", "0%", "0.001%", "100.01%", "150%", "x%", "-5%", ""] {
            assert!(parse_percent(bad).is_err(), "{bad} accepted");
        }
    }
}
