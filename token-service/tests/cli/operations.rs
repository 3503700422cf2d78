//! Operations on real processes: scheduled key rotation with two token-service replicas on
//! one database (SQLite file and PostgreSQL), and `backup --to` with a restore.

use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use doorward_proto::v1 as pb;
use serde_json::Value;

use super::{Cli, Replica, connect, free_addr, rand_suffix, with_service_token};

const DAY: i64 = 86_400;
/// The publication lead the replicas run with: long enough to see the new keys published
/// and not yet signing, short enough to wait out.
const PUBLISH_AHEAD: i64 = 5;

/// The PostgreSQL server of the suite, or `None` (and a note) outside CI without one.
fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "TEST_POSTGRES_URL must be set under CI"
        );
        eprintln!("skipped: TEST_POSTGRES_URL is not set, so the PostgreSQL half did not run");
    }
    url
}

/// A fresh PostgreSQL database of the suite's server, dropped at the end.
struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn new(admin_url: String, prefix: &str) -> Self {
        let mut url = url::Url::parse(&admin_url).unwrap();
        let name = format!("{prefix}_{}", rand_suffix());
        url.set_path(&name);
        Self {
            admin_url,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// Runs one SQL statement on the database a `DATABASE_URL` names, as an operator's `psql`
/// or `sqlite3` would.
fn execute(database_url: &str, sql: &str) -> usize {
    match database_url.strip_prefix("sqlite://") {
        Some(path) => {
            let mut conn = diesel::SqliteConnection::establish(path).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap()
        }
        None => {
            let mut conn = diesel::PgConnection::establish(database_url).unwrap();
            diesel::sql_query(sql).execute(&mut conn).unwrap()
        }
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `keys list --json`, as (purpose, kid) -> key.
fn keys(cli: &Cli) -> Vec<Value> {
    cli.json(&["keys", "list", "--json"], None)
        .as_array()
        .unwrap()
        .clone()
}

fn of_purpose<'a>(keys: &'a [Value], purpose: &str) -> Vec<&'a Value> {
    keys.iter().filter(|k| k["purpose"] == purpose).collect()
}

/// The `kid` in a JWT's header.
fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let header = jwt.split('.').next().unwrap();
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

type Tokens = pb::token_service_client::TokenServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        fn(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status>,
    >,
>;

async fn tokens_client(addr: &str) -> Tokens {
    pb::token_service_client::TokenServiceClient::with_interceptor(
        connect(addr).await,
        with_service_token as fn(_) -> _,
    )
}

fn credentials(app: &Value) -> pb::ClientAuthentication {
    pb::ClientAuthentication {
        client_id: app["uid"].as_str().unwrap().into(),
        client_secret: Some(app["secret"].as_str().unwrap().into()),
        ..Default::default()
    }
}

async fn client_credentials_token(tokens: &mut Tokens, app: &Value) -> String {
    let answer = tokens
        .exchange(pb::ExchangeRequest {
            grant_type: "client_credentials".into(),
            client: Some(credentials(app)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let Some(pb::exchange_response::Result::Tokens(set)) = answer.result else {
        panic!("no tokens: {answer:?}");
    };
    set.access_token
}

async fn is_active(tokens: &mut Tokens, app: &Value, token: &str) -> bool {
    let answer = tokens
        .introspect(pb::IntrospectRequest {
            client: Some(credentials(app)),
            token: token.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    matches!(
        answer.result,
        Some(pb::introspect_response::Result::Introspection(ref i)) if i.active
    )
}

fn create_app(cli: &Cli) -> Value {
    cli.json(
        &[
            "apps",
            "create",
            "--name",
            "Machine",
            "--redirect-uri",
            "https://machine.example/cb",
            "--json",
        ],
        None,
    )
}

/// The keys `keys list` shows once both purposes have a second key, polling while the
/// replicas start and rotate.
fn wait_for_rotation(cli: &Cli) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let keys = keys(cli);
        if keys.len() >= 4 {
            return keys;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "no scheduled rotation: {keys:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Two replicas started together on keys older than `tokens.key_rotation_days` make one new
/// key per purpose between them, with `keys rotate`'s rules: published first, signing after
/// the lead, the old key retired then and still trusted.
async fn two_replicas_rotate_overdue_keys_once(cli: &Cli) {
    let app = create_app(cli);
    let first = keys(cli);
    assert_eq!(first.len(), 2, "one key per purpose: {first:?}");
    let old_access = of_purpose(&first, "access_token")[0]["kid"].clone();
    for key in &first {
        let next = key["next_rotation_at"].as_i64().unwrap();
        let created = key["created_at"].as_i64().unwrap();
        assert_eq!(next, created + 90 * DAY, "the default policy is 90 days");
    }
    // A token signed by the old key, before anything rotates.
    let addr = free_addr();
    let before = {
        let _replica = Replica::start(&cli.database_url, &addr, 1);
        client_credentials_token(&mut tokens_client(&addr).await, &app).await
    };
    assert_eq!(kid_of(&before), old_access.as_str().unwrap());

    // The keys were made 91 days ago, as far as anyone can tell.
    let back_dated = execute(
        &cli.database_url,
        &format!(
            "UPDATE signing_keys SET created_at = created_at - {}",
            91 * DAY
        ),
    );
    assert_eq!(back_dated, 2);
    let listed = cli.run(&["keys", "list"], None);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("next rotation of access_token keys:") && text.contains("(due"),
        "{text}"
    );

    let settings = [
        ("DOORWARD_TOKENS__KEY_RELOAD_SECONDS", "1"),
        ("DOORWARD_TOKENS__KEY_PUBLISH_AHEAD_SECONDS", "5"),
    ];
    let (addr_a, addr_b) = (free_addr(), free_addr());
    let (log_a, log_b) = (cli.dir.join("a.log"), cli.dir.join("b.log"));
    let _a = Replica::start_logged(&cli.database_url, &addr_a, &settings, &log_a);
    let _b = Replica::start_logged(&cli.database_url, &addr_b, &settings, &log_b);
    let rotated = wait_for_rotation(cli);
    // Both replicas have had several ticks to rotate again; neither may.
    std::thread::sleep(Duration::from_secs(3));
    let keys_now = keys(cli);
    assert_eq!(keys_now.len(), 4, "one new key per purpose: {keys_now:?}");
    assert_eq!(rotated.len(), 4);
    for purpose in ["access_token", "id_token"] {
        let keys = of_purpose(&keys_now, purpose);
        assert_eq!(keys.len(), 2, "{purpose}: {keys:?}");
        let new = keys.iter().find(|k| k["retired_at"].is_null()).unwrap();
        let old = keys.iter().find(|k| !k["retired_at"].is_null()).unwrap();
        let created = new["created_at"].as_i64().unwrap();
        assert!((now() - created).abs() < 120, "{new:?}");
        assert_eq!(
            old["retired_at"].as_i64().unwrap(),
            created + PUBLISH_AHEAD,
            "the old key signs for the publication lead"
        );
        assert_eq!(
            new["next_rotation_at"].as_i64().unwrap(),
            created + 90 * DAY
        );
        assert!(
            old.get("next_rotation_at").is_none(),
            "only the key the schedule counts from carries the next rotation"
        );
    }
    let logs = std::fs::read_to_string(&log_a).unwrap() + &std::fs::read_to_string(&log_b).unwrap();
    let events: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("signing_key_rotated"))
        .collect();
    assert_eq!(events.len(), 2, "one audit event per new key: {events:?}");
    assert!(events.iter().all(|l| l.contains("scheduled")), "{events:?}");

    // After the lead and a reload, both replicas sign with the new key, and the token the
    // old key signed still validates at both.
    let new_access = of_purpose(&keys_now, "access_token")
        .into_iter()
        .find(|k| k["retired_at"].is_null())
        .unwrap()["kid"]
        .clone();
    let signs_from = of_purpose(&keys_now, "access_token")
        .into_iter()
        .find_map(|k| k["retired_at"].as_i64())
        .unwrap();
    let wait = (signs_from + 2 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(wait)).await;
    for addr in [&addr_a, &addr_b] {
        let mut tokens = tokens_client(addr).await;
        let token = client_credentials_token(&mut tokens, &app).await;
        assert_eq!(kid_of(&token), new_access.as_str().unwrap(), "{addr}");
        assert!(is_active(&mut tokens, &app, &before).await, "{addr}");
    }
    let states: Vec<String> = keys(cli)
        .iter()
        .map(|k| format!("{} {}", k["purpose"], k["state"]))
        .collect();
    assert_eq!(
        states.iter().filter(|s| s.ends_with("\"signing\"")).count(),
        2,
        "{states:?}"
    );
    let text = String::from_utf8_lossy(&cli.run(&["keys", "list"], None).stdout).into_owned();
    for purpose in ["access_token", "id_token"] {
        assert!(
            text.contains(&format!("next rotation of {purpose} keys: "))
                && text.contains("(in 89 days)"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_scheduled_rotation_happens_once_with_two_replicas_on_sqlite() {
    let cli = Cli::new();
    two_replicas_rotate_overdue_keys_once(&cli).await;
}

#[tokio::test]
async fn a_scheduled_rotation_happens_once_with_two_replicas_on_postgres() {
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let database = PgDatabase::new(admin_url, "doorward_rotation");
    let cli = Cli::on(&database.url);
    two_replicas_rotate_overdue_keys_once(&cli).await;
}

async fn password_token(tokens: &mut Tokens, app: &Value, password: &str) -> Option<String> {
    let answer = tokens
        .exchange(pb::ExchangeRequest {
            grant_type: "password".into(),
            client: Some(credentials(app)),
            username: Some("jane".into()),
            password: Some(password.into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    match answer.result {
        Some(pb::exchange_response::Result::Tokens(set)) => Some(set.access_token),
        _ => None,
    }
}

fn app_names(cli: &Cli) -> Vec<String> {
    let mut names: Vec<String> = cli
        .json(&["apps", "list", "--json"], None)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `backup --to` while a token-service serves, then the restore an operator would do: stop
/// the service, put the copy in place of the database (without the old WAL), start again.
/// What was there at the backup is there again, and nothing written after it.
#[tokio::test]
async fn a_backup_taken_while_serving_restores_users_apps_and_tokens() {
    let cli = Cli::new();
    let password = "correct horse battery";
    cli.json(
        &[
            "users",
            "create",
            "--username",
            "jane",
            "--email",
            "jane@example.com",
            "--password-stdin",
            "--json",
        ],
        Some(&format!("{password}\n")),
    );
    let app = create_app(&cli);
    let addr = free_addr();
    let replica = Replica::start(&cli.database_url, &addr, 1);
    let mut tokens = tokens_client(&addr).await;
    let mut before = vec![password_token(&mut tokens, &app, password).await.unwrap()];
    for _ in 0..5 {
        before.push(client_credentials_token(&mut tokens, &app).await);
    }

    let copy = cli.dir.join("backup.db");
    let written = cli.json(&["backup", "--to", copy.to_str().unwrap(), "--json"], None);
    assert_eq!(
        written["backup"],
        copy.canonicalize().unwrap().to_str().unwrap()
    );
    let bytes = written["bytes"].as_u64().unwrap();
    assert_eq!(bytes, std::fs::metadata(&copy).unwrap().len());
    assert!(bytes > 0);
    assert_eq!(
        super::mode(&copy) & 0o777,
        0o600,
        "the copy holds the signing keys"
    );

    // Written after the backup: gone after the restore.
    let after = client_credentials_token(&mut tokens, &app).await;
    create_app_named(&cli, "Made after the backup");
    assert!(is_active(&mut tokens, &app, &after).await);
    drop(tokens);
    drop(replica);

    let database = cli.dir.join("cli.db");
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(cli.dir.join(format!("cli.db{suffix}")));
    }
    std::fs::copy(&copy, &database).unwrap();

    let addr = free_addr();
    let _restarted = Replica::start(&cli.database_url, &addr, 1);
    let mut tokens = tokens_client(&addr).await;
    for token in &before {
        assert!(
            is_active(&mut tokens, &app, token).await,
            "a token issued before the backup validates after the restore"
        );
    }
    assert!(
        !is_active(&mut tokens, &app, &after).await,
        "the restore brought back the database as it was at the backup"
    );
    assert!(
        password_token(&mut tokens, &app, password).await.is_some(),
        "the user and their password are back"
    );
    assert_eq!(app_names(&cli), ["Machine"]);
}

fn create_app_named(cli: &Cli, name: &str) -> Value {
    cli.json(
        &[
            "apps",
            "create",
            "--name",
            name,
            "--redirect-uri",
            "https://machine.example/cb",
            "--json",
        ],
        None,
    )
}

#[test]
fn a_backup_never_overwrites_and_postgres_is_sent_to_pg_dump() {
    let cli = Cli::new();
    cli.json(&["migrate", "--json"], None);
    let copy = cli.dir.join("backup.db");
    std::fs::write(&copy, b"an operator's file").unwrap();
    let err = cli.fails(&["backup", "--to", copy.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(std::fs::read(&copy).unwrap(), b"an operator's file");

    let missing = Cli::on(&format!(
        "sqlite://{}",
        cli.dir.join("no-such.db").display()
    ));
    let err = missing.fails(&["backup", "--to", cli.dir.join("b2.db").to_str().unwrap()]);
    assert!(err.contains("no SQLite database"), "{err}");
    assert!(!cli.dir.join("no-such.db").exists() && !cli.dir.join("b2.db").exists());

    // Refused before any connection: no server needs to listen there.
    let postgres = Cli::on("postgres://doorward@127.0.0.1:1/doorward");
    let to = cli.dir.join("pg.db");
    let err = postgres.fails(&["backup", "--to", to.to_str().unwrap()]);
    assert!(err.contains("pg_dump"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!to.exists());
}
