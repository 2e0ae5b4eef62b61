//! Citizens' personal data: key rotation and the switch to SM4 with the
//! background re-encryption, a citizen's export and deletion of their own
//! account, and the retention purge.

use chrono::Duration;
use huying::clock::Clock;
use huying::config::Config;
use huying::proto::v1 as pb;
use huying::proto::v1::personal_data_service_client::PersonalDataServiceClient;
use huying::security::Algorithm;
use huying::startup::Application;
use tonic::Code;

use crate::citizen_world::{NOTICE, World, access_token, account_id};
use crate::helpers::{
    Bearer, Engine, TestApp, code_of, file_one, filing, on_both_engines, resolve_through_staff,
};
use crate::staff_accounts::create;

on_both_engines!(
    stored_values_survive_rotation_and_a_switch_to_sm4_and_the_job_reencrypts_them,
    the_export_holds_exactly_the_callers_data_unmasked,
    deleting_an_account_forgets_the_person_keeps_the_complaints_and_ends_the_sessions,
    the_purge_removes_what_is_past_retention_and_keeps_the_rest,
);

const CIPHER_COLUMNS: [&str; 3] = [
    "SELECT contact_phone_cipher FROM complaints WHERE contact_phone_cipher IS NOT NULL",
    "SELECT phone_cipher FROM accounts WHERE phone_cipher IS NOT NULL",
    "SELECT totp_secret_cipher FROM staff_credentials WHERE totp_secret_cipher IS NOT NULL",
];

/// Stops the server and starts it again on the same database with the
/// configuration `adjust` changed (new keys, another algorithm).
async fn restart_with(app: &mut TestApp, adjust: impl FnOnce(&mut Config)) {
    app.app.take().expect("running").stop().await.unwrap();
    adjust(&mut app.config);
    let next = Application::start(app.config.clone(), app.clock.clone())
        .await
        .expect("the server restarts");
    app.address = next.address();
    app.app = Some(next);
}

fn second_key(config: &mut Config) {
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    config.keys.data_keys.push((2, key));
}

/// The text values one query returns, read straight from the database.
async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap()
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if app.database_url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap()
    }
}

/// Every stored ciphertext, of every column.
async fn all_ciphers(app: &TestApp) -> Vec<String> {
    let mut all = Vec::new();
    for sql in CIPHER_COLUMNS {
        let values = texts(app, sql).await;
        assert!(
            !values.is_empty(),
            "the story stores a value in each column: {sql}"
        );
        all.extend(values);
    }
    all
}

async fn progress(app: &TestApp) -> pb::GetReencryptionProgressResponse {
    let session = app.sign_in("keys", pb::Role::SecurityAdmin, "centre").await;
    let token = session.session.unwrap().access_token;
    PersonalDataServiceClient::with_interceptor(app.channel().await, Bearer::new(&token))
        .get_reencryption_progress(pb::GetReencryptionProgressRequest {})
        .await
        .expect("reads the progress")
        .into_inner()
}

async fn reencrypt(app: &TestApp) -> u64 {
    let running = app.app.as_ref().expect("running");
    running.reencrypt_stale_values().await.expect("re-encrypts")
}

async fn stored_values_survive_rotation_and_a_switch_to_sm4_and_the_job_reencrypts_them(
    engine: Engine,
) {
    let mut world = World::spawn(engine).await;
    let citizen = world.phone_citizen("13800000001").await;
    let mut complaints = world.app.citizen_with_token(&access_token(&citizen)).await;
    file_one(&mut complaints, "req-rotate-01").await;
    let mut admin = world
        .app
        .staff_accounts("root", pb::Role::SystemAdmin)
        .await;
    let keeper = create(&mut admin, "keeper", pb::Role::SecurityAdmin, "centre").await;
    assert!(
        all_ciphers(&world.app)
            .await
            .iter()
            .all(|v| v.starts_with("v1:"))
    );

    // A second AES key: new values take it, old ones still read.
    restart_with(&mut world.app, second_key).await;
    let door = world.door_to(world.app.address);
    world.app.clock.advance(Duration::minutes(2));
    let token = door.phone_citizen("13800000001").await;
    assert_eq!(
        account_id(&token),
        account_id(&citizen),
        "the blind index is stable"
    );
    assert_eq!(
        door.identity(&access_token(&token)).await.phone_masked,
        "138****0001"
    );
    let mut complaints = world.app.citizen_with_token(&access_token(&token)).await;
    file_one(&mut complaints, "req-rotate-02").await;
    let newest = texts(
        &world.app,
        "SELECT contact_phone_cipher FROM complaints ORDER BY id",
    )
    .await;
    assert!(
        newest[0].starts_with("v1:") && newest[1].starts_with("v2:"),
        "{newest:?}"
    );

    // Then SM4: the keeper's v1 TOTP secret and every phone still open.
    restart_with(&mut world.app, |config| {
        config.keys.data_cipher = Algorithm::Sm4Gcm
    })
    .await;
    let door = world.door_to(world.app.address);
    world.app.clock.advance(Duration::minutes(2));
    let token = door.phone_citizen("13800000001").await;
    assert_eq!(
        door.identity(&access_token(&token)).await.phone_masked,
        "138****0001"
    );
    let secret = keeper
        .totp
        .clone()
        .expect("administrators get a factor")
        .secret;
    let code = world.app.totp_code(&secret);
    world
        .app
        .password_sign_in("keeper", &keeper.initial_password, &code)
        .await
        .expect("the TOTP secret sealed under AES v1 still opens");
    let mut complaints = world.app.citizen_with_token(&access_token(&token)).await;
    file_one(&mut complaints, "req-rotate-03").await;
    let newest = texts(
        &world.app,
        "SELECT contact_phone_cipher FROM complaints ORDER BY id",
    )
    .await;
    assert!(newest[2].starts_with("sm4:v2:"), "{newest:?}");

    let before = progress(&world.app).await;
    assert_eq!(
        (before.algorithm.as_str(), before.key_version),
        ("sm4-gcm", 2)
    );
    assert!(!before.complete);

    // One value per column per run: the job resumes where it stopped.
    restart_with(&mut world.app, |config| {
        config.personal_data.reencryption_batch = 1;
        config.personal_data.reencryption_batches_per_run = 1;
    })
    .await;
    assert_eq!(reencrypt(&world.app).await, 3);
    let stale = all_ciphers(&world.app).await;
    let stale = stale.iter().filter(|v| !v.starts_with("sm4:v2:")).count();
    assert_eq!(stale, 1, "one complaint is left for the next run");
    assert_eq!(reencrypt(&world.app).await, 1);
    assert_eq!(
        reencrypt(&world.app).await,
        0,
        "a finished rotation does nothing"
    );
    let all = all_ciphers(&world.app).await;
    assert!(all.iter().all(|v| v.starts_with("sm4:v2:")), "{all:?}");
    let after = progress(&world.app).await;
    assert!(after.complete, "{after:?}");
    assert!(
        after
            .columns
            .iter()
            .all(|c| c.total == c.current && c.total > 0)
    );
    let records = "SELECT COUNT(*) FROM audit_records WHERE action = 'personal_data.reencrypted'";
    assert_eq!(
        count(&world.app, records).await,
        4,
        "one record per batch that changed"
    );

    // With the old key gone, everything still reads and the phone is found.
    restart_with(&mut world.app, |config| {
        config.keys.data_keys.retain(|(v, _)| *v == 2)
    })
    .await;
    let door = world.door_to(world.app.address);
    world.app.clock.advance(Duration::minutes(2));
    let token = door.phone_citizen("13800000001").await;
    assert_eq!(
        door.identity(&access_token(&token)).await.phone_masked,
        "138****0001"
    );
    let mut supervisor = world
        .app
        .staff("sup", pb::Role::DistrictSupervisor, "centre")
        .await;
    let revealed = supervisor
        .reveal_reporter_contact(pb::RevealReporterContactRequest {
            complaint_id: "1".to_owned(),
            reason: "回访核实".to_owned(),
        })
        .await
        .expect("reveals the re-encrypted contact")
        .into_inner();
    assert_eq!(revealed.contact_phone, "13812345678");
}

async fn link_wechat(world: &World, token: &str, openid: &str) {
    let code = world.wechat.login(openid, Some("union-1"));
    world
        .auth(Some(token))
        .await
        .link_we_chat(pb::LinkWeChatRequest { code })
        .await
        .expect("links WeChat");
}

async fn export(world: &World, token: &str) -> pb::ExportMyDataResponse {
    world
        .app
        .citizen_with_token(token)
        .await
        .export_my_data(pb::ExportMyDataRequest {})
        .await
        .expect("exports")
        .into_inner()
}

async fn the_export_holds_exactly_the_callers_data_unmasked(engine: Engine) {
    let world = World::spawn(engine).await;
    let alice = world.phone_citizen("13800000002").await;
    link_wechat(&world, &access_token(&alice), "openid-alice").await;
    let mut mine = world.app.citizen_with_token(&access_token(&alice)).await;
    let first = file_one(&mut mine, "req-export-01").await;
    let mut no_phone = filing("req-export-02");
    no_phone.contact_phone = String::new();
    let second = mine.file_complaint(no_phone).await.unwrap().into_inner();
    let second = second.complaint.unwrap().id;
    resolve_through_staff(&world.app, &first, "sd:pingshan/municipal").await;
    mine.rate_complaint(pb::RateComplaintRequest {
        complaint_id: first.clone(),
        satisfaction: pb::Satisfaction::Satisfied.into(),
        comment: "处理及时".to_owned(),
    })
    .await
    .unwrap();

    let mut bob = world.app.citizen("bob").await;
    let mut theirs = filing("req-export-03");
    theirs.contact_phone = "13700001111".to_owned();
    theirs.text = "别人的投诉：路灯不亮已经一周了。".to_owned();
    let theirs = bob.file_complaint(theirs).await.unwrap().into_inner();
    let theirs = theirs.complaint.unwrap().id;

    let data = export(&world, &access_token(&alice)).await;
    assert_eq!(data.account_id, account_id(&alice));
    assert_eq!(data.phone, "13800000002");
    assert_eq!(data.privacy_notice_version, NOTICE);
    let wechat: Vec<_> = data
        .wechat_identities
        .iter()
        .map(|w| w.openid.as_str())
        .collect();
    assert_eq!(wechat, ["openid-alice"]);
    assert_eq!(data.wechat_identities[0].unionid, "union-1");

    let mut ids: Vec<_> = data
        .complaints
        .iter()
        .map(|c| c.complaint.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, [first.clone(), second.clone()]);
    let rated = data
        .complaints
        .iter()
        .find(|c| c.complaint.as_ref().unwrap().id == first)
        .unwrap();
    assert_eq!(rated.contact_phone, "13812345678");
    assert!(rated.complaint.as_ref().unwrap().rating.is_some());
    let statuses: Vec<_> = rated.timeline.iter().map(|e| e.status()).collect();
    assert_eq!(statuses.first(), Some(&pb::ComplaintStatus::Received));
    assert!(
        statuses.contains(&pb::ComplaintStatus::Resolved),
        "{statuses:?}"
    );
    let visible = world
        .app
        .citizen_with_token(&access_token(&alice))
        .await
        .watch_complaint(pb::WatchComplaintRequest {
            complaint_id: first.clone(),
            after_sequence: 0,
        })
        .await
        .unwrap();
    let mut visible = crate::helpers::only_events(visible.into_inner());
    for exported in &rated.timeline {
        use tokio_stream::StreamExt;
        let seen = visible.next().await.expect("the same events as the stream");
        assert_eq!(
            seen.sequence, exported.sequence,
            "only citizen-visible events"
        );
    }

    assert!(!ids.contains(&theirs));
    let text = format!("{data:?}");
    assert!(!text.contains("13700001111") && !text.contains("路灯不亮"));
}

async fn deleting_an_account_forgets_the_person_keeps_the_complaints_and_ends_the_sessions(
    engine: Engine,
) {
    let logs = crate::privacy::captured_logs();
    let world = World::spawn(engine).await;
    let signed_in = world.wechat_citizen("openid-leaving").await;
    let token = access_token(&signed_in);
    let old_id = account_id(&signed_in);
    world.request_code("13800000003").await.unwrap();
    let code = world.sms.last_code_for("13800000003");
    let phone = pb::LinkPhoneRequest {
        phone: "13800000003".to_owned(),
        code,
    };
    world
        .auth(Some(&token))
        .await
        .link_phone(phone)
        .await
        .unwrap();
    let mut citizen = world.app.citizen_with_token(&token).await;
    let mut request = filing("req-delete-01");
    request.contact_phone = "13922223333".to_owned();
    let complaint = citizen.file_complaint(request).await.unwrap().into_inner();
    let complaint = complaint.complaint.unwrap().id;

    let refused = citizen
        .delete_my_account(pb::DeleteMyAccountRequest {
            confirmation: "yes".to_owned(),
        })
        .await;
    assert_eq!(code_of(refused), Code::InvalidArgument);
    assert_eq!(world.identity(&token).await.phone_masked, "138****0003");

    let deleted = citizen
        .delete_my_account(pb::DeleteMyAccountRequest {
            confirmation: "DELETE MY ACCOUNT".to_owned(),
        })
        .await
        .expect("deletes")
        .into_inner();
    assert_eq!(deleted.complaints_kept, 1);

    // The person is gone from the database; the complaint stays.
    let account = format!(
        "SELECT COUNT(*) FROM accounts WHERE id = {old_id} AND phone_cipher IS NULL \
         AND phone_index IS NULL AND provider = 'deleted' AND deleted_at IS NOT NULL"
    );
    assert_eq!(count(&world.app, &account).await, 1);
    let links = format!("SELECT COUNT(*) FROM citizen_wechat WHERE account_id = {old_id}");
    assert_eq!(count(&world.app, &links).await, 0);
    let kept = format!(
        "SELECT COUNT(*) FROM complaints WHERE id = {complaint} AND citizen_id = {old_id} \
         AND contact_phone_cipher IS NULL AND contact_phone_masked IS NULL AND text <> ''"
    );
    assert_eq!(count(&world.app, &kept).await, 1);
    let open = format!(
        "SELECT COUNT(*) FROM sessions \
         WHERE account_id = {old_id} AND revoked_at IS NULL"
    );
    assert_eq!(count(&world.app, &open).await, 0);

    // Its tokens no longer work.
    let app = world.app.app.as_ref().unwrap();
    app.learn_revocations().await.unwrap();
    let read = citizen
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: complaint.clone(),
        })
        .await;
    assert_eq!(code_of(read), Code::Unauthenticated);
    let refresh = world
        .auth(None)
        .await
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: signed_in.session.as_ref().unwrap().refresh_token.clone(),
        })
        .await;
    assert_eq!(code_of(refresh), Code::Unauthenticated);

    // The same WeChat user and phone come back as new, empty accounts.
    let again = world.wechat_citizen("openid-leaving").await;
    assert_ne!(account_id(&again), old_id);
    let data = export(&world, &access_token(&again)).await;
    assert!(data.complaints.is_empty() && data.phone.is_empty());
    world.app.clock.advance(Duration::minutes(2));
    let by_phone = world.phone_citizen("13800000003").await;
    assert_ne!(account_id(&by_phone), old_id);
    assert_ne!(account_id(&by_phone), account_id(&again));

    // Audit-logged without personal data.
    let audit = format!(
        "SELECT reason || ' ' || detail FROM audit_records \
         WHERE action = 'citizen.account_deleted' AND target = 'account:{old_id}'"
    );
    let audit = texts(&world.app, &audit).await;
    assert_eq!(audit.len(), 1);
    assert!(
        !audit[0].contains("0003") && !audit[0].contains("openid"),
        "{audit:?}"
    );
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("citizen account deleted"),
        "the capture works"
    );
    for secret in ["13800000003", "13922223333", "openid-leaving"] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}

async fn the_purge_removes_what_is_past_retention_and_keeps_the_rest(engine: Engine) {
    let world = World::spawn(engine).await;
    let app = &world.app;
    let start = app.clock.now();
    let withdraw = |id: String| pb::WithdrawComplaintRequest {
        complaint_id: id,
        reason: "已自行解决".to_owned(),
    };

    // Day 0: an old session, a withdrawn and an open complaint, two codes.
    let mut old = app.citizen("old-citizen").await;
    let closed_long_ago = file_one(&mut old, "req-purge-01").await;
    old.withdraw_complaint(withdraw(closed_long_ago.clone()))
        .await
        .unwrap();
    let still_open = file_one(&mut old, "req-purge-02").await;
    world.request_code("13800000004").await.unwrap();
    app.clock.advance(Duration::minutes(4));
    world.request_code("13800000005").await.unwrap();

    // A day later, only the first code is more than a day past its expiry.
    app.clock
        .set(start + Duration::days(1) + Duration::minutes(7));
    let running = app.app.as_ref().unwrap();
    let first = running.purge_personal_data().await.unwrap();
    assert_eq!((first.sms_codes, first.complaint_contacts), (1, 0));
    assert_eq!(count(app, "SELECT COUNT(*) FROM sms_codes").await, 1);

    // Day 170: a recent withdrawal; day 181: the purge.
    app.clock.set(start + Duration::days(170));
    let mut recent = app.citizen("recent-citizen").await;
    let closed_recently = file_one(&mut recent, "req-purge-03").await;
    recent
        .withdraw_complaint(withdraw(closed_recently.clone()))
        .await
        .unwrap();
    app.clock.set(start + Duration::days(181));

    let sessions = "SELECT COUNT(*) FROM sessions";
    let before = count(app, sessions).await;
    let report = app
        .app
        .as_ref()
        .unwrap()
        .purge_personal_data()
        .await
        .unwrap();
    assert_eq!(report.sms_codes, 1);
    assert_eq!(report.complaint_contacts, 1);
    assert!(report.sessions >= 1);
    assert_eq!(count(app, sessions).await, before - report.sessions as i64);
    let cutoff = (start + Duration::days(181 - 30)).to_rfc3339();
    let stale = if app.database_url.starts_with("postgres") {
        format!("SELECT COUNT(*) FROM sessions WHERE expires_at < '{cutoff}'")
    } else {
        let micros = (start + Duration::days(151)).timestamp_micros();
        format!("SELECT COUNT(*) FROM sessions WHERE expires_at < {micros}")
    };
    assert_eq!(count(app, &stale).await, 0);
    assert!(count(app, sessions).await >= 1, "the recent sessions stay");
    assert_eq!(count(app, "SELECT COUNT(*) FROM sms_codes").await, 0);

    let contact = |id: &str| {
        format!(
            "SELECT COUNT(*) FROM complaints WHERE id = {id} AND contact_phone_cipher IS NOT NULL"
        )
    };
    assert_eq!(count(app, &contact(&closed_long_ago)).await, 0);
    assert_eq!(
        count(app, &contact(&still_open)).await,
        1,
        "open cases keep it"
    );
    assert_eq!(count(app, &contact(&closed_recently)).await, 1);

    let audit = "SELECT COUNT(*) FROM audit_records \
                 WHERE action = 'personal_data.retention_purged'";
    assert_eq!(count(app, audit).await, 2);
    let again = app
        .app
        .as_ref()
        .unwrap()
        .purge_personal_data()
        .await
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}
