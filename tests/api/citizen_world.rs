//! A server whose citizens sign in through the fake WeChat and the fake
//! Tencent Cloud SMS, and the calls the sign-in tests make.

use std::net::SocketAddr;
use std::sync::Arc;

use huying::clock::ManualClock;
use huying::config::Config;
use huying::domain::phone::PhoneNumber;
use huying::proto::v1 as pb;
use huying::proto::v1::auth_service_client::AuthServiceClient;
use huying::security::PhoneCipher;
use huying::sms::SmsConfig;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::fakes::{FakeSms, FakeWeChat};
use crate::helpers::{Bearer, Engine, TestApp, test_start};

/// The privacy notice version the servers start with.
pub const NOTICE: &str = "2026-01";

pub type AuthClient = AuthServiceClient<InterceptedService<Channel, Bearer>>;

pub struct World {
    pub app: TestApp,
    pub wechat: FakeWeChat,
    pub sms: FakeSms,
    door: Door,
}

/// The sign-in calls, made to one server (the world's, or a replica).
pub struct Door {
    address: SocketAddr,
    wechat: FakeWeChat,
    sms: FakeSms,
}

impl std::ops::Deref for World {
    type Target = Door;

    fn deref(&self) -> &Door {
        &self.door
    }
}

impl World {
    pub async fn spawn(engine: Engine) -> World {
        World::spawn_with(engine, |_| {}).await
    }

    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut Config)) -> World {
        let clock = Arc::new(ManualClock::new(test_start()));
        World::spawn_on_clock(engine, clock, adjust).await
    }

    /// As `spawn_with`, on a clock the test shares with other fakes.
    pub async fn spawn_on_clock(
        engine: Engine,
        clock: Arc<ManualClock>,
        adjust: impl FnOnce(&mut Config),
    ) -> World {
        let wechat = FakeWeChat::start().await;
        let sms = FakeSms::start(Arc::clone(&clock)).await;
        let app = TestApp::spawn_on_clock(engine, clock, |config| {
            config.citizen_sign_in.wechat = Some(wechat.config());
            config.citizen_sign_in.sms = Some(SmsConfig::Tencent(sms.config()));
            // Sign-in stories text one phone several times, moving the test
            // clock between; Redis refills on its own clock, not that one.
            // Tests of these limits set their own.
            config
                .rate_limits
                .apply("sms.phone=100/1m,sms.phone_daily=100/1d")
                .expect("valid test limits");
            adjust(config);
        })
        .await;
        let door = Door {
            address: app.address,
            wechat: wechat.clone(),
            sms: sms.clone(),
        };
        World {
            app,
            wechat,
            sms,
            door,
        }
    }

    /// The same calls, made to another server (a replica).
    pub fn door_to(&self, address: SocketAddr) -> Door {
        Door {
            address,
            wechat: self.wechat.clone(),
            sms: self.sms.clone(),
        }
    }

    /// The blind index the server looks a phone up by.
    pub fn phone_index(&self, phone: &str) -> String {
        let cipher = PhoneCipher::new(&self.app.config.keys).unwrap();
        cipher.blind_index(&PhoneNumber::parse("phone", phone).unwrap())
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use huying::clock::Clock;
        self.app.clock.now()
    }
}

impl Door {
    /// An AuthService client, signed in with `token` when one is given.
    pub async fn auth(&self, token: Option<&str>) -> AuthClient {
        let bearer = token.map_or_else(Bearer::none, Bearer::new);
        let channel = Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect()
            .await
            .expect("connects to the server");
        AuthServiceClient::with_interceptor(channel, bearer)
    }

    pub async fn sign_in_wechat(
        &self,
        code: &str,
        notice: &str,
    ) -> Result<pb::SignInResponse, Status> {
        let credential = pb::WeChatCredential {
            code: code.to_owned(),
            accepted_privacy_notice_version: notice.to_owned(),
        };
        self.sign_in(pb::sign_in_request::Credential::Wechat(credential))
            .await
    }

    pub async fn request_code(&self, phone: &str) -> Result<pb::RequestSmsCodeResponse, Status> {
        self.auth(None)
            .await
            .request_sms_code(pb::RequestSmsCodeRequest {
                phone: phone.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn sign_in_phone(
        &self,
        phone: &str,
        code: &str,
        notice: &str,
    ) -> Result<pb::SignInResponse, Status> {
        let credential = pb::PhoneCodeCredential {
            phone: phone.to_owned(),
            code: code.to_owned(),
            accepted_privacy_notice_version: notice.to_owned(),
        };
        self.sign_in(pb::sign_in_request::Credential::Phone(credential))
            .await
    }

    async fn sign_in(
        &self,
        credential: pb::sign_in_request::Credential,
    ) -> Result<pb::SignInResponse, Status> {
        self.auth(None)
            .await
            .sign_in(pb::SignInRequest {
                credential: Some(credential),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    /// A citizen who signed in with WeChat for the first time.
    pub async fn wechat_citizen(&self, openid: &str) -> pb::SignInResponse {
        let code = self.wechat.login(openid, None);
        self.sign_in_wechat(&code, NOTICE)
            .await
            .expect("signs in with WeChat")
    }

    /// A citizen who signed in with a phone for the first time.
    pub async fn phone_citizen(&self, phone: &str) -> pb::SignInResponse {
        self.request_code(phone).await.expect("a code is sent");
        let code = self.sms.last_code_for(phone);
        self.sign_in_phone(phone, &code, NOTICE)
            .await
            .expect("signs in with a phone")
    }

    pub async fn identity(&self, token: &str) -> pb::CitizenIdentity {
        self.auth(Some(token))
            .await
            .get_my_identity(pb::GetMyIdentityRequest {})
            .await
            .expect("reads the identity")
            .into_inner()
    }
}

pub fn account_id(response: &pb::SignInResponse) -> String {
    response.principal.as_ref().unwrap().account_id.clone()
}

pub fn access_token(response: &pb::SignInResponse) -> String {
    response.session.as_ref().unwrap().access_token.clone()
}

/// The ErrorInfo reason of a refusal, with its metadata.
pub fn refusal(status: &Status) -> (String, std::collections::HashMap<String, String>) {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    (info.reason, info.metadata)
}
