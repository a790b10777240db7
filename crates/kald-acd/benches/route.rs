//! Routing throughput and latency of the ACD with 1,000 calls waiting and 200 agents across
//! 3 queues (each agent primary in one queue, level 2 in the next and level 3 in the third;
//! priorities 0–9). Simulated time advances 1.5 s per cycle, so each agent talks about 5
//! minutes, calls wait about 25 minutes (every level is eligible) and the escalation timers
//! fire as they would.
//!
//! * `route/cycle`: one agent's cycle — `Ended` (wrap-up), `EndWrapUp` (the agent takes the
//!   next call: a `Ring`), `RingAnswered` (answered at once) and an `Enqueue` that keeps 1,000
//!   calls waiting — with every output drained and due timers fired. Throughput counts the 4
//!   inputs (routing events).
//! * `route/end_wrap_up_to_ring` and `route/unpause_to_ring`: the time from the input that
//!   makes an agent available to its `Ring` output, outputs drained, 1,000 calls waiting.
//!
//! `cargo bench -p kald-acd --bench route -- --warm-up-time 1 --measurement-time 3`
//!
//! Measured on the 2-core development machine (others building in parallel): `cycle`
//! 1.72–1.92 µs per cycle = 2.1–2.3 million routing events/s (target ≥ 100,000/s);
//! `end_wrap_up_to_ring` 0.57 µs and `unpause_to_ring` 0.58 µs.
#![allow(clippy::unwrap_used, clippy::disallowed_methods, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kald_acd::{Acd, AcdConfig, AgentConfig, Input, Output, QueueConfig, Skill};
use kald_core::CallId;

const QUEUES: [&str; 3] = ["dagpenge", "sygedagpenge", "kontanthjaelp"];
const AGENTS: usize = 200;
const WAITING: usize = 1_000;

/// The ACD under load and what the bench knows of it.
struct Load {
    acd: Acd,
    now: Instant,
    /// The call each agent is talking in.
    talking: Vec<Option<CallId>>,
    ids: Vec<String>,
    next_call: u64,
    next_agent: usize,
}

impl Load {
    fn new() -> Self {
        let queues = QUEUES
            .iter()
            .map(|q| QueueConfig::new(*q, q.to_uppercase()))
            .collect();
        let ids: Vec<String> = (0..AGENTS).map(|i| format!("agent{i:03}")).collect();
        let agents = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let skills = (0..3u8)
                    .map(|l| Skill::new(QUEUES[(i + usize::from(l)) % 3], l + 1))
                    .collect();
                AgentConfig::new(id.clone(), id.clone(), skills)
            })
            .collect();
        let mut load = Self {
            acd: Acd::new(AcdConfig {
                queues,
                agents,
                ..AcdConfig::default()
            }),
            now: Instant::now(),
            talking: vec![None; AGENTS],
            ids,
            next_call: 0,
            next_agent: 0,
        };
        for _ in 0..AGENTS + WAITING {
            load.enqueue();
        }
        for i in 0..AGENTS {
            let agent = load.ids[i].clone();
            load.input(Input::Login { agent });
        }
        assert_eq!(load.talking.iter().flatten().count(), AGENTS);
        load
    }

    fn enqueue(&mut self) {
        self.next_call += 1;
        let n = self.next_call;
        self.input(Input::Enqueue {
            call: CallId::new(n),
            queue: QUEUES[(n % 3) as usize].to_owned(),
            topic: "menu".to_owned(),
            priority: (n % 10) as u8,
        });
    }

    /// Feeds an input and drains; true if a `Ring` came out (it is answered at once).
    fn input(&mut self, input: Input) -> bool {
        self.acd.handle_input(self.now, input).unwrap();
        self.drain()
    }

    /// Feeds an input and times it up to the first `Ring` output; then drains the rest.
    fn time_to_ring(&mut self, input: Input) -> Duration {
        let start = Instant::now();
        self.acd.handle_input(self.now, input).unwrap();
        let mut ring = None;
        while let Some(out) = self.acd.poll_output() {
            if let Output::Ring { call, agent, .. } = out {
                ring = Some((call, agent));
                break;
            }
            let _ = black_box(out);
        }
        let elapsed = start.elapsed();
        let (call, agent) = ring.unwrap();
        self.drain();
        let i: usize = agent["agent".len()..].parse().unwrap();
        self.talking[i] = Some(call);
        self.input(Input::RingAnswered { call, agent });
        elapsed
    }

    fn drain(&mut self) -> bool {
        let mut rings = Vec::new();
        while let Some(out) = self.acd.poll_output() {
            if let Output::Ring { call, agent, .. } = &out {
                rings.push((*call, agent.clone()));
            }
            let _ = black_box(out);
        }
        let rang = !rings.is_empty();
        for (call, agent) in rings {
            let i: usize = agent["agent".len()..].parse().unwrap();
            self.talking[i] = Some(call);
            self.input(Input::RingAnswered { call, agent });
        }
        rang
    }

    /// Ends the next talking agent's call (in turn) and tops the queue up; returns the agent,
    /// now in wrap-up.
    fn end_next(&mut self) -> usize {
        self.now += Duration::from_millis(1500);
        if self.acd.poll_timeout().is_some_and(|t| t <= self.now) {
            self.acd.handle_timeout(self.now);
            self.drain();
        }
        let (i, call) = loop {
            let i = self.next_agent;
            self.next_agent = (self.next_agent + 1) % AGENTS;
            if let Some(call) = self.talking[i].take() {
                break (i, call);
            }
        };
        self.input(Input::Ended { call });
        self.enqueue();
        i
    }

    fn cycle(&mut self) {
        let i = self.end_next();
        let agent = self.ids[i].clone();
        assert!(self.input(Input::EndWrapUp { agent }));
    }
}

fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    let mut load = Load::new();
    g.throughput(Throughput::Elements(4));
    g.bench_function("cycle", |b| b.iter(|| load.cycle()));
    let waiting: usize = load.acd.queues().map(|q| q.waiting.len()).sum();
    assert_eq!(waiting, WAITING, "the load kept 1,000 calls waiting");
    g.throughput(Throughput::Elements(1));

    let mut load = Load::new();
    g.bench_function("end_wrap_up_to_ring", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let i = load.end_next();
                let agent = load.ids[i].clone();
                total += load.time_to_ring(Input::EndWrapUp { agent });
            }
            total
        })
    });

    let mut load = Load::new();
    g.bench_function("unpause_to_ring", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let i = load.end_next();
                let agent = load.ids[i].clone();
                load.input(Input::Pause {
                    agent: agent.clone(),
                    reason: "break".to_owned(),
                });
                total += load.time_to_ring(Input::Unpause { agent });
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
