//! The units users write in policies, turned into kernel values.
//!
//! Users write `"64M"`, `"50%"` or `"max"`; the kernel wants bytes and
//! microseconds. Every function here returns an error sentence that says
//! what was wrong and what would be right.

use crate::cgroup::values::{Bytes, CpuMax, DEFAULT_CPU_PERIOD_US, Limit};

/// Parses a byte size: `"123"`, `"64K"`, `"64M"`, `"2G"`, `"1T"`, `"64MiB"`…
/// (base 1024), or `"max"`.
pub fn parse_size(text: &str) -> Result<Limit<Bytes>, String> {
    let t = text.trim();
    if t == "max" {
        return Ok(Limit::Max);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "{text:?} is not a size: write bytes as an integer, or with a unit like \"64M\", \"1G\", \"512KiB\", or \"max\""
        ));
    }
    let shift = match unit {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        u if u.starts_with('.') => {
            return Err(format!(
                "{text:?}: fractional sizes are not supported; use a smaller unit (\"1536M\" rather than \"1.5G\")"
            ));
        }
        u => {
            return Err(format!(
                "{text:?} has an unknown unit {u:?}: use K, M, G or T (or KiB, MiB, GiB, TiB), all base 1024"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large: sizes must fit in 64 bits"))?;
    n.checked_mul(1u64 << shift)
        .map(|b| Limit::Value(Bytes(b)))
        .ok_or_else(|| format!("{text:?} is too large: sizes must fit in 64 bits (at most 16 EiB)"))
}

/// Parses `cpu.max`: `"max"`, `"QUOTA PERIOD"` in µs, `"QUOTA"` (period
/// 100000), or `"N%"` of one CPU over the default period (`"150%"` = 1.5 CPUs).
pub fn parse_cpu_max(text: &str) -> Result<CpuMax, String> {
    let t = text.trim();
    let value = match t.strip_suffix('%') {
        Some(percent) => percent_to_cpu_max(text, percent)?,
        None => t.parse::<CpuMax>().map_err(|e| {
            format!("{text:?} is not a CPU limit ({e}): write \"max\", \"QUOTA PERIOD\" in microseconds like \"50000 100000\", or a percentage of one CPU like \"50%\"")
        })?,
    };
    value.check_range().map_err(|e| format!("{text:?}: {e}"))?;
    Ok(value)
}

fn percent_to_cpu_max(text: &str, percent: &str) -> Result<CpuMax, String> {
    let bad = || {
        format!(
            "{text:?} is not a percentage: write a number followed by %, like \"50%\" or \"12.5%\""
        )
    };
    let (whole, fraction) = percent.split_once('.').unwrap_or((percent, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    // 1% of the default 100000 µs period is 1000 µs, so the quota is the
    // percentage with three decimals, in integer arithmetic (finer digits
    // would be below a microsecond and are dropped).
    let too_large = || format!("{text:?} is too large");
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
    cpu_max.check_range().map_err(|e| {
        format!("{text:?} is {quota} µs per {DEFAULT_CPU_PERIOD_US} µs period: {e}; the smallest percentage is 1%")
    })?;
    Ok(cpu_max)
}

/// Parses a `"max"` or an integer written as a string, for `pids.max` and iops.
pub fn parse_count(text: &str) -> Result<Limit<u64>, String> {
    text.trim()
        .parse::<Limit<u64>>()
        .map_err(|_| format!("{text:?} is not a count: write a non-negative integer or \"max\""))
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
            assert!(e.contains(want), "{input:?}: {e}");
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
            assert!(e.contains(want), "{input:?}: {e}");
        }
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("max").unwrap(), Limit::Max);
        assert_eq!(parse_count("32").unwrap(), Limit::Value(32));
        assert!(parse_count("-1").unwrap_err().contains("not a count"));
    }
}
