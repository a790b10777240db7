//! `kald audit verify` against a real store: an intact chain passes with its length.
#![allow(clippy::unwrap_used)]

use std::process::Command;

#[tokio::test]
async fn audit_verify_reports_an_intact_chain() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (keys, _) = kald_core::CprKeys::load_or_create(&keys_dir.join("cpr.key")).unwrap();
    let store = kald_store::Store::open_data_dir(&dir.path().join("data"), keys)
        .await
        .unwrap();
    for (i, action) in ["listen", "download", "hold"].iter().enumerate() {
        let at = jiff::Timestamp::from_second(1_800_000_000 + i as i64).unwrap();
        store
            .append_audit(&kald_store::AuditEntry::new(
                at,
                "rikke",
                "records-officer",
                *action,
                "rec-1",
            ))
            .await
            .unwrap();
    }
    store.close().await;
    let out = Command::new(env!("CARGO_BIN_EXE_kald"))
        .args(["audit", "verify", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--keys-dir")
        .arg(&keys_dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("audit log intact: 3 entries"), "{text}");
}
