//! A reader of the Prometheus text format (version 0.0.4): each sample's name, labels and value,
//! for tests and tools that check what `/metrics` says.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name, suffix included (`rpc_server_call_duration_seconds_count`).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// Whether it carries every one of `labels`, with those values.
    pub fn has(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(name, value)| self.labels.get(*name).map(String::as_str) == Some(*value))
    }
}

/// A line that is not a sample, comment or blank.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {reason}: {text:?}")]
pub struct ParseError {
    line: usize,
    reason: &'static str,
    text: String,
}

/// Every sample of `text`; comments (`# HELP`, `# TYPE`) and blank lines are skipped.
///
/// # Errors
/// A line that is not a well-formed sample.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(index, line)| {
            sample(line).map_err(|reason| ParseError {
                line: index + 1,
                reason,
                text: line.to_owned(),
            })
        })
        .collect()
}

/// The samples named `name` that carry every one of `labels`.
pub fn matching<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|sample| sample.name == name && sample.has(labels))
        .collect()
}

fn sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = label_set(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().map_err(|_| "a value that is not a number")?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The labels up to the closing `}`, and what follows it.
fn label_set(mut text: &str) -> Result<(BTreeMap<String, String>, &str), &'static str> {
    let mut labels = BTreeMap::new();
    loop {
        text = text.trim_start_matches([' ', ',']);
        if let Some(after) = text.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = text.split_once("=\"").ok_or("a label without a value")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (at, '"') => break at,
                (_, '\\') => match chars.next().ok_or("an unterminated escape")?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.trim().to_owned(), value);
        text = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_with_their_labels_and_comments_are_skipped() {
        let text = "# HELP x_seconds How long\n# TYPE x_seconds histogram\n\
            x_seconds_bucket{le=\"0.5\",path=\"/a\\\"b\\\\c\"} 3\n\
            x_seconds_bucket{le=\"+Inf\",path=\"/a\"} 4 1700000000\n\
            up 1\n";
        let samples = parse(text).expect("well formed");
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["path"], "/a\"b\\c");
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].labels["le"], "+Inf");
        assert_eq!(samples[1].value, 4.0);
        assert_eq!(samples[2].name, "up");
        assert_eq!(
            matching(&samples, "x_seconds_bucket", &[("le", "+Inf")]).len(),
            1
        );
    }

    #[test]
    fn a_line_that_is_no_sample_is_refused_with_its_number() {
        let error = parse("# TYPE a counter\na{b=\"c\" 1\n").expect_err("unterminated");
        assert!(error.to_string().starts_with("line 2"), "{error}");
    }
}
