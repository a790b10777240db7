//! The journaliser against a real store, real encrypted recordings, a drop folder in a
//! temporary directory and a webhook server on 127.0.0.1; time is pinned.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use kald_core::{Cpr, CprKeys};
use kald_recordings::format::FRAME_SAMPLES;
use kald_recordings::{ChunkWriter, Policy};
use kald_store::{
    AuditFilter, CallRow, JournalExportState, JournalState, NewRecording, RecordingKind,
};

use super::*;

/// The test citizen; must appear in the manifest and nowhere else.
const CPR: &str = "0707614285";
/// A valid case number under the default pattern.
const CASE: &str = "27.12.04-P20-1-26";
/// Frames (20 ms) recorded: 2.5 s.
const FRAMES: usize = 125;

struct Fixture {
    _tmp: tempfile::TempDir,
    store: Store,
    keys: RecordingKeys,
    rec_dir: PathBuf,
    drop: PathBuf,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let rec_dir = tmp.path().join("recordings");
    let drop = tmp.path().join("drop");
    std::fs::create_dir_all(&rec_dir).unwrap();
    std::fs::create_dir_all(&drop).unwrap();
    let (cpr_keys, _) = CprKeys::load_or_create(&tmp.path().join("cpr.key")).unwrap();
    let store = Store::open_data_dir(&tmp.path().join("data"), cpr_keys)
        .await
        .unwrap();
    Fixture {
        keys: RecordingKeys::generate().unwrap(),
        _tmp: tmp,
        store,
        rec_dir,
        drop,
    }
}

/// The sample at frame `f`, stereo pair `i`, channel `ch` (0 citizen, 1 agent).
fn sample(f: usize, i: usize, ch: usize) -> i16 {
    let v = ((f * 160 + i) % 2000) as i16;
    if ch == 0 {
        v
    } else {
        -v
    }
}

/// Records `FRAMES` frames into `<rec_dir>/<id>.kald`, catalogues the call (with the test
/// CPR) and the recording, ended at `ended`, with the policy's deadline.
async fn recording(f: &Fixture, id: &str, call: &str, ended: &str) {
    let file = format!("{id}.kald");
    let out = std::fs::File::create(f.rec_dir.join(&file)).unwrap();
    let mut w = ChunkWriter::new(out, &f.keys, [9; 16]).unwrap();
    for frame in 0..FRAMES {
        let samples: Vec<i16> = (0..FRAME_SAMPLES)
            .map(|k| sample(frame, k / 2, k % 2))
            .collect();
        w.push_frame(&samples).unwrap();
    }
    let finished = w.finish().unwrap();
    let ended: Timestamp = ended.parse().unwrap();
    let started = ended
        .checked_sub(jiff::SignedDuration::try_from(finished.duration).unwrap())
        .unwrap();
    let cpr = Cpr::parse(CPR).unwrap();
    f.store
        .insert_call(&CallRow {
            id: call.into(),
            started,
            caller: None,
            entry_point: "hovednummer".into(),
            flow_version: None,
            consent: Some(true),
            consent_at: None,
            topic: None,
            queue: None,
            cpr: Some(cpr.clone()),
        })
        .await
        .unwrap();
    f.store
        .insert_recording(&NewRecording {
            id: id.into(),
            call_id: call.into(),
            kind: RecordingKind::Call,
            file,
            key_id: u32::from(f.keys.current_key_id()),
            started,
            agent: Some("anna".into()),
            queue: Some("sygedagpenge".into()),
            topic: None,
            consent: true,
            consent_at: None,
            flow_version: None,
            cpr: Some(cpr),
        })
        .await
        .unwrap();
    let tz = jiff::tz::db().get("Europe/Copenhagen").unwrap();
    let until = Policy::default()
        .retention
        .recordings
        .deadline(ended, &tz)
        .unwrap();
    f.store
        .close_recording(id, ended, finished.duration, &finished.sha256, until)
        .await
        .unwrap();
}

fn journaliser(f: &Fixture, config: JournalConfig) -> Journaliser {
    Journaliser::new(f.store.clone(), config, f.keys.clone(), f.rec_dir.clone()).unwrap()
}

/// Recording `rec1` of call `c-1` (ended 09:00), linked to [`CASE`] at 09:10 and queued for
/// `targets` at 09:20 (1 December 2026): the link, the queueing time and the outbox rows.
async fn queued(f: &Fixture, targets: &[JournalTarget]) -> (i64, Timestamp, Vec<i64>) {
    recording(f, "rec1", "c-1", "2026-12-01T09:00:00Z").await;
    let link = f
        .store
        .add_journal_link("c-1", CASE, None, "anna", ts("2026-12-01T09:10:00Z"))
        .await
        .unwrap();
    let t0 = ts("2026-12-01T09:20:00Z");
    let ids = f
        .store
        .queue_journal_exports("rec1", link, targets, "rikke", t0)
        .await
        .unwrap();
    (link, t0, ids)
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn secs(t: Timestamp, s: i64) -> Timestamp {
    t.checked_add(jiff::SignedDuration::from_secs(s)).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Checks a WAV: stereo 16-bit 8 kHz, `FRAMES` × 20 ms long, the samples recorded.
fn check_wav(bytes: &[u8]) {
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).unwrap();
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    assert_eq!(reader.duration() as usize, FRAMES * 160);
    let samples: Vec<i16> = reader.samples::<i16>().map(Result::unwrap).collect();
    assert_eq!(samples.len(), FRAMES * FRAME_SAMPLES);
    for (k, s) in samples.iter().enumerate() {
        let (pair, ch) = (k / 2, k % 2);
        assert_eq!(*s, sample(pair / 160, pair % 160, ch), "sample {k}");
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn journalise_rows(store: &Store) -> Vec<kald_store::AuditRow> {
    store
        .audit(&AuditFilter {
            action: Some("journalise".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
}

#[test]
fn config_pattern_targets_and_webhook_rules() {
    let c = JournalConfig::default();
    assert!(c.valid_case_number(CASE));
    assert!(c.valid_case_number("00.01.00-Å01-123-25"));
    for bad in [
        "0707614285",
        "27.12.04-P20-1-2026",
        "x27.12.04-P20-1-26",
        "",
    ] {
        assert!(!c.valid_case_number(bad), "{bad}");
    }
    assert!(c.targets().is_empty());

    let c = JournalConfig::from_file(FileJournal {
        case_number_pattern: Some(r"^S\d{4}-\d{4,}$".into()),
        drop_folder: Some("/srv/esdh/ind".into()),
        webhook: Some("https://esdh.example.invalid/api/documents".into()),
        webhook_token: Some("hemmelig-token".into()),
        webhook_timeout_seconds: Some(5),
    })
    .unwrap();
    assert!(c.valid_case_number("S2026-00042") && !c.valid_case_number(CASE));
    assert_eq!(
        c.targets(),
        vec![JournalTarget::Folder, JournalTarget::Webhook]
    );
    assert_eq!(c.webhook_timeout, Duration::from_secs(5));
    let debug = format!("{c:?}");
    assert!(
        !debug.contains("hemmelig") && !debug.contains("/api/documents"),
        "{debug}"
    );

    let err = |file: FileJournal| JournalConfig::from_file(file).unwrap_err().to_string();
    let e = err(FileJournal {
        case_number_pattern: Some("^(unclosed".into()),
        ..FileJournal::default()
    });
    assert!(
        e.contains("case_number_pattern") && e.contains("regular expression"),
        "{e}"
    );
    let e = err(FileJournal {
        webhook: Some("http://esdh.example.invalid/x".into()),
        ..FileJournal::default()
    });
    assert!(e.contains("https"), "{e}");
    let e = err(FileJournal {
        webhook: Some("https://user:pw@esdh.example.invalid/x".into()),
        ..FileJournal::default()
    });
    assert!(e.contains("webhook_token") && !e.contains("pw@"), "{e}");
    let e = err(FileJournal {
        webhook_token: Some("t".into()),
        ..FileJournal::default()
    });
    assert!(e.contains("webhook is not"), "{e}");
    for ok in [
        "http://127.0.0.1:9000/x",
        "http://localhost/x",
        "http://[::1]:80/",
    ] {
        JournalConfig::from_file(FileJournal {
            webhook: Some(ok.into()),
            ..FileJournal::default()
        })
        .unwrap();
    }
}

#[tokio::test]
async fn config_file_journal_section() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("kald.toml");
    std::fs::write(
        &f,
        "[journal]\ncase_number_pattern = '^S\\d+$'\ndrop_folder = '/srv/esdh'\n",
    )
    .unwrap();
    let c = crate::config::Config::load(&crate::config::Flags {
        config: Some(f.clone()),
        ..Default::default()
    })
    .unwrap();
    assert!(c.journal.valid_case_number("S42"));
    assert_eq!(c.journal.targets(), vec![JournalTarget::Folder]);
    std::fs::write(&f, "[journal]\ncase_number_pattern = '['\n").unwrap();
    let e = crate::config::Config::load(&crate::config::Flags {
        config: Some(f),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("case_number_pattern"), "{e}");
}

#[tokio::test]
async fn drop_folder_gets_an_owner_only_wav_and_manifest() {
    let f = fixture().await;
    recording(&f, "rec1", "c-1", "2026-12-01T09:00:00Z").await;
    let link = f
        .store
        .add_journal_link(
            "c-1",
            CASE,
            Some("sygemelding"),
            "anna",
            ts("2026-12-01T09:10:00Z"),
        )
        .await
        .unwrap();
    let t0 = ts("2026-12-01T09:20:00Z");
    let ids = f
        .store
        .queue_journal_exports("rec1", link, &[JournalTarget::Folder], "rikke", t0)
        .await
        .unwrap();
    let j = journaliser(
        &f,
        JournalConfig {
            drop_folder: Some(f.drop.clone()),
            ..JournalConfig::default()
        },
    );
    // Not due a second early.
    assert_eq!(j.step(secs(t0, -1)).await.unwrap(), StepReport::default());
    let report = j.step(t0).await.unwrap();
    assert_eq!(report.acknowledged, 1, "{report:?}");

    // Exactly two files, no temporary left, both owner-only.
    let mut names: Vec<String> = std::fs::read_dir(&f.drop)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let base = format!("kald-20261201-095957-rec1-l{link}");
    assert_eq!(names, vec![format!("{base}.json"), format!("{base}.wav")]);
    for n in &names {
        assert_eq!(mode(&f.drop.join(n)), 0o600, "{n}");
        assert!(!n.contains(CPR));
    }
    let wav = std::fs::read(f.drop.join(format!("{base}.wav"))).unwrap();
    check_wav(&wav);
    assert!(!contains(&wav, CPR) && !contains(&wav, "070761-4285"));

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.drop.join(format!("{base}.json"))).unwrap())
            .unwrap();
    assert_eq!(manifest["case_number"], CASE);
    assert_eq!(manifest["cpr"], CPR);
    assert_eq!(manifest["recorded_at"], "2026-12-01T09:59:57+01:00");
    assert_eq!(manifest["ended_at"], "2026-12-01T10:00:00+01:00");
    assert_eq!(manifest["duration_ms"], 2500);
    assert_eq!(manifest["agent"], "anna");
    assert_eq!(manifest["note"], "sygemelding");
    assert_eq!(manifest["journalised_by"], "rikke");
    assert_eq!(manifest["file"], format!("{base}.wav"));
    assert_eq!(manifest["recording_id"], "rec1");
    let sha: String = Sha256::digest(&wav)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(manifest["sha256"], sha);
    assert_eq!(manifest["kald_version"], env!("CARGO_PKG_VERSION"));

    // Recorded: acknowledged at t0, one attempt, the recording exported, audited.
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts, row.acknowledged),
        (JournalExportState::Acknowledged, 1, Some(t0))
    );
    assert_eq!(
        f.store.recording("rec1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );
    let audit = journalise_rows(&f.store).await;
    assert_eq!(audit.len(), 1);
    let e = &audit[0].entry;
    assert_eq!(
        (e.actor.as_str(), e.role.as_str(), e.target.as_str(), e.at),
        ("kald", "system", "rec1", t0)
    );
    assert_eq!(
        e.reason.as_deref(),
        Some(&*format!("case {CASE} via folder"))
    );
    assert_eq!(
        e.cpr_hash,
        Some(f.store.cpr_lookup_hash(&Cpr::parse(CPR).unwrap()))
    );
    // Nothing more to do.
    assert_eq!(j.step(secs(t0, 3600)).await.unwrap(), StepReport::default());
}

#[tokio::test]
async fn a_folder_that_cannot_be_written_is_retried() {
    let f = fixture().await;
    let (_, t0, ids) = queued(&f, &[JournalTarget::Folder]).await;
    let missing = f.drop.join("not-mounted");
    let j = journaliser(
        &f,
        JournalConfig {
            drop_folder: Some(missing.clone()),
            ..JournalConfig::default()
        },
    );
    assert_eq!(j.step(t0).await.unwrap().failed, 1);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(row.state, JournalExportState::Pending);
    assert_eq!(row.next_attempt, secs(t0, 10));
    let error = row.last_error.unwrap();
    assert!(
        error.contains("drop folder") && !error.contains(CPR),
        "{error}"
    );
    assert_eq!(
        f.store.recording("rec1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    // The share comes back: the next attempt succeeds.
    std::fs::create_dir_all(&missing).unwrap();
    assert_eq!(j.step(secs(t0, 10)).await.unwrap().acknowledged, 1);
    assert_eq!(std::fs::read_dir(&missing).unwrap().count(), 2);
}

/// One request the test webhook got: its `Authorization` and `Idempotency-Key` headers and
/// its body (parsed as JSON, after checking it is exactly as long as its `Content-Length`).
type Request = (Option<String>, Option<String>, serde_json::Value);

/// What the test webhook saw.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    requests: Mutex<Vec<Request>>,
}

/// A webhook on 127.0.0.1 that answers 500 twice, then 200 with a receipt.
async fn webhook_server() -> (String, Arc<Seen>) {
    use axum::http::{HeaderMap, StatusCode};
    let seen = Arc::new(Seen::default());
    let state = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/documents",
        axum::routing::post(move |headers: HeaderMap, raw: axum::body::Bytes| {
            let seen = Arc::clone(&state);
            async move {
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                // The body is streamed with its length announced up front, not chunked.
                assert_eq!(
                    header("content-length"),
                    Some(raw.len().to_string()),
                    "Content-Length"
                );
                assert_eq!(header("transfer-encoding"), None);
                let body: serde_json::Value = serde_json::from_slice(&raw).unwrap();
                seen.requests.lock().unwrap().push((
                    header("authorization"),
                    header("idempotency-key"),
                    body,
                ));
                match seen.calls.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => (StatusCode::INTERNAL_SERVER_ERROR, "busy".to_owned()),
                    _ => (StatusCode::OK, r#"{"document_id":"DOC-42"}"#.to_owned()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/documents"), seen)
}

#[tokio::test]
async fn webhook_fails_twice_then_acknowledges() {
    use base64::Engine as _;
    let f = fixture().await;
    let (link, t0, ids) = queued(&f, &[JournalTarget::Webhook]).await;
    let (url, seen) = webhook_server().await;
    let j = journaliser(
        &f,
        JournalConfig::from_file(FileJournal {
            webhook: Some(url),
            webhook_token: Some("s3cret".into()),
            webhook_timeout_seconds: Some(10),
            ..FileJournal::default()
        })
        .unwrap(),
    );

    // 1st attempt: 500, tried again after 10 s.
    assert_eq!(j.step(t0).await.unwrap().failed, 1);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state,
            row.attempts,
            row.next_attempt,
            row.last_error.as_deref()
        ),
        (
            JournalExportState::Pending,
            1,
            secs(t0, 10),
            Some("webhook: answered HTTP 500")
        )
    );
    // Not before.
    assert_eq!(j.step(secs(t0, 9)).await.unwrap(), StepReport::default());
    assert_eq!(seen.calls.load(Ordering::SeqCst), 1);
    // 2nd: 500 again, next after 30 s more.
    assert_eq!(j.step(secs(t0, 10)).await.unwrap().failed, 1);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!((row.attempts, row.next_attempt), (2, secs(t0, 40)));
    assert_eq!(
        f.store.recording("rec1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    assert!(journalise_rows(&f.store).await.is_empty());
    assert_eq!(j.step(secs(t0, 39)).await.unwrap(), StepReport::default());
    // 3rd: 200 with a receipt.
    assert_eq!(j.step(secs(t0, 40)).await.unwrap().acknowledged, 1);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (
            row.state,
            row.attempts,
            row.receipt.as_deref(),
            row.acknowledged,
            row.last_error.as_deref()
        ),
        (
            JournalExportState::Acknowledged,
            3,
            Some("DOC-42"),
            Some(secs(t0, 40)),
            None
        )
    );
    assert_eq!(
        f.store.recording("rec1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );
    let audit = journalise_rows(&f.store).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        audit[0].entry.reason.as_deref(),
        Some(&*format!("case {CASE} via webhook, receipt DOC-42"))
    );
    // No more requests, ever.
    assert_eq!(
        j.step(secs(t0, 100_000)).await.unwrap(),
        StepReport::default()
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 3);

    // Every request: the token, the same idempotency key, the manifest and the WAV.
    let requests = seen.requests.lock().unwrap();
    assert_eq!(requests.len(), 3);
    let key = format!("kald-20261201-095957-rec1-l{link}");
    for (auth, idem, body) in requests.iter() {
        assert_eq!(auth.as_deref(), Some("Bearer s3cret"));
        assert_eq!(idem.as_deref(), Some(key.as_str()));
        assert_eq!(body["manifest"]["case_number"], CASE);
        assert_eq!(body["manifest"]["cpr"], CPR);
        assert_eq!(body["manifest"]["file"], format!("{key}.wav"));
        let wav = base64::engine::general_purpose::STANDARD
            .decode(body["wav_base64"].as_str().unwrap())
            .unwrap();
        check_wav(&wav);
        let sha: String = Sha256::digest(&wav)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(body["manifest"]["sha256"], sha);
    }
}

#[tokio::test]
async fn a_webhook_that_does_not_answer_is_a_failure() {
    let f = fixture().await;
    let (_, t0, ids) = queued(&f, &[JournalTarget::Webhook]).await;
    // A listener on loopback that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            open.push(s);
        }
    });
    let mut config = JournalConfig::from_file(FileJournal {
        webhook: Some(format!("http://{addr}/x")),
        ..FileJournal::default()
    })
    .unwrap();
    config.webhook_timeout = Duration::from_millis(300);
    let j = journaliser(&f, config);
    assert_eq!(j.step(t0).await.unwrap().failed, 1);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        row.last_error.as_deref(),
        Some("webhook: no answer in time")
    );
    held.abort();
}

#[tokio::test]
async fn a_gone_recording_cancels_its_export() {
    let f = fixture().await;
    let (_, t0, ids) = queued(&f, &[JournalTarget::Folder]).await;
    f.store
        .erase_recording("rec1", "erased", t0, secs(t0, 86_400))
        .await
        .unwrap()
        .unwrap();
    let j = journaliser(
        &f,
        JournalConfig {
            drop_folder: Some(f.drop.clone()),
            ..JournalConfig::default()
        },
    );
    assert_eq!(j.step(t0).await.unwrap().cancelled, 1);
    let row = f.store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(row.state, JournalExportState::Cancelled);
    assert_eq!(std::fs::read_dir(&f.drop).unwrap().count(), 0);
}

#[tokio::test]
async fn linked_recordings_outlive_their_deadline_until_journalised() {
    let f = fixture().await;
    let policy = Policy::default();
    // Ended 1 December 2026 10:00 Copenhagen: due 1 March 2027 10:00.
    recording(&f, "linked", "c-1", "2026-12-01T09:00:00Z").await;
    recording(&f, "plain", "c-2", "2026-12-01T09:00:00Z").await;
    let link = f
        .store
        .add_journal_link("c-1", CASE, None, "anna", ts("2026-12-01T09:10:00Z"))
        .await
        .unwrap();

    // Past the deadline: the plain one goes; the linked one stays, file and row.
    let clock = crate::clock::Clock::new(Some("2027-03-01T10:01")).unwrap();
    crate::recording::sweep_once(&f.store, &policy, &f.rec_dir, &clock)
        .await
        .unwrap();
    assert!(f.store.recording("plain").await.unwrap().is_none());
    assert!(!f.rec_dir.join("plain.kald").exists());
    let kept = f.store.recording("linked").await.unwrap().unwrap();
    assert_eq!(kept.journal, JournalState::Linked);
    assert!(f.rec_dir.join("linked.kald").exists());
    // A week on, still there.
    let clock = crate::clock::Clock::new(Some("2027-03-08T10:01")).unwrap();
    crate::recording::sweep_once(&f.store, &policy, &f.rec_dir, &clock)
        .await
        .unwrap();
    assert!(f.store.recording("linked").await.unwrap().is_some());
    assert!(f.rec_dir.join("linked.kald").exists());

    // Journalised to the drop folder, then the next sweep deletes kald's copy; the case
    // system's stays.
    let now = ts("2027-03-08T09:30:00Z");
    f.store
        .queue_journal_exports("linked", link, &[JournalTarget::Folder], "rikke", now)
        .await
        .unwrap();
    let j = journaliser(
        &f,
        JournalConfig {
            drop_folder: Some(f.drop.clone()),
            ..JournalConfig::default()
        },
    );
    assert_eq!(j.step(now).await.unwrap().acknowledged, 1);
    let clock = crate::clock::Clock::new(Some("2027-03-08T10:40")).unwrap();
    crate::recording::sweep_once(&f.store, &policy, &f.rec_dir, &clock)
        .await
        .unwrap();
    assert!(f.store.recording("linked").await.unwrap().is_none());
    assert!(!f.rec_dir.join("linked.kald").exists());
    assert_eq!(
        f.store.tombstone("linked").await.unwrap().unwrap().reason,
        "retention"
    );
    let base = format!("kald-20261201-095957-linked-l{link}");
    let wav = std::fs::read(f.drop.join(format!("{base}.wav"))).unwrap();
    check_wav(&wav);
    assert!(f.drop.join(format!("{base}.json")).exists());
}

#[tokio::test]
async fn nudging_wakes_the_running_journaliser() {
    let f = fixture().await;
    recording(&f, "rec1", "c-1", "2026-12-01T09:00:00Z").await;
    let link = f
        .store
        .add_journal_link("c-1", CASE, None, "anna", ts("2026-12-01T09:10:00Z"))
        .await
        .unwrap();
    let j = journaliser(
        &f,
        JournalConfig {
            drop_folder: Some(f.drop.clone()),
            ..JournalConfig::default()
        },
    );
    let handle = JournalHandle::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let clock = crate::clock::Clock::new(None).unwrap();
    let task = tokio::spawn(run(j, handle.clone(), clock, shutdown.clone()));
    // Let the first (empty) step pass, then queue and nudge: done well before the 5 s poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.store
        .queue_journal_exports(
            "rec1",
            link,
            &[JournalTarget::Folder],
            "rikke",
            Timestamp::now(),
        )
        .await
        .unwrap();
    // Clones share one notification (the API holds one).
    assert!(Arc::ptr_eq(&handle.notify(), &handle.clone().notify()));
    handle.nudge();
    let started = std::time::Instant::now();
    while f.store.recording("rec1").await.unwrap().unwrap().journal != JournalState::Exported {
        assert!(started.elapsed() < Duration::from_secs(3), "not woken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
}
