//! Loading a folder and reloading it: a broken file keeps its previous version live.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use kald_ivr::{FlowSet, LoadOptions};

const GOOD: &str = "start = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\nprompt = \"goodbye\"\n";
const GOOD2: &str = "start = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\nprompt = \"closed\"\n";
const BROKEN: &str =
    "start = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\nprompt = \"no-such-prompt\"\n";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kald-ivr-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn reload_replaces_good_files_and_keeps_the_old_version_of_broken_ones() {
    let dir = temp_dir("reload");
    let options = LoadOptions::with_prompt_dir(common::crate_dir().join("../../ivr-flows/prompts"));
    std::fs::write(dir.join("a.toml"), GOOD).unwrap();
    std::fs::write(dir.join("b.toml"), GOOD).unwrap();
    std::fs::write(dir.join("notes.txt"), "not a flow").unwrap();
    let (set, diags) = kald_ivr::load_dir_with(&dir, &options);
    assert!(diags.is_empty(), "{diags:?}");
    assert_eq!(set.len(), 2);
    let old_a = Arc::clone(set.get("a").unwrap());
    let old_b = Arc::clone(set.get("b").unwrap());
    assert_eq!(old_a.path(), Some(dir.join("a.toml").as_path()));

    // a changes for the better, b breaks, c appears.
    std::fs::write(dir.join("a.toml"), GOOD2).unwrap();
    std::fs::write(dir.join("b.toml"), BROKEN).unwrap();
    std::fs::write(dir.join("c.toml"), GOOD).unwrap();
    let (new, diags) = set.reload(&dir, &options);
    assert_eq!(diags.len(), 1);
    assert!(diags[0]
        .to_string()
        .contains("prompt 'no-such-prompt' has no sound file"));
    assert!(!Arc::ptr_eq(new.get("a").unwrap(), &old_a));
    assert!(new.get("a").unwrap().prompts().contains("closed"));
    assert!(
        Arc::ptr_eq(new.get("b").unwrap(), &old_b),
        "the old b stays live"
    );
    assert!(new.get("c").is_some());
    // A call that started on the old a still has it.
    assert!(old_a.prompts().contains("goodbye"));

    // A removed file disappears.
    std::fs::remove_file(dir.join("c.toml")).unwrap();
    let (newer, _) = new.reload(&dir, &options);
    assert!(newer.get("c").is_none());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_folder_is_reported_and_keeps_everything() {
    let set = FlowSet::new();
    let (set2, diags) = set.reload(
        &PathBuf::from("/nonexistent/kald-flows"),
        &LoadOptions::default(),
    );
    assert!(set2.is_empty());
    assert_eq!(diags.len(), 1);
    assert!(diags[0].to_string().contains("cannot read the flow folder"));
}
