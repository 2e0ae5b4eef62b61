//! One citizen, two ways in: a signed-in citizen links a phone or a WeChat
//! identity explicitly; what another account holds is refused, never merged.

use huying::domain::account::AccountId;
use huying::proto::v1 as pb;
use tonic::Code;

use crate::citizen_world::{NOTICE, World, access_token, account_id, refusal};
use crate::helpers::{Engine, file_one, on_both_engines};

on_both_engines!(
    a_wechat_citizen_links_a_phone_and_signs_in_either_way,
    a_phone_citizen_links_wechat_and_payouts_find_the_openid,
    what_another_account_holds_is_refused_and_nothing_is_merged
);

async fn link_phone(
    world: &World,
    token: &str,
    phone: &str,
) -> Result<pb::CitizenIdentity, tonic::Status> {
    world.request_code(phone).await.expect("a code is sent");
    let code = world.sms.last_code_for(phone);
    world
        .auth(Some(token))
        .await
        .link_phone(pb::LinkPhoneRequest {
            phone: phone.to_owned(),
            code,
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn link_wechat(
    world: &World,
    token: &str,
    openid: &str,
) -> Result<pb::CitizenIdentity, tonic::Status> {
    let code = world.wechat.login(openid, None);
    world
        .auth(Some(token))
        .await
        .link_we_chat(pb::LinkWeChatRequest { code })
        .await
        .map(tonic::Response::into_inner)
}

async fn a_wechat_citizen_links_a_phone_and_signs_in_either_way(engine: Engine) {
    let world = World::spawn(engine).await;
    let by_wechat = world.wechat_citizen("o-gao").await;

    let linked = link_phone(&world, &access_token(&by_wechat), "13900000011")
        .await
        .unwrap();
    world.app.clock.advance(chrono::Duration::minutes(1));
    let by_phone = world.phone_citizen("13900000011").await;

    assert_eq!(linked.phone_masked, "139****0011");
    assert!(linked.wechat_linked);
    assert_eq!(account_id(&by_phone), account_id(&by_wechat));
    // Linking again with the same phone changes nothing.
    world.app.clock.advance(chrono::Duration::minutes(1));
    let again = link_phone(&world, &access_token(&by_phone), "13900000011")
        .await
        .unwrap();
    assert_eq!(again, linked);
}

async fn a_phone_citizen_links_wechat_and_payouts_find_the_openid(engine: Engine) {
    let world = World::spawn(engine).await;
    let by_phone = world.phone_citizen("13900000012").await;
    let id = AccountId(account_id(&by_phone).parse().unwrap());
    let store = world.app.store();
    assert!(
        store
            .wechat_identity(id, &world.wechat.app_id)
            .await
            .unwrap()
            .is_none()
    );

    let linked = link_wechat(&world, &access_token(&by_phone), "o-hu")
        .await
        .unwrap();
    let code = world.wechat.login("o-hu", None);
    let by_wechat = world.sign_in_wechat(&code, "").await.unwrap();

    assert!(linked.wechat_linked);
    assert_eq!(account_id(&by_wechat), account_id(&by_phone));
    let identity = store
        .wechat_identity(id, &world.wechat.app_id)
        .await
        .unwrap();
    assert_eq!(identity.unwrap().openid, "o-hu");
}

async fn what_another_account_holds_is_refused_and_nothing_is_merged(engine: Engine) {
    let world = World::spawn(engine).await;
    let wechat_one = world.wechat_citizen("o-jin").await;
    let phone_one = world.phone_citizen("13900000013").await;
    let (wechat_token, phone_token) = (access_token(&wechat_one), access_token(&phone_one));
    // Both accounts hold a complaint.
    file_one(
        &mut world.app.citizen_with_token(&wechat_token).await,
        "req-link-01",
    )
    .await;
    file_one(
        &mut world.app.citizen_with_token(&phone_token).await,
        "req-link-02",
    )
    .await;

    world.app.clock.advance(chrono::Duration::minutes(1));
    let phone_taken = link_phone(&world, &wechat_token, "13900000013")
        .await
        .unwrap_err();
    let wechat_taken = link_wechat(&world, &phone_token, "o-jin")
        .await
        .unwrap_err();
    let second_wechat = link_wechat(&world, &wechat_token, "o-kong")
        .await
        .unwrap_err();
    let second_phone = link_phone(&world, &phone_token, "13900000014")
        .await
        .unwrap_err();

    for (status, reason) in [
        (&phone_taken, "PHONE_BELONGS_TO_ANOTHER_ACCOUNT"),
        (&wechat_taken, "WECHAT_BELONGS_TO_ANOTHER_ACCOUNT"),
        (&second_wechat, "ACCOUNT_HAS_ANOTHER_WECHAT"),
        (&second_phone, "ACCOUNT_HAS_ANOTHER_PHONE"),
    ] {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert_eq!(refusal(status).0, reason);
    }
    assert_eq!(world.identity(&wechat_token).await.phone_masked, "");
    assert!(!world.identity(&phone_token).await.wechat_linked);
    // Each way in still leads to its own account and its own complaint.
    world.app.clock.advance(chrono::Duration::minutes(1));
    let phone_again = world.phone_citizen("13900000013").await;
    assert_eq!(account_id(&phone_again), account_id(&phone_one));
    let code = world.wechat.login("o-jin", None);
    let wechat_again = world.sign_in_wechat(&code, NOTICE).await.unwrap();
    assert_eq!(account_id(&wechat_again), account_id(&wechat_one));
    let mut citizen = world
        .app
        .citizen_with_token(&access_token(&phone_again))
        .await;
    let mine = citizen
        .list_my_complaints(pb::ListMyComplaintsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.complaints.len(), 1);
}
