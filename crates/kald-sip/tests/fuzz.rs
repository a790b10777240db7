//! Stable-Rust fuzzing of the message layer (style.md rule 13), run by plain `cargo test`.
//!
//! * `bolero_raw_bytes` and `bolero_spliced_corpus`: bolero targets (random engine under
//!   `cargo test`; `cargo bolero test` runs them under libFuzzer when it is installed).
//! * `corpus_mutation_loop`: a seeded, deterministic mutation loop over the RFC 4475/5118
//!   corpus that keeps every mutant that still parses as a further seed.
//! * `replay_fuzz_regressions`: every input that ever broke an invariant, from
//!   `tests/corpus/sip/fuzz-regressions/`.
//!
//! Invariants, for every input and both framings:
//! 1. parsing never panics, and neither does any typed accessor on the result;
//! 2. a message that parses prints (`to_bytes`) to bytes that parse again, with the same start
//!    line, the same headers (name and value) and the same body, and printing that again gives
//!    the same bytes;
//! 3. with stream framing, the bytes the parser says it used parse alone to the same message.
//!
//! Budget: `KALD_FUZZ_ITERS` inputs in all (default 200 000): a tenth (at least 20 000) for
//! each bolero target, the rest for the mutation loop. `KALD_FUZZ_SEED` changes the loop's
//! seed; `BOLERO_RANDOM_SEED` bolero's.
//! A failing input is written to the regressions folder before the test fails.
#![allow(clippy::unwrap_used)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use bytes::Bytes;
use kald_sip::message::{
    check_date, parse_call_id, parse_number, CSeq, Framing, Limits, NameAddr, Params, Uri, Via,
};
use kald_sip::{HeaderName, Message, ParseError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/sip")
}

fn regressions_dir() -> PathBuf {
    corpus_dir().join("fuzz-regressions")
}

fn iterations() -> usize {
    std::env::var("KALD_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000)
}

fn seeds() -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------

/// Every header name kald knows, and one it does not.
const NAMES: &[&[u8]] = &[
    b"Accept",
    b"Allow",
    b"Authorization",
    b"Call-ID",
    b"Contact",
    b"Content-Encoding",
    b"Content-Length",
    b"Content-Type",
    b"CSeq",
    b"Date",
    b"Event",
    b"Expires",
    b"From",
    b"Max-Forwards",
    b"Min-Expires",
    b"Min-SE",
    b"Proxy-Authenticate",
    b"Proxy-Authorization",
    b"Proxy-Require",
    b"RAck",
    b"Reason",
    b"Record-Route",
    b"Refer-To",
    b"Referred-By",
    b"Replaces",
    b"Require",
    b"Retry-After",
    b"Route",
    b"RSeq",
    b"Server",
    b"Session-Expires",
    b"Subject",
    b"Subscription-State",
    b"Supported",
    b"To",
    b"Unsupported",
    b"User-Agent",
    b"Via",
    b"Warning",
    b"WWW-Authenticate",
    b"X-Unknown",
];

fn touch_error(e: &ParseError) {
    let _ = (e.to_string(), e.reason_phrase(), format!("{e:?}"));
    if let Some(p) = &e.partial {
        let _ = (&p.method, p.headers.len());
        for h in &p.headers {
            let _ = h.value_str();
        }
    }
}

fn touch_params(p: Params<'_>) {
    let _ = (p.as_str(), format!("{p:?}"), p.get("tag"), p.get("branch"));
    for (n, v) in p.iter() {
        let _ = (n.len(), v.map(str::len));
    }
}

fn touch_uri(u: &Uri<'_>) {
    let _ = (
        u.to_string(),
        u.is_sip(),
        u.user,
        u.password,
        u.port,
        u.headers,
    );
    if let Some(h) = u.host {
        let _ = h.to_string();
    }
    touch_params(u.params);
}

fn touch_name_addr(n: &NameAddr<'_>) {
    let _ = (n.tag(), n.display_name);
    touch_uri(&n.uri);
    touch_params(n.params);
}

fn touch_via(v: &Via<'_>) {
    let _ = (v.branch(), v.rfc3261_branch(), v.transport, v.port);
    let _ = v.host.to_string();
    touch_params(v.params);
}

/// Run every typed reader kald has over a parsed message.
fn touch_message(m: &Message) {
    let _ = (m.method(), m.status(), m.is_request(), m.content_type());
    let _ = format!("{m:?}");
    if let Some(method) = m.method() {
        let _ = method.to_string();
    }
    if let Some(u) = m.request_uri() {
        touch_uri(&u);
    }
    match m.top_via() {
        Ok(v) => touch_via(&v),
        Err(e) => touch_error(&e),
    }
    let _ = m.via_count();
    for v in m.vias() {
        match v {
            Ok(v) => touch_via(&v),
            Err(e) => touch_error(&e),
        }
    }
    for r in [m.from(), m.to()] {
        match r {
            Ok(n) => touch_name_addr(&n),
            Err(e) => touch_error(&e),
        }
    }
    for name in [HeaderName::ReferTo, HeaderName::ReferredBy] {
        if let Ok(n) = m.name_addr(name) {
            touch_name_addr(&n);
        }
    }
    for c in m.contacts() {
        match c {
            Ok(Some(n)) => touch_name_addr(&n),
            Ok(None) => {}
            Err(e) => touch_error(&e),
        }
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for r in m.routes(name) {
            match r {
                Ok(n) => touch_name_addr(&n),
                Err(e) => touch_error(&e),
            }
        }
    }
    if let Err(e) = m.call_id() {
        touch_error(&e);
    }
    match m.cseq() {
        Ok(c) => {
            let _ = c.to_string();
        }
        Err(e) => touch_error(&e),
    }
    for (name, max) in [
        (HeaderName::MaxForwards, 255),
        (HeaderName::Expires, u64::from(u32::MAX)),
        (HeaderName::ContentLength, u64::MAX),
        (HeaderName::RSeq, u64::from(u32::MAX)),
    ] {
        let _ = m.number(name, max);
    }
    for name in NAMES {
        let name = HeaderName::from_bytes(name);
        let _ = m.header_str(&name);
        let _ = m.has_token(&name, "100rel");
        let _ = (m.headers.count(&name), m.headers.contains(&name));
        for v in m.values(name.clone()) {
            if let Err(e) = v {
                touch_error(&e);
            }
        }
    }
    // Every typed parser over every header value, whatever its name.
    for h in &m.headers {
        let _ = (h.name.as_str(), h.name.is_known(), h.name.is_list());
        let _ = h.name.is_single();
        let Some(v) = h.value_str() else { continue };
        if let Ok(via) = Via::parse(v) {
            touch_via(&via);
        }
        if let Ok(n) = NameAddr::parse(v) {
            touch_name_addr(&n);
        }
        if let Ok(u) = Uri::parse(v) {
            touch_uri(&u);
        }
        if let Ok(p) = Params::parse(v) {
            touch_params(p);
        }
        let _ = (CSeq::parse(v), check_date(v), parse_call_id(v));
        let _ = (parse_number(v, 255), parse_number(v, u64::MAX));
    }
}

/// Check every invariant on one input; `Err` describes the first one broken.
fn check(input: &[u8]) -> Result<(), String> {
    let buf = Bytes::copy_from_slice(input);
    for framing in [Framing::Datagram, Framing::Stream] {
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            Message::parse_with(buf.clone(), framing, Limits::default())
        }))
        .map_err(|_| format!("{framing:?}: parse panicked"))?;
        let (m, used) = match parsed {
            Ok(ok) => ok,
            Err(e) => {
                catch_unwind(AssertUnwindSafe(|| touch_error(&e)))
                    .map_err(|_| format!("{framing:?}: error accessors panicked"))?;
                continue;
            }
        };
        if used > buf.len() {
            return Err(format!("{framing:?}: used {used} of {} bytes", buf.len()));
        }
        catch_unwind(AssertUnwindSafe(|| touch_message(&m)))
            .map_err(|_| format!("{framing:?}: a typed accessor panicked"))?;
        let printed = catch_unwind(AssertUnwindSafe(|| m.to_bytes()))
            .map_err(|_| format!("{framing:?}: to_bytes panicked"))?;
        let again = catch_unwind(AssertUnwindSafe(|| Message::parse(printed.clone())))
            .map_err(|_| format!("{framing:?}: reparse panicked"))?
            .map_err(|e| format!("{framing:?}: printed message does not parse: {e:?}"))?;
        if again.start != m.start {
            return Err(format!("{framing:?}: start line changed in print/reparse"));
        }
        if again.headers != m.headers {
            return Err(format!("{framing:?}: headers changed in print/reparse"));
        }
        if again.body != m.body {
            return Err(format!("{framing:?}: body changed in print/reparse"));
        }
        if again.to_bytes() != printed {
            return Err(format!("{framing:?}: second print differs from the first"));
        }
        if framing == Framing::Stream {
            let alone = Message::parse_with(buf.slice(..used), Framing::Stream, Limits::default())
                .map_err(|e| format!("Stream: the {used} bytes used do not parse alone: {e:?}"))?;
            if alone.0 != m || alone.1 != used {
                return Err("Stream: the bytes used parse to another message".to_owned());
            }
        }
    }
    Ok(())
}

/// Save an input that broke an invariant; returns its file name.
fn save_regression(input: &[u8]) -> String {
    let name = format!("{}.dat", &hex::encode(Sha256::digest(input))[..16]);
    let dir = regressions_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&name), input).unwrap();
    name
}

/// Check an input and, if it breaks an invariant, save it and fail.
fn check_or_save(input: &[u8]) {
    if let Err(what) = check(input) {
        let name = save_regression(input);
        panic!("invariant broken ({what}); input saved as fuzz-regressions/{name}");
    }
}

// ---------------------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------------------

/// Each bolero target gets a tenth of the budget (at least 20 000 inputs).
fn bolero_iterations() -> usize {
    (iterations() / 10).max(20_000)
}

/// The mutation loop gets the rest.
fn loop_iterations() -> usize {
    iterations()
        .saturating_sub(2 * bolero_iterations())
        .max(10_000)
}

#[test]
fn bolero_raw_bytes() {
    bolero::check!()
        .with_iterations(bolero_iterations())
        .with_max_len(2048)
        .for_each(check_or_save);
}

#[test]
fn bolero_spliced_corpus() {
    // Raw random bytes rarely get past the start line, so this target splices them into a
    // corpus message: (which seed, where, how much to cut, what to put in).
    let seeds = seeds();
    bolero::check!()
        .with_type::<(u8, u16, u8, Vec<u8>)>()
        .with_iterations(bolero_iterations())
        .with_max_len(512)
        .for_each(|(which, at, cut, insert)| {
            let seed = &seeds[usize::from(*which) % seeds.len()];
            let at = usize::from(*at) % (seed.len() + 1);
            let end = (at + usize::from(*cut)).min(seed.len());
            let mut input = seed[..at].to_vec();
            input.extend_from_slice(insert);
            input.extend_from_slice(&seed[end..]);
            check_or_save(&input);
        });
}

/// Fragments that SIP parsers trip over, for insertion.
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\t",
    b"\r\n",
    b"\r\n ",
    b"\r\n\t",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b",",
    b";",
    b";;",
    b"=",
    b":",
    b"\"",
    b"\\",
    b"\\\"",
    b"<",
    b">",
    b"<>",
    b"[",
    b"]",
    b"[::1]",
    b"@",
    b"?",
    b"%",
    b"%00",
    b"\0",
    b"\x7f",
    b"\xff",
    b"\xc3\xa6",
    b";tag=",
    b";branch=z9hG4bK",
    b"z9hG4bK",
    b"sip:",
    b"sips:",
    b"tel:+45",
    b"SIP/2.0",
    b"SIP/2.0/UDP ",
    b"4294967296",
    b"2147483648",
    b"18446744073709551616",
    b"-1",
    b"0",
    b"\r\nl: 0",
    b"\r\nContent-Length: 99999",
    b"\r\nContent-Length: 5",
    b"\r\nv: SIP/2.0/UDP h;branch=z9hG4bKx",
    b"\r\nCSeq: 1 INVITE",
    b"\r\nf: <sip:a@b>;tag=1",
    b"\r\nX: ",
    b"INVITE sip:a@b SIP/2.0\r\n",
    b"SIP/2.0 200 OK\r\n",
];

/// Apply 1–6 random mutations to a copy of `src`, with parts of `other` for splicing.
fn mutate(rng: &mut ChaCha8Rng, src: &[u8], other: &[u8]) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..rng.random_range(1..=6) {
        let at = rng.random_range(0..=b.len());
        match rng.random_range(0..10u8) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = rng.random();
            }
            2 => {
                let len = rng.random_range(1..=16).min(b.len() - at);
                b.drain(at..at + len);
            }
            3 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            4 => {
                // Duplicate the line that contains `at`.
                let start = b[..at]
                    .windows(2)
                    .rposition(|w| w == b"\r\n")
                    .map_or(0, |i| i + 2);
                let end = b[at..]
                    .windows(2)
                    .position(|w| w == b"\r\n")
                    .map_or(b.len(), |i| at + i + 2);
                let line = b[start..end].to_vec();
                b.splice(end..end, line);
            }
            5 if !other.is_empty() => {
                // Splice: our prefix, the other message's suffix.
                let from = rng.random_range(0..other.len());
                b.truncate(at);
                b.extend_from_slice(&other[from..]);
            }
            6 if !other.is_empty() => {
                // Insert a chunk of the other message.
                let from = rng.random_range(0..other.len());
                let len = rng.random_range(1..=64).min(other.len() - from);
                b.splice(at..at, other[from..from + len].iter().copied());
            }
            7 => b.truncate(at),
            8 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] = b[i].to_ascii_uppercase() ^ (b[i].is_ascii_alphabetic() as u8 * 0x20);
            }
            _ => {
                // Repeat a short chunk.
                let len = rng.random_range(1..=8).min(b.len() - at);
                let chunk = b[at..at + len].to_vec();
                for _ in 0..rng.random_range(1..=8) {
                    b.splice(at..at, chunk.iter().copied());
                }
            }
        }
    }
    b
}

#[test]
fn corpus_mutation_loop() {
    let seed = std::env::var("KALD_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b61_6c64_u64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let base = seeds();
    let mut pool: Vec<Vec<u8>> = base.clone();
    let n = loop_iterations();
    let mut parsed = 0usize;
    let mut failures = Vec::new();
    for _ in 0..n {
        let src = &pool[rng.random_range(0..pool.len())];
        let other = &base[rng.random_range(0..base.len())];
        let input = mutate(&mut rng, src, other);
        match check(&input) {
            Ok(()) => {}
            Err(what) => {
                let name = save_regression(&input);
                failures.push(format!("{what}: fuzz-regressions/{name}"));
                if failures.len() >= 20 {
                    break;
                }
            }
        }
        if Message::parse(Bytes::from(input.clone())).is_ok() {
            parsed += 1;
            // Keep messages that still parse as seeds, so mutations stack up.
            if pool.len() < 4096 {
                pool.push(input);
            } else {
                let i = rng.random_range(base.len()..pool.len());
                pool[i] = input;
            }
        }
    }
    println!("{n} mutants (seed {seed:#x}), {parsed} parsed");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn replay_fuzz_regressions() {
    let Ok(dir) = std::fs::read_dir(regressions_dir()) else {
        return;
    };
    let mut files: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for f in &files {
        let input = std::fs::read(f).unwrap();
        if let Err(what) = check(&input) {
            failures.push(format!("{}: {what}", f.display()));
        }
    }
    println!("replayed {} regression inputs", files.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
