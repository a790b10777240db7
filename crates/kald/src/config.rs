//! `kald serve` configuration: a TOML file (`--config`, default `kald.toml` if present) whose
//! every key can be overridden by a command-line flag.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipnet::IpNet;
use serde::Deserialize;

use kald_sip::endpoint::{NumberRoute, Trunk};

use crate::calls::OverloadAction;

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
    pub(crate) grace: std::time::Duration,
    pub(crate) capacity: usize,
    pub(crate) overload: OverloadAction,
    pub(crate) ring: std::time::Duration,
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
    #[serde(default, rename = "trunk")]
    pub(crate) trunks: Vec<FileTrunk>,
}

/// One `[[trunk]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileTrunk {
    pub(crate) name: String,
    pub(crate) networks: Vec<IpNet>,
    #[serde(default)]
    pub(crate) numbers: Vec<FileNumber>,
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
    /// Read the file (if any) and apply the flags.
    pub(crate) fn load(flags: &Flags) -> anyhow::Result<Self> {
        let (file, explicit) = match &flags.config {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from("kald.toml"), false),
        };
        let fc = if file.exists() || explicit {
            read_file(&file)?
        } else {
            FileConfig::default()
        };
        let media = flags
            .media_ports
            .clone()
            .or(fc.media_ports)
            .unwrap_or_else(|| "20000-29999".into());
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
            grace: std::time::Duration::from_secs(
                flags.grace_seconds.or(fc.grace_seconds).unwrap_or(30),
            ),
            capacity: flags.capacity.or(fc.capacity).unwrap_or(2000),
            overload: flags
                .overload
                .or(fc.overload)
                .unwrap_or(OverloadAction::Prompt),
            ring: std::time::Duration::from_millis(flags.ring_ms.or(fc.ring_ms).unwrap_or(0)),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|e| {
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
