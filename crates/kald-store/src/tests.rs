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
                let mut bytes = Vec::new();
                for entry in std::fs::read_dir(dir.path()).unwrap() {
                    bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
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

on_both!(
    agents,
    agent_states,
    queue_events,
    queue_event_batch,
    calls,
    calls_by_cpr,
    cpr_never_stored_in_clear,
    restart_finds_everything,
    wrong_keys_cannot_read_cpr,
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
            end: None
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
            end: None
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
            end: Some(end)
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
    let hash = keys().lookup_hash(&cpr());

    let dump = db.dump().await;
    let contains = |needle: &[u8]| dump.windows(needle.len()).any(|w| w == needle);
    // The dump does hold the calls (so the check below is not vacuous) …
    assert!(
        contains(b"jobcenter@3"),
        "the dump does not contain the calls"
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
