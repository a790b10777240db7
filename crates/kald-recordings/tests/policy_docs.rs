//! The documents beside `recordings-policy/policy.toml` — the record of processing
//! (`fortegnelse-art30.md`), the impact assessment (`konsekvensanalyse-dpia.md`) and the
//! information agents receive (`information-til-medarbejdere.md`) — state what the policy file
//! sets: the retention periods, the callers' consent and withdrawal keys, and what each role may
//! do. These tests load the policy with kald's own loader and fail when a document says
//! something else, so a change to `policy.toml` cannot leave the documents behind.
//!
//! # How a document states a setting
//!
//! A line that states a setting carries an HTML comment (invisible when the Markdown is shown):
//!
//! - `<!-- policy:retention.recordings -->`: the line states that period in Danish ("3
//!   måneder", "1 år", "1 år og 6 måneder", "90 dage"; "tre måneder" also counts), and no
//!   other period. A period with a word about keeping or deleting (*slet*, *opbevar*, *gem*,
//!   *behold*) on its line or the line before must be on such a line.
//! - `<!-- policy:keys.consent -->`, `<!-- policy:keys.withdraw -->`: the line says "tryk 1" (or
//!   trykke, trykker, tast, taste, taster) with the configured key. Every "tryk <key>" in a
//!   document must be on such a line.
//! - `<!-- policy:access.team-leader.listen-in=allowed -->` (or `with-agent-consent`, `denied`):
//!   what the line says a role may do, checked against `[roles]`.
//!
//! Every word in backticks that looks like a name (`team-leader`, `listen-others`) must be a role,
//! a permission, a retention key, a prompt of `ivr-flows/prompts/prompts.tsv` or a key of the
//! policy file. A Markdown table row whose first cell is one role in backticks lists, in its
//! second cell, what the role may always do and, in its third, what only with the agent's
//! consent; it must match `[roles]` exactly (the record of processing has one row per role).
//!
//! `KALD_POLICY_DIR=/some/copy cargo test -p kald-recordings --test policy_docs` checks a copy of
//! the directory instead of `recordings-policy/`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use kald_recordings::{Access, Permission, Policy, Retention, RetentionPeriod, Role};

const RECORD: &str = "fortegnelse-art30.md";
const DPIA: &str = "konsekvensanalyse-dpia.md";
const INFO: &str = "information-til-medarbejdere.md";

/// The period `[retention]` sets for `key`.
fn retention(r: &Retention, key: &str) -> Option<RetentionPeriod> {
    match key {
        "recordings" => Some(r.recordings),
        "messages" => Some(r.messages),
        "call_records_with_cpr" => Some(r.call_records_with_cpr),
        "tombstones" => Some(r.tombstones),
        "audit_log" => Some(r.audit_log),
        _ => None,
    }
}

/// Other names of the policy file that documents may put in backticks.
const POLICY_WORDS: [&str; 7] = [
    "may",
    "with_agent_consent",
    "retention",
    "keys",
    "roles",
    "consent",
    "withdraw",
];

/// What each document must state, beyond the checks every document gets.
struct Required {
    file: &'static str,
    retention: &'static [&'static str],
    keys: bool,
    /// `(role, permission)` pairs that need an `access` marker.
    access: &'static [(Role, Permission)],
    /// Whether the document holds the full role table.
    role_table: bool,
}

const LISTENING: &[(Role, Permission)] = &[
    (Role::TeamLeader, Permission::ListenOthers),
    (Role::Coach, Permission::ListenOthers),
    (Role::TeamLeader, Permission::ListenIn),
    (Role::Coach, Permission::ListenIn),
];

const ALL_RETENTION: &[&str] = &[
    "recordings",
    "messages",
    "call_records_with_cpr",
    "tombstones",
    "audit_log",
];

const DOCUMENTS: [Required; 3] = [
    Required {
        file: RECORD,
        retention: ALL_RETENTION,
        keys: true,
        access: LISTENING,
        role_table: true,
    },
    Required {
        file: DPIA,
        retention: ALL_RETENTION,
        keys: true,
        access: LISTENING,
        role_table: false,
    },
    Required {
        file: INFO,
        retention: &["recordings", "tombstones", "audit_log"],
        keys: true,
        access: LISTENING,
        role_table: false,
    },
];

fn policy_dir() -> PathBuf {
    std::env::var_os("KALD_POLICY_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recordings-policy"),
        PathBuf::from,
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn load_policy(dir: &Path) -> Policy {
    let path = dir.join("policy.toml");
    Policy::load(&path).unwrap_or_else(|diags| {
        let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
        panic!("{} does not load:\n{}", path.display(), text.join("\n"))
    })
}

/// The prompt names of `ivr-flows/prompts/prompts.tsv` (documents quote them).
fn prompt_names() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ivr-flows/prompts/prompts.tsv");
    read(&path)
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .map(str::to_owned)
        .collect()
}

/// A period as the documents count it: whole months (a year is 12) or days (a week is 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Piece {
    Months(u32),
    Days(u32),
}

/// The pieces a period is written in: "1 år og 6 måneder" is `[Months(12), Months(6)]`.
fn pieces(p: RetentionPeriod) -> Vec<Piece> {
    let (years, months) = (p.months() / 12, p.months() % 12);
    let mut out = Vec::new();
    if years > 0 {
        out.push(Piece::Months(years * 12));
    }
    if months > 0 {
        out.push(Piece::Months(months));
    }
    if p.days() > 0 {
        out.push(Piece::Days(p.days()));
    }
    out
}

/// How a document writes a period: "3 måneder", "1 år", "1 år og 6 måneder", "90 dage".
fn danish(p: RetentionPeriod) -> String {
    let words: Vec<String> = pieces(p)
        .into_iter()
        .map(|piece| match piece {
            Piece::Months(m) if m % 12 == 0 => format!("{} år", m / 12),
            Piece::Months(1) => "1 måned".to_owned(),
            Piece::Months(m) => format!("{m} måneder"),
            Piece::Days(1) => "1 dag".to_owned(),
            Piece::Days(d) => format!("{d} dage"),
        })
        .collect();
    words.join(" og ")
}

/// A number written in digits or as a Danish word (one to twelve).
fn number(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse() {
        return Some(n);
    }
    let words = [
        "nul", "en", "to", "tre", "fire", "fem", "seks", "syv", "otte", "ni", "ti", "elleve",
        "tolv",
    ];
    match word {
        "et" | "én" | "ét" => Some(1),
        _ => words
            .iter()
            .position(|w| *w == word)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

/// The period a number and a unit make ("3", "måneder"), if they make one.
fn piece(n: &str, unit: &str) -> Option<Piece> {
    let n = number(n)?;
    match unit {
        "måned" | "måneder" | "måneds" | "måneders" => Some(Piece::Months(n)),
        "år" | "års" => Some(Piece::Months(n * 12)),
        "uge" | "uger" | "uges" | "ugers" => Some(Piece::Days(n * 7)),
        "dag" | "dage" | "dags" | "dages" => Some(Piece::Days(n)),
        _ => None,
    }
}

/// A word of the document and the (1-based) line it is on.
struct Word {
    line: usize,
    text: String,
}

/// The document's words, lower-cased, without punctuation around them, and without markers.
fn words(text: &str) -> Vec<Word> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for raw in strip_markers(line).split_whitespace() {
            let w = raw
                .trim_matches(|c: char| !(c.is_alphanumeric() || c == '*' || c == '#'))
                .to_lowercase();
            if !w.is_empty() {
                out.push(Word {
                    line: i + 1,
                    text: w,
                });
            }
        }
    }
    out
}

fn strip_markers(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("<!--") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("-->")
            .map_or("", |end| &rest[start + end + 3..]);
    }
    out.push_str(rest);
    out
}

/// The `policy:` markers on a line.
fn markers(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("<!--") {
        let after = &rest[start + 4..];
        let Some(end) = after.find("-->") else { break };
        if let Some(m) = after[..end].trim().strip_prefix("policy:") {
            out.push(m.trim().to_owned());
        }
        rest = &after[end + 3..];
    }
    out
}

/// Checks one document against the policy; returns every problem as `file:line: message`.
fn check_document(
    file: &str,
    text: &str,
    policy: &Policy,
    prompts: &BTreeSet<String>,
    req: Option<&Required>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let line_markers: Vec<Vec<String>> = lines.iter().map(|l| markers(l)).collect();
    let words = words(text);

    let period_of = |key: &str| retention(&policy.retention, key);
    let key_of = |name: &str| match name {
        "consent" => Some(policy.keys.consent),
        "withdraw" => Some(policy.keys.withdraw),
        _ => None,
    };

    // What the markers of each line expect; unknown markers and wrong access claims.
    let mut seen_retention = BTreeSet::new();
    let mut seen_keys = BTreeSet::new();
    let mut seen_access = BTreeSet::new();
    for (i, ms) in line_markers.iter().enumerate() {
        for m in ms {
            let at = format!("{file}:{}", i + 1);
            if let Some(key) = m.strip_prefix("retention.") {
                if period_of(key).is_some() {
                    seen_retention.insert(key.to_owned());
                } else {
                    errors.push(format!("{at}: marker '{m}': no such retention key"));
                }
            } else if let Some(key) = m.strip_prefix("keys.") {
                if key_of(key).is_some() {
                    seen_keys.insert(key.to_owned());
                } else {
                    errors.push(format!(
                        "{at}: marker '{m}': use keys.consent or keys.withdraw"
                    ));
                }
            } else if let Some(claim) = m.strip_prefix("access.") {
                match check_access(claim, policy) {
                    Ok(pair) => {
                        seen_access.insert(pair);
                    }
                    Err(e) => errors.push(format!("{at}: marker '{m}': {e}")),
                }
            } else {
                errors.push(format!("{at}: unknown marker '{m}'"));
            }
        }
    }

    // Periods: on a retention line exactly the marked periods; elsewhere none next to a word
    // about keeping or deleting.
    let mut found: Vec<Vec<Piece>> = vec![Vec::new(); lines.len() + 1];
    for pair in words.windows(2) {
        if let Some(p) = piece(&pair[0].text, &pair[1].text) {
            found[pair[1].line].push(p);
        }
    }
    let keeping = |line: usize| {
        let l = lines
            .get(line.wrapping_sub(1))
            .map_or(String::new(), |l| l.to_lowercase());
        ["slet", "opbevar", "gem", "behold"]
            .iter()
            .any(|w| l.contains(w))
    };
    for (line, on_line) in found.iter().enumerate().skip(1) {
        let keys: Vec<&str> = line_markers[line - 1]
            .iter()
            .filter_map(|m| m.strip_prefix("retention."))
            .collect();
        let expected: Vec<(&str, RetentionPeriod)> = keys
            .iter()
            .filter_map(|k| period_of(k).map(|p| (*k, p)))
            .collect();
        if expected.is_empty() {
            if !on_line.is_empty() && (keeping(line) || keeping(line - 1)) {
                errors.push(format!(
                    "{file}:{line}: a retention period without a marker; add \
                     <!-- policy:retention.KEY --> for the setting it states"
                ));
            }
            continue;
        }
        let allowed: BTreeSet<Piece> = expected.iter().flat_map(|(_, p)| pieces(*p)).collect();
        for (key, period) in &expected {
            let stated = pieces(*period).iter().all(|p| on_line.contains(p))
                && on_line.iter().all(|p| allowed.contains(p));
            if !stated {
                errors.push(format!(
                    "{file}:{line}: policy.toml keeps {key} for \"{period}\": the line must say \
                     \"{}\" (and no other period)",
                    danish(*period)
                ));
            }
        }
    }

    // Keys: every "tryk <key>" on a keys line, naming that line's key(s).
    let press = ["tryk", "trykke", "trykker", "tast", "taste", "taster"];
    let mut pressed: Vec<Vec<char>> = vec![Vec::new(); lines.len() + 1];
    for pair in words.windows(2) {
        let mut chars = pair[1].text.chars();
        if let (true, Some(k), None) = (
            press.contains(&pair[0].text.as_str()),
            chars.next(),
            chars.next(),
        ) {
            if k.is_ascii_digit() || k == '*' || k == '#' {
                pressed[pair[1].line].push(k);
            }
        }
    }
    for (line, keys) in pressed.iter().enumerate().skip(1) {
        let marked: Vec<(&str, char)> = line_markers[line - 1]
            .iter()
            .filter_map(|m| m.strip_prefix("keys."))
            .filter_map(|k| key_of(k).map(|c| (k, c)))
            .collect();
        if marked.is_empty() {
            if !keys.is_empty() {
                errors.push(format!(
                    "{file}:{line}: names a key callers press without a marker; add \
                     <!-- policy:keys.consent --> or <!-- policy:keys.withdraw -->"
                ));
            }
            continue;
        }
        for (name, key) in &marked {
            if !keys.contains(key) {
                errors.push(format!(
                    "{file}:{line}: policy.toml's {name} key is '{key}': the line must say \
                     \"tryk {key}\""
                ));
            }
        }
        for k in keys {
            if !marked.iter().any(|(_, key)| key == k) {
                errors.push(format!(
                    "{file}:{line}: says \"tryk {k}\", which is not the key this line's marker \
                     names"
                ));
            }
        }
    }

    // Names in backticks.
    let known_name = |w: &str| {
        w.parse::<Role>().is_ok()
            || w.parse::<Permission>().is_ok()
            || period_of(w).is_some()
            || POLICY_WORDS.contains(&w)
            || prompts.contains(w)
    };
    let mut offset = 0;
    for (n, span) in text.split('`').enumerate() {
        let line = text[..offset].matches('\n').count() + 1;
        offset += span.len() + 1;
        let looks_like_name = span.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && span
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if n % 2 == 1 && looks_like_name && !known_name(span) {
            let roles: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            errors.push(format!(
                "{file}:{line}: `{span}` is not a role ({}), a permission, a retention key or a \
                 prompt",
                roles.join(", ")
            ));
        }
    }

    // Role tables.
    let mut table_roles = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let Some(role) = cells
            .first()
            .and_then(|c| c.strip_prefix('`'))
            .and_then(|c| c.strip_suffix('`'))
        else {
            continue;
        };
        if cells.len() < 3 || role.contains('`') {
            continue;
        }
        let at = format!("{file}:{}", i + 1);
        let Ok(role) = role.parse::<Role>() else {
            errors.push(format!("{at}: `{role}` is not a role"));
            continue;
        };
        table_roles.insert(role);
        let listed = |cell: &str, errors: &mut Vec<String>| -> BTreeSet<Permission> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter_map(|p| match p.parse::<Permission>() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        errors.push(format!("{at}: `{p}` is not a permission"));
                        None
                    }
                })
                .collect()
        };
        let may = listed(cells[1], &mut errors);
        let with_consent = listed(cells[2], &mut errors);
        for p in Permission::ALL {
            let stated = if may.contains(&p) {
                Access::Allowed
            } else if with_consent.contains(&p) {
                Access::WithAgentConsent
            } else {
                Access::Denied
            };
            let actual = policy.access(role, p);
            if stated != actual {
                errors.push(format!(
                    "{at}: the table says {role} {p} is {}, policy.toml says {}",
                    access_name(stated),
                    access_name(actual)
                ));
            }
        }
    }

    // What this document must state at all.
    if let Some(req) = req {
        for key in req.retention {
            if !seen_retention.contains(*key) {
                errors.push(format!(
                    "{file}: states no <!-- policy:retention.{key} --> line (policy.toml: {key} = \
                     \"{}\")",
                    period_of(key).map(danish).unwrap_or_default()
                ));
            }
        }
        if req.keys {
            for key in ["consent", "withdraw"] {
                if !seen_keys.contains(key) {
                    errors.push(format!(
                        "{file}: states no <!-- policy:keys.{key} --> line (\"tryk {}\")",
                        key_of(key).unwrap_or('?')
                    ));
                }
            }
        }
        for (role, p) in req.access {
            if !seen_access.contains(&(*role, *p)) {
                errors.push(format!(
                    "{file}: says nothing marked about {role} {p}; add \
                     <!-- policy:access.{role}.{p}={} --> where it does",
                    access_name(policy.access(*role, *p))
                ));
            }
        }
        if req.role_table {
            for role in Role::ALL {
                if !table_roles.contains(&role) {
                    errors.push(format!("{file}: the role table has no row for `{role}`"));
                }
            }
        }
    }
    errors
}

fn access_name(a: Access) -> &'static str {
    if a == Access::Allowed {
        "allowed"
    } else if a == Access::WithAgentConsent {
        "with-agent-consent"
    } else {
        "denied"
    }
}

/// Checks `role.permission=access` against the policy.
fn check_access(claim: &str, policy: &Policy) -> Result<(Role, Permission), String> {
    let (what, stated) = claim
        .split_once('=')
        .ok_or("write access.ROLE.PERMISSION=allowed|with-agent-consent|denied")?;
    let (role, perm) = what
        .split_once('.')
        .ok_or("write access.ROLE.PERMISSION=…")?;
    let role: Role = role
        .parse()
        .map_err(|_| format!("'{role}' is not a role"))?;
    let perm: Permission = perm
        .parse()
        .map_err(|_| format!("'{perm}' is not a permission"))?;
    let actual = access_name(policy.access(role, perm));
    if !["allowed", "with-agent-consent", "denied"].contains(&stated) {
        return Err(format!(
            "'{stated}' is not allowed, with-agent-consent or denied"
        ));
    }
    if stated != actual {
        return Err(format!(
            "the document says {role} {perm} is {stated}, policy.toml says {actual}; change \
             the text and the marker"
        ));
    }
    Ok((role, perm))
}

/// Every problem of the three documents in `dir` against `policy`.
fn check_all(dir: &Path, policy: &Policy) -> Vec<String> {
    let prompts = prompt_names();
    DOCUMENTS
        .iter()
        .flat_map(|req| {
            let text = read(&dir.join(req.file));
            check_document(req.file, &text, policy, &prompts, Some(req))
        })
        .collect()
}

fn report(errors: &[String]) -> String {
    let mut out = String::from(
        "the documents in recordings-policy/ no longer match policy.toml; change them in the \
         same change:\n",
    );
    for e in errors {
        let _ = writeln!(out, "  {e}");
    }
    out
}

#[test]
fn documents_state_the_policy() {
    let dir = policy_dir();
    let policy = load_policy(&dir);
    let errors = check_all(&dir, &policy);
    assert!(errors.is_empty(), "{}", report(&errors));
}

/// `policy.toml` with one line (`name = …` at its start) replaced.
fn with_line(text: &str, name: &str, value: &str) -> String {
    let mut replaced = false;
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if !replaced && l.starts_with(&format!("{name} =")) {
                replaced = true;
                format!("{name} = {value}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert!(replaced, "policy.toml has no line '{name} = …'");
    out.join("\n")
}

fn changed_policy(name: &str, value: &str) -> Policy {
    let dir = policy_dir();
    let text = with_line(&read(&dir.join("policy.toml")), name, value);
    Policy::parse("policy.toml (changed)", &text)
        .unwrap_or_else(|d| panic!("the changed policy does not load: {d:?}"))
}

#[test]
fn a_changed_recordings_retention_fails_until_the_documents_follow() {
    let current = load_policy(&policy_dir()).retention.recordings;
    let other = if current.months() == 6 && current.days() == 0 {
        "\"4 months\""
    } else {
        "\"6 months\""
    };
    let policy = changed_policy("recordings", other);
    let errors = check_all(&policy_dir(), &policy);
    for doc in [RECORD, DPIA, INFO] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(doc) && e.contains("keeps recordings for")),
            "{doc} should fail with recordings = {other}: {errors:#?}"
        );
    }
}

#[test]
fn changed_keys_and_roles_fail_until_the_documents_follow() {
    let current = load_policy(&policy_dir()).keys;
    let other = ['8', '7', '6']
        .into_iter()
        .find(|k| *k != current.consent && *k != current.withdraw)
        .unwrap_or('#');
    let policy = changed_policy("withdraw", &format!("\"{other}\""));
    let errors = check_all(&policy_dir(), &policy);
    for doc in [RECORD, DPIA, INFO] {
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with(doc) && e.contains("withdraw key")),
            "{doc} should fail with withdraw = {other}: {errors:#?}"
        );
    }

    // Listening in only with the agent's consent: the information to agents must change.
    let text = read(&policy_dir().join("policy.toml")).replace(
        "may = [\"listen-own\", \"download\", \"listen-in\", \"link-journal\", \"correct-cpr\"]\n\
         with_agent_consent = [\"listen-others\"]",
        "may = [\"listen-own\", \"download\", \"link-journal\", \"correct-cpr\"]\n\
         with_agent_consent = [\"listen-others\", \"listen-in\"]",
    );
    let policy = Policy::parse("policy.toml (changed)", &text).expect("loads");
    if policy.access(Role::TeamLeader, Permission::ListenIn) == Access::WithAgentConsent {
        let errors = check_all(&policy_dir(), &policy);
        for doc in [RECORD, DPIA, INFO] {
            assert!(
                errors
                    .iter()
                    .any(|e| e.starts_with(doc) && e.contains("team-leader listen-in")),
                "{doc} should fail when team leaders need consent to listen in: {errors:#?}"
            );
        }
    }
}

#[test]
fn the_checker_itself() {
    let policy = Policy::default();
    let prompts = BTreeSet::from(["recording-notice".to_owned()]);
    let check = |text: &str| check_document("t.md", text, &policy, &prompts, None);

    assert!(check("Slettes efter 3 måneder <!-- policy:retention.recordings -->").is_empty());
    assert!(check("gemmes i tre måneder <!-- policy:retention.recordings -->").is_empty());
    assert!(check(
        "| 2 år <!-- policy:retention.audit_log --> | 1 år <!-- policy:retention.tombstones --> |"
    )
    .is_empty());
    assert_eq!(
        check("Slettes efter 4 måneder <!-- policy:retention.recordings -->").len(),
        1
    );
    assert_eq!(check("Optagelser slettes efter 3 måneder.").len(), 1);
    assert_eq!(check("Optagelser gemmes i\n3 måneder og slettes.").len(), 1);
    assert!(check("Fristen er én måned (art. 12, stk. 3).").is_empty());
    assert_eq!(check("<!-- policy:retention.recording -->").len(), 1);

    assert!(check("ved at trykke 9 <!-- policy:keys.withdraw -->").is_empty());
    assert!(check("taste `*24` på telefonen").is_empty());
    assert_eq!(
        check("ved at trykke 8 <!-- policy:keys.withdraw -->").len(),
        2
    );
    assert_eq!(check("Tryk 1 for ja.").len(), 1);

    assert!(check("<!-- policy:access.team-leader.listen-in=allowed -->").is_empty());
    assert_eq!(
        check("<!-- policy:access.team-leader.listen-others=allowed -->").len(),
        1
    );
    assert_eq!(
        check("<!-- policy:access.teamleader.listen-in=allowed -->").len(),
        1
    );

    assert!(check("rollen `team-leader` og prompten `recording-notice`").is_empty());
    assert_eq!(check("rollen `teamleder`").len(), 1);

    let table =
        "| `coach` | `listen-own`, `listen-in`, `link-journal`, `correct-cpr` | `listen-others` |";
    assert!(check(table).is_empty());
    let wrong = "| `coach` | `listen-own`, `download`, `listen-in`, `link-journal`, `correct-cpr` | `listen-others` |";
    assert_eq!(check(wrong).len(), 1);

    let p = |m, d| RetentionPeriod::new(m, d).expect("a period");
    assert_eq!(danish(p(3, 0)), "3 måneder");
    assert_eq!(danish(p(24, 0)), "2 år");
    assert_eq!(danish(p(18, 0)), "1 år og 6 måneder");
    assert_eq!(danish(p(0, 90)), "90 dage");
}
