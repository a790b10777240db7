//! Byte-level helpers shared by the typed header parsers (RFC 3261 §25 lexical rules).

/// Whether `b` may appear in an RFC 3261 `token`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Whether `s` is a non-empty RFC 3261 `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Whether `b` is linear white space after unfolding.
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing spaces and tabs.
pub(crate) fn trim_ws(s: &str) -> &str {
    s.trim_matches(|c| c == ' ' || c == '\t')
}

/// The byte index just past the closing quote of a quoted string opening at `start`.
///
/// Backslash escapes one byte (`quoted-pair`); `None` when the quote is never closed.
pub(crate) fn end_of_quoted(s: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Iterator over top-level `sep`-separated parts of a value, ignoring separators inside
/// quoted strings and `<…>`. Parts are trimmed; an unterminated quote yields `Err(())`.
pub(crate) struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

/// Split `s` at top-level occurrences of `sep`.
pub(crate) fn split_top(s: &str, sep: u8) -> Split<'_> {
    Split { rest: Some(s), sep }
}

impl<'a> Iterator for Split<'a> {
    type Item = Result<&'a str, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut i = 0;
        let mut angle = false;
        while i < b.len() {
            match b[i] {
                b'"' => match end_of_quoted(b, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        self.rest = None;
                        return Some(Err(()));
                    }
                },
                b'<' => angle = true,
                b'>' => angle = false,
                c if c == self.sep && !angle => {
                    self.rest = Some(&s[i + 1..]);
                    return Some(Ok(trim_ws(&s[..i])));
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = None;
        Some(Ok(trim_ws(s)))
    }
}

/// Parse a run of ASCII digits (leading zeros allowed) no larger than `max`.
///
/// `Err(true)` means "digits, but too large"; `Err(false)` means "not digits".
pub(crate) fn parse_decimal(s: &str, max: u64) -> Result<u64, bool> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(false);
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or(true)?;
        if v > max {
            return Err(true);
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let parts: Vec<_> = split_top(r#""a, b" <sip:x;y,z>, c ,d"#, b',').collect();
        assert_eq!(parts, vec![Ok(r#""a, b" <sip:x;y,z>"#), Ok("c"), Ok("d")]);
        let bad: Vec<_> = split_top(r#""open, x"#, b',').collect();
        assert_eq!(bad, vec![Err(())]);
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_decimal("0068", 255), Ok(68));
        assert_eq!(parse_decimal("300", 255), Err(true));
        assert_eq!(parse_decimal("36893488147419103232", u64::MAX), Err(true));
        assert_eq!(parse_decimal("-1", 10), Err(false));
        assert_eq!(parse_decimal("", 10), Err(false));
    }
}
