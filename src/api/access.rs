//! Who may call what: the one table of (RPC → roles, data scope), and the
//! tower layer that enforces it before any handler runs. An RPC missing from
//! the table is refused, so a new RPC cannot slip through unguarded.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tonic::Status;
use tower::{Layer, Service};

use crate::domain::account::Role;
use crate::service::Services;

/// Which callers an RPC admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// No sign-in needed.
    Public,
    /// A signed-in caller with one of these roles.
    Roles(&'static [Role]),
}

/// Which data an admitted caller reaches; the use case enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Public or self-describing data (the category standard, one's session).
    Anything,
    /// Only the caller's own account and how it signs in.
    OwnIdentity,
    /// Only complaints the caller filed; others are NOT_FOUND.
    OwnComplaints,
    /// Staff: cases of their own unit; district-level roles: all cases.
    UnitCases,
    /// Only the caller's own account (password, second factor).
    OwnAccount,
}

#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub method: &'static str,
    pub audience: Audience,
    pub scope: Scope,
}

use Role::*;

const CITIZEN: &[Role] = &[Citizen];
const CASE_READERS: &[Role] = &[
    Dispatcher,
    Handler,
    UnitSupervisor,
    DistrictSupervisor,
    Auditor,
];
const DISPATCH: &[Role] = &[Dispatcher];
/// Who uploads photos: dispatchers registering a matter brought to a
/// counter, handlers and unit supervisors at the scene.
const CASE_WORKERS: &[Role] = &[Dispatcher, Handler, UnitSupervisor];
const HANDLING: &[Role] = &[Handler, UnitSupervisor];
const SUPERVISORS: &[Role] = &[UnitSupervisor, DistrictSupervisor];
const FOLLOW_UP: &[Role] = &[Dispatcher, DistrictSupervisor];
/// District-wide figures such as the notification rates.
const RATE_READERS: &[Role] = &[DistrictSupervisor, Auditor];
const SYSTEM_ADMIN: &[Role] = &[SystemAdmin];
const AUDIT_ADMIN: &[Role] = &[AuditAdmin];
const SECURITY_ADMIN: &[Role] = &[SecurityAdmin];
/// Who runs key rotation: security administrators own the keys, system
/// administrators run the deployment.
const KEY_ADMINS: &[Role] = &[SecurityAdmin, SystemAdmin];
/// The district decides the reward policy and withdraws envelopes of
/// fraudulent complaints; auditors read everything about the money.
const REWARD_MANAGERS: &[Role] = &[DistrictSupervisor];
const REWARD_READERS: &[Role] = &[DistrictSupervisor, Auditor];
/// The district's figures: supervisors over their subtree, district roles
/// over everything.
const STATS_READERS: &[Role] = &[Dispatcher, UnitSupervisor, DistrictSupervisor, Auditor];
/// Who keeps the knowledge base of instant answers.
const KNOWLEDGE_EDITORS: &[Role] = &[Dispatcher, DistrictSupervisor];
/// Every staff role reads the directory and calendar.
const STAFF: &[Role] = &[
    Dispatcher,
    Handler,
    UnitSupervisor,
    DistrictSupervisor,
    Auditor,
    SystemAdmin,
    SecurityAdmin,
    AuditAdmin,
];

const fn rule(method: &'static str, audience: Audience, scope: Scope) -> Rule {
    Rule {
        method,
        audience,
        scope,
    }
}

pub const RULES: &[Rule] = &[
    rule(
        "/huying.v1.AuthService/SignIn",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AuthService/RefreshSession",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AuthService/SignOut",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AuthService/RequestSmsCode",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AuthService/LinkPhone",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.AuthService/LinkWeChat",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.AuthService/GetMyIdentity",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.CitizenService/FileComplaint",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/AcceptInstantAnswer",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/GetComplaint",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ListMyComplaints",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/WithdrawComplaint",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/RateComplaint",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ListNotifications",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/MarkNotificationsRead",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ReportSubscriptionGrant",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.CitizenService/GetNotificationSettings",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.CitizenService/UpdateNotificationSettings",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.NotificationService/GetNotificationRates",
        Audience::Roles(RATE_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.NotificationService/ListCaseNotifications",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CitizenService/WatchComplaint",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/WatchMyComplaints",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ExportMyData",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.CitizenService/DeleteMyAccount",
        Audience::Roles(CITIZEN),
        Scope::OwnIdentity,
    ),
    rule(
        "/huying.v1.CitizenService/CreateUpload",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ListComplaintPhotos",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.PersonalDataService/GetReencryptionProgress",
        Audience::Roles(KEY_ADMINS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.CitizenService/ListMyRedEnvelopes",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ClaimRedEnvelope",
        Audience::Roles(CITIZEN),
        Scope::OwnComplaints,
    ),
    rule(
        "/huying.v1.CitizenService/ListCategories",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.CaseService/GetCase",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ListQueue",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/WatchQueue",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ListCaseEvents",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/RegisterCase",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/AcceptForFiling",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/RejectComplaint",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/AnswerConsultation",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/DispatchCase",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/MergeCase",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ReturnCase",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ReportPart",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/AddProgressNote",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/RequestExtension",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ResolveCase",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/DecideExtension",
        Audience::Roles(SUPERVISORS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/RecordFollowUp",
        Audience::Roles(FOLLOW_UP),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/HandOverCase",
        Audience::Roles(DISPATCH),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/RevealReporterContact",
        Audience::Roles(SUPERVISORS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/CreateUpload",
        Audience::Roles(CASE_WORKERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/AttachHandlingPhotos",
        Audience::Roles(HANDLING),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.CaseService/ListCasePhotos",
        Audience::Roles(CASE_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.DirectoryService/ListUnits",
        Audience::Roles(STAFF),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.DirectoryService/ListStaff",
        Audience::Roles(STAFF),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.DirectoryService/GetCalendar",
        Audience::Roles(STAFF),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.DirectoryService/SaveUnit",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.DirectoryService/SaveStaffMember",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.DirectoryService/LoadCalendarYear",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/CreateStaffAccount",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/ResetPassword",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/UnlockAccount",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/DisableAccount",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/EnableAccount",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/ListStaffAccounts",
        Audience::Roles(SYSTEM_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StaffAccountService/ChangePassword",
        Audience::Roles(STAFF),
        Scope::OwnAccount,
    ),
    rule(
        "/huying.v1.StaffAccountService/EnrollTotp",
        Audience::Roles(STAFF),
        Scope::OwnAccount,
    ),
    rule(
        "/huying.v1.StaffAccountService/ConfirmTotp",
        Audience::Roles(STAFF),
        Scope::OwnAccount,
    ),
    rule(
        "/huying.v1.AuditService/ListAuditRecords",
        Audience::Roles(AUDIT_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AbuseService/AddBlock",
        Audience::Roles(SECURITY_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AbuseService/LiftBlock",
        Audience::Roles(SECURITY_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.AbuseService/ListBlocks",
        Audience::Roles(SECURITY_ADMIN),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/GetRewardPolicy",
        Audience::Roles(REWARD_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/UpdateRewardPolicy",
        Audience::Roles(REWARD_MANAGERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/ListRedEnvelopes",
        Audience::Roles(REWARD_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/GetRewardTotals",
        Audience::Roles(REWARD_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/GetReconciliationReport",
        Audience::Roles(REWARD_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.RewardService/WithdrawRedEnvelope",
        Audience::Roles(REWARD_MANAGERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StatsService/GetCaseStats",
        Audience::Roles(STATS_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.StatsService/GetHotspots",
        Audience::Roles(STATS_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StatsService/ListSpikeAlerts",
        Audience::Roles(STATS_READERS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.StatsService/ExportCases",
        Audience::Roles(STATS_READERS),
        Scope::UnitCases,
    ),
    rule(
        "/huying.v1.PublicStatsService/GetPublicStats",
        Audience::Public,
        Scope::Anything,
    ),
    rule(
        "/huying.v1.KnowledgeService/SaveAnswer",
        Audience::Roles(KNOWLEDGE_EDITORS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.KnowledgeService/ListAnswers",
        Audience::Roles(KNOWLEDGE_EDITORS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.KnowledgeService/RetireAnswer",
        Audience::Roles(KNOWLEDGE_EDITORS),
        Scope::Anything,
    ),
    rule(
        "/huying.v1.KnowledgeService/ListUnansweredConsultations",
        Audience::Roles(KNOWLEDGE_EDITORS),
        Scope::Anything,
    ),
];

/// Services outside the product's own API, open to anyone: health checks
/// for load balancers and reflection for grpcurl.
const INFRASTRUCTURE_PREFIXES: &[&str] = &["/grpc.health.", "/grpc.reflection."];

/// Plain HTTP endpoints that check their callers themselves: uploads by the
/// grant's owner's access token, downloads by a signed link.
const HTTP_PREFIXES: &[&str] = crate::api::web::PLAIN_HTTP_PREFIXES;

pub fn rule_for(method: &str) -> Option<&'static Rule> {
    RULES.iter().find(|rule| rule.method == method)
}

/// Decides one request: `Ok(Some(principal))` for a signed-in caller that
/// may proceed, `Ok(None)` for a public RPC.
fn admit(
    services: &Services,
    method: &str,
    authorization: Option<&str>,
) -> Result<Option<crate::domain::account::Principal>, Status> {
    if INFRASTRUCTURE_PREFIXES
        .iter()
        .chain(HTTP_PREFIXES)
        .any(|prefix| method.starts_with(prefix))
    {
        return Ok(None);
    }
    let Some(rule) = rule_for(method) else {
        return Err(Status::permission_denied(
            "no access rule allows this method",
        ));
    };
    let Audience::Roles(roles) = rule.audience else {
        return Ok(None);
    };

    // The scheme name is case-insensitive (RFC 9110).
    let token = authorization
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| Status::unauthenticated("send `authorization: Bearer <access token>`"))?;
    let principal = services.authenticate(token)?;
    if !roles.contains(&principal.role) {
        return Err(Status::permission_denied(format!(
            "the {} role may not call this method",
            principal.role.as_str()
        )));
    }
    Ok(Some(principal))
}

#[derive(Clone)]
pub struct AccessLayer {
    services: Arc<Services>,
}

impl AccessLayer {
    pub fn new(services: Arc<Services>) -> AccessLayer {
        AccessLayer { services }
    }
}

impl<S> Layer<S> for AccessLayer {
    type Service = Access<S>;

    fn layer(&self, inner: S) -> Access<S> {
        Access {
            inner,
            services: Arc::clone(&self.services),
        }
    }
}

#[derive(Clone)]
pub struct Access<S> {
    inner: S,
    services: Arc<Services>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Access<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let authorization = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok());
        match admit(&self.services, request.uri().path(), authorization) {
            Ok(principal) => {
                if let Some(principal) = principal {
                    request.extensions_mut().insert(principal);
                }
                // The clone that was polled ready serves this call.
                let clone = self.inner.clone();
                let mut ready = std::mem::replace(&mut self.inner, clone);
                Box::pin(ready.call(request))
            }
            Err(status) => Box::pin(std::future::ready(Ok(status.into_http()))),
        }
    }
}
