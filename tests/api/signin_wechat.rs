//! Citizens sign in from the mini-program: the `wx.login` code is traded
//! with (a fake) WeChat for the openid that identifies them.

use huying::domain::account::AccountId;
use huying::proto::v1 as pb;
use tonic::Code;

use crate::citizen_world::{NOTICE, World, access_token, account_id, refusal};
use crate::helpers::{Engine, filing, on_both_engines};

on_both_engines!(
    wechat_sign_in_creates_one_citizen_and_signs_the_same_one_in_again,
    bad_or_used_codes_are_refused_and_create_no_account,
    the_unionid_is_kept_once_wechat_tells_it,
    sign_in_waits_for_the_current_privacy_notice
);

async fn wechat_sign_in_creates_one_citizen_and_signs_the_same_one_in_again(engine: Engine) {
    let world = World::spawn(engine).await;

    let first = world.wechat_citizen("o-alice").await;
    let code = world.wechat.login("o-alice", None);
    // The notice was accepted at the first sign-in: no need to repeat it.
    let again = world.sign_in_wechat(&code, "").await.unwrap();

    assert_eq!(account_id(&first), account_id(&again));
    assert_eq!(first.principal.as_ref().unwrap().role(), pb::Role::Citizen);
    assert_eq!(world.wechat.exchanges(), 2);
    let mut citizen = world.app.citizen_with_token(&access_token(&again)).await;
    citizen
        .file_complaint(filing("req-wechat-0001"))
        .await
        .expect("the session works");

    // Payouts find the openid to pay.
    let id = AccountId(account_id(&first).parse().unwrap());
    let stored = world
        .app
        .store()
        .wechat_identity(id, &world.wechat.app_id)
        .await;
    assert_eq!(stored.unwrap().unwrap().openid, "o-alice");
    let other = world.wechat_citizen("o-bob").await;
    assert_ne!(account_id(&other), account_id(&first));
}

async fn bad_or_used_codes_are_refused_and_create_no_account(engine: Engine) {
    let world = World::spawn(engine).await;
    let issued = world.wechat.login("o-carol", None);

    let forged = world
        .sign_in_wechat("code-forged", NOTICE)
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");
    let store = world.app.store();
    let app_id = &world.wechat.app_id;
    assert!(
        store
            .citizen_by_wechat(app_id, "o-carol")
            .await
            .unwrap()
            .is_none()
    );

    world.sign_in_wechat(&issued, NOTICE).await.unwrap();
    let replayed = world.sign_in_wechat(&issued, NOTICE).await.unwrap_err();
    assert_eq!(replayed.code(), Code::Unauthenticated, "{replayed:?}");

    for (code, expected) in [("busy", Code::Unavailable), ("limited", Code::Unavailable)] {
        let status = world.sign_in_wechat(code, NOTICE).await.unwrap_err();
        assert_eq!(status.code(), expected, "{code}: {status:?}");
    }
    let empty = world.sign_in_wechat(" ", NOTICE).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.message().contains("wechat.code"), "{empty:?}");
    // The empty code never reached WeChat.
    assert_eq!(world.wechat.refusals(), [40029, 40163, -1, 45011]);
}

#[tokio::test]
async fn a_wrong_app_secret_is_a_server_fault_and_creates_nothing() {
    let world = World::spawn_with(Engine::Sqlite, |config| {
        let wechat = config.citizen_sign_in.wechat.as_mut().unwrap();
        wechat.app_secret = huying::security::Secret::new("not-the-secret");
    })
    .await;
    let code = world.wechat.login("o-dan", None);

    let status = world.sign_in_wechat(&code, NOTICE).await.unwrap_err();

    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(world.wechat.refusals(), [40125]);
    let store = world.app.store();
    assert!(
        store
            .citizen_by_wechat(&world.wechat.app_id, "o-dan")
            .await
            .unwrap()
            .is_none()
    );
}

async fn the_unionid_is_kept_once_wechat_tells_it(engine: Engine) {
    let world = World::spawn(engine).await;
    let first = world.wechat_citizen("o-erin").await;
    let id = AccountId(account_id(&first).parse().unwrap());
    let store = world.app.store();
    let app_id = &world.wechat.app_id;
    assert_eq!(
        store
            .wechat_identity(id, app_id)
            .await
            .unwrap()
            .unwrap()
            .unionid,
        None
    );

    let code = world.wechat.login("o-erin", Some("u-erin"));
    world.sign_in_wechat(&code, "").await.unwrap();
    // A later answer without it does not forget it.
    let code = world.wechat.login("o-erin", None);
    world.sign_in_wechat(&code, "").await.unwrap();

    let stored = store.wechat_identity(id, app_id).await.unwrap().unwrap();
    assert_eq!(stored.unionid.as_deref(), Some("u-erin"));
}

async fn sign_in_waits_for_the_current_privacy_notice(engine: Engine) {
    let world = World::spawn(engine).await;
    let store = world.app.store();
    let app_id = world.wechat.app_id.clone();

    for offered in ["", "2025-06"] {
        let code = world.wechat.login("o-fay", None);
        let status = world.sign_in_wechat(&code, offered).await.unwrap_err();
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        let (reason, metadata) = refusal(&status);
        assert_eq!(reason, "PRIVACY_NOTICE_NOT_ACCEPTED");
        assert_eq!(metadata["current_version"], NOTICE);
        assert!(
            store
                .citizen_by_wechat(&app_id, "o-fay")
                .await
                .unwrap()
                .is_none()
        );
    }

    let code = world.wechat.login("o-fay", None);
    let signed_in = world.sign_in_wechat(&code, NOTICE).await.unwrap();
    let identity = world.identity(&access_token(&signed_in)).await;
    assert_eq!(identity.privacy_notice_version, NOTICE);
    let accepted_at = identity.privacy_notice_accepted_at.unwrap();
    assert_eq!(accepted_at.seconds, world.now().timestamp());

    // A new notice comes into force (a replica configured with it): the
    // citizen must accept it before signing in there.
    let replica = world
        .app
        .replica_with(|config| config.citizen_sign_in.privacy_notice_version = "2026-07".into())
        .await;
    let on_replica = world.door_to(replica.address());
    let code = world.wechat.login("o-fay", None);
    let status = on_replica.sign_in_wechat(&code, "").await.unwrap_err();
    assert_eq!(refusal(&status).1["current_version"], "2026-07");
    let code = world.wechat.login("o-fay", None);
    let accepted = on_replica.sign_in_wechat(&code, "2026-07").await.unwrap();
    assert_eq!(account_id(&accepted), account_id(&signed_in));
    replica.stop().await.unwrap();
}
