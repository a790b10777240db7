//! The RFC 4475 / RFC 5118 torture corpus (`tests/corpus/sip/`) against kald's message layer.
//!
//! * VALID files parse, and their key fields equal `keys.tsv`, which was written by hand from
//!   the raw bytes, independently of this parser.
//! * INVALID files either fail to parse with the expected [`ParseErrorKind`], or parse and then
//!   fail the typed check the endpoint runs before answering (400/505/416/501/drop); the
//!   table [`INVALID`] names that check per file.
//! * SEMANTIC files parse (except `mcl01`, a framing error) and fail their semantic check.
//!   `keys.tsv` gives `multi01` its first Call-ID/CSeq/From/To, and `mcl01` no body length
//!   (`-`): with two Content-Length values it has none.
//! * No prefix of any file makes the parser panic, and every message that parses survives
//!   print → reparse with the same key fields and body.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use kald_sip::message::{check_date, Framing, Limits};
use kald_sip::{HeaderName, Message, ParseError, ParseErrorKind as K, StartLine};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sip")
}

/// One row of `index.tsv`: file name and class.
struct Entry {
    file: String,
    class: String,
}

fn index() -> Vec<Entry> {
    let text = std::fs::read_to_string(corpus_dir().join("index.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            Entry {
                file: cols[0].to_owned(),
                class: cols[5].to_owned(),
            }
        })
        .collect()
}

const KEY_COLUMNS: [&str; 9] = [
    "start",
    "top_via_branch",
    "via_count",
    "from_tag",
    "to_tag",
    "call_id",
    "cseq_num",
    "cseq_method",
    "body_len",
];

/// `keys.tsv`: file → the nine key fields, `-` where the message has none.
fn keys() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(corpus_dir().join("keys.tsv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    assert_eq!(header[0], "file");
    assert_eq!(&header[1..], &KEY_COLUMNS[..], "keys.tsv columns");
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 10, "keys.tsv row {l:?}");
            (
                cols[0].to_owned(),
                cols[1..].iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect()
}

fn read(file: &str) -> Bytes {
    Bytes::from(std::fs::read(corpus_dir().join(file)).unwrap())
}

/// A missing header reads as `-`; any other accessor fault as `!Kind`, which never matches a
/// reference value.
fn field<T>(r: Result<T, ParseError>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => show(v),
        Err(e) if e.kind == K::Missing => "-".to_owned(),
        Err(e) => format!("!{:?}", e.kind),
    }
}

/// The nine key fields of a parsed message, in `keys.tsv` order.
fn kald_keys(m: &Message) -> Vec<String> {
    let start = match &m.start {
        StartLine::Request { method, .. } => String::from_utf8_lossy(method.as_bytes()).into(),
        StartLine::Response { code, .. } => code.to_string(),
    };
    let cseq = m.cseq();
    let (num, method) = match &cseq {
        Ok(c) => (c.seq.to_string(), c.method.to_string()),
        Err(e) if e.kind == K::Missing => ("-".to_owned(), "-".to_owned()),
        Err(e) => (format!("!{:?}", e.kind), format!("!{:?}", e.kind)),
    };
    vec![
        start,
        field(m.top_via(), |v| v.branch().unwrap_or("-").to_owned()),
        m.via_count().to_string(),
        field(m.from(), |n| n.tag().unwrap_or("-").to_owned()),
        field(m.to(), |n| n.tag().unwrap_or("-").to_owned()),
        field(m.call_id(), str::to_owned),
        num,
        method,
        m.body.len().to_string(),
    ]
}

fn diff(file: &str, got: &[String], want: &[String]) -> Vec<String> {
    KEY_COLUMNS
        .iter()
        .zip(got.iter().zip(want))
        .filter(|(_, (g, w))| g != w)
        .map(|(c, (g, w))| format!("{file}: {c} = {g:?}, keys.tsv says {w:?}"))
        .collect()
}

/// What must go wrong with an INVALID (or SEMANTIC) message.
enum Expect {
    /// `Message::parse` fails with this kind (and in this header, if given).
    Parse(K, Option<HeaderName>),
    /// It parses, and this check on the message holds (the endpoint turns it into 400/…).
    Check(&'static str, fn(&Message) -> bool),
}

fn err_is(r: Result<impl Sized, ParseError>, kind: K, header: HeaderName) -> bool {
    matches!(r, Err(e) if e.kind == kind && e.header == Some(header))
}

fn cseq_mismatch(m: &Message) -> bool {
    m.cseq().is_ok_and(|c| Some(&c.method) != m.method())
}

/// Per INVALID/SEMANTIC file (by archive name): the failing check.
fn expectation(name: &str) -> Option<Expect> {
    use Expect::{Check, Parse};
    Some(match name {
        "badinv01" => Check("top Via malformed", |m| {
            err_is(m.top_via(), K::Malformed, HeaderName::Via)
        }),
        "clerr" => Parse(K::Truncated, Some(HeaderName::ContentLength)),
        "ncl" => Parse(K::Malformed, Some(HeaderName::ContentLength)),
        "scalar02" => Check("CSeq out of range", |m| {
            err_is(m.cseq(), K::OutOfRange, HeaderName::CSeq)
                && err_is(
                    m.number(HeaderName::MaxForwards, 255),
                    K::OutOfRange,
                    HeaderName::MaxForwards,
                )
        }),
        "scalarlg" => Check("CSeq out of range (response)", |m| {
            m.status() == Some(503) && err_is(m.cseq(), K::OutOfRange, HeaderName::CSeq)
        }),
        "quotbal" => Check("To malformed", |m| {
            err_is(m.to(), K::Malformed, HeaderName::To)
        }),
        "ltgtruri" | "escruri" | "ipv6-bad" => Parse(K::BadRequestUri, None),
        "lwsruri" | "lwsstart" | "trws" => Parse(K::BadRequestLine, None),
        "baddate" => Check("check_date fails", |m| {
            m.header_str(&HeaderName::Date)
                .is_some_and(|d| check_date(d).is_err())
        }),
        "regbadct" => Check("Contact malformed", |m| {
            m.contacts().any(|c| {
                matches!(c, Err(e) if e.kind == K::Malformed && e.header == Some(HeaderName::Contact))
            })
        }),
        "badaspec" => Check("To malformed", |m| {
            err_is(m.to(), K::Malformed, HeaderName::To)
        }),
        "baddn" => Parse(K::UnterminatedHeaders, None),
        "badvers" => Parse(K::UnsupportedVersion, None),
        "mismatch01" | "mismatch02" => {
            Check("CSeq method differs from request method", cseq_mismatch)
        }
        "bigcode" => Parse(K::BadStatusCode, None),
        "insuf" => Check("From/To/Call-ID missing", |m| {
            err_is(m.from(), K::Missing, HeaderName::From)
                && err_is(m.to(), K::Missing, HeaderName::To)
                && err_is(m.call_id(), K::Missing, HeaderName::CallId)
        }),
        "multi01" => Check("CSeq, Call-ID, From and To occur twice", |m| {
            [
                HeaderName::CSeq,
                HeaderName::CallId,
                HeaderName::To,
                HeaderName::From,
            ]
            .iter()
            .all(|h| m.headers.count(h) > 1)
        }),
        "mcl01" => Parse(K::Duplicate, Some(HeaderName::ContentLength)),
        _ => return None,
    })
}

/// The archive name inside `<section>-<name>.dat` (RFC 5118 files: `5118-<section>-<name>`).
fn archive_name(file: &str) -> &str {
    let stem = file.strip_suffix(".dat").unwrap();
    let stem = stem.strip_prefix("5118-").unwrap_or(stem);
    stem.split_once('-').unwrap().1
}

#[test]
fn corpus_index_and_keys_agree() {
    let idx = index();
    let keys = keys();
    assert_eq!(idx.len(), 61);
    for e in &idx {
        assert!(corpus_dir().join(&e.file).is_file(), "{}", e.file);
        let has_keys = keys.contains_key(&e.file);
        assert_eq!(has_keys, e.class != "INVALID", "{} ({})", e.file, e.class);
    }
    assert_eq!(
        keys.len(),
        idx.iter().filter(|e| e.class != "INVALID").count()
    );
}

#[test]
fn valid_messages_parse_with_the_reference_keys() {
    let keys = keys();
    let mut faults = Vec::new();
    let mut checked = 0;
    for e in index().iter().filter(|e| e.class == "VALID") {
        match Message::parse(read(&e.file)) {
            Ok(m) => faults.extend(diff(&e.file, &kald_keys(&m), &keys[&e.file])),
            Err(err) => faults.push(format!("{}: does not parse: {err:?}", e.file)),
        }
        checked += 1;
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    assert_eq!(checked, 38);
}

#[test]
fn invalid_and_semantic_messages_fail_the_mapped_check() {
    let keys = keys();
    let mut faults = Vec::new();
    let mut checked = 0;
    for e in index().iter().filter(|e| e.class != "VALID") {
        let name = archive_name(&e.file);
        let Some(expect) = expectation(name) else {
            faults.push(format!("{}: no expectation in the table", e.file));
            continue;
        };
        checked += 1;
        let parsed = Message::parse(read(&e.file));
        match (expect, parsed) {
            (Expect::Parse(kind, header), Err(err)) => {
                if err.kind != kind || (header.is_some() && err.header != header) {
                    faults.push(format!(
                        "{}: want {kind:?} in {header:?}, got {:?} in {:?}",
                        e.file, err.kind, err.header
                    ));
                }
                // A broken request keeps what is needed for the 400/505 (style.md rule 9).
                let request = !read(&e.file).starts_with(b"SIP/");
                if request {
                    match &err.partial {
                        Some(p) if p.headers.contains(&HeaderName::Via) => {}
                        _ => faults.push(format!("{}: no partial headers for the reply", e.file)),
                    }
                }
            }
            (Expect::Parse(kind, _), Ok(_)) => {
                faults.push(format!("{}: parsed, want {kind:?}", e.file));
            }
            (Expect::Check(what, check), Ok(m)) => {
                if !check(&m) {
                    faults.push(format!("{}: check {what:?} does not hold", e.file));
                }
                if e.class == "SEMANTIC" {
                    faults.extend(diff(&e.file, &kald_keys(&m), &keys[&e.file]));
                }
            }
            (Expect::Check(what, _), Err(err)) => {
                faults.push(format!("{}: want parse + {what:?}, got {err:?}", e.file));
            }
        }
    }
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    assert_eq!(checked, 23);
}

#[test]
fn no_prefix_of_any_file_panics() {
    let mut calls = 0usize;
    let mut expected = 0usize;
    for e in index() {
        let full = read(&e.file);
        expected += 2 * (full.len() + 1);
        for len in 0..=full.len() {
            let buf = full.slice(..len);
            for framing in [Framing::Datagram, Framing::Stream] {
                if let Ok((m, _)) = Message::parse_with(buf.clone(), framing, Limits::default()) {
                    let _ = kald_keys(&m);
                }
                calls += 1;
            }
        }
    }
    assert_eq!(calls, expected);
}

#[test]
fn print_then_reparse_keeps_keys_and_body() {
    let mut faults = Vec::new();
    let mut round_trips = 0;
    for e in index() {
        let Ok(m) = Message::parse(read(&e.file)) else {
            continue;
        };
        let printed = m.to_bytes();
        match Message::parse(printed.clone()) {
            Ok(again) => {
                faults.extend(diff(&e.file, &kald_keys(&again), &kald_keys(&m)));
                if again.body != m.body {
                    faults.push(format!("{}: body changed", e.file));
                }
                if again.start != m.start || again.headers != m.headers {
                    faults.push(format!("{}: start line or headers changed", e.file));
                }
                // Printing is a fixed point after one round.
                if again.to_bytes() != printed {
                    faults.push(format!("{}: second print differs", e.file));
                }
            }
            Err(err) => faults.push(format!("{}: reparse fails: {err:?}", e.file)),
        }
        round_trips += 1;
    }
    assert!(round_trips >= 38 + 2, "{round_trips}");
    assert!(faults.is_empty(), "{}", faults.join("\n"));
}
