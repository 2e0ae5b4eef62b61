use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::domain::DomainError;
use crate::domain::staff::Password;
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_server::AuthService;
use crate::service::Services;
use crate::service::auth::{DevSignIn, SignedIn};
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
        use pb::sign_in_request::Credential;
        let signed_in = match request.into_inner().credential {
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
}
