//! `kald`: the SIP/IVR server behind a Danish municipality's main number.
#![forbid(unsafe_code)]

mod calls;
mod centre;
mod clock;
mod config;
mod flow_cli;
mod flows;
mod journal;
mod live;
mod media;
mod recorder;
mod recording;
mod records;
mod reload;
mod sip;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// kald — answers the citizens' calls to the main number.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Log level or filter (also RUST_LOG), e.g. `info`, `kald=debug`.
    #[arg(long, global = true, default_value = "info")]
    log: String,
    /// Log format: `text` for people, `json` (one object per line) for machines and tests.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start; boxing the flags would only add noise.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the server: SIP on UDP and TCP, the IVR flows, the queues.
    Serve(config::Flags),
    /// Check, simulate or draw IVR flow files.
    #[command(subcommand)]
    Flow(flow_cli::FlowCommand),
    /// Check the configuration file (kald.toml) before saving it over the one kald runs with.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Check the recordings policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Work with recording files.
    #[command(subcommand)]
    Recording(RecordingCommand),
    /// Check the audit log's hash chain (exit 1 if a row was altered or removed).
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load the configuration as `kald serve` would (same flags) and say what it holds, or
    /// the first problem as file:line:col: message (exit 1). A running kald reloads the
    /// queues, agents and users of a changed file by itself.
    Check(config::Flags),
}

/// `kald config check`.
fn config_check(flags: &config::Flags) -> bool {
    match config::Config::load(flags) {
        Ok(c) => {
            let exists = c.file.exists();
            println!(
                "{}: ok{}: {} queues, {} agents, {} other users, {} trunks; SIP {}, web {}",
                c.file.display(),
                if exists {
                    ""
                } else {
                    " (no such file: defaults)"
                },
                c.centre.queues.len(),
                c.centre.agents.len(),
                c.centre.users.len(),
                c.trunks.len(),
                c.sip_listen,
                c.http_listen,
            );
            true
        }
        Err(e) => {
            println!("{e:#}");
            false
        }
    }
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the whole chain and report the first broken link (the database and keys as
    /// `kald serve` finds them: same flags and config file).
    Verify(config::Flags),
}

/// `kald audit verify`: open the configured database and check every link.
fn audit_verify(flags: &config::Flags) -> anyhow::Result<bool> {
    let config = config::Config::load(flags)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let (store, _) = records::open_store(&config).await?;
        let result = store.verify_audit().await.context("cannot read the audit log")?;
        store.close().await;
        Ok(match result {
            kald_store::AuditVerification::Intact {
                entries, head, ..
            } => {
                let head: String = head.iter().map(|b| format!("{b:02x}")).collect();
                println!("audit log intact: {entries} entries, head {head}");
                true
            }
            kald_store::AuditVerification::Broken {
                id, problem, intact, ..
            } => {
                println!("audit log BROKEN at entry {id}: {problem:?} ({intact} entries before it are intact)");
                false
            }
        })
    })
}

#[derive(Subcommand)]
enum RecordingCommand {
    /// Decrypt a recording file into a standard stereo WAV (citizen left, agent right).
    Export {
        /// The recording file (`<data dir>/recordings/YYYY/MM/<id>.kald`).
        file: std::path::PathBuf,
        /// Where to write the WAV.
        #[arg(long)]
        out: std::path::PathBuf,
        /// The recordings key file [default: keys/recordings.key].
        #[arg(long)]
        keys: Option<std::path::PathBuf>,
    },
}

/// `kald recording export`.
fn recording_export(
    file: &std::path::Path,
    out: &std::path::Path,
    keys: Option<std::path::PathBuf>,
) -> anyhow::Result<bool> {
    let keys_path = keys.unwrap_or_else(|| std::path::PathBuf::from("keys/recordings.key"));
    let keys = kald_recordings::RecordingKeys::load(&keys_path).with_context(|| {
        format!(
            "cannot load the recordings key file {}",
            keys_path.display()
        )
    })?;
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let reader = kald_recordings::ChunkReader::open(std::io::BufReader::new(input), &keys)
        .with_context(|| format!("{} is not a recording this key opens", file.display()))?;
    let output =
        std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let info = kald_recordings::export_wav(reader, std::io::BufWriter::new(output))
        .with_context(|| format!("cannot export {}", file.display()))?;
    println!(
        "{}: {:.2} s, {}",
        out.display(),
        info.ending.duration().as_secs_f64(),
        if info.ending.is_complete() {
            "complete"
        } else {
            "cut short (kald stopped while recording)"
        }
    );
    Ok(true)
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Check a policy file: every problem as file:line:col: message (exit 1 on errors).
    Check {
        /// The policy file [default: recordings-policy/policy.toml].
        file: Option<std::path::PathBuf>,
    },
}

/// `kald policy check`.
fn policy_check(file: Option<std::path::PathBuf>) -> bool {
    let file = file.unwrap_or_else(|| std::path::PathBuf::from("recordings-policy/policy.toml"));
    match kald_recordings::Policy::load(&file) {
        Ok(p) => {
            for w in &p.warnings {
                println!("{w}");
            }
            println!("{}: ok", file.display());
            true
        }
        Err(diagnostics) => {
            for d in &diagnostics {
                println!("{d}");
            }
            false
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&cli.log));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if cli.log_format == "json" {
        // One object per line; the event's fields (`message`, `call`, …) at the top level,
        // the fields of the span it happened in under `span`.
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        fmt.init();
    }
    let result = match cli.command {
        Command::Serve(flags) => serve(&flags).map(|()| true),
        Command::Flow(cmd) => flow_cli::run(cmd),
        Command::Config(ConfigCommand::Check(flags)) => Ok(config_check(&flags)),
        Command::Policy(PolicyCommand::Check { file }) => Ok(policy_check(file)),
        Command::Recording(RecordingCommand::Export { file, out, keys }) => {
            recording_export(&file, &out, keys)
        }
        Command::Audit(AuditCommand::Verify(flags)) => audit_verify(&flags),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("kald: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn serve(flags: &config::Flags) -> anyhow::Result<()> {
    let config = config::Config::load(flags)?;
    let clock = clock::Clock::new(flags.now.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sockets = sip::Sockets::bind(config.sip_listen).await?;
        let bound = sockets.local_addr()?;
        tracing::info!(sip = %bound, transports = "udp+tcp", trunks = config.trunks.len(), "kald listening");
        tracing::info!(
            http = %config.http_listen,
            data_dir = %config.data_dir.display(),
            flows = %config.flows.display(),
            media_ports = %format_args!("{}-{}", config.media_ports.0, config.media_ports.1),
            "configured"
        );
        for t in &config.trunks {
            tracing::info!(trunk = %t.name, networks = t.networks.len(), numbers = t.numbers.len(), "trunk loaded");
        }
        tracing::info!(now = %clock.now(), pinned = clock.is_pinned(), "wall clock");
        let flows = flows::Flows::load(&config.flows)?;
        let (store, restored) = records::open_store(&config).await?;
        let http = tokio::net::TcpListener::bind(config.http_listen)
            .await
            .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
        let (records_tx, records_rx) = tokio::sync::mpsc::unbounded_channel();
        let rec_dir = config.data_dir.join("recordings");
        let writer = tokio::spawn(records::write(store.clone(), records_rx, rec_dir.clone()));
        let (reports_tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let bind_ip = config.sip_listen.ip();
        let policy = recording::load_policy(&config.policy)?;
        let rec_keys = recording::load_keys(&config.keys_dir)?;
        recording::reconcile(&store, &rec_dir, &rec_keys, &policy, &clock).await?;
        let (rec_tx, rec_reports) = tokio::sync::mpsc::unbounded_channel();
        let recorder = if config.record {
            Some(recorder::Recorder::start(rec_keys.clone(), rec_tx).context("cannot start the recording writer")?)
        } else {
            tracing::warn!("recording is switched off (record = false): no call is recorded");
            None
        };
        let media = media::Media::start(config.media_ports, bind_ip, reports_tx, recorder).context("cannot start the media thread")?;
        let settings = calls::CallSettings {
            public_ip: config.public_ip,
            capacity: config.capacity,
            overload: config.overload,
            ring: config.ring,
            centre: config.centre.clone(),
            outbound: config.outbound,
            transfer_allowlist: config.transfer_allowlist.clone(),
            recordings: recording::Recordings::new(
                policy.clone(),
                rec_dir.clone(),
                config.record,
                rec_keys.current_key_id(),
            ),
        };
        let published_policy = settings.recordings.published();
        let mut calls = calls::Calls::new(media, flows, clock.clone(), settings, records::Records::new(records_tx));
        calls.restore_agents(std::time::Instant::now(), &restored);
        let shutdown = CancellationToken::new();
        // Journalising (issue 9): the API nudges the journaliser through `journal_handle`.
        let journal_handle = journal::JournalHandle::new();
        tokio::spawn(journal::run(
            journal::Journaliser::new(store.clone(), config.journal.clone(), rec_keys.clone(), rec_dir.clone())?,
            journal_handle.clone(),
            clock.clone(),
            shutdown.clone(),
        ));
        let (snapshot_tx, snapshot_rx) =
            tokio::sync::watch::channel(std::sync::Arc::new(kald_api::Snapshot::default()));
        let (command_tx, command_rx) = tokio::sync::mpsc::channel(64);
        // The web users; the SIP loop sends a new list when kald.toml is reloaded.
        let (users_tx, users_rx) =
            tokio::sync::watch::channel(std::sync::Arc::new(live::users(&config.centre)));
        let metrics_text = std::sync::Arc::new(std::sync::RwLock::new(String::new()));
        let metrics_read = std::sync::Arc::clone(&metrics_text);
        let backend = kald_api::Backend {
            snapshot: snapshot_rx,
            commands: command_tx,
            users: users_rx,
            stats: Some(kald_api::StatsSource {
                store: store.clone(),
                params: kald_acd::stats::StatsParams::default(),
            }),
            metrics: std::sync::Arc::new(move || {
                metrics_read.read().map(|m| m.clone()).unwrap_or_default()
            }),
            records: Some(records_source(
                &store,
                &rec_dir,
                &rec_keys,
                published_policy,
                &config.journal,
                &journal_handle,
                &clock,
            )),
        };
        tracing::info!(http = %http.local_addr()?, "web pages and API listening");
        let api = tokio::spawn(kald_api::serve(http, backend, shutdown.clone()));
        let link = sip::ApiLink {
            users: users_tx,
            snapshot: snapshot_tx,
            commands: command_rx,
            metrics: metrics_text,
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        });
        let sweeper = tokio::spawn(recording::sweeper(
            store.clone(),
            config.policy.clone(),
            policy,
            rec_dir,
            clock.clone(),
            shutdown.clone(),
        ));
        // A cache: when it cannot be read, phones register again by themselves.
        let saved_bindings = store
            .sip_bindings(&config.sip_listen.to_string(), clock.now().timestamp())
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "cannot read the saved SIP registrations; phones register again by themselves");
                Vec::new()
            });
        let result = sip::run(config, sockets, calls, reports, rec_reports, link, saved_bindings, shutdown.clone()).await;
        let _ = sweeper.await;
        shutdown.cancel();
        match api.await {
            Ok(Err(e)) => tracing::error!(error = %e, "the HTTP server failed"),
            Err(e) => tracing::error!(error = %e, "the HTTP server stopped abnormally"),
            Ok(Ok(())) => {}
        }
        // The call handling is gone, so the channel closes and the writer finishes its queue.
        if let Err(e) = writer.await {
            tracing::error!(error = %e, "the store writer stopped abnormally");
        }
        result
    })
}

/// What the records routes of the API need: the store, the recordings and their keys, the
/// live policy, the case-number pattern and journal targets, the clock.
fn records_source(
    store: &kald_store::Store,
    rec_dir: &std::path::Path,
    rec_keys: &kald_recordings::RecordingKeys,
    policy: recording::PublishedPolicy,
    journal: &config::JournalConfig,
    journal_handle: &journal::JournalHandle,
    clock: &clock::Clock,
) -> kald_api::RecordsSource {
    let clock = clock.clone();
    kald_api::RecordsSource {
        store: store.clone(),
        recordings_dir: rec_dir.to_path_buf(),
        keys: std::sync::Arc::new(rec_keys.clone()),
        policy: std::sync::Arc::new(move || match policy.read() {
            Ok(p) => std::sync::Arc::clone(&p),
            // A writer panicked mid-replace: the value is still a whole policy.
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }),
        case_number: Some(journal.case_number_pattern.clone()),
        journal_targets: journal.targets(),
        journal_nudge: Some(journal_handle.notify()),
        clock: std::sync::Arc::new(move || clock.now()),
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = ctrl_c.await;
            return;
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
