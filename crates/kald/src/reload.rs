//! Reloading `kald.toml` while kald runs.
//!
//! Operators change agents, skills and queues during the day. Every couple of seconds the SIP
//! loop asks [`ConfigWatch::changed`] whether the file changed; once a change has stayed the
//! same for one more look (an editor may write a file in several steps) and loads, the
//! contact centre (`[[queue]]`, `[[agent]]`, `[[user]]`) and `transfer_allowlist` take effect
//! at once ([`crate::calls::Calls::set_centre`], and the API's users), and any other setting
//! that changed is named in a warning: it waits for the next restart (sockets, database, keys
//! and the like cannot change under running calls). A file that does not load is rejected with
//! its `file:line:col` and reason, logged once, and the configuration in use stays; so does a
//! file that is gone or empty (never a reason to log every agent out).

use std::path::PathBuf;

use crate::config::{Config, Flags};

/// The top-level keys of `kald.toml` that apply without a restart.
const LIVE_KEYS: &[&str] = &["queue", "agent", "user", "transfer_allowlist"];

/// Watches the configuration file for changes.
pub(crate) struct ConfigWatch {
    /// The command-line values (they override the file, as at start).
    flags: Flags,
    /// The file.
    file: PathBuf,
    /// Its text when last looked at (`None`: missing).
    text: Option<String>,
    /// Whether `text` differs from what is in use and waits to be seen once more.
    settling: bool,
    /// Its text when last loaded (what is in use), for telling what changed.
    in_use: Option<String>,
}

impl ConfigWatch {
    /// Watches the file `config` was loaded from.
    pub(crate) fn new(config: &Config) -> Self {
        let text = std::fs::read_to_string(&config.file).ok();
        Self {
            flags: config.flags.clone(),
            file: config.file.clone(),
            in_use: text.clone(),
            text,
            settling: false,
        }
    }

    /// The newly loaded configuration and the settings in it that wait for a restart, when
    /// the file changed and then stayed the same for one more look, and loads; `None`
    /// otherwise (a file that does not load is logged, once per change).
    pub(crate) fn changed(&mut self) -> Option<(Config, Vec<String>)> {
        let text = std::fs::read_to_string(&self.file).ok();
        if text != self.text {
            // Changed since the last look: wait for it to settle.
            self.text = text;
            self.settling = self.text != self.in_use;
            return None;
        }
        if !self.settling {
            return None;
        }
        self.settling = false;
        let loaded = match text.as_deref().map(str::trim) {
            None => Err(anyhow::anyhow!("{} is gone", self.file.display())),
            Some("") => Err(anyhow::anyhow!("{} is empty", self.file.display())),
            Some(_) => Config::from_text(&self.flags, text.as_deref().unwrap_or_default()),
        };
        match loaded {
            Ok(config) => {
                let later = restart_only_changes(self.in_use.as_deref(), text.as_deref());
                self.in_use = text;
                Some((config, later))
            }
            Err(e) => {
                tracing::error!(
                    error = %format!("{e:#}"),
                    "the configuration file was not reloaded; the one in use stays"
                );
                None
            }
        }
    }
}

/// The top-level settings other than [`LIVE_KEYS`] whose values differ between the two texts
/// (a missing file is an empty one), in key order.
fn restart_only_changes(old: Option<&str>, new: Option<&str>) -> Vec<String> {
    let table = |text: Option<&str>| -> toml::Table {
        text.and_then(|t| t.parse::<toml::Table>().ok())
            .unwrap_or_default()
    };
    let (old, new) = (table(old), table(new));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !LIVE_KEYS.contains(&k.as_str()) && old.get(*k) != new.get(*k))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const BASE: &str = r#"
sip_listen = "127.0.0.1:5060"
transfer_allowlist = ["+4511111111"]

[registrar]
networks = ["127.0.0.0/8"]

[[queue]]
name = "sygedagpenge"

[[agent]]
login = "anna"
name = "Anna"
password = "secret-pass-1"
skills = { sygedagpenge = 1 }
"#;

    fn flags(file: &std::path::Path) -> Flags {
        Flags {
            config: Some(file.to_owned()),
            ..Flags::default()
        }
    }

    #[test]
    fn live_changes_load_and_others_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kald.toml");
        std::fs::write(&file, BASE).unwrap();
        let config = Config::load(&flags(&file)).unwrap();
        let mut watch = ConfigWatch::new(&config);
        assert!(watch.changed().is_none(), "unchanged");

        // A new agent and a changed allow-list apply, once the file stayed the same for one
        // more look; nothing waits for a restart.
        let more = format!(
            "{BASE}\n[[agent]]\nlogin = \"dora\"\nname = \"Dora\"\npassword = \"secret-pass-2\"\n"
        )
        .replace("+4511111111", "+4522222222");
        std::fs::write(&file, &more).unwrap();
        assert!(watch.changed().is_none(), "settling");
        let (config, later) = watch.changed().unwrap();
        assert_eq!(
            config
                .centre
                .agents
                .iter()
                .map(|a| a.login.as_str())
                .collect::<Vec<_>>(),
            ["anna", "dora"]
        );
        assert_eq!(config.transfer_allowlist, ["+4522222222"]);
        assert_eq!(later, Vec::<String>::new());
        assert!(watch.changed().is_none(), "seen");

        // A broken file is refused (and reported once); the next good one is compared with
        // what is in use, so the SIP address and the registrar wait for a restart.
        std::fs::write(&file, format!("{more}\n[[agent]\n")).unwrap();
        for _ in 0..3 {
            assert!(watch.changed().is_none());
        }
        let moved = more
            .replace("127.0.0.1:5060", "127.0.0.1:5070")
            .replace("127.0.0.0/8", "10.0.0.0/8");
        std::fs::write(&file, &moved).unwrap();
        assert!(watch.changed().is_none(), "settling");
        let (_, later) = watch.changed().unwrap();
        assert_eq!(later, ["registrar", "sip_listen"]);

        // A file that parses but fails a check is refused too.
        std::fs::write(&file, format!("{moved}\n[[agent]]\nlogin = \"anna\"\nname = \"Anna 2\"\npassword = \"secret-pass-3\"\n")).unwrap();
        for _ in 0..3 {
            assert!(watch.changed().is_none());
        }

        // An editor truncates the file and writes it again: the empty file in between is seen
        // once and never applied; an empty or missing file that stays is refused too.
        std::fs::write(&file, "").unwrap();
        assert!(watch.changed().is_none());
        std::fs::write(&file, &moved).unwrap();
        assert!(watch.changed().is_none());
        assert!(
            watch.changed().is_none(),
            "back to the file in use: nothing to do"
        );
        for gone in [Some(""), Some("  \n"), None] {
            match gone {
                Some(text) => std::fs::write(&file, text).unwrap(),
                None => std::fs::remove_file(&file).unwrap(),
            }
            for _ in 0..3 {
                assert!(watch.changed().is_none());
            }
        }
        std::fs::write(&file, &moved).unwrap();
        assert!(watch.changed().is_none());
        assert!(watch.changed().is_none(), "the file in use again");
    }

    #[test]
    fn a_refused_file_names_its_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kald.toml");
        std::fs::write(&file, BASE).unwrap();
        std::fs::write(&file, format!("{BASE}\n[[agent]\n")).unwrap();
        let err = Config::load(&flags(&file)).unwrap_err();
        let text = format!("{err:#}");
        let at = format!("{}:", file.display());
        assert!(text.starts_with(&at), "{text}");
        let line = BASE.lines().count() + 2;
        assert!(text.contains(&format!(":{line}:")), "{text}");
    }
}
