//! The (RPC, role) table, checked against the running server.

use huying::api::access::{Audience, RULES, rule_for};
use huying::proto::FILE_DESCRIPTOR_SET;
use huying::proto::v1 as pb;
use prost::Message;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;

use crate::helpers::{Engine, TestApp};

const ROLES: [pb::Role; 9] = [
    pb::Role::Citizen,
    pb::Role::Dispatcher,
    pb::Role::Handler,
    pb::Role::UnitSupervisor,
    pb::Role::DistrictSupervisor,
    pb::Role::Auditor,
    pb::Role::SystemAdmin,
    pb::Role::SecurityAdmin,
    pb::Role::AuditAdmin,
];

fn domain_role(role: pb::Role) -> huying::domain::account::Role {
    let name = role
        .as_str_name()
        .trim_start_matches("ROLE_")
        .to_ascii_lowercase();
    huying::domain::account::Role::parse(&name).expect("every proto role has a domain role")
}

/// Calls a method with an empty request message and returns the code.
async fn call_empty(app: &TestApp, method: &'static str, token: Option<&str>) -> Code {
    let mut grpc = tonic::client::Grpc::new(app.channel().await);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(());
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().unwrap();
        request.metadata_mut().insert("authorization", value);
    }
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    // Called as a server stream, so that an admitted stream that stays
    // open answers with its headers instead of hanging the call; a refusal
    // or an error arrives as the status either way.
    let path = PathAndQuery::from_static(method);
    match grpc.server_streaming(request, path, codec).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn every_rpc_admits_exactly_the_roles_its_rule_names() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut callers: Vec<(Option<pb::Role>, Option<String>)> = vec![(None, None)];
    for role in ROLES {
        let unit = if role == pb::Role::Citizen {
            ""
        } else {
            "centre"
        };
        let session = app.sign_in(role.as_str_name(), role, unit).await;
        callers.push((Some(role), Some(session.session.unwrap().access_token)));
    }

    let mut mismatches = Vec::new();
    for rule in RULES {
        for (role, token) in &callers {
            let code = call_empty(&app, rule.method, token.as_deref()).await;
            let refused = matches!(code, Code::Unauthenticated | Code::PermissionDenied);
            let expected_ok = match (rule.audience, role) {
                (Audience::Public, _) => !refused,
                (Audience::Roles(_), None) => code == Code::Unauthenticated,
                (Audience::Roles(allowed), Some(role)) if allowed.contains(&domain_role(*role)) => {
                    !refused
                }
                (Audience::Roles(_), Some(_)) => code == Code::PermissionDenied,
            };
            if !expected_ok {
                mismatches.push(format!("{} as {role:?}: {code:?}", rule.method));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[tokio::test]
async fn a_method_without_a_rule_is_refused() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let code = call_empty(&app, "/huying.v1.CitizenService/DeleteEverything", None).await;
    assert_eq!(code, Code::PermissionDenied);
}

#[test]
fn every_method_in_the_api_has_exactly_one_rule() {
    let descriptors = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let mut methods = Vec::new();
    for file in descriptors
        .file
        .iter()
        .filter(|f| f.package() == "huying.v1")
    {
        for service in &file.service {
            for method in &service.method {
                methods.push(format!("/huying.v1.{}/{}", service.name(), method.name()));
            }
        }
    }

    for method in &methods {
        assert!(rule_for(method).is_some(), "{method} has no access rule");
        assert_eq!(
            RULES.iter().filter(|r| r.method == method).count(),
            1,
            "{method}"
        );
    }
    assert_eq!(
        methods.len(),
        RULES.len(),
        "the table names methods the API does not have"
    );
}
