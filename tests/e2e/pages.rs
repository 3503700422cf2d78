//! The authorization-code flow as a browser drives it: sign-in, consent, the response to the
//! client, and the attacks on the pages (CSRF, open redirect, framing, unregistered
//! redirect URIs).

use doorward_tests::browser::{Browser, Page};
use doorward_tests::{Backend, TestApp, TestClient, both_backends};
use serde_json::Value;

both_backends!(
    browser_signs_in_consents_and_the_client_gets_tokens,
    sec_az_01_pages_for_unknown_clients_and_unregistered_redirect_uris,
    sec_az_02_other_errors_redirect_with_error_state_and_iss,
    deny_redirects_with_access_denied,
    sec_sc_02_consent_is_bound_to_the_server_side_request,
    form_post_answers_with_an_auto_submitting_form,
    sec_sc_01_consent_and_sign_in_are_csrf_protected,
    sec_wp_03_open_redirects_on_the_return_address_are_refused,
    sec_rl_01_sign_in_failures_are_generic_and_throttled,
    prompt_login_asks_for_a_fresh_sign_in,
    sign_up_creates_an_account_with_clear_password_rules,
    sign_up_can_be_switched_off,
    authorized_applications_are_listed_and_revoked,
    sec_az_08_no_cors_on_pages,
    sec_wp_05_applications_pages_register_show_the_secret_once_edit_renew_and_delete,
    administrators_see_every_application_and_may_trust_one,
    sec_sc_04_prompt_none_never_shows_a_page,
    sec_sc_05_the_session_is_renewed_at_sign_in,
    sec_sc_06_every_page_refuses_framing,
    sec_wp_01_application_names_are_encoded,
    sec_wp_02_security_headers_and_no_third_party_content,
    sec_rl_04_forwarded_headers_from_untrusted_peers_are_ignored,
    sessions_end_after_their_idle_and_absolute_lifetimes,
    public_client_with_pkce_through_the_pages,
    loopback_redirect_uris_may_change_port_others_may_not,
    sec_wp_06_consent_says_who_and_what,
);

async fn sessions_end_after_their_idle_and_absolute_lifetimes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let browser = browser_for(&app, "jane").await;
    assert_eq!(browser.get("/").await.status, 200);
    // Idle: 8 hours without a request.
    app.clock.advance(8 * 3600 + 1);
    assert_eq!(
        browser.get("/").await.location().as_deref(),
        Some("/users/sign_in")
    );
    // Absolute: 7 days, however active.
    let browser = browser_for(&app, "jane").await;
    for _ in 0..30 {
        app.clock.advance(6 * 3600);
        if browser.get("/").await.status != 200 {
            break;
        }
    }
    assert_eq!(
        browser.get("/").await.location().as_deref(),
        Some("/users/sign_in")
    );
}

async fn public_client_with_pkce_through_the_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let public = app.create_client("read_user", false, false).await;
    let browser = browser_for(&app, "jane").await;
    // Without a challenge a public client is refused (SEC-PK-01) …
    let refused = browser
        .get(&authorize_path(&public, "&scope=read_user"))
        .await;
    assert_eq!(
        param(&client_params(&refused.location().unwrap()), "error").as_deref(),
        Some("invalid_request")
    );
    // … with S256 it gets a code that only the verifier redeems.
    let challenge =
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256";
    let consent = browser
        .get(&authorize_path(
            &public,
            &format!("&scope=read_user{challenge}"),
        ))
        .await;
    assert_eq!(consent.status, 200);
    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    let code = param(&client_params(&answer.location().unwrap()), "code").unwrap();
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &public.id),
            (
                "code_verifier",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            ),
        ])
        .await;
    assert_eq!(response.status(), 200);
    // A public client is asked again next time (SEC-SC-03).
    let again = browser
        .get(&authorize_path(
            &public,
            &format!("&scope=read_user{challenge}"),
        ))
        .await;
    assert_eq!(again.status, 200);
}

async fn loopback_redirect_uris_may_change_port_others_may_not(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let fields = token_service::apps::ApplicationFields {
        name: "Native app".into(),
        redirect_uris: vec![
            "http://127.0.0.1/cb".into(),
            "https://app.example/callback".into(),
        ],
        scopes: vec!["read_user".into()],
        confidential: true,
        trusted: false,
        grant_types: Vec::new(),
        owner_id: None,
    };
    let client = app.register(fields).await;
    let browser = browser_for(&app, "jane").await;
    let with = |uri: &str| {
        authorize_path(&client, "&scope=read_user").replace(
            &serde_urlencoded::to_string([("redirect_uri", REDIRECT)]).unwrap(),
            &serde_urlencoded::to_string([("redirect_uri", uri)]).unwrap(),
        )
    };
    assert_eq!(
        browser.get(&with("http://127.0.0.1:5123/cb")).await.status,
        200,
        "loopback, other port"
    );
    for bad in [
        "https://app.example:8443/callback",
        "https://app.example/callback/extra",
        "http://127.0.0.1:5123/cb2",
    ] {
        let page = browser.get(&with(bad)).await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.location().is_none());
    }
}

async fn sec_wp_06_consent_says_who_and_what(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.create_user("acme", "sekret-password").await;
    app.create_user("jane", "sekret-password").await;
    let fields = token_service::apps::ApplicationFields {
        name: "Acme Reports".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec!["api read_user".into()],
        confidential: true,
        trusted: false,
        grant_types: Vec::new(),
        owner_id: Some(owner),
    };
    let client = app.register(fields).await;
    let browser = browser_for(&app, "jane").await;
    let consent = browser
        .get(&authorize_path(&client, "&scope=api%20read_user"))
        .await;
    assert_eq!(consent.status, 200);
    for expected in [
        "Acme Reports",
        "acme",
        "app.example",
        "Read and write everything you can",
        "Read your profile",
    ] {
        assert!(consent.body.contains(expected), "{expected}");
    }
}

async fn sec_sc_04_prompt_none_never_shows_a_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let signed_out = Browser::new(&app.base);
    let page = signed_out
        .get(&authorize_path(&client, "&prompt=none"))
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(
        param(&client_params(&page.location().unwrap()), "error").as_deref(),
        Some("login_required")
    );
    let (browser, _) = signed_in_browser(&app, &client).await;
    let page = browser.get(&authorize_path(&client, "&prompt=none")).await;
    assert_eq!(page.status, 302);
    let params = client_params(&page.location().unwrap());
    assert_eq!(param(&params, "error").as_deref(), Some("consent_required"));
    assert!(param(&params, "code").is_none());
}

fn session_cookie(page: &Page) -> Option<String> {
    page.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("doorward_session="))
        .map(|c| c.split(';').next().unwrap_or("").to_owned())
}

async fn sec_sc_05_the_session_is_renewed_at_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let browser = Browser::new(&app.base);
    let form = browser.get("/users/sign_in").await;
    let before = session_cookie(&form).expect("a session cookie with the CSRF token");
    let mut fields = form.form("/users/sign_in");
    fields.push(("login".into(), "jane".into()));
    fields.push(("password".into(), "sekret-password".into()));
    let signed_in = browser.post("/users/sign_in", &fields).await;
    assert_eq!(signed_in.status, 303, "SEC-WP-04");
    let after = session_cookie(&signed_in).expect("a new session cookie");
    assert_ne!(before, after);
    // The pre-sign-in CSRF token does not outlive the sign-in.
    let stale = browser
        .post("/users/sign_out", &form.form("/users/sign_in"))
        .await;
    assert_eq!(stale.status, 403);
}

async fn sec_sc_06_every_page_refuses_framing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let browser = Browser::new(&app.base);
    let unknown = TestClient {
        id: "nope".into(),
        secret: String::new(),
    };
    for path in [
        "/users/sign_in".to_owned(),
        "/users/sign_up".to_owned(),
        authorize_path(&unknown, ""),
        authorize_path(&client, "").replace("callback", "elsewhere"),
        "/no/such/page".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(
            page.header("x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        assert!(
            page.header("content-security-policy")
                .unwrap_or_default()
                .contains("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

async fn sec_wp_01_application_names_are_encoded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let fields = token_service::apps::ApplicationFields {
        name: "<img src=x onerror=alert(1)>".into(),
        redirect_uris: vec![REDIRECT.into()],
        scopes: vec!["read_user".into()],
        confidential: true,
        trusted: false,
        grant_types: Vec::new(),
        owner_id: None,
    };
    let client = app.register(fields).await;
    let (_, consent) = signed_in_browser(&app, &client).await;
    assert_eq!(consent.status, 200);
    assert!(!consent.body.contains("<img src=x"));
    assert!(
        consent
            .body
            .contains("&#60;img src=x onerror=alert(1)&#62;")
            || consent.body.contains("&lt;img")
    );
}

async fn sec_wp_02_security_headers_and_no_third_party_content(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    let pages = vec![
        consent,
        browser.get("/").await,
        browser.get("/oauth/applications").await,
        browser.get("/oauth/applications/new").await,
        browser.get("/oauth/authorized_applications").await,
        Browser::new(&app.base).get("/users/sign_in").await,
    ];
    for page in pages {
        assert_eq!(page.status, 200);
        assert_eq!(
            page.header("referrer-policy").as_deref(),
            Some("no-referrer")
        );
        assert_eq!(
            page.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"));
        // Every src and href stays on this server.
        for attribute in ["src=\"", "href=\""] {
            for value in page.body.split(attribute).skip(1) {
                let value = value.split('"').next().unwrap();
                assert!(value.starts_with('/'), "{attribute}{value}");
            }
        }
    }
    let css = reqwest::get(app.url("/assets/doorward.css")).await.unwrap();
    assert_eq!(css.status(), 200);
}

async fn sec_rl_04_forwarded_headers_from_untrusted_peers_are_ignored(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let http = reqwest::Client::new();
    let client = app.default_client().await;
    let mut last = 0;
    for i in 0..6 {
        let response = http
            .post(app.url("/oauth/token"))
            .basic_auth(&client.id, Some(&client.secret))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .form(&[
                ("grant_type", "password"),
                ("username", "jane"),
                ("password", "wrong-password"),
            ])
            .send()
            .await
            .unwrap();
        last = response.status().as_u16();
    }
    assert_eq!(
        last, 429,
        "six attempts from one peer are one bucket, whatever X-Forwarded-For says"
    );
}

/// Signs `login` in on a fresh browser.
async fn browser_for(app: &TestApp, login: &str) -> Browser {
    let browser = Browser::new(&app.base);
    let answer = sign_in(&browser, "/users/sign_in", login, "sekret-password").await;
    assert_eq!(answer.status, 303);
    browser
}

fn app_form(page: &Page, action: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    // Only the hidden token: the test chooses every visible field itself.
    let mut fields: Vec<(String, String)> = page
        .form(action)
        .into_iter()
        .filter(|(n, _)| n == "authenticity_token")
        .collect();
    fields.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned())),
    );
    fields
}

async fn sec_wp_05_applications_pages_register_show_the_secret_once_edit_renew_and_delete(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    app.create_user("eve", "sekret-password").await;
    let jane = browser_for(&app, "jane").await;
    let new = jane.get("/oauth/applications/new").await;
    assert_eq!(new.status, 200);
    let created = jane
        .post(
            "/oauth/applications",
            &app_form(
                &new,
                "/oauth/applications",
                &[
                    ("name", "Jane's app"),
                    (
                        "redirect_uri",
                        "https://jane.example/cb\nhttp://127.0.0.1/cb",
                    ),
                    ("scope_read_user", "1"),
                    ("grant_client_credentials", "1"),
                    ("grant_authorization_code", "1"),
                    ("confidential", "1"),
                    ("trusted", "1"),
                ],
            ),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(
        created.header("cache-control").as_deref(),
        Some("no-store"),
        "SEC-SL-04"
    );
    let secret = doorward_tests::browser::unescape(
        created
            .body
            .split("<code id=\"secret\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
    );
    assert!(secret.starts_with("dwcs-"));
    assert!(created.body.contains("Confidential") && !created.body.contains(", trusted"));
    let reposted = jane
        .post(
            "/oauth/applications",
            &app_form(&new, "/oauth/applications", &[("name", "Again")]),
        )
        .await;
    assert_eq!(
        reposted.status, 403,
        "a reload of the secret page registers nothing"
    );
    let uid = created
        .body
        .split("/oauth/applications/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let client = TestClient {
        id: uid.clone(),
        secret: secret.clone(),
    };
    let response = app
        .token_basic(
            &client,
            &[("grant_type", "client_credentials"), ("scope", "read_user")],
        )
        .await;
    assert_eq!(response.status(), 200, "the secret from the page works");

    // The secret is never shown again, and other users cannot see the application.
    let shown = jane.get(&format!("/oauth/applications/{uid}")).await;
    assert_eq!(shown.status, 200);
    assert!(!shown.body.contains(&secret));
    assert!(
        !shown.body.contains("(trusted)") && !shown.body.contains(", trusted"),
        "only administrators may trust"
    );
    let eve = browser_for(&app, "eve").await;
    assert_eq!(
        eve.get(&format!("/oauth/applications/{uid}")).await.status,
        404
    );
    assert!(
        !eve.get("/oauth/applications")
            .await
            .body
            .contains("Jane's app")
    );

    // SEC-RU-06: a bad redirect URI is a form error and changes nothing.
    let edit = jane.get(&format!("/oauth/applications/{uid}/edit")).await;
    let refused = jane
        .post(
            &format!("/oauth/applications/{uid}"),
            &app_form(
                &edit,
                &format!("/oauth/applications/{uid}"),
                &[
                    ("name", "Renamed"),
                    ("redirect_uri", "javascript:alert(1)"),
                    ("scope_read_user", "1"),
                    ("grant_client_credentials", "1"),
                ],
            ),
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(refused.body.contains("forbidden"));
    assert!(
        jane.get(&format!("/oauth/applications/{uid}"))
            .await
            .body
            .contains("Jane&#39;s app")
    );

    // Renewing shows a new secret once; "at once", the old one stops immediately
    // (the grace choices are checked in secret_rotation).
    let mut renew = shown.form(&format!("/oauth/applications/{uid}/renew_secret"));
    renew.push(("grace".into(), "0".into()));
    let renewed = jane
        .post(&format!("/oauth/applications/{uid}/renew_secret"), &renew)
        .await;
    assert_eq!(renewed.status, 200);
    assert!(!renewed.body.contains(&secret) && renewed.body.contains("id=\"secret\""));
    let response = app
        .token_basic(&client, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(response.status(), 401);

    // The renewal replaced the CSRF token: forms rendered before it are stale.
    let shown = jane.get(&format!("/oauth/applications/{uid}")).await;
    let delete = shown.form(&format!("/oauth/applications/{uid}/delete"));
    assert_eq!(
        eve.post(&format!("/oauth/applications/{uid}/delete"), &delete)
            .await
            .status,
        403,
        "CSRF: eve's session"
    );
    let deleted = jane
        .post(&format!("/oauth/applications/{uid}/delete"), &delete)
        .await;
    assert_eq!(deleted.status, 303);
    assert!(
        jane.get("/oauth/applications")
            .await
            .body
            .contains("None yet.")
    );
}

async fn administrators_see_every_application_and_may_trust_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    app.create_admin("root", "sekret-password").await;
    let jane = browser_for(&app, "jane").await;
    let new = jane.get("/oauth/applications/new").await;
    assert!(
        !new.body.contains("name=\"trusted\""),
        "no trust checkbox for users"
    );
    let created = jane
        .post(
            "/oauth/applications",
            &app_form(
                &new,
                "/oauth/applications",
                &[
                    ("name", "Jane's app"),
                    ("redirect_uri", "https://jane.example/cb"),
                    ("scope_read_user", "1"),
                    ("grant_authorization_code", "1"),
                    ("confidential", "1"),
                ],
            ),
        )
        .await;
    let uid = created
        .body
        .split("/oauth/applications/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let root = browser_for(&app, "root").await;
    assert!(
        root.get("/oauth/applications")
            .await
            .body
            .contains("Jane&#39;s app")
    );
    let edit = root.get(&format!("/oauth/applications/{uid}/edit")).await;
    assert!(edit.body.contains("name=\"trusted\""));
    let saved = root
        .post(
            &format!("/oauth/applications/{uid}"),
            &app_form(
                &edit,
                &format!("/oauth/applications/{uid}"),
                &[
                    ("name", "Jane's app"),
                    ("redirect_uri", "https://jane.example/cb"),
                    ("scope_read_user", "1"),
                    ("grant_authorization_code", "1"),
                    ("trusted", "1"),
                ],
            ),
        )
        .await;
    assert_eq!(saved.status, 303);
    assert!(
        jane.get(&format!("/oauth/applications/{uid}"))
            .await
            .body
            .contains(", trusted")
    );
}

async fn sign_up_creates_an_account_with_clear_password_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let browser = Browser::new(&app.base);
    let form = browser.get("/users/sign_up").await;
    assert_eq!(form.status, 200);
    let fill = |password: &str| {
        let mut fields = form.form("/users/sign_up");
        fields.extend([
            ("username".to_owned(), "newbie".to_owned()),
            ("name".to_owned(), "New Bie".to_owned()),
            ("email".to_owned(), "newbie@example.com".to_owned()),
            ("password".to_owned(), password.to_owned()),
        ]);
        fields
    };
    let refused = browser.post("/users/sign_up", &fill("short")).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .body
            .contains("Password must be at least 8 characters"),
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("value=\"newbie\""),
        "the form keeps what was typed"
    );
    let created = browser
        .post("/users/sign_up", &fill("long-enough-pw"))
        .await;
    assert_eq!(created.status, 303);
    let home = browser.get("/").await;
    assert!(home.body.contains("Hello, newbie"));
    // The same name again is refused with a clear message.
    let other = Browser::new(&app.base);
    let form = other.get("/users/sign_up").await;
    let mut fields = form.form("/users/sign_up");
    fields.extend([
        ("username".to_owned(), "newbie".to_owned()),
        ("email".to_owned(), "other@example.com".to_owned()),
        ("password".to_owned(), "long-enough-pw".to_owned()),
    ]);
    let taken = other.post("/users/sign_up", &fields).await;
    assert_eq!(taken.status, 422);
    assert!(taken.body.contains("has already been taken"));
}

async fn sign_up_can_be_switched_off(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.web.sign_up_enabled = false).await;
    let browser = Browser::new(&app.base);
    assert_eq!(browser.get("/users/sign_up").await.status, 404);
    let page = browser.get("/users/sign_in").await;
    assert!(!page.body.contains("/users/sign_up"));
}

async fn authorized_applications_are_listed_and_revoked(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    let code = param(&client_params(&answer.location().unwrap()), "code").unwrap();
    let tokens = redeem(&app, &client, &code).await;
    let list = browser.get("/oauth/authorized_applications").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Test app") && list.body.contains("read_user"));
    let action = format!("/oauth/authorized_applications/{}/revoke", client.id);
    let revoke = list.form(&action);
    assert!(!revoke.is_empty(), "a revoke form with its CSRF token");
    // Without the token nothing happens.
    assert_eq!(browser.post(&action, &[]).await.status, 403);
    assert_eq!(
        app.api_user(tokens["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );
    let done = browser.post(&action, &revoke).await;
    assert_eq!(done.status, 303);
    assert_eq!(
        app.api_user(tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    let list = browser.get("/oauth/authorized_applications").await;
    assert!(list.body.contains("No application can use your account."));
    // Signed out, the page sends you to sign in and back.
    let stranger = Browser::new(&app.base);
    let page = stranger.get("/oauth/authorized_applications").await;
    assert_eq!(page.status, 303);
    assert!(
        page.location()
            .unwrap()
            .contains("return_to=%2Foauth%2Fauthorized_applications")
    );
}

async fn sec_az_08_no_cors_on_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let http = reqwest::Client::new();
    for path in [authorize_path(&client, ""), "/users/sign_in".to_owned()] {
        let preflight = http
            .request(reqwest::Method::OPTIONS, app.url(&path))
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        let get = http
            .get(app.url(&path))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        for response in [preflight, get] {
            assert!(
                !response
                    .headers()
                    .keys()
                    .any(|k| k.as_str().starts_with("access-control-")),
                "{path}"
            );
        }
    }
}

const REDIRECT: &str = "https://app.example/callback";

fn authorize_path(client: &TestClient, extra: &str) -> String {
    let query = serde_urlencoded::to_string([
        ("client_id", client.id.as_str()),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("state", "st@te/1 2"),
    ])
    .unwrap();
    format!("/oauth/authorize?{query}{extra}")
}

/// Signs in through the page the server sent us to; returns where sign-in leads.
async fn sign_in(browser: &Browser, sign_in_location: &str, login: &str, password: &str) -> Page {
    browser.sign_in(sign_in_location, login, password).await
}

/// Redeems `code` as the confidential `client` does (HTTP Basic); the token response.
async fn redeem(app: &TestApp, client: &TestClient, code: &str) -> Value {
    let response = app
        .token_basic(
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Query parameters of a redirect to the client.
fn client_params(location: &str) -> Vec<(String, String)> {
    assert!(location.starts_with(REDIRECT), "{location}");
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    serde_urlencoded::from_str(query).unwrap()
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

async fn signed_in_browser(app: &TestApp, client: &TestClient) -> (Browser, Page) {
    let browser = Browser::new(&app.base);
    let first = browser
        .get(&authorize_path(client, "&scope=read_user"))
        .await;
    assert_eq!(first.status, 303);
    let signed_in = sign_in(
        &browser,
        &first.location().unwrap(),
        "jane",
        "sekret-password",
    )
    .await;
    assert_eq!(signed_in.status, 303);
    let consent = browser.get(&signed_in.location().unwrap()).await;
    (browser, consent)
}

async fn browser_signs_in_consents_and_the_client_gets_tokens(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Test app") && consent.body.contains("read_user"));
    // Pages cannot be framed and run no foreign code.
    assert_eq!(consent.header("x-frame-options").as_deref(), Some("DENY"));
    let csp = consent.header("content-security-policy").unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'")
            && csp.contains("form-action 'self' https://app.example")
    );
    assert!(!csp.contains("script-src"));

    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(answer.status, 302);
    let params = client_params(&answer.location().unwrap());
    assert_eq!(
        param(&params, "state").as_deref(),
        Some("st@te/1 2"),
        "state comes back byte for byte"
    );
    assert_eq!(
        param(&params, "iss").as_deref(),
        Some(app.config.issuer()),
        "SEC-AZ-04"
    );
    let code = param(&params, "code").unwrap();

    let tokens = redeem(&app, &client, &code).await;
    assert_eq!(tokens["scope"], "read_user");
    assert_eq!(
        app.api_user(tokens["access_token"].as_str().unwrap())
            .await
            .0,
        200
    );

    // The same request again: consent was given, so the client gets a code at once.
    let again = browser
        .get(&authorize_path(&client, "&scope=read_user"))
        .await;
    assert_eq!(again.status, 302);
    assert!(param(&client_params(&again.location().unwrap()), "code").is_some());
}

async fn sec_az_01_pages_for_unknown_clients_and_unregistered_redirect_uris(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let browser = Browser::new(&app.base);
    let unknown = TestClient {
        id: "nope".into(),
        secret: String::new(),
    };
    let page = browser.get(&authorize_path(&unknown, "")).await;
    assert_eq!(page.status, 401);
    assert!(page.location().is_none());
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    for evil in [
        "https://evil.example/cb",
        "https://app.example/callback/",
        "https://app.example@evil.example/callback",
    ] {
        for prompt in ["", "&prompt=none"] {
            let path = authorize_path(&client, prompt).replace(
                &serde_urlencoded::to_string([("redirect_uri", REDIRECT)]).unwrap(),
                &serde_urlencoded::to_string([("redirect_uri", evil)]).unwrap(),
            );
            let page = browser.get(&path).await;
            assert_eq!(page.status, 400, "{evil}");
            assert!(page.location().is_none());
            assert!(
                !page.body.contains("href=\"https://evil"),
                "no link to the attacker"
            );
        }
    }
}

async fn sec_az_02_other_errors_redirect_with_error_state_and_iss(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.default_client().await;
    let browser = Browser::new(&app.base);
    for (extra, error) in [
        ("&scope=nope", "invalid_scope"),
        ("&response_mode=fragment", "unsupported_response_mode"),
        (
            "&request_uri=https%3A%2F%2F127.0.0.1%3A1%2Fr",
            "request_uri_not_supported",
        ),
    ] {
        let page = browser.get(&authorize_path(&client, extra)).await;
        assert_eq!(page.status, 302, "{extra}");
        let params = client_params(&page.location().unwrap());
        assert_eq!(param(&params, "error").as_deref(), Some(error));
        assert_eq!(param(&params, "state").as_deref(), Some("st@te/1 2"));
        assert_eq!(param(&params, "iss").as_deref(), Some(app.config.issuer()));
        assert!(param(&params, "code").is_none());
    }
    // SEC-AZ-03: no token in the front channel, ever.
    let page = browser
        .get(&authorize_path(&client, "").replace("response_type=code", "response_type=token"))
        .await;
    let location = page.location().unwrap();
    assert!(
        location.contains("error=unsupported_response_type") && !location.contains("access_token")
    );
}

async fn deny_redirects_with_access_denied(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "deny".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(answer.status, 302);
    let params = client_params(&answer.location().unwrap());
    assert_eq!(param(&params, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&params, "state").as_deref(), Some("st@te/1 2"));
    // The pending request was answered: the same form cannot be answered twice.
    let again = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(again.status, 400);
    assert!(again.location().is_none());
}

async fn sec_sc_02_consent_is_bound_to_the_server_side_request(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    let mut fields = consent.form("/oauth/authorize");
    assert!(
        fields
            .iter()
            .all(|(n, _)| n == "authenticity_token" || n == "pending"),
        "the form carries only an opaque id: {fields:?}"
    );
    // Fields added to the POST change nothing: the code goes where, and for what, the
    // consent page said.
    fields.push(("scope".into(), "api read_user".into()));
    fields.push(("redirect_uri".into(), "https://evil.example/cb".into()));
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(
        answer.status, 302,
        "SEC-WP-04: a redirect after POST is never 307/308"
    );
    let code = param(&client_params(&answer.location().unwrap()), "code").unwrap();
    let tokens = redeem(&app, &client, &code).await;
    assert_eq!(tokens["scope"], "read_user");
}

async fn form_post_answers_with_an_auto_submitting_form(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let browser = Browser::new(&app.base);
    let first = browser
        .get(&authorize_path(&client, "&response_mode=form_post"))
        .await;
    let signed_in = sign_in(
        &browser,
        &first.location().unwrap(),
        "jane",
        "sekret-password",
    )
    .await;
    let consent = browser.get(&signed_in.location().unwrap()).await;
    let mut fields = consent.form("/oauth/authorize");
    fields.push(("decision".into(), "approve".into()));
    let answer = browser.post("/oauth/authorize", &fields).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains(&format!("action=\"{REDIRECT}\"")));
    assert!(answer.input("code").is_some());
    assert_eq!(answer.input("state").as_deref(), Some("st@te/1 2"));
    assert_eq!(answer.input("iss").as_deref(), Some(app.config.issuer()));
    let csp = answer.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'nonce-") && csp.contains("form-action https://app.example"));
}

async fn sec_sc_01_consent_and_sign_in_are_csrf_protected(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, consent) = signed_in_browser(&app, &client).await;
    for token in [None, Some("wrong-token")] {
        let mut fields: Vec<(String, String)> = consent
            .inputs()
            .into_iter()
            .filter(|(n, _)| n != "authenticity_token")
            .collect();
        if let Some(token) = token {
            fields.push(("authenticity_token".into(), token.into()));
        }
        fields.push(("decision".into(), "approve".into()));
        let answer = browser.post("/oauth/authorize", &fields).await;
        assert_eq!(answer.status, 403);
        assert!(answer.location().is_none());
    }
    assert_eq!(app.count("access_grants").await, 0, "no code was issued");
    // Sign-in is protected too: a cross-site login form cannot sign the victim in.
    let fresh = Browser::new(&app.base);
    let answer = fresh
        .post(
            "/users/sign_in",
            &[
                ("login".into(), "jane".into()),
                ("password".into(), "sekret-password".into()),
            ],
        )
        .await;
    assert_eq!(answer.status, 403);
}

async fn sec_wp_03_open_redirects_on_the_return_address_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    for evil in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let browser = Browser::new(&app.base);
        let query = serde_urlencoded::to_string([("return_to", evil)]).unwrap();
        let answer = sign_in(
            &browser,
            &format!("/users/sign_in?{query}"),
            "jane",
            "sekret-password",
        )
        .await;
        assert_eq!(answer.status, 303);
        assert_eq!(answer.location().as_deref(), Some("/"), "{evil}");
    }
}

async fn sec_rl_01_sign_in_failures_are_generic_and_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let browser = Browser::new(&app.base);
    let unknown = sign_in(&browser, "/users/sign_in", "nobody", "whatever-pw").await;
    let wrong = sign_in(&browser, "/users/sign_in", "jane", "wrong-password").await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    assert!(
        unknown
            .body
            .contains("Invalid username, e-mail or password.")
    );
    assert!(wrong.body.contains("Invalid username, e-mail or password."));
    for _ in 0..4 {
        sign_in(&browser, "/users/sign_in", "jane", "wrong-password").await;
    }
    let throttled = sign_in(&browser, "/users/sign_in", "jane", "sekret-password").await;
    assert_eq!(throttled.status, 429);
    assert!(throttled.header("retry-after").is_some());
    // Signed in: the session cookie is HttpOnly and SameSite=Lax.
    app.clock.advance(301);
    let page = browser.get("/users/sign_in").await;
    let mut fields = page.form("/users/sign_in");
    fields.push(("login".into(), "jane".into()));
    fields.push(("password".into(), "sekret-password".into()));
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/users/sign_in"))
        .send()
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let signed_in = browser.post("/users/sign_in", &fields).await;
    assert_eq!(signed_in.status, 303);
}

async fn prompt_login_asks_for_a_fresh_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "sekret-password").await;
    let client = app.default_client().await;
    let (browser, _) = signed_in_browser(&app, &client).await;
    let page = browser.get(&authorize_path(&client, "&prompt=login")).await;
    assert_eq!(page.status, 303);
    let location = page.location().unwrap();
    assert!(location.starts_with("/users/sign_in?return_to="));
    assert!(
        !location.contains("prompt"),
        "the fresh sign-in is not asked for again"
    );
    // The session is gone until the user signs in again.
    let home = browser.get("/").await;
    assert_eq!(home.location().as_deref(), Some("/users/sign_in"));
    // max_age: a sign-in older than max_age needs a new one.
    let (browser, _) = signed_in_browser(&app, &client).await;
    app.clock.advance(120);
    let page = browser.get(&authorize_path(&client, "&max_age=60")).await;
    assert_eq!(page.status, 303);
    let location = page.location().unwrap();
    assert!(location.starts_with("/users/sign_in?") && !location.contains("max_age"));
    // prompt=none never shows the sign-in page, even for a stale sign-in.
    let (browser, _) = signed_in_browser(&app, &client).await;
    app.clock.advance(120);
    let page = browser
        .get(&authorize_path(&client, "&max_age=60&prompt=none"))
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(
        param(&client_params(&page.location().unwrap()), "error").as_deref(),
        Some("login_required")
    );
    // Signed out, prompt=login asks for one sign-in, not two.
    let page = Browser::new(&app.base)
        .get(&authorize_path(&client, "&prompt=login"))
        .await;
    assert!(!page.location().unwrap().contains("prompt"));
}
