-- RFC 6749 §6: a refresh token keeps the scope it was granted, even when a refresh asks for
-- a narrower access token. NULL on rows without a refresh token.
ALTER TABLE access_tokens ADD COLUMN refresh_scopes TEXT;
