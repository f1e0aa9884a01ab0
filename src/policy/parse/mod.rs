//! From the text of one TOML file to validated groups.
//!
//! The file is parsed into a spanned tree (`toml::de::DeTable`) and walked by
//! hand rather than through serde, so that every error can point at the
//! exact key or value, name the expected type, and suggest the nearest key.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::PolicyError;
use super::knobs::{self, GROUP_KEYS, Kind, Knob, KnobValue, Setting};
use super::model::{
    ExecConfig, Group, Namespace, Origin, PressureAction, PressureRule, PsiKind, PsiResource,
};
use super::units::{parse_count, parse_cpu_max, parse_duration, parse_percent, parse_size};
use crate::cgroup::GroupName;
use crate::cgroup::values::{Bytes, CpuSet, DevNum, IoLimits, IoMaxLine, Limit};

mod exec;
mod io_max;
mod pressure;

pub use exec::{EXEC_KEYS, HostnameError, MAX_STANDBY, check_hostname};
pub use io_max::IO_MAX_KEYS;
pub use pressure::{
    PRESSURE_FOR_MAX, PRESSURE_KEYS, PSI_WINDOW_MAX, PSI_WINDOW_MIN, show_duration,
};

type Value<'i> = Spanned<DeValue<'i>>;

/// Parses one policy file. All problems are reported, not only the first.
pub fn parse_file(file: &Path, text: &str) -> Result<Vec<Group>, Vec<PolicyError>> {
    let mut p = Parser {
        file: file.to_path_buf(),
        text,
        line_starts: line_starts(text),
        errors: Vec::new(),
    };
    let groups = match DeTable::parse(text) {
        Ok(doc) => p.document(doc.get_ref()),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let mut message = format!("invalid TOML: {}", e.message().trim_end());
            if let Some(first) = first_header_line(text, span.start) {
                message = format!(
                    "{message}: this table is declared twice: first at {}:{first}, again here",
                    file.display()
                );
            }
            p.error(span, message, None);
            Vec::new()
        }
    };
    if p.errors.is_empty() {
        Ok(groups)
    } else {
        p.errors.sort_by_key(|e| (e.line, e.column));
        Err(p.errors)
    }
}

struct Parser<'t> {
    file: PathBuf,
    text: &'t str,
    /// Byte offset where each line starts, so that a position costs a
    /// binary search, not a scan from the top (10,000 groups took seconds).
    line_starts: Vec<usize>,
    errors: Vec<PolicyError>,
}

/// A key of a group table, once its dotted name is known.
#[derive(Debug, Clone, Copy)]
enum Entry {
    Description,
    Exec,
    Pressure,
    Knob(&'static Knob),
}

impl Entry {
    fn of(key: &str) -> Option<Entry> {
        match key {
            "description" => Some(Entry::Description),
            "exec" => Some(Entry::Exec),
            "pressure" => Some(Entry::Pressure),
            _ => knobs::find(key).map(Entry::Knob),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Entry::Description => "description",
            Entry::Exec => "exec",
            Entry::Pressure => "pressure",
            Entry::Knob(k) => k.key,
        }
    }
}

/// The byte offsets at which the lines of `text` start.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

impl Parser<'_> {
    fn origin(&self, offset: usize) -> Origin {
        let offset = offset.min(self.text.len());
        // The last line start at or before the offset.
        let index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[index];
        let column = self
            .text
            .get(start..offset)
            .map_or(0, |s| s.chars().count())
            + 1;
        Origin {
            file: self.file.clone(),
            line: index + 1,
            column,
        }
    }

    fn error(&mut self, span: Range<usize>, message: String, hint: Option<String>) {
        let o = self.origin(span.start);
        self.errors.push(PolicyError {
            file: o.file,
            line: o.line,
            column: o.column,
            message,
            hint,
        });
    }

    fn document(&mut self, doc: &DeTable<'_>) -> Vec<Group> {
        let mut groups = Vec::new();
        for (key, value) in doc {
            if key.get_ref() != "group" {
                self.unknown_key(key, "at the top level", &["group"]);
                continue;
            }
            let DeValue::Table(table) = value.get_ref() else {
                self.wrong_type(value, "`group`", "a table of groups, like [group.sandbox]");
                continue;
            };
            for (name, body) in table {
                if let Some(group) = self.group(name, body) {
                    groups.push(group);
                }
            }
        }
        groups
    }

    fn group(
        &mut self,
        name: &Spanned<std::borrow::Cow<'_, str>>,
        body: &Value<'_>,
    ) -> Option<Group> {
        let group_name = match GroupName::parse(name.get_ref()) {
            Ok(g) => Some(g),
            Err(e) => {
                self.error(name.span(), e.to_string(), Some("use `/`-separated segments of letters, digits, `_`, `.`, `-`, quoted in the header: [group.\"batch/etl\"]".into()));
                None
            }
        };
        let DeValue::Table(table) = body.get_ref() else {
            self.wrong_type(
                body,
                &format!("group `{}`", name.get_ref()),
                "a table, like [group.sandbox]",
            );
            return None;
        };
        let label = name.get_ref().to_string();
        let mut entries = Vec::new();
        self.flatten(&label, "", table, &mut entries);
        let mut group = Group {
            name: group_name.clone().unwrap_or_else(GroupName::root),
            description: None,
            settings: Vec::new(),
            exec: None,
            pressure: Vec::new(),
            origin: self.origin(name.span().start),
        };
        let mut io_devices = BTreeMap::new();
        for (key, value) in entries {
            let ctx = format!("`{}` in group `{label}`", key.name());
            match key {
                Entry::Description => {
                    group.description = self.string(value, &ctx).map(str::to_string)
                }
                Entry::Exec => group.exec = self.exec(value, &label),
                Entry::Pressure => group.pressure = self.pressure(value, &label),
                Entry::Knob(knob) => {
                    let settings = self.knob_settings(knob, value, &ctx, &mut io_devices);
                    group.settings.extend(settings);
                }
            }
        }
        group.settings.sort_by_key(Setting::rank);
        group_name.map(|_| group)
    }

    /// Flattens nested tables (`cpu = { max = ... }`, dotted keys) into
    /// dotted names, reporting keys that are neither known nor a prefix.
    fn flatten<'v, 'i>(
        &mut self,
        group: &str,
        prefix: &str,
        table: &'v DeTable<'i>,
        out: &mut Vec<(Entry, &'v Value<'i>)>,
    ) {
        for (key, value) in table {
            let full = if prefix.is_empty() {
                key.get_ref().to_string()
            } else {
                format!("{prefix}.{}", key.get_ref())
            };
            let is_prefix = GROUP_KEYS
                .iter()
                .any(|k| k.starts_with(&format!("{full}.")));
            let is_table = matches!(value.get_ref(), DeValue::Table(_));
            if let DeValue::Table(inner) = value.get_ref()
                && is_prefix
                && full != "exec"
            {
                self.flatten(group, &full, inner, out);
                continue;
            }
            if let Some(entry) = Entry::of(&full) {
                out.push((entry, value));
                continue;
            }
            // `memroy.max = 1` arrives as a table `memroy`: judge it by its
            // dotted leaf name, which is what the user typed.
            let shown = first_leaf(&full, value.get_ref());
            let hint = suggestion(&shown, &GROUP_KEYS).or_else(|| {
                (is_table && prefix.is_empty()).then(|| {
                    format!(
                        "a nested group is declared with its full path: [group.\"{group}/{full}\"]"
                    )
                })
            });
            self.error(
                key.span(),
                format!("unknown key `{shown}` in group `{group}`"),
                hint,
            );
        }
    }

    fn unknown_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        place: &str,
        known: &[&str],
    ) {
        let hint = suggestion(key.get_ref(), known)
            .or_else(|| Some(format!("valid keys are: {}", known.join(", "))));
        self.error(
            key.span(),
            format!("unknown key `{}` {place}", key.get_ref()),
            hint,
        );
    }

    fn wrong_type(&mut self, value: &Value<'_>, what: &str, expected: &str) {
        let found = describe(value.get_ref());
        self.error(
            value.span(),
            format!("{what} must be {expected}; found {found}"),
            None,
        );
    }

    fn invalid(&mut self, value: &Value<'_>, what: &str, why: impl std::fmt::Display) {
        self.error(value.span(), format!("{what}: {why}"), None);
    }

    fn string<'v>(&mut self, value: &'v Value<'_>, what: &str) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(value, what, "a string");
                None
            }
        }
    }

    /// An integer in `range`; anything else is reported.
    fn int(
        &mut self,
        value: &Value<'_>,
        what: &str,
        range: Range<u64>,
        expected: &str,
    ) -> Option<u64> {
        let DeValue::Integer(i) = value.get_ref() else {
            self.wrong_type(value, what, expected);
            return None;
        };
        let n = i128::from_str_radix(i.as_str(), i.radix()).ok();
        match n {
            Some(n) if n >= i128::from(range.start) && n < i128::from(range.end) => {
                u64::try_from(n).ok()
            }
            _ => {
                self.invalid(
                    value,
                    what,
                    format!("{} is out of range: {expected}", i.as_str()),
                );
                None
            }
        }
    }

    /// The settings `value` makes of `knob`, checked against the knob's
    /// kind and range: one, or one per device for [`Kind::DeviceLimits`]
    /// (`devices` holds where each device was first listed).
    fn knob_settings(
        &mut self,
        knob: &'static Knob,
        value: &Value<'_>,
        what: &str,
        devices: &mut BTreeMap<DevNum, Range<usize>>,
    ) -> Vec<Setting> {
        let parsed = match knob.kind {
            Kind::DeviceLimits => return self.device_settings(knob, value, what, devices),
            Kind::CpuMax => self.string(value, what).and_then(|s| {
                parse_cpu_max(s)
                    .map(KnobValue::CpuMax)
                    .map_err(|e| self.invalid(value, what, e))
                    .ok()
            }),
            Kind::Integer { min, max, expected } => self
                .int(value, what, min..max + 1, expected)
                .map(KnobValue::Integer),
            Kind::Size => self.size(value, what).map(KnobValue::Size),
            Kind::Count { max } => self.count(value, what, max).map(KnobValue::Count),
            Kind::Flag => self.flag(value, what).map(KnobValue::Flag),
            Kind::CpuList => self.string(value, what).and_then(|s| {
                s.parse::<CpuSet>()
                    .map(KnobValue::CpuList)
                    .map_err(|e| self.invalid(value, what, e.0))
                    .ok()
            }),
        };
        parsed
            .map(|value| Setting { knob, value })
            .into_iter()
            .collect()
    }

    /// One setting per device of an `io.max` array; a device listed twice
    /// is an error.
    fn device_settings(
        &mut self,
        knob: &'static Knob,
        value: &Value<'_>,
        what: &str,
        devices: &mut BTreeMap<DevNum, Range<usize>>,
    ) -> Vec<Setting> {
        let mut settings = Vec::new();
        for (line, span) in self.io_max(value, what) {
            if devices.insert(line.device, span.clone()).is_some() {
                let message = format!("{what}: device {} is listed twice", line.device);
                self.error(span, message, None);
                continue;
            }
            settings.push(Setting {
                knob,
                value: KnobValue::Device(line),
            });
        }
        settings
    }

    fn flag(&mut self, value: &Value<'_>, what: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(value, what, "true or false");
                None
            }
        }
    }

    /// A size: an integer number of bytes, or a string with a unit, or "max".
    fn size(&mut self, value: &Value<'_>, what: &str) -> Option<Limit<Bytes>> {
        let expected =
            "a size: an integer number of bytes, or a string like \"64M\", \"1G\" or \"max\"";
        match value.get_ref() {
            DeValue::Integer(_) => self
                .int(value, what, 0..u64::MAX, expected)
                .map(|b| Limit::Value(Bytes(b))),
            DeValue::String(s) => parse_size(s).map_err(|e| self.invalid(value, what, e)).ok(),
            _ => {
                self.wrong_type(value, what, expected);
                None
            }
        }
    }

    /// A count: an integer up to `max`, or "max".
    fn count(&mut self, value: &Value<'_>, what: &str, max: u64) -> Option<Limit<u64>> {
        let expected = format!("an integer from 0 to {max}, or \"max\"");
        let parsed = match value.get_ref() {
            DeValue::Integer(_) => self
                .int(value, what, 0..max + 1, &expected)
                .map(Limit::Value),
            DeValue::String(s) => parse_count(s)
                .map_err(|e| self.invalid(value, what, e))
                .ok(),
            _ => {
                self.wrong_type(value, what, &expected);
                None
            }
        }?;
        if let Limit::Value(n) = parsed
            && n > max
        {
            self.invalid(value, what, format!("{n} is out of range: {expected}"));
            return None;
        }
        Some(parsed)
    }
}
/// The dotted name of the first leaf under `value` (`memroy.max` for a
/// table `memroy` holding `max`).
fn first_leaf(prefix: &str, value: &DeValue<'_>) -> String {
    match value {
        DeValue::Table(t) => match t.iter().next() {
            Some((k, v)) => first_leaf(&format!("{prefix}.{}", k.get_ref()), v.get_ref()),
            None => prefix.to_string(),
        },
        _ => prefix.to_string(),
    }
}

/// For TOML's "duplicate key" on a table header, the line where the same
/// header first appeared, so the error can name both places.
fn first_header_line(text: &str, dup_offset: usize) -> Option<usize> {
    let normalize = |l: &str| {
        l.split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect::<String>()
    };
    let dup_line_no = text[..dup_offset.min(text.len())].matches('\n').count();
    let dup_line = normalize(text.lines().nth(dup_line_no)?);
    if !dup_line.starts_with('[') {
        return None;
    }
    text.lines()
        .take(dup_line_no)
        .position(|l| normalize(l) == dup_line)
        .map(|i| i + 1)
}
/// "did you mean `x`?" for the known key nearest to `word`, if near enough.
pub fn suggestion(word: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min()
        .map(|(_, k)| format!("did you mean `{k}`?"))
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {}", i.as_str()),
        DeValue::Float(f) => format!("the float {}", f.as_str()),
        DeValue::Boolean(b) => format!("the boolean {b}"),
        DeValue::Datetime(d) => format!("the datetime {d}"),
        DeValue::Array(_) => "an array".into(),
        DeValue::Table(_) => "a table".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Line and column by lookup agree with counting from the top, at every
    /// offset, multi-byte characters and an unterminated last line included.
    #[test]
    fn positions_match_a_scan_from_the_top() {
        let text = "[group.a]\npids.max = 5\n\n# é ü\nmemory.max = \"64M\"\nx";
        let p = Parser {
            file: PathBuf::from("t.toml"),
            text,
            line_starts: line_starts(text),
            errors: Vec::new(),
        };
        for offset in (0..=text.len()).filter(|&o| text.is_char_boundary(o)) {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            let o = p.origin(offset);
            assert_eq!((o.line, o.column), (line, column), "offset {offset}");
        }
        assert_eq!(
            p.origin(text.len() + 10).line,
            6,
            "past the end: the last line"
        );
    }
}
