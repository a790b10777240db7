//! Every rule of the ACD, on a simulated clock.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // one real instant as the clock's origin

use std::time::{Duration, Instant};

use kald_core::CallId;

use crate::{
    Acd, AcdConfig, AcdError, AcdEvent, AgentConfig, AgentState, CallPhase, Input, Output,
    QueueConfig, Skill, NO_ANSWER_REASON,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn c(n: u64) -> CallId {
    CallId::new(n)
}

fn queue(name: &str) -> QueueConfig {
    QueueConfig::new(name, name.to_uppercase())
}

fn agent(id: &str, skills: &[(&str, u8)]) -> AgentConfig {
    AgentConfig::new(
        id,
        id.to_uppercase(),
        skills.iter().map(|&(q, l)| Skill::new(q, l)).collect(),
    )
}

fn config(queues: Vec<QueueConfig>, agents: Vec<AgentConfig>) -> AcdConfig {
    AcdConfig {
        queues,
        agents,
        ..AcdConfig::default()
    }
}

/// The ACD on a simulated clock; collects every output.
struct Sim {
    acd: Acd,
    t0: Instant,
    now: Instant,
    out: Vec<Output>,
}

impl Sim {
    fn new(config: AcdConfig) -> Self {
        let t0 = Instant::now();
        Self {
            acd: Acd::new(config),
            t0,
            now: t0,
            out: Vec::new(),
        }
    }

    fn drain(&mut self) {
        while let Some(o) = self.acd.poll_output() {
            self.out.push(o);
        }
    }

    /// Runs every timer up to `t0 + s` (each at its own instant), then sets the clock there.
    fn at(&mut self, s: u64) {
        self.until(self.t0 + secs(s));
    }

    fn until(&mut self, target: Instant) {
        assert!(target >= self.now, "time goes forward");
        while let Some(t) = self.acd.poll_timeout() {
            if t > target {
                break;
            }
            self.now = self.now.max(t);
            self.acd.handle_timeout(self.now);
            self.drain();
            self.acd.assert_invariants(self.now);
        }
        self.now = target;
    }

    fn input(&mut self, input: Input) -> Result<(), AcdError> {
        let r = self.acd.handle_input(self.now, input);
        self.drain();
        self.acd.assert_invariants(self.now);
        r
    }

    fn ok(&mut self, input: Input) {
        self.input(input).unwrap();
    }

    fn login(&mut self, a: &str) {
        self.ok(Input::Login { agent: a.into() });
    }

    fn enqueue(&mut self, call: u64, q: &str, priority: u8) {
        self.ok(Input::Enqueue {
            call: c(call),
            queue: q.into(),
            topic: format!("topic-{q}"),
            priority,
        });
    }

    fn answer(&mut self, call: u64, a: &str) {
        self.ok(Input::RingAnswered {
            call: c(call),
            agent: a.into(),
        });
    }

    fn take(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.out)
    }

    /// The rings among the collected outputs (and forgets all outputs).
    fn rings(&mut self) -> Vec<(u64, String)> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Ring { call, agent, .. } => Some((call.get(), agent)),
                _ => None,
            })
            .collect()
    }

    fn events(&mut self) -> Vec<AcdEvent> {
        self.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    fn state(&self, a: &str) -> AgentState {
        self.acd.agent(a).unwrap().state
    }

    fn elapsed(&self) -> Duration {
        self.now - self.t0
    }
}

fn ring(call: u64, a: &str) -> (u64, String) {
    (call, a.to_owned())
}

#[test]
fn calls_are_ordered_by_priority_then_entry() {
    let mut s = Sim::new(config(
        vec![queue("dagpenge")],
        vec![agent("a", &[("dagpenge", 1)])],
    ));
    s.enqueue(1, "dagpenge", 0);
    s.at(1);
    s.enqueue(2, "dagpenge", 0);
    s.at(2);
    s.enqueue(3, "dagpenge", 5);
    s.at(3);
    s.enqueue(4, "dagpenge", 5);
    let q = s.acd.queue("dagpenge").unwrap();
    assert_eq!(q.waiting, vec![c(3), c(4), c(1), c(2)]);
    assert_eq!(q.longest_waiting_since, Some(s.t0));
    assert_eq!(s.acd.position(c(1)), Some((3, 4)));
    assert_eq!(s.acd.position(c(3)), Some((1, 4)));
    // The agent takes them in that order.
    s.take();
    s.login("a");
    for call in [3, 4, 1, 2] {
        assert_eq!(s.rings(), vec![ring(call, "a")]);
        s.answer(call, "a");
        s.ok(Input::Ended { call: c(call) });
        s.ok(Input::EndWrapUp { agent: "a".into() });
    }
}

#[test]
fn no_agents_logged_in_is_reported_once_per_entry() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.enqueue(1, "q", 0);
    let ev = s.events();
    assert_eq!(
        ev,
        vec![
            AcdEvent::Entered {
                call: c(1),
                queue: "q".into(),
                topic: "topic-q".into(),
                priority: 0
            },
            AcdEvent::NoAgentsLoggedIn {
                call: c(1),
                queue: "q".into()
            },
        ]
    );
    // The call still waits; no repeat while it waits.
    s.at(600);
    assert!(s.take().is_empty());
    assert_eq!(s.acd.position(c(1)), Some((1, 1)));
    // A paused agent is logged in: no NoAgentsLoggedIn.
    s.login("a");
    s.answer(1, "a");
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "break".into(),
    });
    s.take();
    s.enqueue(2, "q", 0);
    assert!(!s
        .events()
        .iter()
        .any(|e| matches!(e, AcdEvent::NoAgentsLoggedIn { .. })));
}

#[test]
fn primary_agent_rings_at_once_longest_idle_first() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("b");
    s.at(5);
    s.login("a");
    s.at(10);
    s.enqueue(1, "q", 0);
    let out = s.take();
    assert!(out.contains(&Output::Ring {
        call: c(1),
        agent: "b".into(),
        queue: "q".into(),
        wait: Duration::ZERO,
        topic: "topic-q".into(),
    }));
    s.enqueue(2, "q", 0);
    assert_eq!(s.rings(), vec![ring(2, "a")]);
    // b answers and finishes first, so b is now the most recently available.
    s.answer(1, "b");
    s.answer(2, "a");
    s.at(20);
    s.ok(Input::Ended { call: c(1) });
    s.ok(Input::Ended { call: c(2) });
    s.ok(Input::EndWrapUp { agent: "b".into() });
    s.at(21);
    s.ok(Input::EndWrapUp { agent: "a".into() });
    s.enqueue(3, "q", 0);
    assert_eq!(s.rings(), vec![ring(3, "b")]);
}

#[test]
fn secondary_agents_after_level_times_secondary_after() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("two", &[("q", 2)]), agent("three", &[("q", 3)])],
    ));
    s.login("three");
    s.login("two");
    s.enqueue(1, "q", 0);
    s.enqueue(2, "q", 0);
    s.at(29);
    assert!(s.rings().is_empty());
    s.at(30);
    assert_eq!(s.elapsed(), secs(30));
    // Both calls may go to level 2 now; call 1 (older) gets the only level 2 agent.
    assert_eq!(s.rings(), vec![ring(1, "two")]);
    s.answer(1, "two");
    s.at(59);
    assert!(s.rings().is_empty());
    s.at(60);
    assert_eq!(s.rings(), vec![ring(2, "three")]);
}

#[test]
fn lower_level_wins_over_longer_idle() {
    let mut q = queue("q");
    q.ring_timeout = secs(40);
    let mut s = Sim::new(config(
        vec![q],
        vec![
            agent("first", &[("q", 1)]),
            agent("sec", &[("q", 2)]),
            agent("prim", &[("q", 1)]),
        ],
    ));
    s.login("first");
    s.enqueue(1, "q", 0);
    assert_eq!(s.rings(), vec![ring(1, "first")]);
    s.at(5);
    s.login("sec");
    s.at(10);
    s.login("prim");
    s.take();
    // At 40 s the ring times out; the call has waited 40 s so both are eligible: level 1 wins.
    s.at(40);
    let out = s.take();
    assert!(out.contains(&Output::CancelRing {
        call: c(1),
        agent: "first".into()
    }));
    assert!(out.contains(&Output::Event(AcdEvent::NoAnswer {
        call: c(1),
        agent: "first".into(),
        rang: secs(40)
    })));
    let rings: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Ring { .. }))
        .collect();
    assert_eq!(rings.len(), 1);
    assert!(
        matches!(rings[0], Output::Ring { agent, wait, .. } if agent == "prim" && *wait == secs(40))
    );
}

#[test]
fn available_agent_takes_best_call_across_its_queues() {
    let mut s = Sim::new(config(
        vec![queue("a"), queue("b")],
        vec![agent("x", &[("a", 1), ("b", 1)])],
    ));
    s.enqueue(1, "a", 0);
    s.at(5);
    s.enqueue(2, "b", 0);
    s.at(6);
    s.enqueue(3, "b", 3);
    s.at(10);
    s.login("x");
    let mut order = Vec::new();
    for _ in 0..3 {
        let r = s.rings();
        assert_eq!(r.len(), 1);
        let call = r[0].0;
        order.push(call);
        s.answer(call, "x");
        s.ok(Input::Ended { call: c(call) });
        s.ok(Input::EndWrapUp { agent: "x".into() });
    }
    assert_eq!(order, vec![3, 1, 2]);
}

#[test]
fn secondary_agent_skips_calls_too_young_for_its_level() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("sec", &[("q", 2)]), agent("busy", &[("q", 1)])],
    ));
    s.enqueue(1, "q", 0);
    s.at(20);
    s.enqueue(2, "q", 5);
    s.at(35);
    // Call 2 has priority but waited only 15 s; call 1 waited 35 s.
    s.login("sec");
    assert_eq!(s.rings(), vec![ring(1, "sec")]);
    s.answer(1, "sec");
    s.ok(Input::Ended { call: c(1) });
    s.ok(Input::EndWrapUp {
        agent: "sec".into(),
    });
    assert!(s.rings().is_empty());
    s.at(50);
    assert_eq!(s.rings(), vec![ring(2, "sec")]);
}

#[test]
fn busy_paused_unreachable_and_logged_out_agents_are_never_rung() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![
            agent("talk", &[("q", 1)]),
            agent("wrap", &[("q", 1)]),
            agent("pause", &[("q", 1)]),
            agent("gone", &[("q", 1)]),
            agent("out", &[("q", 1)]),
        ],
    ));
    for a in ["talk", "wrap", "pause", "gone"] {
        s.login(a);
    }
    s.enqueue(1, "q", 0);
    s.answer(1, "talk");
    s.enqueue(2, "q", 0);
    s.answer(2, "wrap");
    s.ok(Input::Ended { call: c(2) });
    s.ok(Input::Pause {
        agent: "pause".into(),
        reason: "lunch".into(),
    });
    s.ok(Input::Reachable {
        agent: "gone".into(),
        reachable: false,
    });
    s.take();
    s.enqueue(3, "q", 0);
    s.enqueue(4, "q", 0);
    assert!(s.rings().is_empty());
    assert!(s.acd.expected_wait(s.now, c(4)).is_some());
    // One ring per call, one call per agent.
    s.ok(Input::Reachable {
        agent: "gone".into(),
        reachable: true,
    });
    assert_eq!(s.rings(), vec![ring(3, "gone")]);
    s.ok(Input::Unpause {
        agent: "pause".into(),
    });
    assert_eq!(s.rings(), vec![ring(4, "pause")]);
    s.answer(3, "gone");
    s.answer(4, "pause");
    s.enqueue(5, "q", 0);
    assert!(s.rings().is_empty());
    // The wrap-up ends by its timer.
    s.at(120);
    assert_eq!(s.rings(), vec![ring(5, "wrap")]);
    assert_eq!(s.state("out"), AgentState::LoggedOut);
}

#[test]
fn ring_timeout_moves_to_next_agent_and_backs_off_the_one_who_missed() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.at(1);
    s.login("b");
    s.enqueue(1, "q", 0);
    assert_eq!(s.rings(), vec![ring(1, "a")]);
    s.at(16);
    let out = s.take();
    assert_eq!(
        out[0],
        Output::CancelRing {
            call: c(1),
            agent: "a".into()
        }
    );
    assert!(out.contains(&Output::Ring {
        call: c(1),
        agent: "b".into(),
        queue: "q".into(),
        wait: secs(15),
        topic: "topic-q".into()
    }));
    assert_eq!(s.state("a"), AgentState::Available);
    assert_eq!(s.acd.agent("a").unwrap().missed_in_row, 1);
    // b misses too at 31 s: a's back-off (5 s) is over, so a is offered it again.
    s.at(31);
    let r = s.rings();
    assert_eq!(r, vec![ring(1, "a")]);
}

#[test]
fn the_only_agent_is_offered_again_after_the_back_off() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.login("a");
    s.enqueue(1, "q", 0);
    assert_eq!(s.rings(), vec![ring(1, "a")]);
    s.at(15);
    assert!(s.rings().is_empty());
    s.at(19);
    assert!(s.rings().is_empty());
    s.at(20);
    assert_eq!(s.rings(), vec![ring(1, "a")]);
    assert_eq!(s.elapsed(), secs(20));
    // But it takes another call at once while backed off from this one.
    s.at(35);
    s.enqueue(2, "q", 9);
    assert_eq!(s.rings(), vec![ring(2, "a")]);
}

#[test]
fn missing_the_limit_in_a_row_pauses_and_answering_resets() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.login("a");
    s.enqueue(1, "q", 0);
    s.at(15); // miss 1
    s.at(20); // ring again
    s.at(35); // miss 2
    s.at(40);
    assert_eq!(s.acd.agent("a").unwrap().missed_in_row, 2);
    s.answer(1, "a");
    assert_eq!(s.acd.agent("a").unwrap().missed_in_row, 0);
    s.ok(Input::Ended { call: c(1) });
    s.ok(Input::EndWrapUp { agent: "a".into() });
    s.enqueue(2, "q", 0);
    s.take();
    s.at(100); // 15 s + 5 s per cycle: three misses by now
    let ev = s.events();
    assert!(ev.contains(&AcdEvent::AgentState {
        agent: "a".into(),
        state: AgentState::Paused,
        reason: Some(NO_ANSWER_REASON.into())
    }));
    let v = s.acd.agent("a").unwrap();
    assert_eq!(v.state, AgentState::Paused);
    assert_eq!(v.paused_reason.as_deref(), Some("no answer"));
    assert_eq!(v.missed_in_row, 3);
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, AcdEvent::NoAnswer { .. }))
            .count(),
        3
    );
    // Unpause resets the counter and takes the call again.
    s.ok(Input::Unpause { agent: "a".into() });
    assert_eq!(s.acd.agent("a").unwrap().missed_in_row, 0);
    assert_eq!(s.rings(), vec![ring(2, "a")]);
}

#[test]
fn ring_failed_counts_like_a_no_answer() {
    let mut cfg = config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    );
    cfg.no_answer_limit = 1;
    let mut s = Sim::new(cfg);
    s.login("a");
    s.login("b");
    s.enqueue(1, "q", 0);
    s.take();
    s.at(3);
    s.ok(Input::RingFailed {
        call: c(1),
        agent: "a".into(),
    });
    let out = s.take();
    assert!(!out.iter().any(|o| matches!(o, Output::CancelRing { .. })));
    assert!(out.contains(&Output::Event(AcdEvent::NoAnswer {
        call: c(1),
        agent: "a".into(),
        rang: secs(3)
    })));
    assert_eq!(s.state("a"), AgentState::Paused);
    assert_eq!(
        s.acd.call(c(1)).unwrap().phase,
        CallPhase::Ringing { agent: "b".into() }
    );
    // A stale failure is refused and changes nothing.
    assert_eq!(
        s.input(Input::RingFailed {
            call: c(1),
            agent: "a".into()
        }),
        Err(AcdError::NotRinging {
            call: c(1),
            agent: "a".into()
        })
    );
}

#[test]
fn wrap_up_follows_the_queue_the_call_came_from() {
    let mut long = queue("long");
    long.wrap_up = secs(120);
    let mut short = queue("short");
    short.wrap_up = secs(10);
    let mut s = Sim::new(config(
        vec![long, short],
        vec![agent("a", &[("long", 1), ("short", 1)])],
    ));
    s.login("a");
    s.enqueue(1, "short", 0);
    s.answer(1, "a");
    s.at(60);
    s.take();
    s.ok(Input::Ended { call: c(1) });
    assert_eq!(
        s.events(),
        vec![
            AcdEvent::Ended {
                call: c(1),
                agent: "a".into(),
                talk: secs(60)
            },
            AcdEvent::AgentState {
                agent: "a".into(),
                state: AgentState::WrapUp,
                reason: None
            },
        ]
    );
    assert_eq!(s.acd.agent("a").unwrap().queue.as_deref(), Some("short"));
    assert_eq!(s.acd.poll_timeout(), Some(s.t0 + secs(70)));
    s.at(70);
    assert_eq!(s.state("a"), AgentState::Available);
    assert_eq!(s.acd.agent("a").unwrap().idle_since, Some(s.t0 + secs(70)));
    // From the long queue: 120 s, ended early by EndWrapUp.
    s.enqueue(2, "long", 0);
    s.answer(2, "a");
    s.ok(Input::Ended { call: c(2) });
    s.at(100);
    assert_eq!(s.state("a"), AgentState::WrapUp);
    s.ok(Input::EndWrapUp { agent: "a".into() });
    assert_eq!(s.state("a"), AgentState::Available);
    assert_eq!(s.acd.poll_timeout(), None, "the wrap-up timer is gone");
    assert!(matches!(
        s.input(Input::EndWrapUp { agent: "a".into() }),
        Err(AcdError::WrongState { .. })
    ));
}

#[test]
fn pause_limit_logs_the_agent_out() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.login("a");
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "sparring".into(),
    });
    s.at(3600);
    // A new reason keeps the pause running.
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "break".into(),
    });
    s.take();
    s.at(7199);
    assert_eq!(s.state("a"), AgentState::Paused);
    s.at(7200);
    assert_eq!(
        s.events(),
        vec![
            AcdEvent::PauseLimitReached { agent: "a".into() },
            AcdEvent::AgentState {
                agent: "a".into(),
                state: AgentState::LoggedOut,
                reason: None
            }
        ]
    );
    // Unpause before the limit: no logout later.
    s.login("a");
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "x".into(),
    });
    s.at(8000);
    s.ok(Input::Unpause { agent: "a".into() });
    assert_eq!(s.acd.poll_timeout(), None);
    s.at(20_000);
    assert_eq!(s.state("a"), AgentState::Available);
}

#[test]
fn logout_and_pause_while_talking_wait_for_the_call_to_end() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.login("b");
    s.enqueue(1, "q", 0);
    s.enqueue(2, "q", 0);
    s.answer(1, "a");
    s.answer(2, "b");
    s.ok(Input::Logout { agent: "a".into() });
    s.ok(Input::Pause {
        agent: "b".into(),
        reason: "lunch".into(),
    });
    assert_eq!(s.state("a"), AgentState::Talking);
    assert!(s.acd.agent("a").unwrap().logout_pending);
    assert_eq!(
        s.acd.agent("b").unwrap().pause_pending.as_deref(),
        Some("lunch")
    );
    s.ok(Input::Ended { call: c(1) });
    s.ok(Input::Ended { call: c(2) });
    assert_eq!(s.state("a"), AgentState::LoggedOut);
    let b = s.acd.agent("b").unwrap();
    assert_eq!(b.state, AgentState::Paused);
    assert_eq!(b.paused_reason.as_deref(), Some("lunch"));
    assert!(b.queues.contains(&"q".to_owned()));
    assert!(s.acd.agent("a").unwrap().queues.is_empty());
}

#[test]
fn abandon_while_ringing_cancels_the_ring() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.enqueue(1, "q", 0);
    s.at(1);
    s.enqueue(2, "q", 0);
    s.at(40);
    s.login("a");
    assert_eq!(s.rings(), vec![ring(1, "a")]);
    s.at(45);
    s.ok(Input::Abandon { call: c(2) });
    assert_eq!(
        s.events(),
        vec![AcdEvent::Abandoned {
            call: c(2),
            queue: "q".into(),
            wait: secs(44),
            position: 2
        }]
    );
    s.ok(Input::Abandon { call: c(1) });
    let out = s.take();
    assert_eq!(
        out[0],
        Output::CancelRing {
            call: c(1),
            agent: "a".into()
        }
    );
    assert!(out.contains(&Output::Event(AcdEvent::Abandoned {
        call: c(1),
        queue: "q".into(),
        wait: secs(45),
        position: 1
    })));
    assert_eq!(s.state("a"), AgentState::Available);
    assert_eq!(s.acd.agent("a").unwrap().missed_in_row, 0);
    assert_eq!(s.acd.poll_timeout(), None, "the ring timer is gone");
    assert_eq!(
        s.input(Input::Abandon { call: c(1) }),
        Err(AcdError::UnknownCall { call: c(1) })
    );
    assert_eq!(s.acd.queue("q").unwrap().waiting, vec![]);
}

#[test]
fn requeue_transfers_to_another_queue_at_the_head() {
    let mut s = Sim::new(config(
        vec![queue("a"), queue("b")],
        vec![agent("x", &[("a", 1)]), agent("y", &[("b", 1)])],
    ));
    s.login("x");
    s.enqueue(1, "a", 0);
    s.answer(1, "x");
    s.enqueue(2, "b", 9);
    s.enqueue(3, "b", 0);
    s.at(30);
    s.take();
    s.ok(Input::Requeue {
        call: c(1),
        queue: "b".into(),
        at_head: true,
    });
    let ev = s.events();
    assert!(ev.contains(&AcdEvent::Ended {
        call: c(1),
        agent: "x".into(),
        talk: secs(30)
    }));
    assert!(ev.contains(&AcdEvent::Entered {
        call: c(1),
        queue: "b".into(),
        topic: "topic-a".into(),
        priority: 0
    }));
    assert_eq!(s.state("x"), AgentState::WrapUp);
    assert_eq!(s.acd.queue("b").unwrap().waiting, vec![c(1), c(2), c(3)]);
    let v = s.acd.call(c(1)).unwrap();
    assert_eq!((v.queue.as_str(), v.entered, v.at_head), ("b", s.now, true));
    s.login("y");
    assert_eq!(s.rings(), vec![ring(1, "y")]);
    assert!(matches!(
        s.input(Input::Requeue {
            call: c(2),
            queue: "nope".into(),
            at_head: false
        }),
        Err(AcdError::UnknownQueue { .. })
    ));
}

#[test]
fn requeue_of_a_ringing_call_cancels_the_ring_without_a_miss() {
    let mut s = Sim::new(config(
        vec![queue("a"), queue("b")],
        vec![agent("x", &[("a", 1)])],
    ));
    s.login("x");
    s.enqueue(1, "a", 0);
    s.take();
    s.ok(Input::Requeue {
        call: c(1),
        queue: "b".into(),
        at_head: false,
    });
    let out = s.take();
    assert_eq!(
        out[0],
        Output::CancelRing {
            call: c(1),
            agent: "x".into()
        }
    );
    assert_eq!(s.state("x"), AgentState::Available);
    assert_eq!(s.acd.agent("x").unwrap().missed_in_row, 0);
    assert_eq!(s.acd.position(c(1)), Some((1, 1)));
    assert_eq!(s.acd.queue("a").unwrap().waiting, vec![]);
}

#[test]
fn released_call_gives_wrap_up_and_can_come_back() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("x", &[("q", 1)]), agent("y", &[("q", 1)])],
    ));
    s.login("x");
    s.enqueue(1, "q", 0);
    s.answer(1, "x");
    s.enqueue(2, "q", 0);
    s.at(10);
    s.take();
    s.ok(Input::Released { call: c(1) });
    assert!(s.events().contains(&AcdEvent::Ended {
        call: c(1),
        agent: "x".into(),
        talk: secs(10)
    }));
    assert_eq!(s.state("x"), AgentState::WrapUp);
    assert_eq!(s.acd.call(c(1)).unwrap().phase, CallPhase::Released);
    assert_eq!(s.acd.position(c(1)), None);
    // The transfer failed and x is gone: back at the head of the queue.
    s.ok(Input::Requeue {
        call: c(1),
        queue: "q".into(),
        at_head: true,
    });
    assert_eq!(s.acd.position(c(1)), Some((1, 2)));
    s.login("y");
    assert_eq!(s.rings(), vec![ring(1, "y")]);
    // Released, then ended: forgotten without an agent event.
    s.answer(1, "y");
    s.ok(Input::Released { call: c(1) });
    s.take();
    s.ok(Input::Ended { call: c(1) });
    assert!(s.take().is_empty());
    assert!(s.acd.call(c(1)).is_none());
    assert_eq!(
        s.input(Input::Released { call: c(2) }),
        Err(AcdError::NotTalking { call: c(2) })
    );
}

#[test]
fn stale_or_unknown_inputs_are_refused_without_change() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.login("a");
    s.enqueue(1, "q", 0);
    s.at(15); // the ring timed out
    s.take();
    assert_eq!(
        s.input(Input::RingAnswered {
            call: c(1),
            agent: "a".into()
        }),
        Err(AcdError::NotRinging {
            call: c(1),
            agent: "a".into()
        })
    );
    assert_eq!(
        s.input(Input::Login { agent: "zz".into() }),
        Err(AcdError::UnknownAgent { agent: "zz".into() })
    );
    assert_eq!(
        s.input(Input::Enqueue {
            call: c(1),
            queue: "q".into(),
            topic: String::new(),
            priority: 0
        }),
        Err(AcdError::DuplicateCall { call: c(1) })
    );
    assert_eq!(
        s.input(Input::Enqueue {
            call: c(2),
            queue: "x".into(),
            topic: String::new(),
            priority: 0
        }),
        Err(AcdError::UnknownQueue { queue: "x".into() })
    );
    assert_eq!(
        s.input(Input::Ended { call: c(9) }),
        Err(AcdError::UnknownCall { call: c(9) })
    );
    assert!(s.take().is_empty());
    // Time going backwards is treated as "still now".
    let earlier = s.t0;
    s.acd.handle_timeout(earlier);
    assert!(s.acd.poll_output().is_none());
}

#[test]
fn unreachable_mid_ring_cancels_without_a_miss() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.at(1);
    s.login("b");
    s.enqueue(1, "q", 0);
    s.take();
    s.ok(Input::Reachable {
        agent: "a".into(),
        reachable: false,
    });
    let out = s.take();
    assert_eq!(
        out[0],
        Output::CancelRing {
            call: c(1),
            agent: "a".into()
        }
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Ring { agent, .. } if agent == "b")));
    let a = s.acd.agent("a").unwrap();
    assert_eq!(
        (a.state, a.reachable, a.missed_in_row),
        (AgentState::Available, false, 0)
    );
}

#[test]
fn pause_while_ringing_cancels_and_pause_in_wrap_up_ends_it() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.login("a");
    s.enqueue(1, "q", 0);
    s.take();
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "coffee".into(),
    });
    assert_eq!(
        s.take()[0],
        Output::CancelRing {
            call: c(1),
            agent: "a".into()
        }
    );
    assert_eq!(s.acd.call(c(1)).unwrap().phase, CallPhase::Waiting);
    s.ok(Input::Unpause { agent: "a".into() });
    s.answer(1, "a");
    s.ok(Input::Ended { call: c(1) });
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "more after-call work".into(),
    });
    assert_eq!(s.state("a"), AgentState::Paused);
    s.at(300);
    assert_eq!(
        s.state("a"),
        AgentState::Paused,
        "the wrap-up timer does not unpause"
    );
}

#[test]
fn reload_keeps_live_state_and_applies_changes() {
    let mut s = Sim::new(config(
        vec![queue("a"), queue("b")],
        vec![
            agent("x", &[("a", 1)]),
            agent("y", &[("a", 1)]),
            agent("z", &[("a", 1)]),
        ],
    ));
    s.login("x");
    s.login("y");
    s.login("z");
    s.enqueue(1, "a", 0);
    s.answer(1, "x");
    s.take();
    s.enqueue(2, "b", 0);
    s.enqueue(3, "a", 0);
    assert_eq!(s.rings(), vec![ring(3, "y")]);
    // Reload: x keeps talking but is removed; y removed while ringing; z gets skill b; new w.
    let mut b = queue("b");
    b.wrap_up = secs(5);
    let new = config(
        vec![queue("a"), b],
        vec![agent("z", &[("b", 1), ("a", 2)]), agent("w", &[("a", 1)])],
    );
    s.acd.set_config(s.now, new);
    s.drain();
    let out = s.take();
    assert!(out.contains(&Output::CancelRing {
        call: c(3),
        agent: "y".into()
    }));
    assert!(out.contains(&Output::Ring {
        call: c(2),
        agent: "z".into(),
        queue: "b".into(),
        wait: Duration::ZERO,
        topic: "topic-b".into()
    }));
    assert!(s.acd.agent("y").is_none());
    assert_eq!(s.state("x"), AgentState::Talking);
    assert_eq!(s.state("w"), AgentState::LoggedOut);
    s.ok(Input::Ended { call: c(1) });
    assert!(s.acd.agent("x").is_none());
    assert_eq!(s.acd.agents().count(), 2);
    // Call 3 waits for w, or for z at level 2.
    s.login("w");
    assert_eq!(s.rings(), vec![ring(3, "w")]);
    let qa = s.acd.queue("a").unwrap();
    // z rings for queue b and is counted in every queue of its skills.
    assert_eq!((qa.agents.ringing, qa.agents.logged_in()), (2, 2));
    // A removed queue keeps its calls but takes no new ones.
    s.enqueue(4, "b", 0);
    s.acd.set_config(
        s.now,
        config(
            vec![queue("a")],
            vec![agent("z", &[("a", 1)]), agent("w", &[("a", 1)])],
        ),
    );
    s.drain();
    assert!(s
        .acd
        .queues()
        .any(|q| q.name == "b" && !q.configured && q.waiting == vec![c(2), c(4)]));
    assert!(matches!(
        s.input(Input::Enqueue {
            call: c(5),
            queue: "b".into(),
            topic: String::new(),
            priority: 0
        }),
        Err(AcdError::UnknownQueue { .. })
    ));
}

#[test]
fn expected_wait_from_moving_average_of_handle_times() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.enqueue(1, "q", 0);
    assert_eq!(s.acd.expected_wait(s.now, c(1)), None, "nobody logged in");
    s.login("a");
    s.login("b");
    s.ok(Input::Pause {
        agent: "a".into(),
        reason: "x".into(),
    });
    s.ok(Input::Pause {
        agent: "b".into(),
        reason: "x".into(),
    });
    s.enqueue(2, "q", 0);
    assert_eq!(s.acd.expected_wait(s.now, c(1)), None, "all paused");
    s.ok(Input::Unpause { agent: "a".into() });
    assert_eq!(
        s.acd.expected_wait(s.now, c(1)),
        Some(Duration::ZERO),
        "ringing"
    );
    // Default before data: (180 s talk + 120 s wrap-up) per call, 1 agent, position 1.
    assert_eq!(s.acd.expected_wait(s.now, c(2)), Some(secs(300)));
    // Handle call 1: 60 s talk + 40 s wrap-up = 100 s.
    s.answer(1, "a");
    s.at(60);
    s.ok(Input::Ended { call: c(1) });
    s.at(100);
    s.ok(Input::EndWrapUp { agent: "a".into() });
    assert_eq!(s.acd.queue("q").unwrap().average_handle, Some(secs(100)));
    s.ok(Input::Unpause { agent: "b".into() });
    s.enqueue(3, "q", 0);
    s.enqueue(4, "q", 0);
    // Calls 2 and 3 ring; call 4 is next: 100 s / 2 agents.
    assert_eq!(s.acd.position(c(4)), Some((3, 3)));
    assert_eq!(s.acd.expected_wait(s.now, c(4)), Some(secs(50)));
    assert_eq!(s.acd.expected_wait(s.now, c(99)), None);
}

#[test]
fn views_show_the_live_state() {
    let mut s = Sim::new(config(
        vec![queue("q"), queue("r")],
        vec![agent("a", &[("q", 1), ("r", 2)])],
    ));
    let a = s.acd.agent("a").unwrap();
    assert_eq!(
        (a.state, a.since, a.queues.len()),
        (AgentState::LoggedOut, None, 0)
    );
    s.at(7);
    s.login("a");
    s.enqueue(1, "q", 4);
    let a = s.acd.agent("a").unwrap();
    assert_eq!(a.display_name, "A");
    assert_eq!(a.state, AgentState::Ringing);
    assert_eq!(a.since, Some(s.t0 + secs(7)));
    assert_eq!(a.call, Some(c(1)));
    assert_eq!(a.queue.as_deref(), Some("q"));
    assert_eq!(a.queues, vec!["q".to_owned(), "r".to_owned()]);
    let call = s.acd.call(c(1)).unwrap();
    assert_eq!(call.topic, "topic-q");
    assert_eq!(call.priority, 4);
    assert_eq!(call.entered, s.t0 + secs(7));
    assert_eq!(call.phase, CallPhase::Ringing { agent: "a".into() });
    s.answer(1, "a");
    assert_eq!(
        s.acd.call(c(1)).unwrap().phase,
        CallPhase::Talking { agent: "a".into() }
    );
    let names: Vec<_> = s
        .acd
        .queues()
        .map(|q| (q.name, q.display, q.agents.talking))
        .collect();
    assert_eq!(
        names,
        vec![("q".into(), "Q".into(), 1), ("r".into(), "R".into(), 1)]
    );
    assert_eq!(s.acd.agents().count(), 1);
    assert!(s.acd.queue("nope").is_none());
}

#[test]
fn hours_of_timers_run_through_the_heap() {
    // 50 agents, 10 calls a minute for 8 hours; every seventh call is never answered (the flow
    // takes it back after 60 s), the rest are answered at once and talk for 3 minutes. Time
    // jumps from deadline to deadline.
    let agents: Vec<_> = (0..50)
        .map(|i| agent(&format!("a{i}"), &[("q", 1)]))
        .collect();
    let mut s = Sim::new(config(vec![queue("q")], agents));
    for i in 0..50 {
        s.login(&format!("a{i}"));
    }
    let mut next_call = 0u64;
    let mut answered = 0u32;
    let mut hangups: std::collections::BTreeMap<Instant, Vec<CallId>> = Default::default();
    let end = s.t0 + secs(8 * 3600);
    let mut next_minute = s.t0;
    while s.now < end {
        let next = [
            s.acd.poll_timeout(),
            hangups.keys().next().copied(),
            Some(next_minute),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap();
        assert!(next >= s.now, "deadlines never lie in the past");
        s.now = next;
        s.acd.handle_timeout(s.now);
        s.drain();
        if let Some(calls) = hangups.remove(&s.now) {
            for call in calls {
                if call.get().is_multiple_of(7) {
                    s.ok(Input::Abandon { call });
                } else {
                    s.ok(Input::Ended { call });
                }
            }
        }
        if s.now == next_minute {
            for _ in 0..10 {
                next_call += 1;
                s.enqueue(next_call, "q", (next_call % 3) as u8);
                if next_call.is_multiple_of(7) {
                    hangups
                        .entry(s.now + secs(60))
                        .or_default()
                        .push(c(next_call));
                }
            }
            next_minute += secs(60);
        }
        // Answer rings at once, which can produce no new rings.
        for o in s.take() {
            if let Output::Ring { call, agent, .. } = o {
                if !call.get().is_multiple_of(7) {
                    s.answer(call.get(), &agent);
                    answered += 1;
                    hangups.entry(s.now + secs(180)).or_default().push(call);
                }
            }
        }
    }
    // Capacity: 50 agents × 8 h / (180 s talk + 120 s wrap-up) = 4,800 calls, less the rings
    // of the unanswerable ones; 4,114 answerable calls are offered.
    assert!(answered > 3500, "{answered}");
}

/// A long random run: the invariants hold after every step and nothing panics.
#[test]
fn random_inputs_keep_the_invariants() {
    let queues = vec![queue("a"), queue("b"), queue("c")];
    let agents: Vec<_> = (0..12)
        .map(|i| {
            let q = ["a", "b", "c"][i % 3];
            let q2 = ["b", "c", "a"][i % 3];
            agent(&format!("g{i}"), &[(q, 1), (q2, 1 + (i % 3) as u8)])
        })
        .collect();
    let mut s = Sim::new(config(queues, agents));
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut secs_now = 0;
    for step in 0..20_000u64 {
        let r = next();
        if step % 500 == 499 {
            // Reload: one agent left out, the others' levels shuffled, queue c in and out.
            let mut queues = vec![queue("a"), queue("b")];
            if step % 1000 == 499 {
                queues.push(queue("c"));
            }
            let agents: Vec<_> = (0..12u64)
                .filter(|&i| i != (r % 12))
                .map(|i| {
                    let q = ["a", "b", "c"][(i % 3) as usize];
                    let q2 = ["b", "c", "a"][(i % 3) as usize];
                    agent(&format!("g{i}"), &[(q, 1 + ((r >> i) % 2) as u8), (q2, 2)])
                })
                .collect();
            s.acd.set_config(s.now, config(queues, agents));
            s.drain();
            s.acd.assert_invariants(s.now);
        }
        let agent = format!("g{}", r % 14); // two unknown agents
        let call = c((r >> 8) % 60);
        let input = match (r >> 16) % 14 {
            0 => Input::Login { agent },
            1 => Input::Logout { agent },
            2 => Input::Pause {
                agent,
                reason: "r".into(),
            },
            3 => Input::Unpause { agent },
            4 => Input::EndWrapUp { agent },
            5 => Input::Reachable {
                agent,
                reachable: r & 1 == 0,
            },
            6 | 7 => Input::Enqueue {
                call,
                queue: ["a", "b", "c", "d"][((r >> 24) % 4) as usize].into(),
                topic: "t".into(),
                priority: ((r >> 28) % 12) as u8,
            },
            8 => Input::Abandon { call },
            9 | 10 => match s.acd.call(call).map(|v| v.phase) {
                Some(CallPhase::Ringing { agent }) => Input::RingAnswered { call, agent },
                _ => Input::RingAnswered { call, agent },
            },
            11 => Input::Ended { call },
            12 => Input::Requeue {
                call,
                queue: ["a", "b", "c"][((r >> 24) % 3) as usize].into(),
                at_head: r & 2 == 0,
            },
            _ => Input::Released { call },
        };
        let _ = s.input(input);
        secs_now += (r >> 40) % 20;
        s.at(secs_now);
        s.take();
        s.acd.assert_invariants(s.now);
        // Invariants.
        let mut ringing_calls = std::collections::HashSet::new();
        for a in s.acd.agents() {
            match a.state {
                AgentState::Ringing => {
                    let call = a.call.unwrap();
                    assert!(ringing_calls.insert(call), "one ring per call");
                    assert_eq!(
                        s.acd.call(call).unwrap().phase,
                        CallPhase::Ringing {
                            agent: a.id.clone()
                        }
                    );
                }
                AgentState::Talking => {
                    let call = a.call.unwrap();
                    assert_eq!(
                        s.acd.call(call).unwrap().phase,
                        CallPhase::Talking {
                            agent: a.id.clone()
                        }
                    );
                }
                _ => {}
            }
        }
        let mut waiting = 0;
        for q in s.acd.queues() {
            waiting += q.waiting.len();
            assert!(q.agents.logged_in() + q.agents.logged_out <= 8);
        }
        assert!(waiting <= 60);
        if let Some(t) = s.acd.poll_timeout() {
            assert!(t > s.now);
        }
    }
}

#[test]
fn a_busy_agent_is_not_offered_calls_until_free() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.at(1);
    s.login("b");
    // a is on a colleague's consult call: b rings although a has been idle longer.
    s.ok(Input::Busy {
        agent: "a".into(),
        busy: true,
    });
    s.take();
    s.enqueue(1, "q", 0);
    assert_eq!(s.rings(), vec![ring(1, "b")]);
    s.enqueue(2, "q", 0);
    assert_eq!(s.rings(), vec![], "a busy agent rang");
    assert_eq!(s.state("a"), AgentState::Available);
    s.ok(Input::Busy {
        agent: "a".into(),
        busy: false,
    });
    assert_eq!(s.rings(), vec![ring(2, "a")]);
}

#[test]
fn a_transfer_to_a_colleague_moves_the_call_and_wraps_up_the_first_agent() {
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.at(1);
    s.login("b");
    s.enqueue(1, "q", 0);
    assert_eq!(s.rings(), vec![ring(1, "a")]);
    s.answer(1, "a");
    s.at(30);
    s.take();
    s.ok(Input::Transferred {
        call: c(1),
        agent: "b".into(),
    });
    let ev = s.events();
    assert!(ev.contains(&AcdEvent::Ended {
        call: c(1),
        agent: "a".into(),
        talk: secs(29)
    }));
    assert_eq!(s.state("a"), AgentState::WrapUp);
    assert_eq!(s.state("b"), AgentState::Talking);
    assert_eq!(s.acd.agent("b").unwrap().call, Some(c(1)));
    // The call ends with b: b gets the wrap-up.
    s.at(60);
    s.take();
    s.ok(Input::Ended { call: c(1) });
    assert!(s.events().contains(&AcdEvent::Ended {
        call: c(1),
        agent: "b".into(),
        talk: secs(30)
    }));
    assert_eq!(s.state("b"), AgentState::WrapUp);
    // A transfer to a logged-out colleague releases the call from the queues' view.
    let mut s = Sim::new(config(
        vec![queue("q")],
        vec![agent("a", &[("q", 1)]), agent("b", &[("q", 1)])],
    ));
    s.login("a");
    s.enqueue(1, "q", 0);
    s.answer(1, "a");
    s.ok(Input::Transferred {
        call: c(1),
        agent: "b".into(),
    });
    assert_eq!(s.state("b"), AgentState::LoggedOut);
    assert_eq!(s.state("a"), AgentState::WrapUp);
    s.ok(Input::Ended { call: c(1) });
    assert!(s.acd.call(c(1)).is_none());
}

#[test]
fn max_wait_is_not_an_abandon() {
    let mut s = Sim::new(config(vec![queue("q")], vec![agent("a", &[("q", 1)])]));
    s.enqueue(1, "q", 0);
    s.at(600);
    s.take();
    s.ok(Input::MaxWait { call: c(1) });
    assert_eq!(
        s.events(),
        vec![AcdEvent::MaxWait {
            call: c(1),
            queue: "q".into(),
            wait: secs(600)
        }]
    );
    assert!(s.acd.call(c(1)).is_none());
    assert!(s.acd.queue("q").unwrap().waiting.is_empty());
}
