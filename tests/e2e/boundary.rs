//! The service boundary (SEC-GB-*): every `doorward.v1` RPC identifies its caller before its
//! handler runs. An outsider on the gRPC port is refused on every RPC of the proto and
//! changes nothing; a resource server may validate tokens and nothing else; a wrong service
//! token is refused; the Unix socket admits only token-service's own user; reflection is for
//! internal callers. (TLS and mTLS: `tls.rs`; several hosts: `multi_host.rs`.)

use std::process::Command;

use doorward_proto::v1 as pb;
use doorward_tests::{Backend, TestApp, both_backends};
use prost::Message;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

both_backends!(
    sec_gb_01_an_outsider_is_refused_on_every_rpc_and_changes_nothing,
    sec_gb_01_the_all_in_one_tcp_port_serves_only_validation_and_health,
    sec_gb_02_an_outsider_cannot_claim_a_client_ip,
    sec_gb_03_a_resource_server_may_validate_and_nothing_else,
    sec_gb_04_a_wrong_service_token_is_refused,
    sec_gb_06_reflection_is_for_internal_callers,
);

/// Every method of every `doorward.v1` service, as `Service/Method`, read from the proto's
/// own descriptor: a new RPC is covered without editing this test.
fn every_rpc() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(pb::FILE_DESCRIPTOR_SET).unwrap();
    let mut rpcs = Vec::new();
    for file in set.file.iter().filter(|f| f.package() == "doorward.v1") {
        for service in &file.service {
            for method in &service.method {
                rpcs.push(format!("doorward.v1.{}/{}", service.name(), method.name()));
            }
        }
    }
    assert!(rpcs.len() >= 20, "the descriptor lists {} RPCs", rpcs.len());
    rpcs
}

/// One unary call of `rpc` with an empty message (valid for every proto3 request) and
/// `authorization` if given; the gRPC status code.
async fn call(url: &str, rpc: &str, authorization: Option<&str>) -> Code {
    let channel = tonic::transport::Channel::from_shared(url.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    let path = PathAndQuery::try_from(format!("/{rpc}")).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    match grpc.unary(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

fn basic(client: &doorward_tests::TestClient) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", client.id, client.secret));
    format!("Basic {encoded}")
}

async fn rows(app: &TestApp) -> [i64; 4] {
    [
        app.count("users").await,
        app.count("applications").await,
        app.count("access_grants").await,
        app.count("access_tokens").await,
    ]
}

async fn sec_gb_01_an_outsider_is_refused_on_every_rpc_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_admin("root", "root password 1").await;
    let before = rows(&app).await;
    for rpc in every_rpc() {
        assert_eq!(
            call(&app.grpc_url(), &rpc, None).await,
            Code::Unauthenticated,
            "{rpc} without credentials"
        );
    }
    assert_eq!(
        rows(&app).await,
        before,
        "an outsider's calls wrote nothing"
    );
}

async fn sec_gb_01_the_all_in_one_tcp_port_serves_only_validation_and_health(backend: Backend) {
    // Over the socket, with no service token and no client CA, as `cargo run` starts it.
    let app = TestApp::spawn_over_unix_socket(backend).await;
    let resource_server = app.default_client().await;
    let before = rows(&app).await;
    for rpc in every_rpc() {
        assert_eq!(
            call(&app.grpc_url(), &rpc, None).await,
            Code::Unauthenticated,
            "{rpc} on the all-in-one's TCP port"
        );
    }
    // A resource server still validates, and health answers.
    let validate = "doorward.v1.TokenValidation/Validate";
    let credentials = basic(&resource_server);
    assert_eq!(
        call(&app.grpc_url(), validate, Some(&credentials)).await,
        Code::Ok
    );
    assert_eq!(
        call(&app.grpc_url(), "grpc.health.v1.Health/Check", None).await,
        Code::Ok
    );
    // auth-web, over the socket, still works end to end.
    let token = app
        .token_basic(&resource_server, &[("grant_type", "client_credentials")])
        .await;
    assert_eq!(token.status(), 200);
    assert_eq!(
        rows(&app).await[..2],
        before[..2],
        "no user or application was made"
    );
}

async fn sec_gb_02_an_outsider_cannot_claim_a_client_ip(backend: Backend) {
    // The reproduction: wrong passwords "from" many addresses would never be throttled if
    // an outsider's request context counted. It fails at its first call.
    let app = TestApp::spawn(backend).await;
    app.create_user("jane", "jane's password").await;
    let resource_server = app.default_client().await;
    for authorization in [None, Some(basic(&resource_server))] {
        let channel = tonic::transport::Channel::from_shared(app.grpc_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut users = pb::users_client::UsersClient::new(channel);
        let mut request = tonic::Request::new(pb::AuthenticatePasswordRequest {
            login: "jane".into(),
            password: "wrong".into(),
            context: Some(pb::RequestContext {
                client_ip: "203.0.113.7".into(),
                user_agent: "attacker".into(),
            }),
        });
        if let Some(value) = &authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        let status = users.authenticate_password(request).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
        assert!(
            status.message().contains("internal callers"),
            "{}",
            status.message()
        );
    }
}

async fn sec_gb_03_a_resource_server_may_validate_and_nothing_else(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let resource_server = app.default_client().await;
    let credentials = basic(&resource_server);
    let before = rows(&app).await;
    for rpc in every_rpc() {
        let expected = if rpc.starts_with("doorward.v1.TokenValidation/") {
            Code::Ok
        } else {
            Code::Unauthenticated
        };
        assert_eq!(
            call(&app.grpc_url(), &rpc, Some(&credentials)).await,
            expected,
            "{rpc} with a resource server's credentials"
        );
    }
    assert_eq!(rows(&app).await, before);
}

async fn sec_gb_04_a_wrong_service_token_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let wrong = "Bearer not-the-service-token-0000";
    for rpc in every_rpc() {
        assert_eq!(
            call(&app.grpc_url(), &rpc, Some(wrong)).await,
            Code::Unauthenticated,
            "{rpc} with a wrong service token"
        );
    }
    // The right one opens every internal service.
    let token = app
        .config
        .service_token
        .as_ref()
        .unwrap()
        .expose()
        .to_owned();
    let right = format!("Bearer {token}");
    assert_eq!(
        call(
            &app.grpc_url(),
            "doorward.v1.TokenService/GetJwks",
            Some(&right)
        )
        .await,
        Code::Ok
    );
}

async fn sec_gb_06_reflection_is_for_internal_callers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reflection = "grpc.reflection.v1.ServerReflection/ServerReflectionInfo";
    // Refused before the stream starts.
    assert_eq!(
        call(&app.grpc_url(), reflection, None).await,
        Code::Unauthenticated
    );
}

/// SEC-GB-05: the Unix socket admits only token-service's own user. The socket is mode 0600,
/// so another user cannot even connect; opened to everyone here, the peer's uid
/// (`SO_PEERCRED`) still decides. Needs root to run a probe as `nobody`. (Several threads:
/// the probe runs as a blocking child process while token-service serves it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_gb_05_the_unix_socket_admits_only_token_services_own_user() {
    let app = TestApp::spawn_over_unix_socket(Backend::Sqlite).await;
    let socket = app.socket().unwrap().to_owned();
    let url = format!("unix:{}", socket.display());
    let binary = probe_binary();
    let probe = |user: Option<&str>| {
        let mut command = match user {
            Some(user) => {
                let mut c = Command::new("setpriv");
                c.args([
                    &format!("--reuid={user}"),
                    &format!("--regid={user}"),
                    "--clear-groups",
                ]);
                c.arg(&binary);
                c
            }
            None => Command::new(&binary),
        };
        let output = command
            .args([url.as_str(), "doorward.v1.TokenService/GetJwks"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    assert_eq!(probe(None), "OK", "token-service's own user is internal");
    if !running_as_root() {
        std::fs::remove_file(&binary).unwrap();
        // `.ci/run` runs as root: under CI the other user's case must run.
        assert!(
            std::env::var_os("CI").is_none(),
            "SEC-GB-05 needs root under CI"
        );
        eprintln!("skipped: another user's connection needs root to switch users");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = socket.parent().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let answer = probe(Some("65534"));
    std::fs::remove_file(&binary).unwrap();
    assert!(
        answer.starts_with("STATUS Unauthenticated"),
        "nobody got {answer:?}"
    );
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The probe, copied where any user may run it (the build folder may not be).
fn probe_binary() -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let copy = std::env::temp_dir().join(format!(
        "doorward-grpc-probe-{}",
        doorward_shared::secret::random_id()
    ));
    std::fs::copy(env!("CARGO_BIN_EXE_grpc_probe"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}
