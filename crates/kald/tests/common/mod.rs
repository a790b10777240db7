//! The harness of the end-to-end tests: the real `kald serve` on loopback with JSON logs,
//! SIPp as the caller, free ports, and guards so no process outlives a failing test.
//!
//! Only the standard library is used (the tests add no dependency): a small JSON reader for
//! kald's log lines, `kill -TERM` for the signal.

#![allow(dead_code, clippy::unwrap_used, missing_docs, unreachable_pub)]

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The repository root (the workspace), from this crate's manifest directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The SIPp scenarios and fixtures.
pub fn scenarios() -> PathBuf {
    repo().join("tests/sipp")
}

// ---------------------------------------------------------------------------------------
// JSON (just enough for tracing-subscriber's lines)
// ---------------------------------------------------------------------------------------

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Self>),
    Obj(Vec<(String, Self)>),
}

impl Json {
    /// Parses one complete JSON text.
    pub fn parse(text: &str) -> Option<Self> {
        let mut p = JsonParser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        (p.i == p.s.len()).then_some(v)
    }

    pub fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Num(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

struct JsonParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl JsonParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> Option<()> {
        self.s[self.i..]
            .starts_with(lit.as_bytes())
            .then(|| self.i += lit.len())
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        match *self.s.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut fields = Vec::new();
                self.ws();
                if self.eat("}").is_some() {
                    return Some(Json::Obj(fields));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    self.eat(":")?;
                    let v = self.value()?;
                    fields.push((k, v));
                    self.ws();
                    if self.eat(",").is_some() {
                        continue;
                    }
                    self.eat("}")?;
                    return Some(Json::Obj(fields));
                }
            }
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]").is_some() {
                    return Some(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.ws();
                    if self.eat(",").is_some() {
                        continue;
                    }
                    self.eat("]")?;
                    return Some(Json::Arr(items));
                }
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.eat("true").map(|()| Json::Bool(true)),
            b'f' => self.eat("false").map(|()| Json::Bool(false)),
            b'n' => self.eat("null").map(|()| Json::Null),
            _ => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
                std::str::from_utf8(&self.s[start..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Num)
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.eat("\"")?;
        let mut out = Vec::new();
        loop {
            let c = *self.s.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let e = *self.s.get(self.i)?;
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                            self.i += 4;
                            let mut code = u32::from_str_radix(hex, 16).ok()?;
                            if (0xD800..0xDC00).contains(&code) && self.eat("\\u").is_some() {
                                let hex =
                                    std::str::from_utf8(self.s.get(self.i..self.i + 4)?).ok()?;
                                self.i += 4;
                                let low = u32::from_str_radix(hex, 16).ok()?;
                                code =
                                    0x10000 + ((code - 0xD800) << 10) + (low.wrapping_sub(0xDC00));
                            }
                            char::from_u32(code).unwrap_or('\u{fffd}')
                        }
                        _ => return None,
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// kald's log
// ---------------------------------------------------------------------------------------

/// One line kald wrote on stdout, and when the test read it.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub at: Instant,
    pub raw: String,
    pub json: Option<Json>,
}

impl LogLine {
    pub fn message(&self) -> Option<&str> {
        self.json.as_ref()?.get("message")?.as_str()
    }

    /// A field of the event, or else of the span it was logged in.
    pub fn field(&self, key: &str) -> Option<&Json> {
        let j = self.json.as_ref()?;
        j.get(key)
            .or_else(|| j.get("fields").and_then(|f| f.get(key)))
            .or_else(|| j.get("span").and_then(|s| s.get(key)))
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.field(key)?.as_str()
    }

    pub fn num(&self, key: &str) -> Option<f64> {
        self.field(key)?.as_f64()
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        self.field(key)?.as_bool()
    }

    /// The call this line is about.
    pub fn call(&self) -> Option<&str> {
        self.str("call")
    }

    pub fn is(&self, message: &str) -> bool {
        self.message() == Some(message)
    }
}

type Shared<T> = Arc<(Mutex<T>, Condvar)>;

// ---------------------------------------------------------------------------------------
// Temporary directories and ports
// ---------------------------------------------------------------------------------------

/// A fresh directory under the system's temp dir, removed on drop unless the test failed
/// (then it stays for a post-mortem and the panic message names it).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kald-e2e-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Blocks of consecutive UDP ports (the first even) that are free right now. They come from
/// 11000-15999: below Linux's ephemeral range (32768-60999), so port-0 binds of other
/// sockets never land in them, and below the RTP range kald uses by default (20000-29999)
/// and the load tests use (20000-59999), so a kald under load on the same machine does not
/// take them. Each test process starts at its own offset and never hands out a block twice.
pub fn port_block(len: u16) -> u16 {
    const LOW: u16 = 11_000;
    const HIGH: u16 = 16_000;
    static NEXT: Mutex<Option<u16>> = Mutex::new(None);
    let mut next = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let mut base = next.unwrap_or_else(|| {
        let slots = u32::from((HIGH - LOW) / 64);
        LOW + u16::try_from((std::process::id().wrapping_mul(7919)) % slots).unwrap() * 64
    });
    for _ in 0..1000 {
        if base + len >= HIGH {
            base = LOW;
        }
        let candidate = base;
        base += len.div_ceil(2) * 2;
        let held: Vec<UdpSocket> = (candidate..candidate + len)
            .map_while(|p| UdpSocket::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(len) {
            *next = Some(base);
            return candidate;
        }
    }
    panic!("no free block of {len} UDP ports on 127.0.0.1");
}

/// A port free on both UDP and TCP on 127.0.0.1 (for a SIP UA), chosen by the kernel.
pub fn sip_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both UDP and TCP");
}

// ---------------------------------------------------------------------------------------
// kald
// ---------------------------------------------------------------------------------------

/// Which flows a kald runs.
#[derive(Clone, Copy)]
enum Flows<'a> {
    /// tests/sipp/flows/hovednummer.toml with the prompts of ivr-flows/.
    Test,
    /// ivr-flows/ as it is.
    Real,
    /// This text as `hovednummer.toml`, with the prompts of ivr-flows/.
    Custom(&'a str),
}

/// A running `kald serve`. Dropping it kills the process.
pub struct Kald {
    child: Option<Child>,
    status: Option<ExitStatus>,
    pub sip: SocketAddr,
    pub dir: TempDir,
    pub media_ports: (u16, u16),
    log: Shared<Vec<LogLine>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Kald {
    /// Start `kald serve` on 127.0.0.1 (SIP port chosen by the kernel, a media port range
    /// of its own) with JSON logs, in a fresh directory, with the tests' flow
    /// (tests/sipp/flows/hovednummer.toml: welcome, digits until # or 5 s of silence,
    /// goodbye), and wait until it listens and has loaded the flow.
    pub fn start(name: &str, extra: &[&str]) -> Self {
        Self::start_with(name, extra, Flows::Test)
    }

    /// Like [`Kald::start`] with the real flows of ivr-flows/.
    pub fn start_real(name: &str, extra: &[&str]) -> Self {
        Self::start_with(name, extra, Flows::Real)
    }

    /// Like [`Kald::start`] with the flow `toml` as `flows/hovednummer.toml` in kald's
    /// directory ([`Kald::flow_file`]; rewrite it to test the reload).
    pub fn start_flow(name: &str, extra: &[&str], toml: &str) -> Self {
        Self::start_with(name, extra, Flows::Custom(toml))
    }

    /// The flow file of a kald started with [`Kald::start`] or [`Kald::start_flow`].
    pub fn flow_file(&self) -> PathBuf {
        self.dir.path().join("flows/hovednummer.toml")
    }

    fn start_with(name: &str, extra: &[&str], flows: Flows<'_>) -> Self {
        let mut last_err = String::new();
        for _ in 0..3 {
            match Self::try_start(name, extra, flows) {
                Ok(k) => return k,
                Err(e) => last_err = e,
            }
        }
        panic!("kald did not start:\n{last_err}");
    }

    fn try_start(name: &str, extra: &[&str], flows: Flows<'_>) -> Result<Self, String> {
        let dir = TempDir::new(name);
        let flow_dir = match flows {
            Flows::Real => repo().join("ivr-flows"),
            Flows::Test => {
                let d = dir.path().join("flows");
                std::fs::create_dir_all(&d).unwrap();
                std::fs::copy(
                    scenarios().join("flows/hovednummer.toml"),
                    d.join("hovednummer.toml"),
                )
                .expect("cannot copy tests/sipp/flows/hovednummer.toml");
                std::os::unix::fs::symlink(repo().join("ivr-flows/prompts"), d.join("prompts"))
                    .expect("cannot link the prompts");
                d
            }
            Flows::Custom(toml) => {
                let d = dir.path().join("flows");
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("hovednummer.toml"), toml).unwrap();
                std::os::unix::fs::symlink(repo().join("ivr-flows/prompts"), d.join("prompts"))
                    .expect("cannot link the prompts");
                d
            }
        };
        let low = port_block(40);
        let media_ports = (low, low + 39);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kald"));
        cmd.args(["--log", "info", "--log-format", "json", "serve"])
            .args(["--sip-listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args([
                "--media-ports",
                &format!("{}-{}", media_ports.0, media_ports.1),
            ])
            .arg("--flows")
            .arg(&flow_dir)
            .args(extra)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("cannot run kald: {e}"))?;
        let log: Shared<Vec<LogLine>> = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        {
            let out = child.stdout.take().unwrap();
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(raw) = line else { break };
                    let json = Json::parse(&raw);
                    let (lines, cv) = &*log;
                    lines.lock().unwrap().push(LogLine {
                        at: Instant::now(),
                        raw,
                        json,
                    });
                    cv.notify_all();
                }
                // EOF: wake waiters so they notice the exit.
                log.1.notify_all();
            }));
        }
        {
            let mut err = child.stderr.take().unwrap();
            let stderr = stderr.clone();
            let log = log.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    stderr
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                log.1.notify_all();
            }));
        }
        let mut kald = Self {
            child: Some(child),
            status: None,
            sip: "127.0.0.1:0".parse().unwrap(),
            dir,
            media_ports,
            log,
            stderr,
            readers,
        };
        let listening = kald.try_wait_for(Duration::from_secs(30), |l| l.is("kald listening"));
        let Some(line) = listening else {
            let dump = kald.dump();
            kald.kill();
            return Err(dump);
        };
        kald.sip = line
            .str("sip")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no SIP address in {}", line.raw))?;
        let loaded = kald.try_wait_for(Duration::from_secs(30), |l| {
            l.is("flow loaded") && l.str("entry_point") == Some("hovednummer")
        });
        if loaded.is_none() {
            let dump = kald.dump();
            kald.kill();
            return Err(format!("the flow hovednummer was not loaded\n{dump}"));
        }
        Ok(kald)
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<LogLine> {
        self.log.0.lock().unwrap().clone()
    }

    fn alive(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(Ok(Some(status))) => {
                self.status = Some(status);
                self.child = None;
                false
            }
            _ => false,
        }
    }

    /// The first line matching `pred`, waiting up to `timeout` for it.
    pub fn try_wait_for(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&LogLine) -> bool,
    ) -> Option<LogLine> {
        let end = Instant::now() + timeout;
        loop {
            {
                let (lines, cv) = &*self.log;
                let guard = lines.lock().unwrap();
                if let Some(l) = guard.iter().find(|l| pred(l)) {
                    return Some(l.clone());
                }
                let now = Instant::now();
                if now >= end {
                    return None;
                }
                let wait = (end - now).min(Duration::from_millis(200));
                drop(cv.wait_timeout(guard, wait).unwrap());
            }
            if !self.alive() {
                // One last look: the reader may still have queued lines.
                std::thread::sleep(Duration::from_millis(50));
                return self.log.0.lock().unwrap().iter().find(|l| pred(l)).cloned();
            }
        }
    }

    /// The first line matching `pred` (waiting up to `timeout`), or a panic naming `what`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        match self.try_wait_for(timeout, pred) {
            Some(l) => l,
            None => panic!(
                "kald did not log {what} within {timeout:?}\n{}",
                self.dump()
            ),
        }
    }

    /// The id of the one call kald took (from its `incoming call` line).
    pub fn the_call(&mut self) -> String {
        let line = self.wait_for("incoming call", Duration::from_secs(10), |l| {
            l.is("incoming call")
        });
        let ids: HashSet<String> = self
            .lines()
            .iter()
            .filter(|l| l.is("incoming call"))
            .filter_map(|l| l.call().map(str::to_owned))
            .collect();
        assert_eq!(ids.len(), 1, "expected exactly one call\n{}", self.dump());
        line.call()
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no call id in {}\n{}", line.raw, self.dump()))
    }

    /// The line `message` about `call`, waiting up to 10 s for it.
    pub fn call_line(&mut self, message: &str, call: &str) -> LogLine {
        self.wait_for(
            &format!("{message:?} for call {call}"),
            Duration::from_secs(10),
            |l| l.is(message) && l.call() == Some(call),
        )
    }

    /// Every line `message` about `call` logged so far.
    pub fn call_lines(&self, message: &str, call: &str) -> Vec<LogLine> {
        self.lines()
            .into_iter()
            .filter(|l| l.is(message) && l.call() == Some(call))
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send SIGTERM (by pid, with kill(1): the tests use no libc binding).
    pub fn sigterm(&mut self) {
        let pid = self.pid().expect("kald is running");
        let ok = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {pid} failed");
    }

    /// Wait up to `timeout` for kald to exit on its own; its status, or `None`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if !self.alive() {
                return self.status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    }

    /// SIGTERM, then assert that kald exits with 0 within `timeout`.
    pub fn stop(&mut self, timeout: Duration) {
        self.sigterm();
        self.assert_exits_cleanly(timeout);
    }

    pub fn assert_exits_cleanly(&mut self, timeout: Duration) {
        match self.wait_exit(timeout) {
            Some(s) if s.success() => {}
            Some(s) => panic!("kald exited with {s}\n{}", self.dump()),
            None => {
                let dump = self.dump();
                self.kill();
                panic!("kald did not exit within {timeout:?} of SIGTERM\n{dump}");
            }
        }
    }

    /// Whether kald is still running (records its status when it has exited).
    pub fn is_running(&mut self) -> bool {
        self.alive()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            self.status = c.wait().ok();
        }
    }

    /// kald's stdout and stderr so far, for failure messages.
    pub fn dump(&self) -> String {
        let mut s = String::from("---- kald stdout ----\n");
        for l in self.lines() {
            s.push_str(&l.raw);
            s.push('\n');
        }
        let err = self.stderr.lock().unwrap();
        if !err.is_empty() {
            let _ = write!(s, "---- kald stderr ----\n{err}");
        }
        let _ = write!(s, "---- files in {} ----", self.dir.path().display());
        s
    }
}

impl Drop for Kald {
    fn drop(&mut self) {
        self.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

// ---------------------------------------------------------------------------------------
// SIPp
// ---------------------------------------------------------------------------------------

/// The `sipp` binary, or a failing test that says how to get it.
pub fn sipp_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("sipp"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| panic!("sipp not found: run ./tests/run.sh, which installs it"))
}

/// One SIPp run (`-m 1`: one call) of a scenario in tests/sipp against a kald.
pub struct Sipp {
    scenario: String,
    tcp: bool,
    args: Vec<String>,
    fixtures: Vec<String>,
}

/// A SIPp process started with [`Sipp::spawn`]; killed on drop.
pub struct SippChild {
    child: Option<Child>,
    started: Instant,
    dir: PathBuf,
    name: String,
    command: String,
}

/// How a SIPp run went.
pub struct SippRun {
    pub status: ExitStatus,
    pub elapsed: Duration,
    pub report: String,
}

impl Sipp {
    pub fn new(scenario: &str) -> Self {
        Self {
            scenario: scenario.into(),
            tcp: false,
            args: Vec::new(),
            fixtures: Vec::new(),
        }
    }

    /// Use TCP (`-t t1`: one connection) instead of UDP.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Copy a file of tests/sipp into SIPp's working directory (rtp_stream opens files
    /// relative to it).
    pub fn fixture(mut self, name: &str) -> Self {
        self.fixtures.push(name.into());
        self
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.into());
        self
    }

    /// `-set name value`: a global variable of the scenario.
    pub fn set(self, name: &str, value: &str) -> Self {
        self.arg("-set").arg(name).arg(value)
    }

    /// Start SIPp in kald's directory, calling kald's SIP address.
    pub fn spawn(&self, kald: &Kald) -> SippChild {
        let sipp = sipp_binary();
        let dir = kald.dir.path().to_path_buf();
        for f in &self.fixtures {
            std::fs::copy(scenarios().join(f), dir.join(f))
                .unwrap_or_else(|e| panic!("cannot copy fixture {f}: {e}"));
        }
        let name = self.scenario.trim_end_matches(".xml").to_owned();
        let port = sip_port();
        // SIPp binds the media port and the one two above it (video echo).
        let media = port_block(4);
        let mut cmd = Command::new(sipp);
        cmd.arg(kald.sip.to_string())
            .arg("-sf")
            .arg(scenarios().join(&self.scenario))
            .args(["-s", "70101010"])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &port.to_string(), "-mp", &media.to_string()])
            .args(["-m", "1", "-nostdin"])
            .args(["-timeout", "60s", "-timeout_error"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.join(format!("sipp-{name}-errors.log")))
            .args(["-trace_msg", "-message_file"])
            .arg(dir.join(format!("sipp-{name}-messages.log")))
            .args(&self.args);
        if self.tcp {
            cmd.args(["-t", "t1"]);
        }
        let stdout = std::fs::File::create(dir.join(format!("sipp-{name}-stdout.txt"))).unwrap();
        let stderr = stdout.try_clone().unwrap();
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let command = format!("{cmd:?}");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        SippChild {
            child: Some(child),
            started: Instant::now(),
            dir,
            name,
            command,
        }
    }

    /// Run SIPp to the end.
    pub fn run(&self, kald: &Kald) -> SippRun {
        self.spawn(kald).wait()
    }
}

impl SippChild {
    /// Wait for SIPp to end (it gives up by itself after 60 s; this after 90 s).
    pub fn wait(mut self) -> SippRun {
        let mut child = self.child.take().unwrap();
        let end = self.started + Duration::from_secs(90);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= end {
                let _ = child.kill();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        let elapsed = self.started.elapsed();
        SippRun {
            status,
            elapsed,
            report: self.report(),
        }
    }

    fn report(&self) -> String {
        let read = |suffix: &str| {
            std::fs::read_to_string(self.dir.join(format!("sipp-{}-{suffix}", self.name)))
                .unwrap_or_default()
        };
        let tail = |s: String, n: usize| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        };
        format!(
            "---- {} ----\n---- sipp errors ----\n{}\n---- sipp messages (end) ----\n{}\n---- sipp screen (end) ----\n{}\n",
            self.command,
            read("errors.log"),
            tail(read("messages.log"), 150),
            tail(read("stdout.txt"), 40),
        )
    }
}

impl Drop for SippChild {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl SippRun {
    /// SIPp's call succeeded (exit code 0).
    pub fn assert_ok(&self, kald: &Kald) {
        assert!(
            self.status.success(),
            "sipp failed ({}) after {:?}\n{}{}",
            self.status,
            self.elapsed,
            self.report,
            kald.dump()
        );
    }
}

/// The length of a PCM WAV file in seconds (from its `fmt ` and `data` chunks).
pub fn wav_seconds(path: &Path) -> f64 {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WAVE",
        "{} is not a WAV file",
        path.display()
    );
    let u32_at = |i: usize| u32::from_le_bytes(data[i..i + 4].try_into().unwrap());
    let (mut pos, mut byte_rate, mut size) = (12, None, None);
    while pos + 8 <= data.len() {
        let len = u32_at(pos + 4) as usize;
        match &data[pos..pos + 4] {
            b"fmt " => byte_rate = Some(u32_at(pos + 16)),
            b"data" => size = Some(len.min(data.len() - pos - 8)),
            _ => {}
        }
        pos += 8 + len + (len & 1);
    }
    match (byte_rate, size) {
        (Some(rate), Some(size)) if rate > 0 => size as f64 / f64::from(rate),
        _ => panic!("{}: no fmt or data chunk", path.display()),
    }
}
