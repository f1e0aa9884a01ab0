//! Building Prometheus metric families sample by sample, then handing them
//! to the `prometheus` crate's text encoder.

use std::collections::BTreeMap;

use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};

/// Counter or gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic (`_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One sample: its labels and value.
type Sample = (Vec<(&'static str, String)>, f64);

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

impl Families {
    /// Declares a family with no samples yet (so `# HELP`/`# TYPE` always appear).
    pub fn declare(&mut self, name: &'static str, kind: Kind, help: &'static str) {
        self.families.entry(name).or_insert(Family {
            kind,
            help,
            samples: Vec::new(),
        });
    }

    /// Adds one sample.
    pub fn add(
        &mut self,
        name: &'static str,
        kind: Kind,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_string())).collect();
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

    /// The families in the `prometheus` crate's model; empty families are left out.
    pub fn into_proto(self) -> Vec<MetricFamily> {
        self.families
            .into_iter()
            .filter(|(_, f)| !f.samples.is_empty())
            .map(
                |(
                    name,
                    Family {
                        kind,
                        help,
                        samples,
                    },
                )| {
                    let mut family = MetricFamily::default();
                    family.set_name(name.to_string());
                    family.set_help(help.to_string());
                    family.set_field_type(match kind {
                        Kind::Counter => MetricType::COUNTER,
                        Kind::Gauge => MetricType::GAUGE,
                    });
                    for (labels, value) in samples {
                        family.mut_metric().push(metric(kind, labels, value));
                    }
                    family
                },
            )
            .collect()
    }

    /// Encodes in the Prometheus text exposition format.
    pub fn encode(self) -> String {
        use prometheus::Encoder;
        let mut out = Vec::new();
        // The text encoder only fails on I/O errors, which a Vec cannot have.
        let _ = prometheus::TextEncoder::new().encode(&self.into_proto(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

fn metric(kind: Kind, labels: Vec<(&'static str, String)>, value: f64) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .into_iter()
            .map(|(k, v)| {
                let mut pair = LabelPair::default();
                pair.set_name(k.to_string());
                pair.set_value(v);
                pair
            })
            .collect(),
    );
    match kind {
        Kind::Counter => {
            let mut c = Counter::default();
            c.set_value(value);
            m.set_counter(c);
        }
        Kind::Gauge => {
            let mut g = Gauge::default();
            g.set_value(value);
            m.set_gauge(g);
        }
    }
    m
}
