//! The example device login (`examples/device-login`) against a running Doorward: the
//! library's steps run in-process, jane approves or denies through the verification pages
//! with the cookie-keeping browser, and the server's time is the test's `ManualClock`. The
//! example's waiting is a [`Sleep`] the test drives: each wait it asks for is checked, the
//! server's clock is moved by it, and only then does the example poll.

use std::future::Future;
use std::time::Duration;

use doorward_example_device_login::{DeviceAuthorization, DeviceLogin, Error, Sleep};
use doorward_tests::browser::{Browser, Page};
use doorward_tests::{Backend, ISSUER_ON_BOUND_PORT, TestApp, TestClient, both_backends};
use tokio::sync::{mpsc, oneshot};

both_backends!(
    the_example_signs_jane_in_and_honours_slow_down,
    a_denial_ends_the_example_with_access_denied,
    an_unapproved_code_ends_the_example_with_expired_token,
);

async fn spawn(backend: Backend) -> (TestApp, TestClient) {
    let app = TestApp::spawn_with(backend, |config| {
        // Discovery is fetched from the issuer, so it must be the bound address.
        config.public_url = ISSUER_ON_BOUND_PORT.into();
    })
    .await;
    app.create_user("jane", "sekret-password").await;
    // A public client, as a command-line tool registers.
    let client = app.create_client("read_user", false, false).await;
    (app, client)
}

/// Each wait of the example, sent to the test with the signal to go on.
struct Driven(mpsc::UnboundedSender<(Duration, oneshot::Sender<()>)>);

impl Sleep for Driven {
    fn sleep(&mut self, duration: Duration) -> impl Future<Output = ()> + Send {
        let (go, wait) = oneshot::channel();
        let asked = self.0.send((duration, go));
        async move {
            if asked.is_ok() {
                let _ = wait.await;
            }
        }
    }
}

/// The test's side of [`Driven`].
struct Waits(mpsc::UnboundedReceiver<(Duration, oneshot::Sender<()>)>);

impl Waits {
    /// The next wait the example asks for, checked to be `seconds` long.
    async fn next(&mut self, seconds: u64) -> oneshot::Sender<()> {
        let (duration, go) = self.0.recv().await.expect("the example stopped polling");
        assert_eq!(duration, Duration::from_secs(seconds));
        go
    }
}

fn driven() -> (Driven, Waits) {
    let (asked, waits) = mpsc::unbounded_channel();
    (Driven(asked), Waits(waits))
}

/// Discovers and starts, as `device-login` does.
async fn started(app: &TestApp, client: &TestClient) -> (DeviceLogin, DeviceAuthorization) {
    let login = DeviceLogin::discover(reqwest::Client::new(), &app.base, &client.id, None)
        .await
        .unwrap();
    assert!(login.endpoints().discovered, "{:?}", login.endpoints());
    assert_eq!(
        login.endpoints().device_authorization,
        format!("{}/oauth/authorize_device", app.base)
    );
    let started = login.start(Some("read_user")).await.unwrap();
    assert_eq!(started.user_code.len(), 9);
    assert_eq!(
        started.verification_uri,
        format!("{}/oauth/device", app.base)
    );
    assert_eq!(started.expires_in, 300);
    (login, started)
}

/// Jane signs in at `verification_uri_complete`, checks the code and decides (the steps of
/// `device.rs`).
async fn jane_decides(app: &TestApp, started: &DeviceAuthorization, decision: &str) -> Page {
    let browser = Browser::new(&app.base);
    let first = browser
        .get(started.verification_uri_complete.as_deref().unwrap())
        .await;
    assert_eq!(first.status, 303, "the pages need a signed-in user");
    let signed_in = browser
        .sign_in(&first.location().unwrap(), "jane", "sekret-password")
        .await;
    let entry = browser
        .get(&signed_in.location().expect("sign-in leads back"))
        .await;
    assert_eq!(entry.status, 200);
    assert_eq!(
        entry.input("user_code").as_deref(),
        Some(started.user_code.as_str())
    );
    let confirm = browser
        .post("/oauth/device", &entry.form("/oauth/device"))
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    let mut fields = confirm.form("/oauth/device/decide");
    fields.push(("decision".into(), decision.into()));
    let done = browser.post("/oauth/device/decide", &fields).await;
    assert_eq!(done.status, 200);
    done
}

async fn the_example_signs_jane_in_and_honours_slow_down(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let (login, started) = started(&app, &client).await;
    let (sleep, mut waits) = driven();
    let polling = async {
        let mut sleep = sleep;
        login.poll_until_done(&started, &mut sleep).await
    };
    let person = async {
        // The example waits the interval before its first poll: pending.
        let go = waits.next(5).await;
        app.clock.advance(5);
        go.send(()).unwrap();
        // A poll the server sees too soon: slow_down, and the example waits 5 s more.
        let go = waits.next(5).await;
        go.send(()).unwrap();
        let go = waits.next(10).await;
        // Meanwhile jane approves.
        let done = jane_decides(&app, &started, "approve").await;
        assert!(done.body.contains("Device successfully authorized"));
        app.clock.advance(10);
        go.send(()).unwrap();
    };
    let (tokens, ()) = tokio::join!(polling, person);
    let tokens = tokens.unwrap();
    assert_eq!(tokens.scope.as_deref(), Some("read_user"));
    assert!(tokens.refresh_token.is_some());
    // The example ends with jane's user JSON.
    let user = login.current_user(&tokens.access_token).await.unwrap();
    assert_eq!(user["username"], "jane");
    assert!(user["id"].is_i64());
    // The device code was spent by the example.
    assert!(matches!(
        login.poll_once(&started).await,
        Err(Error::Refused { ref error, .. }) if error == "invalid_grant"
    ));
}

async fn a_denial_ends_the_example_with_access_denied(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let (login, started) = started(&app, &client).await;
    let (sleep, mut waits) = driven();
    let polling = async {
        let mut sleep = sleep;
        login.poll_until_done(&started, &mut sleep).await
    };
    let person = async {
        let go = waits.next(5).await;
        let done = jane_decides(&app, &started, "deny").await;
        assert!(done.body.contains("Access denied"));
        app.clock.advance(5);
        go.send(()).unwrap();
        // No poll after the denial.
        assert!(waits.0.recv().await.is_none());
    };
    let (outcome, ()) = tokio::join!(polling, person);
    let error = outcome.unwrap_err();
    assert!(matches!(error, Error::AccessDenied), "{error:?}");
    assert!(error.to_string().starts_with("access_denied"), "{error}");
}

async fn an_unapproved_code_ends_the_example_with_expired_token(backend: Backend) {
    let (app, client) = spawn(backend).await;
    let (login, started) = started(&app, &client).await;
    let (sleep, mut waits) = driven();
    let polling = async {
        let mut sleep = sleep;
        login.poll_until_done(&started, &mut sleep).await
    };
    let person = async {
        // Nobody decides for the code's whole life.
        let go = waits.next(5).await;
        app.clock.advance(300);
        go.send(()).unwrap();
        assert!(waits.0.recv().await.is_none());
    };
    let (outcome, ()) = tokio::join!(polling, person);
    assert!(matches!(outcome, Err(Error::ExpiredToken)), "{outcome:?}");
}
