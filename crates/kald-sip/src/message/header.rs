//! Header names (with RFC 3261 compact forms) and the tokenised header list.

use bytes::Bytes;

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident => $full:literal $(, $compact:literal)? ;)*) => {
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
                $( if name.eq_ignore_ascii_case($full.as_bytes()) { return Self::$variant; } )*
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
    };
}

header_names! {
    /// `Accept`.
    Accept => "Accept";
    /// `Allow`.
    Allow => "Allow";
    /// `Authorization`.
    Authorization => "Authorization";
    /// `Call-ID` (`i`).
    CallId => "Call-ID", b'i';
    /// `Contact` (`m`).
    Contact => "Contact", b'm';
    /// `Content-Encoding` (`e`).
    ContentEncoding => "Content-Encoding", b'e';
    /// `Content-Length` (`l`).
    ContentLength => "Content-Length", b'l';
    /// `Content-Type` (`c`).
    ContentType => "Content-Type", b'c';
    /// `CSeq`.
    CSeq => "CSeq";
    /// `Date`.
    Date => "Date";
    /// `Event` (`o`).
    Event => "Event", b'o';
    /// `Expires`.
    Expires => "Expires";
    /// `From` (`f`).
    From => "From", b'f';
    /// `Max-Forwards`.
    MaxForwards => "Max-Forwards";
    /// `Min-Expires`.
    MinExpires => "Min-Expires";
    /// `Min-SE`.
    MinSe => "Min-SE";
    /// `Proxy-Authenticate`.
    ProxyAuthenticate => "Proxy-Authenticate";
    /// `Proxy-Authorization`.
    ProxyAuthorization => "Proxy-Authorization";
    /// `Proxy-Require`.
    ProxyRequire => "Proxy-Require";
    /// `RAck`.
    RAck => "RAck";
    /// `Reason`.
    Reason => "Reason";
    /// `Record-Route`.
    RecordRoute => "Record-Route";
    /// `Refer-To` (`r`).
    ReferTo => "Refer-To", b'r';
    /// `Referred-By` (`b`).
    ReferredBy => "Referred-By", b'b';
    /// `Replaces`.
    Replaces => "Replaces";
    /// `Require`.
    Require => "Require";
    /// `Retry-After`.
    RetryAfter => "Retry-After";
    /// `Route`.
    Route => "Route";
    /// `RSeq`.
    RSeq => "RSeq";
    /// `Server`.
    Server => "Server";
    /// `Session-Expires` (`x`).
    SessionExpires => "Session-Expires", b'x';
    /// `Subject` (`s`).
    Subject => "Subject", b's';
    /// `Subscription-State`.
    SubscriptionState => "Subscription-State";
    /// `Supported` (`k`).
    Supported => "Supported", b'k';
    /// `To` (`t`).
    To => "To", b't';
    /// `Unsupported`.
    Unsupported => "Unsupported";
    /// `User-Agent`.
    UserAgent => "User-Agent";
    /// `Via` (`v`).
    Via => "Via", b'v';
    /// `Warning`.
    Warning => "Warning";
    /// `WWW-Authenticate`.
    WwwAuthenticate => "WWW-Authenticate";
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
    }
}
