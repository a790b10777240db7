//! Records management through the API (issue 9): who may listen, the agent's grants, case
//! links and CPR corrections, search, erasure, holds, access requests with their archive, and
//! the audit log — against a real SQLite store and real encrypted recordings.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::Read as _;

use axum::http::{Method, StatusCode};
use common::{
    fake_records, Fake, ANNA_CPR, ANNA_CPR_DASHED, ANNA_RECORDING, BO_RECORDING, RECORDING_SECONDS,
    WAITING_CPR,
};
use serde_json::json;

/// The left and right channels' samples of a WAV.
fn channels(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).unwrap();
    let spec = reader.spec();
    assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
    let samples: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
    let left = samples.iter().step_by(2).copied().collect();
    let right = samples.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

/// Root mean square of a slice.
fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64).sqrt()
}

/// GET as bytes.
async fn bytes(fake: &Fake, path: &str, token: &str) -> (StatusCode, Vec<u8>) {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let response = fake
        .app
        .clone()
        .oneshot(common::request(Method::GET, path, Some(token), None))
        .await
        .unwrap();
    let status = response.status();
    let length = response
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .map(|v| v.to_str().unwrap().parse::<usize>().unwrap());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // Audio and archives are streamed with their length announced first: it must be right.
    if status == StatusCode::OK {
        assert_eq!(length, Some(body.len()), "Content-Length of {path}");
    }
    (status, body.to_vec())
}

/// A team leader is refused an agent's recording until the agent grants it, gets it then,
/// and is refused again once the agent withdraws the grant; the agent sees who listened.
#[tokio::test]
async fn team_leader_needs_the_agents_grant() {
    let fake = fake_records().await;
    let anna = fake.login("anna").await;
    let tina = fake.login("tina").await;
    let carl = fake.login("carl").await;
    let audio = format!("/api/recordings/{ANNA_RECORDING}/audio");

    assert_eq!(bytes(&fake, &audio, &tina).await.0, StatusCode::FORBIDDEN);
    // Tina asks, saying why; Anna sees the request.
    let ask = fake
        .call(
            Method::POST,
            &format!("/api/recordings/{ANNA_RECORDING}/listen-requests"),
            Some(&tina),
            Some(json!({"reason": "opfølgning på klage"})),
        )
        .await;
    assert_eq!(ask.status, StatusCode::NO_CONTENT, "{}", ask.body);
    let mine = fake
        .call(Method::GET, "/api/me/recordings", Some(&anna), None)
        .await
        .json();
    let grants = &mine[0]["grants"];
    assert_eq!(grants[0]["grantee"], "tina");
    assert_eq!(grants[0]["state"], "requested");
    assert_eq!(grants[0]["reason"], "opfølgning på klage");
    // Still refused while only asked.
    assert_eq!(bytes(&fake, &audio, &tina).await.0, StatusCode::FORBIDDEN);

    // Bo cannot grant Anna's recording; Anna cannot grant to an agent.
    let bo = fake.login("bo").await;
    let grant = json!({"grantee": "tina", "grant": true});
    let path = format!("/api/recordings/{ANNA_RECORDING}/grants");
    assert_eq!(
        fake.call(Method::POST, &path, Some(&bo), Some(grant.clone()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fake.call(
            Method::POST,
            &path,
            Some(&anna),
            Some(json!({"grantee": "bo", "grant": true}))
        )
        .await
        .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // Anna grants it to Tina: 200, the real audio.
    assert_eq!(
        fake.call(Method::POST, &path, Some(&anna), Some(grant))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let (status, wav) = bytes(&fake, &audio, &tina).await;
    assert_eq!(status, StatusCode::OK);
    let (left, right) = channels(&wav);
    assert_eq!(left.len(), RECORDING_SECONDS * 8000);
    assert!(rms(&left) > 5000.0 && rms(&right) > 5000.0);
    // The grant is Tina's only: the coach is still refused.
    assert_eq!(bytes(&fake, &audio, &carl).await.0, StatusCode::FORBIDDEN);
    // Tina may download (team leaders may); Carl could not even with a grant (coaches don't).
    let (status, _) = bytes(&fake, &format!("{audio}?download=true"), &tina).await;
    assert_eq!(status, StatusCode::OK);

    // Anna withdraws: 403 again.
    let withdraw = fake
        .call(
            Method::DELETE,
            &format!("/api/recordings/{ANNA_RECORDING}/grants/tina"),
            Some(&anna),
            None,
        )
        .await;
    assert_eq!(withdraw.status, StatusCode::NO_CONTENT);
    assert_eq!(bytes(&fake, &audio, &tina).await.0, StatusCode::FORBIDDEN);

    // Anna sees who accessed her recording, and why.
    let mine = fake
        .call(Method::GET, "/api/me/recordings", Some(&anna), None)
        .await
        .json();
    let accesses: Vec<(String, String)> = mine[0]["accesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["actor"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("tina", "listen-request"),
        ("anna", "consent-grant"),
        ("tina", "listen"),
        ("tina", "download"),
        ("anna", "consent-withdraw"),
    ] {
        assert!(
            accesses.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} missing from {accesses:?}"
        );
    }
    assert_eq!(mine[0]["grants"][0]["state"], "withdrawn");
}

/// A records officer answers an access request: everything of the citizen found and held,
/// each item reviewed, the archive with the muted range silent and an index of decisions.
#[tokio::test]
async fn access_request_to_a_reviewed_archive() {
    let fake = fake_records().await;
    let rita = fake.login("rita").await;
    let tina = fake.login("tina").await;
    // Somebody listened earlier (with Anna's grant): the request must find that too.
    let anna = fake.login("anna").await;
    fake.call(
        Method::POST,
        &format!("/api/recordings/{ANNA_RECORDING}/grants"),
        Some(&anna),
        Some(json!({"grant": true, "grantee": "tina"})),
    )
    .await;
    let (status, _) = bytes(
        &fake,
        &format!("/api/recordings/{ANNA_RECORDING}/audio"),
        &tina,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let opened = fake
        .call(
            Method::POST,
            "/api/access-requests",
            Some(&rita),
            Some(json!({
                "law": "forvaltningsloven",
                "received": "2026-11-20",
                "requester": "Borgeren selv",
                "identity_verified_by": "MitID",
                "cpr": ANNA_CPR,
            })),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let detail = opened.json();
    let id = detail["request"]["id"].as_i64().unwrap();
    // Received Friday 20 November: 7 working days → Tuesday 1 December.
    assert_eq!(detail["request"]["deadline"], "2026-12-01");
    assert_eq!(detail["request"]["cpr"], ANNA_CPR_DASHED);
    let items: Vec<(String, String)> = detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Exactly Anna's citizen: the call, the recording and the audit entries about it; not
    // Bo's call (another citizen).
    assert!(items.contains(&("call".into(), "c-10".into())), "{items:?}");
    assert!(items.contains(&("recording".into(), ANNA_RECORDING.into())));
    assert!(!items.iter().any(|(_, i)| i == "c-11" || i == BO_RECORDING));
    let audit_items: Vec<&(String, String)> = items.iter().filter(|(k, _)| k == "audit").collect();
    assert!(audit_items.len() >= 2, "grant and listen: {items:?}");
    // The hold is placed.
    let holds = fake
        .call(Method::GET, "/api/holds", Some(&rita), None)
        .await
        .json();
    assert!(holds
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["scope"] == "citizen" && h["active"] == true));

    // Not everything decided: no archive yet.
    let archive = format!("/api/access-requests/{id}/archive");
    assert_eq!(bytes(&fake, &archive, &rita).await.0, StatusCode::CONFLICT);
    // Invalid decisions are refused with a reason.
    let decide = |kind: &str, item: &str| format!("/api/access-requests/{id}/items/{kind}/{item}");
    let bad = fake
        .call(
            Method::PUT,
            &decide("recording", ANNA_RECORDING),
            Some(&rita),
            Some(json!({"decision": "release-muted", "muted": [[1.0, 9.0]]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("ends after the audio"), "{}", bad.body);
    let bad = fake
        .call(
            Method::PUT,
            &decide("call", "c-10"),
            Some(&rita),
            Some(json!({"decision": "withhold"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The review: the recording released with 0.5–1.5 s muted (a third party speaks), the
    // audit entries withheld with the legal reason, the rest released.
    for (kind, item) in &items {
        let body = match kind.as_str() {
            "recording" => json!({"decision": "release-muted", "muted": [[0.5, 1.5]]}),
            "audit" => {
                json!({"decision": "withhold", "legal_reason": "forvaltningsloven § 15 b, nr. 1"})
            }
            _ => json!({"decision": "release"}),
        };
        let answer = fake
            .call(Method::PUT, &decide(kind, item), Some(&rita), Some(body))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{kind} {item}: {}",
            answer.body
        );
    }
    let (status, zip) = bytes(&fake, &archive, &rita).await;
    assert_eq!(status, StatusCode::OK);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let names: Vec<String> = zip.file_names().map(str::to_owned).collect();
    let mut index = String::new();
    zip.by_name("indeks.txt")
        .unwrap()
        .read_to_string(&mut index)
        .unwrap();
    assert!(index.contains("Udleveres med dele gjort tavse"), "{index}");
    assert!(index.contains("forvaltningsloven § 15 b, nr. 1"), "{index}");
    assert!(index.contains("0:00.500–0:01.500"), "{index}");
    assert!(!index.contains(ANNA_CPR) && !index.contains(ANNA_CPR_DASHED));
    let wavs: Vec<&String> = names.iter().filter(|n| n.ends_with(".wav")).collect();
    assert_eq!(wavs.len(), 1, "{names:?}");
    let mut wav = Vec::new();
    zip.by_name(wavs[0]).unwrap().read_to_end(&mut wav).unwrap();
    let (left, right) = channels(&wav);
    assert_eq!(left.len(), RECORDING_SECONDS * 8000);
    // Muted: 0.5–1.5 s silent on both channels; before and after, the tones.
    assert_eq!(rms(&left[4000..12000]), 0.0);
    assert_eq!(rms(&right[4000..12000]), 0.0);
    assert!(rms(&left[..4000]) > 5000.0 && rms(&left[12000..]) > 5000.0);
    assert!(rms(&right[12000..]) > 5000.0);

    let answered = fake
        .call(
            Method::GET,
            &format!("/api/access-requests/{id}"),
            Some(&rita),
            None,
        )
        .await
        .json();
    assert_eq!(answered["request"]["state"], "answered");
    // Closing lifts the hold.
    let close = fake
        .call(
            Method::POST,
            &format!("/api/access-requests/{id}/close"),
            Some(&rita),
            None,
        )
        .await;
    assert_eq!(close.status, StatusCode::NO_CONTENT);
    let holds = fake
        .call(Method::GET, "/api/holds", Some(&rita), None)
        .await
        .json();
    assert!(holds
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["active"] == false));
}

/// Links need the configured case-number form; a verified CPR correction makes the call
/// findable by the right number; both are audited.
#[tokio::test]
async fn links_corrections_and_search() {
    let fake = fake_records().await;
    let bo = fake.login("bo").await;
    let rita = fake.login("rita").await;
    let adam = fake.login("adam").await;
    let bad = fake
        .call(
            Method::POST,
            "/api/calls/c-11/links",
            Some(&bo),
            Some(json!({"case_number": "ikke et journalnummer"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let link = fake
        .call(
            Method::POST,
            "/api/calls/c-11/links",
            Some(&bo),
            Some(json!({"case_number": "27.12.04-P20-7-26", "note": "sygemelding"})),
        )
        .await;
    assert_eq!(link.status, StatusCode::CREATED, "{}", link.body);
    // Bo's call carried a mistyped CPR (the waiting caller's); Bo verified and corrects it.
    let invalid = fake
        .call(
            Method::POST,
            "/api/calls/c-11/cpr",
            Some(&bo),
            Some(json!({"cpr": "3213991234", "verified_by": "MitID"})),
        )
        .await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!invalid.body.contains("3213991234"));
    let fixed = fake
        .call(
            Method::POST,
            "/api/calls/c-11/cpr",
            Some(&bo),
            Some(json!({"cpr": ANNA_CPR, "verified_by": "kontrolspørgsmål"})),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::NO_CONTENT, "{}", fixed.body);
    let found = fake
        .call(
            Method::GET,
            &format!("/api/search?cpr={ANNA_CPR}"),
            Some(&rita),
            None,
        )
        .await
        .json();
    let ids: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    // Anna's live call c-1 (newest) is the same citizen; c-11 now too, by the correction.
    assert_eq!(ids, ["c-1", "c-11", "c-10"]);
    assert_eq!(found[1]["cpr_corrected"], true);
    assert_eq!(found[1]["recordings"][0]["journal"], "linked");
    assert_eq!(found[1]["links"][0]["case_number"], "27.12.04-P20-7-26");
    let old = fake
        .call(
            Method::GET,
            &format!("/api/search?cpr={WAITING_CPR}"),
            Some(&rita),
            None,
        )
        .await
        .json();
    assert_eq!(old.as_array().unwrap().len(), 0);
    let by_case = fake
        .call(
            Method::GET,
            "/api/search?case=27.12.04-P20-7-26",
            Some(&rita),
            None,
        )
        .await
        .json();
    assert_eq!(by_case[0]["id"], "c-11");
    assert_eq!(by_case[0]["pii_scrubbed"], serde_json::Value::Null);
    // A call record past its period shows when its personal data was removed, and no CPR
    // search finds it (Anna's search above did not).
    let by_day = fake
        .call(
            Method::GET,
            "/api/search?from=2026-07-20&to=2026-07-30",
            Some(&rita),
            None,
        )
        .await
        .json();
    assert_eq!(by_day.as_array().unwrap().len(), 1, "{by_day}");
    assert_eq!(by_day[0]["id"], "c-old");
    assert_eq!(by_day[0]["pii_scrubbed"], "2026-11-23T08:00:00Z");
    assert_eq!(by_day[0]["cpr"], serde_json::Value::Null);
    assert_eq!(by_day[0]["caller"], serde_json::Value::Null);
    assert_eq!(by_day[0]["agent"], "anna");

    // Journalising queues a delivery under the link.
    let link_id = link.json()["id"].as_i64().unwrap();
    let queued = fake
        .call(
            Method::POST,
            &format!("/api/recordings/{BO_RECORDING}/journalise"),
            Some(&rita),
            Some(json!({"link_id": link_id})),
        )
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    assert_eq!(queued.json()[0]["state"], "pending");
    assert_eq!(queued.json()[0]["target"], "folder");

    // The audit log has each action, without any CPR number, and its chain holds.
    let csv = fake
        .call(Method::GET, "/api/audit?format=csv", Some(&adam), None)
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    for action in [
        "link",
        "correct-cpr",
        "search-cpr",
        "search",
        "journalise-request",
    ] {
        assert!(
            csv.body.contains(&format!(",{action},")),
            "{action} missing:\n{}",
            csv.body
        );
    }
    for cpr in [ANNA_CPR, ANNA_CPR_DASHED, WAITING_CPR] {
        assert!(!csv.body.contains(cpr));
    }
    let verify = fake
        .call(Method::GET, "/api/audit/verify", Some(&adam), None)
        .await
        .json();
    assert_eq!(verify["intact"], true);

    // Monitoring sees the document waiting for the case system and the linked recording.
    let metrics = fake.call(Method::GET, "/metrics", Some(&adam), None).await;
    assert_eq!(metrics.status, StatusCode::OK);
    for line in [
        "kald_journal_documents_pending 1",
        "kald_journal_documents_failing 0",
        "kald_recordings_awaiting_journal 1",
        "kald_access_requests_open 0",
        "kald_access_requests_overdue 0",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line}:\n{}",
            metrics.body
        );
    }
}

/// Erasure after consent is withdrawn: the file and row go, a tombstone stays; a
/// journalised or held recording is refused.
#[tokio::test]
async fn erasure() {
    let fake = fake_records().await;
    let rita = fake.login("rita").await;
    let path = format!("/api/recordings/{BO_RECORDING}/erase");
    let no_reason = fake
        .call(
            Method::POST,
            &path,
            Some(&rita),
            Some(json!({"reason": " "})),
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Held: refused, nothing lost.
    let hold = fake
        .call(
            Method::POST,
            "/api/holds",
            Some(&rita),
            Some(json!({"recording": BO_RECORDING, "reason": "klagesag"})),
        )
        .await;
    let hold_id = hold.json().as_i64().unwrap();
    let held = fake
        .call(
            Method::POST,
            &path,
            Some(&rita),
            Some(json!({"reason": "samtykke trukket tilbage"})),
        )
        .await;
    assert_eq!(held.status, StatusCode::CONFLICT);
    assert_eq!(
        fake.call(
            Method::DELETE,
            &format!("/api/holds/{hold_id}"),
            Some(&rita),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    let erased = fake
        .call(
            Method::POST,
            &path,
            Some(&rita),
            Some(json!({"reason": "samtykke trukket tilbage"})),
        )
        .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);
    let (status, _) = bytes(
        &fake,
        &format!("/api/recordings/{BO_RECORDING}/audio?reason=x"),
        &rita,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let adam = fake.login("adam").await;
    let audit = fake
        .call(Method::GET, "/api/audit?action=erase", Some(&adam), None)
        .await
        .json();
    assert_eq!(audit[0]["target"], BO_RECORDING);
    assert_eq!(audit[0]["reason"], "samtykke trukket tilbage");
}

/// A call found by other keys (a relative calling) and added to a request by hand is held
/// with the request, and its hold goes when the request is closed, like the request's own.
#[tokio::test]
async fn closing_a_request_lifts_the_holds_of_items_added_by_hand() {
    let fake = fake_records().await;
    let rita = fake.login("rita").await;
    let opened = fake
        .call(
            Method::POST,
            "/api/access-requests",
            Some(&rita),
            Some(json!({
                "law": "gdpr",
                "requester": "Borgeren selv",
                "identity_verified_by": "MitID",
                "cpr": ANNA_CPR,
            })),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let id = opened.json()["request"]["id"].as_i64().unwrap();
    let added = fake
        .call(
            Method::POST,
            &format!("/api/access-requests/{id}/items"),
            Some(&rita),
            Some(json!({"kind": "call", "id": "c-11"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let active = |holds: serde_json::Value| -> usize {
        holds
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["active"] == true)
            .count()
    };
    let holds = fake
        .call(Method::GET, "/api/holds", Some(&rita), None)
        .await;
    assert_eq!(
        active(holds.json()),
        2,
        "the citizen and the added call: {}",
        holds.body
    );
    let close = fake
        .call(
            Method::POST,
            &format!("/api/access-requests/{id}/close"),
            Some(&rita),
            None,
        )
        .await;
    assert_eq!(close.status, StatusCode::NO_CONTENT);
    let holds = fake
        .call(Method::GET, "/api/holds", Some(&rita), None)
        .await;
    assert_eq!(
        active(holds.json()),
        0,
        "a hold outlived its request: {}",
        holds.body
    );
}

/// An access request past its deadline shows as overdue in the list and in `/metrics`.
#[tokio::test]
async fn overdue_access_requests_are_flagged() {
    let fake = fake_records().await;
    let rita = fake.login("rita").await;
    let adam = fake.login("adam").await;
    // Received Monday 2 November: 7 working days → Wednesday 11 November; today is 23 November.
    let opened = fake
        .call(
            Method::POST,
            "/api/access-requests",
            Some(&rita),
            Some(json!({
                "law": "forvaltningsloven",
                "received": "2026-11-02",
                "requester": "Borgeren selv",
                "identity_verified_by": "MitID",
                "cpr": WAITING_CPR,
            })),
        )
        .await;
    assert_eq!(opened.status, StatusCode::CREATED, "{}", opened.body);
    let request = &opened.json()["request"];
    assert_eq!(request["deadline"], "2026-11-11");
    assert_eq!(request["reminder"], "overdue");
    assert_eq!(request["working_days_left"], -8);
    let metrics = fake.call(Method::GET, "/metrics", Some(&adam), None).await;
    for line in [
        "kald_access_requests_open 1",
        "kald_access_requests_overdue 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line}:\n{}",
            metrics.body
        );
    }
}

/// A correction on the agent's live call reaches the SIP loop too (screen pop, later
/// recordings); one on an ended call only the store.
#[tokio::test]
async fn correcting_the_live_call_tells_the_phone_system() {
    let fake = fake_records().await;
    let anna = fake.login("anna").await;
    let fixed = fake
        .call(
            Method::POST,
            "/api/calls/c-1/cpr",
            Some(&anna),
            Some(json!({"cpr": WAITING_CPR, "verified_by": "MitID"})),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::NO_CONTENT, "{}", fixed.body);
    let sent: Vec<kald_api::Command> = fake.commands.lock().unwrap().clone();
    assert!(
        sent.iter().any(
            |c| matches!(c, kald_api::Command::CorrectCpr { agent, call, cpr }
            if agent == "anna" && call == "c-1" && cpr.expose_digits() == WAITING_CPR)
        ),
        "{sent:?}"
    );
    let ended = fake
        .call(
            Method::POST,
            "/api/calls/c-10/cpr",
            Some(&anna),
            Some(json!({"cpr": WAITING_CPR, "verified_by": "MitID"})),
        )
        .await;
    assert_eq!(ended.status, StatusCode::NO_CONTENT);
    let corrections = fake
        .commands
        .lock()
        .unwrap()
        .iter()
        .filter(|c| matches!(c, kald_api::Command::CorrectCpr { .. }))
        .count();
    assert_eq!(
        corrections, 1,
        "only the live call goes to the phone system"
    );
}

/// Benchmark (ignored; run it in release with --nocapture): a one-hour recording, a 115 MB
/// WAV, reaches the listener without being held in memory — the process's peak resident size
/// grows by little while the whole WAV passes through.
#[tokio::test]
#[ignore]
async fn a_one_hour_recording_streams_in_little_memory() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    /// The process's peak resident set (VmHWM), in kB.
    fn peak_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
    let fake = common::fake_records_of(3600).await;
    let anna = fake.login("anna").await;
    let before = peak_kb();
    let started = std::time::Instant::now();
    let response = fake
        .app
        .clone()
        .oneshot(common::request(
            Method::GET,
            &format!("/api/recordings/{ANNA_RECORDING}/audio"),
            Some(&anna),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            total += data.len();
        }
    }
    let after = peak_kb();
    println!(
        "streamed {total} bytes in {:.2} s; peak RSS {before} kB before, {after} kB after \
         (+{} kB)",
        started.elapsed().as_secs_f64(),
        after - before
    );
    assert_eq!(total, 3600 * 8000 * 4 + 44);
    assert!(after - before < 20_000, "the WAV was held in memory");
}
