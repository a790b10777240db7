//! Role-filtered views of a [`Snapshot`].

use std::collections::BTreeMap;

use crate::auth::Caller;
use crate::model::{LiveView, MyCall, QueueFigures, QueueSummary, Snapshot};
use crate::routes::{SEE_AGENTS, SEE_CALLS, TAKE_CALLS};

/// Every queue's load, with today's figures when given.
pub(crate) fn queues(
    snapshot: &Snapshot,
    today: Option<&BTreeMap<String, QueueFigures>>,
) -> Vec<QueueSummary> {
    snapshot
        .queues
        .iter()
        .map(|q| QueueSummary {
            name: q.name.clone(),
            display: q.display.clone(),
            waiting: q.waiting,
            longest_wait_s: q.longest_wait_s,
            agents: q.agents.clone(),
            today: today.map(|t| t.get(&q.name).cloned().unwrap_or_default()),
        })
        .collect()
}

/// The call `login` is ringing for or talking on, with its CPR number: the only place the
/// digits leave the SIP loop.
pub(crate) fn my_call(snapshot: &Snapshot, login: &str) -> Option<MyCall> {
    let call = snapshot.calls.iter().find(|c| {
        c.agent.as_deref() == Some(login) && matches!(c.phase.as_str(), "ringing" | "talking")
    })?;
    Some(MyCall {
        id: call.id.clone(),
        phase: call.phase.clone(),
        queue: call.queue.clone(),
        topic: call.topic.clone(),
        waited_s: call.waited_s,
        consent: call.consent,
        recording: call.recording,
        cpr: call.cpr.as_ref().map(kald_core::Cpr::expose_dashed),
    })
}

/// The push channel's event for `caller`.
pub(crate) fn live(
    snapshot: &Snapshot,
    caller: &Caller,
    today: Option<&BTreeMap<String, QueueFigures>>,
) -> LiveView {
    let takes_calls = TAKE_CALLS.contains(&caller.role);
    LiveView {
        at: snapshot.at,
        me: takes_calls
            .then(|| {
                snapshot
                    .agents
                    .iter()
                    .find(|a| a.login == caller.login)
                    .cloned()
            })
            .flatten(),
        call: takes_calls
            .then(|| my_call(snapshot, &caller.login))
            .flatten(),
        queues: queues(snapshot, today.filter(|_| SEE_CALLS.contains(&caller.role))),
        agents: SEE_AGENTS
            .contains(&caller.role)
            .then(|| snapshot.agents.clone()),
        calls: SEE_CALLS
            .contains(&caller.role)
            .then(|| snapshot.calls.clone()),
    }
}
