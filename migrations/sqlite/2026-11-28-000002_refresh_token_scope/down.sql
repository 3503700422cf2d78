ALTER TABLE access_tokens DROP COLUMN refresh_scopes;
