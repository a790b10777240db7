//! Parse throughput of kald's message layer against rsip 0.4 and ezk-sip-types 0.6.5, on a
//! typical 800-byte INVITE with SDP as a carrier SBC sends it to kald.
//!
//! * `parse/<lib>`: the message from one datagram, as each library frames it.
//! * `parse+keys/<lib>`: the same plus what the transaction and dialog layers read from every
//!   message: top Via branch, Via count, From tag, To tag, Call-ID, CSeq, Content-Length and
//!   the body.
//!
//! `cargo bench -p kald-sip --bench parse -- --warm-up-time 1 --measurement-time 3`
#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kald_sip::{HeaderName, Message};

const HEAD: &str = "INVITE sip:70101010@kald.example.dk SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.20.30.40:5060;branch=z9hG4bK-524287-1---a1b2c3d4e5f6;rport\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
Record-Route: <sip:10.20.30.40;lr;ftag=a73kszlfl>\r\n\
Max-Forwards: 69\r\n\
From: \"Borger\" <sip:+4512345678@carrier.example.dk;user=phone>;tag=a73kszlfl\r\n\
To: <sip:70101010@kald.example.dk>\r\n\
Call-ID: 1j9FpLxk3uxtm8tn@192.0.2.10\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:+4512345678@192.0.2.10:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE\r\n\
Supported: 100rel, timer\r\n\
User-Agent: CarrierSBC/4.2\r\n\
Content-Type: application/sdp\r\n";

const SDP: &str = "v=0\r\n\
o=- 1234567890 1234567890 IN IP4 192.0.2.10\r\n\
s=-\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 30000 RTP/AVP 8 0\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Bytes {
    Bytes::from(format!("{HEAD}Content-Length: {}\r\n\r\n{SDP}", SDP.len()))
}

/// The key fields, in a form every library can produce.
#[derive(Debug, PartialEq)]
struct Keys {
    branch: String,
    vias: usize,
    from_tag: String,
    to_tag: Option<String>,
    call_id: String,
    cseq: u32,
    content_length: usize,
    body: usize,
}

// ---- kald ---------------------------------------------------------------------------------

fn kald_parse(buf: &Bytes) -> Message {
    Message::parse(buf.clone()).unwrap()
}

/// The key fields as the endpoint reads them (no allocation on kald's side).
fn kald_keys(buf: &Bytes) -> usize {
    let m = kald_parse(buf);
    let via = m.top_via().unwrap();
    let branch = via.branch().unwrap();
    let from = m.from().unwrap();
    let to = m.to().unwrap();
    let cseq = m.cseq().unwrap();
    let cl = m.number(HeaderName::ContentLength, u64::MAX).unwrap();
    black_box((
        branch,
        m.via_count(),
        from.tag(),
        to.tag(),
        m.call_id().unwrap(),
        cseq.seq,
        &cseq.method,
        cl,
        &m.body,
    ));
    m.body.len()
}

fn kald_owned(buf: &Bytes) -> Keys {
    let m = kald_parse(buf);
    Keys {
        branch: m.top_via().unwrap().branch().unwrap().to_owned(),
        vias: m.via_count(),
        from_tag: m.from().unwrap().tag().unwrap().to_owned(),
        to_tag: m.to().unwrap().tag().map(str::to_owned),
        call_id: m.call_id().unwrap().to_owned(),
        cseq: m.cseq().unwrap().seq,
        content_length: m
            .number(HeaderName::ContentLength, u64::MAX)
            .unwrap()
            .unwrap() as usize,
        body: m.body.len(),
    }
}

// ---- rsip ---------------------------------------------------------------------------------

fn rsip_parse(buf: &Bytes) -> rsip::SipMessage {
    rsip::SipMessage::try_from(buf.clone()).unwrap()
}

fn rsip_owned(buf: &Bytes) -> Keys {
    use rsip::prelude::*;
    let m = rsip_parse(buf);
    let vias: Vec<&rsip::headers::Via> = m
        .headers()
        .iter()
        .filter_map(|h| match h {
            rsip::Header::Via(v) => Some(v),
            _ => None,
        })
        .collect();
    let top = vias[0].typed().unwrap();
    let cl = m
        .headers()
        .iter()
        .find_map(|h| match h {
            rsip::Header::ContentLength(c) => Some(c.length().unwrap()),
            _ => None,
        })
        .unwrap();
    Keys {
        branch: top.branch().unwrap().to_string(),
        vias: vias.len(),
        from_tag: m
            .from_header()
            .unwrap()
            .typed()
            .unwrap()
            .tag()
            .unwrap()
            .to_string(),
        to_tag: m
            .to_header()
            .unwrap()
            .typed()
            .unwrap()
            .tag()
            .map(ToString::to_string),
        call_id: m.call_id_header().unwrap().value().to_owned(),
        cseq: m.cseq_header().unwrap().typed().unwrap().seq,
        content_length: cl as usize,
        body: m.body().len(),
    }
}

// ---- ezk-sip-types (framed as ezk-sip-core frames a UDP datagram) -------------------------

struct EzkMessage {
    line: ezk_sip_types::msg::MessageLine,
    headers: ezk_sip_types::Headers,
    body: Bytes,
}

fn ezk_parse(buf: &Bytes) -> EzkMessage {
    use ezk_sip_types::header::typed::ContentLength;
    use ezk_sip_types::msg::{Line, MessageLine, PullParser};
    use ezk_sip_types::parse::Parse;

    let mut lines = PullParser::new(buf, 0);
    let mut line = None;
    let mut headers = ezk_sip_types::Headers::new();
    for item in &mut lines {
        let l = std::str::from_utf8(item.unwrap()).unwrap();
        if line.is_none() {
            line = Some(MessageLine::parse(buf)(l).unwrap().1);
        } else {
            let h = Line::parse(buf, l).unwrap().1;
            headers.insert(h.name, h.value);
        }
    }
    let head_end = lines.head_end();
    let body = match headers.get_named::<ContentLength>() {
        Ok(ContentLength(n)) => buf.slice(head_end..head_end + n),
        Err(_) => buf.slice(head_end..),
    };
    EzkMessage {
        line: line.unwrap(),
        headers,
        body,
    }
}

fn ezk_owned(buf: &Bytes) -> Keys {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentLength, FromTo, Via};
    use ezk_sip_types::Name;
    let m = ezk_parse(buf);
    assert!(m.line.is_request());
    let vias = m.headers.get_named::<Vec<Via>>().unwrap();
    Keys {
        branch: vias[0].params.get_val("branch").unwrap().to_string(),
        vias: vias.len(),
        from_tag: m
            .headers
            .get::<FromTo>(Name::FROM)
            .unwrap()
            .tag
            .unwrap()
            .to_string(),
        to_tag: m
            .headers
            .get::<FromTo>(Name::TO)
            .unwrap()
            .tag
            .map(|t| t.to_string()),
        call_id: m.headers.get_named::<CallID>().unwrap().0.to_string(),
        cseq: m.headers.get_named::<CSeq>().unwrap().cseq,
        content_length: m.headers.get_named::<ContentLength>().unwrap().0,
        body: m.body.len(),
    }
}

fn ezk_keys(buf: &Bytes) -> usize {
    use ezk_sip_types::header::typed::{CSeq, CallID, ContentLength, FromTo, Via};
    use ezk_sip_types::Name;
    let m = ezk_parse(buf);
    let vias = m.headers.get_named::<Vec<Via>>().unwrap();
    let from = m.headers.get::<FromTo>(Name::FROM).unwrap();
    let to = m.headers.get::<FromTo>(Name::TO).unwrap();
    black_box((
        vias[0].params.get_val("branch").unwrap(),
        vias.len(),
        &from.tag,
        &to.tag,
        m.headers.get_named::<CallID>().unwrap(),
        m.headers.get_named::<CSeq>().unwrap(),
        m.headers.get_named::<ContentLength>().unwrap(),
        &m.body,
    ));
    m.body.len()
}

fn rsip_keys(buf: &Bytes) -> usize {
    use rsip::prelude::*;
    let m = rsip_parse(buf);
    let mut vias = m.headers().iter().filter_map(|h| match h {
        rsip::Header::Via(v) => Some(v),
        _ => None,
    });
    let top = vias.next().unwrap().typed().unwrap();
    let count = 1 + vias.count();
    let cl = m
        .headers()
        .iter()
        .find_map(|h| match h {
            rsip::Header::ContentLength(c) => Some(c.length().unwrap()),
            _ => None,
        })
        .unwrap();
    let from = m.from_header().unwrap().typed().unwrap();
    let to = m.to_header().unwrap().typed().unwrap();
    let cseq = m.cseq_header().unwrap().typed().unwrap();
    black_box((
        top.branch().unwrap(),
        count,
        from.tag(),
        to.tag(),
        m.call_id_header().unwrap().value(),
        cseq,
        cl,
        m.body(),
    ));
    m.body().len()
}

fn benches(c: &mut Criterion) {
    let buf = invite();
    // All three must read the message the same way, or the comparison means nothing.
    let want = Keys {
        branch: "z9hG4bK-524287-1---a1b2c3d4e5f6".into(),
        vias: 2,
        from_tag: "a73kszlfl".into(),
        to_tag: None,
        call_id: "1j9FpLxk3uxtm8tn@192.0.2.10".into(),
        cseq: 1,
        content_length: SDP.len(),
        body: SDP.len(),
    };
    assert_eq!(kald_owned(&buf), want);
    assert_eq!(rsip_owned(&buf), want);
    assert_eq!(ezk_owned(&buf), want);
    eprintln!("INVITE: {} bytes ({} of SDP)", buf.len(), SDP.len());

    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("kald", |b| b.iter(|| kald_parse(black_box(&buf))));
    g.bench_function("rsip", |b| b.iter(|| rsip_parse(black_box(&buf))));
    g.bench_function("ezk", |b| b.iter(|| ezk_parse(black_box(&buf))));
    g.finish();

    let mut g = c.benchmark_group("parse+keys");
    g.throughput(Throughput::Elements(1));
    g.bench_function("kald", |b| b.iter(|| kald_keys(black_box(&buf))));
    g.bench_function("rsip", |b| b.iter(|| rsip_keys(black_box(&buf))));
    g.bench_function("ezk", |b| b.iter(|| ezk_keys(black_box(&buf))));
    g.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);
