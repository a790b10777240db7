//! Differential test: kald's message layer, rsip 0.4 and ezk-sip-types 0.6.5 over the torture
//! corpus and over a few thousand deterministic mutations of it.
//!
//! Ground truth is `keys.tsv` (written by hand from the raw bytes): kald must agree with it on
//! every VALID corpus message, and the test fails if it does not. rsip and ezk are only
//! compared: where they disagree with kald it is written to
//! `$CARGO_TARGET_TMPDIR/differential-report.tsv` and counted in the summary, never failed on.
//!
//! ezk-sip-types has no whole-message parser of its own; the datagram framing used here is
//! the one ezk-sip-core applies to a UDP datagram (`PullParser` lines, `MessageLine`, `Line`,
//! Content-Length if it decodes, else the rest of the datagram).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use bytes::Bytes;
use kald_sip::{Message, ParseError, ParseErrorKind as K, StartLine};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const FIELDS: [&str; 9] = [
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

/// How many mutants to generate (env `KALD_DIFF_MUTANTS` overrides).
const DEFAULT_MUTANTS: usize = 4000;

/// A library's reading of one message: the nine key fields (`-` = absent, `!…` = the typed
/// accessor failed), or why the message was rejected.
type Outcome = Result<Vec<String>, String>;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sip")
}

fn tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(corpus_dir().join(name)).unwrap();
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------
// kald
// ---------------------------------------------------------------------------------------

fn kald_field<T>(r: Result<T, ParseError>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => show(v),
        Err(e) if e.kind == K::Missing => "-".to_owned(),
        Err(e) => format!("!{:?}", e.kind),
    }
}

fn kald(buf: &[u8]) -> Outcome {
    let m = Message::parse(Bytes::copy_from_slice(buf)).map_err(|e| format!("{:?}", e.kind))?;
    let start = match &m.start {
        StartLine::Request { method, .. } => String::from_utf8_lossy(method.as_bytes()).into(),
        StartLine::Response { code, .. } => code.to_string(),
    };
    let (num, method) = match m.cseq() {
        Ok(c) => (c.seq.to_string(), c.method.to_string()),
        Err(e) if e.kind == K::Missing => ("-".into(), "-".into()),
        Err(e) => (format!("!{:?}", e.kind), format!("!{:?}", e.kind)),
    };
    Ok(vec![
        start,
        kald_field(m.top_via(), |v| v.branch().unwrap_or("-").to_owned()),
        m.via_count().to_string(),
        kald_field(m.from(), |n| n.tag().unwrap_or("-").to_owned()),
        kald_field(m.to(), |n| n.tag().unwrap_or("-").to_owned()),
        kald_field(m.call_id(), str::to_owned),
        num,
        method,
        m.body.len().to_string(),
    ])
}

// ---------------------------------------------------------------------------------------
// rsip 0.4
// ---------------------------------------------------------------------------------------

fn rsip_field<T>(r: Result<T, rsip::Error>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => show(v),
        Err(rsip::Error::MissingHeader(_)) => "-".to_owned(),
        Err(_) => "!err".to_owned(),
    }
}

fn rsip(buf: &[u8]) -> Outcome {
    use rsip::prelude::*;
    let msg = rsip::SipMessage::try_from(buf).map_err(|_| "rejected".to_owned())?;
    let start = match &msg {
        rsip::SipMessage::Request(r) => r.method().to_string(),
        rsip::SipMessage::Response(r) => r.status_code().code().to_string(),
    };
    let vias: Vec<&rsip::headers::Via> = msg
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Via(v) => Some(v),
            _ => None,
        })
        .collect();
    let branch = match vias.first() {
        None => "-".to_owned(),
        Some(v) => rsip_field(v.typed(), |v| {
            v.branch().map_or("-".to_owned(), ToString::to_string)
        }),
    };
    let cseq = msg.cseq_header().and_then(|c| c.typed());
    let (num, method) = match cseq {
        Ok(c) => (c.seq.to_string(), c.method.to_string()),
        Err(rsip::Error::MissingHeader(_)) => ("-".into(), "-".into()),
        Err(_) => ("!err".into(), "!err".into()),
    };
    Ok(vec![
        start,
        branch,
        vias.len().to_string(),
        rsip_field(msg.from_header().and_then(|h| h.typed()), |f| {
            f.tag().map_or("-".to_owned(), ToString::to_string)
        }),
        rsip_field(msg.to_header().and_then(|h| h.typed()), |t| {
            t.tag().map_or("-".to_owned(), ToString::to_string)
        }),
        rsip_field(msg.call_id_header(), |c| c.value().trim().to_owned()),
        num,
        method,
        msg.body().len().to_string(),
    ])
}

// ---------------------------------------------------------------------------------------
// ezk-sip-types 0.6.5 (with ezk-sip-core's datagram framing)
// ---------------------------------------------------------------------------------------

fn ezk(buf: &[u8]) -> Outcome {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentLength, FromTo, Via};
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;
    use ezk_sip_types::{Headers, Name};

    let buffer = Bytes::copy_from_slice(buf);
    let mut lines = PullParser::new(&buffer, 0);
    let mut start = None;
    let mut headers = Headers::new();
    for item in &mut lines {
        let line = item.map_err(|_| "incomplete".to_owned())?;
        let line = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_owned())?;
        if start.is_none() {
            let (_, l) = MessageLine::parse(&buffer)(line).map_err(|_| "start line".to_owned())?;
            start = Some(l);
        } else {
            let (_, l) = Line::parse(&buffer, line).map_err(|_| "header line".to_owned())?;
            headers.insert(l.name, l.value);
        }
    }
    let start = start.ok_or_else(|| "empty".to_owned())?;
    let head_end = lines.head_end();
    let body_len = match headers.get_named::<ContentLength>() {
        Ok(ContentLength(0)) => 0,
        Ok(ContentLength(n)) if buffer.len() >= head_end + n => n,
        Ok(_) => return Err("truncated".to_owned()),
        Err(_) => buffer.len() - head_end,
    };
    let start = match &start {
        MessageLine::Request(r) => r.method.to_string(),
        MessageLine::Response(s) => s.code.into_u16().to_string(),
    };
    let typed = |name: &Name, ok: Option<String>| match ok {
        _ if !headers.contains(name) => "-".to_owned(),
        Some(v) => v,
        None => "!err".to_owned(),
    };
    let vias = headers.get_named::<Vec<Via>>();
    let branch = typed(
        &Name::VIA,
        vias.as_ref().ok().and_then(|v| {
            v.first().map(|v| {
                v.params
                    .get_val("branch")
                    .map_or("-".to_owned(), |b| b.to_string())
            })
        }),
    );
    let via_count = vias.as_ref().map_or(0, Vec::len);
    let tag = |name: Name| {
        let v = headers
            .get::<FromTo>(name.clone())
            .ok()
            .map(|f| f.tag.map_or("-".to_owned(), |t| t.to_string()));
        typed(&name, v)
    };
    let cseq = headers.get_named::<CSeq>().ok();
    Ok(vec![
        start,
        branch,
        via_count.to_string(),
        tag(Name::FROM),
        tag(Name::TO),
        typed(
            &Name::CALL_ID,
            headers.get_named::<CallID>().ok().map(|c| c.0.to_string()),
        ),
        typed(&Name::CSEQ, cseq.as_ref().map(|c| c.cseq.to_string())),
        typed(&Name::CSEQ, cseq.as_ref().map(|c| c.method.to_string())),
        body_len.to_string(),
    ])
}

/// Run a third-party parser; a panic in it is an outcome, not a test failure.
fn guarded(f: fn(&[u8]) -> Outcome, buf: &[u8]) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| f(buf))).unwrap_or_else(|_| Err("PANIC".to_owned()))
}

// ---------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------

fn lines_of(b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = b;
    while let Some(i) = memchr_crlf(rest) {
        out.push(&rest[..i + 2]);
        rest = &rest[i + 2..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// One deterministic mutation of `seeds[i]`; returns the bytes and a short description.
fn mutate(rng: &mut ChaCha8Rng, seeds: &[(String, Vec<u8>)]) -> (Vec<u8>, String) {
    let (name, src) = &seeds[rng.random_range(0..seeds.len())];
    let mut b = src.clone();
    let kind = rng.random_range(0..7u8);
    let desc = match kind {
        0 => {
            let n = rng.random_range(1..=4);
            for _ in 0..n {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            format!("bitflip x{n}")
        }
        1 => {
            let i = rng.random_range(0..b.len());
            let len = rng.random_range(1..=8).min(b.len() - i);
            b.drain(i..i + len);
            format!("delete {i}+{len}")
        }
        2 => {
            let ls = lines_of(src);
            let i = rng.random_range(0..ls.len());
            let mut out = Vec::with_capacity(b.len() + ls[i].len());
            for (j, l) in ls.iter().enumerate() {
                out.extend_from_slice(l);
                if j == i {
                    out.extend_from_slice(l);
                }
            }
            b = out;
            format!("dup line {i}")
        }
        3 => {
            let ls = lines_of(src);
            let i = rng.random_range(0..ls.len());
            b = ls
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .flat_map(|(_, l)| l.iter().copied())
                .collect();
            format!("drop line {i}")
        }
        4 => {
            let (other, o) = &seeds[rng.random_range(0..seeds.len())];
            let a = rng.random_range(0..=b.len());
            let c = rng.random_range(0..=o.len());
            b.truncate(a);
            b.extend_from_slice(&o[c..]);
            format!("splice {a} + {other}@{c}")
        }
        5 => {
            const TOKENS: [&[u8]; 12] = [
                b" ", b"\r\n", b"\r\n ", b",", b";", b"\"", b"<", b">", b":", b"=", b"\0", b"%",
            ];
            let i = rng.random_range(0..=b.len());
            let t = TOKENS[rng.random_range(0..TOKENS.len())];
            b.splice(i..i, t.iter().copied());
            format!("insert {t:?} at {i}")
        }
        _ => {
            let ls = lines_of(src);
            let i = rng.random_range(0..ls.len());
            let j = rng.random_range(0..ls.len());
            let mut order: Vec<usize> = (0..ls.len()).collect();
            order.swap(i, j);
            b = order.iter().flat_map(|&k| ls[k].iter().copied()).collect();
            format!("swap lines {i},{j}")
        }
    };
    (b, format!("{name}: {desc}"))
}

// ---------------------------------------------------------------------------------------
// Comparison and report
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Tally {
    agree: usize,
    fields_differ: usize,
    kald_only_accepts: usize,
    lib_only_accepts: usize,
    both_reject: usize,
    panics: usize,
    per_field: BTreeMap<&'static str, usize>,
}

fn show(o: &Outcome) -> String {
    match o {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("ERR {e}"),
    }
}

/// Compare `lib` with `kald` for message `id`, add to `tally`, append a report row if they
/// disagree.
fn compare(
    id: &str,
    lib_name: &str,
    kald: &Outcome,
    lib: &Outcome,
    tally: &mut Tally,
    report: &mut String,
) {
    if matches!(lib, Err(e) if e == "PANIC") {
        tally.panics += 1;
    }
    let detail = match (kald, lib) {
        (Ok(k), Ok(l)) => {
            let diffs: Vec<String> = FIELDS
                .iter()
                .zip(k.iter().zip(l))
                .filter(|(_, (a, b))| a != b)
                .map(|(f, (a, b))| {
                    *tally.per_field.entry(f).or_default() += 1;
                    format!("{f}: kald={a:?} {lib_name}={b:?}")
                })
                .collect();
            if diffs.is_empty() {
                tally.agree += 1;
                return;
            }
            tally.fields_differ += 1;
            diffs.join("; ")
        }
        (Ok(_), Err(_)) => {
            tally.kald_only_accepts += 1;
            String::new()
        }
        (Err(_), Ok(_)) => {
            tally.lib_only_accepts += 1;
            String::new()
        }
        (Err(_), Err(_)) => {
            tally.both_reject += 1;
            return;
        }
    };
    let clean = |s: &str| s.replace(['\t', '\r', '\n'], " ");
    writeln!(
        report,
        "{}\t{lib_name}\t{}\t{}\t{}",
        clean(id),
        clean(&show(kald)),
        clean(&show(lib)),
        clean(&detail)
    )
    .unwrap();
}

fn summary(name: &str, t: &Tally) -> String {
    format!(
        "{name:>5}: agree {}, key fields differ {} {:?}, only kald accepts {}, only {name} \
         accepts {}, both reject {}, {name} panics {}",
        t.agree,
        t.fields_differ,
        t.per_field,
        t.kald_only_accepts,
        t.lib_only_accepts,
        t.both_reject,
        t.panics
    )
}

#[test]
fn kald_rsip_ezk_differential() {
    let index = tsv("index.tsv");
    let keys: BTreeMap<String, Vec<String>> = tsv("keys.tsv")
        .into_iter()
        .map(|mut r| {
            let file = r.remove(0);
            (file, r)
        })
        .collect();
    let seeds: Vec<(String, Vec<u8>)> = index
        .iter()
        .map(|r| {
            let b = std::fs::read(corpus_dir().join(&r[0])).unwrap();
            (r[0].clone(), b)
        })
        .collect();

    let mut report = String::from("message\tlibrary\tkald\tlibrary_outcome\tdisagreement\n");
    let mut ground_truth_faults = Vec::new();
    let mut corpus = (Tally::default(), Tally::default());
    let mut truth = (Tally::default(), Tally::default(), Tally::default());

    // 1. The corpus: kald against keys.tsv (asserted), and rsip/ezk against kald.
    for (row, (file, bytes)) in index.iter().zip(&seeds) {
        let class = &row[5];
        let k = kald(bytes);
        let r = guarded(rsip, bytes);
        let e = guarded(ezk, bytes);
        if let Some(want) = keys.get(file) {
            let want: Outcome = Ok(want.clone());
            let mut sink = String::new();
            if class == "VALID" {
                compare(file, "kald", &want, &k, &mut truth.0, &mut sink);
                if !sink.is_empty() {
                    ground_truth_faults.push(sink.clone());
                }
                compare(file, "rsip", &want, &r, &mut truth.1, &mut sink);
                compare(file, "ezk", &want, &e, &mut truth.2, &mut sink);
            }
        }
        let id = format!("corpus {file} ({class})");
        compare(&id, "rsip", &k, &r, &mut corpus.0, &mut report);
        compare(&id, "ezk", &k, &e, &mut corpus.1, &mut report);
    }

    // 2. Deterministic mutants of the corpus.
    let n = std::env::var("KALD_DIFF_MUTANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MUTANTS);
    let mut rng = ChaCha8Rng::seed_from_u64(0x4b41_4c44);
    let mut mutants = (Tally::default(), Tally::default());
    // With KALD_DIFF_DUMP=<dir>, every mutant that someone disagrees on is saved there.
    let dump = std::env::var_os("KALD_DIFF_DUMP").map(PathBuf::from);
    for i in 0..n {
        let (bytes, desc) = mutate(&mut rng, &seeds);
        let k = kald(&bytes);
        let r = guarded(rsip, &bytes);
        let e = guarded(ezk, &bytes);
        let id = format!("mutant {i} ({desc})");
        let before = report.len();
        compare(&id, "rsip", &k, &r, &mut mutants.0, &mut report);
        compare(&id, "ezk", &k, &e, &mut mutants.1, &mut report);
        if let Some(dir) = dump.as_ref().filter(|_| report.len() != before) {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join(format!("mutant-{i}.dat")), &bytes).unwrap();
        }
    }

    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("differential-report.tsv");
    std::fs::write(&path, &report).unwrap();
    println!("differential report: {}", path.display());
    println!("VALID corpus vs keys.tsv (38 messages):");
    for (name, t) in [("kald", &truth.0), ("rsip", &truth.1), ("ezk", &truth.2)] {
        println!(
            "  {name:>5}: right {}, key fields wrong {} {:?}, rejected {}",
            t.agree, t.fields_differ, t.per_field, t.kald_only_accepts
        );
    }
    println!("whole corpus (61 messages), library vs kald:");
    println!("  {}", summary("rsip", &corpus.0));
    println!("  {}", summary("ezk", &corpus.1));
    println!("{n} mutants, library vs kald:");
    println!("  {}", summary("rsip", &mutants.0));
    println!("  {}", summary("ezk", &mutants.1));

    assert!(
        ground_truth_faults.is_empty(),
        "kald disagrees with keys.tsv:\n{}",
        ground_truth_faults.join("")
    );
    assert_eq!(truth.0.agree, 38);
}
