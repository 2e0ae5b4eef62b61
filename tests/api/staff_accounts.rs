//! Staff accounts made by a system administrator: password sign-in, the
//! lock-out, the TOTP second factor and its replay guard, disabling, and
//! the bootstrap command that makes the first administrator.

use chrono::Duration;
use huying::clock::Clock;
use huying::proto::v1 as pb;
use huying::proto::v1::staff_account_service_client::StaffAccountServiceClient;
use huying::security::totp::{self, TotpSecret};
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::helpers::{Bearer, Engine, TestApp, code_of, on_both_engines};

pub type StaffClient = StaffAccountServiceClient<InterceptedService<Channel, Bearer>>;

const MUNICIPAL: &str = "sd:pingshan/municipal";

impl TestApp {
    /// A StaffAccountService client for a development-provider caller.
    pub async fn staff_accounts(&self, subject: &str, role: pb::Role) -> StaffClient {
        let session = self.sign_in(subject, role, "centre").await;
        self.staff_accounts_with(&session.session.unwrap().access_token)
            .await
    }

    pub async fn staff_accounts_with(&self, token: &str) -> StaffClient {
        StaffAccountServiceClient::with_interceptor(self.channel().await, Bearer::new(token))
    }

    /// Signs in with a staff account's password and code.
    pub async fn password_sign_in(
        &self,
        username: &str,
        password: &str,
        totp_code: &str,
    ) -> Result<pb::SignInResponse, tonic::Status> {
        self.auth()
            .await
            .sign_in(pb::SignInRequest {
                credential: Some(pb::sign_in_request::Credential::Staff(
                    pb::StaffPasswordCredential {
                        username: username.to_owned(),
                        password: password.to_owned(),
                        totp_code: totp_code.to_owned(),
                    },
                )),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// A code no step within the tolerance has.
    pub fn wrong_totp_code(&self, secret: &str) -> String {
        let secret = TotpSecret::from_base32(secret).expect("a base32 secret");
        let step = totp::step_at(self.clock.now());
        let near: Vec<String> = (step - 1..=step + 1)
            .map(|s| totp::code_for_step(&secret, s))
            .collect();
        (0..4)
            .map(|i| format!("{i}{i}{i}{i}{i}{i}"))
            .find(|code| !near.contains(code))
            .expect("four candidates cannot all be near codes")
    }

    /// The code an authenticator holding `secret` shows at the test clock's now.
    pub fn totp_code(&self, secret: &str) -> String {
        let secret = TotpSecret::from_base32(secret).expect("a base32 secret");
        totp::code_at(&secret, self.clock.now())
    }
}

pub async fn create(
    admin: &mut StaffClient,
    username: &str,
    role: pb::Role,
    unit: &str,
) -> pb::CreateStaffAccountResponse {
    admin
        .create_staff_account(pb::CreateStaffAccountRequest {
            username: username.to_owned(),
            display_name: format!("{username} (test)"),
            role: role.into(),
            unit_id: unit.to_owned(),
        })
        .await
        .expect("creates a staff account")
        .into_inner()
}

/// Every refusal reads the same, whatever was wrong.
fn assert_refused(result: Result<pb::SignInResponse, tonic::Status>) -> String {
    let status = result.expect_err("the sign-in is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    status.message().to_owned()
}

on_both_engines!(
    a_created_account_signs_in_with_its_password_and_changes_it,
    repeated_failures_lock_the_account_until_the_lock_time_runs_out,
    an_administrator_lifts_a_lock_out_early,
    administrator_roles_sign_in_only_with_a_fresh_code,
    other_staff_may_enrol_a_second_factor,
    a_disabled_account_cannot_sign_in_and_its_sessions_end,
    the_bootstrap_command_creates_the_first_administrator_once,
);

async fn a_created_account_signs_in_with_its_password_and_changes_it(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;

    let created = create(&mut admin, "wang.fang", pb::Role::Handler, MUNICIPAL).await;
    let account = created.account.unwrap();
    assert_eq!(account.username, "wang.fang");
    assert!(account.password_is_initial);
    assert!(created.totp.is_none(), "a handler's factor is optional");
    let initial = created.initial_password;
    assert_eq!(initial.len(), 19);

    let signed_in = app
        .password_sign_in("wang.fang", &initial, "")
        .await
        .unwrap();
    let principal = signed_in.principal.unwrap();
    assert_eq!(principal.account_id, account.account_id);
    assert_eq!(principal.role(), pb::Role::Handler);
    assert_eq!(principal.unit_id, MUNICIPAL);
    // The session is a real one: the handler reads their queue with it.
    let token = signed_in.session.unwrap().access_token;
    let mut queue = huying::proto::v1::case_service_client::CaseServiceClient::with_interceptor(
        app.channel().await,
        Bearer::new(&token),
    );
    queue
        .list_queue(pb::ListQueueRequest::default())
        .await
        .unwrap();

    let wrong = assert_refused(
        app.password_sign_in("wang.fang", "Not-the-password-1", "")
            .await,
    );
    let unknown = assert_refused(app.password_sign_in("nobody.here", &initial, "").await);
    assert_eq!(wrong, unknown, "failures never say which part was wrong");

    let again = admin
        .create_staff_account(pb::CreateStaffAccountRequest {
            username: "wang.fang".to_owned(),
            display_name: String::new(),
            role: pb::Role::Dispatcher.into(),
            unit_id: "centre".to_owned(),
        })
        .await;
    assert_eq!(code_of(again), Code::InvalidArgument);

    let mut own = app.staff_accounts_with(&token).await;
    let weak = own
        .change_password(pb::ChangePasswordRequest {
            old_password: initial.clone(),
            new_password: "short".to_owned(),
        })
        .await;
    assert_eq!(code_of(weak), Code::InvalidArgument);
    let wrong_old = own
        .change_password(pb::ChangePasswordRequest {
            old_password: "Guessed-Password-9".to_owned(),
            new_password: "Brand-new-secret-77".to_owned(),
        })
        .await;
    assert_eq!(code_of(wrong_old), Code::InvalidArgument);
    own.change_password(pb::ChangePasswordRequest {
        old_password: initial.clone(),
        new_password: "Brand-new-secret-77".to_owned(),
    })
    .await
    .unwrap();

    assert_refused(app.password_sign_in("wang.fang", &initial, "").await);
    app.password_sign_in("wang.fang", "Brand-new-secret-77", "")
        .await
        .unwrap();
}

async fn repeated_failures_lock_the_account_until_the_lock_time_runs_out(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "li.na", pb::Role::Dispatcher, "centre").await;
    let password = created.initial_password;

    // Four failures and a success: the count starts again.
    for _ in 0..4 {
        assert_refused(app.password_sign_in("li.na", "Wrong-password-01", "").await);
    }
    app.password_sign_in("li.na", &password, "").await.unwrap();

    for _ in 0..5 {
        assert_refused(app.password_sign_in("li.na", "Wrong-password-01", "").await);
    }
    // Locked: even the right password is refused, with the same answer.
    assert_refused(app.password_sign_in("li.na", &password, "").await);
    let listed = admin
        .list_staff_accounts(pb::ListStaffAccountsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let locked_until = listed.accounts[0].locked_until.unwrap();
    let lock_start = app.clock.now().timestamp();
    assert_eq!(locked_until.seconds, lock_start + 15 * 60);

    app.clock
        .advance(Duration::minutes(15) - Duration::seconds(1));
    assert_refused(app.password_sign_in("li.na", &password, "").await);
    app.clock.advance(Duration::seconds(1));
    app.password_sign_in("li.na", &password, "").await.unwrap();
}

async fn an_administrator_lifts_a_lock_out_early(engine: Engine) {
    // The limit and the lock time are configurable.
    let app = TestApp::spawn_with(engine, |config| {
        config.lockout.max_failures = 3;
        config.lockout.lock_for = Duration::hours(2);
    })
    .await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "zhao.lei", pb::Role::Handler, MUNICIPAL).await;
    let id = created.account.unwrap().account_id;

    for _ in 0..3 {
        assert_refused(
            app.password_sign_in("zhao.lei", "Wrong-password-01", "")
                .await,
        );
    }
    app.clock.advance(Duration::minutes(90));
    assert_refused(
        app.password_sign_in("zhao.lei", &created.initial_password, "")
            .await,
    );

    // A fresh session: the first one's access token expired meanwhile.
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let unlocked = admin
        .unlock_account(pb::UnlockAccountRequest {
            account_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(unlocked.locked_until.is_none());
    assert_eq!(unlocked.failed_attempts, 0);
    app.password_sign_in("zhao.lei", &created.initial_password, "")
        .await
        .unwrap();

    let unknown = admin
        .unlock_account(pb::UnlockAccountRequest {
            account_id: "999999".to_owned(),
        })
        .await;
    assert_eq!(code_of(unknown), Code::NotFound);
}

async fn administrator_roles_sign_in_only_with_a_fresh_code(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "chen.jing", pb::Role::SecurityAdmin, "centre").await;
    let password = created.initial_password;
    let totp = created.totp.expect("administrator roles get a factor");
    assert!(
        totp.otpauth_uri
            .starts_with("otpauth://totp/Huying:chen.jing?secret=")
    );
    assert!(created.account.unwrap().second_factor_active);

    assert_refused(app.password_sign_in("chen.jing", &password, "").await);
    let wrong_code = app.wrong_totp_code(&totp.secret);
    assert_refused(
        app.password_sign_in("chen.jing", &password, &wrong_code)
            .await,
    );

    let code = app.totp_code(&totp.secret);
    let signed_in = app
        .password_sign_in("chen.jing", &password, &code)
        .await
        .unwrap();
    assert_eq!(signed_in.principal.unwrap().role(), pb::Role::SecurityAdmin);
    // The same code again, still within its step: a replay.
    assert_refused(app.password_sign_in("chen.jing", &password, &code).await);

    app.clock.advance(Duration::seconds(30));
    let next = app.totp_code(&totp.secret);
    app.password_sign_in("chen.jing", &password, &next)
        .await
        .unwrap();
}

async fn other_staff_may_enrol_a_second_factor(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "sun.li", pb::Role::Handler, MUNICIPAL).await;
    let password = created.initial_password;
    let session = app.password_sign_in("sun.li", &password, "").await.unwrap();
    let mut own = app
        .staff_accounts_with(&session.session.unwrap().access_token)
        .await;

    let totp = own
        .enroll_totp(pb::EnrollTotpRequest {})
        .await
        .unwrap()
        .into_inner()
        .totp
        .unwrap();
    // Pending: sign-in still needs no code.
    app.password_sign_in("sun.li", &password, "").await.unwrap();
    let bad = own
        .confirm_totp(pb::ConfirmTotpRequest {
            code: "12345".to_owned(),
        })
        .await;
    assert_eq!(code_of(bad), Code::InvalidArgument);
    own.confirm_totp(pb::ConfirmTotpRequest {
        code: app.totp_code(&totp.secret),
    })
    .await
    .unwrap();

    assert_refused(app.password_sign_in("sun.li", &password, "").await);
    // The confirming code's step is used up too.
    let code = app.totp_code(&totp.secret);
    assert_refused(app.password_sign_in("sun.li", &password, &code).await);
    app.clock.advance(Duration::seconds(30));
    let code = app.totp_code(&totp.secret);
    app.password_sign_in("sun.li", &password, &code)
        .await
        .unwrap();

    let again = own.enroll_totp(pb::EnrollTotpRequest {}).await;
    assert_eq!(code_of(again), Code::FailedPrecondition);
}

async fn a_disabled_account_cannot_sign_in_and_its_sessions_end(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "zhou.min", pb::Role::Dispatcher, "centre").await;
    let id = created.account.unwrap().account_id;
    let password = created.initial_password;
    let session = app
        .password_sign_in("zhou.min", &password, "")
        .await
        .unwrap();

    let disabled = admin
        .disable_account(pb::DisableAccountRequest {
            account_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(disabled.disabled);
    assert_refused(app.password_sign_in("zhou.min", &password, "").await);
    let refreshed = app
        .auth()
        .await
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: session.session.unwrap().refresh_token,
        })
        .await;
    assert_eq!(code_of(refreshed), Code::Unauthenticated);

    admin
        .enable_account(pb::EnableAccountRequest { account_id: id })
        .await
        .unwrap();
    app.password_sign_in("zhou.min", &password, "")
        .await
        .unwrap();
}

/// A role that needs a factor and has none cannot sign in; a reset with a
/// new factor lets it in.
#[tokio::test]
async fn a_staff_member_moved_into_an_administrator_role_needs_a_factor() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut admin = app.staff_accounts("root", pb::Role::SystemAdmin).await;
    let created = create(&mut admin, "he.yun", pb::Role::Auditor, "centre").await;
    let id = created.account.unwrap().account_id;
    app.password_sign_in("he.yun", &created.initial_password, "")
        .await
        .unwrap();

    let mut directory = app.directory("root", pb::Role::SystemAdmin).await;
    directory
        .save_staff_member(pb::SaveStaffMemberRequest {
            account_id: id.clone(),
            role: pb::Role::AuditAdmin.into(),
            unit_id: "centre".to_owned(),
            display_name: "He Yun".to_owned(),
        })
        .await
        .unwrap();
    assert_refused(
        app.password_sign_in("he.yun", &created.initial_password, "")
            .await,
    );

    let reset = admin
        .reset_password(pb::ResetPasswordRequest {
            account_id: id,
            new_second_factor: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(reset.initial_password, created.initial_password);
    let code = app.totp_code(&reset.totp.unwrap().secret);
    let signed_in = app
        .password_sign_in("he.yun", &reset.initial_password, &code)
        .await
        .unwrap();
    assert_eq!(signed_in.principal.unwrap().role(), pb::Role::AuditAdmin);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `huying bootstrap-admin` against the test server's database, with
/// its keys.
async fn bootstrap(app: &TestApp, username: &str) -> std::process::Output {
    let keys = &app.config.keys;
    let data_keys = keys
        .data_keys
        .iter()
        .map(|(version, key)| format!("{version}:{}", hex(key)))
        .collect::<Vec<_>>()
        .join(",");
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_huying"));
    command
        .args([
            "bootstrap-admin",
            "--username",
            username,
            "--name",
            "首任管理员",
        ])
        .env_clear()
        .env("HUYING_DATABASE_URL", &app.database_url)
        .env("HUYING_TOKEN_SECRET", hex(&keys.token_secret))
        .env("HUYING_DATA_KEYS", data_keys)
        .env("HUYING_DATA_DIR", data_dir.path());
    if let Some(redis) = &app.config.redis_url {
        command.env("HUYING_REDIS_URL", redis);
    }
    let run = command.output();
    tokio::time::timeout(std::time::Duration::from_secs(60), run)
        .await
        .expect("the command finishes")
        .expect("the command runs")
}

/// The value printed after `label:`.
fn printed(stdout: &str, label: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {stdout}"))
        .trim()
        .to_owned()
}

async fn the_bootstrap_command_creates_the_first_administrator_once(engine: Engine) {
    let app = TestApp::spawn(engine).await;

    let first = bootstrap(&app, "admin").await;
    let stdout = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let password = printed(&stdout, "initial password:");
    let uri = printed(&stdout, "TOTP URI:");
    let secret = uri
        .split_once("secret=")
        .and_then(|(_, rest)| rest.split('&').next())
        .unwrap()
        .to_owned();
    assert_eq!(printed(&stdout, "TOTP secret:"), secret);

    // The running server knows the new administrator.
    assert_refused(app.password_sign_in("admin", &password, "").await);
    let code = app.totp_code(&secret);
    let signed_in = app
        .password_sign_in("admin", &password, &code)
        .await
        .unwrap();
    let principal = signed_in.principal.unwrap();
    assert_eq!(principal.role(), pb::Role::SystemAdmin);
    assert_eq!(principal.unit_id, "centre");
    assert_eq!(principal.display_name, "首任管理员");
    // And can do what a system administrator does.
    let mut admin = app
        .staff_accounts_with(&signed_in.session.unwrap().access_token)
        .await;
    create(&mut admin, "deputy", pb::Role::SystemAdmin, "centre").await;

    let second = bootstrap(&app, "another").await;
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("already exists"), "{stderr}");
    assert!(String::from_utf8_lossy(&second.stdout).is_empty());
    assert_refused(app.password_sign_in("another", &password, &code).await);
}
