-- Records management (issue 9) for PostgreSQL. Keep in step with migrations/sqlite/0004_records.sql:
-- the same tables, columns and meaning; only the types differ.

-- An agent who verified the caller's identity may enter or correct the CPR number of the call
-- (the correction is audited). Once corrected, the number the caller typed in the IVR no longer
-- overwrites it when the call's record is finished.
ALTER TABLE calls ADD COLUMN cpr_corrected_us BIGINT;
ALTER TABLE calls ADD COLUMN cpr_corrected_by TEXT;

-- A call linked to a citizen's case in the case system (journal): the case/journal number
-- (checked against the configured pattern before it gets here), an optional note, who and when.
-- Several links per call. A link is removed (not deleted) with who and when.
CREATE TABLE journal_links (
    id          BIGSERIAL PRIMARY KEY,
    call_id     TEXT NOT NULL,
    case_number TEXT NOT NULL,
    note        TEXT,
    created_by  TEXT NOT NULL,
    created_us  BIGINT NOT NULL,
    removed_by  TEXT,
    removed_us  BIGINT,
    CHECK ((removed_us IS NULL) = (removed_by IS NULL))
);
CREATE INDEX journal_links_call ON journal_links (call_id);
CREATE INDEX journal_links_case ON journal_links (case_number);

-- Journalising: the outbox of documents (a recording as WAV + JSON manifest) for the case
-- system, one row per recording, link and target ('folder': the drop folder, 'webhook': the
-- HTTP endpoint). 'pending' rows are tried at next_attempt_us until the target acknowledges
-- ('acknowledged', with the receipt the case system gave, if any); 'cancelled' when the link is
-- removed before that. A recording is 'exported' (recordings.journal_state) once every row of
-- one of its links is acknowledged.
CREATE TABLE journal_exports (
    id              BIGSERIAL PRIMARY KEY,
    recording_id    TEXT NOT NULL,
    link_id         BIGINT NOT NULL REFERENCES journal_links (id),
    target          TEXT NOT NULL CHECK (target IN ('folder', 'webhook')),
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'acknowledged', 'cancelled')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_us BIGINT NOT NULL,
    last_error      TEXT,
    receipt         TEXT,
    requested_by    TEXT NOT NULL,
    requested_us    BIGINT NOT NULL,
    acknowledged_us BIGINT,
    UNIQUE (recording_id, link_id, target)
);
CREATE INDEX journal_exports_due ON journal_exports (state, next_attempt_us);
CREATE INDEX journal_exports_recording ON journal_exports (recording_id);

-- The centre's local rule on listening: a team leader or coach may listen to (or download) an
-- agent's recording only while the agent has granted it. One row per recording and grantee
-- (a login): 'requested' (asked, with the reason), 'granted', 'refused' or 'withdrawn' by the
-- agent (granted_by, the agent's login). Only 'granted' allows.
CREATE TABLE listen_grants (
    id           BIGSERIAL PRIMARY KEY,
    recording_id TEXT NOT NULL,
    agent_id     TEXT NOT NULL,
    grantee      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('requested', 'granted', 'refused', 'withdrawn')),
    reason       TEXT,
    requested_us BIGINT,
    decided_us   BIGINT,
    UNIQUE (recording_id, grantee)
);
CREATE INDEX listen_grants_agent ON listen_grants (agent_id);

-- Access requests (aktindsigt under forvaltningsloven, or GDPR art. 15): who asked, how their
-- identity was verified, the law, the day received (a civil date, YYYY-MM-DD, in
-- Europe/Copenhagen), the citizen's CPR number sealed and its look-up hash, an extension with its
-- reason, the state, and the hold the request placed on everything of the citizen.
CREATE TABLE access_requests (
    id                   BIGSERIAL PRIMARY KEY,
    law                  TEXT NOT NULL CHECK (law IN ('forvaltningsloven', 'gdpr')),
    received             TEXT NOT NULL,
    requester            TEXT NOT NULL,
    identity_verified_by TEXT NOT NULL,
    cpr_sealed           BYTEA NOT NULL,
    cpr_hash             BYTEA NOT NULL,
    extended_until       TEXT,
    extension_reason     TEXT,
    state                TEXT NOT NULL DEFAULT 'open'
                         CHECK (state IN ('open', 'reviewed', 'answered', 'closed')),
    hold_id              BIGINT,
    created_by           TEXT NOT NULL,
    created_us           BIGINT NOT NULL,
    answered_us          BIGINT,
    CHECK ((extended_until IS NULL) = (extension_reason IS NULL))
);
CREATE INDEX access_requests_cpr_hash ON access_requests (cpr_hash);

-- The items an access request found (kind + id: a recording or message id, a call id, a
-- tombstone's recording id, an audit row id) and the records officer's decision on each:
-- 'release', 'withhold' (legal_reason) or 'release-muted' (muted_ranges: JSON
-- [[start_ms, end_ms], …] from the audio's start). NULL decision: not reviewed yet.
CREATE TABLE access_items (
    request_id   BIGINT NOT NULL REFERENCES access_requests (id),
    kind         TEXT NOT NULL
                 CHECK (kind IN ('recording', 'message', 'call', 'tombstone', 'audit')),
    item_id      TEXT NOT NULL,
    decision     TEXT CHECK (decision IS NULL OR decision IN ('release', 'withhold', 'release-muted')),
    legal_reason TEXT,
    muted_ranges TEXT,
    decided_by   TEXT,
    decided_us   BIGINT,
    PRIMARY KEY (request_id, kind, item_id)
);
