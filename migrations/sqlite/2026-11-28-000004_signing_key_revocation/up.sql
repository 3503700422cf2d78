-- SEC-JW-08: a key marked compromised leaves the key set at once (`keys revoke`).
ALTER TABLE signing_keys ADD COLUMN revoked_at BIGINT;
