//! Problems found in the policy file: the shared diagnostics of `kald-core` (the same shape as
//! the flow checker's), and the policy's own wording of TOML errors.

pub(crate) use kald_core::diag::{did_you_mean, file_error, Report};
pub use kald_core::diag::{Diagnostic, Severity};

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
