//! The directory and calendar API: thin handlers over `service::reference`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::time::local_date;
use crate::proto::v1 as pb;
use crate::proto::v1::directory_service_server::DirectoryService;
use crate::service::Services;
use crate::service::reference::CALENDAR_WARNING_DAYS;

pub struct DirectoryApi {
    services: Arc<Services>,
}

impl DirectoryApi {
    pub fn new(services: Arc<Services>) -> DirectoryApi {
        DirectoryApi { services }
    }

    fn calendar(&self) -> pb::Calendar {
        use crate::domain::calendar::DayKind;
        let reference = self.services.reference();
        let calendar = &reference.calendar;
        let now = self.services.clock.now();
        let days = |kind: DayKind| {
            calendar
                .exceptions()
                .filter(|(_, k)| *k == kind)
                .map(|(day, _)| day.format("%Y-%m-%d").to_string())
                .collect()
        };
        pb::Calendar {
            official_years: calendar.official_years().collect(),
            off_days: days(DayKind::Off),
            working_days: days(DayKind::Work),
            covered_until: calendar
                .covered_until()
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default(),
            runs_out_soon: calendar.runs_out_within(local_date(now), CALENDAR_WARNING_DAYS),
            checked_at: Some(convert::timestamp(now)),
        }
    }
}

#[tonic::async_trait]
impl DirectoryService for DirectoryApi {
    async fn list_units(
        &self,
        _request: Request<pb::ListUnitsRequest>,
    ) -> Result<Response<pb::ListUnitsResponse>, Status> {
        let reference = self.services.reference();
        Ok(Response::new(pb::ListUnitsResponse {
            units: reference
                .directory
                .units()
                .iter()
                .map(convert::unit)
                .collect(),
        }))
    }

    async fn save_unit(
        &self,
        request: Request<pb::SaveUnitRequest>,
    ) -> Result<Response<pb::Unit>, Status> {
        let actor = caller(&request)?;
        let unit = request.into_inner().unit.unwrap_or_default();
        let saved = self
            .services
            .save_unit(&actor, convert::unit_from_proto(unit)?)
            .await?;
        Ok(Response::new(convert::unit(&saved)))
    }

    async fn list_staff(
        &self,
        request: Request<pb::ListStaffRequest>,
    ) -> Result<Response<pb::ListStaffResponse>, Status> {
        let unit = request.into_inner().unit_id;
        let unit = (!unit.is_empty()).then_some(unit);
        let staff = self
            .services
            .store
            .staff_accounts(unit.as_deref())
            .await
            .map_err(crate::domain::DomainError::from)?;
        Ok(Response::new(pb::ListStaffResponse {
            staff: staff.iter().map(staff_member).collect(),
        }))
    }

    async fn save_staff_member(
        &self,
        request: Request<pb::SaveStaffMemberRequest>,
    ) -> Result<Response<pb::StaffMember>, Status> {
        let actor = caller(&request)?;
        let request = request.into_inner();
        let id = request
            .account_id
            .parse()
            .map_err(|_| crate::domain::DomainError::NotFound("staff member"))?;
        let Some(role) = convert::role_from_proto(request.role) else {
            return Err(crate::domain::DomainError::invalid("role", "must be set").into());
        };
        let account = crate::domain::account::Account {
            id: crate::domain::account::AccountId(id),
            role,
            unit_id: Some(request.unit_id),
            display_name: request.display_name,
        };
        let saved = self.services.save_staff_member(&actor, account).await?;
        Ok(Response::new(staff_member(&saved)))
    }

    async fn get_calendar(
        &self,
        _request: Request<pb::GetCalendarRequest>,
    ) -> Result<Response<pb::Calendar>, Status> {
        Ok(Response::new(self.calendar()))
    }

    async fn load_calendar_year(
        &self,
        request: Request<pb::LoadCalendarYearRequest>,
    ) -> Result<Response<pb::Calendar>, Status> {
        let actor = caller(&request)?;
        let request = request.into_inner();
        self.services
            .load_calendar_year(
                &actor,
                request.year,
                &request.off_days,
                &request.working_days,
            )
            .await?;
        Ok(Response::new(self.calendar()))
    }
}

fn staff_member(account: &crate::domain::account::Account) -> pb::StaffMember {
    pb::StaffMember {
        account_id: account.id.to_string(),
        role: convert::role_to_proto(account.role).into(),
        unit_id: account.unit_id.clone().unwrap_or_default(),
        display_name: account.display_name.clone(),
    }
}
