//! Several hosts (SEC-GB-*, over mutual TLS): token-service, auth-web, the example resource
//! server and an outsider, each in its own network namespace with its own address, run as
//! the real binaries with the certificates `token-service tls init` makes. The seed's flows
//! work across hosts; the outsider is refused in plaintext, without a certificate and with
//! a certificate from another CA; a resource server may validate tokens and nothing else.
//! Where namespaces cannot be made, every host is 127.0.0.1 and the same assertions run.
//!
//! Needs the workspace's binaries: `cargo build --workspace` first.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl, SqliteConnection};
use doorward_tests::netns::{Host, Net, Scratch, Service, workspace_binary};
use serde_json::Value;

const USERNAME: &str = "jane";
const PASSWORD: &str = "multi-host password 1";
const SESSION_COOKIE: &str = "__Host-doorward_session";

/// A certificate and its key, as `tls init` wrote them.
struct CertAndKey {
    cert: PathBuf,
    key: PathBuf,
}

impl CertAndKey {
    /// grpc_probe's flags that present this certificate.
    fn probe_flags(&self) -> [&str; 4] {
        ["--cert", text(&self.cert), "--key", text(&self.key)]
    }
}

/// What `tls init --json` wrote.
struct Certificates {
    ca: PathBuf,
    server: CertAndKey,
    auth_web: CertAndKey,
}

/// A confidential application's credentials, from `apps create --json`.
struct Application {
    uid: String,
    secret: String,
}

#[tokio::test]
async fn multi_host_mtls_boundary() {
    let started = Instant::now();
    let scratch = Scratch::new("multi-host");
    let net = Net::namespaces_or_loopback(&["ts", "web", "rs", "out"]);
    eprintln!("multi_host: hosts on {}", net.describe());
    let (ts, web, rs, out) = (
        net.host("ts"),
        net.host("web"),
        net.host("rs"),
        net.host("out"),
    );
    let (ts_addr, web_addr, rs_addr) = (ts.free_addr(), web.free_addr(), rs.free_addr());
    let ts_url = format!("https://{ts_addr}");
    let public_url = format!("https://{web_addr}");

    // One server certificate for token-service and auth-web, as `tls init` suggests (on
    // loopback both hosts are 127.0.0.1, named once); and a second, foreign CA whose client
    // certificate must not open the door.
    let mut names = vec![ts.ip.to_string(), web.ip.to_string(), "localhost".into()];
    names.dedup();
    let certs = tls_init(&scratch.path().join("tls"), &names);
    let foreign = tls_init(&scratch.path().join("foreign-tls"), &names);
    let ca = text(&certs.ca);

    // The seed, written with the operator commands before token-service starts.
    let ts_dir = scratch.dir("ts");
    let database = ts_dir.join("doorward.db");
    let ts_env = vec![
        ("DATABASE_URL", format!("sqlite://{}", database.display())),
        ("DATA_DIR", owned(&ts_dir)),
        ("PUBLIC_URL", public_url.clone()),
        ("TOKEN_SERVICE_ADDR", ts_addr.to_string()),
        ("DOORWARD_GRPC_TLS__CERT_FILE", owned(&certs.server.cert)),
        ("DOORWARD_GRPC_TLS__KEY_FILE", owned(&certs.server.key)),
        ("DOORWARD_GRPC_TLS__CLIENT_CA_FILE", owned(&certs.ca)),
    ];
    let (client, resource_app) = seed(&ts_env);

    // The services, each on its host. Declared after `net`, so they are stopped before
    // their namespaces are removed.
    let logs = scratch.dir("logs");
    let command = with_env(
        ts.command(workspace_binary("token-service")),
        &ts_env,
        &ts_dir,
    );
    let mut token_service = Service::start("token-service", command, &logs);
    token_service
        .wait_ready(|| async {
            // gRPC health is open to anyone who completes the TLS handshake.
            let health = probe(ts, &ts_url, "grpc.health.v1.Health/Check", &["--ca", ca]);
            if health == "OK" { Ok(()) } else { Err(health) }
        })
        .await;

    let web_dir = scratch.dir("web");
    let web_env = vec![
        ("DATA_DIR", owned(&web_dir)),
        ("AUTH_WEB_ADDR", web_addr.to_string()),
        ("PUBLIC_URL", public_url.clone()),
        ("TOKEN_SERVICE_URL", ts_url.clone()),
        ("DOORWARD_TOKEN_SERVICE_TLS__CA_FILE", owned(&certs.ca)),
        (
            "DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE",
            owned(&certs.auth_web.cert),
        ),
        (
            "DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE",
            owned(&certs.auth_web.key),
        ),
        ("DOORWARD_WEB_TLS__CERT_FILE", owned(&certs.server.cert)),
        ("DOORWARD_WEB_TLS__KEY_FILE", owned(&certs.server.key)),
    ];
    let command = with_env(
        web.command(workspace_binary("auth-web")),
        &web_env,
        &web_dir,
    );
    let mut auth_web = Service::start("auth-web", command, &logs);
    let https = https_client(&certs.ca);
    auth_web
        .wait_ready(|| answers_200(&https, format!("{public_url}/-/health")))
        .await;

    // The resource server reaches token-service over TLS without a client certificate:
    // its application's credentials are what it proves.
    let mut command = rs.command(workspace_binary("resource-server"));
    command.args(["--listen", &rs_addr.to_string(), "--mode", "grpc"]);
    command.args(["--client-id", &resource_app.uid, "--issuer", &public_url]);
    command.args(["--token-service", &ts_url, "--token-service-ca-file", ca]);
    let rs_env = [("RESOURCE_SERVER_CLIENT_SECRET", resource_app.secret.clone())];
    let command = with_env(command, &rs_env, &scratch.dir("rs"));
    let mut resource_server = Service::start("resource-server", command, &logs);
    let rs_base = format!("http://{rs_addr}");
    let plain = reqwest::Client::new();
    resource_server
        .wait_ready(|| answers_200(&plain, format!("{rs_base}/health")))
        .await;
    eprintln!("multi_host: services ready after {:?}", started.elapsed());

    // The seed's flows, through auth-web's HTTPS listener and auth-web's mTLS link.
    let access_token = the_seed_flows_work_across_hosts(&https, &public_url, &client).await;
    auth_web_serves_only_tls(&plain, web_addr).await;

    // The resource server, on its own host, validates through token-service.
    let whoami = format!("{rs_base}/api/whoami");
    let response = plain.get(&whoami).bearer_auth(&access_token).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), 200, "whoami with a read_user token");
    let principal: Value = response.json().await.unwrap();
    assert!(principal.is_object(), "whoami answers JSON: {principal}");
    let response = plain.get(&whoami).send().await.unwrap();
    assert_eq!(response.status(), 401, "whoami without a token");

    the_outsider_is_refused(out, ts_addr, ca, &foreign);
    a_resource_server_may_only_validate(rs, &ts_url, ca, &resource_app);

    // auth-web's client certificate, from auth-web's host, makes an internal caller.
    let mut flags = vec!["--ca", ca];
    flags.extend(certs.auth_web.probe_flags());
    let internal = probe(web, &ts_url, "doorward.v1.TokenService/GetJwks", &flags);
    assert_eq!(internal, "OK", "auth-web's certificate on GetJwks");

    // Nothing the outsider or the resource server tried wrote anything.
    assert_eq!(
        row_counts(&database),
        (1, 2),
        "users and applications after the refused calls"
    );

    drop((resource_server, auth_web, token_service));
    eprintln!(
        "multi_host: passed on {} in {:?}",
        net.describe(),
        started.elapsed()
    );
}

/// Password grant, `/api/v4/user`, refresh, client credentials and the sign-in page over
/// HTTPS; returns an access token with `read_user`.
async fn the_seed_flows_work_across_hosts(
    https: &reqwest::Client,
    public_url: &str,
    client: &Application,
) -> String {
    let token_url = format!("{public_url}/oauth/token");
    let credentials = [
        ("client_id", client.uid.as_str()),
        ("client_secret", client.secret.as_str()),
    ];
    let token_request = |form: &[(&str, &str)]| {
        let form: Vec<(&str, &str)> = form.iter().chain(&credentials).copied().collect();
        https.post(&token_url).form(&form).send()
    };

    let response = token_request(&[
        ("grant_type", "password"),
        ("username", USERNAME),
        ("password", PASSWORD),
        ("scope", "api read_user"),
    ])
    .await
    .unwrap();
    assert_eq!(response.status(), 200, "password grant");
    // RFC 6797: every response of the TLS listener pins HTTPS.
    assert!(
        response.headers().contains_key("strict-transport-security"),
        "no HSTS on the token response: {:?}",
        response.headers()
    );
    let grant: Value = response.json().await.unwrap();
    let access_token = grant["access_token"].as_str().unwrap();
    let refresh_token = grant["refresh_token"].as_str().unwrap();

    let response = https
        .get(format!("{public_url}/api/v4/user"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "/api/v4/user");
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["username"], USERNAME);

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
    ];
    let response = token_request(&refresh).await.unwrap();
    assert_eq!(response.status(), 200, "refresh grant");
    let refreshed: Value = response.json().await.unwrap();
    let refreshed_token = refreshed["access_token"].as_str().unwrap().to_owned();

    let response = token_request(&[("grant_type", "client_credentials")]).await;
    assert_eq!(response.unwrap().status(), 200, "client credentials grant");

    // The pages, on the same TLS listener; the session cookie only travels over HTTPS.
    let response = https
        .get(format!("{public_url}/users/sign_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "sign-in page");
    let content_type = header(&response, "content-type");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let cookies: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{SESSION_COOKIE}=")))
        .unwrap_or_else(|| panic!("no {SESSION_COOKIE} cookie among {cookies:?}"));
    assert!(
        session
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("secure")),
        "the session cookie is not Secure: {session}"
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("<form"), "the sign-in page has no form");

    refreshed_token
}

/// Plaintext HTTP to auth-web's TLS listener gets no page.
async fn auth_web_serves_only_tls(plain: &reqwest::Client, web_addr: SocketAddr) {
    let response = plain
        .get(format!("http://{web_addr}/users/sign_in"))
        .send()
        .await;
    if let Ok(response) = response {
        assert_ne!(response.status(), 200, "plaintext HTTP to the TLS listener");
    }
}

/// From its own host, the outsider gets nothing from token-service: plaintext fails, TLS
/// without a certificate is refused before any handler, and a foreign CA's certificate
/// fails the handshake.
fn the_outsider_is_refused(out: &Host, ts_addr: SocketAddr, ca: &str, foreign: &Certificates) {
    let https = format!("https://{ts_addr}");
    let create_user = "doorward.v1.Users/CreateUser";

    let plaintext = probe(out, &format!("http://{ts_addr}"), create_user, &[]);
    assert!(
        failed_in_transport(&plaintext),
        "plaintext to the TLS port: {plaintext}"
    );

    for rpc in [create_user, "doorward.v1.Applications/CreateApplication"] {
        let answer = probe(out, &https, rpc, &["--ca", ca]);
        assert!(
            answer.starts_with("STATUS Unauthenticated"),
            "{rpc} without a certificate: {answer}"
        );
    }

    let mut flags = vec!["--ca", ca];
    flags.extend(foreign.auth_web.probe_flags());
    let foreign_certificate = probe(out, &https, create_user, &flags);
    assert!(
        failed_in_transport(&foreign_certificate),
        "a certificate from another CA: {foreign_certificate}"
    );

    let validate = probe(
        out,
        &https,
        "doorward.v1.TokenValidation/Validate",
        &["--ca", ca],
    );
    assert!(
        validate.starts_with("STATUS Unauthenticated"),
        "Validate without credentials: {validate}"
    );
}

/// A resource server's own credentials open `TokenValidation` and nothing else.
fn a_resource_server_may_only_validate(rs: &Host, ts_url: &str, ca: &str, app: &Application) {
    let basic = format!("{}:{}", app.uid, app.secret);
    let as_resource_server = |rpc: &str| probe(rs, ts_url, rpc, &["--ca", ca, "--basic", &basic]);
    for rpc in [
        "doorward.v1.Users/CreateUser",
        "doorward.v1.Applications/CreateApplication",
    ] {
        let answer = as_resource_server(rpc);
        assert!(
            answer.starts_with("STATUS Unauthenticated"),
            "a resource server on {rpc}: {answer}"
        );
    }
    let validate = as_resource_server("doorward.v1.TokenValidation/Validate");
    assert_eq!(
        validate, "OK",
        "a resource server on TokenValidation/Validate"
    );
}

/// Whether a probe's answer is a connection that failed, not an answer of token-service
/// (whose refusals are `Unauthenticated` with its own message). The failure shows at
/// connect (`TRANSPORT`), or, when the client learns of it only on its first request, as a
/// status tonic makes up locally for the broken connection: a TLS 1.3 server refuses a
/// client certificate after the client's side of the handshake is done, and a TLS port
/// answers an HTTP/2 preface with a TLS alert, so the call ends in "transport error", "h2
/// protocol error" or "operation was canceled", as timing has it.
fn failed_in_transport(answer: &str) -> bool {
    const LOCAL_MESSAGES: [&str; 3] = [
        "transport error",
        "h2 protocol error",
        "operation was canceled",
    ];
    if answer.starts_with("TRANSPORT ") {
        return true;
    }
    // "STATUS <code> <message>"
    let message = answer
        .strip_prefix("STATUS ")
        .and_then(|rest| rest.split_once(' '))
        .map_or("", |(_, message)| message);
    LOCAL_MESSAGES.iter().any(|m| message.starts_with(m))
}

/// The user, the application it signs in through (password, refresh, client credentials)
/// and the resource server's own application, created with the operator commands.
fn seed(ts_env: &[(&str, String)]) -> (Application, Application) {
    let user = operator(
        ts_env,
        &[
            "users",
            "create",
            "--username",
            USERNAME,
            "--email",
            "jane@example.com",
            "--password-stdin",
            "--json",
        ],
        Some(PASSWORD),
    );
    assert_eq!(user["username"], USERNAME);
    let create_app = |name: &str, scopes: &str, grants: &str| {
        let app = operator(
            ts_env,
            &[
                "apps",
                "create",
                "--name",
                name,
                "--redirect-uri",
                "https://app.example/callback",
                "--scopes",
                scopes,
                "--grant-types",
                grants,
                "--json",
            ],
            None,
        );
        Application {
            uid: app["uid"].as_str().unwrap().to_owned(),
            secret: app["secret"].as_str().unwrap().to_owned(),
        }
    };
    let client = create_app(
        "Multi-host client",
        "api read_user",
        "password refresh_token client_credentials",
    );
    let resource_app = create_app("Example resource server", "api", "client_credentials");
    (client, resource_app)
}

/// A CA and certificates for `names` in `dir`, by `tls init`.
fn tls_init(dir: &Path, names: &[String]) -> Certificates {
    let mut args = vec!["tls", "init", "--out", text(dir), "--json"];
    for name in names {
        args.extend(["--host", name.as_str()]);
    }
    let written = operator(&[], &args, None);
    let path = |v: &Value| PathBuf::from(v.as_str().unwrap());
    let pair = |v: &Value| CertAndKey {
        cert: path(&v["cert"]),
        key: path(&v["key"]),
    };
    Certificates {
        ca: path(&written["ca"]),
        server: pair(&written["server"]),
        auth_web: pair(&written["auth_web"]),
    }
}

/// `token-service ARGS` as an operator runs it (no server), with `env` and `stdin`; its
/// output, which `--json` makes JSON.
fn operator(env: &[(&str, String)], args: &[&str], stdin: Option<&str>) -> Value {
    let mut command = Command::new(workspace_binary("token-service"));
    command
        .args(args)
        .env_clear()
        .envs(base_env())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        writeln!(input, "{text}").unwrap();
    }
    drop(input);
    let output = child.wait_with_output().unwrap();
    let shown = args.join(" ");
    assert!(
        output.status.success(),
        "token-service {shown}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        let stdout = String::from_utf8_lossy(&output.stdout);
        panic!("token-service {shown} printed no JSON ({e}): {stdout}")
    })
}

/// `grpc_probe URL RPC FLAGS` run on `host`: `OK`, `STATUS <code> <message>` or
/// `TRANSPORT <error>`.
fn probe(host: &Host, url: &str, rpc: &str, flags: &[&str]) -> String {
    let output = host
        .command(env!("CARGO_BIN_EXE_grpc_probe"))
        .args([url, rpc])
        .args(flags)
        .env_clear()
        .envs(base_env())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "grpc_probe {url} {rpc}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What every child inherits: only `PATH` and `RUST_LOG`, so that no `DOORWARD_*` or
/// `DATABASE_URL` of the caller's environment changes what the services do.
fn base_env() -> Vec<(String, String)> {
    let mut env = vec![("RUST_LOG".to_owned(), "info".to_owned())];
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".to_owned(), path));
    }
    env
}

/// `command` with `env` added to the base environment, run from `dir` (the services keep
/// nothing in the working directory, but a default `./data` would land there).
fn with_env(mut command: Command, env: &[(&str, String)], dir: &Path) -> Command {
    command
        .env_clear()
        .envs(base_env())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(dir);
    command
}

/// An HTTPS client that trusts only the test's CA, as a browser of the deployment would.
fn https_client(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A readiness check: `GET url` answers 200.
async fn answers_200(http: &reqwest::Client, url: String) -> Result<(), String> {
    match http.get(url).send().await {
        Ok(r) if r.status() == 200 => Ok(()),
        Ok(r) => Err(format!("status {}", r.status())),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Users and applications in the database (read beside the running token-service, which
/// keeps SQLite in WAL mode).
fn row_counts(database: &Path) -> (i64, i64) {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = SqliteConnection::establish(text(database)).unwrap();
    let mut count = |table: &str| {
        diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}"))
            .get_result::<N>(&mut conn)
            .unwrap()
            .n
    };
    (count("users"), count("applications"))
}

/// A path as the `&str` a flag takes (the test's paths are UTF-8).
fn text(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A path as an environment value.
fn owned(path: &Path) -> String {
    text(path).to_owned()
}
