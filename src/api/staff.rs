//! The staff account API: thin handlers over `service::staff_accounts`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::DomainError;
use crate::domain::account::AccountId;
use crate::domain::staff::StaffCredential;
use crate::proto::v1 as pb;
use crate::proto::v1::staff_account_service_server::StaffAccountService;
use crate::service::Services;
use crate::service::staff_accounts::{
    AccountState, IssuedCredentials, NewStaffMember, TotpEnrollment,
};

pub struct StaffAccountApi {
    services: Arc<Services>,
}

impl StaffAccountApi {
    pub fn new(services: Arc<Services>) -> StaffAccountApi {
        StaffAccountApi { services }
    }

    async fn set_state(
        &self,
        request: Request<impl AccountRequest>,
        state: AccountState,
    ) -> Result<Response<pb::StaffAccount>, Status> {
        let admin = caller(&request)?;
        let id = account_id(request.get_ref().account_id())?;
        let credential = self.services.set_account_state(&admin, id, state).await?;
        Ok(Response::new(staff_account(&credential)))
    }
}

/// The requests that name one account.
trait AccountRequest {
    fn account_id(&self) -> &str;
}

macro_rules! account_requests {
    ($($request:ty),+ $(,)?) => {
        $(impl AccountRequest for $request {
            fn account_id(&self) -> &str {
                &self.account_id
            }
        })+
    };
}

account_requests!(
    pb::UnlockAccountRequest,
    pb::DisableAccountRequest,
    pb::EnableAccountRequest,
);

/// Account ids are decimal; anything else names no account.
fn account_id(text: &str) -> Result<AccountId, DomainError> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(AccountId(id)),
        _ => Err(DomainError::NotFound("staff account")),
    }
}

fn staff_account(credential: &StaffCredential) -> pb::StaffAccount {
    let account = &credential.account;
    pb::StaffAccount {
        account_id: account.id.to_string(),
        username: credential.username.clone(),
        role: convert::role_to_proto(account.role).into(),
        unit_id: account.unit_id.clone().unwrap_or_default(),
        display_name: account.display_name.clone(),
        disabled: credential.disabled,
        locked_until: credential.locked_until.map(convert::timestamp),
        failed_attempts: credential.failed_attempts,
        second_factor_active: credential.factor.is_active(),
        password_is_initial: credential.password_is_initial,
        last_sign_in_at: credential.last_sign_in_at.map(convert::timestamp),
        created_at: Some(convert::timestamp(credential.created_at)),
    }
}

fn enrollment(totp: &TotpEnrollment) -> pb::TotpEnrollment {
    pb::TotpEnrollment {
        secret: totp.secret.to_base32(),
        otpauth_uri: totp.otpauth_uri.clone(),
    }
}

/// The account and the secrets its owner is handed, once.
fn issued(
    issued: &IssuedCredentials,
) -> (Option<pb::StaffAccount>, String, Option<pb::TotpEnrollment>) {
    (
        Some(staff_account(&issued.credential)),
        issued.initial_password.expose().to_owned(),
        issued.totp.as_ref().map(enrollment),
    )
}

#[tonic::async_trait]
impl StaffAccountService for StaffAccountApi {
    async fn create_staff_account(
        &self,
        request: Request<pb::CreateStaffAccountRequest>,
    ) -> Result<Response<pb::CreateStaffAccountResponse>, Status> {
        let admin = caller(&request)?;
        let request = request.into_inner();
        let new = NewStaffMember {
            role: convert::role_from_proto(request.role),
            username: request.username,
            display_name: request.display_name,
            unit_id: request.unit_id,
        };
        let created = self.services.create_staff_account(&admin, new).await?;
        let (account, initial_password, totp) = issued(&created);
        Ok(Response::new(pb::CreateStaffAccountResponse {
            account,
            initial_password,
            totp,
        }))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let admin = caller(&request)?;
        let request = request.into_inner();
        let id = account_id(&request.account_id)?;
        let reset = self
            .services
            .reset_password(&admin, id, request.new_second_factor)
            .await?;
        let (account, initial_password, totp) = issued(&reset);
        Ok(Response::new(pb::ResetPasswordResponse {
            account,
            initial_password,
            totp,
        }))
    }

    async fn unlock_account(
        &self,
        request: Request<pb::UnlockAccountRequest>,
    ) -> Result<Response<pb::StaffAccount>, Status> {
        self.set_state(request, AccountState::Unlock).await
    }

    async fn disable_account(
        &self,
        request: Request<pb::DisableAccountRequest>,
    ) -> Result<Response<pb::StaffAccount>, Status> {
        self.set_state(request, AccountState::Disable).await
    }

    async fn enable_account(
        &self,
        request: Request<pb::EnableAccountRequest>,
    ) -> Result<Response<pb::StaffAccount>, Status> {
        self.set_state(request, AccountState::Enable).await
    }

    async fn list_staff_accounts(
        &self,
        request: Request<pb::ListStaffAccountsRequest>,
    ) -> Result<Response<pb::ListStaffAccountsResponse>, Status> {
        let unit = request.into_inner().unit_id;
        let unit = (!unit.trim().is_empty()).then(|| unit.trim().to_owned());
        let credentials = self.services.staff_credentials(unit.as_deref()).await?;
        Ok(Response::new(pb::ListStaffAccountsResponse {
            accounts: credentials.iter().map(staff_account).collect(),
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let me = caller(&request)?;
        let request = request.into_inner();
        self.services
            .change_password(&me, request.old_password, request.new_password)
            .await?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn enroll_totp(
        &self,
        request: Request<pb::EnrollTotpRequest>,
    ) -> Result<Response<pb::EnrollTotpResponse>, Status> {
        let me = caller(&request)?;
        let totp = self.services.enroll_totp(&me).await?;
        Ok(Response::new(pb::EnrollTotpResponse {
            totp: Some(enrollment(&totp)),
        }))
    }

    async fn confirm_totp(
        &self,
        request: Request<pb::ConfirmTotpRequest>,
    ) -> Result<Response<pb::ConfirmTotpResponse>, Status> {
        let me = caller(&request)?;
        self.services
            .confirm_totp(&me, &request.get_ref().code)
            .await?;
        Ok(Response::new(pb::ConfirmTotpResponse {}))
    }
}
