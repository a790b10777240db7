//! Configuration of the ACD: queues (one per skill), agents and their skills, limits.

use std::collections::HashSet;
use std::time::Duration;

/// Everything the ACD is configured with; reloadable with [`crate::Acd::set_config`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcdConfig {
    /// The queues, one per skill, in display order.
    pub queues: Vec<QueueConfig>,
    /// The agents who may log in, in display order.
    pub agents: Vec<AgentConfig>,
    /// Missed rings in a row after which an agent is paused with reason "no answer" (0: never).
    pub no_answer_limit: u32,
    /// How long an agent may stay paused before being logged out.
    pub pause_limit: Duration,
}

impl Default for AcdConfig {
    fn default() -> Self {
        Self {
            queues: Vec::new(),
            agents: Vec::new(),
            no_answer_limit: 3,
            pause_limit: Duration::from_secs(2 * 60 * 60),
        }
    }
}

/// One queue: the calls waiting for one skill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    /// The skill id, e.g. `sygedagpenge`; what [`Skill::queue`] and enqueue inputs name.
    pub name: String,
    /// The name shown on the wallboard, e.g. `Sygedagpenge`.
    pub display: String,
    /// After-call work given to an agent after a call from this queue.
    pub wrap_up: Duration,
    /// How long one agent's phone rings before the call tries the next agent.
    pub ring_timeout: Duration,
    /// Wait after which level 2 agents are offered a call (level n after (n-1) × this).
    pub secondary_after: Duration,
}

impl QueueConfig {
    /// A queue with the given skill id and display name and the default timings.
    pub fn new(name: impl Into<String>, display: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            display: display.into(),
            ..Self::default()
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            display: String::new(),
            wrap_up: Duration::from_secs(120),
            ring_timeout: Duration::from_secs(15),
            secondary_after: Duration::from_secs(30),
        }
    }
}

/// One agent who may log in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentConfig {
    /// The login id.
    pub id: String,
    /// The name shown on the wallboard.
    pub display_name: String,
    /// The queues the agent serves and at which level.
    pub skills: Vec<Skill>,
}

impl AgentConfig {
    /// An agent with the given login, display name and skills.
    pub fn new(id: impl Into<String>, display_name: impl Into<String>, skills: Vec<Skill>) -> Self {
        Self {
            id: id.into(),
            display_name: display_name.into(),
            skills,
        }
    }
}

/// An agent's skill: a queue and how early the agent is offered its calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skill {
    /// The queue's [`QueueConfig::name`].
    pub queue: String,
    /// 1 = primary (offered at once), 2.. = secondary (offered after (level-1) × secondary_after).
    pub level: u8,
}

impl Skill {
    /// A skill for `queue` at `level`.
    pub fn new(queue: impl Into<String>, level: u8) -> Self {
        Self {
            queue: queue.into(),
            level,
        }
    }
}

/// Why an [`AcdConfig`] is inconsistent; see [`AcdConfig::validate`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Two queues share a name.
    #[error("queue `{queue}` is configured twice")]
    DuplicateQueue {
        /// The queue name.
        queue: String,
    },
    /// Two agents share a login.
    #[error("agent `{agent}` is configured twice")]
    DuplicateAgent {
        /// The agent login.
        agent: String,
    },
    /// A skill names a queue that is not configured.
    #[error("agent `{agent}` has a skill for unknown queue `{queue}`")]
    UnknownQueue {
        /// The agent login.
        agent: String,
        /// The unknown queue name.
        queue: String,
    },
    /// A skill has level 0 (levels start at 1).
    #[error("agent `{agent}` has level 0 for queue `{queue}` (levels start at 1)")]
    ZeroLevel {
        /// The agent login.
        agent: String,
        /// The queue name.
        queue: String,
    },
    /// An agent has two skills for the same queue.
    #[error("agent `{agent}` has two skills for queue `{queue}`")]
    DuplicateSkill {
        /// The agent login.
        agent: String,
        /// The queue name.
        queue: String,
    },
}

impl AcdConfig {
    /// Checks the configuration; the loader should reject an invalid one.
    ///
    /// [`crate::Acd`] itself tolerates an invalid configuration: the first of duplicate queues
    /// or agents wins, skills for unknown queues are ignored, level 0 counts as 1, and of two
    /// skills for one queue the lower level wins.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut queues = HashSet::new();
        for q in &self.queues {
            if !queues.insert(q.name.as_str()) {
                return Err(ConfigError::DuplicateQueue {
                    queue: q.name.clone(),
                });
            }
        }
        let mut agents = HashSet::new();
        for a in &self.agents {
            if !agents.insert(a.id.as_str()) {
                return Err(ConfigError::DuplicateAgent {
                    agent: a.id.clone(),
                });
            }
            let mut skills = HashSet::new();
            for s in &a.skills {
                let err = if !queues.contains(s.queue.as_str()) {
                    ConfigError::UnknownQueue {
                        agent: a.id.clone(),
                        queue: s.queue.clone(),
                    }
                } else if s.level == 0 {
                    ConfigError::ZeroLevel {
                        agent: a.id.clone(),
                        queue: s.queue.clone(),
                    }
                } else if !skills.insert(s.queue.as_str()) {
                    ConfigError::DuplicateSkill {
                        agent: a.id.clone(),
                        queue: s.queue.clone(),
                    }
                } else {
                    continue;
                };
                return Err(err);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_domain() {
        let c = AcdConfig::default();
        assert_eq!(c.no_answer_limit, 3);
        assert_eq!(c.pause_limit, Duration::from_secs(7200));
        let q = QueueConfig::new("sygedagpenge", "Sygedagpenge");
        assert_eq!(q.wrap_up, Duration::from_secs(120));
        assert_eq!(q.ring_timeout, Duration::from_secs(15));
        assert_eq!(q.secondary_after, Duration::from_secs(30));
    }

    #[test]
    fn validate_finds_each_mistake() {
        let mut c = AcdConfig {
            queues: vec![QueueConfig::new("a", "A"), QueueConfig::new("b", "B")],
            agents: vec![AgentConfig::new("x", "X", vec![Skill::new("a", 1)])],
            ..AcdConfig::default()
        };
        assert_eq!(c.validate(), Ok(()));
        c.agents[0].skills.push(Skill::new("c", 1));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::UnknownQueue { .. })
        ));
        c.agents[0].skills[1] = Skill::new("b", 0);
        assert!(matches!(c.validate(), Err(ConfigError::ZeroLevel { .. })));
        c.agents[0].skills[1] = Skill::new("a", 2);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateSkill { .. })
        ));
        c.agents[0].skills.pop();
        c.agents.push(AgentConfig::new("x", "X2", vec![]));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateAgent { .. })
        ));
        c.agents.pop();
        c.queues.push(QueueConfig::new("a", "A2"));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateQueue { .. })
        ));
    }
}
