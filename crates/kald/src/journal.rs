//! The journaliser (issue 9): delivers linked recordings to the case system as documents.
//!
//! An authorised user journalises a recording under one of its call's case links (the API
//! queues one `journal_exports` row per configured target and nudges this task). Every few
//! seconds, and at once when nudged, the journaliser claims the rows due (a few at a time,
//! each claim a lease, so several kald instances on one PostgreSQL database never deliver the
//! same document at once and a crashed instance's documents fall due again), decrypts each
//! recording to a standard WAV, builds its JSON manifest (`kald_recordings::journal`) and
//! delivers. The WAV is streamed from the encrypted recording a second at a time (into the
//! folder's file, or base64-encoded into the webhook's body, whose length is announced up
//! front), never held whole in memory:
//!
//! - **drop folder** (`[journal] drop_folder`): `<name>.wav`, then `<name>.json`, each written
//!   owner-only (0600) to a hidden temporary file (`.<name>.wav.<pid>-<random>.tmp`), flushed to disk and
//!   renamed into place, the folder itself synced after; the manifest comes last, so its
//!   presence means the document is complete. Written is acknowledged.
//! - **webhook** (`[journal] webhook`): one HTTP `POST` with a JSON body
//!   `{"manifest": {…}, "wav_base64": "…"}` (the WAV in standard base64), `Content-Type:
//!   application/json`, `Idempotency-Key: <name>` (the same on every retry, so the case system
//!   can drop a duplicate after a lost answer) and, when `webhook_token` is set,
//!   `Authorization: Bearer <token>`. Any 2xx is an acknowledgement; a `document_id`,
//!   `receipt` or `id` in a JSON answer is kept as the receipt. Anything else, or no answer
//!   within `webhook_timeout_seconds`, is a failure.
//!
//! A failure is recorded with the next attempt from the retry schedule (10 s, 30 s, 1 min,
//! 5 min, 15 min, then hourly) and tried again until acknowledged; meanwhile the recording is
//! `linked` and the retention sweeper keeps it past its deadline, with an alert. An
//! acknowledgement is recorded (and, when every target of the link has it, the recording
//! becomes `exported`), appended to the audit log (actor `kald`, role `system`, action
//! `journalise`, the recording as target, the case number and target as reason, the citizen
//! by CPR look-up hash) and logged.
//!
//! The manifest is the one place a CPR number leaves kald in clear. Logs, errors stored in
//! the outbox and file names never hold it (nor the case number, in logs: the link id is
//! logged instead).
//!
//! Time is an input: [`Journaliser::step`] takes `now`, so tests drive the retries without
//! sleeping; [`run`] feeds it the server's clock.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use kald_recordings::journal::{document_name, receipt_from_response};
use kald_recordings::{DocumentFacts, Manifest, RecordingKeys, RetrySchedule};
use kald_store::{AuditEntry, JournalExport, JournalTarget, Recording, Store, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

/// How often the journaliser looks for due documents when not nudged.
const POLL_EVERY: Duration = Duration::from_secs(5);

/// Documents claimed at a time. Small, because each claim is a lease that must outlast the
/// deliveries of the whole batch.
const BATCH: u32 = 8;

/// Time allowed per document of a claimed batch beyond the webhook's own timeout (reading and
/// decrypting the recording, writing to the drop folder); see [`Journaliser::lease_until`].
const LEASE_MARGIN: Duration = Duration::from_secs(120);

/// The default case-number pattern: a KLE-based journal number as Danish case systems write
/// it, `<KLE emne nr. aa.bb.cc>-<handlingsfacet, a letter and two digits>-<serial>-<year, two
/// digits>`, e.g. `27.12.04-P20-1-26`.
pub(crate) const DEFAULT_CASE_NUMBER_PATTERN: &str =
    r"^\d{2}\.\d{2}\.\d{2}-[A-ZÆØÅ]\d{2}-\d+-\d{2}$";

/// The default time a webhook has to answer.
const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(60);

/// The `[journal]` table of `kald.toml`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileJournal {
    /// A regular expression a case/journal number must match (whole, so anchor it).
    pub(crate) case_number_pattern: Option<String>,
    /// The folder documents are written to.
    pub(crate) drop_folder: Option<PathBuf>,
    /// The URL documents are POSTed to (https, or http to loopback only).
    pub(crate) webhook: Option<String>,
    /// A bearer token for the webhook.
    pub(crate) webhook_token: Option<String>,
    /// How long the webhook has to answer [default: 60].
    pub(crate) webhook_timeout_seconds: Option<u64>,
}

/// Journalising as configured: the case-number check and where documents go.
#[derive(Clone)]
pub(crate) struct JournalConfig {
    /// What a case/journal number must look like (checked when a link is added).
    pub(crate) case_number_pattern: regex::Regex,
    /// The drop folder, if documents go to one.
    pub(crate) drop_folder: Option<PathBuf>,
    /// The webhook, if documents are POSTed.
    pub(crate) webhook: Option<reqwest::Url>,
    /// Its bearer token.
    pub(crate) webhook_token: Option<String>,
    /// How long the webhook has to answer.
    pub(crate) webhook_timeout: Duration,
    /// When failed deliveries are tried again.
    pub(crate) retry: RetrySchedule,
}

impl std::fmt::Debug for JournalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalConfig")
            .field("case_number_pattern", &self.case_number_pattern.as_str())
            .field("drop_folder", &self.drop_folder)
            .field("webhook", &self.webhook.as_ref().map(redacted_url))
            .field(
                "webhook_token",
                &self.webhook_token.as_ref().map(|_| "<redacted>"),
            )
            .field("webhook_timeout", &self.webhook_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for JournalConfig {
    /// The default pattern, no targets (journalising not configured).
    fn default() -> Self {
        Self {
            // The constant is a valid expression (tested in `default_pattern_*`).
            case_number_pattern: regex::Regex::new(DEFAULT_CASE_NUMBER_PATTERN)
                .expect("the default case-number pattern compiles"),
            drop_folder: None,
            webhook: None,
            webhook_token: None,
            webhook_timeout: DEFAULT_WEBHOOK_TIMEOUT,
            retry: RetrySchedule::default(),
        }
    }
}

impl JournalConfig {
    /// Checks and compiles the `[journal]` table: the pattern must be a valid regular
    /// expression, the webhook an `https` URL (or `http` to a loopback address), the token
    /// non-empty.
    pub(crate) fn from_file(file: FileJournal) -> anyhow::Result<Self> {
        let pattern = file
            .case_number_pattern
            .as_deref()
            .unwrap_or(DEFAULT_CASE_NUMBER_PATTERN);
        let case_number_pattern = regex::Regex::new(pattern).map_err(|e| {
            anyhow::anyhow!("[journal] case_number_pattern is not a valid regular expression: {e}")
        })?;
        let webhook = match file.webhook.as_deref() {
            None => None,
            Some(text) => {
                let url = reqwest::Url::parse(text)
                    .map_err(|e| anyhow::anyhow!("[journal] webhook is not a URL: {e}"))?;
                let host = url.host_str().unwrap_or("");
                let loopback = host == "localhost"
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                match url.scheme() {
                    "https" => {}
                    "http" if loopback => {}
                    "http" => bail!(
                        "[journal] webhook: use https (documents carry CPR numbers); plain http \
                         only to a loopback address"
                    ),
                    other => bail!("[journal] webhook: unsupported scheme {other}: use https"),
                }
                if !url.username().is_empty() || url.password().is_some() {
                    bail!("[journal] webhook: put credentials in webhook_token, not in the URL");
                }
                Some(url)
            }
        };
        if file.webhook_token.as_deref() == Some("") {
            bail!("[journal] webhook_token is empty");
        }
        if file.webhook_token.is_some() && webhook.is_none() {
            bail!("[journal] webhook_token is set but webhook is not");
        }
        let timeout = file
            .webhook_timeout_seconds
            .map_or(DEFAULT_WEBHOOK_TIMEOUT, Duration::from_secs);
        if timeout.is_zero() {
            bail!("[journal] webhook_timeout_seconds must be at least 1");
        }
        Ok(Self {
            case_number_pattern,
            drop_folder: file.drop_folder,
            webhook,
            webhook_token: file.webhook_token,
            webhook_timeout: timeout,
            retry: RetrySchedule::default(),
        })
    }

    /// Whether `case_number` is one the case system can have (matches the pattern).
    #[cfg_attr(not(test), allow(dead_code))] // for the API's wiring in `kald serve`
    pub(crate) fn valid_case_number(&self, case_number: &str) -> bool {
        self.case_number_pattern.is_match(case_number)
    }

    /// The configured targets (empty: journalising is not configured).
    pub(crate) fn targets(&self) -> Vec<JournalTarget> {
        let mut targets = Vec::new();
        if self.drop_folder.is_some() {
            targets.push(JournalTarget::Folder);
        }
        if self.webhook.is_some() {
            targets.push(JournalTarget::Webhook);
        }
        targets
    }
}

/// A URL without its path and query, for logs.
fn redacted_url(url: &reqwest::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""))
}

/// Wakes the journaliser (after the API queued a document); cheap to clone.
#[derive(Clone, Debug, Default)]
pub(crate) struct JournalHandle {
    notify: Arc<Notify>,
}

impl JournalHandle {
    /// A handle for a journaliser not yet started.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Asks the journaliser to look for due documents now.
    #[cfg_attr(not(test), allow(dead_code))] // for the API's wiring in `kald serve`
    pub(crate) fn nudge(&self) {
        self.notify.notify_one();
    }

    /// The underlying notification, for the API (`RecordsSource::journal_nudge`).
    #[cfg_attr(not(test), allow(dead_code))] // for the API's wiring in `kald serve`
    pub(crate) fn notify(&self) -> Arc<Notify> {
        Arc::clone(&self.notify)
    }
}

/// What one [`Journaliser::step`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StepReport {
    /// Documents acknowledged.
    pub(crate) acknowledged: usize,
    /// Deliveries that failed (to be tried again).
    pub(crate) failed: usize,
    /// Documents given up because their recording is gone.
    pub(crate) cancelled: usize,
}

/// A document ready to deliver.
struct Document {
    /// The base file name.
    name: String,
    /// The encrypted recording the WAV is streamed from, never held whole in memory (a 1-hour
    /// recording is a 115 MB WAV).
    recording: PathBuf,
    /// The WAV's size in bytes.
    wav_size: u64,
    /// The manifest.
    manifest: Manifest,
}

/// Why a delivery failed; stored in the outbox, so it holds no personal data.
#[derive(Debug, thiserror::Error)]
enum DeliveryError {
    /// The target is not configured (any more).
    #[error("no {0} is configured")]
    NotConfigured(&'static str),
    /// The recording file cannot be read or decrypted.
    #[error("cannot read the recording: {0}")]
    Recording(String),
    /// Writing to the drop folder failed.
    #[error("cannot write to the drop folder: {0}")]
    Folder(std::io::Error),
    /// The webhook did not answer, or not with 2xx.
    #[error("webhook: {0}")]
    Webhook(String),
}

/// Delivers journal documents; see the [module documentation](self).
pub(crate) struct Journaliser {
    store: Store,
    config: JournalConfig,
    keys: RecordingKeys,
    recordings_dir: PathBuf,
    tz: TimeZone,
    http: reqwest::Client,
}

impl Journaliser {
    /// A journaliser over `store`, reading recordings under `recordings_dir` with `keys`.
    pub(crate) fn new(
        store: Store,
        config: JournalConfig,
        keys: RecordingKeys,
        recordings_dir: PathBuf,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(config.webhook_timeout)
            .connect_timeout(config.webhook_timeout.min(Duration::from_secs(10)))
            // A case system's answer is final: never follow a redirect with the document.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot set up the webhook client")?;
        let tz = jiff::tz::db()
            .get("Europe/Copenhagen")
            .context("no Europe/Copenhagen time zone")?;
        Ok(Self {
            store,
            config,
            keys,
            recordings_dir,
            tz,
            http,
        })
    }

    /// Delivers every document due at `now` (each tried once), recording each outcome at
    /// `now`.
    #[cfg(test)] // kald runs `step_with` on its clock
    pub(crate) async fn step(&self, now: Timestamp) -> Result<StepReport, StoreError> {
        self.step_with(|| now).await
    }

    /// Like [`step`](Self::step), reading the clock again for every batch it claims, so each
    /// batch's lease runs from when it was claimed (a long backlog never claims with a lease
    /// already run out).
    pub(crate) async fn step_with(
        &self,
        clock: impl Fn() -> Timestamp,
    ) -> Result<StepReport, StoreError> {
        let mut report = StepReport::default();
        let mut seen = std::collections::HashSet::new();
        loop {
            let now = clock();
            let claim = claim_token();
            let due = self
                .store
                .claim_journal_exports(&claim, now, self.lease_until(now), BATCH)
                .await?;
            let fresh: Vec<JournalExport> = due.into_iter().filter(|e| seen.insert(e.id)).collect();
            if fresh.is_empty() {
                return Ok(report);
            }
            for export in fresh {
                self.deliver_one(&export, &claim, now, &mut report).await?;
            }
        }
    }

    /// Until when a batch claimed at `now` is this instance's: long enough to deliver every
    /// document of it even when each one takes the webhook's whole timeout. A claim that runs
    /// out (kald died mid-batch) makes the documents due again, for this or another instance;
    /// the webhook's Idempotency-Key and the folder's fixed file names make a repeat harmless.
    fn lease_until(&self, now: Timestamp) -> Timestamp {
        let per_document = self.config.webhook_timeout + LEASE_MARGIN;
        let lease = per_document.saturating_mul(BATCH);
        now.checked_add(lease).unwrap_or(Timestamp::MAX)
    }

    /// Delivers one document and records the outcome.
    async fn deliver_one(
        &self,
        export: &JournalExport,
        claim: &str,
        now: Timestamp,
        report: &mut StepReport,
    ) -> Result<(), StoreError> {
        let Some(recording) = self.store.recording(&export.recording_id).await? else {
            if self
                .store
                .cancel_journal_export(export.id, "the recording no longer exists")
                .await?
            {
                report.cancelled += 1;
                tracing::error!(export = export.id, recording = %export.recording_id, link = export.link_id, "ALERT: a recording queued for the case system is gone; its journal export is cancelled");
            }
            return Ok(());
        };
        let note = self
            .store
            .journal_link(export.link_id)
            .await?
            .and_then(|l| l.note);
        let outcome = match self.document(export, &recording, note.as_deref()).await {
            Ok(doc) => match export.target {
                JournalTarget::Folder => self.to_folder(&doc).await.map(|()| None),
                JournalTarget::Webhook => self.to_webhook(&doc).await,
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(receipt) => {
                self.store
                    .journal_export_acknowledged(export.id, receipt.as_deref(), now)
                    .await?;
                let mut entry = AuditEntry::new(
                    now,
                    "kald",
                    "system",
                    "journalise",
                    export.recording_id.as_str(),
                )
                .with_reason(format!(
                    "case {} via {}{}",
                    export.case_number,
                    export.target,
                    receipt
                        .as_deref()
                        .map(|r| format!(", receipt {r}"))
                        .unwrap_or_default()
                ));
                if let Some(cpr) = &recording.cpr {
                    entry = entry.with_cpr_hash(self.store.cpr_lookup_hash(cpr));
                }
                self.store.append_audit(&entry).await?;
                report.acknowledged += 1;
                tracing::info!(
                    export = export.id,
                    recording = %export.recording_id,
                    link = export.link_id,
                    target = %export.target,
                    attempts = export.attempts + 1,
                    receipt = receipt.as_deref().unwrap_or(""),
                    "journalised: the case system has the recording"
                );
            }
            Err(e) => {
                let attempts = export.attempts.saturating_add(1);
                let next = self.config.retry.next_attempt(attempts, now);
                let error = e.to_string();
                self.store
                    .journal_export_failed(export.id, Some(claim), &error, next)
                    .await?;
                report.failed += 1;
                tracing::warn!(
                    export = export.id,
                    recording = %export.recording_id,
                    link = export.link_id,
                    target = %export.target,
                    attempts,
                    next_attempt = %next,
                    error = %error,
                    "journalising failed; tried again later"
                );
            }
        }
        Ok(())
    }

    /// Builds the recording's document: decrypts it twice without keeping it, once for the
    /// WAV's size and length and once for its SHA-256, which the manifest carries.
    async fn document(
        &self,
        export: &JournalExport,
        recording: &Recording,
        note: Option<&str>,
    ) -> Result<Document, DeliveryError> {
        let path = self.recordings_dir.join(&recording.file);
        let keys = self.keys.clone();
        let source = path.clone();
        let (wav_size, duration, sha) = blocking(move || {
            let (size, ending) = kald_recordings::wav_size(open_recording(&source, &keys)?)
                .map_err(|e| DeliveryError::Recording(e.to_string()))?;
            let mut hasher = Sha256::new();
            std::io::copy(&mut wav_stream(&source, &keys, size)?, &mut hasher)
                .map_err(|e| DeliveryError::Recording(e.to_string()))?;
            let sha: [u8; 32] = hasher.finalize().into();
            Ok((size, ending.duration(), sha))
        })
        .await?;
        let facts = DocumentFacts {
            case_number: &export.case_number,
            link_id: export.link_id,
            note,
            cpr: recording.cpr.as_ref(),
            recording_id: &recording.id,
            call_id: &recording.call_id,
            kind: recording.kind.as_str(),
            started: recording.started,
            ended: recording.ended,
            duration,
            agent: recording.agent.as_deref(),
            journalised_by: &export.requested_by,
            wav_sha256: sha,
            kald_version: env!("CARGO_PKG_VERSION"),
        };
        Ok(Document {
            name: document_name(&recording.id, export.link_id, recording.started, &self.tz),
            manifest: Manifest::new(&facts, &self.tz),
            recording: path,
            wav_size,
        })
    }

    /// Writes the document into the drop folder (WAV first, the manifest last), streaming the
    /// WAV from the recording.
    async fn to_folder(&self, doc: &Document) -> Result<(), DeliveryError> {
        let Some(dir) = self.config.drop_folder.clone() else {
            return Err(DeliveryError::NotConfigured("drop folder"));
        };
        let json = serde_json::to_vec_pretty(&doc.manifest)
            .map_err(|e| DeliveryError::Folder(std::io::Error::other(e)))?;
        let (name, source, size) = (doc.name.clone(), doc.recording.clone(), doc.wav_size);
        let keys = self.keys.clone();
        blocking(move || {
            let mut wav = wav_stream(&source, &keys, size)?;
            write_owner_only(&dir, &format!("{name}.wav"), |file| {
                std::io::copy(&mut wav, file).map(drop)
            })
            .map_err(DeliveryError::Folder)?;
            write_owner_only(&dir, &format!("{name}.json"), |file| file.write_all(&json))
                .map_err(DeliveryError::Folder)
        })
        .await
    }

    /// POSTs the document to the webhook; the receipt, if the answer has one.
    async fn to_webhook(&self, doc: &Document) -> Result<Option<String>, DeliveryError> {
        use base64::Engine as _;
        let Some(url) = self.config.webhook.clone() else {
            return Err(DeliveryError::NotConfigured("webhook"));
        };
        // `{"manifest":…,"wav_base64":"…"}`, the WAV encoded as it is read, a few seconds of
        // audio at a time, so the body is never whole in memory.
        let manifest = serde_json::to_vec(&doc.manifest)
            .map_err(|e| DeliveryError::Webhook(format!("cannot encode the body: {e}")))?;
        let mut head = b"{\"manifest\":".to_vec();
        head.extend_from_slice(&manifest);
        head.extend_from_slice(b",\"wav_base64\":\"");
        const TAIL: &[u8] = b"\"}";
        let length = head.len() as u64 + doc.wav_size.div_ceil(3) * 4 + TAIL.len() as u64;
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let (source, size, keys) = (doc.recording.clone(), doc.wav_size, self.keys.clone());
        tokio::task::spawn_blocking(move || {
            let send = |part: std::io::Result<bytes::Bytes>| tx.blocking_send(part).is_ok();
            if !send(Ok(head.into())) {
                return;
            }
            let mut wav = match wav_stream(&source, &keys, size) {
                Ok(wav) => wav,
                Err(e) => {
                    send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            // A multiple of 3 bytes, so the pieces encode without padding until the last.
            let mut buf = vec![0u8; 3 * 16 * 1024];
            loop {
                let n = match read_full(&mut wav, &mut buf) {
                    Ok(n) => n,
                    Err(e) => {
                        send(Err(e));
                        return;
                    }
                };
                if n > 0 {
                    let text = base64::engine::general_purpose::STANDARD.encode(&buf[..n]);
                    if !send(Ok(text.into())) {
                        return;
                    }
                }
                if n < buf.len() {
                    break;
                }
            }
            send(Ok(bytes::Bytes::from_static(TAIL)));
        });
        let body = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|part| (part, rx))
        });
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::CONTENT_LENGTH, length)
            .header("Idempotency-Key", doc.name.as_str())
            .body(reqwest::Body::wrap_stream(body));
        if let Some(token) = &self.config.webhook_token {
            request = request.bearer_auth(token);
        }
        // The error's text without the URL (it is in the configuration, not in the outbox).
        let response = request
            .send()
            .await
            .map_err(|e| DeliveryError::Webhook(http_error(&e.without_url())))?;
        let status = response.status();
        if !status.is_success() {
            return Err(DeliveryError::Webhook(format!(
                "answered HTTP {}",
                status.as_u16()
            )));
        }
        let answer = response
            .bytes()
            .await
            .map_err(|e| DeliveryError::Webhook(http_error(&e.without_url())))?;
        Ok(receipt_from_response(&answer))
    }
}

/// A short, data-free description of a client error.
fn http_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "no answer in time".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

/// A fresh token for one claimed batch: the process and a random number.
fn claim_token() -> String {
    let random = rand::TryRngCore::try_next_u64(&mut rand::rngs::OsRng).unwrap_or_default();
    format!("{}-{random:016x}", std::process::id())
}

/// Runs blocking file and decryption work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, DeliveryError> + Send + 'static,
) -> Result<T, DeliveryError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| DeliveryError::Recording(format!("the decrypting task failed: {e}")))?
}

/// The decrypting reader of the recording at `path`.
fn open_recording(
    path: &Path,
    keys: &RecordingKeys,
) -> Result<kald_recordings::ChunkReader<std::io::BufReader<std::fs::File>>, DeliveryError> {
    let file = std::fs::File::open(path)
        .map_err(|e| DeliveryError::Recording(format!("cannot open its file: {e}")))?;
    kald_recordings::ChunkReader::open(std::io::BufReader::new(file), keys)
        .map_err(|e| DeliveryError::Recording(e.to_string()))
}

/// The recording at `path` read as a standard WAV of `size` bytes (see
/// [`kald_recordings::wav_size`]).
fn wav_stream(
    path: &Path,
    keys: &RecordingKeys,
    size: u64,
) -> Result<kald_recordings::WavStream<std::io::BufReader<std::fs::File>>, DeliveryError> {
    kald_recordings::WavStream::new(open_recording(path, keys)?, size)
        .map_err(|e| DeliveryError::Recording(e.to_string()))
}

/// Reads until `buf` is full or the reader ends; how much was read.
fn read_full(reader: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Writes `dir/name` (by `write`) so that no reader sees a partial file: a hidden temporary
/// file (owner-only), written and flushed to disk, renamed into place, then the folder synced.
/// An existing file of that name (an earlier, interrupted delivery) is replaced.
fn write_owner_only(
    dir: &Path,
    name: &str,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    // Its own temporary name, so two deliveries of one document at once (two kald whose
    // claims overlapped) never write into the same file.
    let tmp = dir.join(format!(
        ".{name}.{}-{:08x}.tmp",
        std::process::id(),
        rand::TryRngCore::try_next_u32(&mut rand::rngs::OsRng).unwrap_or_default()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Runs the journaliser until `shutdown`: a step every few seconds, and at once when nudged.
pub(crate) async fn run(
    journaliser: Journaliser,
    handle: JournalHandle,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let targets = journaliser.config.targets();
    tracing::info!(
        drop_folder = journaliser
            .config
            .drop_folder
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        webhook = journaliser
            .config
            .webhook
            .as_ref()
            .map(redacted_url)
            .unwrap_or_default(),
        targets = targets.len(),
        "journaliser started"
    );
    loop {
        match journaliser.step_with(|| clock.now().timestamp()).await {
            Ok(r) if r != StepReport::default() => tracing::debug!(
                acknowledged = r.acknowledged,
                failed = r.failed,
                cancelled = r.cancelled,
                "journaliser step"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "journaliser: the store failed; trying again"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = handle.notify.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests;
