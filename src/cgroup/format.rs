//! Pure parsers for the shapes of cgroup v2 interface files.
//!
//! The kernel uses a handful of formats (Documentation/admin-guide/cgroup-v2.rst,
//! "Interface Files"): a single value, flat keyed (`key value` per line),
//! nested keyed (`key sub=value ...` per line), space-separated lists and the
//! PSI format. Each parser is a function over `&str` so it can be tested on
//! real file contents; they are strict, and callers decide what to tolerate.

use super::values::ValueError;

/// The `key value` pairs of a flat-keyed file (`cpu.stat`, `memory.events`,
/// `pids.events`), values unsigned integers; an item is an error for a line
/// of another shape. Typed readings of these files are in `stat`.
pub fn flat_keyed_pairs(text: &str) -> impl Iterator<Item = Result<(&str, u64), ValueError>> {
    text.lines().filter(|l| !l.trim().is_empty()).map(|line| {
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(ValueError(format!("line {line:?} is not `key value`")));
        };
        let value = value
            .parse()
            .map_err(|_| ValueError(format!("value of {key:?} is not an integer: {value:?}")))?;
        Ok((key, value))
    })
}

/// One line of a nested-keyed file: its first word and its `sub=value` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NestedLine {
    /// The first word (a device number in `io.stat`, `some`/`full` in PSI).
    pub key: String,
    /// The `sub=value` pairs, in file order.
    pub fields: Vec<(String, String)>,
}

/// Parses a nested-keyed file (`io.stat`, `io.max`, `*.pressure`).
pub fn nested_keyed(text: &str) -> Result<Vec<NestedLine>, ValueError> {
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let key = words.next().unwrap_or_default().to_string();
        let mut fields = Vec::new();
        for word in words {
            let Some((k, v)) = word.split_once('=') else {
                return Err(ValueError(format!(
                    "field {word:?} in line {line:?} is not KEY=VALUE"
                )));
            };
            fields.push((k.to_string(), v.to_string()));
        }
        lines.push(NestedLine { key, fields });
    }
    Ok(lines)
}

/// Parses a space-separated list (`cgroup.controllers`, `cgroup.subtree_control`).
pub fn word_list(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// Parses a newline-separated list of ids (`cgroup.procs`, `cgroup.threads`).
pub fn pid_list(text: &str) -> Result<Vec<i32>, ValueError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse()
                .map_err(|_| ValueError(format!("{l:?} is not a process id")))
        })
        .collect()
}

/// One line of a pressure file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiLine {
    /// Share of time stalled over the last 10 s, in percent.
    pub avg10: f64,
    /// Over the last 60 s.
    pub avg60: f64,
    /// Over the last 300 s.
    pub avg300: f64,
    /// Total stall time in microseconds.
    pub total_us: u64,
}

/// The content of `cpu.pressure`, `memory.pressure` or `io.pressure`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiLine,
    /// All non-idle tasks stalled; absent for `cpu.pressure` on old kernels.
    pub full: Option<PsiLine>,
}

/// Parses a PSI file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0`
/// and optionally a `full ...` line.
pub fn psi(text: &str) -> Result<Psi, ValueError> {
    let mut some = None;
    let mut full = None;
    for line in nested_keyed(text)? {
        let parsed = psi_line(&line)?;
        match line.key.as_str() {
            "some" => some = Some(parsed),
            "full" => full = Some(parsed),
            other => return Err(ValueError(format!("unknown pressure line {other:?}"))),
        }
    }
    let some = some.ok_or_else(|| ValueError("pressure file has no `some` line".into()))?;
    Ok(Psi { some, full })
}

fn psi_line(line: &NestedLine) -> Result<PsiLine, ValueError> {
    let mut out = PsiLine::default();
    let bad = |k: &str, v: &str| ValueError(format!("pressure field {k}={v:?} is not a number"));
    for (k, v) in &line.fields {
        match k.as_str() {
            "avg10" => out.avg10 = v.parse().map_err(|_| bad(k, v))?,
            "avg60" => out.avg60 = v.parse().map_err(|_| bad(k, v))?,
            "avg300" => out.avg300 = v.parse().map_err(|_| bad(k, v))?,
            "total" => out.total_us = v.parse().map_err(|_| bad(k, v))?,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_CPU_PRESSURE: &str =
        include_str!("../../tests/fixtures/kernel/host-6.18-root.cpu.pressure");

    #[test]
    fn flat_keyed_pairs_in_order_and_garbage() {
        let pairs: Result<Vec<_>, _> = flat_keyed_pairs("max 3\n\nmax.imposed 1\n").collect();
        assert_eq!(pairs.unwrap(), [("max", 3), ("max.imposed", 1)]);
        for bad in ["usage_usec x\n", "usage_usec 1 2\n", "lonely\n", "n -1\n"] {
            assert!(flat_keyed_pairs(bad).any(|p| p.is_err()), "{bad:?}");
        }
        assert_eq!(flat_keyed_pairs("").count(), 0);
    }

    #[test]
    fn pressure_from_host() {
        let p = psi(HOST_CPU_PRESSURE).unwrap();
        assert!(p.full.is_some());
        assert!(p.some.total_us > 0);
        assert!(psi("full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").is_err());
        assert!(psi("some avg10=x\n").is_err());
    }

    #[test]
    fn nested_keyed_lines() {
        let lines = nested_keyed("8:0 rbps=max wbps=1048576 riops=max wiops=max\n").unwrap();
        assert_eq!(lines[0].key, "8:0");
        assert_eq!(
            lines[0].fields[1],
            ("wbps".to_string(), "1048576".to_string())
        );
        assert!(nested_keyed("8:0 rbytes").is_err());
    }

    #[test]
    fn lists() {
        assert_eq!(
            word_list("cpuset cpu io memory pids\n"),
            ["cpuset", "cpu", "io", "memory", "pids"]
        );
        assert_eq!(pid_list("1\n42\n").unwrap(), [1, 42]);
        assert!(pid_list("1\nx\n").is_err());
    }
}
