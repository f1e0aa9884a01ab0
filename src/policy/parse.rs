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

/// Keys of one `[[group.NAME.pressure]]` rule.
pub const PRESSURE_KEYS: [&str; 7] = [
    "resource", "kind", "above", "window", "for", "action", "dry_run",
];

/// The kernel's range for a PSI trigger's window.
pub const PSI_WINDOW_MIN: Duration = Duration::from_millis(500);
/// See [`PSI_WINDOW_MIN`].
pub const PSI_WINDOW_MAX: Duration = Duration::from_secs(10);
/// The longest `for` a pressure rule may ask.
pub const PRESSURE_FOR_MAX: Duration = Duration::from_secs(3600);

/// A hostname that [`check_hostname`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{hostname:?} is not a hostname: 1 to 64 letters, digits, `-` and `.`, not starting with `-`"
)]
pub struct HostnameError {
    /// What was asked.
    pub hostname: String,
}

/// A hostname the sandbox may get: 1 to 64 letters, digits, `-` and `.`,
/// not starting with `-` (the kernel takes any 64 bytes; resolvers do not).
pub fn check_hostname(s: &str) -> Result<(), HostnameError> {
    let valid_chars = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if s.is_empty() || s.len() > 64 || !valid_chars || s.starts_with('-') {
        return Err(HostnameError { hostname: s.into() });
    }
    Ok(())
}

/// Keys of the `[group.NAME.exec]` table.
pub const EXEC_KEYS: [&str; 11] = [
    "rootfs",
    "readonly_root",
    "namespaces",
    "hostname",
    "uid",
    "gid",
    "env",
    "cwd",
    "seccomp",
    "nested_userns",
    "standby",
];

/// The most sandboxes the daemon keeps built ahead for one group.
pub const MAX_STANDBY: u32 = 16;

/// Keys of one `io.max` entry.
pub const IO_MAX_KEYS: [&str; 5] = ["device", "rbps", "wbps", "riops", "wiops"];

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

    /// The entries of an `io.max` array, each with its span.
    fn io_max(&mut self, value: &Value<'_>, what: &str) -> Vec<(IoMaxLine, Range<usize>)> {
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

    fn exec(&mut self, value: &Value<'_>, group: &str) -> Option<ExecConfig> {
        let what = format!("[group.{group}.exec]");
        let DeValue::Table(t) = value.get_ref() else {
            self.wrong_type(value, &format!("`exec` in group `{group}`"), "a table");
            return None;
        };
        let mut exec = ExecConfig::default();
        for (key, value) in t {
            let ctx = format!("`{}` in {what}", key.get_ref());
            match key.get_ref().as_ref() {
                "rootfs" => exec.rootfs = self.abs_path(value, &ctx),
                "cwd" => exec.cwd = self.abs_path(value, &ctx),
                "hostname" => exec.hostname = self.hostname(value, &ctx),
                "uid" => exec.uid = self.id(value, &ctx),
                "gid" => exec.gid = self.id(value, &ctx),
                "namespaces" => exec.namespaces = self.namespaces(value, &ctx),
                "env" => exec.env = self.env(value, &ctx),
                "seccomp" => exec.seccomp = self.seccomp(value, &ctx),
                "nested_userns" => exec.nested_userns = self.flag(value, &ctx),
                "readonly_root" => exec.readonly_root = self.flag(value, &ctx),
                "standby" => {
                    exec.standby = self
                        .int(
                            value,
                            &ctx,
                            0..u64::from(MAX_STANDBY) + 1,
                            &format!("an integer from 0 to {MAX_STANDBY}"),
                        )
                        .and_then(|v| u32::try_from(v).ok());
                }
                _ => self.unknown_key(key, &format!("in {what}"), &EXEC_KEYS),
            }
        }
        Some(exec)
    }

    fn pressure(&mut self, value: &Value<'_>, group: &str) -> Vec<PressureRule> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(
                value,
                &format!("`pressure` in group `{group}`"),
                &format!("an array of tables: one [[group.{group}.pressure]] section per rule"),
            );
            return Vec::new();
        };
        let what = format!("[[group.{group}.pressure]]");
        let mut rules: Vec<PressureRule> = Vec::new();
        for item in items {
            let Some(rule) = self.pressure_rule(item, &what) else {
                continue;
            };
            // The same rule twice would act twice on every stall.
            if let Some(first) = rules.iter().find(|r| {
                PressureRule {
                    origin: r.origin.clone(),
                    ..rule.clone()
                } == **r
            }) {
                let line = first.origin.line;
                self.error(
                    item.span(),
                    format!("{what}: the same rule as the one on line {line}"),
                    Some("remove one of them".into()),
                );
                continue;
            }
            rules.push(rule);
        }
        rules
    }

    fn pressure_rule(&mut self, item: &Value<'_>, what: &str) -> Option<PressureRule> {
        let DeValue::Table(t) = item.get_ref() else {
            self.wrong_type(
                item,
                what,
                "a table of resource, kind, above, window, action",
            );
            return None;
        };
        let (mut resource, mut kind, mut above, mut window) = (None, None, None, None);
        let (mut sustain, mut action, mut dry_run) = (None, None, false);
        let mut ok = true;
        for (key, value) in t {
            let ctx = format!("`{}` in {what}", key.get_ref());
            match key.get_ref().as_ref() {
                "resource" => resource = self.choice(value, &ctx, &PsiResource::ALL),
                "kind" => {
                    kind = self.choice(
                        value,
                        &ctx,
                        &[("some", PsiKind::Some), ("full", PsiKind::Full)],
                    )
                }
                "above" => {
                    above = self.string(value, &ctx).and_then(|s| {
                        parse_percent(s)
                            .map_err(|e| self.invalid(value, &ctx, e))
                            .ok()
                    })
                }
                "window" => window = self.window(value, &ctx),
                "for" => sustain = self.duration(value, &ctx).map(|d| (d, value.span())),
                "action" => action = self.choice(value, &ctx, &PressureAction::ALL),
                "dry_run" => dry_run = self.flag(value, &ctx).unwrap_or(dry_run),
                _ => {
                    self.unknown_key(key, &format!("in {what}"), &PRESSURE_KEYS);
                    ok = false;
                }
            }
        }
        let required = [
            (
                "resource",
                resource.is_some(),
                "resource = \"memory\" (cpu, memory or io)",
            ),
            ("kind", kind.is_some(), "kind = \"some\" or kind = \"full\""),
            ("above", above.is_some(), "above = \"20%\""),
            ("window", window.is_some(), "window = \"2s\" (500ms to 10s)"),
            (
                "action",
                action.is_some(),
                "action = \"log\", \"freeze\" or \"kill\"",
            ),
        ];
        for (key, present, example) in required {
            let typed = t.keys().any(|k| k.get_ref() == key);
            if !present && !typed {
                self.error(
                    item.span(),
                    format!("{what}: a rule has no `{key}`"),
                    Some(format!("add {example}")),
                );
            }
            ok &= present;
        }
        let window = window?;
        let sustain = match sustain {
            None => window,
            Some((d, span)) if d < window => {
                self.error(
                    span,
                    format!(
                        "`for` in {what} ({}) is shorter than its window ({}): the kernel measures the stall over whole windows",
                        show_duration(d),
                        show_duration(window)
                    ),
                    Some(format!("write for = \"{}\" or longer, or leave `for` out (one window)", show_duration(window))),
                );
                return None;
            }
            Some((d, span)) if d > PRESSURE_FOR_MAX => {
                self.error(
                    span,
                    format!("`for` in {what} ({}) is longer than 1h", show_duration(d)),
                    None,
                );
                return None;
            }
            Some((d, _)) => d,
        };
        if !ok {
            return None;
        }
        Some(PressureRule {
            resource: resource?,
            kind: kind?,
            above: above?,
            window,
            sustain,
            action: action?,
            dry_run,
            origin: self.origin(item.span().start),
        })
    }

    /// One of `choices` by name, with a did-you-mean for a near miss.
    fn choice<T: Copy>(
        &mut self,
        value: &Value<'_>,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(value, what)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let hint =
            suggestion(s, &names).unwrap_or_else(|| format!("use one of: {}", names.join(", ")));
        self.error(
            value.span(),
            format!("{what}: {s:?} is not one of {}", names.join(", ")),
            Some(hint),
        );
        None
    }

    fn duration(&mut self, value: &Value<'_>, what: &str) -> Option<Duration> {
        let s = self.string(value, what)?;
        parse_duration(s)
            .map_err(|e| self.invalid(value, what, e))
            .ok()
    }

    /// A PSI trigger window: the kernel accepts 500 ms to 10 s.
    fn window(&mut self, value: &Value<'_>, what: &str) -> Option<Duration> {
        let d = self.duration(value, what)?;
        if (PSI_WINDOW_MIN..=PSI_WINDOW_MAX).contains(&d) {
            return Some(d);
        }
        self.invalid(
            value,
            what,
            format!(
                "{} is outside the kernel's range for a pressure window, 500ms to 10s",
                show_duration(d)
            ),
        );
        None
    }

    /// A user or group id; 4294967295 is (uid_t)-1, "no change", not an id.
    fn id(&mut self, value: &Value<'_>, what: &str) -> Option<u32> {
        self.int(
            value,
            what,
            0..u64::from(u32::MAX),
            "an integer id from 0 to 4294967294",
        )
        .and_then(|v| u32::try_from(v).ok())
    }

    fn abs_path(&mut self, value: &Value<'_>, what: &str) -> Option<PathBuf> {
        let s = self.string(value, what)?;
        if !s.starts_with('/') || s.contains('\0') {
            self.invalid(value, what, format!("{s:?} must be an absolute path"));
            return None;
        }
        Some(PathBuf::from(s))
    }

    fn seccomp(&mut self, value: &Value<'_>, what: &str) -> Option<super::seccomp::Seccomp> {
        let s = self.string(value, what)?;
        super::seccomp::parse_setting(s)
            .map_err(|e| self.invalid(value, what, e))
            .ok()
    }

    fn hostname(&mut self, value: &Value<'_>, what: &str) -> Option<String> {
        let s = self.string(value, what)?;
        if let Err(e) = check_hostname(s) {
            self.invalid(value, what, e);
            return None;
        }
        Some(s.to_string())
    }

    fn namespaces(&mut self, value: &Value<'_>, what: &str) -> Option<BTreeSet<Namespace>> {
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(value, what, "an array of names like [\"mount\", \"pid\"]");
            return None;
        };
        let names: Vec<&str> = Namespace::ALL.iter().map(|(n, _)| *n).collect();
        let mut set = BTreeSet::new();
        let mut ok = true;
        for item in items.iter() {
            let Some(name) = self.string(item, what) else {
                ok = false;
                continue;
            };
            match Namespace::from_name(name) {
                Some(ns) if set.insert(ns) => {}
                Some(_) => {
                    self.invalid(item, what, format!("{name:?} is listed twice"));
                    ok = false;
                }
                None => {
                    let hint = suggestion(name, &names)
                        .or_else(|| Some(format!("namespaces are: {}", names.join(", "))));
                    self.error(
                        item.span(),
                        format!("{what}: unknown namespace {name:?}"),
                        hint,
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(set)
    }

    fn env(&mut self, value: &Value<'_>, what: &str) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let DeValue::Table(t) = value.get_ref() else {
            self.wrong_type(value, what, "a table like { PATH = \"/bin:/usr/bin\" }");
            return env;
        };
        for (key, v) in t {
            let k = key.get_ref();
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                self.error(
                    key.span(),
                    format!("{what}: {k:?} is not a variable name (no `=`, not empty)"),
                    None,
                );
                continue;
            }
            if let Some(s) = self.string(v, &format!("{what}: `{k}`")) {
                if s.contains('\0') {
                    self.invalid(v, what, "values cannot contain NUL");
                    continue;
                }
                env.insert(k.to_string(), s.to_string());
            }
        }
        env
    }
}

/// `500ms`, `2s`, `1.5s`: how a duration is shown back in messages.
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs_f64())
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

/// The device number of a block device path.
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

    #[test]
    fn pressure_rules_parse_with_their_defaults() {
        let text = "[[group.batch.pressure]]\nresource = \"memory\"\nkind = \"full\"\nabove = \"20%\"\nwindow = \"2s\"\naction = \"kill\"\n\n[[group.batch.pressure]]\nresource = \"io\"\nkind = \"some\"\nabove = \"2.5%\"\nwindow = \"500ms\"\nfor = \"1m\"\naction = \"log\"\ndry_run = true\n";
        let groups = parse_file(Path::new("p.toml"), text).unwrap();
        let rules = &groups[0].pressure;
        assert_eq!(rules.len(), 2);
        let (kill, log) = (&rules[0], &rules[1]);
        assert_eq!(kill.resource, PsiResource::Memory);
        assert_eq!(kill.kind, PsiKind::Full);
        assert_eq!(kill.sustain, kill.window, "`for` defaults to one window");
        assert_eq!(kill.threshold_us(), 400_000);
        assert!(!kill.dry_run);
        assert_eq!((kill.origin.line, kill.origin.column), (1, 1));
        assert_eq!(log.threshold_us(), 12_500);
        assert_eq!(log.sustain, Duration::from_secs(60));
        assert_eq!(log.above_text(), "2.5%");
        assert!(log.dry_run);
        assert_eq!(log.origin.line, 8);
    }
}
