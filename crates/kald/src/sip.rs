//! The SIP driver: UDP and TCP sockets, timers and shutdown around the sans-IO
//! [`Endpoint`]. It makes no protocol decision; it moves bytes and time in and out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use kald_sip::endpoint::{
    ConnectionId, Endpoint, EndpointConfig, Flow, Input, Output, RegistrarConfig, RegistrarUser,
    SavedBinding, TransactionState, Transport,
};
use kald_sip::framing::{Frame, StreamFramer};

use crate::calls::Calls;
use crate::config::Config;
use crate::media::Report;

/// What a TCP connection task reports to the SIP loop.
enum TcpEvent {
    Opened(ConnectionId, mpsc::Sender<Bytes>),
    Message(Flow, Bytes),
    Closed(ConnectionId),
}

/// Bound sockets, so a port in use is reported before anything else starts.
pub(crate) struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// Bind UDP and TCP on the SIP address.
    pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<Self> {
        let udp = UdpSocket::bind(addr)
            .await
            .with_context(|| format!("cannot listen for SIP on UDP {addr}"))?;
        let tcp = TcpListener::bind(udp.local_addr()?)
            .await
            .with_context(|| format!("cannot listen for SIP on TCP {addr}"))?;
        Ok(Self { udp, tcp })
    }

    /// The address actually bound (port 0 picks one).
    pub(crate) fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.udp.local_addr()?)
    }
}

/// The SIP loop's side of the web API: it publishes snapshots and metrics and executes
/// commands.
pub(crate) struct ApiLink {
    pub(crate) snapshot: tokio::sync::watch::Sender<std::sync::Arc<kald_api::Snapshot>>,
    pub(crate) commands: mpsc::Receiver<(
        kald_api::Command,
        tokio::sync::oneshot::Sender<kald_api::Reply>,
    )>,
    pub(crate) metrics: std::sync::Arc<std::sync::RwLock<String>>,
    /// Who may use the web pages; replaced when the configuration is reloaded.
    pub(crate) users: tokio::sync::watch::Sender<std::sync::Arc<Vec<kald_api::User>>>,
}

/// How often the live state reaches the API at most (and at least, for the ticking waits).
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
const PUBLISH_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// How often the registrar's bindings are saved when they changed, so a restart keeps them.
const SAVE_BINDINGS_EVERY: std::time::Duration = std::time::Duration::from_secs(15);
/// How often they are saved anyway (a lost write is made good).
const SAVE_BINDINGS_ANYWAY: std::time::Duration = std::time::Duration::from_secs(300);

/// Run the SIP endpoint until `shutdown` is cancelled. `saved_bindings` are the agents'
/// registrations saved before the last stop, restored at once.
#[allow(clippy::too_many_arguments)] // each is a separate channel or resource of the loop
pub(crate) async fn run(
    config: Config,
    sockets: Sockets,
    mut calls: Calls,
    mut reports: mpsc::UnboundedReceiver<Report>,
    mut rec_reports: mpsc::UnboundedReceiver<crate::recorder::RecReport>,
    mut api: ApiLink,
    saved_bindings: Vec<kald_store::SipBindingRow>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let Sockets { udp, tcp } = sockets;
    let bound = udp.local_addr()?;
    let seed = rand::TryRngCore::try_next_u64(&mut rand::rngs::OsRng)
        .context("no OS randomness for SIP tags")?;
    let mut nonce_key = [0u8; 32];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut nonce_key)
        .context("no OS randomness for digest nonces")?;
    let registrar = RegistrarConfig {
        realm: config.centre.registrar.realm.clone(),
        networks: config.centre.registrar.networks.clone(),
        users: config
            .centre
            .agents
            .iter()
            .map(|a| RegistrarUser {
                user: a.login.clone(),
                password: a.password.clone(),
            })
            .collect(),
        nonce_key: nonce_key.to_vec(),
        ..RegistrarConfig::default()
    };
    let mut endpoint = Endpoint::new(EndpointConfig {
        trunks: config.trunks.clone(),
        public_ip: config.public_ip,
        rng_seed: seed,
        registrar: Some(registrar),
        // Unique across restarts: seconds since 1970 in the high bits, a counter below.
        first_call_id: jiff::Timestamp::now().as_second().unsigned_abs() << 24,
        ..EndpointConfig::default()
    });
    let mut draining: Option<Instant> = None;
    let mut stats_at = Instant::now() + std::time::Duration::from_secs(10);
    let mut reload_at = Instant::now() + std::time::Duration::from_secs(2);
    let (events_tx, mut events) = mpsc::channel::<TcpEvent>(1024);
    let mut writers: HashMap<ConnectionId, mpsc::Sender<Bytes>> = HashMap::new();
    let mut locals = LocalAddrs::new(bound);
    let mut next_conn = 1u64;
    restore_bindings(&mut endpoint, &calls, &mut locals, saved_bindings);
    let mut bindings = BindingSaver::new(config.sip_listen.to_string());
    let mut config_watch = crate::reload::ConfigWatch::new(&config);
    let mut bindings_at = Instant::now() + SAVE_BINDINGS_EVERY;
    let mut buf = vec![0u8; 65_535];
    let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
    // The first turn comes at once: it publishes the first snapshot and arms the timers.
    let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(sleep);
    let mut deadline: Option<Instant> = None;
    let mut published = Instant::now();
    let mut dirty = true;

    loop {
        tokio::select! {
            () = shutdown.cancelled(), if draining.is_none() => {
                tracing::info!(calls = calls.len(), grace_s = config.grace.as_secs(), "no new calls; waiting for calls in progress");
                draining = Some(Instant::now() + config.grace);
                endpoint.set_accepting(false);
            }
            Some(r) = reports.recv() => calls.handle_report(Instant::now(), &mut endpoint, r),
            Some(r) = rec_reports.recv() => calls.recording_report(r),
            Some((cmd, reply)) = api.commands.recv() => {
                let r = calls.command(Instant::now(), &mut endpoint, cmd);
                let _ = reply.send(r);
            }
            r = udp.recv_from(&mut buf) => {
                match r {
                    Ok((n, remote)) => {
                        let flow = Flow { transport: Transport::Udp, remote, local: locals.for_peer(remote), connection: None };
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        endpoint.handle_input(Instant::now(), Input::Receive { flow, data });
                    }
                    // ICMP port unreachable shows up here on some systems; it is not fatal.
                    Err(e) => tracing::debug!(error = %e, "UDP receive error"),
                }
            }
            r = tcp.accept() => {
                if let Ok((stream, remote)) = r {
                    let id = ConnectionId(next_conn);
                    next_conn += 1;
                    let local = stream.local_addr().unwrap_or(bound);
                    tokio::spawn(connection(stream, Flow { transport: Transport::Tcp, remote, local, connection: Some(id) }, events_tx.clone()));
                }
            }
            Some(ev) = events.recv() => match ev {
                TcpEvent::Opened(id, w) => { writers.insert(id, w); }
                TcpEvent::Message(flow, data) => endpoint.handle_input(Instant::now(), Input::Receive { flow, data }),
                TcpEvent::Closed(id) => {
                    writers.remove(&id);
                    endpoint.handle_input(Instant::now(), Input::ConnectionClosed(id));
                }
            },
            () = &mut sleep => {
                let now = Instant::now();
                endpoint.handle_timeout(now);
                calls.handle_timeout(now, &mut endpoint);
            }
        }
        // Drain every output; the call handling may act, which makes more output.
        flush(&mut endpoint, &mut calls, &udp, &writers).await;
        let now = Instant::now();
        let since = now.saturating_duration_since(published);
        if (dirty && since >= PUBLISH_EVERY) || since >= PUBLISH_IDLE {
            published = now;
            dirty = false;
            api.snapshot
                .send_replace(std::sync::Arc::new(calls.snapshot(now)));
            let text = calls.metrics(now, &endpoint);
            if let Ok(mut m) = api.metrics.write() {
                *m = text;
            }
        } else {
            dirty = true;
        }
        if now >= reload_at {
            reload_at = now + std::time::Duration::from_secs(2);
            calls.reload_flows();
            calls.reload_policy_if_changed(&config.policy);
            if let Some((new, later)) = config_watch.changed() {
                calls.set_centre(
                    now,
                    &mut endpoint,
                    new.centre.clone(),
                    new.transfer_allowlist.clone(),
                );
                api.users
                    .send_replace(std::sync::Arc::new(crate::live::users(&new.centre)));
                tracing::info!(
                    queues = new.centre.queues.len(),
                    agents = new.centre.agents.len(),
                    users = new.centre.users.len(),
                    "configuration reloaded: queues, agents and web users apply now"
                );
                if !later.is_empty() {
                    tracing::warn!(
                        settings = %later.join(", "),
                        "these settings changed in the configuration file; they take effect at the next restart"
                    );
                }
                dirty = true;
            }
        }
        if now >= bindings_at {
            bindings_at = now + SAVE_BINDINGS_EVERY;
            bindings.save_if_changed(now, &endpoint, &calls);
        }
        if now >= stats_at {
            stats_at = now + std::time::Duration::from_secs(10);
            let m = calls.media_stats();
            tracing::info!(
                calls = calls.len(),
                streams = m.streams.load(std::sync::atomic::Ordering::Relaxed),
                rtp_sent = m.sent.load(std::sync::atomic::Ordering::Relaxed),
                rtp_received = m.received.load(std::sync::atomic::Ordering::Relaxed),
                late_p50_us = m.lateness_percentile(50.0).unwrap_or(0),
                late_p99_us = m.lateness_percentile(99.0).unwrap_or(0),
                "media"
            );
        }
        if let Some(deadline) = draining {
            if calls.len() == 0 && endpoint.call_count() == 0 {
                break;
            }
            if now >= deadline {
                tracing::info!(
                    calls = endpoint.call_count(),
                    "grace period over; ending calls"
                );
                endpoint.hangup_all(now);
                // Give the BYEs a moment to leave and be answered (over UDP or TCP); the
                // call handling logs each call's end.
                let stop = now + std::time::Duration::from_secs(2);
                flush(&mut endpoint, &mut calls, &udp, &writers).await;
                // The calls end as their BYEs leave; wait for the answers (a BYE over TCP
                // is only known to have left when its answer is back).
                let _ = tokio::time::timeout_at(tokio::time::Instant::from_std(stop), async {
                    while awaiting_answers(&endpoint) {
                        let timer = endpoint.poll_timeout().map_or_else(far, tokio::time::Instant::from_std);
                        tokio::select! {
                            () = tokio::time::sleep_until(timer) => endpoint.handle_timeout(Instant::now()),
                            r = udp.recv_from(&mut buf) => {
                                let Ok((n, remote)) = r else { break };
                                let flow = Flow {
                                    transport: Transport::Udp,
                                    remote,
                                    local: locals.for_peer(remote),
                                    connection: None,
                                };
                                let data = Bytes::copy_from_slice(&buf[..n]);
                                endpoint.handle_input(Instant::now(), Input::Receive { flow, data });
                            }
                            Some(ev) = events.recv() => match ev {
                                TcpEvent::Opened(id, w) => { writers.insert(id, w); }
                                TcpEvent::Message(flow, data) => endpoint.handle_input(Instant::now(), Input::Receive { flow, data }),
                                TcpEvent::Closed(id) => {
                                    writers.remove(&id);
                                    endpoint.handle_input(Instant::now(), Input::ConnectionClosed(id));
                                }
                            },
                        }
                        flush(&mut endpoint, &mut calls, &udp, &writers).await;
                    }
                })
                .await;
                break;
            }
        }
        let next = [
            endpoint.poll_timeout(),
            calls.poll_timeout(),
            draining.map(|d| d.min(now + std::time::Duration::from_millis(200))),
            Some(reload_at),
            Some(bindings_at),
            Some(published + if dirty { PUBLISH_EVERY } else { PUBLISH_IDLE }),
        ]
        .into_iter()
        .flatten()
        .min();
        if next != deadline {
            deadline = next;
            let at = next.map_or_else(far, tokio::time::Instant::from_std);
            sleep.as_mut().reset(at);
        }
    }
    bindings.save_if_changed(Instant::now(), &endpoint, &calls);
    calls.shutdown();
    tracing::info!(calls = endpoint.call_count(), "SIP endpoint stopped");
    Ok(())
}

/// Gives the endpoint the registrations saved before the last stop that have not run out. Each
/// is qualified with an OPTIONS before its agent gets calls; the phone's address is where the
/// REGISTER came from, and kald's own address is worked out again (the interfaces may differ).
fn restore_bindings(
    endpoint: &mut Endpoint,
    calls: &Calls,
    locals: &mut LocalAddrs,
    rows: Vec<kald_store::SipBindingRow>,
) {
    if rows.is_empty() {
        return;
    }
    let (now, wall) = (Instant::now(), calls.clock.now().timestamp());
    let mut restored = 0usize;
    let saved = rows.len();
    for row in rows {
        let Ok(left) = std::time::Duration::try_from(wall.duration_until(row.expires)) else {
            continue;
        };
        let binding = SavedBinding {
            local: locals.for_peer(row.remote),
            user: row.agent,
            contact: row.contact,
            call_id: row.call_id,
            cseq: row.cseq,
            remote: row.remote,
            expires_in: left,
        };
        restored += usize::from(endpoint.restore_binding(now, &binding).is_some());
    }
    tracing::info!(
        restored,
        saved,
        "restored agents' SIP registrations; each gets calls once it answers an OPTIONS"
    );
}

/// Saves the registrar's UDP bindings to the store when they changed since the last save,
/// and every few minutes anyway (the store writer gives up a write that fails twice).
struct BindingSaver {
    /// Whose bindings: this kald's SIP address.
    instance: String,
    /// The bindings last saved, with their expiry on the loop's clock.
    last: Vec<(SavedBinding, Instant)>,
    /// When they were last saved.
    saved_at: Option<Instant>,
}

impl BindingSaver {
    fn new(instance: String) -> Self {
        Self {
            instance,
            last: Vec::new(),
            saved_at: None,
        }
    }

    fn save_if_changed(&mut self, now: Instant, endpoint: &Endpoint, calls: &Calls) {
        let current: Vec<(SavedBinding, Instant)> = endpoint
            .saved_bindings(now)
            .into_iter()
            .map(|b| {
                let expires_at = now + b.expires_in;
                (
                    SavedBinding {
                        expires_in: std::time::Duration::ZERO,
                        ..b
                    },
                    expires_at,
                )
            })
            .collect();
        let due = self
            .saved_at
            .is_none_or(|at| now.saturating_duration_since(at) >= SAVE_BINDINGS_ANYWAY);
        if current == self.last && !due {
            return;
        }
        let wall = calls.clock.now().timestamp();
        let rows = current
            .iter()
            .filter_map(|(b, expires_at)| {
                let left =
                    jiff::SignedDuration::try_from(expires_at.saturating_duration_since(now))
                        .ok()?;
                Some(kald_store::SipBindingRow {
                    agent: b.user.clone(),
                    contact: b.contact.clone(),
                    call_id: b.call_id.clone(),
                    cseq: b.cseq,
                    remote: b.remote,
                    local: b.local,
                    expires: wall.checked_add(left).ok()?,
                })
            })
            .collect();
        calls.records.send(crate::records::StoreOp::SipBindings {
            instance: self.instance.clone(),
            rows,
        });
        self.last = current;
        self.saved_at = Some(now);
    }
}

/// Whether a request kald sent (a BYE, typically) still waits for its final response.
fn awaiting_answers(endpoint: &Endpoint) -> bool {
    endpoint.transaction_states().iter().any(|(kind, state)| {
        *kind == "client non-INVITE"
            && matches!(
                state,
                TransactionState::Trying | TransactionState::Proceeding
            )
    })
}

/// Send what the endpoint has to send and hand its events to the call handling, until it
/// has nothing more (the call handling's actions make more output).
async fn flush(
    endpoint: &mut Endpoint,
    calls: &mut Calls,
    udp: &UdpSocket,
    writers: &HashMap<ConnectionId, mpsc::Sender<Bytes>>,
) {
    while let Some(out) = endpoint.poll_output() {
        match out {
            Output::Transmit(t) => match t.flow.connection {
                None => {
                    if let Err(e) = udp.send_to(&t.data, t.flow.remote).await {
                        tracing::debug!(error = %e, "UDP send failed");
                    }
                }
                Some(id) => {
                    if let Some(w) = writers.get(&id) {
                        let _ = w.try_send(t.data);
                    }
                }
            },
            Output::Event(e) => calls.handle_event(Instant::now(), endpoint, e),
        }
    }
}

/// One TCP connection: frames its stream, answers keep-alives, writes what the loop sends.
///
/// It stays open while kald drains on shutdown (calls over TCP go on during the grace
/// period and get their BYE on it); it ends with the peer or with the runtime.
async fn connection(stream: TcpStream, flow: Flow, events: mpsc::Sender<TcpEvent>) {
    let Some(id) = flow.connection else { return };
    let (mut reader, mut writer) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Bytes>(256);
    if events.send(TcpEvent::Opened(id, tx.clone())).await.is_err() {
        return;
    }
    let write_task = tokio::spawn(async move {
        while let Some(data) = rx.recv().await {
            if writer.write_all(&data).await.is_err() {
                break;
            }
        }
    });
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    'read: loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        framer.push(&buf[..n]);
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(Frame::Message(data)) => {
                    if events.send(TcpEvent::Message(flow, data)).await.is_err() {
                        break 'read;
                    }
                }
                // RFC 5626 §4.4.1: answer a CRLFCRLF ping with a CRLF pong.
                Ok(Frame::Ping) => {
                    let _ = tx.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Frame::Pong) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "closing TCP connection after a framing error");
                    break 'read;
                }
            }
        }
    }
    drop(tx);
    write_task.abort();
    let _ = events.send(TcpEvent::Closed(id)).await;
}

/// The local address to put in Via/Contact for a peer when bound to a wildcard address,
/// found once per peer address with an unconnected-UDP route lookup (no packet is sent).
struct LocalAddrs {
    bound: SocketAddr,
    cache: HashMap<IpAddr, SocketAddr>,
}

impl LocalAddrs {
    fn new(bound: SocketAddr) -> Self {
        Self {
            bound,
            cache: HashMap::new(),
        }
    }

    fn for_peer(&mut self, peer: SocketAddr) -> SocketAddr {
        if !self.bound.ip().is_unspecified() {
            return self.bound;
        }
        let port = self.bound.port();
        *self.cache.entry(peer.ip()).or_insert_with(|| {
            let any: SocketAddr = if peer.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            std::net::UdpSocket::bind(any)
                .and_then(|s| s.connect(peer).and_then(|()| s.local_addr()))
                .map(|a| SocketAddr::new(a.ip(), port))
                .unwrap_or(SocketAddr::new(peer.ip(), port))
        })
    }
}
