//! The SIP endpoint: kald's UAS and UAC in one sans-IO state machine.
//!
//! It owns every transaction and dialog, applies the trunk policy, answers what it can on its
//! own (OPTIONS, malformed requests, unknown methods, CANCEL, BYE) and tells the call handling
//! (the transaction user, "TU") about calls through [`Event`]s. The TU acts on a call through
//! methods such as [`Endpoint::answer`] and [`Endpoint::hangup`].
//!
//! # Call order
//! After every `handle_*` call and every TU action, drain [`Endpoint::poll_output`] until it
//! returns `None`, then read [`Endpoint::poll_timeout`] and call [`Endpoint::handle_timeout`]
//! no later than that instant. Time only moves forward; an early or spurious
//! `handle_timeout` does nothing.
//!
//! # Where messages go
//! Responses go back to the packet's source (RFC 3581 `rport` behaviour for everyone) over the
//! flow the request came in on. Requests inside a dialog go over the dialog's flow as well —
//! the address and connection the dialog was created on — so kald never resolves a host name
//! taken from a message, and NATed phones and SBCs get their requests on the pinhole they
//! opened (as RFC 5626 does for registered flows).

mod call;
mod check;
mod policy;
mod refer;
mod registrar;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::transaction::State as TransactionState;
pub use call::{CallState, Dial, EndReason, Role};
pub use policy::{NumberRoute, Trunk};
pub use registrar::{
    BindingId, BindingView, RegistrarConfig, RegistrarUser, SavedBinding, UnregisterReason,
};

use crate::build::Builder;
use crate::error::{ParseError, ParseErrorKind};
use crate::message::{Header, HeaderName, Message, Method, Scheme};
use crate::transaction::{
    ClientInvite, ClientKey, ClientNonInvite, Output as TxOutput, ServerInvite, ServerKey,
    ServerNonInvite, State, TimerConfig,
};
use call::{Call, Purpose};
use kald_core::CallId;

/// The methods kald accepts, for `Allow` headers.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY";
/// The methods kald accepts when its registrar is on.
pub const ALLOW_WITH_REGISTER: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY, REGISTER";
/// The option tags kald supports, for `Supported` headers.
pub const SUPPORTED: &str = "timer, replaces";

/// How a message travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP datagrams: unreliable, retransmission timers run.
    Udp,
    /// A TCP connection: reliable, no retransmissions.
    Tcp,
}

impl Transport {
    /// The Via token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "UDP",
            Self::Tcp => "TCP",
        }
    }
}

/// The driver's handle for one TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

/// A path between kald and a peer: where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// UDP or TCP.
    pub transport: Transport,
    /// The peer's address (the packet's source).
    pub remote: SocketAddr,
    /// kald's own address the packet arrived on (used in Via and Contact).
    pub local: SocketAddr,
    /// The TCP connection, for TCP flows.
    pub connection: Option<ConnectionId>,
}

impl Flow {
    fn reliable(&self) -> bool {
        self.transport == Transport::Tcp
    }
}

/// What the driver feeds in.
#[derive(Debug)]
pub enum Input {
    /// One UDP datagram or one framed TCP message.
    Receive {
        /// Where it came from.
        flow: Flow,
        /// Its bytes.
        data: Bytes,
    },
    /// A TCP connection closed; dialogs on it can no longer send.
    ConnectionClosed(ConnectionId),
}

/// What the endpoint asks the driver to do.
#[derive(Debug)]
#[must_use]
pub enum Output {
    /// Send these bytes over this flow.
    Transmit(Transmit),
    /// Tell the call handling something happened.
    Event(Event),
}

/// Bytes to send.
#[derive(Debug, Clone)]
pub struct Transmit {
    /// Where to.
    pub flow: Flow,
    /// What.
    pub data: Bytes,
}

/// Things the call handling (TU) must know about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A new call from a trunk to an entry point, or from an authenticated agent. Answer with
    /// [`Endpoint::ring`], [`Endpoint::answer`] or [`Endpoint::reject`]. `offer` is `None` for
    /// a delayed-offer INVITE: then the 200 carries kald's offer and the answer comes with
    /// [`Event::Confirmed`].
    Incoming {
        /// kald's id for the call.
        call: CallId,
        /// Trunk calls: the entry point (flow) the dialled number maps to. Agent calls: the
        /// Request-URI's user, %-decoded (`*20`, a colleague's login, a queue name).
        entry_point: String,
        /// The trunk it came from; empty for agent calls.
        trunk: String,
        /// The authenticated agent login for calls from agents' phones; `None` from trunks.
        agent: Option<String>,
        /// The call an agent's INVITE with `Replaces` (RFC 3891) takes over.
        replaces: Option<CallId>,
        /// The SDP offer, if the INVITE had one.
        offer: Option<Bytes>,
        /// The caller's number or user part (personal data: never log it).
        caller: Option<String>,
        /// kald's address the INVITE arrived on (for the SDP answer when no public IP is set).
        local: SocketAddr,
    },
    /// The ACK for kald's 2xx arrived; `answer` is the SDP answer when kald's 2xx held the offer.
    Confirmed {
        /// The call.
        call: CallId,
        /// SDP in the ACK, if any.
        answer: Option<Bytes>,
    },
    /// An outgoing call got a provisional response.
    Progress {
        /// The call.
        call: CallId,
        /// 180, 183, …
        code: u16,
        /// Early media SDP, if any.
        sdp: Option<Bytes>,
    },
    /// An outgoing call was answered.
    Answered {
        /// The call.
        call: CallId,
        /// The SDP in the 2xx.
        sdp: Option<Bytes>,
    },
    /// The peer sent a new offer (re-INVITE or UPDATE); reply with [`Endpoint::answer_offer`].
    /// `None` means a re-INVITE without SDP: kald must offer in the 200.
    Offer {
        /// The call.
        call: CallId,
        /// The new offer.
        sdp: Option<Bytes>,
    },
    /// A re-INVITE or UPDATE kald sent was answered.
    OfferAnswered {
        /// The call.
        call: CallId,
        /// The peer's answer.
        sdp: Option<Bytes>,
    },
    /// A re-INVITE or UPDATE kald sent was refused; the session stays as it was.
    OfferRefused {
        /// The call.
        call: CallId,
        /// The final status.
        code: u16,
    },
    /// An INFO request inside a call (e.g. `application/dtmf-relay`).
    Info {
        /// The call.
        call: CallId,
        /// Its Content-Type, without parameters.
        content_type: String,
        /// Its body.
        body: Bytes,
    },
    /// The call is over; forget it.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
    },
    /// The peer asked, with an in-dialog REFER (RFC 3515), to transfer the call; kald
    /// answered 202 and NOTIFYed `100 Trying`. Report the outcome with
    /// [`Endpoint::notify_refer`].
    Refer {
        /// The call the REFER came in.
        call: CallId,
        /// The Refer-To URI without its `?headers` part.
        target: String,
        /// The call a `Replaces` in Refer-To names (attended transfer), if kald has it.
        replaces: Option<CallId>,
        /// Refer-To had a `Replaces` naming no call kald has (or an unreadable one).
        replaces_unknown: bool,
    },
    /// An agent's phone registered a new contact.
    Registered {
        /// The agent login.
        user: String,
        /// The new binding.
        binding: BindingId,
        /// Its Contact URI.
        contact: String,
        /// The flow it registered over.
        flow: Flow,
    },
    /// A binding is gone.
    Unregistered {
        /// The agent login.
        user: String,
        /// The binding.
        binding: BindingId,
        /// Why.
        reason: UnregisterReason,
    },
    /// Whether the agent has at least one reachable binding changed: `true` when the first
    /// one registers or answers OPTIONS again, `false` when the last one stops answering or
    /// goes away.
    Reachability {
        /// The agent login.
        user: String,
        /// The new state.
        reachable: bool,
    },
}

/// Settings of an endpoint.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Who may send calls, and where their numbers lead.
    pub trunks: Vec<Trunk>,
    /// RFC 3261 T1, T2, T4.
    pub timers: TimerConfig,
    /// `User-Agent`/`Server` value.
    pub user_agent: String,
    /// The session interval kald asks for (RFC 4028), seconds.
    pub session_expires: u32,
    /// The smallest session interval kald accepts (RFC 4028 Min-SE), seconds.
    pub min_se: u32,
    /// Seed for tags, branches and Call-IDs (deterministic tests; the driver seeds from the OS).
    pub rng_seed: u64,
    /// The address to put in Contact and SDP instead of the local socket's, if set.
    pub public_ip: Option<std::net::IpAddr>,
    /// An incoming INVITE the TU has not answered by then gets 480 (a safety net: the IVR
    /// answers at once).
    pub max_unanswered: std::time::Duration,
    /// An outgoing INVITE still ringing after this is cancelled (the ACD uses shorter ring
    /// timeouts of its own).
    pub max_ringing: std::time::Duration,
    /// The first call id this endpoint hands out (counting up from there). The driver
    /// starts from the wall clock so ids stay unique across restarts (they key the store's
    /// call records); tests start from 1.
    pub first_call_id: u64,
    /// The registrar for agents' softphones; `None` turns REGISTER off (405).
    pub registrar: Option<RegistrarConfig>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            trunks: vec![Trunk::loopback("hovednummer")],
            timers: TimerConfig::default(),
            user_agent: concat!("kald/", env!("CARGO_PKG_VERSION")).into(),
            session_expires: 1800,
            min_se: 90,
            rng_seed: 0,
            public_ip: None,
            max_unanswered: std::time::Duration::from_secs(300),
            max_ringing: std::time::Duration::from_secs(180),
            first_call_id: 1,
            registrar: None,
        }
    }
}

/// Counters of what the endpoint did with what it received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages received.
    pub received: u64,
    /// Malformed requests answered with 400/505.
    pub malformed_answered: u64,
    /// Input that could not be answered and was dropped (garbage, bad responses, stray ACKs).
    pub dropped: u64,
    /// Requests refused because their source is no trunk.
    pub refused_source: u64,
    /// INVITEs refused because no entry point owns the number.
    pub refused_number: u64,
    /// Retransmitted requests absorbed by a transaction.
    pub retransmissions: u64,
    /// Calls handed to the TU.
    pub calls_offered: u64,
}

/// SIP messages by method (requests) and status code (responses), each way, for
/// monitoring (`/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// Requests received, by method.
    pub requests_in: std::collections::BTreeMap<String, u64>,
    /// Requests sent (retransmissions included), by method.
    pub requests_out: std::collections::BTreeMap<String, u64>,
    /// Responses received, by status code.
    pub responses_in: std::collections::BTreeMap<u16, u64>,
    /// Responses sent (retransmissions included), by status code.
    pub responses_out: std::collections::BTreeMap<u16, u64>,
}

impl MessageCounts {
    /// Count one message from its first bytes (`INVITE sip:…` or `SIP/2.0 200 …`); keep-alives
    /// and garbage count nothing. Allocates only the first time a method is seen.
    fn count(&mut self, data: &[u8], incoming: bool) {
        if let Some(rest) = data.strip_prefix(b"SIP/2.0 ") {
            let code = rest
                .get(..3)
                .and_then(|c| std::str::from_utf8(c).ok())
                .and_then(|c| c.parse::<u16>().ok());
            if let Some(code) = code.filter(|c| (100..700).contains(c)) {
                let map = if incoming {
                    &mut self.responses_in
                } else {
                    &mut self.responses_out
                };
                *map.entry(code).or_insert(0) += 1;
            }
            return;
        }
        let end = data.iter().position(|&b| b == b' ').unwrap_or(0);
        let Some(method) = std::str::from_utf8(&data[..end]).ok().filter(|m| {
            !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase())
        }) else {
            return;
        };
        let map = if incoming {
            &mut self.requests_in
        } else {
            &mut self.requests_out
        };
        match map.get_mut(method) {
            Some(n) => *n += 1,
            None => {
                map.insert(method.to_owned(), 1);
            }
        }
    }
}

enum ServerTx {
    Invite(ServerInvite),
    NonInvite(ServerNonInvite),
}

struct ServerEntry {
    tx: ServerTx,
    flow: Flow,
    call: Option<CallId>,
    /// The deadline last put in the timer heap for this transaction.
    armed: Option<Instant>,
}

enum ClientTx {
    Invite(Box<ClientInvite>),
    NonInvite(Box<ClientNonInvite>),
}

struct ClientEntry {
    tx: ClientTx,
    flow: Flow,
    call: Option<CallId>,
    purpose: Purpose,
    /// The deadline last put in the timer heap for this transaction.
    armed: Option<Instant>,
}

/// What a timer-heap entry belongs to.
#[derive(Debug, Clone)]
enum TimerKey {
    Server(ServerKey),
    Client(ClientKey),
    /// A registrar binding's expiry or qualify.
    Binding(BindingId),
}

/// Transaction deadlines in time order, so finding the next one does not scan every
/// transaction (completed ones linger for 32 s, so there are thousands under load).
/// Entries whose transaction moved on or ended are skipped when they come up.
#[derive(Default)]
struct TimerHeap {
    heap: std::collections::BinaryHeap<std::cmp::Reverse<(Instant, u64)>>,
    keys: HashMap<u64, TimerKey>,
    seq: u64,
}

impl TimerHeap {
    fn arm(&mut self, at: Instant, key: TimerKey) {
        self.seq += 1;
        self.heap.push(std::cmp::Reverse((at, self.seq)));
        self.keys.insert(self.seq, key);
    }

    fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|std::cmp::Reverse((t, _))| *t)
    }

    /// The next entry due at `now`, removed from the heap.
    fn pop_due(&mut self, now: Instant) -> Option<(Instant, TimerKey)> {
        loop {
            let std::cmp::Reverse((at, seq)) = *self.heap.peek()?;
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(key) = self.keys.remove(&seq) {
                return Some((at, key));
            }
        }
    }
}

/// Forwards to whichever server machine it holds.
macro_rules! forward {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            Self::Invite($t) => $e,
            Self::NonInvite($t) => $e,
        }
    };
}

impl ServerTx {
    fn state(&self) -> State {
        forward!(self, t => t.state())
    }
    fn poll_timeout(&self) -> Option<Instant> {
        forward!(self, t => t.poll_timeout())
    }
    fn handle_timeout(&mut self, now: Instant) {
        forward!(self, t => t.handle_timeout(now))
    }
    fn handle_request(&mut self, now: Instant, msg: &Message) {
        forward!(self, t => t.handle_request(now, msg))
    }
    fn send_response(
        &mut self,
        now: Instant,
        resp: &Message,
        bytes: Bytes,
    ) -> Result<(), crate::transaction::TransactionError> {
        forward!(self, t => t.send_response(now, resp, bytes))
    }
    fn poll_output(&mut self) -> Option<TxOutput> {
        forward!(self, t => t.poll_output())
    }
}

impl ClientTx {
    fn state(&self) -> State {
        forward!(self, t => t.state())
    }
    fn poll_timeout(&self) -> Option<Instant> {
        forward!(self, t => t.poll_timeout())
    }
    fn handle_timeout(&mut self, now: Instant) {
        forward!(self, t => t.handle_timeout(now))
    }
    fn handle_response(&mut self, now: Instant, msg: &Message) {
        forward!(self, t => t.handle_response(now, msg))
    }
    fn poll_output(&mut self) -> Option<TxOutput> {
        forward!(self, t => t.poll_output())
    }
}

/// Where an out-of-dialog request comes from.
enum Origin {
    /// A carrier or SBC.
    Trunk(Trunk),
    /// An agent's phone inside the registrar networks (authenticated by digest).
    Agent,
}

/// Key of a dialog: Call-ID, local tag, remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct DialogKey {
    call_id: String,
    local_tag: String,
    remote_tag: String,
}

/// kald's SIP endpoint. See the module documentation for the call order.
pub struct Endpoint {
    config: EndpointConfig,
    rng: ChaCha8Rng,
    next_call: u64,
    counts: MessageCounts,
    server: HashMap<ServerKey, ServerEntry>,
    client: HashMap<ClientKey, ClientEntry>,
    calls: HashMap<CallId, Call>,
    dialogs: HashMap<DialogKey, CallId>,
    /// INVITE server transaction key → call, for CANCEL and for early-dialog requests.
    outputs: VecDeque<Output>,
    stats: Stats,
    accepting: bool,
    timers: TimerHeap,
    registrar: Option<registrar::Registrar>,
}

impl Endpoint {
    /// A new endpoint.
    pub fn new(config: EndpointConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.rng_seed);
        let registrar = config.registrar.clone().map(|r| {
            let mut key = [0u8; 32];
            rng.fill_bytes(&mut key);
            registrar::Registrar::new(r, key)
        });
        let first_call = config.first_call_id.max(1);
        Self {
            config,
            rng,
            next_call: first_call,
            counts: MessageCounts::default(),
            server: HashMap::new(),
            client: HashMap::new(),
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            outputs: VecDeque::new(),
            stats: Stats::default(),
            accepting: true,
            timers: TimerHeap::default(),
            registrar,
        }
    }

    /// Whether new calls are taken; while shutting down, new INVITEs get 480 with Retry-After.
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// End every call (shutdown after the grace period).
    pub fn hangup_all(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            self.hangup(now, id);
        }
    }

    /// SIP messages by method and status code, each way.
    pub fn message_counts(&self) -> &MessageCounts {
        &self.counts
    }

    /// What has been counted so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Replace the trunk list (e.g. after the configuration was reloaded).
    pub fn set_trunks(&mut self, trunks: Vec<Trunk>) {
        self.config.trunks = trunks;
    }

    /// Number of calls the endpoint is tracking.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The state of a call, if it exists.
    pub fn call_state(&self, call: CallId) -> Option<CallState> {
        self.calls.get(&call).map(|c| c.state)
    }

    /// Number of live transactions (server + client).
    pub fn transaction_count(&self) -> usize {
        self.server.len() + self.client.len()
    }

    /// The kind and state of every live transaction, for diagnostics and tests.
    pub fn transaction_states(&self) -> Vec<(&'static str, State)> {
        let s = self.server.values().map(|e| {
            (
                if matches!(e.tx, ServerTx::Invite(_)) {
                    "server INVITE"
                } else {
                    "server non-INVITE"
                },
                e.tx.state(),
            )
        });
        let c = self.client.values().map(|e| {
            (
                if matches!(e.tx, ClientTx::Invite(_)) {
                    "client INVITE"
                } else {
                    "client non-INVITE"
                },
                e.tx.state(),
            )
        });
        s.chain(c).collect()
    }

    /// Feed something that happened.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Receive { flow, data } => self.receive(now, flow, data),
            Input::ConnectionClosed(id) => {
                let dead: Vec<CallId> = self
                    .calls
                    .values()
                    .filter(|c| c.flow.connection == Some(id))
                    .map(|c| c.id)
                    .collect();
                for call in dead {
                    self.end_call(call, EndReason::TransportClosed);
                }
                self.connection_closed_bindings(id);
            }
        }
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // The heap may name a deadline that has since moved: waking early is harmless.
        let calls = self.calls.values().filter_map(Call::poll_timeout).min();
        self.timers.next().into_iter().chain(calls).min()
    }

    /// Run every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            match key {
                TimerKey::Server(key) => {
                    let Some(e) = self.server.get_mut(&key) else {
                        continue;
                    };
                    if e.armed != Some(at) {
                        continue;
                    }
                    e.armed = None;
                    if e.tx.poll_timeout().is_some_and(|t| t <= now) {
                        e.tx.handle_timeout(now);
                    }
                    self.drain_server(&key);
                }
                TimerKey::Client(key) => {
                    let Some(e) = self.client.get_mut(&key) else {
                        continue;
                    };
                    if e.armed != Some(at) {
                        continue;
                    }
                    e.armed = None;
                    if e.tx.poll_timeout().is_some_and(|t| t <= now) {
                        e.tx.handle_timeout(now);
                    }
                    self.drain_client(now, &key);
                }
                TimerKey::Binding(id) => self.binding_timeout(now, id, at),
            }
        }
        let due: Vec<CallId> = self
            .calls
            .values()
            .filter(|c| c.poll_timeout().is_some_and(|t| t <= now))
            .map(|c| c.id)
            .collect();
        for id in due {
            self.call_timeout(now, id);
        }
    }

    // ---- receive path -------------------------------------------------------------------

    fn receive(&mut self, now: Instant, flow: Flow, data: Bytes) {
        self.stats.received += 1;
        self.counts.count(&data, true);
        if data.iter().all(|&b| b == b'\r' || b == b'\n') {
            // CRLF keep-alive on UDP (common from phones), nothing to answer.
            return;
        }
        match Message::parse(data) {
            Ok(msg) if msg.is_request() => self.receive_request(now, flow, msg),
            Ok(msg) => self.receive_response(now, flow, msg),
            Err(e) => self.answer_malformed(flow, e),
        }
    }

    /// Answer a request that could not be parsed, if enough of it was read; else drop it.
    fn answer_malformed(&mut self, flow: Flow, e: ParseError) {
        let Some(partial) = e.partial.as_ref() else {
            tracing::debug!(kind = ?e.kind, "dropped unparseable message");
            self.stats.dropped += 1;
            return;
        };
        let complete = [
            HeaderName::Via,
            HeaderName::From,
            HeaderName::To,
            HeaderName::CallId,
            HeaderName::CSeq,
        ]
        .iter()
        .all(|h| partial.headers.contains(h));
        if !complete || partial.method == Some(Method::Ack) {
            self.stats.dropped += 1;
            return;
        }
        let code = if e.kind == ParseErrorKind::UnsupportedVersion {
            505
        } else {
            400
        };
        let resp = Builder::response_to(&partial.headers, code, None)
            .reason(e.reason_phrase())
            .build();
        tracing::debug!(code, kind = ?e.kind, "answered malformed request");
        self.stats.malformed_answered += 1;
        self.transmit(flow, resp.to_bytes());
    }

    fn receive_request(&mut self, now: Instant, flow: Flow, mut msg: Message) {
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        if let Err(e) = check::check_request(&msg) {
            if method == Method::Ack {
                self.stats.dropped += 1;
                return;
            }
            let code =
                if !matches!(method, Method::Other(_)) || e.kind != ParseErrorKind::CSeqMismatch {
                    400
                } else {
                    501
                };
            let mut b = Builder::response_to(&msg.headers, code, None);
            if code == 400 {
                b = b.reason(e.reason_phrase());
                self.stats.malformed_answered += 1;
            } else {
                b.push(HeaderName::Allow, self.allow());
            }
            self.transmit(flow, b.build().to_bytes());
            return;
        }
        if flow.transport == Transport::Udp {
            stamp_received(&mut msg, flow.remote);
        }
        let Ok(key) = ServerKey::from_request(&msg) else {
            self.stats.dropped += 1;
            return;
        };

        if method == Method::Ack {
            self.receive_ack(now, flow, key, msg);
            return;
        }
        if let Some(entry) = self.server.get_mut(&key) {
            self.stats.retransmissions += 1;
            entry.tx.handle_request(now, &msg);
            self.drain_server(&key);
            return;
        }
        if method == Method::Cancel {
            self.receive_cancel(now, flow, key, msg);
            return;
        }
        let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_owned));
        if let Some(to_tag) = to_tag {
            self.receive_in_dialog(now, flow, key, msg, to_tag);
            return;
        }
        self.receive_out_of_dialog(now, flow, key, msg);
    }

    fn receive_out_of_dialog(&mut self, now: Instant, flow: Flow, key: ServerKey, msg: Message) {
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        if method == Method::Register && self.registrar.is_some() {
            self.receive_register(now, flow, key, msg);
            return;
        }
        let trunk = self
            .config
            .trunks
            .iter()
            .find(|t| t.allows(flow.remote.ip()))
            .cloned();
        let from_agents = self
            .registrar
            .as_ref()
            .is_some_and(|r| r.allows(flow.remote.ip()));
        let registered = self
            .registrar
            .as_ref()
            .is_some_and(|r| r.is_registered_flow(&flow));
        let origin = match trunk {
            _ if registered && from_agents => Some(Origin::Agent),
            Some(t) => Some(Origin::Trunk(t)),
            None if from_agents => Some(Origin::Agent),
            None => None,
        };
        let Some(origin) = origin else {
            self.stats.refused_source += 1;
            tracing::info!(method = %method, "refused request from a source that is no trunk");
            let tag = self.tag();
            self.reply(
                now,
                flow,
                key,
                &msg,
                Builder::response_to(&msg.headers, 403, Some(&tag)),
                None,
            );
            return;
        };
        let tag = self.tag();
        let allow = self.allow();
        let refuse = |code: u16| Builder::response_to(&msg.headers, code, Some(&tag));
        // RFC 3261 §8.2.1: method inspection.
        let b = match method {
            Method::Other(_) => Some(refuse(501).header(HeaderName::Allow, allow)),
            Method::Bye | Method::Notify => Some(refuse(481)),
            // kald takes REFERs only inside a call.
            Method::Refer => Some(refuse(403).reason("REFER Outside A Dialog")),
            ref m if check::is_known_unsupported(m) => {
                Some(refuse(405).header(HeaderName::Allow, allow))
            }
            _ => None,
        };
        if let Some(b) = b {
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        // RFC 3261 §8.2.2.1: the Request-URI's scheme.
        let scheme_ok = msg
            .request_uri()
            .is_some_and(|u| matches!(u.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel));
        if !scheme_ok {
            self.reply(now, flow, key, &msg, refuse(416), None);
            return;
        }
        // RFC 3261 §8.2.2.3: every Require option must be supported.
        let unsupported: Vec<&str> = msg
            .values(HeaderName::Require)
            .filter_map(Result::ok)
            .filter(|o| !SUPPORTED.split(", ").any(|s| s.eq_ignore_ascii_case(o)))
            .collect();
        if !unsupported.is_empty() {
            let b = refuse(420).header(HeaderName::Unsupported, unsupported.join(", "));
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        if method == Method::Invite {
            self.receive_invite(now, flow, key, msg, origin, tag);
            return;
        }
        let b = refuse(200)
            .header(HeaderName::Allow, allow)
            .header(HeaderName::Accept, "application/sdp")
            .header(HeaderName::Supported, SUPPORTED);
        self.reply(now, flow, key, &msg, b, None);
    }

    fn receive_invite(
        &mut self,
        now: Instant,
        flow: Flow,
        key: ServerKey,
        msg: Message,
        origin: Origin,
        tag: String,
    ) {
        // Agents' phones prove who they are (RFC 3261 §22.3: 407 as a proxy-like server).
        let agent = match origin {
            Origin::Trunk(_) => None,
            Origin::Agent => {
                let Some(user) = self.authenticate_agent(now, flow, &key, &msg, &tag, true) else {
                    return;
                };
                Some(user)
            }
        };
        let refuse = |code: u16| Builder::response_to(&msg.headers, code, Some(&tag));
        // RFC 3261 §8.2.3: a body kald cannot read.
        let has_body = !msg.body.is_empty();
        let sdp_body = msg
            .content_type()
            .is_some_and(|c| c.eq_ignore_ascii_case("application/sdp"));
        if has_body && !sdp_body {
            let b = refuse(415).header(HeaderName::Accept, "application/sdp");
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        // RFC 3261 §21.4.7: the caller does not accept what kald would answer with.
        let accepts: Vec<&str> = msg
            .values(HeaderName::Accept)
            .filter_map(Result::ok)
            .collect();
        if msg.headers.contains(&HeaderName::Accept) && !accepts.iter().any(|a| accepts_sdp(a)) {
            let b = refuse(406).header(HeaderName::Accept, "application/sdp");
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        // RFC 4028 §8.1: a session interval below kald's minimum.
        if let Some(se) = call::session_expires(&msg) {
            if se.0 < self.config.min_se {
                let b = refuse(422).header(HeaderName::MinSe, self.config.min_se.to_string());
                self.reply(now, flow, key, &msg, b, None);
                return;
            }
        }
        let ruri = msg.request_uri();
        if !self.accepting {
            let b = refuse(480).header(HeaderName::RetryAfter, "60");
            self.reply(now, flow, key, &msg, b, None);
            return;
        }
        let number = match ruri.and_then(|u| u.user) {
            Some(u) => Some(u.to_owned()),
            None => msg.to().ok().and_then(|t| t.uri.user.map(str::to_owned)),
        };
        let entry_point = match &origin {
            Origin::Trunk(trunk) => number
                .as_deref()
                .and_then(|n| trunk.route(n))
                .map(str::to_owned),
            Origin::Agent => ruri
                .and_then(|u| u.user)
                .map(refer::percent_decode)
                .filter(|u| !u.is_empty()),
        };
        let trunk_name = match &origin {
            Origin::Trunk(t) => t.name.clone(),
            Origin::Agent => String::new(),
        };
        let Some(entry_point) = entry_point else {
            self.stats.refused_number += 1;
            tracing::info!(trunk = %trunk_name, "refused INVITE for a number no entry point owns");
            let b = refuse(404);
            self.reply(now, flow, key, &msg, b, None);
            return;
        };
        // RFC 3891 §3: a Replaces from an agent must name a dialog kald has.
        let replaces = match agent {
            None => None,
            Some(_) => match self.invite_replaces(&msg) {
                Ok(r) => r,
                Err(code) => {
                    let b = refuse(code);
                    self.reply(now, flow, key, &msg, b, None);
                    return;
                }
            },
        };
        let id = self.new_call_id();
        let call = Call::incoming(now, id, &msg, flow, tag.clone(), key.clone(), &self.config);
        let Some(call) = call else {
            self.stats.malformed_answered += 1;
            let b = refuse(400);
            self.reply(now, flow, key, &msg, b, None);
            return;
        };
        let caller = msg.from().ok().and_then(|f| f.uri.user.map(str::to_owned));
        let offer = if has_body {
            Some(msg.body.clone())
        } else {
            None
        };
        let Ok(tx) = ServerInvite::new(now, &msg, flow.reliable(), self.config.timers) else {
            self.stats.dropped += 1;
            return;
        };
        self.server.insert(
            key.clone(),
            ServerEntry {
                tx: ServerTx::Invite(tx),
                flow,
                call: Some(id),
                armed: None,
            },
        );
        if let Some(k) = call.dialog_key() {
            self.dialogs.insert(k, id);
        }
        self.calls.insert(id, call);
        self.drain_server(&key);
        self.stats.calls_offered += 1;
        self.outputs.push_back(Output::Event(Event::Incoming {
            call: id,
            entry_point,
            trunk: trunk_name,
            agent,
            replaces,
            offer,
            caller,
            local: flow.local,
        }));
    }

    fn receive_cancel(&mut self, now: Instant, flow: Flow, key: ServerKey, msg: Message) {
        let invite_key = key.invite_for_cancel();
        let target = self.server.get(&invite_key).and_then(|e| e.call);
        let Some(call_id) = target else {
            let b = Builder::response_to(&msg.headers, 481, Some(&self.tag()));
            self.reply(now, flow, key, &msg, b, None);
            return;
        };
        let local_tag = self.calls.get(&call_id).map(|c| c.local_tag.clone());
        let b = Builder::response_to(&msg.headers, 200, local_tag.as_deref());
        self.reply(now, flow, key, &msg, b, None);
        let early = self
            .calls
            .get(&call_id)
            .is_some_and(|c| c.state == CallState::Early);
        if early {
            self.respond_invite(now, call_id, 487, None, Vec::new());
            self.end_call(call_id, EndReason::Cancelled);
        }
    }

    fn receive_ack(&mut self, now: Instant, flow: Flow, key: ServerKey, msg: Message) {
        // An ACK for a non-2xx final belongs to the INVITE transaction.
        if let Some(entry) = self.server.get_mut(&key) {
            if let ServerTx::Invite(t) = &mut entry.tx {
                if matches!(t.state(), State::Completed | State::Confirmed) {
                    t.handle_request(now, &msg);
                    self.drain_server(&key);
                    return;
                }
            }
        }
        // An ACK for a 2xx belongs to the dialog.
        let dk = msg
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_owned))
            .and_then(|to_tag| {
                Some(DialogKey {
                    call_id: msg.call_id().ok()?.to_owned(),
                    local_tag: to_tag,
                    remote_tag: msg.from().ok()?.tag().unwrap_or("").to_owned(),
                })
            });
        let Some(id) = dk.and_then(|k| self.dialogs.get(&k).copied()) else {
            self.stats.dropped += 1;
            return;
        };
        let _ = flow;
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        if let Some(answer) = call.ack_received(now, cseq, &msg) {
            self.outputs
                .push_back(Output::Event(Event::Confirmed { call: id, answer }));
        }
        if call.bye_after_ack {
            self.hangup(now, id);
        }
    }

    fn receive_in_dialog(
        &mut self,
        now: Instant,
        flow: Flow,
        key: ServerKey,
        msg: Message,
        to_tag: String,
    ) {
        let method = msg.method().cloned().unwrap_or(Method::Ack);
        let dk = DialogKey {
            call_id: msg.call_id().unwrap_or("").to_owned(),
            local_tag: to_tag,
            remote_tag: msg
                .from()
                .ok()
                .and_then(|f| f.tag().map(str::to_owned))
                .unwrap_or_default(),
        };
        let Some(id) = self.dialogs.get(&dk).copied() else {
            let b = Builder::response_to(&msg.headers, 481, None);
            self.reply(now, flow, key, &msg, b, None);
            return;
        };
        let cseq = msg.cseq().map(|c| c.seq).unwrap_or(0);
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.remote_cseq.is_some_and(|last| cseq <= last) {
            let b = Builder::response_to(&msg.headers, 500, None).reason("Out of order CSeq");
            self.reply(now, flow, key, &msg, b, Some(id));
            return;
        }
        call.remote_cseq = Some(cseq);
        match method {
            Method::Bye => {
                let b = Builder::response_to(&msg.headers, 200, None);
                self.reply(now, flow, key, &msg, b, Some(id));
                self.end_call(id, EndReason::RemoteHangup);
            }
            Method::Invite | Method::Update => {
                let glare = call.offer_outstanding();
                let busy = call.pending_offer.is_some();
                if glare || busy {
                    // RFC 3261 §14.2: 491 when our own offer is pending; 500 + Retry-After
                    // when the peer's previous one is still unanswered.
                    let b = if glare {
                        Builder::response_to(&msg.headers, 491, None)
                    } else {
                        let secs = self.rng.random_range(0..=10u32);
                        Builder::response_to(&msg.headers, 500, None)
                            .header(HeaderName::RetryAfter, secs.to_string())
                    };
                    self.reply(now, flow, key, &msg, b, Some(id));
                    return;
                }
                call.refresh_from(&msg, now);
                let sdp = if msg.body.is_empty() {
                    None
                } else {
                    Some(msg.body.clone())
                };
                if method == Method::Update && sdp.is_none() {
                    // A session refresh without an offer.
                    let b = call.dialog_response(&msg, 200, &self.config);
                    self.reply(now, flow, key, &msg, b, Some(id));
                    return;
                }
                let tx = if method == Method::Invite {
                    ServerInvite::new(now, &msg, flow.reliable(), self.config.timers)
                        .map(ServerTx::Invite)
                } else {
                    ServerNonInvite::new(now, &msg, flow.reliable(), self.config.timers)
                        .map(ServerTx::NonInvite)
                };
                let Ok(tx) = tx else { return };
                self.server.insert(
                    key.clone(),
                    ServerEntry {
                        tx,
                        flow,
                        call: Some(id),
                        armed: None,
                    },
                );
                self.drain_server(&key);
                let deadline = now + self.config.timers.t1 * 64;
                if let Some(call) = self.calls.get_mut(&id) {
                    call.pending_offer = Some((key, msg));
                    call.offer_deadline = Some(deadline);
                }
                self.outputs
                    .push_back(Output::Event(Event::Offer { call: id, sdp }));
            }
            Method::Info => {
                let content_type = msg.content_type().unwrap_or("").to_ascii_lowercase();
                let body = msg.body.clone();
                let b = Builder::response_to(&msg.headers, 200, None);
                self.reply(now, flow, key, &msg, b, Some(id));
                self.outputs.push_back(Output::Event(Event::Info {
                    call: id,
                    content_type,
                    body,
                }));
            }
            Method::Options => {
                let b = call
                    .dialog_response(&msg, 200, &self.config)
                    .header(HeaderName::Accept, "application/sdp");
                self.reply(now, flow, key, &msg, b, Some(id));
            }
            Method::Refer => self.receive_refer(now, flow, key, msg, id),
            Method::Notify => {
                // NOTIFYs of a REFER kald sent (or any other) are acknowledged and dropped.
                let b = Builder::response_to(&msg.headers, 200, None);
                self.reply(now, flow, key, &msg, b, Some(id));
            }
            Method::Other(_) => {
                let b = Builder::response_to(&msg.headers, 501, None)
                    .header(HeaderName::Allow, self.allow());
                self.reply(now, flow, key, &msg, b, Some(id));
            }
            _ => {
                let b = Builder::response_to(&msg.headers, 405, None)
                    .header(HeaderName::Allow, self.allow());
                self.reply(now, flow, key, &msg, b, Some(id));
            }
        }
    }

    fn receive_response(&mut self, now: Instant, _flow: Flow, msg: Message) {
        if check::check_response(&msg).is_err() {
            self.stats.dropped += 1;
            return;
        }
        let Ok(key) = ClientKey::from_response(&msg) else {
            self.stats.dropped += 1;
            return;
        };
        let Some(entry) = self.client.get_mut(&key) else {
            // A 2xx retransmission for an INVITE whose transaction is gone: re-ACK it.
            self.stray_response(now, msg);
            return;
        };
        entry.tx.handle_response(now, &msg);
        self.drain_client(now, &key);
    }

    fn stray_response(&mut self, _now: Instant, msg: Message) {
        let is_2xx_invite = msg.status().is_some_and(|c| (200..300).contains(&c))
            && msg.cseq().is_ok_and(|c| c.method == Method::Invite);
        if !is_2xx_invite {
            self.stats.dropped += 1;
            return;
        }
        let dk = (|| {
            Some(DialogKey {
                call_id: msg.call_id().ok()?.to_owned(),
                local_tag: msg.from().ok()?.tag()?.to_owned(),
                remote_tag: msg.to().ok()?.tag()?.to_owned(),
            })
        })();
        if let Some(id) = dk.and_then(|k| self.dialogs.get(&k).copied()) {
            if let Some(ack) = self.calls.get(&id).and_then(|c| c.last_ack.clone()) {
                let flow = self.calls.get(&id).map(|c| c.flow);
                if let Some(flow) = flow {
                    self.transmit(flow, ack);
                }
                return;
            }
        }
        self.stats.dropped += 1;
    }

    // ---- transaction plumbing -----------------------------------------------------------

    /// Send `b` as the response to `msg` through a new server transaction for `key`.
    fn reply(
        &mut self,
        now: Instant,
        flow: Flow,
        key: ServerKey,
        msg: &Message,
        b: Builder,
        call: Option<CallId>,
    ) {
        let resp = b
            .header(HeaderName::Server, self.config.user_agent.clone())
            .build();
        let bytes = resp.to_bytes();
        if !self.server.contains_key(&key) {
            let tx = if msg.method() == Some(&Method::Invite) {
                ServerInvite::new(now, msg, flow.reliable(), self.config.timers)
                    .map(ServerTx::Invite)
            } else {
                ServerNonInvite::new(now, msg, flow.reliable(), self.config.timers)
                    .map(ServerTx::NonInvite)
            };
            match tx {
                Ok(tx) => {
                    self.server.insert(
                        key.clone(),
                        ServerEntry {
                            tx,
                            flow,
                            call,
                            armed: None,
                        },
                    );
                }
                Err(_) => {
                    // No transaction possible (e.g. no usable Via): answer statelessly.
                    self.transmit(flow, bytes);
                    return;
                }
            }
        }
        self.send_through(now, &key, &resp, bytes);
    }

    /// Send a response through an existing server transaction.
    pub(crate) fn send_through(
        &mut self,
        now: Instant,
        key: &ServerKey,
        resp: &Message,
        bytes: Bytes,
    ) {
        let Some(entry) = self.server.get_mut(key) else {
            return;
        };
        let sent = entry.tx.send_response(now, resp, bytes);
        if let Err(e) = sent {
            tracing::debug!(error = %e, "transaction refused a response");
        }
        self.drain_server(key);
    }

    fn drain_server(&mut self, key: &ServerKey) {
        let Some(entry) = self.server.get_mut(key) else {
            return;
        };
        let flow = entry.flow;
        let mut terminated = false;
        loop {
            let out = entry.tx.poll_output();
            match out {
                None => break,
                Some(TxOutput::Transmit(data)) => self
                    .outputs
                    .push_back(Output::Transmit(Transmit { flow, data })),
                Some(TxOutput::Terminated) => terminated = true,
                Some(TxOutput::Timeout) => {
                    // Timer H: no ACK for a non-2xx final; nothing more to do for the call.
                    tracing::debug!("INVITE server transaction got no ACK");
                }
                Some(_) => {}
            }
        }
        if terminated {
            self.server.remove(key);
        } else if let Some(e) = self.server.get_mut(key) {
            let next = e.tx.poll_timeout();
            if next.is_some() && next != e.armed {
                e.armed = next;
                if let Some(at) = next {
                    self.timers.arm(at, TimerKey::Server(key.clone()));
                }
            }
        }
    }

    fn drain_client(&mut self, now: Instant, key: &ClientKey) {
        let mut terminated = false;
        loop {
            let Some(entry) = self.client.get_mut(key) else {
                return;
            };
            let flow = entry.flow;
            let call = entry.call;
            let purpose = entry.purpose;
            let out = entry.tx.poll_output();
            match out {
                None => break,
                Some(TxOutput::Transmit(data)) => self
                    .outputs
                    .push_back(Output::Transmit(Transmit { flow, data })),
                Some(TxOutput::Response(resp)) => {
                    if let Purpose::Qualify(b) = purpose {
                        if resp.status().is_some_and(|c| c >= 200) {
                            self.qualify_result(b, true);
                        }
                    } else if let Some(call) = call {
                        self.client_response(now, call, purpose, resp);
                    }
                }
                Some(TxOutput::Timeout) => {
                    if let Purpose::Qualify(b) = purpose {
                        self.qualify_result(b, false);
                    } else if let Some(call) = call {
                        self.client_timeout(now, call, purpose);
                    }
                }
                Some(TxOutput::Terminated) => terminated = true,
            }
        }
        if terminated {
            self.client.remove(key);
        } else if let Some(e) = self.client.get_mut(key) {
            let next = e.tx.poll_timeout();
            if next.is_some() && next != e.armed {
                e.armed = next;
                if let Some(at) = next {
                    self.timers.arm(at, TimerKey::Client(key.clone()));
                }
            }
        }
    }

    /// Start a client transaction for `req` over `flow`.
    fn send_request(
        &mut self,
        now: Instant,
        flow: Flow,
        req: Message,
        call: Option<CallId>,
        purpose: Purpose,
    ) {
        let Ok(key) = ClientKey::from_request(&req) else {
            return;
        };
        let bytes = req.to_bytes();
        let tx = if req.method() == Some(&Method::Invite) {
            ClientInvite::new(now, &req, bytes, flow.reliable(), self.config.timers)
                .map(|t| ClientTx::Invite(Box::new(t)))
        } else {
            ClientNonInvite::new(now, &req, bytes, flow.reliable(), self.config.timers)
                .map(|t| ClientTx::NonInvite(Box::new(t)))
        };
        let Ok(tx) = tx else { return };
        self.client.insert(
            key.clone(),
            ClientEntry {
                tx,
                flow,
                call,
                purpose,
                armed: None,
            },
        );
        if let Some(c) = call.and_then(|c| self.calls.get_mut(&c)) {
            if purpose == Purpose::Invite {
                c.invite_client = Some(key.clone());
            }
            if purpose == Purpose::Reinvite
                || purpose == Purpose::Update
                || purpose == Purpose::Refresh
            {
                c.offer_client = Some(key.clone());
            }
        }
        self.drain_client(now, &key);
    }

    fn transmit(&mut self, flow: Flow, data: Bytes) {
        self.counts.count(&data, false);
        self.outputs
            .push_back(Output::Transmit(Transmit { flow, data }));
    }

    // ---- helpers -------------------------------------------------------------------------

    fn tag(&mut self) -> String {
        format!("{:016x}", self.rng.next_u64())
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{:016x}", self.rng.next_u64())
    }

    fn new_call_id(&mut self) -> CallId {
        let id = CallId::new(self.next_call);
        self.next_call += 1;
        id
    }

    fn end_call(&mut self, id: CallId, reason: EndReason) {
        // Transactions of the call that wait for the TU's final answer would wait forever.
        if let Some(call) = self.calls.get(&id) {
            let (server_keys, client_key) = call.waiting_transactions();
            for k in server_keys {
                if self
                    .server
                    .get(&k)
                    .is_some_and(|e| matches!(e.tx.state(), State::Trying | State::Proceeding))
                {
                    self.server.remove(&k);
                }
            }
            if let Some(k) = client_key {
                let ringing = self.client.get(&k).is_some_and(|e| {
                    matches!(e.tx, ClientTx::Invite(_)) && e.tx.state() == State::Proceeding
                });
                if ringing {
                    self.client.remove(&k);
                }
            }
        }
        if let Some(call) = self.calls.remove(&id) {
            if let Some(k) = call.dialog_key() {
                self.dialogs.remove(&k);
            }
            self.outputs
                .push_back(Output::Event(Event::Ended { call: id, reason }));
        }
    }
}

/// RFC 3581 / RFC 3261 §18.2.1: note the packet's source in the top Via.
fn stamp_received(msg: &mut Message, source: SocketAddr) {
    let Some(pos) = msg.headers.iter().position(|h| h.name == HeaderName::Via) else {
        return;
    };
    let Some(header) = msg.headers.iter().nth(pos) else {
        return;
    };
    let Some(value) = header.value_str() else {
        return;
    };
    // Only the first value of a comma-separated Via line is the top Via.
    let (top, rest) = split_first_value(value);
    let Ok(via) = crate::message::Via::parse(top) else {
        return;
    };
    let mut params = String::new();
    for (name, v) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") {
            continue;
        }
        if name.eq_ignore_ascii_case("rport") {
            params.push_str(&format!(";rport={}", source.port()));
            continue;
        }
        params.push(';');
        params.push_str(name);
        if let Some(v) = v {
            params.push('=');
            params.push_str(v);
        }
    }
    let ip = source.ip();
    let received = match ip {
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => format!("[{v6}]"),
        },
        v4 => v4.to_string(),
    };
    let sent_by = match via.port {
        Some(p) => format!("{}:{p}", via.host),
        None => via.host.to_string(),
    };
    let mut new = format!(
        "SIP/2.0/{} {sent_by}{params};received={received}",
        via.transport
    );
    if let Some(rest) = rest {
        new.push_str(", ");
        new.push_str(rest);
    }
    let mut headers = crate::message::Headers::new();
    for (i, h) in msg.headers.iter().enumerate() {
        if i == pos {
            headers.push(Header::new(HeaderName::Via, Bytes::from(new.clone())));
        } else {
            headers.push(h.clone());
        }
    }
    msg.headers = headers;
}

/// The first value of a comma-separated header line and the rest, respecting quotes and `<>`.
fn split_first_value(value: &str) -> (&str, Option<&str>) {
    let b = value.as_bytes();
    let (mut quoted, mut angle, mut i) = (false, false, 0);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => return (value[..i].trim(), Some(value[i + 1..].trim())),
            _ => {}
        }
        i += 1;
    }
    (value.trim(), None)
}

fn accepts_sdp(a: &str) -> bool {
    let t = a.split(';').next().unwrap_or("").trim();
    t.eq_ignore_ascii_case("application/sdp")
        || t == "*/*"
        || t.eq_ignore_ascii_case("application/*")
}

#[cfg(test)]
mod tests;
