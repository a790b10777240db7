//! Byte-level helpers shared by the typed header parsers (RFC 3261 §25 lexical rules).

use std::sync::LazyLock;

use memchr::memmem::Finder;

/// `TOKEN[b]`: whether byte `b` may appear in an RFC 3261 `token`.
const TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            );
        i += 1;
    }
    t
};

/// Whether `b` may appear in an RFC 3261 `token`.
#[inline]
pub(crate) fn is_token_byte(b: u8) -> bool {
    TOKEN[usize::from(b)]
}

/// Whether `s` is a non-empty RFC 3261 `token`.
#[inline]
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// Whether `b` is linear white space after unfolding.
#[inline]
pub(crate) fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `s` without leading and trailing spaces and tabs.
#[inline]
pub(crate) fn trim_ws(s: &str) -> &str {
    let b = s.as_bytes();
    let mut start = 0;
    let mut end = b.len();
    while start < end && is_ws(b[start]) {
        start += 1;
    }
    while end > start && is_ws(b[end - 1]) {
        end -= 1;
    }
    // SP and HT are ASCII, so both ends are on character boundaries.
    &s[start..end]
}

/// The index of the first byte `b` in `s`. A plain loop: SIP values are too short for a
/// SIMD search to repay its setup.
#[inline]
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// The index of the first byte in `s` that is `a` or `b`.
#[inline]
pub(crate) fn find_byte2(s: &str, a: u8, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == a || c == b)
}

/// The index of the first CRLF in `b`.
#[inline]
pub(crate) fn find_crlf(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\r', b).find(|&i| b.get(i + 1) == Some(&b'\n'))
}

/// The index of the first empty line (CRLFCRLF) in `b`.
pub(crate) fn find_blank_line(b: &[u8]) -> Option<usize> {
    // Building a searcher costs more than searching a SIP head, so build it once.
    static FINDER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
    FINDER.find(b)
}

/// The byte index just past the closing quote of a quoted string opening at `start`.
///
/// Backslash escapes one byte (`quoted-pair`); `None` when the quote is never closed.
#[inline]
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

/// The bytes [`Split`] stops at: quote, angle brackets and the two separators it is used with.
const SPLIT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b',' as usize] = true;
    t[b';' as usize] = true;
    t
};

/// Iterator over top-level `sep`-separated parts of a value, ignoring separators inside
/// quoted strings and `<…>`. Parts are trimmed; an unterminated quote yields `Err(())`.
pub(crate) struct Split<'a> {
    rest: Option<&'a str>,
    sep: u8,
}

/// Split `s` at top-level occurrences of `sep`.
pub(crate) fn split_top(s: &str, sep: u8) -> Split<'_> {
    debug_assert!(SPLIT_SPECIAL[usize::from(sep)]);
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
            let c = b[i];
            // Most bytes are none of `" < > , ;`: one table look-up passes them.
            if !SPLIT_SPECIAL[usize::from(c)] {
                i += 1;
                continue;
            }
            match c {
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
    fn split_edge_cases() {
        // Outside quotes a backslash is an ordinary byte; inside `<…>` a quote still opens.
        let parts: Vec<_> = split_top(r#"a\",b"x, <c,d>e, f"#, b',').collect();
        assert_eq!(parts, vec![Ok(r#"a\",b"x"#), Ok("<c,d>e"), Ok("f")]);
        let parts: Vec<_> = split_top(r#"<c,"d>e, f"#, b',').collect();
        assert_eq!(parts, vec![Err(())]);
        let parts: Vec<_> = split_top(r#""q\"," , x"#, b',').collect();
        assert_eq!(parts, vec![Ok(r#""q\",""#), Ok("x")]);
        let parts: Vec<_> = split_top(" ; ;", b';').collect();
        assert_eq!(parts, vec![Ok(""), Ok(""), Ok("")]);
        assert_eq!(end_of_quoted(br#""a\"#, 0), None);
        assert_eq!(end_of_quoted(br#""a\"b"c"#, 0), Some(6));
    }

    #[test]
    fn trims_tokens_and_lines() {
        assert_eq!(trim_ws(" \t a b\t "), "a b");
        assert_eq!(trim_ws(" \t "), "");
        assert!(is_token("!interesting-Method0123456789_*+`.%indeed'~"));
        assert!(!is_token("a b") && !is_token("a\u{e6}") && !is_token(""));
        assert_eq!(find_crlf(b"a\rb\r\nc"), Some(3));
        assert_eq!(find_crlf(b"a\r"), None);
        assert_eq!(find_blank_line(b"a\r\n\nb\r\n\r\nc"), Some(5));
        assert_eq!(find_blank_line(b"\r\n\r"), None);
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
