DROP TABLE server_secrets;
DROP TABLE signing_keys;
DROP TABLE device_grants;
DROP TABLE access_tokens;
DROP TABLE access_grants;
DROP TABLE applications;
DROP TABLE users;
