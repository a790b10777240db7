//! Routing throughput and latency of the ACD with 1,000 calls waiting and 200 agents across
//! 3 queues (each agent primary in one queue and level 2 in the next; priorities 0–9).
//!
//! * `route/cycle`: one agent's cycle — `RingAnswered`, `Ended`, `EndWrapUp` (the agent takes
//!   the next call: a `Ring`) and an `Enqueue` that keeps 1,000 calls waiting — with every
//!   output drained and due timers fired. Throughput counts the 4 inputs (routing events).
//! * `route/end_wrap_up_to_ring` and `route/unpause_to_ring`: the time from the input that
//!   makes an agent available to its `Ring` output, outputs drained, 1,000 calls waiting.
//!
//! `cargo bench -p kald-acd --bench route -- --warm-up-time 1 --measurement-time 3`
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
    ringing: Vec<Option<CallId>>,
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
                AgentConfig::new(
                    id.clone(),
                    id.clone(),
                    vec![
                        Skill::new(QUEUES[i % 3], 1),
                        Skill::new(QUEUES[(i + 1) % 3], 2),
                    ],
                )
            })
            .collect();
        let mut load = Self {
            acd: Acd::new(AcdConfig {
                queues,
                agents,
                ..AcdConfig::default()
            }),
            now: Instant::now(),
            ringing: vec![None; AGENTS],
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
        assert_eq!(load.ringing.iter().flatten().count(), AGENTS);
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

    fn input(&mut self, input: Input) -> bool {
        self.acd.handle_input(self.now, input).unwrap();
        self.drain()
    }

    /// Drains outputs; true if a `Ring` came out.
    fn drain(&mut self) -> bool {
        let mut rang = false;
        while let Some(out) = self.acd.poll_output() {
            if let Output::Ring { call, agent, .. } = &out {
                // "agentNNN"
                let i: usize = agent[5..].parse().unwrap();
                self.ringing[i] = Some(*call);
                rang = true;
            }
            let _ = black_box(out);
        }
        rang
    }

    /// The next agent that has a ring, in turn.
    fn next_ringing(&mut self) -> (usize, CallId) {
        loop {
            let i = self.next_agent;
            self.next_agent = (self.next_agent + 1) % AGENTS;
            if let Some(call) = self.ringing[i].take() {
                return (i, call);
            }
        }
    }

    fn tick(&mut self) {
        self.now += Duration::from_millis(1);
        if self.acd.poll_timeout().is_some_and(|t| t <= self.now) {
            self.acd.handle_timeout(self.now);
            self.drain();
        }
    }

    /// Answer and end the next agent's call and top the queue up; the agent is in wrap-up.
    fn answer_and_end(&mut self) -> usize {
        self.tick();
        let (i, call) = self.next_ringing();
        let agent = self.ids[i].clone();
        self.input(Input::RingAnswered { call, agent });
        self.input(Input::Ended { call });
        self.enqueue();
        i
    }

    fn cycle(&mut self) {
        let i = self.answer_and_end();
        let agent = self.ids[i].clone();
        assert!(self.input(Input::EndWrapUp { agent }));
    }
}

fn route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    let mut load = Load::new();
    g.throughput(Throughput::Elements(4));
    g.bench_function("cycle", |b| b.iter(|| load.cycle()));
    g.throughput(Throughput::Elements(1));

    let mut load = Load::new();
    g.bench_function("end_wrap_up_to_ring", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let i = load.answer_and_end();
                let agent = load.ids[i].clone();
                let start = Instant::now();
                let rang = load.input(Input::EndWrapUp { agent });
                total += start.elapsed();
                assert!(rang);
            }
            total
        })
    });

    let mut load = Load::new();
    g.bench_function("unpause_to_ring", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let i = load.answer_and_end();
                let agent = load.ids[i].clone();
                load.input(Input::Pause {
                    agent: agent.clone(),
                    reason: "break".to_owned(),
                });
                let start = Instant::now();
                let rang = load.input(Input::Unpause { agent });
                total += start.elapsed();
                assert!(rang);
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, route);
criterion_main!(benches);
