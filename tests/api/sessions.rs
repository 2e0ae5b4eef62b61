use huying::proto::v1 as pb;
use tonic::Code;

use crate::helpers::{Engine, TestApp, filing, on_both_engines};

on_both_engines!(
    refresh_rotates_and_a_replayed_token_revokes_the_session,
    sign_out_ends_the_session
);

async fn refresh(app: &TestApp, token: &str) -> Result<pb::SignInResponse, tonic::Status> {
    app.auth()
        .await
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn refresh_rotates_and_a_replayed_token_revokes_the_session(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let first = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();

    let second = refresh(&app, &first.refresh_token).await.unwrap();
    let second_session = second.session.unwrap();
    assert_ne!(second_session.refresh_token, first.refresh_token);
    assert_eq!(second.principal.unwrap().role(), pb::Role::Citizen);
    app.citizen_with_token(&second_session.access_token)
        .await
        .file_complaint(filing("req-session-01"))
        .await
        .expect("the new access token works");

    // The first token was copied and replayed: the whole session ends.
    assert_eq!(
        refresh(&app, &first.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
    assert_eq!(
        refresh(&app, &second_session.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

async fn sign_out_ends_the_session(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let session = app
        .sign_in("alice", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();

    app.auth()
        .await
        .sign_out(pb::SignOutRequest {
            refresh_token: session.refresh_token.clone(),
        })
        .await
        .unwrap();

    assert_eq!(
        refresh(&app, &session.refresh_token)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn development_sign_in_is_refused_unless_enabled() {
    let app = TestApp::spawn_with(Engine::Sqlite, |config| config.dev_sign_in = false).await;
    let refused = app
        .auth()
        .await
        .sign_in(pb::SignInRequest {
            credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                subject: "alice".to_owned(),
                role: pb::Role::Citizen.into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn staff_must_name_a_unit_and_citizens_must_not() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut auth = app.auth().await;
    for (role, unit) in [(pb::Role::Handler, ""), (pb::Role::Citizen, "sd_pingshan")] {
        let status = auth
            .sign_in(pb::SignInRequest {
                credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                    subject: "someone".to_owned(),
                    role: role.into(),
                    unit_id: unit.to_owned(),
                    display_name: String::new(),
                })),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{role:?}");
    }
}
