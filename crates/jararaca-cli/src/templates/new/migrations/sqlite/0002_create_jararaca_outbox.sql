-- The transactional outbox (jararaca_query::outbox::SQLITE_MIGRATION), created with the rest
-- of the schema.
CREATE TABLE IF NOT EXISTS jararaca_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT,
    message BLOB NOT NULL,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS jararaca_outbox_lease ON jararaca_outbox (lease_until);
