//! URIs as SIP carries them: `sip:`/`sips:` and `tel:` read by parts, any other scheme kept
//! as text (so a UAS can answer 416 Unsupported URI Scheme rather than 400).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::scan::{find_byte, find_byte2, parse_decimal, trim_ws};
use super::Params;

/// A URI's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme<'a> {
    /// `sip:` (RFC 3261).
    Sip,
    /// `sips:` (RFC 3261, TLS to the last hop).
    Sips,
    /// `tel:` (RFC 3966).
    Tel,
    /// Any other syntactically valid scheme, as written.
    Other(&'a str),
}

/// The host part of a SIP URI or Via sent-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name, as written (compare case-insensitively).
    Domain(&'a str),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 reference `[…]`.
    Ipv6(Ipv6Addr),
    /// A bracketed reference that std cannot read but RFC 5118 §4.10 asks us to tolerate
    /// (the RFC 3261 ABNF bug that allows three colons), without the brackets.
    Ipv6Lenient(&'a str),
}

impl fmt::Display for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Domain(d) => f.write_str(d),
            Self::Ipv4(a) => write!(f, "{a}"),
            Self::Ipv6(a) => write!(f, "[{a}]"),
            Self::Ipv6Lenient(t) => write!(f, "[{t}]"),
        }
    }
}

/// Why a URI or host could not be read (carries no input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriError;

/// A parsed URI, borrowing from the header or request line it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// The whole URI as written.
    pub raw: &'a str,
    /// Its scheme.
    pub scheme: Scheme<'a>,
    /// The user part (`sip:`), or the number (`tel:`), still %-escaped.
    pub user: Option<&'a str>,
    /// The password part of a `sip:` userinfo (deprecated, but legal).
    pub password: Option<&'a str>,
    /// The host (`sip:` only).
    pub host: Option<Host<'a>>,
    /// The port (`sip:` only).
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Params<'a>,
    /// The headers component after `?`, still escaped; a Request-URI must not have one.
    pub headers: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Parse a URI with no surrounding spaces or angle brackets.
    pub fn parse(raw: &'a str) -> Result<Self, UriError> {
        if raw.is_empty() || raw.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>') {
            return Err(UriError);
        }
        let colon = find_byte(raw, b':').ok_or(UriError)?;
        let scheme_text = &raw[..colon];
        let mut chars = scheme_text.bytes();
        let first_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic());
        if !first_ok || !chars.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            return Err(UriError);
        }
        let rest = &raw[colon + 1..];
        let scheme = if scheme_text.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme_text.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme_text.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            Scheme::Other(scheme_text)
        };
        let mut uri = Self {
            raw,
            scheme,
            user: None,
            password: None,
            host: None,
            port: None,
            params: Params::EMPTY,
            headers: None,
        };
        match scheme {
            Scheme::Sip | Scheme::Sips => uri.parse_sip(rest)?,
            Scheme::Tel => {
                let (number, params) = match find_byte(rest, b';') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                if number.is_empty() {
                    return Err(UriError);
                }
                uri.user = Some(number);
                uri.params = Params::parse(params).map_err(|_| UriError)?;
            }
            Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(UriError);
                }
            }
        }
        Ok(uri)
    }

    fn parse_sip(&mut self, rest: &'a str) -> Result<(), UriError> {
        // The userinfo may itself hold ';', '?', ',' and ':' (RFC 4475 §3.1.1.2, §3.1.1.9),
        // so it ends at the first '@'.
        let hostpart = match find_byte(rest, b'@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let (user, password) = match find_byte(userinfo, b':') {
                    Some(c) => (&userinfo[..c], Some(&userinfo[c + 1..])),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(UriError);
                }
                self.user = Some(user);
                self.password = password;
                &rest[at + 1..]
            }
            None => rest,
        };
        let (hostport, tail) = match find_byte2(hostpart, b';', b'?') {
            Some(i) => (&hostpart[..i], &hostpart[i..]),
            None => (hostpart, ""),
        };
        let (host, port) = parse_hostport(hostport)?;
        self.host = Some(host);
        self.port = port;
        let (params, headers) = match find_byte(tail, b'?') {
            Some(q) => (&tail[..q], Some(&tail[q + 1..])),
            None => (tail, None),
        };
        self.params = Params::parse(params).map_err(|_| UriError)?;
        self.headers = headers;
        Ok(())
    }

    /// Whether the scheme is `sip:` or `sips:`.
    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.raw)
    }
}

/// Parse `host[:port]`, where host may be an IPv6 reference.
pub(crate) fn parse_hostport(s: &str) -> Result<(Host<'_>, Option<u16>), UriError> {
    let s = trim_ws(s);
    let (host, port_text) = if let Some(inner) = s.strip_prefix('[') {
        let close = find_byte(inner, b']').ok_or(UriError)?;
        let text = &inner[..close];
        let host = match text.parse::<Ipv6Addr>() {
            Ok(a) => Host::Ipv6(a),
            Err(_) if is_lenient_v6(text) => Host::Ipv6Lenient(text),
            Err(_) => return Err(UriError),
        };
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UriError)?),
        };
        (host, port)
    } else {
        let (h, p) = match find_byte(s, b':') {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        (parse_plain_host(h)?, p)
    };
    let port = match port_text {
        None => None,
        Some(p) => {
            Some(parse_decimal(trim_ws(p), u64::from(u16::MAX)).map_err(|_| UriError)? as u16)
        }
    };
    Ok((host, port))
}

/// Parse a host that is not bracketed: an IPv4 address or a host name.
pub(crate) fn parse_plain_host(h: &str) -> Result<Host<'_>, UriError> {
    if h.is_empty() {
        return Err(UriError);
    }
    if let Ok(a) = h.parse::<Ipv4Addr>() {
        return Ok(Host::Ipv4(a));
    }
    if h.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        Ok(Host::Domain(h))
    } else {
        Err(UriError)
    }
}

fn is_lenient_v6(t: &str) -> bool {
    t.contains(':')
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sip_uri_parts() {
        let u = Uri::parse("sip:alice:pw@[2001:db8::10]:5070;transport=tcp;lr?subject=x").unwrap();
        assert_eq!(u.scheme, Scheme::Sip);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("pw"));
        assert_eq!(u.host, Some(Host::Ipv6("2001:db8::10".parse().unwrap())));
        assert_eq!(u.port, Some(5070));
        assert_eq!(u.params.get("transport"), Some(Some("tcp")));
        assert_eq!(u.params.get("lr"), Some(None));
        assert_eq!(u.headers, Some("subject=x"));
    }

    #[test]
    fn ambiguous_ipv6_port_is_part_of_the_address() {
        let u = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(
            u.host,
            Some(Host::Ipv6("2001:db8::10:5070".parse().unwrap()))
        );
        assert_eq!(u.port, None);
    }

    #[test]
    fn unbracketed_ipv6_is_rejected() {
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
    }

    #[test]
    fn tel_and_other_schemes() {
        let t = Uri::parse("tel:+4570101010;phone-context=+45").unwrap();
        assert_eq!(t.scheme, Scheme::Tel);
        assert_eq!(t.user, Some("+4570101010"));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme, Scheme::Other("soap.beep"));
        assert!(Uri::parse("<sip:x@y>").is_err());
        assert!(Uri::parse("sip:x@y z").is_err());
    }

    #[test]
    fn user_part_with_semicolons() {
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Some(Host::Domain("example.com")));
    }
}
