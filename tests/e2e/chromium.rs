//! A real browser: headless Chromium, driven through chromedriver (WebDriver), signs in to
//! Doorward, approves, and lands on a small client site run by the test, which exchanges the
//! code and calls `/api/v4/user`. Each page is saved as a screenshot under
//! `target/screenshots/` so that a person can look at them.
//!
//! `.ci/run` installs Debian's `chromium` and `chromium-driver`; elsewhere, without them, the
//! test says it skipped (and fails under CI).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use doorward_tests::{Backend, TestApp, TestClient};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// The client site: `/login` sends the browser to Doorward, `/callback` exchanges the code
/// and greets the user by the name `/api/v4/user` returned.
struct ClientSite {
    doorward: String,
    /// Trusts Doorward's CA when it serves HTTPS.
    http: reqwest::Client,
    client: TestClient,
    redirect_uri: String,
}

async fn client_login(site: web::Data<ClientSite>) -> HttpResponse {
    let query = serde_urlencoded::to_string([
        ("client_id", site.client.id.as_str()),
        ("redirect_uri", site.redirect_uri.as_str()),
        ("response_type", "code"),
        ("scope", "read_user"),
        ("state", "browser-state"),
    ])
    .unwrap();
    HttpResponse::Found()
        .insert_header((
            "Location",
            format!("{}/oauth/authorize?{query}", site.doorward),
        ))
        .finish()
}

async fn client_callback(
    site: web::Data<ClientSite>,
    query: web::Query<Vec<(String, String)>>,
) -> HttpResponse {
    let get = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    if get("state").as_deref() != Some("browser-state") {
        return HttpResponse::BadRequest().body("state mismatch");
    }
    let Some(code) = get("code") else {
        return HttpResponse::BadRequest().body(format!("no code: {:?}", get("error")));
    };
    let http = &site.http;
    let tokens: Value = http
        .post(format!("{}/oauth/token", site.doorward))
        .basic_auth(&site.client.id, Some(&site.client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &site.redirect_uri),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user: Value = http
        .get(format!("{}/api/v4/user", site.doorward))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or(""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!doctype html><title>Client</title><h1 id=\"greeting\">Signed in as {}</h1>",
            user["username"].as_str().unwrap_or("?")
        ))
}

#[tokio::test]
async fn a_real_browser_signs_in_approves_and_the_client_calls_the_api() {
    browser_signs_in(None).await;
}

/// SEC-GB-10 in a real browser: auth-web's TLS listener serves the pages (HSTS, the
/// `__Host-` cookie, which Chromium takes only over a secure connection), and services talk
/// mTLS. Chromium trusts exactly the server's key (`--ignore-certificate-errors-spki-list`).
#[tokio::test]
async fn sec_gb_10_a_real_browser_signs_in_over_https() {
    let pki = doorward_tests::pki::TestPki::new();
    browser_signs_in(Some(&pki)).await;
}

async fn browser_signs_in(tls: Option<&doorward_tests::pki::TestPki>) {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium and chromedriver must be installed under CI (.ci/run installs them)");
        }
        eprintln!("skipped: {CHROMIUM} or {CHROMEDRIVER} is missing");
        return;
    }
    let app = match tls {
        Some(pki) => TestApp::spawn_tls(Backend::Sqlite, pki).await,
        None => TestApp::spawn(Backend::Sqlite).await,
    };
    let prefix = if tls.is_some() { "https-" } else { "" };
    app.create_user("jane", "sekret-password").await;

    // The client site, on a free loopback port registered as its redirect URI.
    let site_listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let site_base = format!("http://{}", site_listener.local_addr().unwrap());
    let redirect_uri = format!("{site_base}/callback");
    let fields = token_service::apps::ApplicationFields {
        name: "Example Client".into(),
        redirect_uris: vec![redirect_uri.clone()],
        scopes: vec!["read_user".into()],
        confidential: true,
        trusted: false,
        grant_types: Vec::new(),
        owner_id: None,
    };
    let registered = app.register(fields).await;
    let site = web::Data::new(ClientSite {
        doorward: app.base.clone(),
        http: app.http.clone(),
        client: registered,
        redirect_uri,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(site.clone())
            .route("/login", web::get().to(client_login))
            .route("/callback", web::get().to(client_callback))
    })
    .workers(1)
    .listen(site_listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let port = free_port();
    let _driver = Driver(
        Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let mut args = vec![
        "--headless=new".to_owned(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-dev-shm-usage".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--window-size=1000,900".into(),
    ];
    if let Some(pki) = tls {
        let hash = pki.spki_sha256("server");
        args.push(format!("--ignore-certificate-errors-spki-list={hash}"));
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    let mut browser = None;
    for _ in 0..50 {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => {
                browser = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let browser = browser.expect("chromedriver answers");

    browser.goto(&format!("{site_base}/login")).await.unwrap();
    browser
        .wait()
        .for_element(Locator::Id("login"))
        .await
        .unwrap();
    assert!(
        browser
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/users/sign_in")
    );
    screenshot(&browser, &format!("{prefix}1-sign-in")).await;
    browser
        .find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys("jane")
        .await
        .unwrap();
    browser
        .find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("sekret-password")
        .await
        .unwrap();
    browser
        .find(Locator::Css("form button.primary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // After each navigation, wait for the page (a find right after a click can race it).
    let authorize = browser
        .wait()
        .for_element(Locator::Css("button[value=approve]"))
        .await
        .unwrap();
    let consent = browser.source().await.unwrap();
    assert!(consent.contains("Example Client") && consent.contains("read_user"));
    screenshot(&browser, &format!("{prefix}2-consent")).await;
    authorize.click().await.unwrap();

    let greeting = browser
        .wait()
        .for_element(Locator::Id("greeting"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(greeting, "Signed in as jane");
    screenshot(&browser, &format!("{prefix}3-client-signed-in")).await;

    for (path, name) in [
        (
            "/oauth/authorized_applications",
            "4-authorized-applications",
        ),
        ("/oauth/applications/new", "5-new-application"),
        (
            "/oauth/authorize?client_id=unknown&redirect_uri=x&response_type=code",
            "6-error-page",
        ),
    ] {
        browser.goto(&format!("{}{path}", app.base)).await.unwrap();
        screenshot(&browser, &format!("{prefix}{name}")).await;
    }
    browser.close().await.unwrap();
}
