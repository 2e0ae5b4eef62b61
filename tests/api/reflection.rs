//! What grpcurl and other tools see through server reflection.

use tokio_stream::StreamExt;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::helpers::{Engine, TestApp};

async fn ask(app: &TestApp, request: MessageRequest) -> MessageResponse {
    let mut client = ServerReflectionClient::new(app.channel().await);
    let outbound = tokio_stream::iter([ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    }]);
    let mut answers = client
        .server_reflection_info(outbound)
        .await
        .unwrap()
        .into_inner();
    answers
        .next()
        .await
        .unwrap()
        .unwrap()
        .message_response
        .unwrap()
}

#[tokio::test]
async fn reflection_lists_the_api_and_describes_it() {
    let app = TestApp::spawn(Engine::Sqlite).await;

    let MessageResponse::ListServicesResponse(listed) =
        ask(&app, MessageRequest::ListServices(String::new())).await
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "huying.v1.AuthService",
        "huying.v1.CitizenService",
        "huying.v1.CaseService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    let MessageResponse::FileDescriptorResponse(files) = ask(
        &app,
        MessageRequest::FileContainingSymbol("huying.v1.CitizenService".to_owned()),
    )
    .await
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}
