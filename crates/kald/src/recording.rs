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
                cpr: ctx.cpr().cloned(),
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
            // The audio is gone: nothing is left to journalise, so a journal link does not
            // keep the row (a hold does).
            let cpr_hash = store
                .recording(&row.id)
                .await
                .context("cannot read a recording")?
                .and_then(|r| r.cpr.map(|c| store.cpr_lookup_hash(&c)));
            if store
                .erase_recording(&row.id, "file missing", now.timestamp(), purge)
                .await
                .context("cannot remove a catalogue row without its file")?
                .is_some()
            {
                audit_system_deletion(store, now.timestamp(), &row.id, "file missing", cpr_hash)
                    .await?;
                missing += 1;
            }
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
                let reason = "unreadable after a crash";
                if store
                    .erase_recording(&row.id, reason, now.timestamp(), purge)
                    .await?
                    .is_some()
                {
                    let cpr_hash = rec.cpr.as_ref().map(|c| store.cpr_lookup_hash(c));
                    audit_system_deletion(store, now.timestamp(), &row.id, reason, cpr_hash)
                        .await?;
                }
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

/// Appends the audit entry of a recording kald deleted itself (by "kald", role "system").
async fn audit_system_deletion(
    store: &kald_store::Store,
    at: Timestamp,
    id: &str,
    reason: &str,
    cpr_hash: Option<[u8; 32]>,
) -> Result<(), kald_store::StoreError> {
    let mut entry = system_audit(at, "delete", id, reason.to_owned());
    entry.cpr_hash = cpr_hash;
    store.append_audit(&entry).await.map(|_| ())
}

/// How often the retention sweeper runs (it also runs at start).
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Who the sweeper is in the audit log.
const SYSTEM_ACTOR: &str = "kald";
/// Its role there.
const SYSTEM_ROLE: &str = "system";

/// The retention sweeper: deletes each recording whose deadline has passed (file and personal
/// metadata; a tombstone stays), never one under a hold or linked to a case but not yet
/// exported (those are named in an alert); purges tombstones past their own period; removes
/// the CPR number and caller's number of call records past `call_records_with_cpr`; purges
/// the audit log past `audit_log`. Every deletion is in the audit log (by "kald", role
/// "system"). Once a day it names the access requests due soon or overdue in `ALERT` lines.
/// Runs at start and every ten minutes; idempotent.
pub(crate) async fn sweeper(
    store: kald_store::Store,
    policy_path: PathBuf,
    mut policy: Policy,
    dir: PathBuf,
    clock: crate::clock::Clock,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut reminded: Option<jiff::civil::Date> = None;
    loop {
        if let Ok(p) = Policy::load(&policy_path) {
            policy = p;
        }
        if let Err(e) = sweep_once(&store, &policy, &dir, &clock).await {
            tracing::error!(error = %e, "retention sweep failed; it runs again later");
        }
        let today = clock.now().date();
        if reminded != Some(today) {
            // The policy's working days, as the records API uses them.
            match remind_access_requests(&store, today, &policy.access_requests).await {
                Ok(_) => reminded = Some(today),
                Err(e) => {
                    tracing::error!(error = %e, "cannot check the access requests' deadlines; tried again later");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}

/// What one pass of the sweeper did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SweepReport {
    /// Recordings and messages deleted (each audited).
    pub(crate) deleted: usize,
    /// Due but held.
    pub(crate) held: usize,
    /// Due but linked to a case and not yet journalised.
    pub(crate) awaiting_journal: usize,
    /// Tombstones purged.
    pub(crate) tombstones_purged: u64,
    /// Call records whose CPR number and caller's number were removed.
    pub(crate) calls_scrubbed: usize,
    /// Call records due but kept: held, or the call still has recordings.
    pub(crate) calls_kept: usize,
    /// Audit entries purged.
    pub(crate) audit_purged: u64,
}

/// Whether data whose period started at `t` is due at `now`.
fn is_due(period: &kald_recordings::RetentionPeriod, now: &jiff::Zoned, t: Timestamp) -> bool {
    period
        .deadline(t, now.time_zone())
        .is_some_and(|d| d <= now.timestamp())
}

/// The last microsecond in `[lo, hi)` that is due, given that `lo` is due and that being due
/// does not come back within the range once it ends (a binary search).
fn last_due_in(
    period: &kald_recordings::RetentionPeriod,
    now: &jiff::Zoned,
    lo: Timestamp,
    hi: Timestamp,
) -> Timestamp {
    let (mut lo, mut hi) = (lo.as_microsecond(), hi.as_microsecond());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if Timestamp::from_microsecond(mid).is_ok_and(|t| is_due(period, now, t)) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Timestamp::from_microsecond(lo).unwrap_or(Timestamp::MIN)
}

/// A cut-off for data due at `now` under `period`: everything whose period started before it
/// is due (its deadline is at or before `now`), so a purge of everything older is safe.
///
/// The deadline mostly grows with its start, but not everywhere: calendar months clamp at the
/// month's end (29 and 30 November + 3 months are both 28 February, at their own time of day),
/// and the hour repeated when summer time ends runs backwards. So the due data is a prefix up
/// to this cut-off plus, at month ends, a few later stretches ([`latest_due`]); those go a day
/// or two later at the latest, when the prefix reaches them.
fn due_before(period: &kald_recordings::RetentionPeriod, now: &jiff::Zoned) -> Timestamp {
    let now_ts = now.timestamp();
    // Longer than any such period (31-day months, a DST hour): `lo` is due, `now` is not.
    let days = i64::from(period.months()) * 31 + i64::from(period.days()) + 2;
    let lo = now_ts
        .checked_sub(jiff::SignedDuration::from_hours(24 * days))
        .unwrap_or(Timestamp::MIN);
    if !is_due(period, now, lo) {
        return lo;
    }
    let last = last_due_in(period, now, lo, now_ts);
    last.checked_add(jiff::SignedDuration::from_micros(1))
        .unwrap_or(last)
}

/// The latest start of data due at `now` under `period` (`None` if nothing is due in the
/// window [`due_before`] searches): with the month-end stretches that [`due_before`] leaves
/// out. Within one local day the deadline grows with the time of day (the day maps to one
/// target day), so each day from the prefix's end on is searched on its own.
fn latest_due(period: &kald_recordings::RetentionPeriod, now: &jiff::Zoned) -> Timestamp {
    let prefix = due_before(period, now);
    let mut latest = prefix
        .checked_sub(jiff::SignedDuration::from_micros(1))
        .unwrap_or(prefix);
    let Ok(day) = prefix.to_zoned(now.time_zone().clone()).start_of_day() else {
        return latest;
    };
    // Month ends clamp by at most three days (31 → 28 February).
    for k in 0..5 {
        let (Ok(start), Ok(end)) = (
            day.checked_add(jiff::Span::new().days(k)),
            day.checked_add(jiff::Span::new().days(k + 1)),
        ) else {
            break;
        };
        let (start, end) = (start.timestamp(), end.timestamp());
        if is_due(period, now, start) {
            latest = latest.max(last_due_in(period, now, start, end));
        }
    }
    latest
}

/// An audit entry by the sweeper.
fn system_audit(
    at: Timestamp,
    action: &str,
    target: &str,
    reason: String,
) -> kald_store::AuditEntry {
    kald_store::AuditEntry::new(at, SYSTEM_ACTOR, SYSTEM_ROLE, action, target).with_reason(reason)
}

/// One pass of the sweeper (see [`sweeper`]).
pub(crate) async fn sweep_once(
    store: &kald_store::Store,
    policy: &Policy,
    dir: &std::path::Path,
    clock: &crate::clock::Clock,
) -> Result<SweepReport, kald_store::StoreError> {
    use kald_recordings::{CatalogueItem, Decision, ItemId, ItemKind, JournalState, KeepReason};
    let now = clock.now();
    let at = now.timestamp();
    let retention = &policy.retention;
    let purge_after = retention
        .tombstones
        .deadline(at, now.time_zone())
        .unwrap_or(at);
    let mut report = SweepReport::default();
    // Recordings and messages: each deletion audited in its own transaction.
    let audit_recording = system_audit(
        at,
        "delete",
        "",
        format!("retention: {}", retention.recordings),
    );
    let audit_message = system_audit(
        at,
        "delete",
        "",
        format!("retention: {}", retention.messages),
    );
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
        let (mut recordings, mut messages) = (Vec::new(), Vec::new());
        for d in kald_recordings::retention::sweep(&now, policy, &items) {
            let Some(item) = usize::try_from(d.id().0).ok().and_then(|i| batch.get(i)) else {
                continue;
            };
            match d {
                Decision::Delete { kind, .. } => match kind {
                    ItemKind::Message => messages.push(item.id.as_str()),
                    _ => recordings.push(item.id.as_str()),
                },
                Decision::Keep { reason, .. } => match reason {
                    KeepReason::Held { .. } => report.held += 1,
                    _ => {
                        report.awaiting_journal += 1;
                        tracing::warn!(recording = %item.id, "ALERT: past its deadline but linked to a case and not yet journalised; kept until exported or unlinked");
                    }
                },
                _ => {}
            }
        }
        let mut files = store
            .delete_recordings_audited(&recordings, "retention", at, purge_after, &audit_recording)
            .await?;
        files.extend(
            store
                .delete_recordings_audited(&messages, "retention", at, purge_after, &audit_message)
                .await?,
        );
        report.deleted += files.len();
        for f in files {
            match std::fs::remove_file(dir.join(&f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::error!(error = %e, "cannot delete an expired recording's file"),
            }
        }
    }
    // Tombstones past their own period: one audit entry for the pass.
    report.tombstones_purged = store.purge_tombstones(at).await?;
    if report.tombstones_purged > 0 {
        store
            .append_audit(&system_audit(
                at,
                "purge-tombstones",
                "tombstones",
                format!(
                    "retention: {}; {} purged",
                    retention.tombstones, report.tombstones_purged
                ),
            ))
            .await?;
    }
    // Call records with a CPR number: their personal data goes, the statistics stay.
    let (scrubbed, kept) = scrub_call_records(store, policy, &now).await?;
    report.calls_scrubbed = scrubbed;
    report.calls_kept = kept;
    if scrubbed > 0 {
        store
            .append_audit(&system_audit(
                at,
                "scrub-call-records",
                "calls",
                format!(
                    "retention: {}; CPR and caller's number removed from {scrubbed} call records",
                    retention.call_records_with_cpr
                ),
            ))
            .await?;
    }
    // The audit log's own retention (the anchor keeps what is left verifiable); last, so
    // this pass's entries are never in the purge.
    let before = due_before(&retention.audit_log, &now);
    report.audit_purged = store.purge_audit_before(before).await?;
    if report.audit_purged > 0 {
        store
            .append_audit(&system_audit(
                at,
                "purge-audit",
                "audit_log",
                format!(
                    "retention: {}; {} entries logged before {before} purged",
                    retention.audit_log, report.audit_purged
                ),
            ))
            .await?;
    }
    let r = &report;
    if r.deleted + r.held + r.awaiting_journal + r.calls_scrubbed > 0
        || r.tombstones_purged + r.audit_purged > 0
    {
        tracing::info!(
            deleted = r.deleted,
            held = r.held,
            awaiting_journal = r.awaiting_journal,
            tombstones_purged = r.tombstones_purged,
            call_records_scrubbed = r.calls_scrubbed,
            call_records_kept = r.calls_kept,
            audit_entries_purged = r.audit_purged,
            "retention sweep"
        );
    }
    Ok(report)
}

/// The `call_records_with_cpr` part of a sweep: lists the call records holding a CPR number
/// whose period may have ended, decides each by the policy (a hold keeps it; so do the call's
/// recordings, which an access request must find together with it) and scrubs the due ones,
/// a page at a time. Returns how many were scrubbed and how many due ones were kept.
async fn scrub_call_records(
    store: &kald_store::Store,
    policy: &Policy,
    now: &jiff::Zoned,
) -> Result<(usize, usize), kald_store::StoreError> {
    use kald_recordings::{CatalogueItem, Decision, ItemId, ItemKind};
    let at = now.timestamp();
    // An hour on for the repeated summer-time hour; each is decided exactly below.
    let ended_by = latest_due(&policy.retention.call_records_with_cpr, now)
        .checked_add(jiff::SignedDuration::from_hours(1))
        .unwrap_or(at);
    let (mut scrubbed, mut kept) = (0, 0);
    let mut cursor = None;
    loop {
        let page = store
            .call_pii_candidates(ended_by, cursor.as_ref(), 1000)
            .await?;
        let Some(last) = page.last() else {
            break;
        };
        cursor = Some(last.cursor());
        let mut due = Vec::new();
        for (i, call) in page.iter().enumerate() {
            let item = CatalogueItem::new(ItemId(i as i64), ItemKind::CallRecord, call.ended)
                .with_holds(call.holds);
            match kald_recordings::retention::decide(now, policy, &item) {
                Some(Decision::Delete { .. }) if call.recordings == 0 => due.push(call.id.as_str()),
                Some(_) => kept += 1,
                None => {}
            }
        }
        scrubbed += store.scrub_call_pii(&due, at).await?.len();
    }
    Ok((scrubbed, kept))
}

/// The `ALERT` line of an access-request reminder: the request's number and its deadline, no
/// CPR number, no requester.
fn reminder_line(r: &kald_recordings::access::Reminder) -> String {
    use kald_recordings::access::ReminderKind;
    let n = r.request.0;
    let plural = |d: u32| if d == 1 { "" } else { "s" };
    match r.kind {
        ReminderKind::DueSoon { days_left: 0 } => {
            format!("ALERT: access request {n} is due today ({})", r.deadline)
        }
        ReminderKind::DueSoon { days_left } => format!(
            "ALERT: access request {n} is due in {days_left} working day{} ({})",
            plural(days_left),
            r.deadline
        ),
        ReminderKind::Overdue { days } => format!(
            "ALERT: access request {n} is overdue by {days} working day{} (deadline {})",
            plural(days),
            r.deadline
        ),
    }
}

/// Today's reminders of the open access requests, each logged as an `ALERT` line; returns
/// them.
async fn remind_access_requests(
    store: &kald_store::Store,
    today: jiff::civil::Date,
    params: &kald_recordings::DeadlineParams,
) -> Result<Vec<kald_recordings::access::Reminder>, kald_store::StoreError> {
    let open = store.access_requests(true).await?;
    let reminders = kald_api::reminders(&open, today, params);
    for r in &reminders {
        tracing::warn!("{}", reminder_line(r));
    }
    Ok(reminders)
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

    /// A call record with a CPR number and the caller's number that ended at `ended`.
    async fn call_with_cpr(store: &Store, id: &str, ended: &str, cpr: &kald_core::Cpr) {
        let ended: Timestamp = ended.parse().unwrap();
        let started = ended
            .checked_sub(jiff::SignedDuration::from_secs(300))
            .unwrap();
        store
            .insert_call(&kald_store::CallRow {
                id: id.into(),
                started,
                caller: Some("+4512345678".into()),
                entry_point: "hovednummer".into(),
                flow_version: None,
                consent: Some(false),
                consent_at: None,
                topic: Some("borgerservice".into()),
                queue: Some("borgerservice".into()),
                cpr: Some(cpr.clone()),
            })
            .await
            .unwrap();
        store
            .finish_call(id, ended, "answered", Some("anna"), false)
            .await
            .unwrap();
    }

    /// The audit rows with this action, in order.
    async fn audited(store: &Store, action: &str) -> Vec<kald_store::AuditRow> {
        store
            .audit(&kald_store::AuditFilter {
                action: Some(action.into()),
                ..kald_store::AuditFilter::default()
            })
            .await
            .unwrap()
    }

    /// Whether a call record still holds its CPR number and caller's number.
    async fn has_pii(store: &Store, id: &str) -> bool {
        let call = store.call(id).await.unwrap().unwrap().call;
        assert_eq!(call.cpr.is_some(), call.caller.is_some(), "{id}");
        // The statistics stay either way.
        assert!(call.topic.is_some() && call.queue.is_some(), "{id}");
        call.cpr.is_some()
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
        let cpr = kald_core::Cpr::parse("0707614285").unwrap();
        let hash = store.cpr_lookup_hash(&cpr);
        // The audit log's oldest entries: one due two years on, 1 June 2027, one a year younger.
        for (at, target) in [
            ("2025-06-01T08:00:00Z", "early"),
            ("2026-06-01T08:00:00Z", "later"),
        ] {
            store
                .append_audit(&kald_store::AuditEntry::new(
                    at.parse().unwrap(),
                    "rikke",
                    "records-officer",
                    "listen",
                    target,
                ))
                .await
                .unwrap();
        }
        // Ended 1 December 2026 10:00 Copenhagen: kept until 1 March 2027 10:00.
        recording(&store, &dir, "old", "c-1", "2026-12-01T09:00:00Z", &policy).await;
        store.set_recording_cpr("old", &cpr).await.unwrap();
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
        // Call records with a CPR number (call_records_with_cpr, 3 months): one alone, one
        // held, one whose recording is linked to a case and not yet journalised.
        call_with_cpr(&store, "c-plain", "2026-12-01T09:00:00Z", &cpr).await;
        call_with_cpr(&store, "c-held", "2026-12-01T09:00:00Z", &cpr).await;
        let call_hold = store
            .add_hold(
                &HoldTarget::Call("c-held".into()),
                "complaint",
                "rikke",
                "2026-12-10T09:00:00Z".parse().unwrap(),
            )
            .await
            .unwrap();
        call_with_cpr(&store, "c-linked", "2026-12-01T09:00:00Z", &cpr).await;
        store
            .insert_recording(&NewRecording {
                id: "linked".into(),
                call_id: "c-linked".into(),
                kind: RecordingKind::Call,
                file: "linked.kald".into(),
                key_id: 1,
                started: "2026-12-01T08:56:00Z".parse().unwrap(),
                agent: Some("anna".into()),
                queue: None,
                topic: None,
                consent: true,
                consent_at: None,
                flow_version: None,
                cpr: Some(cpr.clone()),
            })
            .await
            .unwrap();
        std::fs::write(dir.join("linked.kald"), b"KALDREC1 sealed bytes").unwrap();
        store
            .close_recording(
                "linked",
                "2026-12-01T09:00:00Z".parse().unwrap(),
                std::time::Duration::from_secs(240),
                &[7; 32],
                "2027-03-01T09:00:00Z".parse().unwrap(),
            )
            .await
            .unwrap();
        let link = store
            .add_journal_link(
                "c-linked",
                "27.12.04-P20-1-26",
                None,
                "anna",
                "2026-12-01T09:05:00Z".parse().unwrap(),
            )
            .await
            .unwrap();

        // The day before the deadline nothing goes.
        let clock = crate::clock::Clock::new(Some("2027-03-01T09:00")).unwrap();
        let report = sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert_eq!(report, SweepReport::default());
        assert!(store.recording("old").await.unwrap().is_some());
        assert!(has_pii(&store, "c-plain").await);
        assert_eq!(store.audit(&Default::default()).await.unwrap().len(), 2);

        // Just past the deadline: the old one goes (file and row), a tombstone stays.
        let clock = crate::clock::Clock::new(Some("2027-03-01T10:01")).unwrap();
        let report = sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert_eq!(
            (report.deleted, report.held, report.awaiting_journal),
            (1, 1, 1)
        );
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
        // The deletion is audited: by kald, with the reason and the citizen's CPR hash.
        let deletes = audited(&store, "delete").await;
        assert_eq!(deletes.len(), 1);
        let e = &deletes[0].entry;
        assert_eq!(
            (
                e.actor.as_str(),
                e.role.as_str(),
                e.target.as_str(),
                e.reason.as_deref(),
                e.cpr_hash
            ),
            (
                "kald",
                "system",
                "old",
                Some("retention: 3 months"),
                Some(hash)
            )
        );
        assert_eq!(
            e.at.round(jiff::Unit::Minute).unwrap(),
            clock_at("2027-03-01T10:01")
        );
        // The call record alone loses its CPR number and caller's number; the held one and
        // the one whose recording awaits the case system keep theirs.
        assert_eq!((report.calls_scrubbed, report.calls_kept), (1, 2));
        assert!(!has_pii(&store, "c-plain").await);
        assert!(has_pii(&store, "c-held").await);
        assert!(has_pii(&store, "c-linked").await);
        assert!(store.call_pii_scrubbed("c-plain").await.unwrap().is_some());
        let scrubs = audited(&store, "scrub-call-records").await;
        assert_eq!(scrubs.len(), 1);
        assert_eq!(scrubs[0].entry.cpr_hash, None);
        assert!(scrubs[0]
            .entry
            .reason
            .as_deref()
            .unwrap()
            .contains(" 1 call records"));
        assert!(store.verify_audit().await.unwrap().is_intact());
        // Idempotent: a second pass changes nothing and audits nothing.
        let entries = store.audit(&Default::default()).await.unwrap().len();
        let report = sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert_eq!((report.deleted, report.calls_scrubbed), (0, 0));
        assert!(store.tombstone("old").await.unwrap().is_some());
        assert_eq!(
            store.audit(&Default::default()).await.unwrap().len(),
            entries
        );

        // The younger one goes a day later; the hold is lifted and the held one goes too; the
        // held call record's hold is lifted; the linked recording is unlinked (the citizen's
        // case no longer needs it), so it goes, and then its call record.
        store
            .lift_hold(hold, "rikke", "2027-03-02T08:00:00Z".parse().unwrap())
            .await
            .unwrap();
        store
            .lift_hold(call_hold, "rikke", "2027-03-02T08:00:00Z".parse().unwrap())
            .await
            .unwrap();
        store
            .remove_journal_link(link, "anna", "2027-03-02T08:00:00Z".parse().unwrap())
            .await
            .unwrap();
        let clock = crate::clock::Clock::new(Some("2027-03-02T10:01")).unwrap();
        let report = sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert_eq!((report.deleted, report.calls_scrubbed), (3, 2));
        for id in ["younger", "held", "linked"] {
            assert!(store.recording(id).await.unwrap().is_none(), "{id} stayed");
            assert!(!dir.join(format!("{id}.kald")).exists());
        }
        assert!(!has_pii(&store, "c-held").await);
        assert!(!has_pii(&store, "c-linked").await);
        let mut targets: Vec<String> = audited(&store, "delete")
            .await
            .into_iter()
            .map(|r| r.entry.target)
            .collect();
        targets.sort();
        assert_eq!(targets, ["held", "linked", "old", "younger"]);
        assert_eq!(store.calls_by_cpr(&cpr).await.unwrap(), []);
        assert!(store.verify_audit().await.unwrap().is_intact());

        // A year on the tombstones are purged (one audit entry for the pass), and audit
        // entries past two years with them: the first, from 1 June 2025, not the one from
        // 1 June 2026; what is left still verifies from the anchor.
        let clock = crate::clock::Clock::new(Some("2028-03-03T10:00")).unwrap();
        let report = sweep_once(&store, &policy, &dir, &clock).await.unwrap();
        assert_eq!((report.tombstones_purged, report.audit_purged), (4, 1));
        assert!(store.tombstone("old").await.unwrap().is_none());
        let purges = audited(&store, "purge-tombstones").await;
        assert_eq!(purges.len(), 1);
        assert!(purges[0]
            .entry
            .reason
            .as_deref()
            .unwrap()
            .contains("4 purged"));
        let left = store.audit(&Default::default()).await.unwrap();
        assert!(left.iter().all(|r| r.entry.target != "early"));
        assert!(left.iter().any(|r| r.entry.target == "later"));
        assert_eq!(left[0].id, 2);
        let purge = audited(&store, "purge-audit").await;
        assert_eq!(purge.len(), 1);
        assert_eq!(purge[0].entry.actor, "kald");
        assert!(store.verify_audit().await.unwrap().is_intact());
        // The entry from 1 June 2026 goes after 1 June 2028, not a minute before.
        let clock = crate::clock::Clock::new(Some("2028-06-01T09:59")).unwrap();
        assert_eq!(
            sweep_once(&store, &policy, &dir, &clock)
                .await
                .unwrap()
                .audit_purged,
            0
        );
        let clock = crate::clock::Clock::new(Some("2028-06-01T10:00")).unwrap();
        assert_eq!(
            sweep_once(&store, &policy, &dir, &clock)
                .await
                .unwrap()
                .audit_purged,
            1
        );
        assert!(store.verify_audit().await.unwrap().is_intact());
    }

    /// A pinned clock's instant.
    fn clock_at(local: &str) -> Timestamp {
        crate::clock::Clock::new(Some(local))
            .unwrap()
            .now()
            .timestamp()
            .round(jiff::Unit::Minute)
            .unwrap()
    }

    #[test]
    fn due_cut_offs_invert_calendar_months_with_their_month_ends() {
        let tz = jiff::tz::db().get("Europe/Copenhagen").unwrap();
        let three = kald_recordings::RetentionPeriod::new(3, 0).unwrap();
        let zoned = |s: &str| {
            s.parse::<jiff::civil::DateTime>()
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
        };
        let us = jiff::SignedDuration::from_micros(1);
        // 28 February 2027 10:00: everything that ended up to 29 November 10:00 is due (a
        // prefix), and so is 30 November up to 10:00 (+ 3 months clamps to 28 February), but
        // not 29 November after 10:00 (28 February after 10:00).
        let now = zoned("2027-02-28T10:00");
        assert_eq!(
            due_before(&three, &now),
            zoned("2026-11-29T10:00").timestamp() + us
        );
        assert_eq!(
            latest_due(&three, &now),
            zoned("2026-11-30T10:00").timestamp()
        );
        assert!(is_due(&three, &now, zoned("2026-11-30T09:59").timestamp()));
        assert!(!is_due(&three, &now, zoned("2026-11-29T10:01").timestamp()));
        // Across summer time: 1 March 2027 10:00 (CET) ← 1 December 2026 10:00 (CET); 1 July
        // 2027 10:00 (CEST) ← 1 April 10:00 (CEST).
        for (now, from) in [
            ("2027-03-01T10:00", "2026-12-01T10:00"),
            ("2027-07-01T10:00", "2027-04-01T10:00"),
        ] {
            let now = zoned(now);
            assert_eq!(due_before(&three, &now), zoned(from).timestamp() + us);
            assert_eq!(latest_due(&three, &now), zoned(from).timestamp());
        }
        let two_years = kald_recordings::RetentionPeriod::new(24, 0).unwrap();
        assert_eq!(
            due_before(&two_years, &zoned("2028-06-01T10:00")),
            zoned("2026-06-01T10:00").timestamp() + us
        );
    }

    #[tokio::test]
    async fn access_requests_are_reminded_two_working_days_before_and_when_overdue() {
        let tmp = tempfile::tempdir().unwrap();
        let (keys, _) = kald_core::CprKeys::load_or_create(&tmp.path().join("cpr.key")).unwrap();
        let store = Store::open_data_dir(&tmp.path().join("data"), keys)
            .await
            .unwrap();
        let cpr = kald_core::Cpr::parse("0707614285").unwrap();
        // Received Monday 1 March 2027 under forvaltningsloven: 7 working days, due
        // Wednesday 10 March.
        let id = store
            .open_access_request(
                &kald_store::NewAccessRequest {
                    law: kald_store::AccessLaw::Forvaltningsloven,
                    received: jiff::civil::date(2027, 3, 1),
                    requester: "Jens Hansen".into(),
                    identity_verified_by: "MitID".into(),
                    cpr: cpr.clone(),
                },
                "rikke",
                "2027-03-01T09:00:00Z".parse().unwrap(),
            )
            .await
            .unwrap();
        let params = kald_recordings::DeadlineParams::default();
        let day = |d: i8| jiff::civil::date(2027, 3, d);
        // Monday 8 March, two working days before: reminded.
        let r = remind_access_requests(&store, day(8), &params)
            .await
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].request.0, r[0].deadline), (id, day(10)));
        let line = reminder_line(&r[0]);
        assert_eq!(
            line,
            format!("ALERT: access request {id} is due in 2 working days (2027-03-10)")
        );
        assert!(!line.contains("Jens") && !line.contains("0707"));
        // Tuesday 9 March: no reminder; Saturday 6 March: none.
        assert_eq!(
            remind_access_requests(&store, day(9), &params)
                .await
                .unwrap(),
            []
        );
        assert_eq!(
            remind_access_requests(&store, day(6), &params)
                .await
                .unwrap(),
            []
        );
        // The day itself, and overdue afterwards.
        let r = remind_access_requests(&store, day(10), &params)
            .await
            .unwrap();
        assert_eq!(
            reminder_line(&r[0]),
            format!("ALERT: access request {id} is due today (2027-03-10)")
        );
        let r = remind_access_requests(&store, day(12), &params)
            .await
            .unwrap();
        assert_eq!(
            reminder_line(&r[0]),
            format!(
                "ALERT: access request {id} is overdue by 2 working days (deadline 2027-03-10)"
            )
        );
        // Closed: no more reminders.
        store
            .set_access_state(
                id,
                kald_store::AccessState::Closed,
                "rikke",
                "2027-03-12T09:00:00Z".parse().unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            remind_access_requests(&store, day(12), &params)
                .await
                .unwrap(),
            []
        );
    }
}
