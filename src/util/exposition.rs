//! Prometheus' text exposition format (0.0.4), read into samples: what the kubelet's
//! `/metrics/resource` and `/metrics/cadvisor` and the operators' `/metrics` serve.
//!
//! Written here rather than taken from a crate: `prometheus-parse` splits label values on `,`
//! and `=` and reads no escapes, `openmetrics-parser` is LGPL-3.0, and `prom_text_format_parser`
//! has had one release. The format is small; the property tests below hold this reader to it
//! (escapes, timestamps, special values).

use std::collections::BTreeMap;

/// One sample: a series (its name and labels), its value, and its own timestamp in
/// milliseconds when the exposer gave one (the kubelet does: the time the stat was taken).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// A line that does not read as the format: its number (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("metrics line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Every sample of a scrape, in the order served. Comments (`# HELP`, `# TYPE`) and blank lines
/// carry no sample.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = sample(line).map_err(|message| ParseError { line: index.saturating_add(1), message })?;
        samples.push(sample);
    }
    Ok(samples)
}

/// `name{label="value",…} value [timestamp]`.
fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return Err(format!("{name:?} is not a metric name"));
    }
    let (labels, rest) = match line[name_end..].strip_prefix('{') {
        Some(inside) => labels(inside)?,
        None => (BTreeMap::new(), &line[name_end..]),
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or_else(|| format!("{name} has no value"))?;
    let value = number(value).ok_or_else(|| format!("{name}: {value:?} is not a number"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(t.parse::<i64>().map_err(|_| format!("{name}: {t:?} is not a timestamp in milliseconds"))?),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("{name}: unexpected {extra:?} after the timestamp"));
    }
    Ok(Sample { name: name.to_string(), labels, value, timestamp_ms })
}

/// The labels after `{`, up to the closing `}`, and what follows it.
fn labels(mut text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let eq = text.find('=').ok_or("a label without '='")?;
        let name = text[..eq].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("{name:?} is not a label name"));
        }
        let after = text[eq + 1..].trim_start();
        let quoted = after.strip_prefix('"').ok_or_else(|| format!("label {name}'s value is not quoted"))?;
        let (value, rest) = quoted_value(quoted).ok_or_else(|| format!("label {name}'s value has no closing quote"))?;
        labels.insert(name.to_string(), value);
        text = rest.trim_start();
        text = text.strip_prefix(',').unwrap_or(text);
    }
}

/// A label value after its opening quote, with `\\`, `\"` and `\n` unescaped, and the text after
/// its closing quote.
fn quoted_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[at + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

/// A sample value: a float, or `+Inf`, `-Inf`, `NaN`.
fn number(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_kubelets_resource_metrics_read_with_their_timestamps() {
        let text = "# HELP container_cpu_usage_seconds_total [ALPHA] Cumulative cpu time\n\
            # TYPE container_cpu_usage_seconds_total counter\n\
            container_cpu_usage_seconds_total{container=\"operator\",namespace=\"kubeflow\",pod=\"op-1\"} 0.02012682 1796408766610\n\
            node_memory_working_set_bytes 4.77894656e+09 1796408769889\n\
            scrape_error 0\n";
        let samples = parse(text).expect("parses");
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].label("pod"), "op-1");
        assert_eq!(samples[0].value, 0.02012682);
        assert_eq!(samples[0].timestamp_ms, Some(1796408766610));
        assert_eq!(samples[1].value, 4.77894656e9);
        assert_eq!(samples[2].timestamp_ms, None);
    }

    #[test]
    fn a_line_that_is_not_the_format_is_an_error_with_its_number() {
        let e = parse("ok 1\nbroken{a=\"x} 1\n").expect_err("unclosed quote");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no closing quote"), "{e}");
        assert_eq!(parse("x 1 12 13\n").expect_err("extra field").line, 1);
        assert_eq!(parse("x one\n").expect_err("not a number").line, 1);
        assert!(parse("x +Inf\ny NaN\n").is_ok());
    }

    fn escaped(value: &str) -> String {
        value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
    }

    proptest! {
        /// What a Prometheus client writes, this reads back: any label value (commas, braces,
        /// equals signs, quotes, backslashes, newlines), any finite value, with or without a
        /// timestamp.
        #[test]
        fn what_an_exposer_writes_reads_back(
            name in "[a-zA-Z_:][a-zA-Z0-9_:]{0,20}",
            labels in proptest::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,10}", "(?s).{0,12}", 0..4),
            value in proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
            timestamp in proptest::option::of(any::<i64>()),
        ) {
            let rendered: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escaped(v))).collect();
            let mut line = if labels.is_empty() { name.clone() } else { format!("{name}{{{}}}", rendered.join(",")) };
            line.push_str(&format!(" {value:e}"));
            if let Some(t) = timestamp {
                line.push_str(&format!(" {t}"));
            }
            let samples = parse(&format!("# TYPE {name} gauge\n{line}\n")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(samples, vec![Sample { name, labels, value, timestamp_ms: timestamp }]);
        }
    }
}
