//! Metric families rendered in the Prometheus text exposition format
//! (version 0.0.4): `# HELP`, `# TYPE`, then one line per sample.
//!
//! Written directly rather than through the `prometheus` crate's model: a
//! scrape of 10,000 groups has ~150,000 samples, and building the crate's
//! per-sample label objects only to serialise them again made allocation the
//! largest cost of a scrape (see BENCHMARKS.md). The output is checked by
//! `promtool check metrics` in the VM tests.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One sample: its rendered label set (`group="a",event="b"`) and value.
type Sample = (String, f64);

/// A family under construction.
#[derive(Debug)]
struct Family {
    kind: Kind,
    help: &'static str,
    samples: Vec<Sample>,
}

/// Metric families under construction, keyed by name (so output is sorted).
#[derive(Debug, Default)]
pub struct Families {
    families: BTreeMap<&'static str, Family>,
}

/// Renders a label set, escaping values as the format requires.
pub fn render_labels(labels: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

impl Families {
    /// Declares a family with no samples yet.
    pub fn declare(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        self.families.entry(name).or_insert(Family {
            kind,
            help,
            samples: Vec::new(),
        });
    }

    /// Adds one sample with already rendered labels.
    pub fn add_rendered(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: String,
        value: f64,
    ) {
        self.families
            .entry(name)
            .or_insert(Family {
                kind,
                help,
                samples: Vec::new(),
            })
            .samples
            .push((labels, value));
    }

    /// Adds one sample.
    pub fn add(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        self.add_rendered(name, kind, help, render_labels(labels), value);
    }

    /// Encodes in the text exposition format; families without samples are left out.
    pub fn encode(self) -> String {
        let samples: usize = self.families.values().map(|f| f.samples.len()).sum();
        let mut out = String::with_capacity(samples * 96);
        for (name, family) in self.families.iter().filter(|(_, f)| !f.samples.is_empty()) {
            let kind = match family.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", family.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &family.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{name} {value}");
                } else {
                    let _ = writeln!(out, "{name}{{{labels}}} {value}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut f = Families::default();
        f.add(
            "b_total",
            Kind::Counter,
            "B.",
            &[("group", "x\"y\\z\n")],
            1.5,
        );
        f.add("a", Kind::Gauge, "A.", &[], 3.0);
        f.declare("c_total", Kind::Counter, "never sampled");
        assert_eq!(
            f.encode(),
            "# HELP a A.\n# TYPE a gauge\na 3\n# HELP b_total B.\n# TYPE b_total counter\nb_total{group=\"x\\\"y\\\\z\\n\"} 1.5\n"
        );
    }
}
