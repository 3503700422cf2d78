//! The gRPC contract as a client of token-service sees it: standard health checking, OAuth
//! refusals as data (not as gRPC errors), and the service-token guard. (Every other caller
//! check: `boundary.rs`.)

use doorward_proto::v1 as pb;
use doorward_tests::{Backend, TestApp, both_backends};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

both_backends!(
    grpc_health_reports_serving,
    grpc_reflection_lists_the_doorward_services,
    oauth_refusals_travel_as_data_not_as_grpc_errors,
    internal_rpcs_require_the_service_token_when_one_is_configured,
);

async fn grpc_health_reports_serving(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let channel = tonic::transport::Channel::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let response = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "doorward.v1.TokenService".into(),
        })
        .await
        .unwrap();
    assert_eq!(response.into_inner().status, ServingStatus::Serving as i32);
}

async fn oauth_refusals_travel_as_data_not_as_grpc_errors(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut tokens =
        pb::token_service_client::TokenServiceClient::new(app.internal_channel().await);
    let response = tokens
        .exchange(pb::ExchangeRequest {
            grant_type: "client_credentials".into(),
            client: Some(pb::ClientAuthentication {
                client_id: "unknown".into(),
                client_secret: Some("x".into()),
                method: pb::ClientAuthMethod::ClientSecretPost as i32,
            }),
            ..Default::default()
        })
        .await
        .expect("a refusal is an OK gRPC response")
        .into_inner();
    match response.result {
        Some(pb::exchange_response::Result::Error(error)) => {
            assert_eq!(error.error, "invalid_client")
        }
        other => panic!("expected an OAuth error, got {other:?}"),
    }
}

async fn internal_rpcs_require_the_service_token_when_one_is_configured(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.service_token = Some(doorward_shared::Secret::new("service-token-123"));
    })
    .await;
    // auth-web sends the token: the token endpoint works.
    let client = app.default_client().await;
    assert_eq!(
        app.token_basic(&client, &[("grant_type", "client_credentials")])
            .await
            .status(),
        200
    );
    // A caller without it is turned away.
    let mut tokens = pb::token_service_client::TokenServiceClient::connect(app.grpc_url())
        .await
        .unwrap();
    let status = tokens.get_jwks(pb::Empty {}).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
}

async fn grpc_reflection_lists_the_doorward_services(backend: Backend) {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(backend).await;
    let mut reflection = ServerReflectionClient::new(app.internal_channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "doorward.v1.TokenService",
        "doorward.v1.TokenValidation",
        "doorward.v1.Users",
        "doorward.v1.Applications",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
