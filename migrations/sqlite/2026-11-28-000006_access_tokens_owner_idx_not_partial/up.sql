-- One index where there were two: every inserted token updated both the owner index
-- (user_id, application_id) and 000005's partial index for the consent walk. This one
-- serves both: the walk (`user_id = ? AND application_id = ? AND revoked_at IS NULL AND
-- scopes > ?`, where SQLite treats `IS NULL` as an equality on an index column) and, by its
-- prefix, what the owner index served. PostgreSQL keeps the two it has.
DROP INDEX access_tokens_live_scopes_idx;
DROP INDEX access_tokens_owner_idx;
CREATE INDEX access_tokens_owner_idx ON access_tokens (user_id, application_id, revoked_at, scopes);
