//! Problems found in operators' files (flows, the recordings policy), with the place in the
//! file an operator should look at: one shape for every checker, so `kald flow check` and
//! `kald policy check` speak alike.

use core::fmt;
use core::ops::Range;

/// How bad a [`Diagnostic`] is: errors stop a file from loading, warnings do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// The file is not loaded (a running server keeps the version it has).
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

/// One problem in an operator's file, shown as `file:line:col: error: message`.
///
/// `line` and `col` count from 1 (columns in characters); both are 0 when the problem has no
/// place in the file (for example when the file cannot be read), and `Display` then leaves them
/// out. Messages are written for operators, not programmers, and never contain a CPR number.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct Diagnostic {
    /// The file as it was named to the loader (or the name given to `load_str`).
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
pub struct Report<'a> {
    file: &'a str,
    text: &'a str,
    out: Vec<Diagnostic>,
}

impl<'a> Report<'a> {
    /// A report on `text`, the contents of `file`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        Self {
            file,
            text,
            out: Vec::new(),
        }
    }

    /// An error at the byte range `span`.
    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    /// A warning at the byte range `span`.
    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    /// Whether any error was reported.
    pub fn has_errors(&self) -> bool {
        self.out.iter().any(Diagnostic::is_error)
    }

    /// How many diagnostics were reported so far (a mark for [`Report::has_errors_since`]).
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Whether an error was reported after the mark `len` returned.
    pub fn has_errors_since(&self, mark: usize) -> bool {
        self.out
            .get(mark..)
            .is_some_and(|d| d.iter().any(Diagnostic::is_error))
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
    pub fn finish(mut self) -> Vec<Diagnostic> {
        self.out.sort_by(|a, b| {
            (a.line, a.col, a.severity, &a.message).cmp(&(b.line, b.col, b.severity, &b.message))
        });
        self.out.dedup();
        self.out
    }
}

/// A diagnostic with no place in a file (unreadable file, bad directory).
pub fn file_error(file: &str, message: impl Into<String>) -> Diagnostic {
    Diagnostic {
        file: file.to_owned(),
        line: 0,
        col: 0,
        severity: Severity::Error,
        message: message.into(),
    }
}

/// Line and column (both from 1, column in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
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

/// The candidate closest to `word` by edit distance, if it is close enough to be a typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= limit && c != word)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `" (did you mean 'x'?)"` or nothing.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    suggest(word, candidates)
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column() {
        let text = "ab\ncdæf\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 3), (2, 1));
        // 'f' (byte 7) comes after the two-byte 'æ': column counts characters.
        assert_eq!(line_col(text, 7), (2, 4));
        // Inside a multi-byte character and past the end do not panic.
        assert_eq!(line_col(text, 6), (2, 3));
        assert_eq!(line_col(text, 99), (3, 1));
    }

    #[test]
    fn display_with_and_without_place() {
        let mut d = file_error("a.toml", "cannot read");
        assert_eq!(d.to_string(), "a.toml: error: cannot read");
        d.line = 3;
        d.col = 7;
        assert_eq!(d.to_string(), "a.toml:3:7: error: cannot read");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("meny", ["menu", "play"]), Some("menu"));
        assert_eq!(suggest("prmpt", ["prompt", "next"]), Some("prompt"));
        assert_eq!(suggest("xyz", ["menu", "play"]), None);
        assert_eq!(did_you_mean("menu", ["menu"]), "");
    }
}
