-- kald's schema for SQLite. Keep in step with migrations/postgres/0001_init.sql: the same
-- tables, columns and meaning; only the types differ (INTEGER/BLOB here, BIGINT/BYTEA there).
-- Timestamps are microseconds since 1970-01-01 UTC (columns ending in _us).

-- Agents and their skills (queue name and level, 0..=255).
CREATE TABLE agents (
    id           TEXT PRIMARY KEY NOT NULL,
    display_name TEXT NOT NULL
);

CREATE TABLE agent_skills (
    agent_id TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    queue    TEXT NOT NULL,
    level    INTEGER NOT NULL CHECK (level BETWEEN 0 AND 255),
    PRIMARY KEY (agent_id, queue)
);

-- The latest state of each agent (logged in, paused with a reason, …), for restarts.
CREATE TABLE agent_states (
    agent_id TEXT PRIMARY KEY NOT NULL,
    state    TEXT NOT NULL,
    reason   TEXT,
    since_us INTEGER NOT NULL
);

-- Every step of every queued call, like Asterisk's queue_log; statistics come from here.
CREATE TABLE queue_events (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us    INTEGER NOT NULL,
    call_id  TEXT NOT NULL,
    queue    TEXT,
    agent_id TEXT,
    event    TEXT NOT NULL,
    data     TEXT NOT NULL
);
CREATE INDEX queue_events_at ON queue_events (at_us);
CREATE INDEX queue_events_call ON queue_events (call_id);

-- One row per call. cpr_sealed holds only CprKeys::seal output, cpr_hash the keyed look-up
-- hash (CprKeys::lookup_hash); the CPR number itself is never stored.
CREATE TABLE calls (
    id            TEXT PRIMARY KEY NOT NULL,
    started_us    INTEGER NOT NULL,
    caller        TEXT,
    entry_point   TEXT NOT NULL,
    flow_version  TEXT,
    consent       BOOLEAN,
    consent_at_us INTEGER,
    topic         TEXT,
    queue         TEXT,
    cpr_sealed    BLOB,
    cpr_hash      BLOB,
    ended_us      INTEGER,
    outcome       TEXT,
    agent_id      TEXT,
    transferred   BOOLEAN NOT NULL DEFAULT FALSE,
    CHECK ((cpr_sealed IS NULL) = (cpr_hash IS NULL))
);
CREATE INDEX calls_cpr_hash ON calls (cpr_hash);
CREATE INDEX calls_started ON calls (started_us);
