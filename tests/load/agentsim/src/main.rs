//! agentsim: many simulated agents' softphones in one process, for kald's load benchmark of
//! bridged calls (tests/load/README.md, "Bridged calls with agents").
//!
//! Each agent has its own UDP socket for SIP (kald sends its INVITEs over the flow the
//! REGISTER came from) and one for RTP. An agent REGISTERs (digest, answering the 401),
//! logs in with a `*20` INVITE (answering the 407; ACKs kald's 200 and answers its BYE after
//! the prompt), then answers every INVITE kald sends it (180, 200 with SDP), sends a tone at
//! 20 ms until its talk time is over, checks what arrives from kald (packets, sequence gaps,
//! inter-arrival jitter from kernel receive timestamps, whether it is the citizen's tone) and
//! hangs up with BYE. With `wrap_up_seconds = 0` the agent is available again once kald has
//! its BYE, so the time from the BYE (and from kald's 200 for it) to the next INVITE arriving
//! is the ACD's "available → INVITE" latency, loopback included.
//!
//! ```text
//! agentsim run --kald 127.0.0.1:5070 --agents 200 --talk-ms 3000-5000 --duration 60 --out DIR
//! agentsim tone --hz 440 --out tone.ulaw      # one second of µ-law, for sipp's rtp_stream
//! agentsim wavcheck rec1.wav rec2.wav …        # exported recordings: tone per channel, gaps
//! ```
//!
//! Writes `DIR/agents.csv` (one line a second: agents registered, logged in, ringing, in a
//! call, calls done, failures), `DIR/calls.csv` (one line per call offered: agent, INVITE
//! received, 200 sent, ACK and end times in wall-clock ns, who ended it, verdict) and
//! `DIR/summary.json`; prints the summary too.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::io::{self, IoSliceMut, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kald_media::g711::Codec;
use kald_media::rtp::{write_packet, RtpView};
use kald_sip::auth::{respond, Challenge};
use kald_sip::build::Builder;
use kald_sip::message::{HeaderName, Message, Method};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrIn};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::{interval_at, sleep_until, Instant, Interval, MissedTickBehavior};

const T1: Duration = Duration::from_millis(500);
const T4: Duration = Duration::from_secs(4);
const TX_TIMEOUT: Duration = Duration::from_secs(32);
const PTIME: Duration = Duration::from_millis(20);
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

// ---- options ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Opts {
    kald: SocketAddr,
    agents: usize,
    first: usize,
    login_prefix: String,
    password_prefix: String,
    talk_ms: (u64, u64),
    answer_ms: u64,
    duration: Duration,
    login_timeout: Duration,
    stagger_ms: u64,
    tone_hz: f64,
    expect_hz: f64,
    /// Who ends the calls: the citizen (kald's BYE is the normal end) or the agent.
    agent_hangs_up: bool,
    out: PathBuf,
}

const USAGE: &str = "usage:
  agentsim run [--kald ADDR] [--agents N] [--first N] [--login-prefix a] [--password-prefix load-pass-]
               [--talk-ms MIN-MAX] [--answer-ms MS] [--duration S] [--login-timeout S] [--stagger-ms MS]
               [--tone-hz HZ] [--expect-hz HZ] [--hangup citizen|agent] --out DIR
  agentsim tone --hz HZ --out FILE      (one second of PCMU, for sipp's rtp_stream)
  agentsim wavcheck [--left-hz 440] [--right-hz 1000] FILE.wav...
                                        (per stereo WAV one JSON line: each channel's tone,
                                        cross-talk, onset and gaps in 100 ms / 20 ms blocks)
Logins are PREFIX + 3-digit number (a001 …), passwords PASSWORD-PREFIX + the same number.
--hangup citizen (default): the citizen ends each call, kald's BYE is the normal end and the
agent is free from it; --hangup agent: the agent sends BYE after --talk-ms.";

fn parse_args(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        kald: SocketAddr::from((LOCAL, 5070)),
        agents: 10,
        first: 1,
        login_prefix: "a".into(),
        password_prefix: "load-pass-".into(),
        talk_ms: (3000, 3000),
        answer_ms: 0,
        duration: Duration::from_secs(60),
        login_timeout: Duration::from_secs(60),
        stagger_ms: 2,
        tone_hz: 1000.0,
        expect_hz: 440.0,
        agent_hangs_up: false,
        out: PathBuf::new(),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--kald" => o.kald = v.parse().map_err(|_| format!("--kald: bad address {v}"))?,
            "--agents" => o.agents = num(v)? as usize,
            "--first" => o.first = num(v)? as usize,
            "--login-prefix" => o.login_prefix.clone_from(v),
            "--password-prefix" => o.password_prefix.clone_from(v),
            "--talk-ms" => {
                o.talk_ms = match v.split_once('-') {
                    Some((a, b)) => (num(a)?, num(b)?),
                    None => (num(v)?, num(v)?),
                };
                if o.talk_ms.0 > o.talk_ms.1 {
                    return Err("--talk-ms: MIN above MAX".into());
                }
            }
            "--answer-ms" => o.answer_ms = num(v)?,
            "--duration" => o.duration = Duration::from_secs(num(v)?),
            "--login-timeout" => o.login_timeout = Duration::from_secs(num(v)?),
            "--stagger-ms" => o.stagger_ms = num(v)?,
            "--tone-hz" => o.tone_hz = v.parse().map_err(|_| "--tone-hz: not a number")?,
            "--expect-hz" => o.expect_hz = v.parse().map_err(|_| "--expect-hz: not a number")?,
            "--out" => o.out = PathBuf::from(v),
            "--hangup" => {
                o.agent_hangs_up = match v.as_str() {
                    "agent" => true,
                    "citizen" => false,
                    _ => return Err("--hangup: agent or citizen".into()),
                }
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if o.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(o)
}

// ---- measurements ----------------------------------------------------------------------------

/// A histogram of microsecond values in 10 µs buckets up to 1 s, with the exact maximum.
struct Hist {
    buckets: Vec<u64>,
    count: u64,
    max: u64,
}

impl Hist {
    const STEP: u64 = 10;

    fn new() -> Self {
        Self {
            buckets: vec![0; 100_001],
            count: 0,
            max: 0,
        }
    }

    fn add(&mut self, us: u64) {
        let i = ((us / Self::STEP) as usize).min(self.buckets.len() - 1);
        self.buckets[i] += 1;
        self.count += 1;
        self.max = self.max.max(us);
    }

    /// The upper edge of the bucket holding the p-th percentile (µs).
    fn percentile(&self, p: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let want = ((p / 100.0 * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(((i as u64 + 1) * Self::STEP).min(self.max));
            }
        }
        Some(self.max)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "p50_us": self.percentile(50.0),
            "p99_us": self.percentile(99.0),
            "p999_us": self.percentile(99.9),
            "max_us": self.max,
        })
    }
}

fn percentiles(v: &mut [f64]) -> serde_json::Value {
    if v.is_empty() {
        return serde_json::json!({ "count": 0 });
    }
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((q / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    serde_json::json!({
        "count": v.len(),
        "p50_ms": p(50.0),
        "p90_ms": p(90.0),
        "p99_ms": p(99.0),
        "max_ms": v[v.len() - 1],
        "mean_ms": mean,
        "over_100ms": v.iter().filter(|x| **x > 100.0).count(),
    })
}

/// Everything the agents count, shared by all of them (one thread).
struct Stats {
    registered: usize,
    logged_in: usize,
    ringing: usize,
    in_call: usize,
    max_in_call: usize,
    offered: u64,
    answered: u64,
    acked: u64,
    ok: u64,
    cut_at_end: u64,
    busy_rejected: u64,
    cancelled: u64,
    failures: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    rtp_sent: u64,
    rtp_received: u64,
    rtp_lost: u64,
    rtp_stray: u64,
    tone_packets: u64,
    jitter: Hist,
    /// ms from the agent sending its BYE to the next INVITE arriving.
    avail_from_bye: Vec<f64>,
    /// ms from kald's 200 for that BYE arriving to the next INVITE arriving.
    avail_from_ok: Vec<f64>,
    /// Calls that were bridged (ACKed), with their talk time in s.
    talk_s: f64,
    /// One line per call kald offered (calls.csv): who, when answered and ended, verdict.
    calls: Vec<String>,
}

impl Stats {
    fn new() -> Self {
        Self {
            registered: 0,
            logged_in: 0,
            ringing: 0,
            in_call: 0,
            max_in_call: 0,
            offered: 0,
            answered: 0,
            acked: 0,
            ok: 0,
            cut_at_end: 0,
            busy_rejected: 0,
            cancelled: 0,
            failures: BTreeMap::new(),
            errors: BTreeMap::new(),
            rtp_sent: 0,
            rtp_received: 0,
            rtp_lost: 0,
            rtp_stray: 0,
            tone_packets: 0,
            jitter: Hist::new(),
            avail_from_bye: Vec::new(),
            avail_from_ok: Vec::new(),
            talk_s: 0.0,
            calls: Vec::new(),
        }
    }

    fn fail(&mut self, why: &'static str) {
        *self.failures.entry(why).or_default() += 1;
    }

    fn error(&mut self, why: String) {
        *self.errors.entry(why).or_default() += 1;
    }

    fn failed(&self) -> u64 {
        self.failures.values().sum()
    }
}

type Shared = Rc<RefCell<Stats>>;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

// ---- audio -----------------------------------------------------------------------------------

/// One 20 ms packet of a tone (the same 160 samples over and over: whole periods when the
/// frequency divides 400 Hz, e.g. 1000 Hz).
fn tone_payload(codec: Codec, hz: f64, phase0: usize) -> [u8; 160] {
    let mut pcm = [0i16; 160];
    for (i, s) in pcm.iter_mut().enumerate() {
        let t = (phase0 + i) as f64 / 8000.0;
        *s = (8000.0 * (2.0 * PI * hz * t).sin()) as i16;
    }
    let mut out = [0u8; 160];
    codec.encode(&pcm, &mut out);
    out
}

/// Share of the packet's energy at `hz` (Goertzel at the exact frequency): ~1 for a pure tone.
fn tone_share(codec: Codec, payload: &[u8], hz: f64) -> f64 {
    let w = 2.0 * PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &b in payload {
        let x = f64::from(codec.decode_sample(b));
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = payload.len() as f64;
    if energy < n * 100.0 {
        return 0.0; // silence
    }
    2.0 * power / (n * energy)
}

// ---- SIP helpers -----------------------------------------------------------------------------

fn header(msg: &Message, name: &HeaderName) -> String {
    msg.header_str(name).unwrap_or("").to_owned()
}

fn branch_of(msg: &Message) -> Option<String> {
    msg.top_via()
        .ok()
        .and_then(|v| v.branch().map(str::to_owned))
}

/// The Contact URI of a message (without `<>`), if any.
fn contact_uri(msg: &Message) -> Option<String> {
    msg.contacts()
        .filter_map(Result::ok)
        .flatten()
        .next()
        .map(|c| c.uri.raw.to_owned())
}

/// `c=` address, `m=audio` port and payload types of an SDP body.
fn read_sdp(body: &[u8]) -> Option<(SocketAddr, Vec<u8>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut ip: Option<IpAddr> = None;
    let mut media = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(c) = line.strip_prefix("c=IN IP4 ") {
            ip = c.split_whitespace().next().and_then(|a| a.parse().ok());
        } else if let Some(m) = line.strip_prefix("m=audio ") {
            let mut parts = m.split_whitespace();
            let port: u16 = parts.next()?.parse().ok()?;
            let _proto = parts.next();
            let pts = parts.filter_map(|p| p.parse().ok()).collect::<Vec<u8>>();
            media = Some((port, pts));
        }
    }
    let (port, pts) = media?;
    Some((SocketAddr::new(ip?, port), pts))
}

fn sdp(rtp_port: u16, codec: Codec) -> Bytes {
    let pt = codec.payload_type();
    Bytes::from(format!(
        "v=0\r\no=agentsim 1 1 IN IP4 {LOCAL}\r\ns=-\r\nc=IN IP4 {LOCAL}\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP {pt} 101\r\na=rtpmap:{pt} {}/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        codec.name()
    ))
}

/// A datagram with the kernel's receive time (SO_TIMESTAMPNS, realtime clock, ns).
async fn recv_ts(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr, i64)> {
    loop {
        sock.readable().await?;
        let fd = sock.as_raw_fd();
        let r = sock.try_io(Interest::READABLE, || {
            let mut iov = [IoSliceMut::new(buf)];
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut cmsg), MsgFlags::MSG_DONTWAIT)
                .map_err(io::Error::from)?;
            let mut ts = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(t) = c {
                        ts = Some(t.tv_sec() * 1_000_000_000 + t.tv_nsec());
                    }
                }
            }
            let from = msg
                .address
                .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
                .unwrap_or_else(|| SocketAddr::from((LOCAL, 0)));
            Ok((msg.bytes, from, ts.unwrap_or_else(now_ns)))
        });
        match r {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

async fn bind_udp() -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddr::from((LOCAL, 0))).await?;
    setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)?;
    Ok(s)
}

async fn tick_opt(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

// ---- one agent -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Registering,
    LoggingIn,
    Ready,
    Stopping,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Register,
    Login,
    Bye,
}

/// A request of ours awaiting its final response (retransmitted over UDP).
struct ClientTx {
    kind: TxKind,
    branch: String,
    data: Bytes,
    next: Instant,
    every: Duration,
    give_up: Instant,
    provisional: bool,
    sent_ns: i64,
    cseq: u32,
    auth_tried: bool,
}

/// The call kald placed to this agent.
struct Call {
    call_id: String,
    /// Our To (with our tag) and kald's From: the dialog's identifiers.
    local: String,
    remote: String,
    target: String,
    invite: Message,
    /// The 200, retransmitted until the ACK.
    ok: Option<Bytes>,
    ok_next: Instant,
    ok_every: Duration,
    answer_at: Option<Instant>,
    give_up: Instant,
    acked_at: Option<Instant>,
    hangup_at: Instant,
    remote_rtp: SocketAddr,
    codec: Codec,
    payload: [u8; 160],
    seq: u16,
    ts: u32,
    ssrc: u32,
    rx: u64,
    tone: u64,
    last_rx: Option<(u16, i64)>,
    cseq: u32,
    /// Wall-clock ns: INVITE received, our 200 first sent, ACK received, kald's BYE received
    /// (kernel time) or our BYE sent.
    invite_ns: i64,
    answered_ns: Option<i64>,
    acked_ns: Option<i64>,
    ended_ns: Option<i64>,
}

struct Agent {
    idx: usize,
    login: String,
    password: String,
    opts: Rc<Opts>,
    stats: Shared,
    sip: UdpSocket,
    rtp: UdpSocket,
    port: u16,
    rtp_port: u16,
    phase: Phase,
    tx: Option<ClientTx>,
    call: Option<Call>,
    tick: Option<Interval>,
    /// The *20 dialog's Call-ID and our ACK, re-sent if kald's 200 comes again.
    feature: Option<(String, Bytes)>,
    reg_call_id: String,
    counter: u64,
    rng: u64,
    /// When the agent last became free by its own BYE: (BYE sent, 200 received), ns.
    freed: Option<(i64, i64)>,
    tx_fails: u32,
}

impl Agent {
    fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{:x}x{:x}", self.idx, self.counter)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn talk_time(&mut self) -> Duration {
        let (lo, hi) = self.opts.talk_ms;
        let ms = if hi > lo {
            lo + self.random() % (hi - lo + 1)
        } else {
            lo
        };
        Duration::from_millis(ms)
    }

    async fn send(&self, data: &[u8], to: SocketAddr) {
        if let Err(e) = self.sip.send_to(data, to).await {
            self.stats.borrow_mut().error(format!("SIP send: {e}"));
        }
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/UDP {LOCAL}:{};branch=z9hG4bK{branch};rport",
            self.port
        )
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{LOCAL}:{}>", self.login, self.port)
    }

    async fn start_tx(
        &mut self,
        kind: TxKind,
        branch: String,
        cseq: u32,
        data: Bytes,
        auth_tried: bool,
    ) {
        let now = Instant::now();
        let sent_ns = now_ns();
        self.send(&data, self.opts.kald).await;
        self.tx = Some(ClientTx {
            kind,
            branch,
            data,
            next: now + T1,
            every: T1,
            give_up: now + TX_TIMEOUT,
            provisional: false,
            sent_ns,
            cseq,
            auth_tried,
        });
    }

    async fn register(&mut self, cseq: u32, auth: Option<String>) {
        let branch = self.next_id();
        let tag = format!("r{}", self.idx);
        let k = self.opts.kald;
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "REGISTER sip:{k} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             From: <sip:{l}@{LOCAL}>;tag={tag}\r\nTo: <sip:{l}@{LOCAL}>\r\nCall-ID: {}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: {}\r\nExpires: 3600\r\n{auth}\
             User-Agent: kald-agentsim\r\nContent-Length: 0\r\n\r\n",
            self.via(&branch),
            self.reg_call_id,
            self.contact(),
            l = self.login,
        );
        let tried = !auth.is_empty();
        self.start_tx(TxKind::Register, branch, cseq, Bytes::from(msg), tried)
            .await;
    }

    fn login_call_id(&self) -> String {
        format!("login-{}-{}@agentsim", self.idx, self.port)
    }

    async fn login(&mut self, cseq: u32, auth: Option<String>) {
        let branch = self.next_id();
        let k = self.opts.kald;
        let body = sdp(self.rtp_port, Codec::Pcmu);
        let auth = auth
            .map(|a| format!("Proxy-Authorization: {a}\r\n"))
            .unwrap_or_default();
        let msg = format!(
            "INVITE sip:*20@{k} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
             From: <sip:{l}@{LOCAL}>;tag=f{idx}\r\nTo: <sip:*20@{k}>\r\nCall-ID: {cid}\r\n\
             CSeq: {cseq} INVITE\r\nContact: {}\r\n{auth}User-Agent: kald-agentsim\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n",
            self.via(&branch),
            self.contact(),
            body.len(),
            l = self.login,
            idx = self.idx,
            cid = self.login_call_id(),
        );
        let mut data = msg.into_bytes();
        data.extend_from_slice(&body);
        let tried = !auth.is_empty();
        self.start_tx(TxKind::Login, branch, cseq, Bytes::from(data), tried)
            .await;
    }

    fn cnonce(&mut self) -> String {
        format!("{:016x}", self.random())
    }

    // ---- incoming ---------------------------------------------------------------------------

    async fn on_sip(&mut self, data: &[u8], from: SocketAddr, at_ns: i64) {
        if data.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        let Ok(msg) = Message::parse(Bytes::copy_from_slice(data)) else {
            self.stats
                .borrow_mut()
                .error("unparsable SIP from kald".into());
            return;
        };
        if msg.is_request() {
            self.on_request(msg, from, at_ns).await;
        } else {
            self.on_response(msg, at_ns).await;
        }
    }

    async fn reply(&self, req: &Message, code: u16, to: SocketAddr, extra: Option<(&str, Bytes)>) {
        let mut b = Builder::response_to(&req.headers, code, Some(&format!("t{}", self.idx)));
        b.push(HeaderName::Contact, self.contact());
        if let Some((ct, body)) = extra {
            b = b.body(ct, body);
        }
        self.send(&b.build().to_bytes(), to).await;
    }

    async fn on_request(&mut self, msg: Message, from: SocketAddr, at_ns: i64) {
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let call_id = msg.call_id().unwrap_or("").to_owned();
        let in_call = self.call.as_ref().is_some_and(|c| c.call_id == call_id);
        match method {
            Method::Invite if in_call => {
                // A re-INVITE (e.g. a session refresh): same answer again.
                let codec = self.call.as_ref().map_or(Codec::Pcmu, |c| c.codec);
                let is_retrans = self.call.as_ref().is_some_and(|c| {
                    c.invite
                        .top_via()
                        .ok()
                        .and_then(|v| v.branch().map(str::to_owned))
                        == branch_of(&msg)
                });
                if is_retrans {
                    if let Some(ok) = self.call.as_ref().and_then(|c| c.ok.clone()) {
                        self.send(&ok, from).await;
                    } else {
                        self.reply(&msg, 180, from, None).await;
                    }
                    return;
                }
                let body = sdp(self.rtp_port, codec);
                self.reply(&msg, 200, from, Some(("application/sdp", body)))
                    .await;
            }
            Method::Invite => self.on_invite(msg, from, at_ns).await,
            Method::Ack => {
                if let Some(c) = self.call.as_mut().filter(|c| c.call_id == call_id) {
                    if c.acked_at.is_none() && c.ok.is_some() {
                        c.acked_at = Some(Instant::now());
                        c.acked_ns = Some(at_ns);
                        let mut s = self.stats.borrow_mut();
                        s.acked += 1;
                        s.ringing -= 1;
                        s.in_call += 1;
                        s.max_in_call = s.max_in_call.max(s.in_call);
                    }
                }
            }
            Method::Bye => {
                let feature = self.feature.as_ref().is_some_and(|(id, _)| *id == call_id);
                let code = if in_call || feature { 200 } else { 481 };
                self.reply(&msg, code, from, None).await;
                if feature {
                    self.feature = None;
                } else if in_call {
                    let why = if self.phase == Phase::Stopping || !self.opts.agent_hangs_up {
                        None
                    } else {
                        Some("kald_hung_up_first")
                    };
                    let acked = self.call.as_ref().is_some_and(|c| c.acked_at.is_some());
                    if let Some(c) = self.call.as_mut() {
                        c.ended_ns = Some(at_ns);
                    }
                    self.end_call(why);
                    if acked && !self.opts.agent_hangs_up && self.phase == Phase::Ready {
                        // The agent is free as kald sends this BYE (kernel receive time).
                        self.freed = Some((at_ns, at_ns));
                    }
                }
            }
            Method::Cancel => {
                self.reply(&msg, if in_call { 200 } else { 481 }, from, None)
                    .await;
                let unanswered = self.call.as_ref().is_some_and(|c| c.ok.is_none());
                if in_call && unanswered {
                    if let Some(c) = self.call.take() {
                        self.reply(&c.invite, 487, from, None).await;
                        let mut s = self.stats.borrow_mut();
                        s.cancelled += 1;
                        s.ringing -= 1;
                    }
                    self.tick = None;
                }
            }
            _ => self.reply(&msg, 200, from, None).await,
        }
    }

    async fn on_invite(&mut self, msg: Message, from: SocketAddr, at_ns: i64) {
        if msg
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .is_some()
        {
            // In-dialog INVITE of a dialog we no longer have.
            self.reply(&msg, 481, from, None).await;
            return;
        }
        self.stats.borrow_mut().offered += 1;
        if self.phase == Phase::Stopping {
            self.reply(&msg, 480, from, None).await;
            return;
        }
        if self.call.is_some() || self.tx.as_ref().is_some_and(|t| t.kind == TxKind::Bye) {
            self.stats.borrow_mut().busy_rejected += 1;
            self.reply(&msg, 486, from, None).await;
            return;
        }
        if let Some((bye_ns, ok_ns)) = self.freed.take() {
            let mut s = self.stats.borrow_mut();
            s.avail_from_bye.push((at_ns - bye_ns) as f64 / 1e6);
            s.avail_from_ok.push((at_ns - ok_ns) as f64 / 1e6);
        }
        let Some((remote_rtp, pts)) = read_sdp(&msg.body) else {
            self.stats.borrow_mut().fail("offer_without_usable_sdp");
            self.reply(&msg, 488, from, None).await;
            return;
        };
        let Some(codec) = pts.iter().find_map(|pt| Codec::from_payload_type(*pt)) else {
            self.stats.borrow_mut().fail("offer_without_g711");
            self.reply(&msg, 488, from, None).await;
            return;
        };
        let now = Instant::now();
        let target = contact_uri(&msg).unwrap_or_else(|| format!("sip:{}", self.opts.kald));
        let local_tag = format!("t{}", self.idx);
        let local = format!("{};tag={local_tag}", header(&msg, &HeaderName::To));
        let talk = self.talk_time();
        let answer_at = now + Duration::from_millis(self.opts.answer_ms);
        let phase0 = (self.random() % 8) as usize;
        let ssrc = self.random() as u32;
        self.call = Some(Call {
            call_id: msg.call_id().unwrap_or("").to_owned(),
            local,
            remote: header(&msg, &HeaderName::From),
            target,
            invite: msg,
            ok: None,
            ok_next: now,
            ok_every: T1,
            answer_at: Some(answer_at),
            give_up: now + TX_TIMEOUT,
            acked_at: None,
            hangup_at: answer_at + talk,
            remote_rtp,
            codec,
            payload: tone_payload(codec, self.opts.tone_hz, phase0),
            seq: (ssrc >> 16) as u16,
            ts: ssrc.rotate_left(7),
            ssrc,
            rx: 0,
            tone: 0,
            last_rx: None,
            cseq: 1,
            invite_ns: at_ns,
            answered_ns: None,
            acked_ns: None,
            ended_ns: None,
        });
        self.stats.borrow_mut().ringing += 1;
        if let Some(c) = &self.call {
            self.reply(&c.invite, 180, from, None).await;
        }
        if self.opts.answer_ms == 0 {
            self.answer().await;
        }
    }

    async fn answer(&mut self) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.answer_at = None;
        let body = sdp(self.rtp_port, c.codec);
        let mut b = Builder::response_to(&c.invite.headers, 200, Some(&format!("t{}", self.idx)));
        b.push(
            HeaderName::Contact,
            format!("<sip:{}@{LOCAL}:{}>", self.login, self.port),
        );
        let ok = b.body("application/sdp", body).build().to_bytes();
        let now = Instant::now();
        c.answered_ns = Some(now_ns());
        c.ok = Some(ok.clone());
        c.ok_next = now + T1;
        c.ok_every = T1;
        c.give_up = now + TX_TIMEOUT;
        self.stats.borrow_mut().answered += 1;
        self.send(&ok, self.opts.kald).await;
        let mut t = interval_at(now, PTIME);
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        self.tick = Some(t);
    }

    async fn on_response(&mut self, msg: Message, at_ns: i64) {
        let code = msg.status().unwrap_or(0);
        let cseq = msg.cseq().ok();
        let call_id = msg.call_id().unwrap_or("").to_owned();
        // A retransmitted 200 for the *20 INVITE: ACK again.
        if let Some((id, ack)) = &self.feature {
            if *id == call_id
                && code == 200
                && self.tx.as_ref().is_none_or(|t| t.kind != TxKind::Login)
            {
                let ack = ack.clone();
                self.send(&ack, self.opts.kald).await;
                return;
            }
        }
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        if branch_of(&msg).as_deref() != Some(&format!("z9hG4bK{}", tx.branch))
            || cseq.as_ref().map(|c| c.seq) != Some(tx.cseq)
        {
            return;
        }
        if code < 200 {
            tx.provisional = true;
            return;
        }
        let Some(tx) = self.tx.take() else {
            return;
        };
        match (tx.kind, code) {
            (TxKind::Register, 401) if !tx.auth_tried => {
                match self.answer_challenge(&msg, &HeaderName::WwwAuthenticate, "REGISTER") {
                    Some(a) => self.register(tx.cseq + 1, Some(a)).await,
                    None => self.setup_failed("REGISTER challenge unusable".into()),
                }
            }
            (TxKind::Register, 200) => {
                self.stats.borrow_mut().registered += 1;
                self.phase = Phase::LoggingIn;
                self.login(1, None).await;
            }
            (TxKind::Register, c) => self.setup_failed(format!("REGISTER got {c}")),
            (TxKind::Login, c) => {
                // ACK every final response (for a non-2xx on the same branch).
                let to = header(&msg, &HeaderName::To);
                let k = self.opts.kald;
                if c >= 300 {
                    let ack = format!(
                        "ACK sip:*20@{k} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
                         From: <sip:{l}@{LOCAL}>;tag=f{idx}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                         CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
                        self.via(&tx.branch),
                        tx.cseq,
                        l = self.login,
                        idx = self.idx,
                    );
                    self.send(ack.as_bytes(), k).await;
                }
                if c == 407 && !tx.auth_tried {
                    match self.answer_challenge(&msg, &HeaderName::ProxyAuthenticate, "INVITE") {
                        Some(a) => self.login(tx.cseq + 1, Some(a)).await,
                        None => self.setup_failed("*20 challenge unusable".into()),
                    }
                } else if c == 200 {
                    let target = contact_uri(&msg).unwrap_or_else(|| format!("sip:{k}"));
                    let branch = self.next_id();
                    let ack = format!(
                        "ACK {target} SIP/2.0\r\nVia: {}\r\nMax-Forwards: 70\r\n\
                         From: <sip:{l}@{LOCAL}>;tag=f{idx}\r\nTo: {to}\r\nCall-ID: {call_id}\r\n\
                         CSeq: {} ACK\r\nContent-Length: 0\r\n\r\n",
                        self.via(&branch),
                        tx.cseq,
                        l = self.login,
                        idx = self.idx,
                    );
                    let ack = Bytes::from(ack);
                    self.send(&ack, k).await;
                    self.feature = Some((call_id, ack));
                    self.stats.borrow_mut().logged_in += 1;
                    self.phase = Phase::Ready;
                } else {
                    self.setup_failed(format!("*20 got {c}"));
                }
            }
            (TxKind::Bye, 200) => {
                if self.phase == Phase::Ready {
                    self.freed = Some((tx.sent_ns, at_ns));
                }
            }
            (TxKind::Bye, c) => {
                self.stats
                    .borrow_mut()
                    .fail(if c == 481 { "bye_481" } else { "bye_refused" });
            }
        }
    }

    fn setup_failed(&mut self, why: String) {
        self.stats.borrow_mut().error(format!("agent setup: {why}"));
        self.tx_fails += 1;
    }

    fn answer_challenge(
        &mut self,
        msg: &Message,
        name: &HeaderName,
        method: &str,
    ) -> Option<String> {
        let ch = msg
            .headers
            .all(name)
            .filter_map(|h| h.value_str())
            .find_map(|v| Challenge::parse(v).ok())?;
        let uri = match method {
            "REGISTER" => format!("sip:{}", self.opts.kald),
            _ => format!("sip:*20@{}", self.opts.kald),
        };
        let cnonce = self.cnonce();
        respond(&ch, method, &uri, &self.login, &self.password, &cnonce, 1)
            .ok()
            .map(|c| c.to_string())
    }

    // ---- media ------------------------------------------------------------------------------

    fn on_rtp(&mut self, data: &[u8], from: SocketAddr, at_ns: i64) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        if from != c.remote_rtp {
            self.stats.borrow_mut().rtp_stray += 1;
            return;
        }
        let Ok(p) = RtpView::parse(data) else {
            return;
        };
        let Some(codec) = Codec::from_payload_type(p.payload_type) else {
            return; // telephone-event, comfort noise
        };
        let mut s = self.stats.borrow_mut();
        c.rx += 1;
        s.rtp_received += 1;
        if tone_share(codec, p.payload, self.opts.expect_hz) > 0.5 {
            c.tone += 1;
            s.tone_packets += 1;
        }
        if let Some((seq, t)) = c.last_rx {
            let gap = p.sequence.wrapping_sub(seq);
            if gap == 1 {
                let dev = ((at_ns - t) - 20_000_000).unsigned_abs() / 1000;
                s.jitter.add(dev);
            } else if (2..1000).contains(&gap) {
                s.rtp_lost += u64::from(gap - 1);
            }
        }
        c.last_rx = Some((p.sequence, at_ns));
    }

    async fn send_rtp(&mut self) {
        let Some(c) = self.call.as_mut() else {
            return;
        };
        let mut buf = [0u8; 200];
        let Some(n) = write_packet(
            &mut buf,
            c.codec.payload_type(),
            false,
            c.seq,
            c.ts,
            c.ssrc,
            &c.payload,
        ) else {
            return;
        };
        c.seq = c.seq.wrapping_add(1);
        c.ts = c.ts.wrapping_add(160);
        let to = c.remote_rtp;
        if self.rtp.send_to(&buf[..n], to).await.is_ok() {
            self.stats.borrow_mut().rtp_sent += 1;
        }
    }

    // ---- ending calls -----------------------------------------------------------------------

    /// Judge the call that ends now; `why` is a failure reason known already.
    fn end_call(&mut self, why: Option<&'static str>) {
        self.tick = None;
        let Some(c) = self.call.take() else {
            return;
        };
        let mut s = self.stats.borrow_mut();
        let ns = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
        let ended = c.ended_ns.unwrap_or_else(now_ns);
        let row = |verdict: &str| {
            format!(
                "{},{},{},{},{},{},{},{},{verdict}",
                self.login,
                c.invite_ns,
                ns(c.answered_ns),
                ns(c.acked_ns),
                ended,
                if c.ended_ns.is_some() {
                    "kald"
                } else {
                    "agent"
                },
                c.rx,
                c.tone,
            )
        };
        let Some(acked) = c.acked_at else {
            s.ringing -= 1;
            s.fail(why.unwrap_or("no_ack"));
            s.calls.push(row(why.unwrap_or("no_ack")));
            return;
        };
        s.in_call -= 1;
        let talked = acked.elapsed();
        s.talk_s += talked.as_secs_f64();
        // kald starts the bridge when it has the 200; allow 0.2 s and 10 % for the start.
        let expected = (talked.as_millis() as f64 / 20.0) * 0.9 - 10.0;
        let verdict = if let Some(w) = why {
            Some(w)
        } else if c.rx == 0 {
            Some("no_rtp_from_kald")
        } else if (c.rx as f64) < expected {
            Some("too_little_rtp_from_kald")
        } else if (c.tone as f64) < 0.8 * c.rx as f64 {
            Some("not_the_citizens_audio")
        } else {
            None
        };
        match verdict {
            Some(w) => s.fail(w),
            None if self.phase == Phase::Stopping => s.cut_at_end += 1,
            None => s.ok += 1,
        }
        let line = row(match verdict {
            Some(w) => w,
            None if self.phase == Phase::Stopping => "cut_at_end",
            None => "",
        });
        s.calls.push(line);
    }

    async fn hang_up(&mut self) {
        let branch = self.next_id();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.cseq += 1;
        let msg = format!(
            "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL}:{};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\n\
             Content-Length: 0\r\n\r\n",
            c.target, self.port, c.local, c.remote, c.call_id, c.cseq
        );
        let cseq = c.cseq;
        self.end_call(None);
        self.start_tx(TxKind::Bye, branch, cseq, Bytes::from(msg), false)
            .await;
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut at = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        if let Some(tx) = &self.tx {
            at(tx.give_up);
            if !tx.provisional {
                at(tx.next);
            }
        }
        if let Some(c) = &self.call {
            if let Some(a) = c.answer_at {
                at(a);
            }
            if c.acked_at.is_none() {
                at(c.give_up);
                if c.ok.is_some() {
                    at(c.ok_next);
                }
            } else if self.opts.agent_hangs_up {
                at(c.hangup_at);
            }
        }
        d
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        let k = self.opts.kald;
        if let Some(tx) = self.tx.as_mut() {
            if now >= tx.give_up {
                let kind = tx.kind;
                self.tx = None;
                match kind {
                    TxKind::Bye => self.stats.borrow_mut().fail("bye_timeout"),
                    TxKind::Register => self.setup_failed("REGISTER timed out".into()),
                    TxKind::Login => self.setup_failed("*20 timed out".into()),
                }
            } else if !tx.provisional && now >= tx.next {
                tx.every = (tx.every * 2).min(T4);
                tx.next = now + tx.every;
                let data = tx.data.clone();
                self.send(&data, k).await;
            }
        }
        let mut resend = None;
        let mut answer = false;
        let mut hang_up = false;
        let mut no_ack = false;
        if let Some(c) = self.call.as_mut() {
            if c.answer_at.is_some_and(|a| now >= a) {
                answer = true;
            } else if c.acked_at.is_none() && now >= c.give_up {
                no_ack = true;
            } else if c.acked_at.is_none() && c.ok.is_some() && now >= c.ok_next {
                c.ok_every = (c.ok_every * 2).min(T4);
                c.ok_next = now + c.ok_every;
                resend = c.ok.clone();
            } else if self.opts.agent_hangs_up
                && c.acked_at.is_some()
                && now >= c.hangup_at
                && self.tx.is_none()
            {
                hang_up = true;
            }
        }
        if answer {
            self.answer().await;
        }
        if let Some(ok) = resend {
            self.send(&ok, k).await;
        }
        if no_ack {
            self.hang_up_unacked().await;
        }
        if hang_up {
            self.hang_up().await;
        }
    }

    async fn hang_up_unacked(&mut self) {
        // RFC 3261 §13.3.1.4: no ACK for the 200 → end the dialog with BYE.
        self.stats.borrow_mut().fail("no_ack");
        if let Some(c) = self.call.as_mut() {
            c.acked_at = Some(Instant::now());
            let mut s = self.stats.borrow_mut();
            s.ringing -= 1;
            s.in_call += 1;
        }
        let branch = self.next_id();
        let Some(c) = self.call.as_mut() else {
            return;
        };
        c.cseq += 1;
        let msg = format!(
            "BYE {} SIP/2.0\r\nVia: SIP/2.0/UDP {LOCAL}:{};branch=z9hG4bK{branch};rport\r\n\
             Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\n\
             Content-Length: 0\r\n\r\n",
            c.target, self.port, c.local, c.remote, c.call_id, c.cseq
        );
        let cseq = c.cseq;
        self.tick = None;
        if self.call.take().is_some() {
            self.stats.borrow_mut().in_call -= 1;
        }
        self.start_tx(TxKind::Bye, branch, cseq, Bytes::from(msg), false)
            .await;
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tokio::time::sleep(Duration::from_millis(
            self.opts.stagger_ms * self.idx as u64,
        ))
        .await;
        self.register(1, None).await;
        let mut sip_buf = vec![0u8; 65_535];
        let mut rtp_buf = vec![0u8; 2048];
        let mut stopping_since: Option<Instant> = None;
        loop {
            if let Some(s) = stopping_since {
                let idle = self.call.is_none() && self.tx.is_none();
                if idle || s.elapsed() > Duration::from_secs(3) {
                    if self.call.is_some() {
                        self.end_call(Some("unfinished_at_end"));
                    }
                    return;
                }
            }
            if self.tx.is_none()
                && self.tx_fails > 0
                && self.tx_fails < 5
                && self.phase != Phase::Stopping
            {
                // Retry a failed REGISTER or *20 after a pause.
                tokio::time::sleep(Duration::from_secs(2)).await;
                match self.phase {
                    Phase::Registering => self.register(100 + self.tx_fails, None).await,
                    Phase::LoggingIn => self.login(100 + self.tx_fails, None).await,
                    _ => {}
                }
                self.tx_fails += 10; // once
            }
            let deadline = self.next_deadline();
            let stop_wait = stopping_since.is_none();
            tokio::select! {
                r = recv_ts(&self.sip, &mut sip_buf) => {
                    if let Ok((n, from, at)) = r {
                        let data = sip_buf[..n].to_vec();
                        self.on_sip(&data, from, at).await;
                    }
                }
                r = recv_ts(&self.rtp, &mut rtp_buf) => {
                    if let Ok((n, from, at)) = r {
                        let data = rtp_buf[..n].to_vec();
                        self.on_rtp(&data, from, at);
                    }
                }
                () = tick_opt(&mut self.tick) => self.send_rtp().await,
                () = sleep_opt(deadline) => self.on_timer().await,
                r = stop.changed(), if stop_wait => {
                    let _ = r;
                    self.phase = Phase::Stopping;
                    stopping_since = Some(Instant::now());
                    let answered = self.call.as_ref().is_some_and(|c| c.acked_at.is_some());
                    if answered && self.tx.is_none() {
                        self.hang_up().await;
                    }
                }
            }
        }
    }
}

// ---- recordings ------------------------------------------------------------------------------

/// Interleaved 16-bit samples and the channel count of a PCM WAV file.
fn read_wav(path: &std::path::Path) -> Result<(u16, u32, Vec<i16>), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if data.len() < 12 || &data[..4] != b"RIFF" || &data[8..12] != b"WAVE" {
        return Err(format!("{}: not a WAV file", path.display()));
    }
    let (mut channels, mut rate, mut bits) = (0u16, 0u32, 0u16);
    let mut at = 12;
    while at + 8 <= data.len() {
        let id = &data[at..at + 4];
        let len =
            u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]) as usize;
        let body = at + 8;
        if id == b"fmt " && body + 16 <= data.len() {
            channels = u16::from_le_bytes([data[body + 2], data[body + 3]]);
            rate = u32::from_le_bytes([
                data[body + 4],
                data[body + 5],
                data[body + 6],
                data[body + 7],
            ]);
            bits = u16::from_le_bytes([data[body + 14], data[body + 15]]);
        } else if id == b"data" {
            if bits != 16 || channels == 0 {
                return Err(format!("{}: not 16-bit PCM", path.display()));
            }
            let end = body.saturating_add(len).min(data.len());
            let samples = data[body..end]
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            return Ok((channels, rate, samples));
        }
        at = body + len + (len & 1);
    }
    Err(format!("{}: no data chunk", path.display()))
}

/// Share of the block's energy at `hz` (Goertzel), 0 for silence.
fn share(block: &[f64], hz: f64, rate: f64) -> f64 {
    let w = 2.0 * PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &x in block {
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let n = block.len() as f64;
    if energy < n * 100.0 {
        return 0.0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (n * energy)
}

/// One channel of a recording against the tone it must carry (`own`) and the other side's.
fn check_channel(x: &[f64], rate: f64, own: f64, other: f64) -> serde_json::Value {
    // 100 ms blocks hold whole periods of 440 and 1000 Hz: tone and cross-talk shares.
    let block = (rate / 10.0) as usize;
    let (mut blocks, mut toned, mut crossed, mut silent_blocks) = (0u64, 0u64, 0u64, 0u64);
    let (mut own_min, mut cross_max) = (f64::MAX, 0.0f64);
    for b in x.chunks_exact(block) {
        blocks += 1;
        let o = share(b, own, rate);
        let c = share(b, other, rate);
        if b.iter().all(|v| v.abs() < 1.0) {
            silent_blocks += 1;
        }
        own_min = own_min.min(o);
        cross_max = cross_max.max(c);
        if o >= 0.8 {
            toned += 1;
        }
        if c > 0.05 {
            crossed += 1;
        }
    }
    // 20 ms frames: where the tone starts and ends, and audio missing in between.
    let frame = (rate / 50.0) as usize;
    let marks: Vec<bool> = x
        .chunks_exact(frame)
        .map(|f| share(f, own, rate) > 0.5)
        .collect();
    let first = marks.iter().position(|m| *m);
    let last = marks.iter().rposition(|m| *m);
    let (mut gap_frames, mut longest, mut run) = (0u64, 0u64, 0u64);
    // The first few gaps: [start ms, length ms].
    let mut gaps: Vec<[usize; 2]> = Vec::new();
    if let (Some(a), Some(b)) = (first, last) {
        for (i, m) in marks[a..=b].iter().enumerate() {
            if *m {
                if run > 0 && gaps.len() < 8 {
                    gaps.push([(a + i - run as usize) * 20, run as usize * 20]);
                }
                run = 0;
            } else {
                gap_frames += 1;
                run += 1;
                longest = longest.max(run);
            }
        }
    }
    // The blocks from the first one wholly after the tone's onset: each must carry it (the
    // caller may start talking after the recording started; the last block may hold the end).
    let skip = first.map_or(0, |f| (f * frame).div_ceil(block));
    let after: Vec<bool> = x
        .chunks_exact(block)
        .skip(skip)
        .map(|b| share(b, own, rate) >= 0.8)
        .collect();
    // Where the blocks after the onset miss the tone: [start ms, share] of the first few.
    let weak: Vec<(usize, f64)> = x
        .chunks_exact(block)
        .enumerate()
        .skip(skip)
        .map(|(i, b)| (i * 100, share(b, own, rate)))
        .filter(|(_, s)| *s < 0.8)
        .take(8)
        .collect();
    // One-second windows from the first block after the onset, judged on their 20 ms frames
    // (a frame slip's phase jump spoils one frame, not the window): the mean share of the
    // channel's tone over the frames that are not silent, and of the other side's tone.
    let start = skip * block;
    let sec = rate as usize;
    let (mut windows, mut windows_ok, mut windows_cross) = (0u64, 0u64, 0u64);
    let (mut window_min, mut window_cross_max) = (f64::MAX, 0.0f64);
    for w in x.get(start..).unwrap_or(&[]).chunks_exact(sec) {
        windows += 1;
        let (mut n, mut o, mut c) = (0u32, 0.0f64, 0.0f64);
        for f in w.chunks_exact(frame) {
            if f.iter().map(|v| v * v).sum::<f64>() < frame as f64 * 100.0 {
                continue; // silent
            }
            n += 1;
            o += share(f, own, rate);
            c += share(f, other, rate);
        }
        let (o, c) = if n > 0 {
            (o / f64::from(n), c / f64::from(n))
        } else {
            (0.0, 0.0)
        };
        window_min = window_min.min(o);
        window_cross_max = window_cross_max.max(c);
        if o >= 0.8 && n >= 25 {
            windows_ok += 1;
        }
        if c > 0.05 {
            windows_cross += 1;
        }
    }
    serde_json::json!({
        "windows": windows,
        "windows_ok": windows_ok,
        "windows_cross": windows_cross,
        "window_min": if windows > 0 { window_min } else { 0.0 },
        "window_cross_max": window_cross_max,
        "weak_blocks": weak,
        "blocks_after_onset": after.len(),
        "toned_after_onset": after.iter().filter(|t| **t).count(),
        "blocks": blocks,
        "toned_blocks": toned,
        "cross_blocks": crossed,
        "silent_blocks": silent_blocks,
        "own_min": if blocks > 0 { own_min } else { 0.0 },
        "cross_max": cross_max,
        "frames": marks.len(),
        "onset_ms": first.map(|f| f * 20),
        "tail_ms": last.map(|l| (marks.len() - 1 - l) * 20),
        "gap_frames": gap_frames,
        "longest_gap_ms": longest * 20,
        "gaps": gaps,
    })
}

/// `agentsim wavcheck`: per exported recording, one JSON line on stdout.
fn wavcheck(args: &[String]) -> Result<(), String> {
    let (mut left, mut right) = (440.0, 1000.0);
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--left-hz" | "--right-hz" => {
                let v: f64 = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("{a} needs a number"))?;
                if a == "--left-hz" {
                    left = v;
                } else {
                    right = v;
                }
            }
            f => files.push(PathBuf::from(f)),
        }
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for f in files {
        let line = match read_wav(&f) {
            Ok((2, rate, samples)) => {
                let l: Vec<f64> = samples.iter().step_by(2).map(|v| f64::from(*v)).collect();
                let r: Vec<f64> = samples
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|v| f64::from(*v))
                    .collect();
                let rate = f64::from(rate);
                serde_json::json!({
                    "file": f.display().to_string(),
                    "rate": rate,
                    "frames": l.len(),
                    "seconds": l.len() as f64 / rate,
                    "left": check_channel(&l, rate, left, right),
                    "right": check_channel(&r, rate, right, left),
                })
            }
            Ok((ch, _, _)) => {
                serde_json::json!({ "file": f.display().to_string(), "error": format!("{ch} channels") })
            }
            Err(e) => serde_json::json!({ "file": f.display().to_string(), "error": e }),
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ---- main ------------------------------------------------------------------------------------

fn write_tone(args: &[String]) -> Result<(), String> {
    let mut hz = 440.0;
    let mut out = None;
    let mut it = args.iter();
    while let Some(f) = it.next() {
        let v = it.next().ok_or_else(|| format!("{f} needs a value"))?;
        match f.as_str() {
            "--hz" => hz = v.parse().map_err(|_| "--hz: not a number")?,
            "--out" => out = Some(PathBuf::from(v)),
            _ => return Err(format!("unknown option {f}")),
        }
    }
    let out = out.ok_or("--out FILE is required")?;
    let mut data = Vec::with_capacity(8000);
    for i in 0..50 {
        data.extend_from_slice(&tone_payload(Codec::Pcmu, hz, i * 160));
    }
    std::fs::write(&out, data).map_err(|e| format!("{}: {e}", out.display()))
}

fn summary(opts: &Opts, s: &mut Stats, secs: f64) -> serde_json::Value {
    let done = s.ok + s.failed();
    serde_json::json!({
        "agents": opts.agents,
        "run_s": secs,
        "registered": s.registered,
        "logged_in": s.logged_in,
        "max_in_call": s.max_in_call,
        "invites_offered": s.offered,
        "answered": s.answered,
        "acked": s.acked,
        "calls_ok": s.ok,
        "calls_cut_at_end": s.cut_at_end,
        "calls_failed": s.failed(),
        "failed_pct": if done > 0 { 100.0 * s.failed() as f64 / done as f64 } else { 0.0 },
        "failures": s.failures,
        "busy_rejected": s.busy_rejected,
        "cancelled": s.cancelled,
        "errors": s.errors,
        "talk_s_total": s.talk_s,
        "rtp": {
            "sent": s.rtp_sent,
            "received": s.rtp_received,
            "lost": s.rtp_lost,
            "stray": s.rtp_stray,
            "citizen_tone_packets": s.tone_packets,
            "jitter_abs_interval_minus_20ms": s.jitter.json(),
        },
        "hangup": if opts.agent_hangs_up { "agent" } else { "citizen" },
        "available_to_invite": if opts.agent_hangs_up {
            serde_json::json!({
                "from_bye_sent": percentiles(&mut s.avail_from_bye),
                "from_200_received": percentiles(&mut s.avail_from_ok),
            })
        } else {
            serde_json::json!({ "from_kalds_bye_received": percentiles(&mut s.avail_from_bye) })
        },
    })
}

async fn run(opts: Opts) -> Result<(), String> {
    std::fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;
    let opts = Rc::new(opts);
    let stats: Shared = Rc::new(RefCell::new(Stats::new()));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for i in 0..opts.agents {
        let n = opts.first + i;
        let sip = bind_udp().await.map_err(|e| format!("SIP socket: {e}"))?;
        let rtp = bind_udp().await.map_err(|e| format!("RTP socket: {e}"))?;
        let port = sip.local_addr().map_err(|e| e.to_string())?.port();
        let rtp_port = rtp.local_addr().map_err(|e| e.to_string())?.port();
        let agent = Agent {
            idx: n,
            login: format!("{}{n:03}", opts.login_prefix),
            password: format!("{}{n:03}", opts.password_prefix),
            opts: opts.clone(),
            stats: stats.clone(),
            sip,
            rtp,
            port,
            rtp_port,
            phase: Phase::Registering,
            tx: None,
            call: None,
            tick: None,
            feature: None,
            reg_call_id: format!("reg-{n}-{port}@agentsim"),
            counter: 0,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (n as u64).wrapping_mul(0x1000_0000_01B3),
            freed: None,
            tx_fails: 0,
        };
        tasks.push(tokio::task::spawn_local(agent.run(stop_rx.clone())));
    }
    let csv_path = opts.out.join("agents.csv");
    let mut csv =
        std::fs::File::create(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let _ = writeln!(
        csv,
        "t,registered,logged_in,ringing,in_call,calls_ok,calls_failed,rtp_received"
    );
    let start = Instant::now();
    let mut ready_at: Option<Instant> = None;
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        n += 1;
        let s = stats.borrow();
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let _ = writeln!(
            csv,
            "{t:.3},{},{},{},{},{},{},{}",
            s.registered,
            s.logged_in,
            s.ringing,
            s.in_call,
            s.ok,
            s.failed(),
            s.rtp_received
        );
        if n.is_multiple_of(5) {
            eprintln!(
                "agentsim: {:>4.0}s registered {} logged in {} ringing {} in call {} (max {}) ok {} failed {} errors {}",
                start.elapsed().as_secs_f64(),
                s.registered,
                s.logged_in,
                s.ringing,
                s.in_call,
                s.max_in_call,
                s.ok,
                s.failed(),
                s.errors.values().sum::<u64>()
            );
        }
        if ready_at.is_none() && s.logged_in == opts.agents {
            ready_at = Some(Instant::now());
            eprintln!(
                "agentsim: all {} agents logged in after {:.1} s",
                opts.agents,
                start.elapsed().as_secs_f64()
            );
            let _ = std::fs::write(opts.out.join("ready"), b"ready\n");
        }
        if ready_at.is_none() && start.elapsed() > opts.login_timeout {
            eprintln!(
                "agentsim: only {} of {} agents logged in after {:?}",
                s.logged_in, opts.agents, opts.login_timeout
            );
            break;
        }
        if ready_at.is_some_and(|r| r.elapsed() >= opts.duration) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let secs = ready_at.map_or(0.0, |r| r.elapsed().as_secs_f64());
    let calls_path = opts.out.join("calls.csv");
    let mut text = String::from(
        "agent,invite_ns,answered_ns,acked_ns,ended_ns,ended_by,rtp_rx,rtp_tone,failure\n",
    );
    for row in &stats.borrow().calls {
        text.push_str(row);
        text.push('\n');
    }
    std::fs::write(&calls_path, text).map_err(|e| format!("{}: {e}", calls_path.display()))?;
    let sum = summary(&opts, &mut stats.borrow_mut(), secs);
    let text = serde_json::to_string_pretty(&sum).map_err(|e| e.to_string())?;
    let path = opts.out.join("summary.json");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{text}");
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("tone") => write_tone(&args[1..]),
        Some("wavcheck") => wavcheck(&args[1..]),
        Some("run") => parse_args(&args[1..]).and_then(|opts| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, run(opts))
        }),
        _ => Err(USAGE.into()),
    };
    if let Err(e) = result {
        eprintln!("agentsim: {e}");
        std::process::exit(2);
    }
}
