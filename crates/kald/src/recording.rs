//! Consented recordings of citizens' calls with agents (issue 8): a call is recorded only when
//! its consent answer is yes, from the moment the agent answers until the call ends or leaves
//! the agent (a transfer); the citizen's withdrawal key (or the agent's `*24`) stops it at
//! once and deletes what was recorded; every recording is catalogued in the store with its
//! retention deadline from the policy.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use jiff::Timestamp;
use kald_core::CallId;
use kald_recordings::{Finished, Policy};
use kald_sip::endpoint::Endpoint;

use crate::calls::Calls;
use crate::media::Command;
use crate::recorder::{RecKey, RecReport};
use crate::records::StoreOp;

/// A recording in progress.
struct Active {
    key: RecKey,
    id: String,
    started: Timestamp,
    message: bool,
}

/// The recordings part of the call handling.
pub(crate) struct Recordings {
    /// The operators' policy (retention, keys).
    pub(crate) policy: Policy,
    /// Where recording files go (under the data dir).
    dir: PathBuf,
    /// Whether a recorder thread runs.
    enabled: bool,
    next: u64,
    active: HashMap<CallId, Active>,
    /// Recordings stopped but not yet reported closed by the writer.
    closing: HashMap<RecKey, (String, CallId, Timestamp, bool)>,
    /// The policy file's modification time when last read.
    pub(crate) policy_stamp: Option<std::time::SystemTime>,
    /// The id of the key new recordings are sealed with.
    key_id: u8,
    /// The live policy as the API reads it (replaced on every reload).
    published: PublishedPolicy,
}

/// The live recordings policy shared with the API: the SIP loop replaces it on reload.
pub(crate) type PublishedPolicy = std::sync::Arc<std::sync::RwLock<std::sync::Arc<Policy>>>;

impl Recordings {
    /// Recording into `dir` with `policy`; `enabled` false records nothing (no writer).
    pub(crate) fn new(policy: Policy, dir: PathBuf, enabled: bool, key_id: u8) -> Self {
        Self {
            key_id,
            dir,
            enabled,
            next: 1,
            active: HashMap::new(),
            closing: HashMap::new(),
            policy_stamp: None,
            published: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(
                policy.clone(),
            ))),
            policy,
        }
    }

    /// The live policy, for the API; it follows every reload.
    pub(crate) fn published(&self) -> PublishedPolicy {
        std::sync::Arc::clone(&self.published)
    }

    /// How many calls are being recorded now.
    pub(crate) fn active_count(&self) -> usize {
        self.active.len()
    }

    /// Whether `call` is being recorded now.
    pub(crate) fn is_recording(&self, call: CallId) -> bool {
        self.active.contains_key(&call)
    }
}

/// A fresh recording id: 128 random bits in hex (names the file; no personal data).
fn new_id() -> Option<String> {
    let bytes: [u8; 16] = crate::recorder::random_bytes().ok()?;
    Some(hex_lower(&bytes))
}

impl Calls {
    /// The citizen now talks to an agent over `agent_leg`: record if they consented.
    pub(crate) fn maybe_record(&mut self, citizen: CallId, agent_leg: CallId, agent: &str) {
        let Some(a_leg) = self.leg_of(agent_leg) else {
            return;
        };
        let Some(ctx) = self.calls.get(&citizen) else {
            return;
        };
        let consent = ctx.outcome().consent;
        if consent != Some(kald_ivr::Consent::Yes) || ctx.consent_withdrawn.is_some() {
            return;
        }
        self.start_recording(citizen, Some((a_leg, agent)));
    }

    /// The flow's `message` node: record what the caller says (after its own notice), on the
    /// left channel, kept under the policy's rules for messages.
    pub(crate) fn record_message(&mut self, citizen: CallId, team: &str) {
        if let Some(ctx) = self.calls.get_mut(&citizen) {
            ctx.queue_name.get_or_insert_with(|| team.to_owned());
        }
        self.start_recording(citizen, None);
    }

    fn start_recording(&mut self, citizen: CallId, agent: Option<(crate::media::LegId, &str)>) {
        if !self.recordings.enabled || self.recordings.active.contains_key(&citizen) {
            return;
        }
        let Some(ctx) = self.calls.get(&citizen) else {
            return;
        };
        let message = agent.is_none();
        let now = self.clock.now();
        let Some(id) = new_id() else {
            tracing::error!(call = %citizen, "no OS randomness for a recording id; not recording");
            return;
        };
        let key = RecKey(self.recordings.next);
        self.recordings.next += 1;
        let rel = PathBuf::from(format!("{:04}/{:02}/{id}.kald", now.year(), now.month()));
        let path = self.recordings.dir.join(&rel);
        self.records.send(StoreOp::RecordingStarted(Box::new(
            crate::records::RecordingLog {
                id: id.clone(),
                call: citizen,
                file: rel.to_string_lossy().into_owned(),
                started: now.timestamp(),
                agent: agent.map(|(_, a)| a.to_owned()),
                queue: ctx.queue_name.clone(),
                topic: ctx.topic.clone(),
                consent: !message,
                message,
                cpr: ctx.outcome().cpr.clone(),
                key_id: self.recordings.key_id,
            },
        )));
        self.media.send(Command::Record {
            rec: key,
            citizen: ctx.leg,
            agent: agent.map(|(l, _)| l),
            path,
        });
        tracing::info!(call = %citizen, recording = %id, caller_message = message, "recording started");
        self.recordings.active.insert(
            citizen,
            Active {
                key,
                id,
                started: now.timestamp(),
                message,
            },
        );
    }

    /// Stop recording `citizen`'s call: close it, or (`discard`) delete what was recorded.
    pub(crate) fn stop_recording(&mut self, citizen: CallId, discard: bool) {
        let Some(a) = self.recordings.active.remove(&citizen) else {
            return;
        };
        self.media.send(Command::StopRecording {
            rec: a.key,
            discard,
        });
        tracing::info!(call = %citizen, recording = %a.id, discard, "recording stopped");
        self.recordings
            .closing
            .insert(a.key, (a.id, citizen, a.started, a.message));
    }

    /// The citizen (or the agent on their behalf) withdrew consent during the call: stop at
    /// once, delete what was recorded, keep the answer and the time of withdrawal, and tell
    /// the citizen.
    pub(crate) fn withdraw_consent(
        &mut self,
        now: Instant,
        endpoint: &mut Endpoint,
        citizen: CallId,
        by: &str,
    ) {
        let at = self.clock.now().timestamp();
        let Some(ctx) = self.calls.get_mut(&citizen) else {
            return;
        };
        if ctx.consent_withdrawn.is_some() {
            return;
        }
        ctx.consent_withdrawn = Some(at);
        let leg = ctx.leg;
        let was_recording = self.recordings.is_recording(citizen);
        self.stop_recording(citizen, true);
        tracing::info!(call = %citizen, by, was_recording, "consent withdrawn");
        self.records.send(StoreOp::ConsentWithdrawn {
            call: citizen,
            at,
            by: by.to_owned(),
        });
        // The confirmation: the agent's audio pauses while the citizen hears it.
        if let Some(prompt) = self.flows.prompt("recording-withdrawn") {
            if let Some(ctx) = self.calls.get_mut(&citizen) {
                ctx.confirming_withdrawal = true;
            }
            self.media.send(Command::Unbridge { leg });
            self.media.send(Command::Play {
                leg,
                prompt,
                looped: false,
            });
        }
        let _ = (now, endpoint);
    }

    /// The confirmation of a withdrawal finished: the citizen and the agent talk again.
    pub(crate) fn withdrawal_confirmed(&mut self, citizen: CallId) {
        let Some(ctx) = self.calls.get_mut(&citizen) else {
            return;
        };
        ctx.confirming_withdrawal = false;
        if let Some((leg, _)) = ctx.agent.clone() {
            self.rebridge(citizen, leg);
        }
    }

    /// What the recording writer reports.
    pub(crate) fn recording_report(&mut self, report: RecReport) {
        match report {
            RecReport::Finished { key, finished } => {
                let Some((id, call, started, message)) = self.recordings.closing.remove(&key)
                else {
                    return;
                };
                self.recording_closed(id, call, started, message, &finished);
            }
            RecReport::Failed {
                key,
                error,
                duration,
            } => {
                // The file holds what was written before the failure: catalogue it as cut short.
                let entry = self.recordings.closing.remove(&key).or_else(|| {
                    let call = self
                        .recordings
                        .active
                        .iter()
                        .find(|(_, a)| a.key == key)
                        .map(|(c, _)| *c)?;
                    let a = self.recordings.active.remove(&call)?;
                    // The engine's recorder runs on a clock: stop it, or it runs forever.
                    self.media.send(Command::StopRecording {
                        rec: a.key,
                        discard: false,
                    });
                    Some((a.id, call, a.started, a.message))
                });
                if let Some((id, call, started, message)) = entry {
                    tracing::error!(call = %call, recording = %id, %error, "recording failed");
                    let ended = started
                        .checked_add(jiff::SignedDuration::try_from(duration).unwrap_or_default())
                        .unwrap_or(started);
                    let until = self.retention_until(ended, message);
                    self.records.send(StoreOp::RecordingTruncated {
                        id,
                        ended,
                        duration,
                        retention_until: until,
                    });
                    self.recording_failures += 1;
                }
            }
            RecReport::Discarded { key } => {
                self.recordings.closing.remove(&key);
            }
        }
    }

    fn recording_closed(
        &mut self,
        id: String,
        call: CallId,
        started: Timestamp,
        message: bool,
        f: &Finished,
    ) {
        let ended = started
            .checked_add(jiff::SignedDuration::try_from(f.duration).unwrap_or_default())
            .unwrap_or(started);
        let until = self.retention_until(ended, message);
        tracing::info!(call = %call, recording = %id, duration_ms = f.duration.as_millis() as u64, "recording closed");
        self.recordings_written += 1;
        self.records.send(StoreOp::RecordingClosed {
            id,
            ended,
            duration: f.duration,
            sha256: f.sha256,
            retention_until: until,
        });
    }

    /// The deadline of a recording (or a message) that ended at `ended`, by the policy.
    fn retention_until(&self, ended: Timestamp, message: bool) -> Timestamp {
        let r = &self.recordings.policy.retention;
        let period = if message { &r.messages } else { &r.recordings };
        period
            .deadline(ended, self.clock.now().time_zone())
            .unwrap_or(ended)
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The policy file; a missing file means the shipped defaults (said loudly), a broken one
/// stops kald with every problem as `file:line:col`.
pub(crate) fn load_policy(path: &std::path::Path) -> anyhow::Result<Policy> {
    if !path.exists() {
        tracing::warn!(path = %path.display(), "no recordings policy file; using the shipped defaults (3 months)");
        return Ok(Policy::default());
    }
    match Policy::load(path) {
        Ok(p) => {
            for w in &p.warnings {
                tracing::warn!(warning = %w, "recordings policy");
            }
            tracing::info!(path = %path.display(), recordings = %p.retention.recordings, "recordings policy loaded");
            Ok(p)
        }
        Err(diagnostics) => {
            let text: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            anyhow::bail!("the recordings policy has errors:\n{}", text.join("\n"))
        }
    }
}

/// The recordings' key file in the keys dir, created owner-only on first start.
pub(crate) fn load_keys(
    keys_dir: &std::path::Path,
) -> anyhow::Result<kald_recordings::RecordingKeys> {
    use anyhow::Context;
    std::fs::create_dir_all(keys_dir)
        .with_context(|| format!("cannot create the keys directory {}", keys_dir.display()))?;
    let path = keys_dir.join("recordings.key");
    let (keys, created) = kald_recordings::RecordingKeys::load_or_create(&path)
        .with_context(|| format!("cannot load the recordings key file {}", path.display()))?;
    if created {
        tracing::warn!(
            path = %path.display(),
            "created a new recordings key file. BACK IT UP, away from the data dir: without it no recording can be played"
        );
    }
    Ok(keys)
}

impl Calls {
    /// Take a changed policy file; a file that fails the check leaves the old policy live.
    pub(crate) fn reload_policy_if_changed(&mut self, path: &std::path::Path) {
        let stamp = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if stamp.is_none() || stamp == self.recordings.policy_stamp {
            return;
        }
        let first = self.recordings.policy_stamp.is_none();
        self.recordings.policy_stamp = stamp;
        if first {
            return;
        }
        match Policy::load(path) {
            Ok(p) => {
                tracing::info!(path = %path.display(), "recordings policy reloaded");
                if let Ok(mut published) = self.recordings.published.write() {
                    *published = std::sync::Arc::new(p.clone());
                }
                self.recordings.policy = p;
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    tracing::error!(problem = %d, "recordings policy not reloaded; the old one stays live");
                }
            }
        }
    }
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// At start, make the catalogue and the files agree after whatever happened before (a crash
/// or `kill -9` in the middle of recordings): a recording still marked as in progress is
/// read back and catalogued as complete or cut short (all whole seconds before the crash
/// are kept); a row whose file is gone is deleted with a tombstone; a file no row names (its
/// row never reached the database) is deleted, since nothing says whose it is or how long to
/// keep it. What was repaired is reported.
pub(crate) async fn reconcile(
    store: &kald_store::Store,
    dir: &std::path::Path,
    keys: &kald_recordings::RecordingKeys,
    policy: &Policy,
    clock: &crate::clock::Clock,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let now = clock.now();
    let rows = store
        .all_recordings()
        .await
        .context("cannot read the recordings catalogue")?;
    let files: std::collections::HashSet<String> = files_under(dir).into_iter().collect();
    let named: std::collections::HashSet<&str> = rows.iter().map(|r| r.file.as_str()).collect();
    let (mut completed, mut truncated, mut missing, mut orphans, mut unreadable) = (0, 0, 0, 0, 0);
    for row in &rows {
        if !files.contains(&row.file) {
            let purge = policy
                .retention
                .tombstones
                .deadline(now.timestamp(), now.time_zone())
                .unwrap_or(now.timestamp());
            store
                .delete_recording(&row.id, "file missing", now.timestamp(), purge)
                .await
                .context("cannot remove a catalogue row without its file")?;
            missing += 1;
            continue;
        }
        if row.state != kald_store::RecordingState::Recording {
            continue;
        }
        let Some(rec) = store
            .recording(&row.id)
            .await
            .context("cannot read a recording")?
        else {
            continue;
        };
        let path = dir.join(&row.file);
        let ending = std::fs::File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                kald_recordings::ChunkReader::open(std::io::BufReader::new(f), keys)
                    .and_then(|r| r.read_all())
                    .map(|(_, ending)| ending)
                    .map_err(|e| e.to_string())
            });
        match ending {
            Ok(ending) => {
                let duration = ending.duration();
                let ended = rec
                    .started
                    .checked_add(jiff::SignedDuration::try_from(duration).unwrap_or_default())
                    .unwrap_or(rec.started);
                let until = policy
                    .retention
                    .recordings
                    .deadline(ended, now.time_zone())
                    .unwrap_or(ended);
                match ending {
                    kald_recordings::Ending::Complete { sha256, .. } => {
                        store
                            .close_recording(&row.id, ended, duration, &sha256, until)
                            .await?;
                        completed += 1;
                    }
                    _ => {
                        store
                            .mark_truncated(&row.id, ended, duration, until)
                            .await?;
                        truncated += 1;
                    }
                }
            }
            Err(error) => {
                // A file that cannot be read back (not even its header: the crash came before
                // the first write) holds nothing to keep.
                tracing::warn!(recording = %row.id, %error, "an unreadable recording file; removed");
                let _ = std::fs::remove_file(&path);
                let purge = policy
                    .retention
                    .tombstones
                    .deadline(now.timestamp(), now.time_zone())
                    .unwrap_or(now.timestamp());
                store
                    .delete_recording(&row.id, "unreadable after a crash", now.timestamp(), purge)
                    .await?;
                unreadable += 1;
            }
        }
    }
    for f in &files {
        if !named.contains(f.as_str()) {
            if let Err(e) = std::fs::remove_file(dir.join(f)) {
                tracing::error!(error = %e, "cannot remove an uncatalogued recording file");
            } else {
                orphans += 1;
            }
        }
    }
    if completed + truncated + missing + orphans + unreadable > 0 {
        tracing::warn!(
            completed,
            truncated,
            missing,
            orphans,
            unreadable,
            "recordings repaired at start (after an unclean stop)"
        );
    } else {
        tracing::info!(
            recordings = rows.len(),
            "recordings catalogue and files agree"
        );
    }
    Ok(())
}

/// How often the retention sweeper runs (it also runs at start).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// The retention sweeper: deletes each recording whose deadline has passed (file and personal
/// metadata; a tombstone stays), never one under a hold or linked to a case but not yet
/// exported (those are named in an alert), and purges tombstones past their own period. Runs
/// at start and every ten minutes; idempotent.
pub(crate) async fn sweeper(
    store: kald_store::Store,
    policy_path: PathBuf,
    mut policy: Policy,
    dir: PathBuf,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        if let Ok(p) = Policy::load(&policy_path) {
            policy = p;
        }
        if let Err(e) = sweep_once(&store, &policy, &dir, &clock).await {
            tracing::error!(error = %e, "retention sweep failed; it runs again later");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// One pass of the sweeper (see [`sweeper`]).
pub(crate) async fn sweep_once(
    store: &kald_store::Store,
    policy: &Policy,
    dir: &std::path::Path,
    clock: &crate::clock::Clock,
) -> Result<(), kald_store::StoreError> {
    use kald_recordings::{CatalogueItem, Decision, ItemId, ItemKind, JournalState, KeepReason};
    let now = clock.now();
    let at = now.timestamp();
    let purge_after = policy
        .retention
        .tombstones
        .deadline(at, now.time_zone())
        .unwrap_or(at);
    let (mut deleted, mut held, mut awaiting) = (0usize, 0usize, 0usize);
    let mut cursor = None;
    loop {
        let batch = store.sweep_candidates(at, cursor.as_ref(), 1000).await?;
        let Some(last) = batch.last() else {
            break;
        };
        cursor = Some(last.cursor());
        let items: Vec<CatalogueItem> = batch
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let kind = match s.kind {
                    kald_store::RecordingKind::Message => ItemKind::Message,
                    _ => ItemKind::Recording,
                };
                let journal = match s.journal {
                    kald_store::JournalState::Linked => JournalState::LinkedNotExported,
                    kald_store::JournalState::Exported => JournalState::Exported,
                    _ => JournalState::None,
                };
                CatalogueItem::new(ItemId(i as i64), kind, s.ended)
                    .with_holds(s.holds)
                    .with_journal(journal)
            })
            .collect();
        let mut doomed = Vec::new();
        for d in kald_recordings::retention::sweep(&now, policy, &items) {
            let Some(item) = usize::try_from(d.id().0).ok().and_then(|i| batch.get(i)) else {
                continue;
            };
            match d {
                Decision::Delete { .. } => doomed.push(item.id.clone()),
                Decision::Keep { reason, .. } => match reason {
                    KeepReason::Held { .. } => held += 1,
                    _ => {
                        awaiting += 1;
                        tracing::warn!(recording = %item.id, "ALERT: past its deadline but linked to a case and not yet journalised; kept until exported or unlinked");
                    }
                },
                _ => {}
            }
        }
        let files = store
            .delete_recordings(&doomed, "retention", at, purge_after)
            .await?;
        deleted += files.len();
        for f in files {
            match std::fs::remove_file(dir.join(&f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(error = %e, "cannot delete an expired recording's file"),
            }
        }
    }
    let purged = store.purge_tombstones(at).await?;
    if deleted + held + awaiting > 0 || purged > 0 {
        tracing::info!(
            deleted,
            held,
            awaiting_journal = awaiting,
            tombstones_purged = purged,
            "retention sweep"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kald_store::{HoldTarget, NewRecording, RecordingKind, Store};

    /// A closed recording row that ended at `ended`, with its (fake) file on disk.
    async fn recording(
        store: &Store,
        dir: &std::path::Path,
        id: &str,
        call: &str,
        ended: &str,
        policy: &Policy,
    ) {
        let ended: Timestamp = ended.parse().unwrap();
        let started = ended
            .checked_sub(jiff::SignedDuration::from_secs(60))
            .unwrap();
        let file = format!("{id}.kald");
        std::fs::write(dir.join(&file), b"KALDREC1 sealed bytes").unwrap();
        store
            .insert_call(&kald_store::CallRow {
                id: call.into(),
                started,
                caller: None,
                entry_point: "hovednummer".into(),
                flow_version: None,
                consent: Some(true),
                consent_at: None,
                topic: None,
                queue: None,
                cpr: None,
            })
            .await
            .unwrap();
        store
            .insert_recording(&NewRecording {
                id: id.into(),
                call_id: call.into(),
                kind: RecordingKind::Call,
                file,
                key_id: 1,
                started,
                agent: Some("anna".into()),
                queue: None,
                topic: None,
                consent: true,
                consent_at: None,
                flow_version: None,
                cpr: None,
            })
            .await
            .unwrap();
        let tz = jiff::tz::db().get("Europe/Copenhagen").unwrap();
        let until = policy.retention.recordings.deadline(ended, &tz).unwrap();
        store
            .close_recording(
                id,
                ended,
                std::time::Duration::from_secs(60),
                &[7; 32],
                until,
            )
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn the_sweeper_deletes_at_three_months_keeps_younger_and_held_and_purges_tombstones() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("recordings");
        std::fs::create_dir_all(&dir).unwrap();
        let (keys, _) = kald_core::CprKeys::load_or_create(&tmp.path().join("cpr.key")).unwrap();
        let store = Store::open_data_dir(&tmp.path().join("data"), keys)
            .await
            .unwrap();
        let policy = Policy::default();
        // Ended 1 December 2026 10:00 Copenhagen: kept until 1 March 2027 10:00.
        recording(&store, &dir, "old", "c-1", "2026-12-01T09:00:00Z", &policy).await;
        // A day younger: kept until 2 March.
        recording(
            &store,
            &dir,
            "younger",
            "c-2",
            "2026-12-02T09:00:00Z",
            &policy,
        )
        .await;
        // As old, but held by a records officer (a complaint).
        recording(&store, &dir, "held", "c-3", "2026-12-01T09:00:00Z", &policy).await;
        let hold = store
            .add_hold(
                &HoldTarget::Call("c-3".into()),
                "complaint",
                "rikke",
                "2026-12-10T09:00:00Z".parse().unwrap(),
            )
            .await
            .unwrap();

        // The day before the deadline nothing goes.
        let clock = crate::clock::Clock::new(Some("2027-03-01T09:00")).unwrap();
        sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert!(store.recording("old").await.unwrap().is_some());

        // Just past the deadline: the old one goes (file and row), a tombstone stays.
        let clock = crate::clock::Clock::new(Some("2027-03-01T10:01")).unwrap();
        sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert!(store.recording("old").await.unwrap().is_none());
        assert!(!dir.join("old.kald").exists());
        let t = store.tombstone("old").await.unwrap().unwrap();
        assert_eq!(t.reason, "retention");
        assert!(store.recording("younger").await.unwrap().is_some());
        assert!(dir.join("younger.kald").exists());
        assert!(
            store.recording("held").await.unwrap().is_some(),
            "a held recording went"
        );
        assert!(dir.join("held.kald").exists());
        // Idempotent: a second pass changes nothing.
        sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert!(store.tombstone("old").await.unwrap().is_some());

        // The younger one goes a day later; the hold is lifted and the held one goes too.
        store
            .lift_hold(hold, "rikke", "2027-03-02T08:00:00Z".parse().unwrap())
            .await
            .unwrap();
        let clock = crate::clock::Clock::new(Some("2027-03-02T10:01")).unwrap();
        sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        for id in ["younger", "held"] {
            assert!(store.recording(id).await.unwrap().is_none(), "{id} stayed");
            assert!(!dir.join(format!("{id}.kald")).exists());
        }
        // Tombstones are purged after their own period (one year by default).
        let clock = crate::clock::Clock::new(Some("2028-03-03T10:00")).unwrap();
        sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert!(store.tombstone("old").await.unwrap().is_none());
    }
}
