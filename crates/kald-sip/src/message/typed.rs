//! Typed views of the headers a B2BUA reads. Each borrows from the header value and is parsed
//! only when asked for.

use std::fmt;

use super::scan::{
    end_of_quoted, find_byte, find_byte2, is_token, is_token_byte, is_ws, parse_decimal, split_top,
    trim_ws,
};
use super::uri::{parse_hostport, Host, Uri};
use super::Method;

/// A `;name[=value]` parameter list, validated once and read lazily.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Params<'a>(&'a str);

/// Why a header value could not be read; the caller adds which header it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueError {
    /// The value does not follow the header's grammar.
    Malformed,
    /// A number is outside its legal range.
    OutOfRange,
}

impl<'a> Params<'a> {
    /// No parameters.
    pub const EMPTY: Params<'static> = Params("");

    /// Validate `s`, which is empty or starts with `;`.
    pub fn parse(s: &'a str) -> Result<Self, ValueError> {
        let t = trim_ws(s);
        if t.is_empty() {
            return Ok(Self(""));
        }
        let Some(body) = t.strip_prefix(';') else {
            return Err(ValueError::Malformed);
        };
        for part in split_top(body, b';') {
            let part = part.map_err(|()| ValueError::Malformed)?;
            let (name, value) = split_param(part);
            if !is_token(name) {
                return Err(ValueError::Malformed);
            }
            if let Some(v) = value {
                let ok = if v.starts_with('"') {
                    end_of_quoted(v.as_bytes(), 0) == Some(v.len())
                } else {
                    !v.is_empty() && v.bytes().all(|b| is_token_byte(b) || b"[]:".contains(&b))
                };
                if !ok {
                    return Err(ValueError::Malformed);
                }
            }
        }
        Ok(Self(t))
    }

    /// The parameters in order, as (name, value) with LWS around `=` removed.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> {
        let body = self.0.strip_prefix(';').unwrap_or("");
        let parts = if body.is_empty() {
            None
        } else {
            Some(split_top(body, b';'))
        };
        parts
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(split_param)
    }

    /// A parameter by name (case-insensitive): `Some(None)` for a flag, `Some(Some(v))` with a value.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The list as written, starting with `;` (or empty).
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

fn split_param(part: &str) -> (&str, Option<&str>) {
    match find_byte(part, b'=') {
        Some(i) => (trim_ws(&part[..i]), Some(trim_ws(&part[i + 1..]))),
        None => (trim_ws(part), None),
    }
}

/// One `Via` value: how a request was sent and where its responses go (RFC 3261 §20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport token (`UDP`, `TCP`, `TLS`, `SCTP`, or any other), as written.
    pub transport: &'a str,
    /// The host of sent-by.
    pub host: Host<'a>,
    /// The port of sent-by, if given.
    pub port: Option<u16>,
    /// The Via parameters (`branch`, `received`, `rport`, …).
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parse one Via value (not a comma-separated list).
    pub fn parse(s: &'a str) -> Result<Self, ValueError> {
        // sent-protocol = name "/" version "/" transport, with LWS allowed around each "/".
        let slash = find_byte(s, b'/').ok_or(ValueError::Malformed)?;
        let (name, after) = (&s[..slash], &s[slash + 1..]);
        let slash = find_byte(after, b'/').ok_or(ValueError::Malformed)?;
        let (version, rest) = (&after[..slash], &after[slash + 1..]);
        if !trim_ws(name).eq_ignore_ascii_case("SIP") || trim_ws(version) != "2.0" {
            return Err(ValueError::Malformed);
        }
        let rest = trim_ws(rest);
        let t_end = find_byte2(rest, b' ', b'\t').ok_or(ValueError::Malformed)?;
        let transport = &rest[..t_end];
        if !is_token(transport) {
            return Err(ValueError::Malformed);
        }
        let rest = trim_ws(&rest[t_end..]);
        let (sent_by, params) = match find_byte(rest, b';') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = parse_hostport(sent_by).map_err(|_| ValueError::Malformed)?;
        let params = Params::parse(params)?;
        Ok(Self {
            transport,
            host,
            port,
            params,
        })
    }

    /// The branch parameter, if present.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// The branch if it carries the RFC 3261 magic cookie and something after it.
    pub fn rfc3261_branch(&self) -> Option<&'a str> {
        self.branch()
            .filter(|b| b.len() > 7 && b[..7].eq_ignore_ascii_case("z9hG4bK"))
    }
}

/// A `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Refer-To…
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, unquoted but still with escapes, if any.
    pub display_name: Option<&'a str>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`tag`, `expires`, `q`, …).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parse one value (not a list).
    pub fn parse(s: &'a str) -> Result<Self, ValueError> {
        let s = trim_ws(s);
        let b = s.as_bytes();
        let (display_name, after_name) = if b.first() == Some(&b'"') {
            let end = end_of_quoted(b, 0).ok_or(ValueError::Malformed)?;
            (Some(&s[1..end - 1]), trim_ws(&s[end..]))
        } else if let Some(lt) = find_byte(s, b'<') {
            let name = trim_ws(&s[..lt]);
            // An unquoted display name is tokens separated by LWS (RFC 4475 §3.1.2.15).
            if !name
                .split([' ', '\t'])
                .filter(|t| !t.is_empty())
                .all(is_token)
            {
                return Err(ValueError::Malformed);
            }
            (if name.is_empty() { None } else { Some(name) }, &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = after_name.strip_prefix('<') {
            let gt = find_byte(inner, b'>').ok_or(ValueError::Malformed)?;
            let uri_text = &inner[..gt];
            // No LWS inside the brackets (RFC 4475 §3.1.2.14).
            let uri = Uri::parse(uri_text).map_err(|_| ValueError::Malformed)?;
            let params = Params::parse(&inner[gt + 1..])?;
            Ok(Self {
                display_name,
                uri,
                params,
            })
        } else {
            if display_name.is_some() {
                return Err(ValueError::Malformed);
            }
            // addr-spec: the URI cannot have parameters or headers of its own (RFC 3261 §20.10),
            // so ',', '?' and ';' end it; a '?' here is an error (RFC 4475 §3.1.2.13).
            let end = find_byte(s, b';').unwrap_or(s.len());
            let uri_text = trim_ws(&s[..end]);
            if find_byte2(uri_text, b'?', b',').is_some() {
                return Err(ValueError::Malformed);
            }
            let uri = Uri::parse(uri_text).map_err(|_| ValueError::Malformed)?;
            let params = Params::parse(&s[end..])?;
            Ok(Self {
                display_name: None,
                uri,
                params,
            })
        }
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }
}

/// The CSeq header: sequence number and method (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number, less than 2³¹.
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parse a CSeq value.
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = trim_ws(s);
        let split = find_byte2(s, b' ', b'\t').ok_or(ValueError::Malformed)?;
        let seq = match parse_decimal(&s[..split], (1 << 31) - 1) {
            Ok(v) => v as u32,
            Err(true) => return Err(ValueError::OutOfRange),
            Err(false) => return Err(ValueError::Malformed),
        };
        let m = trim_ws(&s[split..]);
        if !is_token(m) {
            return Err(ValueError::Malformed);
        }
        Ok(Self {
            seq,
            method: Method::from_bytes(m.as_bytes()),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parse an unsigned number header (Max-Forwards, Expires, Content-Length, …) up to `max`.
pub fn parse_number(s: &str, max: u64) -> Result<u64, ValueError> {
    match parse_decimal(trim_ws(s), max) {
        Ok(v) => Ok(v),
        Err(true) => Err(ValueError::OutOfRange),
        Err(false) => Err(ValueError::Malformed),
    }
}

/// Validate a Call-ID: `word ["@" word]` with no spaces.
pub fn parse_call_id(s: &str) -> Result<&str, ValueError> {
    let s = trim_ws(s);
    if s.is_empty() || s.bytes().any(|b| is_ws(b) || b < 0x21 || b == 0x7f) {
        return Err(ValueError::Malformed);
    }
    Ok(s)
}

/// Check an RFC 1123 date as SIP requires it: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn check_date(s: &str) -> Result<(), ValueError> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = trim_ws(s).split(' ').collect();
    let ok = f.len() == 6
        && f[0].len() == 4
        && f[0].ends_with(',')
        && DAYS.contains(&&f[0][..3])
        && f[1].len() == 2
        && f[1].bytes().all(|b| b.is_ascii_digit())
        && MONTHS.contains(&f[2])
        && f[3].len() == 4
        && f[3].bytes().all(|b| b.is_ascii_digit())
        && f[4].len() == 8
        && f[4].bytes().enumerate().all(|(i, b)| {
            if i == 2 || i == 5 {
                b == b':'
            } else {
                b.is_ascii_digit()
            }
        })
        && f[5] == "GMT";
    if ok {
        Ok(())
    } else {
        Err(ValueError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v =
            Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4("192.168.255.111".parse().unwrap()));
        assert_eq!(v.branch(), Some("z9hG4bK30239"));
        assert_eq!(v.rfc3261_branch(), Some("z9hG4bK30239"));
    }

    #[test]
    fn via_empty_params_are_malformed() {
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;branch=").is_err());
    }

    #[test]
    fn via_received_ipv6_without_brackets() {
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(v.params.get("received"), Some(Some("2001:db8::9:255")));
    }

    #[test]
    fn bare_cookie_is_not_an_rfc3261_branch() {
        let v = Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK").unwrap();
        assert_eq!(v.rfc3261_branch(), None);
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name, Some(r#"J Rosenberg \\\""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let a = NameAddr::parse("sip:caller@example.net;tag=134161461246").unwrap();
        assert_eq!(a.uri.user, Some("caller"));
        assert_eq!(a.tag(), Some("134161461246"));
        let t = NameAddr::parse("token1~` token2'+_ <sip:mundane@example.com>;x=y").unwrap();
        assert_eq!(t.display_name, Some("token1~` token2'+_"));
    }

    #[test]
    fn name_addr_faults() {
        assert!(NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#).is_err());
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_err());
    }

    #[test]
    fn cseq_ranges() {
        assert_eq!(CSeq::parse("0009\u{20} INVITE").unwrap().seq, 9);
        assert_eq!(
            CSeq::parse("36893488147419103232 REGISTER"),
            Err(ValueError::OutOfRange)
        );
        assert_eq!(
            CSeq::parse("2147483648 INVITE"),
            Err(ValueError::OutOfRange)
        );
        assert!(CSeq::parse("INVITE").is_err());
    }

    #[test]
    fn dates() {
        assert!(check_date("Sat, 13 Nov 2010 23:29:00 GMT").is_ok());
        assert!(check_date("Fri, 01 Jan 2010 16:00:00 EST").is_err());
    }
}
