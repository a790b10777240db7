//! Journal links and the outbox (issue 9), on SQLite and PostgreSQL.

use super::*;

on_both!(
    journal_links_and_states,
    journal_outbox_delivery,
    journal_outbox_refusals,
    journal_unlink_cancels_and_recomputes,
    journal_claims_are_leases,
);

fn states(recs: &[Recording]) -> Vec<(&str, JournalState)> {
    recs.iter().map(|r| (r.id.as_str(), r.journal)).collect()
}

async fn journal_links_and_states(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 100, 9_000, Some(cpr())).await;
    store
        .insert_recording(&new_rec("m-1", "c-1", RecordingKind::Message, 50, None))
        .await
        .unwrap();
    closed_rec(store, "r-2", "c-2", 200, 9_000, None).await;
    assert_eq!(store.journal_links_of_call("c-1").await.unwrap(), vec![]);
    assert_eq!(store.journal_link(1).await.unwrap(), None);

    // Linking makes every recording of the call (the message too) linked, not other calls'.
    let a = store
        .add_journal_link(
            "c-1",
            "27.12.04-P20-1-26",
            Some("sygemelding"),
            "anna",
            at(500),
        )
        .await
        .unwrap();
    let recs = store.recordings_of_call("c-1").await.unwrap();
    assert_eq!(
        states(&recs),
        vec![("m-1", JournalState::Linked), ("r-1", JournalState::Linked)]
    );
    assert_eq!(
        store.recording("r-2").await.unwrap().unwrap().journal,
        JournalState::None
    );
    let link = store.journal_link(a).await.unwrap().unwrap();
    assert_eq!(
        link,
        JournalLink {
            id: a,
            call_id: "c-1".into(),
            case_number: "27.12.04-P20-1-26".into(),
            note: Some("sygemelding".into()),
            created_by: "anna".into(),
            created: at(500),
            removed: None,
        }
    );
    assert!(link.is_live());

    // Several links per call; oldest first; removed ones stay listed with who and when.
    let b = store
        .add_journal_link("c-1", "S2026-0042", None, "bo", at(600))
        .await
        .unwrap();
    let c = store
        .add_journal_link("c-2", "27.12.04-P20-1-26", None, "anna", at(550))
        .await
        .unwrap();
    assert!(a < b && b < c);
    assert!(store
        .remove_journal_link(b, "rikke", at(700))
        .await
        .unwrap());
    assert!(!store.remove_journal_link(b, "anna", at(800)).await.unwrap());
    assert!(!store
        .remove_journal_link(999, "anna", at(800))
        .await
        .unwrap());
    let links = store.journal_links_of_call("c-1").await.unwrap();
    assert_eq!(links.iter().map(|l| l.id).collect::<Vec<_>>(), vec![a, b]);
    assert_eq!(links[1].removed, Some(("rikke".into(), at(700))));
    assert_eq!(links[1].note, None);
    // Still linked through the first link.
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );

    // Calls by case number: live links only, in the order first linked.
    assert_eq!(
        store
            .calls_by_case_number("27.12.04-P20-1-26")
            .await
            .unwrap(),
        vec!["c-1".to_owned(), "c-2".to_owned()]
    );
    assert_eq!(
        store.calls_by_case_number("S2026-0042").await.unwrap(),
        Vec::<String>::new()
    );

    // A recording that starts on a linked call starts linked; on an unlinked call, not.
    store
        .insert_recording(&new_rec("r-3", "c-1", RecordingKind::Call, 900, None))
        .await
        .unwrap();
    assert_eq!(
        store.recording("r-3").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    store
        .insert_recording(&new_rec("r-4", "c-4", RecordingKind::Call, 900, None))
        .await
        .unwrap();
    assert_eq!(
        store.recording("r-4").await.unwrap().unwrap().journal,
        JournalState::None
    );

    // Removing the last live link unlinks the call's recordings.
    assert!(store
        .remove_journal_link(a, "anna", at(1_000))
        .await
        .unwrap());
    let recs = store.recordings_of_call("c-1").await.unwrap();
    assert!(
        recs.iter().all(|r| r.journal == JournalState::None),
        "{recs:?}"
    );
    assert_eq!(
        store
            .calls_by_case_number("27.12.04-P20-1-26")
            .await
            .unwrap(),
        vec!["c-2".to_owned()]
    );

    // Everything survives a restart.
    let again = db.reopen(keys()).await;
    assert_eq!(
        again.journal_links_of_call("c-1").await.unwrap(),
        links_after(store).await
    );
    again.close().await;
}

async fn links_after(store: &Store) -> Vec<JournalLink> {
    store.journal_links_of_call("c-1").await.unwrap()
}

async fn journal_outbox_delivery(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 100, 9_000, Some(cpr())).await;
    let link = store
        .add_journal_link("c-1", "27.12.04-P20-1-26", None, "anna", at(500))
        .await
        .unwrap();
    let both = [JournalTarget::Folder, JournalTarget::Webhook];
    let ids = store
        .queue_journal_exports("r-1", link, &both, "rikke", at(600))
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    // Idempotent: the same rows again, in the order asked.
    let again = store
        .queue_journal_exports("r-1", link, &[JournalTarget::Webhook], "bo", at(700))
        .await
        .unwrap();
    assert_eq!(again, vec![ids[1]]);
    assert_eq!(
        store
            .queue_journal_exports("r-1", link, &[], "bo", at(700))
            .await
            .unwrap(),
        Vec::<i64>::new()
    );
    let (folder, webhook) = (ids[0], ids[1]);

    // Not due before the time asked; then both, oldest first, with the case number.
    assert_eq!(
        store.due_journal_exports(at(599), 10).await.unwrap(),
        vec![]
    );
    let due = store.due_journal_exports(at(600), 10).await.unwrap();
    assert_eq!(
        due.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![folder, webhook]
    );
    assert_eq!(
        due[1],
        JournalExport {
            id: webhook,
            recording_id: "r-1".into(),
            link_id: link,
            case_number: "27.12.04-P20-1-26".into(),
            target: JournalTarget::Webhook,
            state: JournalExportState::Pending,
            attempts: 0,
            next_attempt: at(600),
            last_error: None,
            receipt: None,
            requested_by: "rikke".into(),
            requested: at(600),
            acknowledged: None,
        }
    );
    assert_eq!(
        store.due_journal_exports(at(600), 1).await.unwrap().len(),
        1
    );

    // The folder is written: acknowledged, but the recording waits for the webhook too.
    store
        .journal_export_acknowledged(folder, None, at(601))
        .await
        .unwrap();
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    // The webhook fails twice: counted, kept, due again only at the next attempt.
    store
        .journal_export_failed(webhook, None, "HTTP 500", at(611))
        .await
        .unwrap();
    store
        .journal_export_failed(webhook, None, "HTTP 503", at(641))
        .await
        .unwrap();
    assert_eq!(
        store.due_journal_exports(at(640), 10).await.unwrap(),
        vec![]
    );
    let due = store.due_journal_exports(at(641), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].id,
            due[0].attempts,
            due[0].last_error.as_deref(),
            due[0].next_attempt
        ),
        (webhook, 2, Some("HTTP 503"), at(641))
    );
    // Then it acknowledges with a receipt: every target done, the recording is exported.
    store
        .journal_export_acknowledged(webhook, Some("DOC-4711"), at(642))
        .await
        .unwrap();
    assert_eq!(
        store.due_journal_exports(at(10_000), 10).await.unwrap(),
        vec![]
    );
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );
    let rows = store.journal_exports_of_recording("r-1").await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (
            rows[0].state,
            rows[0].attempts,
            rows[0].acknowledged,
            rows[0].receipt.as_deref()
        ),
        (JournalExportState::Acknowledged, 1, Some(at(601)), None)
    );
    assert_eq!(
        (
            rows[1].state,
            rows[1].attempts,
            rows[1].acknowledged,
            rows[1].receipt.as_deref(),
            rows[1].last_error.as_deref()
        ),
        (
            JournalExportState::Acknowledged,
            3,
            Some(at(642)),
            Some("DOC-4711"),
            None
        )
    );
    assert_eq!(
        store.journal_export(webhook).await.unwrap().as_ref(),
        Some(&rows[1])
    );
    assert_eq!(store.journal_export(999).await.unwrap(), None);

    // A repeated acknowledgement or a late failure changes nothing.
    store
        .journal_export_acknowledged(webhook, Some("other"), at(700))
        .await
        .unwrap();
    store
        .journal_export_failed(webhook, None, "late", at(800))
        .await
        .unwrap();
    assert_eq!(
        store.journal_exports_of_recording("r-1").await.unwrap(),
        rows
    );
    // Unknown rows are errors.
    assert!(matches!(
        store.journal_export_acknowledged(999, None, at(1)).await,
        Err(StoreError::NoSuchJournalExport { id: 999 })
    ));
    assert!(matches!(
        store.journal_export_failed(999, None, "x", at(1)).await,
        Err(StoreError::NoSuchJournalExport { id: 999 })
    ));

    // Removing the link afterwards does not undo the journalising: the case system has it.
    assert!(store
        .remove_journal_link(link, "anna", at(900))
        .await
        .unwrap());
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );
    // The exported recording is deleted at its deadline like any other.
    let due = store.sweep_candidates(at(9_000), None, 10).await.unwrap();
    assert_eq!(ids_of(&due), vec!["r-1"]);
    assert_eq!(due[0].journal, JournalState::Exported);
}

async fn journal_outbox_refusals(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 100, 9_000, None).await;
    closed_rec(store, "r-2", "c-2", 100, 9_000, None).await;
    store
        .insert_recording(&new_rec("r-3", "c-1", RecordingKind::Call, 300, None))
        .await
        .unwrap();
    let link = store
        .add_journal_link("c-1", "S2026-1", None, "anna", at(500))
        .await
        .unwrap();
    let folder = [JournalTarget::Folder];
    let err = store
        .queue_journal_exports("r-9", link, &folder, "rikke", at(600))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NoSuchRecording { id } if id == "r-9"),
        "{err:?}"
    );
    let err = store
        .queue_journal_exports("r-1", 999, &folder, "rikke", at(600))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchJournalLink { id: 999 }),
        "{err:?}"
    );
    let err = store
        .queue_journal_exports("r-2", link, &folder, "rikke", at(600))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotJournalisable { recording, .. } if recording == "r-2"),
        "{err:?}"
    );
    let err = store
        .queue_journal_exports("r-3", link, &folder, "rikke", at(600))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotJournalisable { recording, .. } if recording == "r-3"),
        "{err:?}"
    );
    assert!(store
        .remove_journal_link(link, "anna", at(700))
        .await
        .unwrap());
    let err = store
        .queue_journal_exports("r-1", link, &folder, "rikke", at(800))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NoSuchJournalLink { .. }),
        "{err:?}"
    );
    assert_eq!(
        store.journal_exports_of_recording("r-1").await.unwrap(),
        vec![]
    );
}

async fn journal_unlink_cancels_and_recomputes(db: &TestDb) {
    let store = &db.store;
    closed_rec(store, "r-1", "c-1", 100, 9_000, None).await;
    let a = store
        .add_journal_link("c-1", "S2026-1", None, "anna", at(500))
        .await
        .unwrap();
    let b = store
        .add_journal_link("c-1", "S2026-2", None, "anna", at(510))
        .await
        .unwrap();
    let on_a = store
        .queue_journal_exports("r-1", a, &[JournalTarget::Webhook], "rikke", at(600))
        .await
        .unwrap();
    let on_b = store
        .queue_journal_exports("r-1", b, &[JournalTarget::Folder], "rikke", at(600))
        .await
        .unwrap();
    // Unlinking a cancels its pending row; b keeps the recording linked.
    assert!(store.remove_journal_link(a, "anna", at(700)).await.unwrap());
    let rows = store.journal_exports_of_recording("r-1").await.unwrap();
    assert_eq!(rows[0].id, on_a[0]);
    assert_eq!(rows[0].state, JournalExportState::Cancelled);
    assert_eq!(rows[1].state, JournalExportState::Pending);
    let due = store.due_journal_exports(at(1_000), 10).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id).collect::<Vec<_>>(), on_b);
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    // A document that was on its way when the link went is recorded as delivered.
    store
        .journal_export_acknowledged(on_a[0], Some("late-doc"), at(710))
        .await
        .unwrap();
    assert_eq!(
        store.journal_export(on_a[0]).await.unwrap().unwrap().state,
        JournalExportState::Acknowledged
    );
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );

    // A second recording: its pending row given up (recording erased) leaves it linked to b.
    closed_rec(store, "r-2", "c-1", 200, 9_000, None).await;
    let ids = store
        .queue_journal_exports("r-2", b, &[JournalTarget::Folder], "rikke", at(800))
        .await
        .unwrap();
    assert!(store
        .cancel_journal_export(ids[0], "recording gone")
        .await
        .unwrap());
    assert!(!store.cancel_journal_export(ids[0], "again").await.unwrap());
    let row = store.journal_export(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.last_error.as_deref()),
        (JournalExportState::Cancelled, Some("recording gone"))
    );
    assert_eq!(
        store.recording("r-2").await.unwrap().unwrap().journal,
        JournalState::Linked
    );
    // Unlinking b: r-2 has nothing acknowledged, so none; r-1 stays exported.
    assert!(store.remove_journal_link(b, "anna", at(900)).await.unwrap());
    assert_eq!(
        store.recording("r-2").await.unwrap().unwrap().journal,
        JournalState::None
    );
    assert_eq!(
        store.recording("r-1").await.unwrap().unwrap().journal,
        JournalState::Exported
    );
    assert_eq!(
        store.due_journal_exports(at(10_000), 10).await.unwrap(),
        vec![]
    );
}

/// Claiming due documents leases them: a second claim (this instance's next round, or another
/// kald on the same database) does not get them until the lease runs out, and two instances
/// claiming at once never both get a row.
async fn journal_claims_are_leases(db: &TestDb) {
    let store = &db.store;
    let link = store
        .add_journal_link("c-1", "27.12.04-P20-1-26", None, "anna", at(50))
        .await
        .unwrap();
    let mut all = Vec::new();
    for n in 0..12 {
        let id = format!("r-{n}");
        closed_rec(store, &id, "c-1", 100 + n, 9_000, None).await;
        all.extend(
            store
                .queue_journal_exports(&id, link, &[JournalTarget::Folder], "rikke", at(600 + n))
                .await
                .unwrap(),
        );
    }

    // Three rounds at the same instant take 5, 5 and 2 rows, the longest due first, each
    // reported as it fell due; then nothing is left to claim.
    let mut claimed = Vec::new();
    for expected in [5, 5, 2, 0] {
        let batch = store
            .claim_journal_exports("t", at(700), at(1_700), 5)
            .await
            .unwrap();
        assert_eq!(batch.len(), expected);
        for row in &batch {
            let n = all.iter().position(|&id| id == row.id).unwrap();
            assert_eq!(row.next_attempt, at(600 + i64::try_from(n).unwrap()));
            assert_eq!(row.state, JournalExportState::Pending);
        }
        claimed.extend(batch.iter().map(|row| row.id));
    }
    assert_eq!(claimed, all);
    assert_eq!(
        store.due_journal_exports(at(1_699), 20).await.unwrap(),
        vec![]
    );

    // The outcome of a delivery replaces the lease: acknowledged is done, failed is due at its
    // retry time.
    store
        .journal_export_acknowledged(all[0], None, at(710))
        .await
        .unwrap();
    store
        .journal_export_failed(all[1], None, "HTTP 503", at(720))
        .await
        .unwrap();
    let due: Vec<i64> = store
        .due_journal_exports(at(720), 20)
        .await
        .unwrap()
        .iter()
        .map(|row| row.id)
        .collect();
    assert_eq!(due, vec![all[1]]);

    // An instance that died mid-batch: its leases run out and the rows are due again.
    let due = store.due_journal_exports(at(1_700), 20).await.unwrap();
    assert_eq!(due.len(), 11);

    // Two instances on one database claim at the same time, one row per claim, until nothing
    // is left: every row is claimed exactly once.
    let other = db.reopen(keys()).await;
    let mut seen = Vec::new();
    loop {
        let (mine, theirs) = tokio::join!(
            store.claim_journal_exports("mine", at(2_000), at(9_000), 1),
            other.claim_journal_exports("theirs", at(2_000), at(9_000), 1),
        );
        let (mine, theirs) = (mine.unwrap(), theirs.unwrap());
        if mine.is_empty() && theirs.is_empty() {
            break;
        }
        seen.extend(mine.iter().chain(&theirs).map(|row| row.id));
    }
    other.close().await;
    seen.sort_unstable();
    assert_eq!(seen, all[1..].to_vec());

    // A delivery that outlived its lease: another claim took the row, and the late failure
    // under the old claim changes nothing; the new claim's outcome counts.
    let first = store
        .claim_journal_exports("a", at(10_000), at(10_500), 20)
        .await
        .unwrap();
    let again = store
        .claim_journal_exports("b", at(10_600), at(20_000), 20)
        .await
        .unwrap();
    let ids = |rows: &[JournalExport]| rows.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(ids(&first).len(), 11);
    assert_eq!(ids(&first), ids(&again));
    let row = all[2];
    store
        .journal_export_failed(row, Some("a"), "late", at(10_700))
        .await
        .unwrap();
    let now = store.journal_export(row).await.unwrap().unwrap();
    assert_eq!((now.next_attempt, now.last_error), (at(20_000), None));
    store
        .journal_export_failed(row, Some("b"), "HTTP 500", at(10_800))
        .await
        .unwrap();
    let now = store.journal_export(row).await.unwrap().unwrap();
    assert_eq!(
        (now.next_attempt, now.last_error.as_deref(), now.attempts),
        (at(10_800), Some("HTTP 500"), 1)
    );
}
