-- SQLite re-prepares a statement at every new bound value when a partial index's condition
-- compares a column with a constant (000005's `revoked_at IS NULL`): with that index, every
-- lookup of an access token by jti or refresh-token hash was parsed and planned again each
-- time, about a sixth of the CPU of a refresh. A full index serves the same consent walk
-- (`revoked_at IS NULL` is an equality on an index column for SQLite) and, as its prefix,
-- what `access_tokens_owner_idx` served; one index fewer to update on every insert.
-- PostgreSQL plans at bind time anyway and keeps its partial index.
DROP INDEX access_tokens_live_scopes_idx;
DROP INDEX access_tokens_owner_idx;
CREATE INDEX access_tokens_owner_idx ON access_tokens (user_id, application_id, revoked_at, scopes);
