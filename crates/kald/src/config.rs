//! `kald serve` configuration: a TOML file (`--config`, default `kald.toml` if present) whose
//! every key can be overridden by a command-line flag.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipnet::IpNet;
use serde::Deserialize;

use kald_sip::endpoint::{NumberRoute, Trunk};

use crate::calls::OverloadAction;
pub(crate) use crate::journal::JournalConfig;

/// The whole configuration after file and flags are merged.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) sip_listen: SocketAddr,
    pub(crate) http_listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) flows: PathBuf,
    pub(crate) media_ports: (u16, u16),
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) trunks: Vec<Trunk>,
    /// Where kald sends calls out (transfers to numbers): the first trunk's `outbound`.
    pub(crate) outbound: Option<SocketAddr>,
    /// Numbers (or SIP URIs) agents may transfer citizens to, besides colleagues and queues.
    pub(crate) transfer_allowlist: Vec<String>,
    pub(crate) grace: std::time::Duration,
    pub(crate) capacity: usize,
    pub(crate) overload: OverloadAction,
    pub(crate) ring: std::time::Duration,
    /// The database: `sqlite://…` or `postgres://…`; default SQLite under the data dir.
    pub(crate) database: Option<String>,
    /// Where kald keeps its keys (CPR protection); outside the data dir and the database.
    pub(crate) keys_dir: PathBuf,
    /// The contact centre: queues, agents and the registrar their phones use.
    pub(crate) centre: Centre,
    /// The recordings policy file (retention, roles, keys).
    pub(crate) policy: PathBuf,
    /// Whether consented calls are recorded at all.
    pub(crate) record: bool,
    /// Journal links and journalising: the case-number pattern, the drop folder, the webhook.
    pub(crate) journal: JournalConfig,
    /// The command-line values it was loaded with, to load it again ([`crate::reload`]).
    pub(crate) flags: Flags,
    /// The configuration file: the one given, or `kald.toml` (which may not exist).
    pub(crate) file: PathBuf,
}

/// Queues, agents and the registrar, from the `[[queue]]`, `[[agent]]` and `[registrar]`
/// tables.
#[derive(Debug, Clone, Default)]
pub(crate) struct Centre {
    pub(crate) queues: Vec<FileQueue>,
    pub(crate) agents: Vec<FileAgent>,
    pub(crate) registrar: FileRegistrar,
    /// People who use the web pages and API but take no calls (supervisors, records
    /// officers, administrators).
    pub(crate) users: Vec<FileUser>,
}

/// One `[[user]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileUser {
    pub(crate) login: String,
    pub(crate) name: String,
    /// The web password (8+ characters).
    pub(crate) password: String,
    /// supervisor, records-officer, administrator (or team-leader / coach without a phone).
    pub(crate) role: String,
}

/// One `[[queue]]` table: a team / skill.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileQueue {
    /// The skill id the flow's `queue` nodes name, e.g. `sygedagpenge`.
    pub(crate) name: String,
    /// What agents' phones and the wallboard show, e.g. `Sygedagpenge`.
    pub(crate) display: Option<String>,
    /// After-call work of calls from this queue [default: 120].
    pub(crate) wrap_up_seconds: Option<u64>,
    /// How long one agent rings before the next is tried [default: 15].
    pub(crate) ring_seconds: Option<u64>,
    /// How long a call waits before agents with this skill as secondary are offered it
    /// [default: 30].
    pub(crate) secondary_after_seconds: Option<u64>,
}

/// What a person may do besides taking calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    /// Takes calls.
    #[default]
    Agent,
    /// Leads a team: may listen in.
    TeamLeader,
    /// Coaches agents: may listen in.
    Coach,
}

/// One `[[agent]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileAgent {
    /// Login, also the SIP user name the softphone registers with.
    pub(crate) login: String,
    /// Display name.
    pub(crate) name: String,
    /// The SIP password (digest). Prefer a file readable only by kald's user.
    pub(crate) password: String,
    /// A short number colleagues dial (transfers, listening in) [default: none].
    pub(crate) extension: Option<String>,
    /// Queue name → level (1 = primary, 2.. = secondary).
    #[serde(default)]
    pub(crate) skills: std::collections::BTreeMap<String, u8>,
    /// agent, team-leader or coach [default: agent].
    #[serde(default)]
    pub(crate) role: Role,
}

/// The `[registrar]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileRegistrar {
    /// Networks agents' phones may register from [default: loopback].
    #[serde(default = "loopback_nets")]
    pub(crate) networks: Vec<IpNet>,
    /// The digest realm [default: kald].
    #[serde(default = "default_realm")]
    pub(crate) realm: String,
}

impl Default for FileRegistrar {
    fn default() -> Self {
        Self {
            networks: loopback_nets(),
            realm: default_realm(),
        }
    }
}

fn loopback_nets() -> Vec<IpNet> {
    ["127.0.0.0/8", "::1/128"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

fn default_realm() -> String {
    "kald".into()
}

/// The file's shape. Unknown keys are errors, so a typo does not silently do nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) sip_listen: Option<SocketAddr>,
    pub(crate) http_listen: Option<SocketAddr>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) flows: Option<PathBuf>,
    pub(crate) media_ports: Option<String>,
    pub(crate) public_ip: Option<IpAddr>,
    pub(crate) grace_seconds: Option<u64>,
    pub(crate) capacity: Option<usize>,
    pub(crate) overload: Option<OverloadAction>,
    pub(crate) ring_ms: Option<u64>,
    pub(crate) database: Option<String>,
    pub(crate) keys_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) transfer_allowlist: Vec<String>,
    pub(crate) policy: Option<PathBuf>,
    pub(crate) record: Option<bool>,
    #[serde(default, rename = "trunk")]
    pub(crate) trunks: Vec<FileTrunk>,
    #[serde(default, rename = "queue")]
    pub(crate) queues: Vec<FileQueue>,
    #[serde(default, rename = "agent")]
    pub(crate) agents: Vec<FileAgent>,
    #[serde(default, rename = "user")]
    pub(crate) users: Vec<FileUser>,
    #[serde(default)]
    pub(crate) registrar: Option<FileRegistrar>,
    #[serde(default)]
    pub(crate) journal: Option<crate::journal::FileJournal>,
}

/// One `[[trunk]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTrunk {
    pub(crate) name: String,
    pub(crate) networks: Vec<IpNet>,
    #[serde(default)]
    pub(crate) numbers: Vec<FileNumber>,
    /// The carrier's address for calls kald places (transfers out), e.g. its SBC.
    pub(crate) outbound: Option<SocketAddr>,
}

/// A dialled-number pattern and its entry point.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileNumber {
    pub(crate) pattern: String,
    pub(crate) entry_point: String,
}

/// Values given on the command line (each overrides the file).
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct Flags {
    /// Configuration file (TOML). Default: `kald.toml` if it exists.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// SIP address, UDP and TCP [default: 0.0.0.0:5060].
    #[arg(long)]
    pub(crate) sip_listen: Option<SocketAddr>,
    /// HTTP address for the API and pages [default: 127.0.0.1:8080].
    #[arg(long)]
    pub(crate) http_listen: Option<SocketAddr>,
    /// Where kald keeps its database and recordings [default: ./data].
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
    /// The IVR flow directory [default: ./ivr-flows].
    #[arg(long)]
    pub(crate) flows: Option<PathBuf>,
    /// RTP port range LOW-HIGH [default: 20000-29999].
    #[arg(long)]
    pub(crate) media_ports: Option<String>,
    /// Address to put in SDP and Contact [default: the address a request arrived on].
    #[arg(long)]
    pub(crate) public_ip: Option<IpAddr>,
    /// On SIGTERM, how long calls in progress may go on before kald ends them [default: 30].
    #[arg(long)]
    pub(crate) grace_seconds: Option<u64>,
    /// Calls kald takes at once; more get the overload treatment [default: 2000].
    #[arg(long)]
    pub(crate) capacity: Option<usize>,
    /// What callers above capacity get: prompt, busy (486) or unavailable (480) [default: prompt].
    #[arg(long, value_parser = parse_overload)]
    pub(crate) overload: Option<OverloadAction>,
    /// Let a call ring this long (180 Ringing) before answering [default: 0].
    #[arg(long)]
    pub(crate) ring_ms: Option<u64>,
    /// Pin the wall clock (opening hours) to this time, from which it runs on; for tests and
    /// demos, e.g. `2026-11-23T09:15` (Copenhagen time).
    #[arg(long)]
    pub(crate) now: Option<String>,
    /// Database URL: `sqlite://path` or `postgres://user@host/db` [default: SQLite in the data dir].
    #[arg(long)]
    pub(crate) database: Option<String>,
    /// Directory of kald's keys, outside the data dir [default: ./keys].
    #[arg(long)]
    pub(crate) keys_dir: Option<PathBuf>,
    /// The recordings policy [default: recordings-policy/policy.toml].
    #[arg(long)]
    pub(crate) policy: Option<PathBuf>,
    /// Record consented calls: true or false [default: true].
    #[arg(long)]
    pub(crate) record: Option<bool>,
}

fn parse_overload(s: &str) -> Result<OverloadAction, String> {
    match s {
        "prompt" => Ok(OverloadAction::Prompt),
        "busy" => Ok(OverloadAction::Busy),
        "unavailable" => Ok(OverloadAction::Unavailable),
        _ => Err("expected prompt, busy or unavailable".into()),
    }
}

impl Config {
    /// The configuration file the flags name: `--config`, else `kald.toml` (which may not
    /// exist); and whether it was named explicitly.
    pub(crate) fn file_of(flags: &Flags) -> (PathBuf, bool) {
        match &flags.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("kald.toml"), false),
        }
    }

    /// Read the file (if any) and apply the flags.
    pub(crate) fn load(flags: &Flags) -> anyhow::Result<Self> {
        let (file, explicit) = Self::file_of(flags);
        let fc = if file.exists() || explicit {
            read_file(&file)?
        } else {
            FileConfig::default()
        };
        Self::build(flags, file, fc)
    }

    /// The configuration from `text`, the file's contents as already read (a reload compares
    /// the text it loads), with the flags applied.
    pub(crate) fn from_text(flags: &Flags, text: &str) -> anyhow::Result<Self> {
        let (file, _) = Self::file_of(flags);
        let fc = parse_file(&file, text)?;
        Self::build(flags, file, fc)
    }

    /// Applies the flags over the file's values and checks the result.
    fn build(flags: &Flags, file: PathBuf, fc: FileConfig) -> anyhow::Result<Self> {
        let media = flags
            .media_ports
            .clone()
            .or(fc.media_ports)
            .unwrap_or_else(|| "20000-29999".into());
        let outbound = fc.trunks.iter().find_map(|t| t.outbound);
        let trunks = if fc.trunks.is_empty() {
            vec![Trunk::loopback("hovednummer")]
        } else {
            fc.trunks
                .into_iter()
                .map(|t| Trunk {
                    name: t.name,
                    networks: t.networks,
                    numbers: t
                        .numbers
                        .into_iter()
                        .map(|n| NumberRoute::new(n.pattern, n.entry_point))
                        .collect(),
                })
                .collect()
        };
        Ok(Self {
            sip_listen: flags
                .sip_listen
                .or(fc.sip_listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060))),
            http_listen: flags
                .http_listen
                .or(fc.http_listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            data_dir: flags
                .data_dir
                .clone()
                .or(fc.data_dir)
                .unwrap_or_else(|| PathBuf::from("data")),
            flows: flags
                .flows
                .clone()
                .or(fc.flows)
                .unwrap_or_else(|| PathBuf::from("ivr-flows")),
            media_ports: parse_range(&media)?,
            public_ip: flags.public_ip.or(fc.public_ip),
            trunks,
            outbound,
            transfer_allowlist: fc.transfer_allowlist,
            grace: std::time::Duration::from_secs(
                flags.grace_seconds.or(fc.grace_seconds).unwrap_or(30),
            ),
            capacity: flags.capacity.or(fc.capacity).unwrap_or(2000),
            overload: flags
                .overload
                .or(fc.overload)
                .unwrap_or(OverloadAction::Prompt),
            ring: std::time::Duration::from_millis(flags.ring_ms.or(fc.ring_ms).unwrap_or(0)),
            database: flags.database.clone().or(fc.database),
            keys_dir: flags
                .keys_dir
                .clone()
                .or(fc.keys_dir)
                .unwrap_or_else(|| PathBuf::from("keys")),
            policy: flags
                .policy
                .clone()
                .or(fc.policy)
                .unwrap_or_else(|| PathBuf::from("recordings-policy/policy.toml")),
            record: flags.record.or(fc.record).unwrap_or(true),
            journal: JournalConfig::from_file(fc.journal.unwrap_or_default())?,
            centre: check_centre(Centre {
                queues: fc.queues,
                agents: fc.agents,
                registrar: fc.registrar.unwrap_or_default(),
                users: fc.users,
            })
            .map_err(|e| anyhow::anyhow!("{}: {e:#}", file.display()))?,
            flags: flags.clone(),
            file,
        })
    }
}

/// Refuse what cannot work: duplicate logins or extensions, empty passwords, skill levels 0.
fn check_centre(c: Centre) -> anyhow::Result<Centre> {
    let mut logins = std::collections::HashSet::new();
    let mut extensions = std::collections::HashSet::new();
    for a in &c.agents {
        if a.login.is_empty()
            || !a
                .login
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        {
            bail!(
                "agent login {:?}: use letters, digits, '.', '_' or '-'",
                a.login
            );
        }
        if !logins.insert(a.login.as_str()) {
            bail!("agent login {:?} is given twice", a.login);
        }
        if a.password.len() < 8 {
            bail!(
                "agent {}: the SIP password must have at least 8 characters",
                a.login
            );
        }
        if let Some(ext) = &a.extension {
            if !extensions.insert(ext.as_str()) {
                bail!("extension {ext} is given to two agents");
            }
        }
        if let Some((q, _)) = a.skills.iter().find(|(_, l)| **l == 0) {
            bail!("agent {}: skill {q}: levels start at 1 (primary)", a.login);
        }
    }
    for u in &c.users {
        if !logins.insert(u.login.as_str()) {
            bail!(
                "login {:?} is given twice (agents and users share logins)",
                u.login
            );
        }
        if u.password.len() < 8 {
            bail!(
                "user {}: the password must have at least 8 characters",
                u.login
            );
        }
        if !matches!(
            u.role.as_str(),
            "supervisor" | "records-officer" | "administrator" | "team-leader" | "coach"
        ) {
            bail!(
                "user {}: role {:?}: use supervisor, records-officer, administrator, team-leader or coach",
                u.login,
                u.role
            );
        }
    }
    let mut queues = std::collections::HashSet::new();
    for q in &c.queues {
        if !queues.insert(q.name.as_str()) {
            bail!("queue {:?} is given twice", q.name);
        }
    }
    Ok(c)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(path, &text)
}

/// Parses the configuration file's text; errors name `path:line:col`.
fn parse_file(path: &Path, text: &str) -> anyhow::Result<FileConfig> {
    toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        anyhow::anyhow!("{}{at}: {}", path.display(), e.message())
    })
}

fn parse_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let Some((lo, hi)) = s.split_once('-') else {
        bail!("media ports must be LOW-HIGH, e.g. 20000-29999")
    };
    let lo: u16 = lo
        .trim()
        .parse()
        .context("media ports: LOW is not a port number")?;
    let hi: u16 = hi
        .trim()
        .parse()
        .context("media ports: HIGH is not a port number")?;
    if lo >= hi || lo % 2 == 1 {
        bail!("media ports: LOW must be even and below HIGH");
    }
    Ok((lo, hi))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_allow_loopback() {
        let c = Config::load(&Flags {
            config: None,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.sip_listen.port(), 5060);
        assert_eq!(c.media_ports, (20000, 29999));
        assert!(c.trunks[0].allows("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn file_errors_name_file_line_and_column() {
        let dir = std::env::temp_dir().join(format!("kald-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("bad.toml");
        std::fs::write(&f, "sip_listen = \"0.0.0.0:5060\"\nsip_lisen = 1\n").unwrap();
        let err = Config::load(&Flags {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("bad.toml:2:1"), "{err}");
        std::fs::write(&f, "[[trunk]]\nname = \"carrier\"\nnetworks = [\"192.0.2.0/24\"]\nnumbers = [{ pattern = \"+4570101010\", entry_point = \"hovednummer\" }]\n").unwrap();
        let c = Config::load(&Flags {
            config: Some(f),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.trunks[0].route("+4570101010"), Some("hovednummer"));
        assert!(!c.trunks[0].allows("127.0.0.1".parse().unwrap()));
    }
}
