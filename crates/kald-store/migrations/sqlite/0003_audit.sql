-- The audit log (issue 9) for SQLite. Keep in step with migrations/postgres/0003_audit.sql:
-- the same tables, columns and meaning; only the types differ.

-- One row per audited action (listen, download, export, hold, lift-hold, consent-grant,
-- consent-withdraw, link, unlink, search-cpr, correct-cpr, access-request-decision, delete,
-- erase, …): who (actor = login, role), when (at_us), what (action, target = a recording, call
-- or case id, never a CPR number), why (reason). cpr_hash is the keyed look-up hash of the
-- citizen's CPR number when the action concerns one (never the number).
-- The rows form a hash chain: hash = SHA-256(prev_hash ‖ canonical encoding of the row, id
-- included), prev_hash is the previous row's hash (32 zero bytes for the very first row).
-- kald assigns ids itself, consecutively, under the write lock (the previous id + 1), so a
-- missing row shows as a gap. kald never updates or deletes a row except a purge of the oldest
-- (see audit_anchor); the encoding is documented in src/audit.rs.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us     INTEGER NOT NULL,
    actor     TEXT NOT NULL,
    role      TEXT NOT NULL,
    action    TEXT NOT NULL,
    target    TEXT NOT NULL,
    reason    TEXT,
    cpr_hash  BLOB CHECK (cpr_hash IS NULL OR length(cpr_hash) = 32),
    prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash      BLOB NOT NULL CHECK (length(hash) = 32)
);
CREATE INDEX audit_log_at ON audit_log (at_us);
CREATE INDEX audit_log_actor ON audit_log (actor);
CREATE INDEX audit_log_target ON audit_log (target);
CREATE INDEX audit_log_cpr_hash ON audit_log (cpr_hash);

-- Where the chain starts after a retention purge removed its oldest rows: the id and hash of
-- the last purged row (the first remaining row must have id last_id + 1 and prev_hash = hash),
-- the purge's cut-off and when it ran. At most one row; none until the first purge.
CREATE TABLE audit_anchor (
    singleton        INTEGER PRIMARY KEY NOT NULL CHECK (singleton = 1),
    last_id          INTEGER NOT NULL,
    hash             BLOB NOT NULL CHECK (length(hash) = 32),
    purged_before_us INTEGER NOT NULL,
    purged_at_us     INTEGER NOT NULL
);
