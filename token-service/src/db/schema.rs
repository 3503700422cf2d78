//! The Diesel schema, written by hand for both backends (the SQL types used here mean the
//! same on SQLite and PostgreSQL). Kept in step with `migrations/{sqlite,postgres}`.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        admin -> Bool,
        state -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        current_sign_in_at -> Nullable<BigInt>,
        last_sign_in_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    applications (id) {
        id -> BigInt,
        uid -> Text,
        name -> Text,
        secret_hash -> Nullable<Binary>,
        previous_secret_hash -> Nullable<Binary>,
        previous_secret_expires_at -> Nullable<BigInt>,
        redirect_uris -> Text,
        scopes -> Text,
        confidential -> Bool,
        trusted -> Bool,
        owner_id -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        grant_types -> Text,
    }
}

diesel::table! {
    access_grants (id) {
        id -> BigInt,
        code_hash -> Binary,
        application_id -> BigInt,
        user_id -> BigInt,
        scopes -> Text,
        redirect_uri -> Text,
        code_challenge -> Nullable<Text>,
        code_challenge_method -> Nullable<Text>,
        nonce -> Nullable<Text>,
        auth_time -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    access_tokens (jti) {
        jti -> Text,
        application_id -> BigInt,
        user_id -> Nullable<BigInt>,
        scopes -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        refresh_token_hash -> Nullable<Binary>,
        family_id -> Nullable<Text>,
        family_created_at -> Nullable<BigInt>,
        refresh_rotated_at -> Nullable<BigInt>,
        successor_jti -> Nullable<Text>,
        grant_id -> Nullable<BigInt>,
        refresh_scopes -> Nullable<Text>,
    }
}

diesel::table! {
    device_grants (id) {
        id -> BigInt,
        device_code_hash -> Binary,
        user_code_hash -> Binary,
        application_id -> BigInt,
        scopes -> Text,
        user_id -> Nullable<BigInt>,
        status -> Text,
        polling_interval -> BigInt,
        last_polled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        algorithm -> Text,
        purpose -> Text,
        private_key -> Binary,
        public_jwk -> Text,
        created_at -> BigInt,
        retired_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    server_secrets (name) {
        name -> Text,
        value -> Binary,
        created_at -> BigInt,
    }
}

diesel::joinable!(access_grants -> users (user_id));
diesel::joinable!(access_tokens -> applications (application_id));
diesel::joinable!(access_tokens -> users (user_id));
diesel::joinable!(applications -> users (owner_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    applications,
    access_grants,
    access_tokens,
    device_grants,
    signing_keys,
    server_secrets,
);
