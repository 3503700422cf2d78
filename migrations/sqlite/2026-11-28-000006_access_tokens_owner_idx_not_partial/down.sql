DROP INDEX access_tokens_owner_idx;
CREATE INDEX access_tokens_owner_idx ON access_tokens (user_id, application_id);
CREATE INDEX access_tokens_live_scopes_idx ON access_tokens (user_id, application_id, scopes)
    WHERE revoked_at IS NULL AND user_id IS NOT NULL;
