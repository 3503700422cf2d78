-- Doorward's core tables (SQLite). Times are Unix seconds; secrets are stored as SHA-256.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    admin BOOLEAN NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'active',
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    current_sign_in_at BIGINT,
    last_sign_in_at BIGINT
);
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    uid TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    secret_hash BLOB,
    previous_secret_hash BLOB,
    previous_secret_expires_at BIGINT,
    redirect_uris TEXT NOT NULL,
    scopes TEXT NOT NULL,
    confidential BOOLEAN NOT NULL DEFAULT 1,
    trusted BOOLEAN NOT NULL DEFAULT 0,
    password_grant_enabled BOOLEAN NOT NULL DEFAULT 1,
    owner_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX applications_owner_idx ON applications (owner_id);

-- Authorization codes (RFC 6749 §4.1): single use, stored hashed.
CREATE TABLE access_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code_hash BLOB NOT NULL UNIQUE,
    application_id BIGINT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT,
    code_challenge_method TEXT,
    nonce TEXT,
    auth_time BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX access_grants_expires_idx ON access_grants (expires_at);

-- Access tokens (JWTs, keyed by jti) and the refresh token minted with each, on one row.
-- A refresh family is every row rotated from one original grant.
CREATE TABLE access_tokens (
    jti TEXT PRIMARY KEY NOT NULL,
    application_id BIGINT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    refresh_token_hash BLOB UNIQUE,
    family_id TEXT,
    family_created_at BIGINT,
    refresh_rotated_at BIGINT,
    successor_jti TEXT,
    grant_id BIGINT REFERENCES access_grants (id) ON DELETE SET NULL
);
CREATE INDEX access_tokens_family_idx ON access_tokens (family_id);
CREATE INDEX access_tokens_owner_idx ON access_tokens (user_id, application_id);
CREATE INDEX access_tokens_expires_idx ON access_tokens (expires_at);
CREATE INDEX access_tokens_grant_idx ON access_tokens (grant_id);

-- Device authorization grants (RFC 8628): codes stored hashed.
CREATE TABLE device_grants (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_code_hash BLOB NOT NULL UNIQUE,
    user_code_hash BLOB NOT NULL UNIQUE,
    application_id BIGINT NOT NULL REFERENCES applications (id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    user_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    status TEXT NOT NULL DEFAULT 'pending',
    polling_interval BIGINT NOT NULL,
    last_polled_at BIGINT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX device_grants_expires_idx ON device_grants (expires_at);

-- Signing keys: generated on first start, rotated by `keys rotate`.
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY NOT NULL,
    algorithm TEXT NOT NULL,
    purpose TEXT NOT NULL,
    private_key BLOB NOT NULL,
    public_jwk TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);

-- Server-wide secrets (for example the key that derives a rotated refresh token's successor).
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
