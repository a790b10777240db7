-- Recordings (issue 8) for SQLite. Keep in step with migrations/postgres/0002_recordings.sql:
-- the same tables, columns and meaning; only the types differ.

-- A call answered with "no" or withdrawn keeps its consent answer; this is when the caller (or
-- the agent) withdrew consent during the call. The call's recordings are deleted then.
ALTER TABLE calls ADD COLUMN consent_withdrawn_us INTEGER;

-- The catalogue of recorded audio: one row per encrypted file in the recordings directory.
-- id is a random id made by kald that also names the file (no personal data in it); file is the
-- path relative to the recordings directory; key_id the recording key that encrypted it.
-- kind: 'call' (a consenting call from the agent's answer on) or 'message' (a message the
-- caller chose to leave). state: 'recording' while written, 'closed' when finished normally,
-- 'truncated' when repaired after a crash. retention_until_us and sha256 (hex SHA-256 of the
-- plaintext PCM) are set when the recording is closed or truncated. The CPR number is stored
-- only sealed (cpr_sealed) with its keyed look-up hash (cpr_hash), as in calls.
-- journal_state (issue 9): 'none', 'linked' (to a case, not yet acknowledged by the case
-- system) or 'exported'.
CREATE TABLE recordings (
    id                 TEXT PRIMARY KEY NOT NULL,
    call_id            TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('call', 'message')),
    file               TEXT NOT NULL,
    key_id             INTEGER NOT NULL,
    started_us         INTEGER NOT NULL,
    ended_us           INTEGER,
    duration_ms        INTEGER,
    agent_id           TEXT,
    queue              TEXT,
    topic              TEXT,
    consent            BOOLEAN NOT NULL,
    consent_at_us      INTEGER,
    flow_version       TEXT,
    cpr_sealed         BLOB,
    cpr_hash           BLOB,
    retention_until_us INTEGER,
    sha256             TEXT,
    state              TEXT NOT NULL DEFAULT 'recording'
                       CHECK (state IN ('recording', 'closed', 'truncated')),
    journal_state      TEXT NOT NULL DEFAULT 'none'
                       CHECK (journal_state IN ('none', 'linked', 'exported')),
    created_us         INTEGER NOT NULL,
    CHECK ((cpr_sealed IS NULL) = (cpr_hash IS NULL)),
    -- A call is recorded only with consent; a message is left after its own notice.
    CHECK (kind <> 'call' OR consent)
);
CREATE INDEX recordings_retention ON recordings (retention_until_us, id);
CREATE INDEX recordings_cpr_hash ON recordings (cpr_hash);
CREATE INDEX recordings_call ON recordings (call_id);

-- Holds keep recordings (and tombstones) past their deadline. scope 'recording' names a
-- recording id in target, 'call' a call id in target, 'cpr' a citizen by the keyed look-up hash
-- in cpr_hash (target NULL). A hold is active until lifted.
CREATE TABLE holds (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    scope      TEXT NOT NULL CHECK (scope IN ('recording', 'call', 'cpr')),
    target     TEXT,
    cpr_hash   BLOB,
    reason     TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    lifted_us  INTEGER,
    lifted_by  TEXT,
    CHECK ((scope = 'cpr') = (cpr_hash IS NOT NULL)),
    CHECK ((scope = 'cpr') = (target IS NULL)),
    CHECK ((lifted_us IS NULL) = (lifted_by IS NULL))
);
CREATE INDEX holds_target ON holds (target);
CREATE INDEX holds_cpr_hash ON holds (cpr_hash);

-- What is left of a deleted recording: no file, no sealed CPR number; the CPR's keyed look-up
-- hash stays so an access request still finds it. Purged after purge_after_us.
CREATE TABLE tombstones (
    recording_id   TEXT PRIMARY KEY NOT NULL,
    call_id        TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('call', 'message')),
    started_us     INTEGER NOT NULL,
    ended_us       INTEGER,
    deleted_us     INTEGER NOT NULL,
    reason         TEXT NOT NULL,
    cpr_hash       BLOB,
    purge_after_us INTEGER NOT NULL
);
CREATE INDEX tombstones_purge ON tombstones (purge_after_us);
CREATE INDEX tombstones_cpr_hash ON tombstones (cpr_hash);
