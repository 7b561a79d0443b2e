-- The transactional outbox (jararaca_query::outbox::POSTGRES_MIGRATION), created here so that
-- processes starting together on a new database create it under the migrator's lock.
CREATE TABLE IF NOT EXISTS jararaca_outbox (
    seq bigserial PRIMARY KEY,
    message_id text,
    message bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
