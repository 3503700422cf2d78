ALTER TABLE applications ADD COLUMN password_grant_enabled BOOLEAN NOT NULL DEFAULT TRUE;
UPDATE applications SET password_grant_enabled = (' ' || grant_types || ' ') LIKE '% password %';
ALTER TABLE applications DROP COLUMN grant_types;
