//! Header names (with RFC 3261 compact forms) and the tokenised header list.

use bytes::Bytes;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $full:literal, $lower:literal $(, $compact:literal)? ;)*) => {
        /// A header's name: the headers kald reads by type, or any other name kept as bytes.
        ///
        /// Compact forms (`v`, `f`, `t`, `i`, `m`, `l`, `c`, `k`, `s`, `e`, `o`, `r`, `b`, `x`,
        /// `u`, `y`) map to the same variant as the full name; comparison ignores case.
        #[non_exhaustive]
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// Any header kald has no typed accessor for, with its name as received.
            Other(Bytes),
        }

        impl HeaderName {
            /// Recognise a name as received (any case, compact or full form).
            pub fn from_bytes(name: &[u8]) -> Self {
                if name.len() == 1 {
                    let c = name[0].to_ascii_lowercase();
                    $( $( if c == $compact { return Self::$variant; } )? )*
                }
                // Lower-case into a stack buffer and let the compiler build the match tree.
                let mut buf = [0u8; MAX_KNOWN_NAME];
                if let Some(lower) = buf.get_mut(..name.len()) {
                    for (d, s) in lower.iter_mut().zip(name) {
                        *d = s.to_ascii_lowercase();
                    }
                    match &*lower {
                        $( $lower => return Self::$variant, )*
                        _ => {}
                    }
                }
                Self::Other(Bytes::copy_from_slice(name))
            }

            /// The full canonical name, or the name as received for other headers.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $full, )*
                    Self::Other(b) => std::str::from_utf8(b).unwrap_or("X-Invalid-Name"),
                }
            }

            /// Whether kald knows this header by type.
            pub fn is_known(&self) -> bool {
                !matches!(self, Self::Other(_))
            }
        }

        /// Every known name: (variant, canonical form, lower-case form).
        #[cfg(test)]
        const KNOWN: &[(HeaderName, &str, &[u8])] = &[ $( (HeaderName::$variant, $full, $lower), )* ];
    };
}

/// The longest known header name (`Proxy-Authorization`) fits in this many bytes.
const MAX_KNOWN_NAME: usize = 24;

header_names! {
    /// `Accept`.
    Accept => "Accept", b"accept";
    /// `Allow`.
    Allow => "Allow", b"allow";
    /// `Authorization`.
    Authorization => "Authorization", b"authorization";
    /// `Call-ID` (`i`).
    CallId => "Call-ID", b"call-id", b'i';
    /// `Contact` (`m`).
    Contact => "Contact", b"contact", b'm';
    /// `Content-Encoding` (`e`).
    ContentEncoding => "Content-Encoding", b"content-encoding", b'e';
    /// `Content-Length` (`l`).
    ContentLength => "Content-Length", b"content-length", b'l';
    /// `Content-Type` (`c`).
    ContentType => "Content-Type", b"content-type", b'c';
    /// `CSeq`.
    CSeq => "CSeq", b"cseq";
    /// `Date`.
    Date => "Date", b"date";
    /// `Event` (`o`).
    Event => "Event", b"event", b'o';
    /// `Expires`.
    Expires => "Expires", b"expires";
    /// `From` (`f`).
    From => "From", b"from", b'f';
    /// `Max-Forwards`.
    MaxForwards => "Max-Forwards", b"max-forwards";
    /// `Min-Expires`.
    MinExpires => "Min-Expires", b"min-expires";
    /// `Min-SE`.
    MinSe => "Min-SE", b"min-se";
    /// `Proxy-Authenticate`.
    ProxyAuthenticate => "Proxy-Authenticate", b"proxy-authenticate";
    /// `Proxy-Authorization`.
    ProxyAuthorization => "Proxy-Authorization", b"proxy-authorization";
    /// `Proxy-Require`.
    ProxyRequire => "Proxy-Require", b"proxy-require";
    /// `RAck`.
    RAck => "RAck", b"rack";
    /// `Reason`.
    Reason => "Reason", b"reason";
    /// `Record-Route`.
    RecordRoute => "Record-Route", b"record-route";
    /// `Refer-To` (`r`).
    ReferTo => "Refer-To", b"refer-to", b'r';
    /// `Referred-By` (`b`).
    ReferredBy => "Referred-By", b"referred-by", b'b';
    /// `Replaces`.
    Replaces => "Replaces", b"replaces";
    /// `Require`.
    Require => "Require", b"require";
    /// `Retry-After`.
    RetryAfter => "Retry-After", b"retry-after";
    /// `Route`.
    Route => "Route", b"route";
    /// `RSeq`.
    RSeq => "RSeq", b"rseq";
    /// `Server`.
    Server => "Server", b"server";
    /// `Session-Expires` (`x`).
    SessionExpires => "Session-Expires", b"session-expires", b'x';
    /// `Subject` (`s`).
    Subject => "Subject", b"subject", b's';
    /// `Subscription-State`.
    SubscriptionState => "Subscription-State", b"subscription-state";
    /// `Supported` (`k`).
    Supported => "Supported", b"supported", b'k';
    /// `To` (`t`).
    To => "To", b"to", b't';
    /// `Unsupported`.
    Unsupported => "Unsupported", b"unsupported";
    /// `User-Agent`.
    UserAgent => "User-Agent", b"user-agent";
    /// `Via` (`v`).
    Via => "Via", b"via", b'v';
    /// `Warning`.
    Warning => "Warning", b"warning";
    /// `WWW-Authenticate`.
    WwwAuthenticate => "WWW-Authenticate", b"www-authenticate";
}

impl HeaderName {
    /// Whether this header may hold a comma-separated list of values (RFC 3261 §7.3.1).
    ///
    /// Authentication headers, `Date` and unknown headers are never split.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            Self::Accept
                | Self::Allow
                | Self::Contact
                | Self::ContentEncoding
                | Self::ProxyRequire
                | Self::RecordRoute
                | Self::Require
                | Self::Route
                | Self::Supported
                | Self::Unsupported
                | Self::Via
                | Self::Warning
        )
    }

    /// Whether a request may carry this header at most once (RFC 3261 §20, table 2).
    pub fn is_single(&self) -> bool {
        matches!(
            self,
            Self::CallId
                | Self::ContentLength
                | Self::ContentType
                | Self::CSeq
                | Self::Expires
                | Self::From
                | Self::MaxForwards
                | Self::MinSe
                | Self::RAck
                | Self::RSeq
                | Self::ReferTo
                | Self::SessionExpires
                | Self::To
        )
    }
}

/// One header as received: its name and its value, unfolded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: HeaderName,
    /// The value: a slice of the received buffer, or an unfolded copy when the line was folded.
    pub value: Bytes,
}

impl Header {
    /// A header from a name and a value.
    pub fn new(name: HeaderName, value: impl Into<Bytes>) -> Self {
        Self {
            name,
            value: value.into(),
        }
    }

    /// The value as text, if it is UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }
}

/// The headers of a message in the order received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list with room for a typical request.
    pub fn new() -> Self {
        Self(Vec::with_capacity(16))
    }

    /// Append a header.
    pub fn push(&mut self, header: Header) {
        self.0.push(header);
    }

    /// Insert a header before all others (e.g. a new top Via).
    pub fn push_front(&mut self, header: Header) {
        self.0.insert(0, header);
    }

    /// Every header, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.0.iter()
    }

    /// Every header line with this name, in order.
    pub fn all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Header> + 'a {
        self.0.iter().filter(move |h| &h.name == name)
    }

    /// The first header line with this name.
    pub fn first(&self, name: &HeaderName) -> Option<&Header> {
        self.0.iter().find(|h| &h.name == name)
    }

    /// Whether a header with this name is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.first(name).is_some()
    }

    /// How many header lines carry this name.
    pub fn count(&self, name: &HeaderName) -> usize {
        self.all(name).count()
    }

    /// Remove every header line with this name.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::from_bytes(b"v"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"V"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"ViA"), HeaderName::Via);
        assert_eq!(HeaderName::from_bytes(b"l"), HeaderName::ContentLength);
        assert_eq!(
            HeaderName::from_bytes(b"MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_bytes(b"x"), HeaderName::SessionExpires);
        assert!(matches!(HeaderName::from_bytes(b"q"), HeaderName::Other(_)));
        assert_eq!(HeaderName::from_bytes(b"X-Foo").as_str(), "X-Foo");
        assert!(matches!(
            HeaderName::from_bytes(b"Proxy-Authorization-And-Then-Some"),
            HeaderName::Other(_)
        ));
    }

    #[test]
    fn every_known_name_is_recognised_in_any_case() {
        for (variant, full, lower) in KNOWN {
            assert_eq!(full.to_ascii_lowercase().as_bytes(), *lower, "{full}");
            assert!(full.len() <= MAX_KNOWN_NAME, "{full}");
            assert_eq!(&HeaderName::from_bytes(full.as_bytes()), variant);
            assert_eq!(&HeaderName::from_bytes(lower), variant);
            assert_eq!(
                &HeaderName::from_bytes(full.to_ascii_uppercase().as_bytes()),
                variant
            );
            assert_eq!(variant.as_str(), *full);
        }
    }
}
