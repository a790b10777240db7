//! Problems found in the policy file, with the place in the file an operator should look at
//! (the same shape as the flow checker's in `kald-ivr`).

use core::fmt;
use core::ops::Range;

/// How bad a [`Diagnostic`] is: errors stop the file from loading, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// The file is not loaded (a running server keeps the previous policy).
    Error,
    /// The file loads, but something looks like a mistake.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Error => "error",
            Self::Warning => "warning",
        })
    }
}

/// One problem in the policy file, shown as `file:line:col: error: message`.
///
/// `line` and `col` count from 1 (columns in characters); both are 0 when the problem has no
/// place in the file (for example when it cannot be read), and `Display` then leaves them out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Diagnostic {
    /// The file as it was named to the loader.
    pub file: String,
    /// Line, from 1; 0 if unknown.
    pub line: u32,
    /// Column in characters, from 1; 0 if unknown.
    pub col: u32,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in plain words.
    pub message: String,
}

impl Diagnostic {
    /// Whether this diagnostic stops the file from loading.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}: {}", self.file, self.severity, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}: {}",
                self.file, self.line, self.col, self.severity, self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// Collects diagnostics for one file, turning byte offsets into line and column.
pub(crate) struct Report<'a> {
    file: &'a str,
    text: &'a str,
    out: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            out: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.out.iter().any(Diagnostic::is_error)
    }

    fn push(&mut self, span: Range<usize>, severity: Severity, message: String) {
        let (line, col) = line_col(self.text, span.start);
        self.out.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            col,
            severity,
            message,
        });
    }

    /// The diagnostics in file order (then errors before warnings).
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.out.sort_by(|a, b| {
            (a.line, a.col, a.severity, &a.message).cmp(&(b.line, b.col, b.severity, &b.message))
        });
        self.out.dedup();
        self.out
    }
}

/// A diagnostic with no place in a file (e.g. an unreadable file).
pub(crate) fn file_error(file: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 0,
        col: 0,
        severity: Severity::Error,
        message: message.into(),
    }
}

/// Line and column (both from 1, column in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

/// `" (did you mean 'x'?)"` when one candidate is close to `word`, or nothing.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= limit && c != word)
        .min_by_key(|&(d, _)| d)
        .map(|(_, s)| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default()
}

/// Levenshtein distance in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Rewrites a TOML/serde message in words an operator understands.
pub(crate) fn friendly_message(message: &str) -> String {
    let message = message.trim();
    // "unknown field `recording`, expected one of `recordings`, `messages`"
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = did_you_mean(field, options.iter().copied());
            let list = options.join(", ");
            return format!("unknown key '{field}'{hint}; this table takes {list}");
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("missing key '{field}'");
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let expected = match expected {
                "a string" => "text in quotes",
                "a sequence" => "a list in brackets, like [\"listen-own\"]",
                other => other,
            };
            return format!("expected {expected}, found {found}");
        }
    }
    if let Some((head, rest)) = message.split_once('\n') {
        return format!("{head}: {}", rest.replace('\n', " "));
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "ab\ncdæf\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        assert_eq!(line_col(text, 7), (2, 4));
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(line_col(text, 99), (3, 1));
    }

    #[test]
    fn display_and_suggestions() {
        let mut d = file_error("policy.toml", "cannot read");
        assert_eq!(d.to_string(), "policy.toml: error: cannot read");
        d.line = 3;
        d.col = 7;
        assert_eq!(d.to_string(), "policy.toml:3:7: error: cannot read");
        assert_eq!(
            did_you_mean("listen-onw", ["listen-own", "hold"]),
            " (did you mean 'listen-own'?)"
        );
        assert_eq!(did_you_mean("xyz", ["hold"]), "");
        assert_eq!(
            friendly_message("unknown field `recording`, expected `recordings` or `messages`"),
            "unknown key 'recording' (did you mean 'recordings'?); this table takes recordings, \
             messages"
        );
    }
}
