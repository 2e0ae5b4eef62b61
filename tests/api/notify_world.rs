//! A server that notifies through the fake WeChat, the fake Tencent Cloud
//! SMS and a fake messaging robot, with every template approved on them,
//! and the steps of a case the notification tests take.

use huying::clock::Clock;
use huying::config::Config;
use huying::domain::notification::NotificationKind;
use huying::domain::notification_templates::NotificationTemplates;
use huying::notify::webhook::WebhookRoutes;
use huying::proto::v1 as pb;
use huying::proto::v1::notification_service_client::NotificationServiceClient;
use huying::service::notify::SendReport;
use huying::startup::Application;
use serde_json::{Value, json};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::citizen_world::{World, access_token};
use crate::fakes::FakeRobot;
use crate::helpers::{Bearer, CaseClient, CitizenClient, Engine, filing, get_case, rid};

pub const MUNICIPAL: &str = "sd:pingshan/municipal";
/// The keys of the subscribe template every kind uses in the tests.
pub const WECHAT_KEYS: [&str; 4] = ["character_string1", "phrase2", "time3", "thing4"];

pub type NotificationClient = NotificationServiceClient<InterceptedService<Channel, Bearer>>;

pub fn wechat_template(kind: NotificationKind) -> String {
    format!("wx-{}", kind.as_str())
}

pub fn sms_template(kind: NotificationKind) -> String {
    let index = NotificationKind::ALL
        .iter()
        .position(|k| *k == kind)
        .unwrap();
    format!("{}", 700_100 + index)
}

pub fn citizen_kinds() -> Vec<NotificationKind> {
    NotificationKind::ALL
        .iter()
        .copied()
        .filter(|k| k.for_citizens())
        .collect()
}

/// The bundled templates with the fakes' template ids filled in.
fn templates() -> (NotificationTemplates, Vec<(String, usize)>) {
    let bundled = include_str!("../../reference/notification-templates.json");
    let mut file: Value = serde_json::from_str(bundled).unwrap();
    let mut sms_params = Vec::new();
    for kind in citizen_kinds() {
        let template = &mut file["templates"][kind.as_str()];
        template["wechat"]["template_id"] = json!(wechat_template(kind));
        template["sms"]["template_id"] = json!(sms_template(kind));
        let params = template["sms"]["params"].as_array().unwrap().len();
        sms_params.push((sms_template(kind), params));
    }
    let templates = NotificationTemplates::from_json(&file.to_string()).unwrap();
    (templates, sms_params)
}

pub struct NotifyWorld {
    pub world: World,
    pub robot: FakeRobot,
}

impl std::ops::Deref for NotifyWorld {
    type Target = World;

    fn deref(&self) -> &World {
        &self.world
    }
}

impl NotifyWorld {
    pub async fn spawn(engine: Engine) -> NotifyWorld {
        NotifyWorld::spawn_with(engine, |_| {}).await
    }

    pub async fn spawn_with(engine: Engine, adjust: impl FnOnce(&mut Config)) -> NotifyWorld {
        let robot = FakeRobot::start().await;
        let (templates, sms_params) = templates();
        let url = robot.url();
        let world = World::spawn_with(engine, |config| {
            config.notifications.templates = templates;
            config.notifications.staff_webhooks =
                WebhookRoutes::parse(&format!("*={url}")).unwrap();
            adjust(config);
        })
        .await;
        for kind in citizen_kinds() {
            world
                .wechat
                .approve_template(&wechat_template(kind), &WECHAT_KEYS);
        }
        for (id, params) in sms_params {
            world.sms.approve_template(&id, params);
        }
        NotifyWorld { world, robot }
    }

    pub fn server(&self) -> &Application {
        self.app.app.as_ref().expect("running")
    }

    /// One sender pass on this server, now.
    pub async fn send(&self) -> SendReport {
        self.server()
            .send_notifications(self.app.clock.now())
            .await
            .expect("a sender pass")
    }

    /// A citizen signed in with WeChat, with one grant per citizen kind.
    pub async fn wechat_citizen_with_grants(&self, openid: &str) -> CitizenClient {
        let signed_in = self.wechat_citizen(openid).await;
        let mut citizen = self.app.citizen_with_token(&access_token(&signed_in)).await;
        self.grant(&mut citizen, openid, &citizen_kinds()).await;
        citizen
    }

    /// The citizen accepts one message of each kind in the mini-program,
    /// which reports the grants.
    pub async fn grant(
        &self,
        citizen: &mut CitizenClient,
        openid: &str,
        kinds: &[NotificationKind],
    ) {
        let ids: Vec<String> = kinds.iter().map(|k| wechat_template(*k)).collect();
        for id in &ids {
            self.wechat.subscribe(openid, id, false);
        }
        citizen
            .report_subscription_grant(pb::ReportSubscriptionGrantRequest {
                request_id: rid(),
                accepted_template_ids: ids,
            })
            .await
            .expect("the grants are recorded");
    }

    pub async fn phone_citizen_client(&self, phone: &str) -> CitizenClient {
        let signed_in = self.phone_citizen(phone).await;
        self.app.citizen_with_token(&access_token(&signed_in)).await
    }

    pub async fn notifications_client(&self, role: pb::Role, unit: &str) -> NotificationClient {
        let session = self.app.sign_in(&format!("staff-{unit}"), role, unit).await;
        let token = session.session.unwrap().access_token;
        NotificationServiceClient::with_interceptor(self.app.channel().await, Bearer::new(&token))
    }

    /// The notifications of a case, as a dispatcher sees them.
    pub async fn case_notifications(&self, id: &str) -> Vec<pb::CaseNotification> {
        self.notifications_client(pb::Role::Dispatcher, "centre")
            .await
            .list_case_notifications(pb::ListCaseNotificationsRequest {
                complaint_id: id.to_owned(),
            })
            .await
            .expect("lists a case's notifications")
            .into_inner()
            .notifications
    }
}

/// Files a complaint without a contact phone, so that only the citizen's
/// own channels reach them.
pub async fn file_without_contact(citizen: &mut CitizenClient) -> String {
    let mut request = filing(&rid());
    request.contact_phone.clear();
    citizen
        .file_complaint(request)
        .await
        .expect("files a complaint")
        .into_inner()
        .complaint
        .unwrap()
        .id
}

pub use crate::helpers::accept;

pub async fn dispatch(dispatcher: &mut CaseClient, id: &str) -> pb::Case {
    let case = get_case(dispatcher, id).await;
    dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            lead_unit_id: MUNICIPAL.to_owned(),
            co_unit_ids: vec![],
        })
        .await
        .expect("dispatches")
        .into_inner()
}

/// The municipal office asks for three more days and its subdistrict's
/// supervisor approves.
pub async fn extend(handler: &mut CaseClient, supervisor: &mut CaseClient, id: &str) {
    let case = get_case(handler, id).await;
    let deadline = case.complaint.as_ref().unwrap().deadline.unwrap();
    let asked = handler
        .request_extension(pb::RequestExtensionRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            until: Some(prost_types::Timestamp {
                seconds: deadline.seconds + 3 * 86_400,
                nanos: 0,
            }),
            reason: "需协调产权单位".to_owned(),
        })
        .await
        .expect("asks for an extension")
        .into_inner();
    supervisor
        .decide_extension(pb::DecideExtensionRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: asked.version,
            approve: true,
        })
        .await
        .expect("approves the extension");
}

pub async fn resolve(handler: &mut CaseClient, id: &str) {
    let case = get_case(handler, id).await;
    handler
        .resolve_case(pb::ResolveCaseRequest {
            request_id: rid(),
            complaint_id: id.to_owned(),
            expected_version: case.version,
            summary: "垃圾已清运完毕".to_owned(),
        })
        .await
        .expect("resolves");
}

/// The tracking number a citizen sees for a complaint.
pub async fn tracking_number(citizen: &mut CitizenClient, id: &str) -> String {
    citizen
        .get_complaint(pb::GetComplaintRequest {
            complaint_id: id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .tracking_number
}
