use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::client::client;
use super::{caller, convert};
use crate::domain::DomainError;
use crate::domain::staff::Password;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::proto::v1::sign_in_request::Credential;
use crate::service::Services;
use crate::service::auth::{DevSignIn, SignedIn};
use crate::service::identity::{CitizenCredential, CitizenView};
use crate::service::limits::SignInAttempt;
use crate::service::staff_sign_in::StaffSignIn;

pub struct AuthApi {
    services: Arc<Services>,
}

impl AuthApi {
    pub fn new(services: Arc<Services>) -> AuthApi {
        AuthApi { services }
    }
}

fn response(signed_in: SignedIn) -> pb::SignInResponse {
    pb::SignInResponse {
        session: Some(pb::Session {
            access_token: signed_in.access_token,
            access_token_expires_at: Some(convert::timestamp(signed_in.access_expires_at)),
            refresh_token: signed_in.refresh_token,
            refresh_token_expires_at: Some(convert::timestamp(signed_in.refresh_expires_at)),
        }),
        principal: Some(pb::Principal {
            account_id: signed_in.account.id.to_string(),
            role: convert::role_to_proto(signed_in.account.role).into(),
            unit_id: signed_in.account.unit_id.unwrap_or_default(),
            display_name: signed_in.account.display_name,
        }),
    }
}

fn identity(view: CitizenView) -> pb::CitizenIdentity {
    let notice = view.privacy_notice;
    pb::CitizenIdentity {
        account_id: view.account_id.to_string(),
        phone_masked: view.phone_masked.unwrap_or_default(),
        wechat_linked: view.wechat_linked,
        privacy_notice_version: notice
            .as_ref()
            .map(|n| n.version.clone())
            .unwrap_or_default(),
        privacy_notice_accepted_at: notice.map(|n| convert::timestamp(n.accepted_at)),
    }
}

/// What a sign-in attempt is counted against, besides its address.
fn sign_in_attempt(credential: &Credential) -> SignInAttempt<'_> {
    match credential {
        Credential::Dev(dev) => SignInAttempt::Dev {
            subject: &dev.subject,
        },
        Credential::Staff(staff) => SignInAttempt::Staff {
            username: &staff.username,
        },
        Credential::Phone(phone) => SignInAttempt::Phone {
            phone: &phone.phone,
        },
        Credential::Wechat(_) => SignInAttempt::WeChat,
    }
}

fn required_token(token: &str) -> Result<&str, Status> {
    if token.is_empty() {
        return Err(DomainError::invalid("refresh_token", "must be set").into());
    }
    Ok(token)
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn sign_in(
        &self,
        request: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let client = client(&request);
        let credential = request.into_inner().credential;
        if let Some(credential) = &credential {
            self.services
                .limit_sign_in(&client, sign_in_attempt(credential))
                .await?;
        }
        let signed_in = match credential {
            Some(Credential::Dev(dev)) => {
                self.services
                    .sign_in_dev(DevSignIn {
                        subject: dev.subject,
                        role: convert::role_from_proto(dev.role),
                        unit_id: dev.unit_id,
                        display_name: dev.display_name,
                    })
                    .await?
            }
            Some(Credential::Staff(staff)) => {
                self.services
                    .sign_in_staff(StaffSignIn {
                        username: staff.username,
                        password: Password::presented(staff.password),
                        totp_code: staff.totp_code,
                    })
                    .await?
            }
            Some(Credential::Wechat(wechat)) => {
                self.services
                    .sign_in_wechat(CitizenCredential {
                        phone: String::new(),
                        code: wechat.code,
                        accepted_privacy_notice_version: wechat.accepted_privacy_notice_version,
                    })
                    .await?
            }
            Some(Credential::Phone(phone)) => {
                self.services
                    .sign_in_phone(CitizenCredential {
                        phone: phone.phone,
                        code: phone.code,
                        accepted_privacy_notice_version: phone.accepted_privacy_notice_version,
                    })
                    .await?
            }
            None => return Err(DomainError::invalid("credential", "must be set").into()),
        };
        Ok(Response::new(response(signed_in)))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::SignInResponse>, Status> {
        let request = request.into_inner();
        let token = required_token(&request.refresh_token)?;
        let signed_in = self.services.refresh_session(token).await?;
        Ok(Response::new(response(signed_in)))
    }

    async fn sign_out(
        &self,
        request: Request<pb::SignOutRequest>,
    ) -> Result<Response<pb::SignOutResponse>, Status> {
        let request = request.into_inner();
        self.services
            .sign_out(required_token(&request.refresh_token)?)
            .await?;
        Ok(Response::new(pb::SignOutResponse {}))
    }

    async fn request_sms_code(
        &self,
        request: Request<pb::RequestSmsCodeRequest>,
    ) -> Result<Response<pb::RequestSmsCodeResponse>, Status> {
        // Behind trusted proxies this is the address they forwarded.
        let client = client(&request);
        let expires_at = self
            .services
            .request_sms_code(&request.into_inner().phone, &client)
            .await?;
        Ok(Response::new(pb::RequestSmsCodeResponse {
            code_expires_at: Some(convert::timestamp(expires_at)),
        }))
    }

    async fn link_phone(
        &self,
        request: Request<pb::LinkPhoneRequest>,
    ) -> Result<Response<pb::CitizenIdentity>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let view = self
            .services
            .link_phone(&citizen, &request.phone, &request.code)
            .await?;
        Ok(Response::new(identity(view)))
    }

    async fn link_we_chat(
        &self,
        request: Request<pb::LinkWeChatRequest>,
    ) -> Result<Response<pb::CitizenIdentity>, Status> {
        let citizen = caller(&request)?;
        let view = self
            .services
            .link_wechat(&citizen, &request.into_inner().code)
            .await?;
        Ok(Response::new(identity(view)))
    }

    async fn get_my_identity(
        &self,
        request: Request<pb::GetMyIdentityRequest>,
    ) -> Result<Response<pb::CitizenIdentity>, Status> {
        let citizen = caller(&request)?;
        let view = self.services.my_identity(&citizen).await?;
        Ok(Response::new(identity(view)))
    }
}
