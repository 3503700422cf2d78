-- SEC-TK-06: each application has an allow-list of grant types (space separated), replacing
-- the single password-grant switch. Public clients never get client_credentials or password.
ALTER TABLE applications ADD COLUMN grant_types TEXT NOT NULL
    DEFAULT 'authorization_code refresh_token client_credentials password device_code';
UPDATE applications SET grant_types = 'authorization_code refresh_token client_credentials device_code'
    WHERE confidential AND NOT password_grant_enabled;
UPDATE applications SET grant_types = 'authorization_code refresh_token device_code'
    WHERE NOT confidential;
ALTER TABLE applications DROP COLUMN password_grant_enabled;
