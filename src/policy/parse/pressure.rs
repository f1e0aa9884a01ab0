//! `[[group.NAME.pressure]]` rules: PSI thresholds, windows and actions.

use super::*;

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

impl Parser<'_> {
    pub(super) fn pressure(&mut self, value: &Value<'_>, group: &str) -> Vec<PressureRule> {
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
    pub(super) fn choice<T: Copy>(
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

    pub(super) fn duration(&mut self, value: &Value<'_>, what: &str) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
