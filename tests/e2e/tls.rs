//! TLS on every link (SEC-GB-07..12), with certificates made by `openssl` as an operator
//! would: token-service's gRPC port speaks only TLS and admits internal callers by a client
//! certificate from its client CA; auth-web reaches it over mTLS and serves HTTPS with HSTS
//! and a `__Host-` cookie; bad files stop the start; changed files are picked up.

use std::sync::Arc;

use doorward_proto::v1 as pb;
use doorward_shared::config::Config;
use doorward_tests::pki::TestPki;
use doorward_tests::{Backend, TestApp, both_backends};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

both_backends!(sec_gb_10_the_seed_flows_run_over_mtls_and_https);

/// A channel to the gRPC port: TLS trusting `ca` (none: plaintext), with `identity` if given.
async fn channel(app: &TestApp, pki: &TestPki, identity: Option<&str>) -> Result<Channel, String> {
    let addr = app.grpc_url().replace("http://", "https://");
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        std::fs::read(pki.cert("ca")).unwrap(),
    ));
    if let Some(name) = identity {
        let cert = std::fs::read(pki.cert(name)).unwrap();
        let key = std::fs::read(pki.key(name)).unwrap();
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(addr)
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn get_jwks(channel: Channel) -> Result<(), tonic::Status> {
    let mut tokens = pb::token_service_client::TokenServiceClient::new(channel);
    tokens.get_jwks(pb::Empty {}).await.map(|_| ())
}

#[tokio::test]
async fn sec_gb_07_the_grpc_tls_port_refuses_plaintext() {
    let pki = TestPki::new();
    let app = TestApp::spawn_tls(Backend::Sqlite, &pki).await;
    let answer = match Channel::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
    {
        Err(_) => None,
        Ok(plain) => get_jwks(plain).await.err(),
    };
    // Either the connection or the call fails, in the transport: never an RPC answer, not
    // even a refusal from the caller check.
    if let Some(status) = answer {
        assert!(
            !matches!(status.code(), Code::Ok | Code::Unauthenticated),
            "plaintext reached gRPC: {status:?}"
        );
    }
}

#[tokio::test]
async fn sec_gb_08_a_client_certificate_from_another_ca_fails_the_handshake() {
    let pki = TestPki::new();
    let app = TestApp::spawn_tls(Backend::Sqlite, &pki).await;
    let refused = match channel(&app, &pki, Some("foreign-client")).await {
        Err(_) => true,
        // TLS 1.3: the client hears of the refusal at its first request.
        Ok(channel) => get_jwks(channel)
            .await
            .is_err_and(|s| s.code() != Code::Unauthenticated),
    };
    assert!(
        refused,
        "a foreign CA's certificate must fail the handshake"
    );
}

#[tokio::test]
async fn sec_gb_09_over_tls_without_a_client_certificate_only_validation_answers() {
    let pki = TestPki::new();
    let app = TestApp::spawn_tls(Backend::Sqlite, &pki).await;
    let status = get_jwks(channel(&app, &pki, None).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    // A resource server: TLS, no certificate, its application's credentials.
    let resource_server = app.default_client().await;
    let mut validation = pb::token_validation_client::TokenValidationClient::new(
        channel(&app, &pki, None).await.unwrap(),
    );
    let mut request = tonic::Request::new(pb::ValidateRequest {
        token: "not-a-token".into(),
        required_scopes: vec![],
    });
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", resource_server.id, resource_server.secret));
    request
        .metadata_mut()
        .insert("authorization", format!("Basic {basic}").parse().unwrap());
    let answer = validation.validate(request).await.unwrap().into_inner();
    assert!(!answer.active);
}

async fn sec_gb_10_the_seed_flows_run_over_mtls_and_https(backend: Backend) {
    let pki = TestPki::new();
    let app = TestApp::spawn_tls(backend, &pki).await;
    assert!(app.base.starts_with("https://"));
    // The client CA's certificate makes an internal caller.
    get_jwks(channel(&app, &pki, Some("client")).await.unwrap())
        .await
        .expect("auth-web's certificate is an internal caller's");
    // The seed's password grant, the API and a refresh, through auth-web over mTLS.
    app.create_user("jane", "jane's password 1").await;
    let client = app.default_client().await;
    let tokens = app
        .password_grant(&client, "jane", "jane's password 1")
        .await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, user) = app.api_user(access).await;
    assert_eq!((status, user["username"].as_str()), (200, Some("jane")));
    let (status, _) = app
        .refresh(&client, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200);
    // Pages over HTTPS: HSTS, and the session cookie Secure with the __Host- prefix.
    let page = app
        .http
        .get(app.url("/users/sign_in"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["strict-transport-security"],
        auth_web::startup::HSTS
    );
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("__Host-doorward_session="), "{cookie}");
    assert!(
        cookie.contains("Secure") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Domain"), "{cookie}");
    let token_response = app.token(&[("grant_type", "client_credentials")]).await;
    assert!(
        token_response
            .headers()
            .contains_key("strict-transport-security")
    );
}

#[tokio::test]
async fn sec_gb_11_bad_tls_files_stop_the_start_never_plaintext() {
    let pki = TestPki::new();
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").unwrap();
    let dir = std::env::temp_dir().join(format!(
        "doorward-tls-{}",
        doorward_shared::secret::random_id()
    ));
    let mut config = Config {
        database_url: format!("sqlite://{}", dir.join("db.sqlite").display()),
        token_service_addr: "127.0.0.1:0".into(),
        ..Config::default()
    };
    config.grpc_tls = Some(doorward_shared::config::GrpcTlsConfig {
        cert_file: pki.cert("server"),
        key_file: garbage.clone(),
        client_ca_file: Some(pki.cert("ca")),
    });
    let clock = Arc::new(doorward_shared::SystemClock);
    let err = token_service::TokenServiceApp::build(config.clone(), clock.clone())
        .await
        .err()
        .expect("a bad key stops token-service");
    assert!(format!("{err:#}").contains("garbage.pem"), "{err:#}");
    assert!(!dir.join("db.sqlite").exists(), "nothing was opened");
    // A key that does not go with the certificate, and a missing CA.
    config.grpc_tls.as_mut().unwrap().key_file = pki.key("client");
    assert!(
        token_service::TokenServiceApp::build(config.clone(), clock.clone())
            .await
            .is_err()
    );
    // auth-web: its listener's key, and its CA for token-service.
    let mut web = Config {
        auth_web_addr: "127.0.0.1:0".into(),
        public_url: "https://127.0.0.1:3000".into(),
        ..Config::default()
    };
    web.web_tls = Some(doorward_shared::config::WebTlsConfig {
        cert_file: pki.cert("server"),
        key_file: garbage.clone(),
    });
    let err = auth_web::AuthWebApp::build(web.clone())
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("garbage.pem"), "{err:#}");
    web.web_tls = None;
    web.token_service_url = "https://127.0.0.1:50051".into();
    web.token_service_tls = Some(doorward_shared::config::TokenServiceTlsConfig {
        ca_file: pki.dir.join("missing-ca.pem"),
        cert_file: None,
        key_file: None,
    });
    let err = auth_web::AuthWebApp::build(web).err().expect("refused");
    assert!(format!("{err:#}").contains("missing-ca.pem"), "{err:#}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn sec_gb_12_a_renewed_certificate_is_served_without_a_restart() {
    let pki = TestPki::new();
    let app = TestApp::spawn_tls(Backend::Sqlite, &pki).await;
    let before = served_certificate(&app, &pki).await;
    assert_eq!(before, pem_der(&pki.cert("server")));
    pki.renew_server();
    let renewed = pem_der(&pki.cert("server"));
    assert_ne!(before, renewed);
    // Files are looked at no more than once a second; wait for the next look.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if served_certificate(&app, &pki).await == renewed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the renewed certificate was never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // auth-web still reaches token-service (new connections use the new certificate).
    let client = app.default_client().await;
    assert_eq!(
        app.token_basic(&client, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path)
        .unwrap()
        .to_vec()
}

/// The certificate token-service's gRPC port presents to a new TLS connection.
async fn served_certificate(app: &TestApp, pki: &TestPki) -> Vec<u8> {
    let config = doorward_shared::tls::client_config(
        &pki.cert("ca"),
        Some((&pki.cert("client"), &pki.key("client"))),
        doorward_shared::tls::ALPN_H2,
    )
    .unwrap();
    let addr = app.grpc_url().replace("http://", "");
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}
