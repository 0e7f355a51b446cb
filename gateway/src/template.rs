//! `google.api.http` path templates: parsed once at start-up, matched against each request path.
//!
//! Grammar: `Template = "/" Segments [":" Verb]`; a segment is `*`, `**` (last only), a literal
//! or a variable `{field.path}` / `{field.path=segments}` (`{x}` means `{x=*}`).

use std::cmp::Ordering;
use std::fmt;

/// One segment of a template, after variables are flattened into their segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// A literal that must match exactly (compared before percent-decoding).
    Literal(String),
    /// `*`: exactly one segment.
    Single,
    /// `**`: zero or more segments; only the last segment of a template.
    Multi,
}

/// A variable of a template: which request field it fills and which segments it spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The dotted field path, e.g. `["book", "name"]` for `{book.name}`.
    pub field_path: Vec<String>,
    /// Index of its first segment in [`PathTemplate::segments`].
    pub start: usize,
    /// Index one past its last segment.
    pub end: usize,
}

impl Variable {
    /// Whether the variable is one `*` segment, whose value is fully percent-decoded; a
    /// multi-segment variable keeps reserved characters (`%2F`) encoded.
    fn single_segment(&self, segments: &[Segment]) -> bool {
        self.end - self.start == 1 && segments[self.start] == Segment::Single
    }
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    /// The segments, variables flattened.
    pub segments: Vec<Segment>,
    /// The custom verb after the last `:`, if any.
    pub verb: Option<String>,
    /// The variables, in template order.
    pub variables: Vec<Variable>,
}

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// The template text.
    pub template: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "path template {:?}: {}", self.template, self.reason)
    }
}

impl std::error::Error for TemplateError {}

impl PathTemplate {
    /// Parses a template such as `/v1/{name=shelves/*/books/*}:publish`.
    ///
    /// # Errors
    /// A template not starting with `/`, with an empty segment, an unclosed or nested variable,
    /// a `**` that is not last, or an empty verb or one before the last segment.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let fail = |reason| TemplateError {
            template: text.to_owned(),
            reason,
        };
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| fail("must start with '/'"))?;
        // The verb is after the last ':' outside any variable.
        let (path, verb) = split_verb(rest);
        if verb.is_some_and(str::is_empty) {
            return Err(fail("empty custom verb"));
        }
        // `/v1/a:b/c` would otherwise read `b/c` as the verb.
        if verb.is_some_and(|v| v.contains('/')) {
            return Err(fail("a custom verb must come after the last segment"));
        }
        let mut segments = Vec::new();
        let mut variables = Vec::new();
        let mut chars = path;
        while !chars.is_empty() {
            if let Some(inner) = chars.strip_prefix('{') {
                let close = inner.find('}').ok_or_else(|| fail("unclosed variable"))?;
                let body = &inner[..close];
                if body.contains('{') {
                    return Err(fail("nested variable"));
                }
                let (name, pattern) = body.split_once('=').unwrap_or((body, "*"));
                let field_path: Vec<String> = name.split('.').map(str::to_owned).collect();
                if field_path.iter().any(|p| !is_ident(p)) {
                    return Err(fail("a variable's field path must be dotted identifiers"));
                }
                let start = segments.len();
                for part in pattern.split('/') {
                    segments.push(segment(part).ok_or_else(|| fail("empty segment"))?);
                }
                variables.push(Variable {
                    field_path,
                    start,
                    end: segments.len(),
                });
                chars = &inner[close + 1..];
            } else {
                let end = chars.find('/').unwrap_or(chars.len());
                let part = &chars[..end];
                if part.contains(['{', '}']) {
                    return Err(fail("a variable must be a whole segment"));
                }
                segments.push(segment(part).ok_or_else(|| fail("empty segment"))?);
                chars = &chars[end..];
            }
            chars = match chars.strip_prefix('/') {
                Some("") => return Err(fail("empty segment")),
                Some(next) => next,
                None if chars.is_empty() => chars,
                None => return Err(fail("a variable must be a whole segment")),
            };
        }
        if let Some(i) = segments.iter().position(|s| *s == Segment::Multi)
            && i + 1 != segments.len()
        {
            return Err(fail("'**' must be the last segment"));
        }
        Ok(Self {
            segments,
            verb: verb.map(str::to_owned),
            variables,
        })
    }

    /// Matches a raw (still percent-encoded) request path; on success, each variable's field
    /// path with its decoded value.
    pub fn matches(&self, raw_path: &str) -> Option<Vec<(Vec<String>, String)>> {
        let rest = raw_path.strip_prefix('/')?;
        // A ':' is a verb separator only when this template declares a verb.
        let path = match &self.verb {
            Some(verb) => rest.strip_suffix(verb.as_str())?.strip_suffix(':')?,
            None => rest,
        };
        let parts: Vec<&str> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('/').collect()
        };
        let multi = self.segments.last() == Some(&Segment::Multi);
        let fixed = self.segments.len() - usize::from(multi);
        if parts.len() < fixed || (!multi && parts.len() != fixed) {
            return None;
        }
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(literal) if literal != part => return None,
                Segment::Single if part.is_empty() => return None,
                _ => {}
            }
        }
        let mut values = Vec::with_capacity(self.variables.len());
        for variable in &self.variables {
            let end = if variable.end == self.segments.len() {
                parts.len()
            } else {
                variable.end
            };
            let raw = parts[variable.start..end].join("/");
            let value = if variable.single_segment(&self.segments) {
                percent_decode(&raw, false)?
            } else {
                percent_decode(&raw, true)?
            };
            values.push((variable.field_path.clone(), value));
        }
        Some(values)
    }

    /// The template with variables reduced to their wildcards: two bindings of one HTTP method
    /// with the same shape are ambiguous (a start-up error).
    pub fn shape(&self) -> String {
        let mut out = String::new();
        for segment in &self.segments {
            out.push('/');
            out.push_str(match segment {
                Segment::Literal(literal) => literal,
                Segment::Single => "*",
                Segment::Multi => "**",
            });
        }
        if let Some(verb) = &self.verb {
            out.push(':');
            out.push_str(verb);
        }
        out
    }

    /// Match precedence: segment by segment, a literal beats `*`, which beats `**`; a template
    /// with a verb beats one without. `Ordering::Less` means `self` is tried first.
    pub fn precedence(&self, other: &Self) -> Ordering {
        let rank = |s: &Segment| match s {
            Segment::Literal(_) => 0,
            Segment::Single => 1,
            Segment::Multi => 2,
        };
        for (a, b) in self.segments.iter().zip(&other.segments) {
            match rank(a).cmp(&rank(b)) {
                Ordering::Equal => {}
                unequal => return unequal,
            }
        }
        other
            .segments
            .len()
            .cmp(&self.segments.len())
            .then_with(|| other.verb.is_some().cmp(&self.verb.is_some()))
    }
}

fn split_verb(rest: &str) -> (&str, Option<&str>) {
    let last_close = rest.rfind('}').map_or(0, |i| i + 1);
    match rest[last_close..].rfind(':') {
        Some(i) => (&rest[..last_close + i], Some(&rest[last_close + i + 1..])),
        None => (rest, None),
    }
}

fn segment(part: &str) -> Option<Segment> {
    match part {
        "" => None,
        "*" => Some(Segment::Single),
        "**" => Some(Segment::Multi),
        literal => Some(Segment::Literal(literal.to_owned())),
    }
}

fn is_ident(part: &str) -> bool {
    let mut chars = part.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// RFC 6570 reserved characters, kept encoded in multi-segment variables.
const RESERVED: &[u8] = b":/?#[]@!$&'()*+,;=";

/// Percent-decodes `raw`; `keep_reserved` leaves `%XX` of a reserved character as it was.
/// `None` for a malformed escape or a result that is not UTF-8. `+` is left as `+`.
fn percent_decode(raw: &str, keep_reserved: bool) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if keep_reserved && RESERVED.contains(&byte) {
                out.extend_from_slice(&bytes[i..i + 3]);
            } else {
                out.push(byte);
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
#[path = "template_tests.rs"]
mod tests;
