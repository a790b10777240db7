//! Every store method against SQLite (a temporary directory) and PostgreSQL.
//!
//! Each check is one `async fn(&TestDb)`; `on_both!` turns it into `<check>::sqlite` and
//! `<check>::postgres` tests. The PostgreSQL variant runs when `KALD_TEST_POSTGRES_URL` names a
//! server (`tests/run.sh` starts one) and gives each test its own schema, so tests run in
//! parallel; without the URL it prints a notice and skips, unless
//! `KALD_TEST_POSTGRES_REQUIRED=1` (set by `tests/run.sh`) makes that a failure.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::json;
use sqlx::{Connection, Executor, PgConnection, Row};

use super::*;

/// The test citizen; its digits must never reach the database in clear.
const CPR: &str = "0707614285";
/// The same, as written with a dash.
const CPR_DASHED: &str = "070761-4285";
/// Another citizen.
const OTHER_CPR: &str = "0101901234";

fn keys() -> CprKeys {
    CprKeys::from_hex(
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f",
    )
    .unwrap()
}

fn cpr() -> Cpr {
    Cpr::parse(CPR).unwrap()
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_767_600_000 + second).unwrap()
}

/// Where a test's database lives, so it can be reopened and dumped.
enum Location {
    /// A temporary data directory holding `kald.db`.
    Sqlite(tempfile::TempDir),
    /// A schema of its own in the test PostgreSQL database.
    Postgres {
        /// The server URL from the environment.
        base: String,
        /// The test's schema.
        schema: String,
        /// `base` with the schema as search path.
        url: String,
    },
}

/// A store on a fresh database of one backend.
struct TestDb {
    /// Where the database is.
    location: Location,
    /// The store, opened with [`keys`].
    store: Store,
}

impl TestDb {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_data_dir(dir.path(), keys()).await.unwrap();
        Self {
            location: Location::Sqlite(dir),
            store,
        }
    }

    async fn postgres(name: &str) -> Option<Self> {
        let Ok(base) = std::env::var("KALD_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("KALD_TEST_POSTGRES_REQUIRED").as_deref() != Ok("1"),
                "KALD_TEST_POSTGRES_REQUIRED=1 but KALD_TEST_POSTGRES_URL is not set"
            );
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {name} on PostgreSQL: KALD_TEST_POSTGRES_URL is not set \
                 (tests/run.sh starts a server and sets it)"
            );
            return None;
        };
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .subsec_nanos();
        let schema = format!(
            "t_{name}_{:x}_{:x}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&base).await.unwrap();
        conn.execute(format!("CREATE SCHEMA {schema}").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::open(&url, keys()).await.unwrap();
        Some(Self {
            location: Location::Postgres { base, schema, url },
            store,
        })
    }

    /// Opens the same database again, as after a restart.
    async fn reopen(&self, keys: CprKeys) -> Store {
        match &self.location {
            Location::Sqlite(dir) => Store::open_data_dir(dir.path(), keys).await.unwrap(),
            Location::Postgres { url, .. } => Store::open(url, keys).await.unwrap(),
        }
    }

    /// Everything stored, as bytes: the SQLite files, or every PostgreSQL row as text.
    /// Closes the store first so SQLite's write-ahead log is folded into the file.
    async fn dump(&self) -> Vec<u8> {
        self.store.close().await;
        match &self.location {
            Location::Sqlite(dir) => {
                // The last connection closes on sqlx's worker thread, after `close` returns:
                // wait until it has folded the log into the file and removed it.
                let wal = dir.path().join(format!("{SQLITE_FILE}-wal"));
                for _ in 0..250 {
                    if !wal.exists() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    match std::fs::read(entry.unwrap().path()) {
                        Ok(file) => bytes.extend(file),
                        // The shared-memory file may go as the connection finishes closing.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                bytes
            }
            Location::Postgres { url, .. } => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                let mut text = String::new();
                for table in [
                    "agents",
                    "agent_skills",
                    "agent_states",
                    "queue_events",
                    "calls",
                    "recordings",
                    "holds",
                    "tombstones",
                    "audit_log",
                    "audit_anchor",
                    "_sqlx_migrations",
                ] {
                    let rows = sqlx::query(&format!("SELECT t::text FROM {table} t"))
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                    for row in rows {
                        text.push_str(&row.get::<String, _>(0));
                        text.push('\n');
                    }
                }
                conn.close().await.unwrap();
                text.into_bytes()
            }
        }
    }

    async fn cleanup(self) {
        self.store.close().await;
        if let Location::Postgres { base, schema, .. } = &self.location {
            let mut conn = PgConnection::connect(base).await.unwrap();
            conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
    }
}

/// Runs each named check against SQLite and PostgreSQL, as `<check>::sqlite` and
/// `<check>::postgres`.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test]
            async fn sqlite() {
                let db = super::TestDb::sqlite().await;
                super::$check(&db).await;
                db.cleanup().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = super::TestDb::postgres(stringify!($check)).await else {
                    return;
                };
                super::$check(&db).await;
                db.cleanup().await;
            }
        }
    )*};
}

/// Journal links and the outbox (issue 9).
mod journal;

on_both!(
    agents,
    agent_states,
    sip_bindings_snapshot,
    queue_events,
    queue_event_batch,
    calls,
    calls_by_cpr,
    cpr_never_stored_in_clear,
    restart_finds_everything,
    wrong_keys_cannot_read_cpr,
    recordings_lifecycle,
    recordings_by_cpr_and_call,
    withdrawal_deletes_without_tombstones,
    sweep_lists_due_recordings_with_holds,
    sweep_pages_past_held_items,
    holds_by_each_scope_block_deletion,
    delete_writes_tombstones_idempotently,
    delete_in_batches,
    purge_tombstones_respects_holds,
    hold_listing_and_lifting,
    recordings_survive_restart_and_key_rotation,
    audit_append_and_verify,
    audit_filters,
    audit_edited_row_is_detected,
    audit_deleted_middle_row_is_detected,
    audit_chain_ok,
    audit_purge_keeps_the_chain_verifiable,
);

fn anna() -> AgentRow {
    AgentRow {
        id: "anna".into(),
        display_name: "Anna Jensen".into(),
        skills: vec![("dagpenge".into(), 5), ("sygedagpenge".into(), 2)],
    }
}

fn bo() -> AgentRow {
    AgentRow {
        id: "bo".into(),
        display_name: "Bo Nielsen".into(),
        skills: vec![],
    }
}

async fn agents(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.agents().await.unwrap(), []);
    store.upsert_agent(&bo()).await.unwrap();
    store.upsert_agent(&anna()).await.unwrap();
    assert_eq!(store.agents().await.unwrap(), [anna(), bo()]);

    // Upserting replaces the name and the whole skill set.
    let anna2 = AgentRow {
        id: "anna".into(),
        display_name: "Anna J. Jensen".into(),
        skills: vec![("kontanthjaelp".into(), 255), ("dagpenge".into(), 0)],
    };
    store.upsert_agent(&anna2).await.unwrap();
    let mut expected = anna2.clone();
    expected.skills.sort();
    assert_eq!(store.agents().await.unwrap(), [expected, bo()]);
}

async fn agent_states(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.agent_states().await.unwrap(), []);
    store
        .save_agent_state("bo", "available", None, at(1))
        .await
        .unwrap();
    store
        .save_agent_state("anna", "available", None, at(2))
        .await
        .unwrap();
    store
        .save_agent_state("anna", "paused", Some("sparring"), at(3))
        .await
        .unwrap();
    let since = Timestamp::from_microsecond(at(4).as_microsecond() + 123_456).unwrap();
    store
        .save_agent_state("bo", "wrapup", None, since)
        .await
        .unwrap();
    assert_eq!(
        store.agent_states().await.unwrap(),
        [
            AgentStateRow {
                agent: "anna".into(),
                state: "paused".into(),
                reason: Some("sparring".into()),
                since: at(3),
            },
            AgentStateRow {
                agent: "bo".into(),
                state: "wrapup".into(),
                reason: None,
                since
            },
        ]
    );
}

fn event(second: i64, call: &str, event: &str, data: serde_json::Value) -> QueueEventRow {
    QueueEventRow {
        at: at(second),
        call_id: call.into(),
        queue: Some("dagpenge".into()),
        agent: None,
        event: event.into(),
        data,
    }
}

async fn queue_events(db: &TestDb) {
    let store = &db.store;
    let enter = event(
        10,
        "c-1",
        "ENTER",
        json!({ "topic": "dagpenge", "position": 1 }),
    );
    let ring = QueueEventRow {
        agent: Some("anna".into()),
        ..event(12, "c-1", "RING", json!({}))
    };
    let answer = QueueEventRow {
        agent: Some("anna".into()),
        ..event(15, "c-1", "ANSWER", json!({ "wait_ms": 5000 }))
    };
    // Appended out of time order: reads follow the id (append) order.
    let late = event(11, "c-2", "ENTER", json!({ "topic": "dagpenge" }));
    let login = QueueEventRow {
        call_id: String::new(),
        queue: None,
        agent: Some("bo".into()),
        ..event(20, "", "LOGIN", json!(null))
    };
    let mut ids = Vec::new();
    for e in [&enter, &ring, &answer, &late, &login] {
        ids.push(store.append_queue_event(e).await.unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let all = store.queue_events(at(0), at(100)).await.unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    let rows: Vec<_> = all.into_iter().map(|e| e.row).collect();
    assert_eq!(
        rows,
        [enter.clone(), ring.clone(), answer, late.clone(), login]
    );

    // `from` is inclusive, `to` exclusive.
    let window = store.queue_events(at(10), at(15)).await.unwrap();
    let rows: Vec<_> = window.into_iter().map(|e| e.row).collect();
    assert_eq!(rows, [enter, ring, late]);
    assert_eq!(store.queue_events(at(21), at(100)).await.unwrap(), []);
}

async fn queue_event_batch(db: &TestDb) {
    let store = &db.store;
    let first = store
        .append_queue_event(&event(1, "c-0", "ENTER", json!({})))
        .await
        .unwrap();
    let burst: Vec<_> = (0..50)
        .map(|i| event(2 + i / 10, &format!("c-{i}"), "ENTER", json!({ "n": i })))
        .collect();
    let ids = store.append_queue_events(&burst).await.unwrap();
    assert_eq!(ids.len(), 50);
    assert!(ids[0] > first && ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(
        store.append_queue_events(&[]).await.unwrap(),
        Vec::<i64>::new()
    );

    let read = store.queue_events(at(2), at(100)).await.unwrap();
    assert_eq!(read.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(read.into_iter().map(|e| e.row).collect::<Vec<_>>(), burst);
}

fn call_row(id: &str, second: i64, cpr: Option<Cpr>) -> CallRow {
    CallRow {
        id: id.into(),
        started: at(second),
        caller: Some("+4512345678".into()),
        entry_point: "+4570101010".into(),
        flow_version: Some("jobcenter@3".into()),
        consent: Some(true),
        consent_at: Some(at(second + 5)),
        topic: Some("sygedagpenge".into()),
        queue: Some("sygedagpenge".into()),
        cpr,
    }
}

async fn calls(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.call("c-1").await.unwrap(), None);

    // A call arrives knowing little; the IVR fills in the rest.
    let bare = CallRow {
        id: "c-1".into(),
        started: at(0),
        caller: None,
        entry_point: "+4570101010".into(),
        flow_version: None,
        consent: None,
        consent_at: None,
        topic: None,
        queue: None,
        cpr: None,
    };
    store.insert_call(&bare).await.unwrap();
    assert_eq!(
        store.call("c-1").await.unwrap(),
        Some(CallRecord {
            call: bare.clone(),
            end: None,
            consent_withdrawn: None,
            cpr_corrected: None,
            pii_scrubbed: None,
        })
    );
    store.set_call_consent("c-1", true, at(5)).await.unwrap();
    store.set_call_consent("c-1", false, at(9)).await.unwrap(); // withdrawn
    store.set_call_cpr("c-1", &cpr()).await.unwrap();
    store
        .set_call_route("c-1", Some("dagpenge"), Some("dagpenge"))
        .await
        .unwrap();
    let running = CallRow {
        consent: Some(false),
        consent_at: Some(at(9)),
        topic: Some("dagpenge".into()),
        queue: Some("dagpenge".into()),
        cpr: Some(cpr()),
        ..bare.clone()
    };
    assert_eq!(
        store.call("c-1").await.unwrap(),
        Some(CallRecord {
            call: running.clone(),
            end: None,
            consent_withdrawn: None,
            cpr_corrected: None,
            pii_scrubbed: None,
        })
    );

    store
        .finish_call("c-1", at(300), "answered", Some("anna"), true)
        .await
        .unwrap();
    let end = CallEnd {
        ended: at(300),
        outcome: "answered".into(),
        agent: Some("anna".into()),
        transferred: true,
    };
    assert_eq!(
        store.call("c-1").await.unwrap(),
        Some(CallRecord {
            call: running,
            end: Some(end),
            consent_withdrawn: None,
            cpr_corrected: None,
            pii_scrubbed: None,
        })
    );

    // A full row in one go, and an abandoned call without agent.
    let full = call_row("c-2", 60, Some(cpr()));
    store.insert_call(&full).await.unwrap();
    store
        .finish_call("c-2", at(90), "abandoned", None, false)
        .await
        .unwrap();
    let record = store.call("c-2").await.unwrap().unwrap();
    assert_eq!(record.call, full);
    assert_eq!(
        record.end,
        Some(CallEnd {
            ended: at(90),
            outcome: "abandoned".into(),
            agent: None,
            transferred: false
        })
    );

    // Unknown calls and duplicates are errors without personal data.
    for err in [
        store
            .finish_call("c-9", at(1), "answered", None, false)
            .await
            .unwrap_err(),
        store.set_call_cpr("c-9", &cpr()).await.unwrap_err(),
        store
            .set_call_consent("c-9", true, at(1))
            .await
            .unwrap_err(),
        store.set_call_route("c-9", None, None).await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::NoSuchCall { id } if id == "c-9"),
            "{err:?}"
        );
    }
    let dup = store.insert_call(&full).await.unwrap_err();
    assert!(
        matches!(
            dup,
            StoreError::Query {
                action: "insert a call",
                ..
            }
        ),
        "{dup:?}"
    );
    for text in [dup.to_string(), format!("{dup:?}"), format!("{full:?}")] {
        assert!(!text.contains(CPR) && !text.contains(CPR_DASHED), "{text}");
        assert!(!text.contains("12345678"), "caller number in {text}");
    }
}

async fn calls_by_cpr(db: &TestDb) {
    let store = &db.store;
    let other = Cpr::parse(OTHER_CPR).unwrap();
    store
        .insert_call(&call_row("c-3", 300, Some(cpr())))
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-1", 100, Some(cpr())))
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-2", 200, Some(other.clone())))
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-4", 400, None))
        .await
        .unwrap();
    // The CPR number typed in later is found too.
    store
        .insert_call(&call_row("c-5", 500, None))
        .await
        .unwrap();
    store.set_call_cpr("c-5", &cpr()).await.unwrap();

    let ids = |records: Vec<CallRecord>| -> Vec<String> {
        records.into_iter().map(|r| r.call.id).collect()
    };
    assert_eq!(
        ids(store.calls_by_cpr(&cpr()).await.unwrap()),
        ["c-1", "c-3", "c-5"]
    );
    assert_eq!(ids(store.calls_by_cpr(&other).await.unwrap()), ["c-2"]);
    let nobody = Cpr::parse("3112999999").unwrap();
    assert_eq!(store.calls_by_cpr(&nobody).await.unwrap(), []);
    let found = store.calls_by_cpr(&cpr()).await.unwrap();
    assert!(found.iter().all(|r| r.call.cpr.as_ref() == Some(&cpr())));
}

async fn cpr_never_stored_in_clear(db: &TestDb) {
    let store = &db.store;
    store.upsert_agent(&anna()).await.unwrap();
    store
        .insert_call(&call_row("c-1", 0, Some(cpr())))
        .await
        .unwrap();
    store.insert_call(&call_row("c-2", 10, None)).await.unwrap();
    store.set_call_cpr("c-2", &cpr()).await.unwrap();
    store
        .finish_call("c-1", at(60), "answered", Some("anna"), false)
        .await
        .unwrap();
    store
        .append_queue_event(&event(1, "c-1", "ENTER", json!({})))
        .await
        .unwrap();
    // Many copies make an accidental clear-text write easy to see.
    for i in 0..100 {
        store
            .insert_call(&call_row(&format!("c-x{i}"), 100 + i, Some(cpr())))
            .await
            .unwrap();
    }
    // Recordings with the CPR number (given at once and set later), holds by CPR and by its
    // hash, tombstones of deleted recordings, a withdrawal: every new table holds rows.
    for i in 0..50 {
        closed_rec(
            store,
            &format!("r-x{i}"),
            &format!("c-x{i}"),
            100 + i,
            200,
            Some(cpr()),
        )
        .await;
        store
            .insert_recording(&new_rec(
                &format!("m-x{i}"),
                &format!("c-x{i}"),
                RecordingKind::Message,
                100 + i,
                None,
            ))
            .await
            .unwrap();
        store
            .set_recording_cpr(&format!("m-x{i}"), &cpr())
            .await
            .unwrap();
    }
    store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro", at(1))
        .await
        .unwrap();
    let lifted = store
        .add_hold(
            &HoldTarget::CprHash(keys().lookup_hash(&cpr())),
            "access request",
            "ro",
            at(1),
        )
        .await
        .unwrap();
    store.lift_hold(lifted, "ro", at(2)).await.unwrap();
    store
        .add_hold(&HoldTarget::Call("c-x1".into()), "complaint", "ro", at(1))
        .await
        .unwrap();
    let ids: Vec<String> = (0..50).map(|i| format!("m-x{i}")).collect();
    // Held by CPR: nothing goes until the hold is lifted.
    assert_eq!(
        store
            .delete_recordings(&ids, "retention", at(300), at(900))
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    for hold in store.holds(true).await.unwrap() {
        if matches!(hold.target, HoldTarget::CprHash(_)) {
            store.lift_hold(hold.id, "ro", at(3)).await.unwrap();
        }
    }
    assert_eq!(
        store
            .delete_recordings(&ids, "retention", at(300), at(900))
            .await
            .unwrap()
            .len(),
        49 // m-x1 is held with its call
    );
    store.withdraw_consent("c-x2", at(400)).await.unwrap();
    assert_eq!(store.tombstones_by_cpr(&cpr()).await.unwrap().len(), 49);
    let hash = keys().lookup_hash(&cpr());
    // Audited actions about the citizen, with a purge so the anchor holds a row too.
    for (i, action) in ["search-cpr", "listen", "correct-cpr", "export"]
        .iter()
        .enumerate()
    {
        store
            .append_audit(
                &AuditEntry::new(at(500 + i as i64), "ro", "records-officer", *action, "r-x3")
                    .with_reason("access request 2026-17")
                    .with_cpr_hash(store.cpr_lookup_hash(&cpr())),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.purge_audit_before(at(501)).await.unwrap(), 1);
    assert_eq!(store.audit_by_cpr(&cpr()).await.unwrap().len(), 3);
    assert!(store.verify_audit().await.unwrap().is_intact());

    let dump = db.dump().await;
    let contains = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    // The dump does hold the calls (so the check below is not vacuous) …
    assert!(
        contains(b"jobcenter@3"),
        "the dump does not contain the calls"
    );
    assert!(
        contains(b"2026/01/r-x49.kre") && contains(b"access request") && contains(b"m-x49"),
        "the dump does not contain the recordings, holds and tombstones"
    );
    assert!(
        contains(b"correct-cpr") && contains(b"access request 2026-17"),
        "the dump does not contain the audit log"
    );
    let hash_hex = format!(
        "\\x{}",
        hash.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert!(
        contains(&hash) || contains(hash_hex.as_bytes()),
        "the dump does not contain the look-up hash"
    );
    // … but never the CPR number, with or without the dash.
    assert!(
        !contains(CPR.as_bytes()),
        "CPR digits found in the {}",
        db.store.backend()
    );
    assert!(
        !contains(CPR_DASHED.as_bytes()),
        "dashed CPR found in the {}",
        db.store.backend()
    );
}

async fn restart_finds_everything(db: &TestDb) {
    let store = &db.store;
    store.upsert_agent(&anna()).await.unwrap();
    store.upsert_agent(&bo()).await.unwrap();
    store
        .save_agent_state("anna", "paused", Some("break"), at(7))
        .await
        .unwrap();
    let e1 = event(1, "c-1", "ENTER", json!({ "topic": "dagpenge" }));
    let e2 = event(2, "c-1", "ABANDON", json!({ "wait_ms": 1000 }));
    store
        .append_queue_events(&[e1.clone(), e2.clone()])
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-1", 0, Some(cpr())))
        .await
        .unwrap();
    store
        .finish_call("c-1", at(2), "abandoned", None, false)
        .await
        .unwrap();
    let call_before = store.call("c-1").await.unwrap().unwrap();
    store.close().await;

    // Restart, this time with a rotated encryption key: old rows still open.
    let mut rotated = keys();
    rotated.rotate().unwrap();
    let store = db.reopen(rotated).await;
    assert_eq!(store.agents().await.unwrap(), [anna(), bo()]);
    assert_eq!(
        store.agent_states().await.unwrap(),
        [AgentStateRow {
            agent: "anna".into(),
            state: "paused".into(),
            reason: Some("break".into()),
            since: at(7),
        }]
    );
    let events = store.queue_events(at(0), at(10)).await.unwrap();
    assert_eq!(
        events.into_iter().map(|e| e.row).collect::<Vec<_>>(),
        [e1, e2]
    );
    assert_eq!(store.call("c-1").await.unwrap(), Some(call_before.clone()));
    assert_eq!(store.calls_by_cpr(&cpr()).await.unwrap(), [call_before]);

    // New data sealed with the new key is found alongside the old.
    store
        .insert_call(&call_row("c-2", 50, Some(cpr())))
        .await
        .unwrap();
    assert_eq!(store.calls_by_cpr(&cpr()).await.unwrap().len(), 2);
    // Migrations are not re-run on a migrated database, and ids keep growing.
    let id = store
        .append_queue_event(&event(3, "c-2", "ENTER", json!({})))
        .await
        .unwrap();
    assert!(id > 2, "{id}");
    store.close().await;
}

async fn wrong_keys_cannot_read_cpr(db: &TestDb) {
    db.store
        .insert_call(&call_row("c-1", 0, Some(cpr())))
        .await
        .unwrap();
    db.store.close().await;

    let store = db.reopen(CprKeys::generate().unwrap()).await;
    let err = store.call("c-1").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Cpr { call, source: ProtectError::Authentication } if call == "c-1"),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains(CPR) && !text.contains(CPR_DASHED), "{text}");
    // Another hash key finds nothing.
    assert_eq!(store.calls_by_cpr(&cpr()).await.unwrap(), []);
    store.close().await;
}

#[tokio::test]
async fn sqlite_url_creates_file_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub.db");
    let store = Store::open(&format!("sqlite://{}", path.display()), keys())
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    let Pool::Sqlite(pool) = &store.pool else {
        panic!("not SQLite")
    };
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    // Foreign keys are enforced: a skill of an unknown agent is refused.
    let orphan =
        sqlx::query("INSERT INTO agent_skills (agent_id, queue, level) VALUES ('x', 'q', 1)")
            .execute(pool)
            .await;
    assert!(orphan.is_err());
    store.close().await;
}

#[tokio::test]
async fn data_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var").join("kald");
    let store = Store::open_data_dir(&data, keys()).await.unwrap();
    store.close().await;
    assert!(data.join(SQLITE_FILE).is_file());
}

#[tokio::test]
async fn unsupported_url_is_refused_without_echoing_it() {
    for url in ["mysql://kald:hemmelig@db/kald", "hemmelig", ""] {
        let err = Store::open(url, keys()).await.unwrap_err();
        assert!(matches!(err, StoreError::UnsupportedUrl), "{err:?}");
        assert!(!err.to_string().contains("hemmelig"));
    }
}

#[tokio::test]
async fn unreachable_postgres_is_an_open_error_without_the_password() {
    // Port 1 on loopback refuses connections at once.
    let err = Store::open("postgres://kald:hemmelig@127.0.0.1:1/kald", keys())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Open {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("hemmelig"), "{err:?}");
}

// --- recordings -------------------------------------------------------------------------

fn new_rec(
    id: &str,
    call: &str,
    kind: RecordingKind,
    second: i64,
    cpr: Option<Cpr>,
) -> NewRecording {
    NewRecording {
        id: id.into(),
        call_id: call.into(),
        kind,
        file: format!("2026/01/{id}.kre"),
        key_id: 3,
        started: at(second),
        agent: Some("anna".into()),
        queue: Some("sygedagpenge".into()),
        topic: Some("sygedagpenge".into()),
        consent: kind == RecordingKind::Call,
        consent_at: Some(at(second - 30)),
        flow_version: Some("jobcenter@3".into()),
        cpr,
    }
}

/// Inserts a recording and closes it with its deadline at `due` seconds.
async fn closed_rec(store: &Store, id: &str, call: &str, second: i64, due: i64, cpr: Option<Cpr>) {
    store
        .insert_recording(&new_rec(id, call, RecordingKind::Call, second, cpr))
        .await
        .unwrap();
    store
        .close_recording(
            id,
            at(second + 60),
            Duration::from_secs(60),
            &[7; 32],
            at(due),
        )
        .await
        .unwrap();
}

fn ids_of(items: &[SweepItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

async fn recordings_lifecycle(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.recording("r-1").await.unwrap(), None);
    let new = new_rec("r-1", "c-1", RecordingKind::Call, 100, Some(cpr()));
    let before = Timestamp::now();
    store.insert_recording(&new).await.unwrap();
    let open = store.recording("r-1").await.unwrap().unwrap();
    assert_eq!(
        (
            open.id.as_str(),
            open.call_id.as_str(),
            open.kind,
            open.file.as_str()
        ),
        ("r-1", "c-1", RecordingKind::Call, "2026/01/r-1.kre")
    );
    assert_eq!(open.key_id, 3);
    assert_eq!(open.started, at(100));
    assert_eq!(
        (open.ended, open.duration, open.sha256, open.retention_until),
        (None, None, None, None)
    );
    assert_eq!(open.agent.as_deref(), Some("anna"));
    assert_eq!(open.queue.as_deref(), Some("sygedagpenge"));
    assert_eq!(open.topic.as_deref(), Some("sygedagpenge"));
    assert!(open.consent);
    assert_eq!(open.consent_at, Some(at(70)));
    assert_eq!(open.flow_version.as_deref(), Some("jobcenter@3"));
    assert_eq!(open.cpr, Some(cpr()));
    assert_eq!(open.state, RecordingState::Recording);
    assert_eq!(open.journal, JournalState::None);
    assert!(
        open.created
            >= before
                .checked_sub(jiff::SignedDuration::from_secs(1))
                .unwrap()
    );

    // Closing sets the end, duration (to the millisecond), checksum and deadline.
    let sha: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
    store
        .close_recording(
            "r-1",
            at(400),
            Duration::from_millis(300_123),
            &sha,
            at(9_000),
        )
        .await
        .unwrap();
    let closed = store.recording("r-1").await.unwrap().unwrap();
    assert_eq!(closed.ended, Some(at(400)));
    assert_eq!(closed.duration, Some(Duration::from_millis(300_123)));
    assert_eq!(closed.sha256, Some(sha));
    assert_eq!(closed.retention_until, Some(at(9_000)));
    assert_eq!(closed.state, RecordingState::Closed);
    assert_eq!(closed.created, open.created);

    // A second close or a truncation of a closed recording is refused; unknown ids too.
    for err in [
        store
            .close_recording("r-1", at(500), Duration::ZERO, &sha, at(9_999))
            .await
            .unwrap_err(),
        store
            .mark_truncated("r-1", at(500), Duration::ZERO, at(9_999))
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::NotRecording { id, state: RecordingState::Closed } if id == "r-1"),
            "{err:?}"
        );
    }
    assert_eq!(store.recording("r-1").await.unwrap().unwrap(), closed);
    for err in [
        store
            .close_recording("r-9", at(500), Duration::ZERO, &sha, at(9_999))
            .await
            .unwrap_err(),
        store
            .mark_truncated("r-9", at(500), Duration::ZERO, at(9_999))
            .await
            .unwrap_err(),
        store.set_recording_cpr("r-9", &cpr()).await.unwrap_err(),
        store
            .set_journal_state("r-9", JournalState::Linked)
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::NoSuchRecording { id } if id == "r-9"),
            "{err:?}"
        );
    }

    // Crash repair: a recording left open is marked truncated, without checksum.
    store
        .insert_recording(&new_rec("r-2", "c-2", RecordingKind::Message, 200, None))
        .await
        .unwrap();
    store
        .mark_truncated("r-2", at(230), Duration::from_millis(29_980), at(8_000))
        .await
        .unwrap();
    let truncated = store.recording("r-2").await.unwrap().unwrap();
    assert_eq!(truncated.state, RecordingState::Truncated);
    assert_eq!(truncated.kind, RecordingKind::Message);
    assert!(!truncated.consent);
    assert_eq!(truncated.cpr, None);
    assert_eq!(truncated.ended, Some(at(230)));
    assert_eq!(truncated.duration, Some(Duration::from_millis(29_980)));
    assert_eq!(truncated.sha256, None);
    assert_eq!(truncated.retention_until, Some(at(8_000)));

    // A journal link (issue 9) is stored.
    store
        .set_journal_state("r-2", JournalState::Linked)
        .await
        .unwrap();
    assert_eq!(
        store.recording("r-2").await.unwrap().unwrap().journal,
        JournalState::Linked
    );

    // Start-up reconciliation sees every row's file and state.
    store
        .insert_recording(&new_rec("r-0", "c-3", RecordingKind::Call, 300, None))
        .await
        .unwrap();
    assert_eq!(
        store.all_recordings().await.unwrap(),
        [
            RecordingFile {
                id: "r-0".into(),
                file: "2026/01/r-0.kre".into(),
                state: RecordingState::Recording
            },
            RecordingFile {
                id: "r-1".into(),
                file: "2026/01/r-1.kre".into(),
                state: RecordingState::Closed
            },
            RecordingFile {
                id: "r-2".into(),
                file: "2026/01/r-2.kre".into(),
                state: RecordingState::Truncated
            },
        ]
    );

    // Duplicate ids and call recordings without consent are refused, without the CPR.
    let dup = store.insert_recording(&new).await.unwrap_err();
    let no_consent = store
        .insert_recording(&NewRecording {
            consent: false,
            ..new_rec("r-3", "c-3", RecordingKind::Call, 300, Some(cpr()))
        })
        .await
        .unwrap_err();
    for err in [&dup, &no_consent] {
        assert!(
            matches!(
                err,
                StoreError::Query {
                    action: "insert a recording",
                    ..
                }
            ),
            "{err:?}"
        );
        let text = format!("{err} {err:?} {new:?}");
        assert!(!text.contains(CPR) && !text.contains(CPR_DASHED), "{text}");
    }
    assert_eq!(store.recording("r-3").await.unwrap(), None);
}

async fn recordings_by_cpr_and_call(db: &TestDb) {
    let store = &db.store;
    let other = Cpr::parse(OTHER_CPR).unwrap();
    closed_rec(store, "r-3", "c-2", 300, 1_000, Some(cpr())).await;
    closed_rec(store, "r-1", "c-1", 100, 1_000, Some(cpr())).await;
    closed_rec(store, "r-2", "c-1", 200, 1_000, Some(other.clone())).await;
    store
        .insert_recording(&new_rec("r-4", "c-1", RecordingKind::Message, 150, None))
        .await
        .unwrap();
    // The CPR number verified later is found too.
    store.set_recording_cpr("r-4", &cpr()).await.unwrap();

    let ids = |recs: Vec<Recording>| -> Vec<String> { recs.into_iter().map(|r| r.id).collect() };
    assert_eq!(
        ids(store.recordings_by_cpr(&cpr()).await.unwrap()),
        ["r-1", "r-4", "r-3"]
    );
    assert_eq!(ids(store.recordings_by_cpr(&other).await.unwrap()), ["r-2"]);
    let nobody = Cpr::parse("3112999999").unwrap();
    assert_eq!(store.recordings_by_cpr(&nobody).await.unwrap(), []);
    assert!(store
        .recordings_by_cpr(&cpr())
        .await
        .unwrap()
        .iter()
        .all(|r| r.cpr.as_ref() == Some(&cpr())));
    assert_eq!(
        ids(store.recordings_of_call("c-1").await.unwrap()),
        ["r-1", "r-4", "r-2"]
    );
    assert_eq!(store.recordings_of_call("c-9").await.unwrap(), []);
    // Correcting the CPR number moves the recording to the right citizen.
    store.set_recording_cpr("r-2", &cpr()).await.unwrap();
    assert_eq!(store.recordings_by_cpr(&other).await.unwrap(), []);
    assert_eq!(store.recordings_by_cpr(&cpr()).await.unwrap().len(), 4);
}

async fn withdrawal_deletes_without_tombstones(db: &TestDb) {
    let store = &db.store;
    store
        .insert_call(&call_row("c-1", 0, Some(cpr())))
        .await
        .unwrap();
    store.insert_call(&call_row("c-2", 0, None)).await.unwrap();
    // The call was recorded in two parts (e.g. around a consult), and left a message.
    store
        .insert_recording(&new_rec("r-1", "c-1", RecordingKind::Call, 10, Some(cpr())))
        .await
        .unwrap();
    closed_rec(store, "r-2", "c-1", 20, 9_000, Some(cpr())).await;
    store
        .insert_recording(&new_rec("m-1", "c-1", RecordingKind::Message, 30, None))
        .await
        .unwrap();
    closed_rec(store, "r-3", "c-2", 20, 9_000, None).await;
    // A hold does not stop a withdrawal.
    store
        .add_hold(&HoldTarget::Call("c-1".into()), "complaint", "ro", at(25))
        .await
        .unwrap();

    let mut files = store.withdraw_consent("c-1", at(40)).await.unwrap();
    files.sort();
    assert_eq!(files, ["2026/01/r-1.kre", "2026/01/r-2.kre"]);
    let left: Vec<String> = store
        .all_recordings()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["m-1", "r-3"]);
    assert_eq!(store.tombstone("r-1").await.unwrap(), None);
    assert_eq!(store.tombstone("r-2").await.unwrap(), None);
    assert_eq!(store.tombstones_by_cpr(&cpr()).await.unwrap(), []);

    // The call keeps its consent answer and the time of withdrawal.
    let call = store.call("c-1").await.unwrap().unwrap();
    assert_eq!(call.call.consent, Some(true));
    assert_eq!(call.call.consent_at, Some(at(5)));
    assert_eq!(call.consent_withdrawn, Some(at(40)));
    assert_eq!(
        store.call("c-2").await.unwrap().unwrap().consent_withdrawn,
        None
    );

    // Withdrawing again keeps the first time and finds nothing more to delete.
    assert_eq!(
        store.withdraw_consent("c-1", at(50)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.call("c-1").await.unwrap().unwrap().consent_withdrawn,
        Some(at(40))
    );
    // No call audio can be catalogued for the call any more; a message still can.
    let err = store
        .insert_recording(&new_rec("r-4", "c-1", RecordingKind::Call, 60, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::ConsentWithdrawn { call } if call == "c-1"),
        "{err:?}"
    );
    store
        .insert_recording(&new_rec("m-2", "c-1", RecordingKind::Message, 70, None))
        .await
        .unwrap();

    // An unknown call is an error and deletes nothing.
    closed_rec(store, "r-5", "c-9", 20, 9_000, None).await;
    let err = store.withdraw_consent("c-9", at(60)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchCall { id } if id == "c-9"),
        "{err:?}"
    );
    assert!(store.recording("r-5").await.unwrap().is_some());
}

async fn sweep_lists_due_recordings_with_holds(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-b", "c-1", 0, 1_000, Some(cpr())).await;
    closed_rec(store, "r-a", "c-2", 0, 1_000, None).await;
    closed_rec(store, "r-c", "c-3", 0, 900, None).await;
    closed_rec(store, "r-d", "c-4", 0, 1_001, None).await; // not yet due
    store
        .insert_recording(&new_rec("r-e", "c-5", RecordingKind::Call, 0, None))
        .await
        .unwrap(); // still recording: no deadline
    store
        .set_journal_state("r-a", JournalState::Linked)
        .await
        .unwrap();

    let due = store.sweep_candidates(at(1_000), None, 100).await.unwrap();
    assert_eq!(ids_of(&due), ["r-c", "r-a", "r-b"]);
    assert_eq!(
        due[0],
        SweepItem {
            id: "r-c".into(),
            call_id: "c-3".into(),
            kind: RecordingKind::Call,
            file: "2026/01/r-c.kre".into(),
            ended: at(60),
            retention_until: at(900),
            holds: 0,
            held: false,
            journal: JournalState::None,
        }
    );
    assert_eq!(due[1].journal, JournalState::Linked);
    assert!(due.iter().all(|i| !i.held));
    assert_eq!(
        store.sweep_candidates(at(899), None, 100).await.unwrap(),
        []
    );

    // Holds by each scope, and two at once, are counted.
    store
        .add_hold(
            &HoldTarget::Recording("r-c".into()),
            "complaint",
            "ro",
            at(1),
        )
        .await
        .unwrap();
    store
        .add_hold(
            &HoldTarget::Call("c-2".into()),
            "access request",
            "ro",
            at(1),
        )
        .await
        .unwrap();
    store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro", at(1))
        .await
        .unwrap();
    store
        .add_hold(
            &HoldTarget::CprHash(keys().lookup_hash(&cpr())),
            "second request",
            "ro",
            at(2),
        )
        .await
        .unwrap();
    let due = store.sweep_candidates(at(2_000), None, 100).await.unwrap();
    let flags: Vec<_> = due
        .iter()
        .map(|i| (i.id.as_str(), i.holds, i.held))
        .collect();
    assert_eq!(
        flags,
        [
            ("r-c", 1, true),
            ("r-a", 1, true),
            ("r-b", 2, true),
            ("r-d", 0, false)
        ]
    );
}

async fn sweep_pages_past_held_items(db: &TestDb) {
    let store = &db.store;
    // 25 due recordings, every third held; pages of 4 walk all of them exactly once.
    let mut expected = Vec::new();
    for i in 0..25 {
        let id = format!("r-{i:02}");
        closed_rec(store, &id, &format!("c-{i}"), 0, 100 + i / 2, None).await;
        if i % 3 == 0 {
            store
                .add_hold(&HoldTarget::Recording(id.clone()), "test", "ro", at(1))
                .await
                .unwrap();
        }
        expected.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = store
            .sweep_candidates(at(1_000), cursor.as_ref(), 4)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor());
        pages += 1;
        // The sweeper deletes the unheld ones as it goes.
        let unheld: Vec<&str> = page
            .iter()
            .filter(|i| !i.held)
            .map(|i| i.id.as_str())
            .collect();
        store
            .delete_recordings(&unheld, "retention", at(1_000), at(5_000))
            .await
            .unwrap();
        seen.extend(page.into_iter().map(|i| i.id));
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 7);
    let left = store.sweep_candidates(at(1_000), None, 100).await.unwrap();
    assert_eq!(left.len(), 9);
    assert!(left.iter().all(|i| i.held));
}

async fn holds_by_each_scope_block_deletion(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 0, 100, None).await;
    closed_rec(store, "r-2", "c-2", 0, 100, None).await;
    closed_rec(store, "r-3", "c-3", 0, 100, Some(cpr())).await;
    closed_rec(
        store,
        "r-4",
        "c-4",
        0,
        100,
        Some(Cpr::parse(OTHER_CPR).unwrap()),
    )
    .await;
    let by_rec = store
        .add_hold(
            &HoldTarget::Recording("r-1".into()),
            "complaint",
            "ro",
            at(1),
        )
        .await
        .unwrap();
    let by_call = store
        .add_hold(&HoldTarget::Call("c-2".into()), "complaint", "ro", at(1))
        .await
        .unwrap();
    let by_cpr = store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro", at(1))
        .await
        .unwrap();
    // A lifted hold holds nothing.
    let lifted = store
        .add_hold(&HoldTarget::Recording("r-4".into()), "mistake", "ro", at(1))
        .await
        .unwrap();
    assert!(store.lift_hold(lifted, "ro", at(2)).await.unwrap());

    let ids = ["r-1", "r-2", "r-3", "r-4"];
    // Even asked to, the store does not delete held recordings.
    for id in &ids[..3] {
        assert_eq!(
            store
                .delete_recording(id, "retention", at(200), at(900))
                .await
                .unwrap(),
            None
        );
    }
    let files = store
        .delete_recordings(&ids, "retention", at(200), at(900))
        .await
        .unwrap();
    assert_eq!(files, ["2026/01/r-4.kre"]);
    let due = store.sweep_candidates(at(200), None, 10).await.unwrap();
    assert_eq!(ids_of(&due), ["r-1", "r-2", "r-3"]);
    assert!(due.iter().all(|i| i.held));

    // Lifting releases: each goes at the next sweep.
    for (hold, id) in [(by_rec, "r-1"), (by_call, "r-2"), (by_cpr, "r-3")] {
        assert!(store.lift_hold(hold, "ro", at(300)).await.unwrap());
        let due = store.sweep_candidates(at(300), None, 10).await.unwrap();
        let item = due.iter().find(|i| i.id == id).unwrap();
        assert!(!item.held && item.holds == 0, "{item:?}");
        assert_eq!(
            store
                .delete_recording(id, "retention", at(300), at(900))
                .await
                .unwrap()
                .as_deref(),
            Some(format!("2026/01/{id}.kre").as_str())
        );
    }
    assert_eq!(store.sweep_candidates(at(300), None, 10).await.unwrap(), []);
    assert_eq!(store.all_recordings().await.unwrap(), []);
}

async fn delete_writes_tombstones_idempotently(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 10, 100, Some(cpr())).await;
    store
        .insert_recording(&new_rec("m-1", "c-2", RecordingKind::Message, 20, None))
        .await
        .unwrap();
    assert_eq!(
        store
            .delete_recording("r-1", "retention", at(200), at(5_000))
            .await
            .unwrap()
            .as_deref(),
        Some("2026/01/r-1.kre")
    );
    assert_eq!(store.recording("r-1").await.unwrap(), None);
    let tomb = Tombstone {
        recording_id: "r-1".into(),
        call_id: "c-1".into(),
        kind: RecordingKind::Call,
        started: at(10),
        ended: Some(at(70)),
        deleted: at(200),
        reason: "retention".into(),
        cpr_hash: Some(keys().lookup_hash(&cpr())),
        purge_after: at(5_000),
    };
    assert_eq!(store.tombstone("r-1").await.unwrap(), Some(tomb.clone()));
    assert_eq!(
        store.tombstones_by_cpr(&cpr()).await.unwrap(),
        std::slice::from_ref(&tomb)
    );
    assert_eq!(
        store
            .tombstones_by_cpr(&Cpr::parse(OTHER_CPR).unwrap())
            .await
            .unwrap(),
        []
    );

    // Again: nothing to delete, and the tombstone is unchanged.
    assert_eq!(
        store
            .delete_recording("r-1", "erased", at(300), at(9_000))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.tombstone("r-1").await.unwrap(), Some(tomb));
    assert_eq!(
        store
            .delete_recording("nope", "retention", at(300), at(9_000))
            .await
            .unwrap(),
        None
    );

    // An erased open message: its tombstone has no end and no CPR hash.
    assert_eq!(
        store
            .delete_recording("m-1", "erased", at(400), at(6_000))
            .await
            .unwrap()
            .as_deref(),
        Some("2026/01/m-1.kre")
    );
    let m = store.tombstone("m-1").await.unwrap().unwrap();
    assert_eq!(
        (m.kind, m.ended, m.cpr_hash, m.reason.as_str()),
        (RecordingKind::Message, None, None, "erased")
    );

    // The tombstone keeps no sealed CPR number and no file.
    if let Location::Sqlite(_) = db.location {
        let Pool::Sqlite(pool) = &store.pool else {
            panic!("not SQLite")
        };
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('tombstones')")
                .fetch_all(pool)
                .await
                .unwrap();
        assert!(
            !columns.iter().any(|c| c.contains("sealed") || c == "file"),
            "{columns:?}"
        );
    }
}

async fn delete_in_batches(db: &TestDb) {
    let store = &db.store;
    // More than two batches, one held recording in the middle and one unknown id.
    let n = 2 * DELETE_BATCH + 7;
    let mut ids: Vec<String> = Vec::new();
    for i in 0..n {
        let id = format!("r-{i:05}");
        let cpr = (i % 2 == 0).then(cpr);
        closed_rec(store, &id, &format!("c-{i}"), 0, 100, cpr).await;
        ids.push(id);
    }
    store
        .add_hold(
            &HoldTarget::Recording("r-00600".into()),
            "test",
            "ro",
            at(1),
        )
        .await
        .unwrap();
    ids.push("r-missing".into());
    let mut files = store
        .delete_recordings(&ids, "retention", at(200), at(900))
        .await
        .unwrap();
    files.sort();
    assert_eq!(files.len(), n - 1);
    assert!(!files.contains(&"2026/01/r-00600.kre".to_owned()));
    assert_eq!(files[0], "2026/01/r-00000.kre");
    let left = store.all_recordings().await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].id, "r-00600");
    let tombs = store.tombstones_by_cpr(&cpr()).await.unwrap();
    assert_eq!(tombs.len(), n.div_ceil(2) - 1);
    assert!(store.tombstone(&ids[n - 1]).await.unwrap().is_some());
    assert!(store.tombstone("r-00600").await.unwrap().is_none());
    // Once every tombstone is due and nothing holds them, all go.
    assert_eq!(
        store.purge_tombstones(at(900)).await.unwrap(),
        (n - 1) as u64
    );
}

async fn purge_tombstones_respects_holds(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 0, 100, Some(cpr())).await;
    closed_rec(store, "r-2", "c-2", 0, 100, None).await;
    closed_rec(store, "r-3", "c-3", 0, 100, None).await;
    closed_rec(store, "r-4", "c-4", 0, 100, None).await;
    closed_rec(store, "r-5", "c-5", 0, 100, None).await;
    store
        .delete_recordings(
            &["r-1", "r-2", "r-3", "r-4"],
            "retention",
            at(200),
            at(1_000),
        )
        .await
        .unwrap();
    store
        .delete_recording("r-5", "retention", at(200), at(2_000))
        .await
        .unwrap();
    // An access request holds the tombstones it finds: by CPR, by call, by recording id.
    let h1 = store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro", at(300))
        .await
        .unwrap();
    let h2 = store
        .add_hold(&HoldTarget::Call("c-2".into()), "complaint", "ro", at(300))
        .await
        .unwrap();
    let h3 = store
        .add_hold(
            &HoldTarget::Recording("r-3".into()),
            "complaint",
            "ro",
            at(300),
        )
        .await
        .unwrap();

    assert_eq!(store.purge_tombstones(at(999)).await.unwrap(), 0);
    assert_eq!(store.purge_tombstones(at(1_000)).await.unwrap(), 1); // r-4
    assert_eq!(store.tombstone("r-4").await.unwrap(), None);
    for id in ["r-1", "r-2", "r-3", "r-5"] {
        assert!(store.tombstone(id).await.unwrap().is_some(), "{id}");
    }
    for hold in [h1, h2, h3] {
        store.lift_hold(hold, "ro", at(1_100)).await.unwrap();
    }
    assert_eq!(store.purge_tombstones(at(1_100)).await.unwrap(), 3);
    assert_eq!(store.tombstones_by_cpr(&cpr()).await.unwrap(), []);
    assert!(store.tombstone("r-5").await.unwrap().is_some());
    assert_eq!(store.purge_tombstones(at(2_000)).await.unwrap(), 1);
    assert_eq!(store.purge_tombstones(at(9_000)).await.unwrap(), 0);
}

async fn hold_listing_and_lifting(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.holds(false).await.unwrap(), []);
    let h1 = store
        .add_hold(
            &HoldTarget::Recording("r-1".into()),
            "complaint",
            "ro1",
            at(1),
        )
        .await
        .unwrap();
    let h2 = store
        .add_hold(
            &HoldTarget::Call("c-1".into()),
            "access request",
            "ro2",
            at(2),
        )
        .await
        .unwrap();
    let h3 = store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro1", at(3))
        .await
        .unwrap();
    assert!(h1 < h2 && h2 < h3);
    assert!(store.lift_hold(h2, "ro3", at(10)).await.unwrap());
    // Lifting again keeps the first lift.
    assert!(!store.lift_hold(h2, "ro4", at(11)).await.unwrap());
    let err = store.lift_hold(h3 + 100, "ro", at(12)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchHold { id } if id == h3 + 100),
        "{err:?}"
    );

    let hold = |id, target, reason: &str, by: &str, second, lifted: Option<(i64, &str)>| HoldRow {
        id,
        target,
        reason: reason.into(),
        created_by: by.into(),
        created: at(second),
        lifted: lifted.map(|(s, _)| at(s)),
        lifted_by: lifted.map(|(_, by)| by.into()),
    };
    let all = [
        hold(
            h1,
            HoldTarget::Recording("r-1".into()),
            "complaint",
            "ro1",
            1,
            None,
        ),
        hold(
            h2,
            HoldTarget::Call("c-1".into()),
            "access request",
            "ro2",
            2,
            Some((10, "ro3")),
        ),
        // A CPR number is kept only as its keyed hash.
        hold(
            h3,
            HoldTarget::CprHash(keys().lookup_hash(&cpr())),
            "access request",
            "ro1",
            3,
            None,
        ),
    ];
    assert_eq!(store.holds(false).await.unwrap(), all);
    assert_eq!(
        store.holds(true).await.unwrap(),
        [all[0].clone(), all[2].clone()]
    );
    let text = format!("{:?}", store.holds(false).await.unwrap());
    assert!(!text.contains(CPR), "{text}");
}

async fn recordings_survive_restart_and_key_rotation(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 0, 100, Some(cpr())).await;
    let hold = store
        .add_hold(&HoldTarget::Cpr(cpr()), "access request", "ro", at(1))
        .await
        .unwrap();
    closed_rec(store, "r-2", "c-2", 0, 100, Some(cpr())).await;
    store
        .delete_recording("r-2", "erased", at(50), at(900))
        .await
        .unwrap(); // held: stays
    store.lift_hold(hold, "ro", at(60)).await.unwrap();
    store
        .delete_recording("r-2", "erased", at(70), at(900))
        .await
        .unwrap();
    let before = store.recording("r-1").await.unwrap().unwrap();
    store.close().await;

    let mut rotated = keys();
    rotated.rotate().unwrap();
    let store = db.reopen(rotated).await;
    assert_eq!(store.recording("r-1").await.unwrap(), Some(before.clone()));
    assert_eq!(store.recordings_by_cpr(&cpr()).await.unwrap(), [before]);
    assert_eq!(store.tombstones_by_cpr(&cpr()).await.unwrap().len(), 1);
    assert_eq!(store.holds(true).await.unwrap(), []);
    // New rows sealed with the new key sit beside the old.
    store
        .insert_recording(&new_rec("r-3", "c-3", RecordingKind::Call, 5, Some(cpr())))
        .await
        .unwrap();
    assert_eq!(store.recordings_by_cpr(&cpr()).await.unwrap().len(), 2);
    store.close().await;
}

/// A database made by the first migration only, with a call in it, is brought up to date.
#[tokio::test]
async fn sqlite_database_of_version_1_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SQLITE_FILE);
    {
        let pool = SqlitePoolOptions::new()
            .connect_with(
                SqliteConnectOptions::new()
                    .filename(&path)
                    .create_if_missing(true),
            )
            .await
            .unwrap();
        let v1 = Migrator {
            migrations: SQLITE_MIGRATIONS.migrations[..1].to_vec().into(),
            ..Migrator::DEFAULT
        };
        v1.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO calls (id, started_us, entry_point, consent) VALUES ('c-1', 1, 'x', TRUE)",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let store = Store::open_data_dir(dir.path(), keys()).await.unwrap();
    let call = store.call("c-1").await.unwrap().unwrap();
    assert_eq!(call.consent_withdrawn, None);
    store.withdraw_consent("c-1", at(9)).await.unwrap();
    assert_eq!(
        store.call("c-1").await.unwrap().unwrap().consent_withdrawn,
        Some(at(9))
    );
    store.close().await;
}

/// Inserts `n` closed recordings straight into SQLite for the deletion benchmarks, due over
/// the first 1,000 s; every tenth has the test citizen's CPR number.
async fn fill_recordings(pool: &SqlitePool, n: usize) {
    let sealed = keys().seal(&cpr());
    let hash = keys().lookup_hash(&cpr()).to_vec();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        // Every tenth recording has a CPR number, as calls about one citizen cluster.
        let (sealed, hash) = if i % 10 == 0 {
            (Some(&sealed), Some(&hash))
        } else {
            (None, None)
        };
        sqlx::query(
            "INSERT INTO recordings (id, call_id, kind, file, key_id, started_us, ended_us, \
             duration_ms, consent, cpr_sealed, cpr_hash, retention_until_us, sha256, state, \
             created_us) VALUES ($1, $2, 'call', $3, 1, $4, $4, 60000, TRUE, $5, $6, $7, $8, \
             'closed', $4)",
        )
        .bind(format!("{i:032x}"))
        .bind(format!("c-{i}"))
        .bind(format!("2026/01/{i:032x}.kre"))
        .bind(micros(at(0)))
        .bind(sealed)
        .bind(hash)
        .bind(micros(at(i as i64 % 1000)))
        .bind(rows::hex(&[9; 32]))
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// How long the SQLite store takes to sweep 100,000 due recordings (run with `--ignored
/// --nocapture`; the figure goes to stderr).
#[tokio::test]
#[ignore = "benchmark: 100,000 deletions on SQLite"]
async fn sqlite_deletes_100k_recordings() {
    const N: usize = 100_000;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let Pool::Sqlite(pool) = &store.pool else {
        panic!("not SQLite")
    };
    let started = std::time::Instant::now();
    fill_recordings(pool, N).await;
    let filled = started.elapsed();
    // Some holds, as a records office would have.
    for i in 0..50 {
        store
            .add_hold(
                &HoldTarget::Call(format!("c-{}", i * 997)),
                "test",
                "ro",
                at(1),
            )
            .await
            .unwrap();
    }
    store
        .add_hold(
            &HoldTarget::CprHash(keys().lookup_hash(&Cpr::parse(OTHER_CPR).unwrap())),
            "t",
            "ro",
            at(1),
        )
        .await
        .unwrap();

    // The sweeper's loop: a page of candidates, delete the unheld, next page.
    let sweep = std::time::Instant::now();
    let mut cursor = None;
    let mut deleted = 0;
    let mut listed = 0;
    let mut list_time = Duration::ZERO;
    loop {
        let t = std::time::Instant::now();
        let page = store
            .sweep_candidates(at(10_000), cursor.as_ref(), 1_000)
            .await
            .unwrap();
        list_time += t.elapsed();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor());
        listed += page.len();
        let ids: Vec<&str> = page
            .iter()
            .filter(|i| !i.held)
            .map(|i| i.id.as_str())
            .collect();
        deleted += store
            .delete_recordings(&ids, "retention", at(10_000), at(20_000))
            .await
            .unwrap()
            .len();
    }
    let swept = sweep.elapsed();

    assert_eq!(listed, N);
    assert_eq!(deleted, N - 50);
    let purge = std::time::Instant::now();
    let purged = store.purge_tombstones(at(20_000)).await.unwrap();
    let purge = purge.elapsed();
    assert_eq!(purged, (N - 50) as u64);
    let _ = writeln!(
        std::io::stderr(),
        "SQLite, {N} recordings: filled in {filled:.2?}; swept (listed {listed} in pages of \
         1,000, deleted {deleted} with tombstones in batches of {DELETE_BATCH}) in {swept:.2?} \
         ({:.1} µs per recording; listing {list_time:.2?}); purged {purged} tombstones in \
         {purge:.2?}",
        swept.as_secs_f64() * 1e6 / N as f64
    );
    db.cleanup().await;
}

// --- audit log ---------------------------------------------------------------------------

/// The `n`th test entry: actions, actors and targets vary; every third is about the test
/// citizen, every fourth has a reason.
fn audit_entry(store: &Store, n: i64) -> AuditEntry {
    let actions = ["listen", "download", "export", "hold", "search-cpr"];
    let mut entry = AuditEntry::new(
        at(n),
        if n % 2 == 0 { "anna" } else { "bo" },
        "records-officer",
        actions[(n % 5) as usize],
        format!("r-{}", n % 7),
    );
    if n % 3 == 0 {
        entry = entry.with_cpr_hash(store.cpr_lookup_hash(&cpr()));
    }
    if n % 4 == 0 {
        entry = entry.with_reason(format!("reason {n}"));
    }
    entry
}

/// Appends entries `from..to` (see [`audit_entry`]); returns their ids.
async fn append_entries(store: &Store, from: i64, to: i64) -> Vec<i64> {
    let mut ids = vec![];
    for n in from..to {
        ids.push(store.append_audit(&audit_entry(store, n)).await.unwrap());
    }
    ids
}

/// Runs one SQL statement directly on the store's database (to tamper with it).
async fn raw_sql(store: &Store, sql: &str) -> u64 {
    on_pool!(store, |pool| sqlx::query(sql)
        .execute(pool)
        .await
        .unwrap()
        .rows_affected())
}

async fn audit_append_and_verify(db: &TestDb) {
    let store = &db.store;
    // An empty log is intact.
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact {
            entries: 0,
            first_id: None,
            last_id: None,
            head: GENESIS
        }
    );
    let ids = append_entries(store, 0, 25).await;
    assert_eq!(ids, (1..=25).collect::<Vec<i64>>());
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 25);
    // The chain as documented: the first row follows GENESIS, each the one before.
    let mut prev = GENESIS;
    for (n, row) in rows.iter().enumerate() {
        assert_eq!(row.entry, audit_entry(store, n as i64));
        assert_eq!(row.prev_hash, prev);
        assert_eq!(row.hash, row.entry.chain_hash(row.id, &prev));
        let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
        sha2::Digest::update(&mut hasher, prev);
        sha2::Digest::update(&mut hasher, row.entry.canonical_bytes(row.id));
        assert_eq!(row.hash, <[u8; 32]>::from(sha2::Digest::finalize(hasher)));
        prev = row.hash;
    }
    let intact = AuditVerification::Intact {
        entries: 25,
        first_id: Some(1),
        last_id: Some(25),
        head: prev,
    };
    assert_eq!(store.verify_audit().await.unwrap(), intact);
    // Paged in small pages (one page boundary falls on the last row) the answer is the same.
    for page in [1, 2, 5, 7, 25, 26] {
        assert_eq!(store.verify_audit_paged(page).await.unwrap(), intact);
    }
    // After a restart the chain goes on.
    let reopened = db.reopen(keys()).await;
    assert_eq!(
        reopened
            .append_audit(&audit_entry(store, 25))
            .await
            .unwrap(),
        26
    );
    assert!(reopened.verify_audit().await.unwrap().is_intact());
    reopened.close().await;
}

#[test]
fn audit_encoding_is_unambiguous() {
    let base = AuditEntry::new(at(0), "ab", "c", "listen", "r-1");
    // Moving a byte from one field to the next changes the encoding.
    let shifted = AuditEntry::new(at(0), "a", "bc", "listen", "r-1");
    assert_ne!(base.canonical_bytes(1), shifted.canonical_bytes(1));
    // No reason differs from an empty reason; the id counts.
    assert_ne!(
        base.canonical_bytes(1),
        base.clone().with_reason("").canonical_bytes(1)
    );
    assert_ne!(base.canonical_bytes(1), base.canonical_bytes(2));
    // The documented layout, byte for byte.
    let mut expected = b"kald-audit-v1".to_vec();
    expected.extend(1i64.to_be_bytes());
    expected.extend(micros(at(0)).to_be_bytes());
    for field in ["ab", "c", "listen", "r-1"] {
        expected.extend((field.len() as u64).to_be_bytes());
        expected.extend(field.as_bytes());
    }
    expected.extend([1]);
    expected.extend(4u64.to_be_bytes());
    expected.extend(b"why?");
    expected.extend([1]);
    expected.extend(32u64.to_be_bytes());
    expected.extend([7; 32]);
    assert_eq!(
        base.clone()
            .with_reason("why?")
            .with_cpr_hash([7; 32])
            .canonical_bytes(1),
        expected
    );
    let mut none = base.canonical_bytes(1);
    assert_eq!(none.split_off(none.len() - 2), [0, 0]);
}

async fn audit_filters(db: &TestDb) {
    let store = &db.store;
    append_entries(store, 0, 30).await;
    let ids = |rows: Vec<AuditRow>| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    let expect = |pred: &dyn Fn(i64) -> bool| -> Vec<i64> {
        (0..30).filter(|n| pred(*n)).map(|n| n + 1).collect()
    };
    let filter = |f: AuditFilter| async move { ids(store.audit(&f).await.unwrap()) };
    assert_eq!(
        filter(AuditFilter {
            from: Some(at(5)),
            to: Some(at(12)),
            ..Default::default()
        })
        .await,
        expect(&|n| (5..12).contains(&n))
    );
    assert_eq!(
        filter(AuditFilter {
            actor: Some("bo".into()),
            ..Default::default()
        })
        .await,
        expect(&|n| n % 2 == 1)
    );
    assert_eq!(
        filter(AuditFilter {
            action: Some("export".into()),
            actor: Some("anna".into()),
            ..Default::default()
        })
        .await,
        expect(&|n| n % 5 == 2 && n % 2 == 0)
    );
    assert_eq!(
        filter(AuditFilter {
            target: Some("r-3".into()),
            ..Default::default()
        })
        .await,
        expect(&|n| n % 7 == 3)
    );
    let by_cpr = expect(&|n| n % 3 == 0);
    assert_eq!(
        filter(AuditFilter {
            cpr_hash: Some(keys().lookup_hash(&cpr())),
            ..Default::default()
        })
        .await,
        by_cpr
    );
    assert_eq!(ids(store.audit_by_cpr(&cpr()).await.unwrap()), by_cpr);
    assert_eq!(
        store
            .audit_by_cpr(&Cpr::parse(OTHER_CPR).unwrap())
            .await
            .unwrap(),
        []
    );
    // Paging: a limit, then on after the last id.
    assert_eq!(
        filter(AuditFilter {
            limit: Some(4),
            ..Default::default()
        })
        .await,
        [1, 2, 3, 4]
    );
    assert_eq!(
        filter(AuditFilter {
            after_id: Some(4),
            limit: Some(3),
            actor: Some("anna".into()),
            ..Default::default()
        })
        .await,
        [5, 7, 9]
    );
    assert_eq!(
        filter(AuditFilter {
            limit: Some(0),
            ..Default::default()
        })
        .await,
        Vec::<i64>::new()
    );
}

async fn audit_edited_row_is_detected(db: &TestDb) {
    let store = &db.store;
    append_entries(store, 0, 15).await;
    assert!(store.verify_audit().await.unwrap().is_intact());
    let broken = |id, problem, intact| AuditVerification::Broken {
        id,
        problem,
        intact,
    };

    // The action of entry 4 changed: its hash no longer matches.
    assert_eq!(
        raw_sql(store, "UPDATE audit_log SET action = 'erase' WHERE id = 4").await,
        1
    );
    assert_eq!(
        store.verify_audit().await.unwrap(),
        broken(4, AuditProblem::HashMismatch, 3)
    );
    // Found in any page size.
    assert_eq!(
        store.verify_audit_paged(3).await.unwrap(),
        broken(4, AuditProblem::HashMismatch, 3)
    );
    // Put back, the chain is whole again.
    raw_sql(store, "UPDATE audit_log SET action = 'hold' WHERE id = 4").await;
    assert!(store.verify_audit().await.unwrap().is_intact());

    // Each hashed column, edited, is found.
    for (column, value) in [
        ("actor", "'mallory'"),
        ("role", "'admin'"),
        ("target", "'r-99'"),
        ("reason", "'other'"),
        ("reason", "NULL"),
        ("cpr_hash", "NULL"),
        ("at_us", "at_us + 1"),
    ] {
        // Entry 12 (id 13) has a reason and a citizen.
        let original: Row6 = read_row(store, 13).await;
        assert_eq!(
            raw_sql(
                store,
                &format!("UPDATE audit_log SET {column} = {value} WHERE id = 13"),
            )
            .await,
            1
        );
        assert_eq!(
            store.verify_audit().await.unwrap(),
            broken(13, AuditProblem::HashMismatch, 12),
            "{column} = {value}"
        );
        write_row(store, 13, &original).await;
        assert!(store.verify_audit().await.unwrap().is_intact());
    }

    // The actor of entry 6 changed and its hash recomputed: entry 7's link breaks.
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    let mut forged = rows[5].entry.clone();
    forged.actor = "mallory".into();
    let hash = forged.chain_hash(6, &rows[5].prev_hash);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    let set_hash = match store.backend() {
        Backend::Sqlite => format!("X'{hex}'"),
        Backend::Postgres => format!("'\\x{hex}'::bytea"),
    };
    raw_sql(
        store,
        &format!("UPDATE audit_log SET actor = 'mallory', hash = {set_hash} WHERE id = 6"),
    )
    .await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        broken(7, AuditProblem::PrevMismatch, 6)
    );
}

/// The editable columns of an audit row, to put back after tampering.
type Row6 = (String, String, String, Option<String>, Option<Vec<u8>>, i64);

async fn read_row(store: &Store, id: i64) -> Row6 {
    on_pool!(store, |pool| sqlx::query_as(
        "SELECT actor, role, target, reason, cpr_hash, at_us FROM audit_log WHERE id = $1"
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap())
}

async fn write_row(store: &Store, id: i64, row: &Row6) {
    on_pool!(store, |pool| sqlx::query(
        "UPDATE audit_log SET actor = $2, role = $3, target = $4, reason = $5, cpr_hash = $6, \
         at_us = $7 WHERE id = $1"
    )
    .bind(id)
    .bind(&row.0)
    .bind(&row.1)
    .bind(&row.2)
    .bind(&row.3)
    .bind(&row.4)
    .bind(row.5)
    .execute(pool)
    .await
    .unwrap()
    .rows_affected());
}

async fn audit_deleted_middle_row_is_detected(db: &TestDb) {
    let store = &db.store;
    append_entries(store, 0, 10).await;
    assert_eq!(
        raw_sql(store, "DELETE FROM audit_log WHERE id = 5").await,
        1
    );
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            id: 6,
            problem: AuditProblem::Gap { expected: 5 },
            intact: 4
        }
    );
    // Deleting the first row is a gap too (the chain starts at id 1 without an anchor).
    raw_sql(store, "DELETE FROM audit_log WHERE id = 1").await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            id: 2,
            problem: AuditProblem::Gap { expected: 1 },
            intact: 0
        }
    );
}

async fn audit_chain_ok(db: &TestDb) {
    let store = &db.store;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut ids = vec![];
                for i in 0..50 {
                    let entry = AuditEntry::new(
                        at(i),
                        format!("task-{t}"),
                        "agent",
                        "listen",
                        format!("r-{t}-{i}"),
                    );
                    ids.push(store.append_audit(&entry).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut all = vec![];
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<i64>>());
    match store.verify_audit().await.unwrap() {
        AuditVerification::Intact {
            entries,
            first_id,
            last_id,
            ..
        } => assert_eq!((entries, first_id, last_id), (400, Some(1), Some(400))),
        broken => panic!("the chain forked: {broken:?}"),
    }
    for t in 0..8 {
        let rows = store
            .audit(&AuditFilter {
                actor: Some(format!("task-{t}")),
                ..Default::default()
            })
            .await
            .unwrap();
        let targets: Vec<String> = rows.into_iter().map(|r| r.entry.target).collect();
        assert_eq!(
            targets,
            (0..50).map(|i| format!("r-{t}-{i}")).collect::<Vec<_>>()
        );
    }
}

async fn audit_purge_keeps_the_chain_verifiable(db: &TestDb) {
    let store = &db.store;
    append_entries(store, 0, 20).await;
    assert_eq!(store.purge_audit_before(at(0)).await.unwrap(), 0);
    assert_eq!(store.purge_audit_before(at(5)).await.unwrap(), 5);
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact {
            entries: 15,
            first_id: Some(6),
            last_id: Some(20),
            head: store.audit(&AuditFilter::default()).await.unwrap()[14].hash,
        }
    );
    // A purge again with the same cut-off removes nothing.
    assert_eq!(store.purge_audit_before(at(5)).await.unwrap(), 0);
    // Removing the first remaining row by hand is found against the anchor.
    let first = read_row(store, 6).await;
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    raw_sql(store, "DELETE FROM audit_log WHERE id = 6").await;
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Broken {
            id: 7,
            problem: AuditProblem::Gap { expected: 6 },
            intact: 0
        }
    );
    // Put back (same id, hashes as stored), intact again.
    on_pool!(store, |pool| sqlx::query(
        "INSERT INTO audit_log (id, at_us, actor, role, action, target, reason, cpr_hash, \
         prev_hash, hash) VALUES (6, $1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )
    .bind(first.5)
    .bind(&first.0)
    .bind(&first.1)
    .bind(&rows[0].entry.action)
    .bind(&first.2)
    .bind(&first.3)
    .bind(&first.4)
    .bind(rows[0].prev_hash.to_vec())
    .bind(rows[0].hash.to_vec())
    .execute(pool)
    .await
    .unwrap()
    .rows_affected());
    assert!(store.verify_audit().await.unwrap().is_intact());
    // A later entry stamped before the cut-off keeps the later entries: only a prefix goes.
    raw_sql(
        store,
        "UPDATE audit_log SET at_us = at_us + 100000000 WHERE id = 9",
    )
    .await;
    // (This breaks the hash of id 9; it is put back after the purge.)
    assert_eq!(store.purge_audit_before(at(12)).await.unwrap(), 3);
    let left = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(left[0].id, 9);
    assert!(left[1].entry.at < at(12));
    raw_sql(
        store,
        "UPDATE audit_log SET at_us = at_us - 100000000 WHERE id = 9",
    )
    .await;
    assert!(store.verify_audit().await.unwrap().is_intact());
    // Everything purged: the chain goes on from the anchor.
    assert_eq!(store.purge_audit_before(at(1_000)).await.unwrap(), 12);
    let anchor_head = match store.verify_audit().await.unwrap() {
        AuditVerification::Intact {
            entries: 0,
            first_id: None,
            last_id: None,
            head,
        } => head,
        other => panic!("{other:?}"),
    };
    assert_ne!(anchor_head, GENESIS);
    assert_eq!(
        store.append_audit(&audit_entry(store, 30)).await.unwrap(),
        21
    );
    let row = store
        .audit(&AuditFilter::default())
        .await
        .unwrap()
        .remove(0);
    assert_eq!(row.prev_hash, anchor_head);
    assert_eq!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact {
            entries: 1,
            first_id: Some(21),
            last_id: Some(21),
            head: row.hash,
        }
    );
}

// --- records management (issue 9) ---------------------------------------------------------

on_both!(
    cpr_correction_moves_the_call_to_the_right_citizen,
    listen_grants_follow_the_agents_decisions,
    access_request_finds_exactly_the_citizens_items,
    search_calls_by_every_key,
);

async fn cpr_correction_moves_the_call_to_the_right_citizen(db: &TestDb) {
    let store = &db.store;
    let mistyped = Cpr::parse(OTHER_CPR).unwrap();
    store
        .insert_call(&call_row("c-1", 100, Some(mistyped.clone())))
        .await
        .unwrap();
    closed_rec(store, "r-1", "c-1", 120, 10_000, Some(mistyped.clone())).await;
    assert_eq!(store.calls_by_cpr(&cpr()).await.unwrap(), []);

    store
        .correct_call_cpr("c-1", &cpr(), "anna", at(130))
        .await
        .unwrap();
    let found = store.calls_by_cpr(&cpr()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].cpr_corrected, Some(("anna".to_owned(), at(130))));
    assert_eq!(store.calls_by_cpr(&mistyped).await.unwrap(), []);
    assert_eq!(store.recordings_by_cpr(&cpr()).await.unwrap().len(), 1);
    assert_eq!(store.recordings_by_cpr(&mistyped).await.unwrap(), []);

    // The number typed in the IVR, written again when the call ends, does not undo it…
    store.set_call_cpr("c-1", &mistyped).await.unwrap();
    assert_eq!(
        store.call("c-1").await.unwrap().unwrap().call.cpr,
        Some(cpr())
    );
    // …and a recording that starts later on the call carries the corrected number.
    store
        .insert_recording(&new_rec(
            "r-2",
            "c-1",
            RecordingKind::Call,
            200,
            Some(mistyped),
        ))
        .await
        .unwrap();
    assert_eq!(
        store.recording("r-2").await.unwrap().unwrap().cpr,
        Some(cpr())
    );
    assert!(matches!(
        store.correct_call_cpr("c-9", &cpr(), "anna", at(1)).await,
        Err(StoreError::NoSuchCall { .. })
    ));
}

async fn listen_grants_follow_the_agents_decisions(db: &TestDb) {
    let store = &db.store;
    let state = |g: Option<ListenGrant>| g.map(|g| g.state);
    assert_eq!(store.listen_grant("r-1", "tina").await.unwrap(), None);
    assert_eq!(
        store
            .request_listen("r-1", "anna", "tina", "coaching", at(1))
            .await
            .unwrap(),
        GrantState::Requested
    );
    store
        .decide_listen("r-1", "anna", "tina", true, at(2))
        .await
        .unwrap();
    assert_eq!(
        state(store.listen_grant("r-1", "tina").await.unwrap()),
        Some(GrantState::Granted)
    );
    // Asking again does not undo a grant.
    assert_eq!(
        store
            .request_listen("r-1", "anna", "tina", "again", at(3))
            .await
            .unwrap(),
        GrantState::Granted
    );
    // A grant is per grantee: the coach has none.
    assert_eq!(store.listen_grant("r-1", "carl").await.unwrap(), None);
    assert!(store.withdraw_listen("r-1", "tina", at(4)).await.unwrap());
    assert!(!store.withdraw_listen("r-1", "tina", at(5)).await.unwrap());
    assert_eq!(
        state(store.listen_grant("r-1", "tina").await.unwrap()),
        Some(GrantState::Withdrawn)
    );
    store
        .decide_listen("r-2", "anna", "carl", false, at(6))
        .await
        .unwrap();
    store
        .decide_listen("r-3", "bo", "tina", true, at(7))
        .await
        .unwrap();
    let annas = store.listen_grants(Some("anna"), None).await.unwrap();
    assert_eq!(
        annas
            .iter()
            .map(|g| (g.recording_id.as_str(), g.grantee.as_str(), g.state))
            .collect::<Vec<_>>(),
        [
            ("r-2", "carl", GrantState::Refused),
            ("r-1", "tina", GrantState::Withdrawn)
        ]
    );
    let tinas = store.listen_grants(None, Some("tina")).await.unwrap();
    assert_eq!(tinas.len(), 2);
    assert_eq!(tinas[0].recording_id, "r-3");
}

async fn access_request_finds_exactly_the_citizens_items(db: &TestDb) {
    let store = &db.store;
    let other = Cpr::parse(OTHER_CPR).unwrap();
    store
        .insert_call(&call_row("c-1", 100, Some(cpr())))
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-2", 200, Some(other.clone())))
        .await
        .unwrap();
    store
        .insert_call(&call_row("c-3", 300, Some(cpr())))
        .await
        .unwrap();
    closed_rec(store, "r-1", "c-1", 110, 1_000, Some(cpr())).await;
    closed_rec(store, "r-2", "c-2", 210, 1_000, Some(other.clone())).await;
    closed_rec(store, "r-3", "c-3", 310, 400, Some(cpr())).await;
    store
        .insert_recording(&new_rec(
            "m-1",
            "c-3",
            RecordingKind::Message,
            320,
            Some(cpr()),
        ))
        .await
        .unwrap();
    // r-3 is deleted at its deadline: a tombstone is left.
    store
        .delete_recording("r-3", "retention", at(500), at(99_000))
        .await
        .unwrap();
    // Who listened to the citizen's recordings, and an entry about somebody else.
    let listened = store
        .append_audit(&AuditEntry::new(
            at(600),
            "tina",
            "team-leader",
            "listen",
            "r-1",
        ))
        .await
        .unwrap();
    let searched = store
        .append_audit(
            &AuditEntry::new(at(610), "rita", "records-officer", "search-cpr", "calls")
                .with_cpr_hash(store.cpr_lookup_hash(&cpr())),
        )
        .await
        .unwrap();
    store
        .append_audit(&AuditEntry::new(
            at(620),
            "tina",
            "team-leader",
            "listen",
            "r-2",
        ))
        .await
        .unwrap();

    let request = NewAccessRequest {
        law: AccessLaw::Forvaltningsloven,
        received: jiff::civil::date(2026, 1, 5),
        requester: "Borgeren selv".into(),
        identity_verified_by: "MitID".into(),
        cpr: cpr(),
    };
    let id = store
        .open_access_request(&request, "rita", at(700))
        .await
        .unwrap();
    let stored = store.access_request(id).await.unwrap().unwrap();
    assert_eq!(stored.cpr, cpr());
    assert_eq!(stored.state, AccessState::Open);
    assert_eq!(stored.received, jiff::civil::date(2026, 1, 5));
    let items: Vec<(AccessItemKind, String)> = store
        .access_items(id)
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.kind, i.item_id))
        .collect();
    let mut expected = vec![
        (AccessItemKind::Recording, "r-1".to_owned()),
        (AccessItemKind::Message, "m-1".to_owned()),
        (AccessItemKind::Call, "c-1".to_owned()),
        (AccessItemKind::Call, "c-3".to_owned()),
        (AccessItemKind::Tombstone, "r-3".to_owned()),
        (AccessItemKind::Audit, listened.to_string()),
        (AccessItemKind::Audit, searched.to_string()),
    ];
    let mut sorted = items.clone();
    sorted.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    expected.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
    assert_eq!(sorted, expected);
    // Finding again adds nothing.
    assert_eq!(store.find_access_items(id).await.unwrap(), 0);

    // The hold keeps the citizen's recording past its deadline; the other citizen's goes.
    assert_eq!(
        store
            .delete_recordings(&["r-1", "r-2"], "retention", at(1_100), at(99_000))
            .await
            .unwrap(),
        ["2026/01/r-2.kre"]
    );
    // A call found by other keys (a relative called) can be added, once.
    assert!(store
        .add_access_item(id, AccessItemKind::Call, "c-2")
        .await
        .unwrap());
    assert!(!store
        .add_access_item(id, AccessItemKind::Call, "c-2")
        .await
        .unwrap());

    let muted = ItemDecision::ReleaseMuted(vec![(1_000, 2_500), (4_000, 5_000)]);
    store
        .decide_access_item(
            id,
            AccessItemKind::Recording,
            "r-1",
            &muted,
            "rita",
            at(800),
        )
        .await
        .unwrap();
    let withhold = ItemDecision::Withhold("forvaltningsloven § 15 b, nr. 1".into());
    store
        .decide_access_item(id, AccessItemKind::Call, "c-2", &withhold, "rita", at(801))
        .await
        .unwrap();
    assert!(matches!(
        store
            .decide_access_item(id, AccessItemKind::Call, "c-9", &withhold, "rita", at(801))
            .await,
        Err(StoreError::NoSuchAccessItem { .. })
    ));
    let decided: Vec<_> = store
        .access_items(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.decision.is_some())
        .map(|i| (i.item_id, i.decision.unwrap(), i.decided_by))
        .collect();
    assert_eq!(
        decided,
        [
            ("c-2".to_owned(), withhold, Some("rita".to_owned())),
            ("r-1".to_owned(), muted, Some("rita".to_owned())),
        ]
    );

    store
        .extend_access_request(id, jiff::civil::date(2026, 1, 30), "mange optagelser")
        .await
        .unwrap();
    store
        .set_access_state(id, AccessState::Answered, "rita", at(900))
        .await
        .unwrap();
    let answered = store.access_request(id).await.unwrap().unwrap();
    assert_eq!(
        answered.extension,
        Some((
            jiff::civil::date(2026, 1, 30),
            "mange optagelser".to_owned()
        ))
    );
    assert_eq!(answered.answered, Some(at(900)));
    assert_eq!(store.access_requests(true).await.unwrap().len(), 1);
    // Closing lifts the hold: the recording goes at the next sweep.
    store
        .set_access_state(id, AccessState::Closed, "rita", at(1_000))
        .await
        .unwrap();
    assert_eq!(store.access_requests(true).await.unwrap(), []);
    assert_eq!(store.access_requests(false).await.unwrap().len(), 1);
    assert_eq!(
        store
            .delete_recordings(&["r-1"], "retention", at(1_200), at(99_000))
            .await
            .unwrap(),
        ["2026/01/r-1.kre"]
    );
}

async fn search_calls_by_every_key(db: &TestDb) {
    let store = &db.store;
    let other = Cpr::parse(OTHER_CPR).unwrap();
    let mut relative = call_row("c-2", 200, None);
    relative.caller = Some("+4598765432".into());
    store
        .insert_call(&call_row("c-1", 100, Some(cpr())))
        .await
        .unwrap();
    store.insert_call(&relative).await.unwrap();
    store
        .insert_call(&call_row("c-3", 300, Some(other)))
        .await
        .unwrap();
    store
        .finish_call("c-1", at(150), "answered", Some("anna"), false)
        .await
        .unwrap();
    store
        .finish_call("c-2", at(250), "answered", Some("bo"), false)
        .await
        .unwrap();
    raw_sql(
        store,
        "INSERT INTO journal_links (call_id, case_number, created_by, created_us) \
         VALUES ('c-2', '27.12.04-P20-1-26', 'bo', 1), ('c-3', 'gone', 'bo', 1)",
    )
    .await;
    raw_sql(
        store,
        "UPDATE journal_links SET removed_by = 'bo', removed_us = 2 WHERE case_number = 'gone'",
    )
    .await;
    let ids =
        |calls: Vec<CallRecord>| -> Vec<String> { calls.into_iter().map(|c| c.call.id).collect() };
    let search = |s: CallSearch| async move { ids(store.search_calls(&s).await.unwrap()) };
    assert_eq!(search(CallSearch::default()).await, ["c-3", "c-2", "c-1"]);
    assert_eq!(
        search(CallSearch {
            cpr: Some(cpr()),
            ..CallSearch::default()
        })
        .await,
        ["c-1"]
    );
    assert_eq!(
        search(CallSearch {
            caller: Some("+4598765432".into()),
            ..CallSearch::default()
        })
        .await,
        ["c-2"]
    );
    assert_eq!(
        search(CallSearch {
            from: Some(at(150)),
            to: Some(at(300)),
            ..CallSearch::default()
        })
        .await,
        ["c-2"]
    );
    assert_eq!(
        search(CallSearch {
            case_number: Some("27.12.04-P20-1-26".into()),
            ..CallSearch::default()
        })
        .await,
        ["c-2"]
    );
    // A removed link no longer finds the call.
    assert_eq!(
        search(CallSearch {
            case_number: Some("gone".into()),
            ..CallSearch::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(CallSearch {
            agent: Some("anna".into()),
            ..CallSearch::default()
        })
        .await,
        ["c-1"]
    );
    assert_eq!(
        search(CallSearch {
            cpr: Some(cpr()),
            agent: Some("bo".into()),
            ..CallSearch::default()
        })
        .await,
        Vec::<String>::new()
    );
    assert_eq!(
        search(CallSearch {
            limit: 2,
            ..CallSearch::default()
        })
        .await,
        ["c-3", "c-2"]
    );
}

// --- retention: the journal guard, audited deletions, call records' personal data ---------

on_both!(
    deletion_keeps_linked_recordings_erasure_takes_them,
    audited_deletions_extend_the_chain,
    audit_batch_chains_like_single_appends,
    call_pii_is_scrubbed_unless_held_or_recorded,
);

async fn deletion_keeps_linked_recordings_erasure_takes_them(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 0, 100, Some(cpr())).await;
    closed_rec(store, "r-2", "c-2", 0, 100, None).await;
    closed_rec(store, "r-3", "c-3", 0, 100, None).await;
    // The sweeper lists them while none is linked …
    let due = store.sweep_candidates(at(200), None, 10).await.unwrap();
    assert_eq!(ids_of(&due), ["r-1", "r-2", "r-3"]);
    assert!(due.iter().all(|i| i.journal == JournalState::None));
    // … then an agent links c-1 and c-3 to a case before it deletes: the links win.
    store
        .add_journal_link("c-1", "S2026-1", None, "anna", at(150))
        .await
        .unwrap();
    store
        .add_journal_link("c-3", "S2026-2", None, "anna", at(150))
        .await
        .unwrap();
    let files = store
        .delete_recordings(&["r-1", "r-2", "r-3"], "retention", at(200), at(900))
        .await
        .unwrap();
    assert_eq!(files, ["2026/01/r-2.kre"]);
    assert_eq!(
        store
            .delete_recording("r-1", "retention", at(200), at(900))
            .await
            .unwrap(),
        None
    );
    let audit = AuditEntry::new(at(200), "kald", "system", "delete", "");
    assert_eq!(
        store
            .delete_recordings_audited(&["r-1"], "retention", at(200), at(900), &audit)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(store.audit(&AuditFilter::default()).await.unwrap(), []);
    assert!(store.tombstone("r-1").await.unwrap().is_none());
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );

    // The records officer's erasure takes a linked recording (GDPR art. 17) …
    assert_eq!(
        store
            .erase_recording("r-1", "erased", at(300), at(900))
            .await
            .unwrap()
            .as_deref(),
        Some("2026/01/r-1.kre")
    );
    let t = store.tombstone("r-1").await.unwrap().unwrap();
    assert_eq!(
        (t.reason.as_str(), t.cpr_hash),
        ("erased", Some(keys().lookup_hash(&cpr())))
    );
    // … but not a held one; after the hold is lifted, yes.
    let hold = store
        .add_hold(&HoldTarget::Call("c-3".into()), "complaint", "ro", at(250))
        .await
        .unwrap();
    assert_eq!(
        store
            .erase_recording("r-3", "erased", at(300), at(900))
            .await
            .unwrap(),
        None
    );
    assert!(store.recording("r-3").await.unwrap().is_some());
    store.lift_hold(hold, "ro", at(310)).await.unwrap();
    // Still linked: retention keeps it, erasure takes it.
    assert_eq!(
        store
            .delete_recording("r-3", "retention", at(320), at(900))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .erase_recording("r-3", "erased", at(320), at(900))
            .await
            .unwrap()
            .as_deref(),
        Some("2026/01/r-3.kre")
    );
    // Again: nothing left to erase.
    assert_eq!(
        store
            .erase_recording("r-3", "erased", at(330), at(900))
            .await
            .unwrap(),
        None
    );
}

async fn audited_deletions_extend_the_chain(db: &TestDb) {
    let store = &db.store;
    append_entries(store, 0, 3).await;
    for i in 1..=5 {
        let cpr = (i % 2 == 1).then(cpr);
        closed_rec(store, &format!("r-{i}"), &format!("c-{i}"), 0, 100, cpr).await;
    }
    store
        .add_hold(
            &HoldTarget::Recording("r-4".into()),
            "complaint",
            "ro",
            at(50),
        )
        .await
        .unwrap();
    store
        .add_journal_link("c-5", "S2026-1", None, "anna", at(60))
        .await
        .unwrap();
    let template =
        AuditEntry::new(at(200), "kald", "system", "delete", "").with_reason("retention: 3 months");
    let ids = ["r-1", "r-2", "r-3", "r-4", "r-5", "r-missing"];
    let mut files = store
        .delete_recordings_audited(&ids, "retention", at(200), at(900), &template)
        .await
        .unwrap();
    files.sort();
    assert_eq!(
        files,
        ["2026/01/r-1.kre", "2026/01/r-2.kre", "2026/01/r-3.kre"]
    );
    // One entry per recording deleted, none for the held, linked or missing ones.
    let rows = store
        .audit(&AuditFilter {
            action: Some("delete".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut got: Vec<(String, Option<[u8; 32]>)> = rows
        .iter()
        .map(|r| (r.entry.target.clone(), r.entry.cpr_hash))
        .collect();
    got.sort();
    let hash = keys().lookup_hash(&cpr());
    assert_eq!(
        got,
        [
            ("r-1".to_owned(), Some(hash)),
            ("r-2".to_owned(), None),
            ("r-3".to_owned(), Some(hash)),
        ]
    );
    assert!(rows.iter().all(|r| r.entry.actor == "kald"
        && r.entry.role == "system"
        && r.entry.at == at(200)
        && r.entry.reason.as_deref() == Some("retention: 3 months")));
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        [4, 5, 6],
        "consecutive after the earlier entries"
    );
    // The access request by CPR finds the deletions.
    assert_eq!(
        store
            .audit_by_cpr(&cpr())
            .await
            .unwrap()
            .iter()
            .filter(|r| r.entry.action == "delete")
            .count(),
        2
    );
    // Appends go on from there; the chain holds.
    assert_eq!(store.append_audit(&audit_entry(store, 9)).await.unwrap(), 7);
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact {
            entries: 7,
            last_id: Some(7),
            ..
        }
    ));

    // After a purge of every row the next deletion continues from the anchor.
    assert_eq!(store.purge_audit_before(at(100_000)).await.unwrap(), 7);
    closed_rec(store, "r-6", "c-6", 0, 100, None).await;
    store
        .delete_recordings_audited(&["r-6"], "retention", at(300), at(900), &template)
        .await
        .unwrap();
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].id, rows[0].entry.target.as_str()), (8, "r-6"));
    assert!(store.verify_audit().await.unwrap().is_intact());

    // Many recordings over several batches, while other appends interleave: still one
    // unbroken chain, an entry per deletion.
    let n = DELETE_BATCH * 2 + 7;
    let ids: Vec<String> = (0..n).map(|i| format!("b-{i:04}")).collect();
    for (i, id) in ids.iter().enumerate() {
        closed_rec(store, id, &format!("cb-{i}"), 0, 100, None).await;
    }
    let (deleted, appended) = tokio::join!(
        store.delete_recordings_audited(&ids, "retention", at(400), at(900), &template),
        async {
            for k in 0..20 {
                store.append_audit(&audit_entry(store, k)).await.unwrap();
            }
        }
    );
    let () = appended;
    assert_eq!(deleted.unwrap().len(), n);
    let deletes = store
        .audit(&AuditFilter {
            action: Some("delete".into()),
            after_id: Some(8),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let mut targets: Vec<&str> = deletes.iter().map(|r| r.entry.target.as_str()).collect();
    targets.sort_unstable();
    assert_eq!(targets, ids);
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact { entries, .. } if entries == (1 + n + 20) as u64
    ));
}

async fn audit_batch_chains_like_single_appends(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.append_audit_batch(&[]).await.unwrap(), None);
    append_entries(store, 0, 2).await;
    let n = audit::AUDIT_INSERT_ROWS as i64 * 2 + 3;
    let entries: Vec<AuditEntry> = (2..2 + n).map(|k| audit_entry(store, k)).collect();
    assert_eq!(
        store.append_audit_batch(&entries).await.unwrap(),
        Some(2 + n)
    );
    append_entries(store, 2 + n, 4 + n).await;
    let rows = store.audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(rows.len() as i64, 4 + n);
    // Each row is exactly what one-by-one appends would have written.
    let mut prev = GENESIS;
    for (k, row) in rows.iter().enumerate() {
        let k = k as i64;
        assert_eq!(row.id, k + 1);
        assert_eq!(row.entry, audit_entry(store, k));
        assert_eq!(row.prev_hash, prev);
        assert_eq!(row.hash, row.entry.chain_hash(row.id, &prev));
        prev = row.hash;
    }
    assert!(store.verify_audit().await.unwrap().is_intact());
}

async fn call_pii_is_scrubbed_unless_held_or_recorded(db: &TestDb) {
    let store = &db.store;
    let other = Cpr::parse(OTHER_CPR).unwrap();
    // c-1: ended at 100; c-2 has a recording; c-3 held by call; c-4 held by CPR (the other
    // citizen); c-5 has no CPR number; c-6 is too young; c-7 never ended (started at 50).
    for (id, second, cpr) in [
        ("c-1", 10, Some(cpr())),
        ("c-2", 20, Some(cpr())),
        ("c-3", 30, Some(cpr())),
        ("c-4", 40, Some(other.clone())),
        ("c-5", 45, None),
        ("c-6", 5_000, Some(cpr())),
        ("c-7", 50, Some(cpr())),
    ] {
        store.insert_call(&call_row(id, second, cpr)).await.unwrap();
        if id != "c-7" {
            store
                .finish_call(id, at(second + 90), "answered", Some("anna"), false)
                .await
                .unwrap();
        }
    }
    closed_rec(store, "r-2", "c-2", 25, 9_000, Some(cpr())).await;
    let by_call = store
        .add_hold(&HoldTarget::Call("c-3".into()), "complaint", "ro", at(60))
        .await
        .unwrap();
    let by_cpr = store
        .add_hold(
            &HoldTarget::Cpr(other.clone()),
            "access request",
            "ro",
            at(60),
        )
        .await
        .unwrap();

    // Listed in order of their end, with holds and recordings; paged by the cursor.
    let mut listed = vec![];
    let mut cursor = None;
    loop {
        let page = store
            .call_pii_candidates(at(1_000), cursor.as_ref(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor());
        listed.extend(page);
    }
    let summary: Vec<(&str, Timestamp, u32, u32)> = listed
        .iter()
        .map(|c| (c.id.as_str(), c.ended, c.holds, c.recordings))
        .collect();
    assert_eq!(
        summary,
        [
            ("c-7", at(50), 0, 0),
            ("c-1", at(100), 0, 0),
            ("c-2", at(110), 0, 1),
            ("c-3", at(120), 1, 0),
            ("c-4", at(130), 1, 0),
        ]
    );

    // A hold placed after the listing still wins.
    store
        .add_hold(&HoldTarget::Call("c-7".into()), "complaint", "ro", at(900))
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
    // (Which are due is the sweeper's decision; the store skips calls without a CPR number.)
    let mut all = ids.clone();
    all.extend(["c-5", "nope"]);
    assert_eq!(
        store.scrub_call_pii(&all, at(2_000)).await.unwrap(),
        ["c-1"]
    );
    let c1 = store.call("c-1").await.unwrap().unwrap();
    assert_eq!((c1.call.cpr, c1.call.caller), (None, None));
    // The statistics stay.
    assert_eq!(
        (
            c1.call.topic.as_deref(),
            c1.call.queue.as_deref(),
            c1.call.consent,
            c1.end.map(|e| e.ended)
        ),
        (
            Some("sygedagpenge"),
            Some("sygedagpenge"),
            Some(true),
            Some(at(100))
        )
    );
    assert_eq!(
        store.call_pii_scrubbed("c-1").await.unwrap(),
        Some(at(2_000))
    );
    assert_eq!(store.call_pii_scrubbed("c-2").await.unwrap(), None);
    assert_eq!(store.call_pii_scrubbed("nope").await.unwrap(), None);
    let found: Vec<String> = store
        .calls_by_cpr(&cpr())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call.id)
        .collect();
    assert_eq!(found, ["c-2", "c-3", "c-7", "c-6"]);
    // The caller's number stays on the call without a CPR number.
    assert!(store
        .call("c-5")
        .await
        .unwrap()
        .unwrap()
        .call
        .caller
        .is_some());
    // Nothing of c-1's CPR number is left in the database.
    assert_eq!(
        raw_count(store, "SELECT COUNT(*) FROM calls WHERE id = 'c-1' AND (cpr_sealed IS NOT NULL OR cpr_hash IS NOT NULL OR caller IS NOT NULL)").await,
        0
    );

    // Once the recording is gone and the holds are lifted, the rest go.
    store
        .delete_recording("r-2", "retention", at(9_100), at(99_000))
        .await
        .unwrap()
        .unwrap();
    store.lift_hold(by_call, "ro", at(9_200)).await.unwrap();
    store.lift_hold(by_cpr, "ro", at(9_200)).await.unwrap();
    let mut scrubbed = store.scrub_call_pii(&ids, at(9_300)).await.unwrap();
    scrubbed.sort();
    assert_eq!(scrubbed, ["c-2", "c-3", "c-4"]);
    assert_eq!(
        store
            .call_pii_candidates(at(1_000), None, 10)
            .await
            .unwrap()[0]
            .id,
        "c-7"
    );
    // Idempotent.
    assert_eq!(
        store.scrub_call_pii(&ids, at(9_400)).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.call_pii_scrubbed("c-2").await.unwrap(),
        Some(at(9_300))
    );
}

/// The single number a `SELECT COUNT(*) …` returns.
async fn raw_count(store: &Store, sql: &str) -> i64 {
    on_pool!(store, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

/// How long the SQLite store takes to sweep 100,000 due recordings with an audit entry per
/// deletion (run with `--ignored --nocapture`; compare `sqlite_deletes_100k_recordings`).
#[tokio::test]
#[ignore = "benchmark: 100,000 audited deletions on SQLite"]
async fn sqlite_deletes_100k_recordings_audited() {
    const N: usize = 100_000;
    let db = TestDb::sqlite().await;
    let store = &db.store;
    let Pool::Sqlite(pool) = &store.pool else {
        panic!("not SQLite")
    };
    fill_recordings(pool, N).await;
    for i in 0..50 {
        store
            .add_hold(
                &HoldTarget::Call(format!("c-{}", i * 997)),
                "test",
                "ro",
                at(1),
            )
            .await
            .unwrap();
    }
    let template = AuditEntry::new(at(10_000), "kald", "system", "delete", "")
        .with_reason("retention: 3 months");
    let sweep = std::time::Instant::now();
    let mut cursor = None;
    let mut deleted = 0;
    loop {
        let page = store
            .sweep_candidates(at(10_000), cursor.as_ref(), 1_000)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.cursor());
        let ids: Vec<&str> = page
            .iter()
            .filter(|i| !i.held)
            .map(|i| i.id.as_str())
            .collect();
        deleted += store
            .delete_recordings_audited(&ids, "retention", at(10_000), at(20_000), &template)
            .await
            .unwrap()
            .len();
    }
    let swept = sweep.elapsed();
    assert_eq!(deleted, N - 50);
    let verify = std::time::Instant::now();
    assert!(matches!(
        store.verify_audit().await.unwrap(),
        AuditVerification::Intact { entries, .. } if entries == (N - 50) as u64
    ));
    let verify = verify.elapsed();
    let _ = writeln!(
        std::io::stderr(),
        "SQLite, {N} recordings: swept with an audit entry per deletion in {swept:.2?} \
         ({:.1} µs per recording); verified the chain of {deleted} in {verify:.2?}",
        swept.as_secs_f64() * 1e6 / N as f64
    );
    db.cleanup().await;
}

/// The registrar's snapshot replaces the saved bindings whole; only unexpired ones come back,
/// also after a restart.
async fn sip_bindings_snapshot(db: &TestDb) {
    let store = &db.store;
    let row = |agent: &str, contact: &str, port: u16, expires: i64| SipBindingRow {
        agent: agent.into(),
        contact: contact.into(),
        call_id: format!("reg-{agent}"),
        cseq: 4_000_000_000,
        remote: format!("127.0.0.2:{port}").parse().unwrap(),
        local: "[::1]:5060".parse().unwrap(),
        expires: at(expires),
    };
    assert_eq!(store.sip_bindings("a", at(0)).await.unwrap(), vec![]);
    let first = vec![
        row("bo", "sip:bo@127.0.0.2:5070", 5070, 500),
        row("anna", "sip:anna@127.0.0.2:5062", 5062, 900),
        row("anna", "sip:anna@127.0.0.2:5064", 5064, 100),
    ];
    store.replace_sip_bindings("a", &first).await.unwrap();
    // Another kald on the same database keeps its own.
    let theirs = vec![row("bo", "sip:bo@127.0.0.2:5070", 5070, 800)];
    store.replace_sip_bindings("b", &theirs).await.unwrap();
    assert_eq!(
        store.sip_bindings("a", at(100)).await.unwrap(),
        vec![first[1].clone(), first[0].clone()],
        "by agent and contact, the expired one left out"
    );
    // A new snapshot replaces the old: Bo's phone is gone, Anna's refreshed.
    let second = vec![row("anna", "sip:anna@127.0.0.2:5062", 5099, 3_600)];
    store.replace_sip_bindings("a", &second).await.unwrap();
    let again = db.reopen(keys()).await;
    assert_eq!(again.sip_bindings("a", at(1_000)).await.unwrap(), second);
    again.replace_sip_bindings("a", &[]).await.unwrap();
    assert_eq!(again.sip_bindings("a", at(0)).await.unwrap(), vec![]);
    assert_eq!(again.sip_bindings("b", at(0)).await.unwrap(), theirs);
    again.close().await;
}
