-- Agents' SIP registrations kept across a restart, for SQLite. Keep in step with
-- migrations/postgres/0006_sip_bindings.sql: the same columns and meaning; only the types differ.

-- A phone registers for up to an hour; without this an agent whose phone registered just
-- before a restart would get no calls until its next refresh. kald saves its UDP bindings
-- (a snapshot, replaced whole) and restores the unexpired ones at start, qualifying each with
-- an OPTIONS before it routes calls to it. Addresses are "ip:port" text. `instance` is the kald
-- that holds the registrations (its SIP address): several kald on one database keep their own.
CREATE TABLE sip_bindings (
    instance   TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    contact    TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    cseq       INTEGER NOT NULL,
    remote     TEXT NOT NULL,
    local      TEXT NOT NULL,
    expires_us INTEGER NOT NULL,
    PRIMARY KEY (instance, agent_id, contact)
);
