//! What an operator relies on, tried on the real binaries: the probes (`/-/liveness`,
//! `/-/readiness`, gRPC health), the metrics (auth-web's `/-/metrics`, token-service's
//! `metrics_addr`) read by a real Prometheus, JSON logs that carry one request id across
//! both services, and who may read the metrics.
//!
//! Needs the workspace's binaries (`cargo build --workspace` first) and, for the Prometheus
//! test, Debian's `prometheus` package (`.ci/run` installs it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use doorward_tests::netns::{Scratch, Service, workspace_binary};
use doorward_tests::{Backend, TestApp, skip_postgres};
use serde_json::Value;

const USERNAME: &str = "jane";
const PASSWORD: &str = "operations password 1";
const SERVICE_TOKEN: &str = "operations-service-token-1234";
/// auth-web's workers in the split tests (each keeps its own readiness answer).
const WEB_WORKERS: u64 = 2;

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
}

/// A confidential application's credentials, from `apps create --json`.
struct Application {
    uid: String,
    secret: String,
}

/// The split services on loopback: token-service (SQLite unless `database_url` says
/// otherwise, its metrics listener on, JSON logs) and auth-web (JSON logs).
struct Split {
    scratch: Scratch,
    database_url: String,
    grpc: SocketAddr,
    metrics: SocketAddr,
    web: SocketAddr,
    token_service: Option<Service>,
    // Held: dropping it stops auth-web.
    _auth_web: Service,
    http: reqwest::Client,
}

impl Split {
    async fn start(label: &str, database_url: Option<String>) -> Split {
        let scratch = Scratch::new(label);
        let database_url = database_url.unwrap_or_else(|| {
            format!("sqlite://{}", scratch.path().join("doorward.db").display())
        });
        let (grpc, metrics, web) = (free_addr(), free_addr(), free_addr());
        let token_service = start_token_service(&scratch, &database_url, grpc, metrics).await;
        let mut command = Command::new(workspace_binary("auth-web"));
        command
            .env("AUTH_WEB_ADDR", web.to_string())
            .env("PUBLIC_URL", format!("http://{web}"))
            .env("TOKEN_SERVICE_URL", format!("http://{grpc}"))
            .env("SERVICE_TOKEN", SERVICE_TOKEN)
            .env("DOORWARD_WEB__WORKERS", WEB_WORKERS.to_string())
            .env("DOORWARD_LOG_FORMAT", "json");
        let mut auth_web = Service::start("auth-web", command, scratch.path());
        let http = reqwest::Client::new();
        let liveness = format!("http://{web}/-/liveness");
        auth_web.wait_ready(|| answers(&http, &liveness, 200)).await;
        Split {
            scratch,
            database_url,
            grpc,
            metrics,
            web,
            token_service: Some(token_service),
            _auth_web: auth_web,
            http,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.web)
    }

    /// Runs a token-service operator command against the same database.
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> String {
        cli(
            &workspace_binary("token-service"),
            &[("DATABASE_URL", &self.database_url)],
            args,
            stdin,
        )
    }

    fn seed(&self) -> Application {
        seed(|args, stdin| self.cli(args, stdin))
    }

    async fn stop_token_service(&mut self) {
        self.token_service = None;
    }

    async fn restart_token_service(&mut self) {
        self.token_service = Some(
            start_token_service(&self.scratch, &self.database_url, self.grpc, self.metrics).await,
        );
    }

    fn log(&self, name: &str) -> Vec<Value> {
        json_lines(&self.scratch.path().join(format!("{name}.log")))
    }
}

async fn start_token_service(
    scratch: &Scratch,
    database_url: &str,
    grpc: SocketAddr,
    metrics: SocketAddr,
) -> Service {
    let mut command = Command::new(workspace_binary("token-service"));
    command
        .env("DATABASE_URL", database_url)
        .env("TOKEN_SERVICE_ADDR", grpc.to_string())
        .env("SERVICE_TOKEN", SERVICE_TOKEN)
        .env("DOORWARD_METRICS_ADDR", metrics.to_string())
        .env("DOORWARD_LOG_FORMAT", "json");
    let mut service = Service::start("token-service", command, scratch.path());
    let http = reqwest::Client::new();
    let readiness = format!("http://{metrics}/-/readiness");
    service.wait_ready(|| answers(&http, &readiness, 200)).await;
    service
}

fn cli(binary: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> String {
    let mut command = Command::new(binary);
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A user and a confidential application, through the operator CLI.
fn seed(run: impl Fn(&[&str], Option<&str>) -> String) -> Application {
    run(
        &[
            "users",
            "create",
            "--username",
            USERNAME,
            "--email",
            "jane@example.com",
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    let app: Value = serde_json::from_str(&run(
        &[
            "apps",
            "create",
            "--name",
            "Operations",
            "--redirect-uri",
            "http://127.0.0.1/cb",
            "--json",
        ],
        None,
    ))
    .unwrap();
    Application {
        uid: app["uid"].as_str().unwrap().to_owned(),
        secret: app["secret"].as_str().unwrap().to_owned(),
    }
}

async fn answers(http: &reqwest::Client, url: &str, status: u16) -> Result<(), String> {
    match http.get(url).send().await {
        Ok(response) if response.status().as_u16() == status => Ok(()),
        Ok(response) => Err(format!("{url}: {}", response.status())),
        Err(err) => Err(format!("{url}: {err}")),
    }
}

async fn status_of(http: &reqwest::Client, url: &str) -> u16 {
    http.get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until `url` answers `status`, for at most `within`; returns how long it took.
async fn until_status(
    http: &reqwest::Client,
    url: &str,
    status: u16,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        if status_of(http, url).await == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn password_grant(
    http: &reqwest::Client,
    url: &str,
    app: &Application,
    password: &str,
    request_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .post(url)
        .basic_auth(&app.uid, Some(&app.secret))
        .form(&[
            ("grant_type", "password"),
            ("username", USERNAME),
            ("password", password),
        ]);
    if let Some(id) = request_id {
        request = request.header("x-request-id", id);
    }
    request.send().await.unwrap()
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (the labels as
/// written, in the exposition's order), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The body of a GET of `url`, as text.
async fn text_of(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

#[tokio::test]
async fn probes_and_metrics_of_a_fresh_all_in_one() {
    let scratch = Scratch::new("all-in-one-metrics");
    let web = free_addr();
    let data_dir = scratch.dir("data");
    let env = [
        ("DATA_DIR", data_dir.to_str().unwrap().to_owned()),
        ("AUTH_WEB_ADDR", web.to_string()),
        ("PUBLIC_URL", format!("http://{web}")),
        ("TOKEN_SERVICE_ADDR", free_addr().to_string()),
    ];
    let mut command = Command::new(workspace_binary("doorward"));
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut doorward = Service::start("doorward", command, scratch.path());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{web}{path}");
    let liveness = url("/-/liveness");
    doorward.wait_ready(|| answers(&http, &liveness, 200)).await;

    let readiness = http.get(url("/-/readiness")).send().await.unwrap();
    assert_eq!(readiness.status(), 200);
    let body: Value = readiness.json().await.unwrap();
    assert_eq!(body["checks"]["token_service"], "ok");
    let before = http.get(url("/-/metrics")).send().await.unwrap();
    assert_eq!(before.status(), 200);
    assert!(
        before.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let before = before.text().await.unwrap();
    // Both services' metrics are in the one process's exposition.
    for family in [
        "doorward_web_http_requests_total",
        "doorward_database_up 1",
        "doorward_grpc_requests_total",
        "process_resident_memory_bytes",
    ] {
        assert!(before.contains(family), "{family} missing:\n{before}");
    }
    // The signing keys' ages, and their next scheduled rotation (90 days by default).
    for purpose in ["access_token", "id_token"] {
        let age = format!("doorward_signing_key_age_seconds{{purpose=\"{purpose}\"}}");
        assert!(
            sample(&before, &age).is_some_and(|s| (0.0..60.0).contains(&s)),
            "{age}"
        );
        let next = format!(
            "doorward_signing_key_next_rotation_timestamp_seconds{{purpose=\"{purpose}\"}}"
        );
        let in_days = (sample(&before, &next).unwrap_or(0.0)
            - std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64())
            / 86_400.0;
        assert!(
            (89.9..=90.0).contains(&in_days),
            "{next}: in {in_days} days"
        );
    }
    let issued = "doorward_grants_total{grant_type=\"password\",outcome=\"issued\"}";
    assert_eq!(sample(&before, issued), None);

    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = seed(|args, stdin| cli(&workspace_binary("doorward"), &env, args, stdin));
    let token = password_grant(&http, &url("/oauth/token"), &app, PASSWORD, None).await;
    assert_eq!(token.status(), 200);
    let wrong = password_grant(&http, &url("/oauth/token"), &app, "wrong password", None).await;
    assert_eq!(wrong.status(), 400);

    let after = text_of(&http, &url("/-/metrics")).await;
    assert_eq!(sample(&after, issued), Some(1.0));
    assert_eq!(
        sample(
            &after,
            "doorward_grants_total{grant_type=\"password\",outcome=\"invalid_grant\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "doorward_web_token_responses_total{grant_type=\"password\",outcome=\"issued\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &after,
            "doorward_web_http_requests_total{method=\"POST\",route=\"/oauth/token\",status=\"400\"}"
        ),
        Some(1.0)
    );
    assert!(
        sample(&after, "doorward_writer_batch_size_count").is_some_and(|n| n >= 1.0),
        "the token was committed through the writer"
    );
}

#[tokio::test]
async fn readiness_follows_token_service_and_liveness_does_not() {
    let mut split = Split::start("readiness", None).await;
    let http = split.http.clone();
    let (readiness, liveness) = (split.url("/-/readiness"), split.url("/-/liveness"));
    assert_eq!(status_of(&http, &readiness).await, 200);
    sec_ob_04_readiness_does_not_pass_load_to_token_service(&split).await;

    split.stop_token_service().await;
    let took = until_status(&http, &readiness, 503, Duration::from_secs(10)).await;
    eprintln!("readiness: 503 {took:?} after token-service stopped");
    let body: Value = http
        .get(&readiness)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["checks"]["token_service"], "unreachable");
    assert_eq!(
        status_of(&http, &liveness).await,
        200,
        "auth-web itself is alive: restarting it would not help"
    );
    let metrics = text_of(&http, &split.url("/-/metrics")).await;
    assert_eq!(
        sample(&metrics, "doorward_web_token_service_ready"),
        Some(0.0)
    );
    assert!(
        metrics.contains("doorward_web_upstream_errors_total{code=\"UNAVAILABLE\",rpc=\"grpc.health.v1.Health/Check\"}"),
        "{metrics}"
    );

    split.restart_token_service().await;
    let took = until_status(&http, &readiness, 200, Duration::from_secs(15)).await;
    eprintln!("readiness: 200 again {took:?} after token-service restarted");
}

/// SEC-OB-04: 300 readiness probes in a burst reach token-service at most once a second
/// per auth-web worker.
async fn sec_ob_04_readiness_does_not_pass_load_to_token_service(split: &Split) {
    let checks = "doorward_grpc_requests_total{code=\"OK\",rpc=\"grpc.health.v1.Health/Check\"}";
    let metrics = format!("http://{}/-/metrics", split.metrics);
    let read = || async {
        let text = text_of(&split.http, &metrics).await;
        sample(&text, checks).unwrap_or(0.0)
    };
    let before = read().await;
    let started = Instant::now();
    let url = split.url("/-/readiness");
    let probes = (0..300).map(|_| status_of(&split.http, &url));
    let answers = futures::future::join_all(probes).await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");
    let seconds = started.elapsed().as_secs() + 1;
    let reached = read().await - before;
    assert!(
        reached <= (WEB_WORKERS * (seconds + 1)) as f64,
        "300 probes in {seconds} s reached token-service {reached} times"
    );
}

#[tokio::test]
async fn readiness_fails_while_token_service_refuses_auth_webs_credentials() {
    let split = Split::start("readiness-refused", None).await;
    // A second auth-web whose service token token-service does not know: gRPC health
    // (open to anyone) answers SERVING, but every internal call would be refused.
    let web = free_addr();
    let mut command = Command::new(workspace_binary("auth-web"));
    command
        .env("AUTH_WEB_ADDR", web.to_string())
        .env("PUBLIC_URL", format!("http://{web}"))
        .env("TOKEN_SERVICE_URL", format!("http://{}", split.grpc))
        .env("SERVICE_TOKEN", "not-the-service-token-1234");
    let mut stray = Service::start("auth-web-wrong-token", command, split.scratch.path());
    let liveness = format!("http://{web}/-/liveness");
    stray
        .wait_ready(|| answers(&split.http, &liveness, 200))
        .await;
    let readiness = split
        .http
        .get(format!("http://{web}/-/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(readiness.status(), 503);
    let body: Value = readiness.json().await.unwrap();
    assert_eq!(body["checks"]["token_service"], "refused");
    assert_eq!(
        status_of(&split.http, &split.url("/-/readiness")).await,
        200
    );
}

#[tokio::test]
async fn sec_ob_03_json_logs_carry_one_request_id_across_both_services() {
    let split = Split::start("request-id", None).await;
    let app = split.seed();
    let token_url = split.url("/oauth/token");

    // An id from the client (or a proxy) is kept; a wrong password makes token-service log
    // an audit event inside the call.
    let response = password_grant(
        &split.http,
        &token_url,
        &app,
        "wrong password",
        Some("e2e-req.1_A"),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "e2e-req.1_A");
    // No id, or one that is not a plain token: a new one, sent back.
    let made_up = password_grant(
        &split.http,
        &token_url,
        &app,
        "wrong password",
        Some("a b\"c"),
    )
    .await
    .headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(made_up.len(), 32);
    assert!(made_up.bytes().all(|b| b.is_ascii_hexdigit()));

    for id in ["e2e-req.1_A", made_up.as_str()] {
        let web = split.log("auth-web");
        let access = web
            .iter()
            .find(|line| line["target"] == "access" && line["request_id"] == id)
            .unwrap_or_else(|| panic!("no access line for {id} in auth-web's log: {web:?}"));
        assert_eq!(access["route"], "/oauth/token");
        assert_eq!(access["status"], 400);
        assert!(access["latency_us"].as_u64().is_some());
        for key in ["timestamp", "level", "message"] {
            assert!(access.get(key).is_some(), "{key} missing: {access}");
        }
        let service = split.log("token-service");
        let audit = service
            .iter()
            .find(|line| line["span"]["request_id"] == id && line["event"] == "sign_in_failed")
            .unwrap_or_else(|| panic!("no audit line for {id} in token-service's log"));
        assert_eq!(audit["span"]["rpc"], "doorward.v1.TokenService/Exchange");
        assert_eq!(audit["target"], "audit");
    }
    // Nothing logged is a secret (SEC-SL-03).
    let everything = std::fs::read_to_string(split.scratch.path().join("token-service.log"))
        .unwrap()
        + &std::fs::read_to_string(split.scratch.path().join("auth-web.log")).unwrap();
    assert!(!everything.contains(&app.secret));
    assert!(!everything.contains("wrong password"));
}

#[tokio::test]
async fn sec_ob_05_token_service_metrics_listener_serves_metrics_and_probes_only() {
    let split = Split::start("metrics-listener", None).await;
    let app = split.seed();
    let token = password_grant(
        &split.http,
        &split.url("/oauth/token"),
        &app,
        PASSWORD,
        None,
    )
    .await;
    assert_eq!(token.status(), 200);
    let base = format!("http://{}", split.metrics);
    let text = text_of(&split.http, &format!("{base}/-/metrics")).await;
    assert_eq!(
        sample(
            &text,
            "doorward_grants_total{grant_type=\"password\",outcome=\"issued\"}"
        ),
        Some(1.0)
    );
    // Split: token-service's exposition has none of auth-web's metrics.
    assert!(!text.contains("doorward_web_"), "{text}");
    assert_eq!(
        status_of(&split.http, &format!("{base}/-/liveness")).await,
        200
    );
    assert_eq!(
        status_of(&split.http, &format!("{base}/oauth/token")).await,
        404
    );
    let post = split
        .http
        .post(format!("{base}/-/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn sec_ob_01_02_metrics_are_for_monitoring_ips_and_never_label_raw_paths() {
    let app = TestApp::spawn_with(Backend::Sqlite, |config| {
        config.web.monitoring_ips = vec!["10.9.9.9".into()];
        config.web.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    // An attacker's paths and methods must not grow the label sets.
    let path = format!("/no/such/{}", rand::random::<u64>());
    let odd = reqwest::Method::from_bytes(b"FROBNICATE").unwrap();
    app.http.request(odd, app.url(&path)).send().await.unwrap();
    let refused = app.http.get(app.url("/-/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), 404, "127.0.0.1 is not a monitoring IP");
    let spoofed = app
        .http
        .get(app.url("/-/metrics"))
        .header("x-forwarded-for", "10.9.9.9, 192.0.2.1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        spoofed.status(),
        404,
        "the right-most untrusted hop is the client, not what it claims"
    );
    let via_proxy = app
        .http
        .get(app.url("/-/metrics"))
        .header("x-forwarded-for", "10.9.9.9")
        .send()
        .await
        .unwrap();
    assert_eq!(via_proxy.status(), 200);
    let text = via_proxy.text().await.unwrap();
    assert!(!text.contains(&path), "a raw path became a label");
    assert!(!text.contains("FROBNICATE"), "a raw method became a label");
    assert!(text.contains("route=\"unmatched\""));
    assert!(text.contains("method=\"other\""));
}

/// A TCP forwarder to PostgreSQL that the test can cut (every connection closed, new ones
/// closed at once) and restore: an outage of the database for one token-service only.
struct CuttableLink {
    addr: SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl CuttableLink {
    async fn to(target: String) -> CuttableLink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (cut2, open2) = (cut.clone(), open.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if cut2.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                open2.lock().unwrap().push(task.abort_handle());
            }
        });
        CuttableLink {
            addr,
            cut,
            open,
            accept,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in self.open.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for CuttableLink {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn grpc_health(addr: SocketAddr) -> Option<i32> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .ok()?
        .connect()
        .await
        .ok()?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: "doorward.v1.TokenService".into(),
        })
        .await
        .ok()?;
    Some(answer.into_inner().status)
}

async fn until_health(addr: SocketAddr, status: i32, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if grpc_health(addr).await == Some(status) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "gRPC health did not become {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn grpc_health_is_not_serving_while_the_database_is_unreachable() {
    use tonic_health::pb::health_check_response::ServingStatus;
    let Some(Backend::Postgres(admin_url)) = Backend::postgres() else {
        return skip_postgres("grpc_health_is_not_serving_while_the_database_is_unreachable");
    };
    let name = format!("doorward_ops_{:016x}", rand::random::<u64>());
    {
        use diesel::{Connection, RunQueryDsl};
        let mut admin = diesel::PgConnection::establish(&admin_url).unwrap();
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .unwrap();
    }
    let server = reqwest::Url::parse(&admin_url).unwrap();
    let link = CuttableLink::to(format!(
        "{}:{}",
        server.host_str().unwrap(),
        server.port().unwrap_or(5432)
    ))
    .await;
    let mut through_link = server.clone();
    through_link.set_port(Some(link.addr.port())).unwrap();
    through_link.set_path(&format!("/{name}"));
    let split = Split::start("database-down", Some(through_link.to_string())).await;
    let readiness = format!("http://{}/-/readiness", split.metrics);
    assert_eq!(
        grpc_health(split.grpc).await,
        Some(ServingStatus::Serving as i32)
    );

    link.cut();
    let took = until_health(
        split.grpc,
        ServingStatus::NotServing as i32,
        Duration::from_secs(15),
    )
    .await;
    eprintln!("gRPC health: NOT_SERVING {took:?} after the database link was cut");
    assert_eq!(status_of(&split.http, &readiness).await, 503);
    let metrics = text_of(&split.http, &format!("http://{}/-/metrics", split.metrics)).await;
    assert_eq!(sample(&metrics, "doorward_database_up"), Some(0.0));
    // auth-web follows: token-service answers, but NOT_SERVING.
    until_status(
        &split.http,
        &split.url("/-/readiness"),
        503,
        Duration::from_secs(5),
    )
    .await;
    let body: Value = split
        .http
        .get(split.url("/-/readiness"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"]["token_service"], "not_serving");

    link.restore();
    let took = until_health(
        split.grpc,
        ServingStatus::Serving as i32,
        Duration::from_secs(15),
    )
    .await;
    eprintln!("gRPC health: SERVING {took:?} after the database came back");
    assert_eq!(status_of(&split.http, &readiness).await, 200);
    drop(split);
    doorward_tests::drop_postgres_database(&admin_url, &name);
}

/// The `prometheus` binary, if installed; under CI its absence is a failure.
fn prometheus_binary() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/prometheus");
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "/usr/bin/prometheus is missing under CI (.ci/run installs Debian's prometheus)"
    );
    eprintln!("skipped: /usr/bin/prometheus is not installed (apt-get install prometheus)");
    None
}

async fn prometheus_value(
    http: &reqwest::Client,
    prometheus: SocketAddr,
    query: &str,
) -> Option<f64> {
    let answer: Value = http
        .get(format!("http://{prometheus}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    answer["data"]["result"][0]["value"][1]
        .as_str()?
        .parse()
        .ok()
}

#[tokio::test]
async fn prometheus_scrapes_both_services() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let split = Split::start("prometheus", None).await;
    let app = split.seed();
    let prometheus = free_addr();
    let config = split.scratch.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: doorward-auth-web\n    metrics_path: /-/metrics\n    static_configs:\n      \
             - targets: ['{}']\n  \
             - job_name: doorward-token-service\n    metrics_path: /-/metrics\n    static_configs:\n      \
             - targets: ['{}']\n",
            split.web, split.metrics
        ),
    )
    .unwrap();
    let mut command = Command::new(binary);
    command
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            split.scratch.dir("tsdb").display()
        ))
        .arg(format!("--web.listen-address={prometheus}"));
    let mut server = Service::start("prometheus", command, split.scratch.path());
    let http = reqwest::Client::new();
    let ready = format!("http://{prometheus}/-/ready");
    server.wait_ready(|| answers(&http, &ready, 200)).await;

    let token = password_grant(
        &split.http,
        &split.url("/oauth/token"),
        &app,
        PASSWORD,
        None,
    )
    .await;
    assert_eq!(token.status(), 200);
    let queries = [
        "up{job=\"doorward-auth-web\"}",
        "up{job=\"doorward-token-service\"}",
        "doorward_web_token_responses_total{job=\"doorward-auth-web\",grant_type=\"password\",outcome=\"issued\"}",
        "doorward_grants_total{job=\"doorward-token-service\",grant_type=\"password\",outcome=\"issued\"}",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for query in queries {
        loop {
            if prometheus_value(&http, prometheus, query).await == Some(1.0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never read 1 for {query}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    drop(server);
}
