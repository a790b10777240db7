//! The flow file as written, before checking: every value keeps its place in the file.

use core::fmt;
use core::ops::Range;
use std::collections::BTreeMap;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::hours::RawCalendar;

/// The whole file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFlow {
    pub(crate) start: Spanned<String>,
    #[allow(dead_code)] // For the reader of the file and for graphs.
    pub(crate) description: Option<Spanned<String>>,
    pub(crate) transfer_allowlist: Option<Vec<Spanned<String>>>,
    pub(crate) calendar: Option<Spanned<RawCalendar>>,
    /// Not wrapped in `Spanned`: toml 0.8 cannot give spans to keys inside a spanned map.
    pub(crate) nodes: BTreeMap<Spanned<String>, Spanned<RawNode>>,
}

/// A table of names to node ids (`choices`, `when`, `cases`). The keys carry no span (toml 0.8
/// cannot span keys inside a spanned map); messages about an entry point at its value.
pub(crate) type RawTable = BTreeMap<String, Spanned<String>>;

/// Declares [`RawNode`] with every option any node kind may have, and `present()`, which lists
/// the options a node actually has (to reject those its kind does not take).
macro_rules! raw_node {
    ($($(#[$meta:meta])* $name:ident: $ty:ty,)*) => {
        /// One `[nodes.<id>]` table: `kind` plus the options of every kind, checked per kind later.
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(crate) struct RawNode {
            pub(crate) kind: Spanned<String>,
            $($(#[$meta])* #[serde(default)] pub(crate) $name: Option<Spanned<$ty>>,)*
        }

        impl RawNode {
            /// The options this node has, with where their values are.
            pub(crate) fn present(&self) -> Vec<(&'static str, Range<usize>)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$name { out.push((stringify!($name), v.span())); })*
                out
            }
        }
    };
}

raw_node! {
    description: String,
    #[serde(alias = "prompts")]
    prompt: Prompts,
    barge_in: bool,
    notice: String,
    next: String,
    fallback: String,
    choices: RawTable,
    timeout: DurationText,
    inter_digit_timeout: DurationText,
    overall_timeout: DurationText,
    invalid_prompt: Prompts,
    no_input_prompt: Prompts,
    retries: i64,
    digits: i64,
    min_digits: i64,
    max_digits: i64,
    validator: String,
    read_back: bool,
    field: String,
    value: String,
    yes: String,
    no: String,
    yes_prompt: Prompts,
    no_prompt: Prompts,
    when: RawTable,
    queue: String,
    topic: String,
    hold_music: String,
    announce_position: DurationText,
    priority: i64,
    max_wait: DurationText,
    target: String,
    team: String,
    max_length: DurationText,
    to: String,
    cases: RawTable,
    otherwise: String,
}

/// One prompt name or a list of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prompts(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for Prompts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Prompts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a prompt name in quotes or a list of them, like [\"welcome\", \"menu\"]",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Prompts, E> {
                Ok(Prompts(vec![v.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Prompts, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Prompts(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration as written: `"8s"`, `"1m 30s"`, `"500ms"`, or a whole number of seconds.
#[derive(Clone, Debug)]
pub(crate) enum DurationText {
    Seconds(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration in quotes, like \"8s\", \"1m 30s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText::Text(v.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationText, E> {
                Ok(DurationText::Seconds(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl DurationText {
    /// The duration, or why it is not one (completing "… is not a usable duration: …").
    pub(crate) fn to_duration(&self) -> Result<std::time::Duration, String> {
        let d = match self {
            Self::Seconds(s) => jiff::SignedDuration::from_secs(*s),
            Self::Text(t) => t.parse::<jiff::SignedDuration>().map_err(|_| {
                format!("'{t}' is not a duration; write e.g. \"8s\", \"1m 30s\" or \"500ms\"")
            })?,
        };
        if d.is_zero() || d.is_negative() {
            return Err(format!("{self} must be longer than zero"));
        }
        std::time::Duration::try_from(d).map_err(|_| format!("{self} is too long"))
    }
}

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Seconds(s) => write!(f, "{s}"),
            Self::Text(t) => write!(f, "'{t}'"),
        }
    }
}

/// Rewrites a TOML/serde message in words an operator understands.
pub(crate) fn friendly_message(message: &str) -> String {
    let message = message.trim();
    // "unknown field `prmpt`, expected one of `kind`, `prompt`"
    if let Some(rest) = message.strip_prefix("unknown field `") {
        if let Some((field, expected)) = rest.split_once('`') {
            let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
            let hint = crate::diag::did_you_mean(field, options.iter().copied());
            return format!("unknown option '{field}'{hint}");
        }
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("missing option '{field}'");
    }
    // "invalid type: integer `3`, expected a string"
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            let expected = match expected {
                "a string" => "text in quotes",
                "a boolean" => "true or false",
                "i64" => "a whole number",
                other => other,
            };
            return format!("expected {expected}, found {found}");
        }
    }
    if message.starts_with("invalid basic string") || message.starts_with("invalid literal string")
    {
        return "text in quotes is not closed on this line (or holds a character that is not \
                allowed)"
            .to_owned();
    }
    if let Some((head, rest)) = message.split_once('\n') {
        // toml_edit puts a one-line summary first ("invalid table header") and details after.
        return format!("{head}: {}", rest.replace('\n', " "));
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_messages() {
        assert_eq!(
            friendly_message("unknown field `prmpt`, expected one of `kind`, `prompt`, `next`"),
            "unknown option 'prmpt' (did you mean 'prompt'?)"
        );
        assert_eq!(
            friendly_message("missing field `kind`"),
            "missing option 'kind'"
        );
        assert_eq!(
            friendly_message("invalid type: integer `3`, expected a string"),
            "expected text in quotes, found integer `3`"
        );
        assert_eq!(
            friendly_message("invalid table header\nduplicate key `a` in table `nodes`"),
            "invalid table header: duplicate key `a` in table `nodes`"
        );
    }

    #[test]
    fn durations() {
        let ok = |t: &str| DurationText::Text(t.to_owned()).to_duration();
        assert_eq!(ok("8s"), Ok(std::time::Duration::from_secs(8)));
        assert_eq!(ok("1m 30s"), Ok(std::time::Duration::from_secs(90)));
        assert_eq!(ok("500ms"), Ok(std::time::Duration::from_millis(500)));
        assert!(ok("8 sek").is_err());
        assert!(ok("0s").is_err());
        assert!(ok("-5s").is_err());
        assert_eq!(
            DurationText::Seconds(4).to_duration(),
            Ok(std::time::Duration::from_secs(4))
        );
        assert!(DurationText::Seconds(-4).to_duration().is_err());
    }
}
