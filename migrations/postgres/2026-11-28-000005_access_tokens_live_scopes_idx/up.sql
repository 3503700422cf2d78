-- The consent check (`authorize::already_granted`) walks the distinct scope strings of a
-- user's unrevoked tokens for one application, one index probe each, however many tokens
-- the user holds. Partial: client_credentials tokens (no user) and revoked ones are not in it.
CREATE INDEX access_tokens_live_scopes_idx ON access_tokens (user_id, application_id, scopes)
    WHERE revoked_at IS NULL AND user_id IS NOT NULL;
