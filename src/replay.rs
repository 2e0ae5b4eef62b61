//! A district year, replayed: a seeded generator files and handles cases
//! through the public gRPC API of a running server whose clock it moves,
//! and writes down what it did (the ground truth). StatsService's figures
//! for the period must then equal the truth exactly.
//!
//! The mix follows the district's reports: most cases closed well inside
//! their limit (about half within a day), a few late or still open, some
//! returned (退单), extended, re-handled after an unsatisfied rating, and a
//! typhoon that puts several hundred fallen-tree and flooding cases into
//! two days.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::clock::ManualClock;
use crate::domain::category::{Category, CategoryStandard};
use crate::domain::directory::{Directory, UnitKind};
use crate::domain::stats::{ONE_DAY_SECONDS, THREE_DAYS_SECONDS, nearest_rank};
use crate::proto::v1 as pb;
use crate::proto::v1::auth_service_client::AuthServiceClient;
use crate::proto::v1::case_service_client::CaseServiceClient;
use crate::proto::v1::citizen_service_client::CitizenServiceClient;

/// Leaf categories a typhoon fills: fallen street trees, flooded roads.
pub const TYPHOON_CATEGORIES: [&str; 2] = ["011006", "020103"];

/// What to generate.
#[derive(Debug, Clone)]
pub struct YearPlan {
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub days: u32,
    /// Ordinary cases, spread evenly over the days.
    pub cases: u32,
    /// The typhoon's landfall, in days after the start, and its cases over
    /// the two days from there.
    pub typhoon_day: u32,
    pub typhoon_cases: u32,
}

impl YearPlan {
    /// A district year: 60,000 cases with a typhoon in early September.
    pub fn district_year(seed: u64, start: DateTime<Utc>) -> YearPlan {
        YearPlan {
            seed,
            start,
            days: 365,
            cases: 60_000,
            typhoon_day: 245,
            typhoon_cases: 455,
        }
    }

    pub fn end(&self) -> DateTime<Utc> {
        self.start + Duration::days(i64::from(self.days))
    }
}

/// What the generator did, counted with the definitions of
/// `domain::stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GroundTruth {
    pub received: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub withdrawn: u64,
    pub closed: u64,
    pub closed_on_time: u64,
    pub open_overdue: u64,
    pub closed_within_one_day: u64,
    pub closed_within_three_days: u64,
    pub rated: u64,
    pub satisfied: u64,
    pub rehandled: u64,
    pub median_handling_seconds: i64,
    pub p90_handling_seconds: i64,
    /// Per unit id.
    pub returns: BTreeMap<String, u64>,
    pub extensions: BTreeMap<String, u64>,
    /// Second-level categories of the typhoon's cases.
    pub typhoon_keys: Vec<String>,
}

/// Where one case's story goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    File,
    Withdraw,
    Reject,
    Answer,
    Accept,
    Return,
    Redispatch,
    AskExtension,
    Resolve,
    Rate,
    /// The supervision pass, not a case's step.
    Supervise,
}

/// Where a case stands on the server, as the generator left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Received,
    Withdrawn,
    Rejected,
    /// Accepted and not resolved since: the clock runs against it.
    Open,
    /// Resolved, waiting for the citizen's rating.
    Resolved,
    Closed,
}

/// Returns and extensions per unit, as they happened.
#[derive(Debug, Default)]
struct Tally {
    returns: BTreeMap<String, u64>,
    extensions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Withdrawn,
    Rejected,
    Consultation,
    /// Accepted and dispatched, never resolved.
    LeftOpen,
    Handled,
}

/// One generated case and what happened to it so far.
#[derive(Debug, Clone)]
struct Story {
    citizen: u32,
    category: String,
    fate: Fate,
    late: bool,
    returned: bool,
    extended: bool,
    unsatisfied_first: bool,
    /// What it takes to handle it, from dispatch; capped by the deadline.
    effort: Duration,
    candidates: Vec<String>,
    // Filled in as the story goes.
    id: String,
    state: State,
    accepted: bool,
    filed_at: DateTime<Utc>,
    deadline: Option<DateTime<Utc>>,
    lead: String,
    resolved_at: Option<DateTime<Utc>>,
    resolved_on_time: bool,
    resolutions: u32,
    ratings: u32,
    final_satisfied: Option<bool>,
}

type Cases = CaseServiceClient<InterceptedService<Channel, Bearer>>;
type Citizens = CitizenServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Clone)]
struct Bearer(tonic::metadata::MetadataValue<tonic::metadata::Ascii>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// Signed-in clients, one per identity, reused: the server that replays
/// must give access tokens a lifetime longer than the period.
struct Clients {
    channel: Channel,
    cases: HashMap<(i32, String), Cases>,
    citizens: HashMap<u32, Citizens>,
}

impl Clients {
    async fn token(&self, subject: &str, role: pb::Role, unit: &str) -> anyhow::Result<Bearer> {
        let response = AuthServiceClient::new(self.channel.clone())
            .sign_in(pb::SignInRequest {
                credential: Some(pb::sign_in_request::Credential::Dev(pb::DevCredential {
                    subject: subject.to_owned(),
                    role: role.into(),
                    unit_id: unit.to_owned(),
                    display_name: subject.to_owned(),
                })),
            })
            .await
            .context("the replay signs in through the development provider")?
            .into_inner();
        let token = response.session.context("no session")?.access_token;
        Ok(Bearer(format!("Bearer {token}").parse()?))
    }

    async fn staff(&mut self, role: pb::Role, unit: &str) -> anyhow::Result<&mut Cases> {
        let key = (role as i32, unit.to_owned());
        if !self.cases.contains_key(&key) {
            let bearer = self
                .token(&format!("replay-{}-{unit}", role.as_str_name()), role, unit)
                .await?;
            let client = CaseServiceClient::with_interceptor(self.channel.clone(), bearer);
            self.cases.insert(key.clone(), client);
        }
        Ok(self.cases.get_mut(&key).expect("inserted above"))
    }

    async fn citizen(&mut self, n: u32) -> anyhow::Result<&mut Citizens> {
        if !self.citizens.contains_key(&n) {
            let bearer = self
                .token(&format!("replay-citizen-{n}"), pb::Role::Citizen, "")
                .await?;
            let client = CitizenServiceClient::with_interceptor(self.channel.clone(), bearer);
            self.citizens.insert(n, client);
        }
        Ok(self.citizens.get_mut(&n).expect("inserted above"))
    }
}

fn leaves<'a>(categories: &'a [Category], out: &mut Vec<&'a Category>) {
    for category in categories {
        if category.is_leaf() {
            if category.redirect_to.is_none() {
                out.push(category);
            }
        } else {
            leaves(&category.children, out);
        }
    }
}

fn units_for(directory: &Directory, category: &Category) -> Vec<String> {
    let responsible = category.responsible_unit.as_deref().unwrap_or("hub");
    let units: Vec<String> = directory
        .responsible_candidates(responsible)
        .into_iter()
        .filter(|unit| unit.kind != UnitKind::Centre)
        .map(|unit| unit.id.clone())
        .collect();
    if units.is_empty() {
        vec![directory.fallback().id.clone()]
    } else {
        units
    }
}

fn between(rng: &mut StdRng, low: Duration, high: Duration) -> Duration {
    let (low, high) = (
        low.num_seconds(),
        high.num_seconds().max(low.num_seconds() + 1),
    );
    Duration::seconds(rng.random_range(low..high))
}

fn timestamp(at: DateTime<Utc>) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: 0,
    })
}

fn time(at: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    at.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn request_id(n: usize, step: Step, round: u32) -> String {
    format!("replay-{n:07}-{step:?}-{round}").to_lowercase()
}

/// Generates the plan's cases and plays them against the server at
/// `channel`, moving `clock`; `supervise` runs one supervision pass at the
/// clock's time (every six hours of the replay). Returns the ground truth.
pub async fn replay<S, F>(
    channel: Channel,
    clock: &ManualClock,
    plan: &YearPlan,
    mut supervise: S,
) -> anyhow::Result<GroundTruth>
where
    S: FnMut(DateTime<Utc>) -> F,
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let standard = CategoryStandard::bundled();
    let directory = Directory::bundled();
    let mut all = Vec::new();
    leaves(standard.roots(), &mut all);
    let mut rng = StdRng::seed_from_u64(plan.seed);
    let citizens = (plan.cases / 5).max(1);

    let mut stories: Vec<Story> = Vec::new();
    let mut agenda: BinaryHeap<Reverse<(DateTime<Utc>, Step, usize)>> = BinaryHeap::new();
    let total = plan.cases + plan.typhoon_cases;
    for n in 0..total {
        let typhoon = n >= plan.cases;
        let (filed_at, category) = if typhoon {
            let offset = between(&mut rng, Duration::zero(), Duration::hours(48));
            let code = TYPHOON_CATEGORIES[rng.random_range(0..TYPHOON_CATEGORIES.len())];
            let landfall = plan.start + Duration::days(i64::from(plan.typhoon_day));
            (
                landfall + offset,
                standard.get(code).context("typhoon category")?,
            )
        } else {
            let offset = between(
                &mut rng,
                Duration::zero(),
                Duration::days(i64::from(plan.days)) - Duration::days(2),
            );
            (plan.start + offset, all[rng.random_range(0..all.len())])
        };
        let roll: f64 = rng.random();
        let fate = match roll {
            r if r < 0.02 => Fate::Withdrawn,
            r if r < 0.05 => Fate::Rejected,
            r if r < 0.13 => Fate::Consultation,
            r if r < 0.135 => Fate::LeftOpen,
            _ => Fate::Handled,
        };
        // Aimed at about half within a day, seven in ten within three days.
        // TODO(replay): categories with limits of a few hours pull cases
        // forward (a year gives 69 % and 86 %); the mix should depend on the
        // category's time limit.
        let pace: f64 = rng.random();
        let effort = if pace < 0.5 {
            between(&mut rng, Duration::minutes(30), Duration::hours(20))
        } else if pace < 0.72 {
            between(&mut rng, Duration::hours(25), Duration::hours(70))
        } else {
            between(&mut rng, Duration::hours(75), Duration::days(12))
        };
        stories.push(Story {
            citizen: rng.random_range(0..citizens),
            category: category.code.clone(),
            fate,
            late: rng.random::<f64>() < 0.012,
            returned: rng.random::<f64>() < 0.03,
            extended: rng.random::<f64>() < 0.02,
            unsatisfied_first: rng.random::<f64>() < 0.03,
            effort,
            candidates: units_for(&directory, category),
            id: String::new(),
            state: State::Received,
            accepted: false,
            filed_at: filed_at.with_nanosecond_zero(),
            deadline: None,
            lead: String::new(),
            resolved_at: None,
            resolved_on_time: false,
            resolutions: 0,
            ratings: 0,
            final_satisfied: None,
        });
        agenda.push(Reverse((
            stories[n as usize].filed_at,
            Step::File,
            n as usize,
        )));
    }
    let mut tick = plan.start + Duration::hours(6);
    while tick < plan.end() {
        agenda.push(Reverse((tick, Step::Supervise, usize::MAX)));
        tick += Duration::hours(6);
    }

    let mut clients = Clients {
        channel,
        cases: HashMap::new(),
        citizens: HashMap::new(),
    };
    let centre = directory.centre().id.clone();
    let mut tally = Tally::default();
    while let Some(Reverse((at, step, n))) = agenda.pop() {
        if at >= plan.end() {
            continue;
        }
        clock.set(at);
        if step == Step::Supervise {
            supervise(at).await?;
            continue;
        }
        let story = &mut stories[n];
        let next = play(
            &mut clients,
            &mut tally,
            &centre,
            &mut rng,
            n,
            story,
            step,
            at,
        )
        .await
        .with_context(|| format!("case {n} at {step:?}"))?;
        for (delay, step) in next {
            agenda.push(Reverse((at + delay, step, n)));
        }
    }
    clock.set(plan.end());

    // Count what happened, by the figures' definitions.
    let end = plan.end();
    let mut truth = GroundTruth {
        returns: tally.returns,
        extensions: tally.extensions,
        typhoon_keys: TYPHOON_CATEGORIES
            .iter()
            .map(|c| c[..4].to_owned())
            .collect(),
        ..GroundTruth::default()
    };
    let mut handling = Vec::new();
    for story in stories.iter().filter(|s| !s.id.is_empty()) {
        truth.received += 1;
        match story.state {
            State::Withdrawn => truth.withdrawn += 1,
            State::Rejected => truth.rejected += 1,
            State::Open if story.deadline.is_some_and(|d| d < end) => truth.open_overdue += 1,
            _ => {}
        }
        truth.accepted += u64::from(story.accepted);
        if let Some(satisfied) = story.final_satisfied {
            truth.rated += 1;
            truth.satisfied += u64::from(satisfied);
        }
        if story.state == State::Closed {
            truth.closed += 1;
            truth.closed_on_time += u64::from(story.resolved_on_time);
            truth.rehandled += u64::from(story.resolutions > 1);
            let resolved = story.resolved_at.unwrap_or(story.filed_at);
            let seconds = (resolved - story.filed_at).num_seconds();
            truth.closed_within_one_day += u64::from(seconds <= ONE_DAY_SECONDS);
            truth.closed_within_three_days += u64::from(seconds <= THREE_DAYS_SECONDS);
            handling.push(seconds);
        }
    }
    handling.sort_unstable();
    truth.median_handling_seconds = nearest_rank(&handling, 50);
    truth.p90_handling_seconds = nearest_rank(&handling, 90);
    Ok(truth)
}

trait WholeSeconds {
    fn with_nanosecond_zero(self) -> Self;
}

impl WholeSeconds for DateTime<Utc> {
    fn with_nanosecond_zero(self) -> Self {
        DateTime::from_timestamp(self.timestamp(), 0).unwrap_or(self)
    }
}

/// Plays one step of one case; returns the steps that follow, with their
/// delays.
#[allow(clippy::too_many_arguments)]
async fn play(
    clients: &mut Clients,
    tally: &mut Tally,
    centre: &str,
    rng: &mut StdRng,
    n: usize,
    story: &mut Story,
    step: Step,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<(Duration, Step)>> {
    let minutes = |rng: &mut StdRng, low: i64, high: i64| {
        between(rng, Duration::minutes(low), Duration::minutes(high))
    };
    Ok(match step {
        Step::File => {
            let kind = if story.fate == Fate::Consultation {
                pb::ComplaintKind::Consultation
            } else {
                pb::ComplaintKind::Complaint
            };
            let citizen = clients.citizen(story.citizen).await?;
            let filed = citizen
                .file_complaint(pb::FileComplaintRequest {
                    request_id: request_id(n, step, 0),
                    kind: kind.into(),
                    channel: pb::Channel::MiniProgram.into(),
                    text: format!("第{n}号诉求：请尽快处理。"),
                    category_code: story.category.clone(),
                    location: Some(pb::Location {
                        address: format!("坪山区民生路{n}号"),
                        coordinates: None,
                    }),
                    contact_phone: String::new(),
                    photo_ids: Vec::new(),
                })
                .await?
                .into_inner();
            story.id = filed.complaint.context("no complaint")?.id;
            match story.fate {
                Fate::Withdrawn => vec![(minutes(rng, 5, 60), Step::Withdraw)],
                Fate::Rejected => vec![(minutes(rng, 10, 120), Step::Reject)],
                Fate::Consultation => vec![(minutes(rng, 20, 600), Step::Answer)],
                Fate::LeftOpen | Fate::Handled => vec![(minutes(rng, 5, 60), Step::Accept)],
            }
        }
        Step::Withdraw => {
            clients
                .citizen(story.citizen)
                .await?
                .withdraw_complaint(pb::WithdrawComplaintRequest {
                    complaint_id: story.id.clone(),
                    reason: String::new(),
                })
                .await?;
            story.state = State::Withdrawn;
            vec![]
        }
        Step::Reject => {
            let dispatcher = clients.staff(pb::Role::Dispatcher, centre).await?;
            let case = current(dispatcher, &story.id).await?;
            dispatcher
                .reject_complaint(pb::RejectComplaintRequest {
                    request_id: request_id(n, step, 0),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    reason: "不属于受理范围".to_owned(),
                })
                .await?;
            story.state = State::Rejected;
            vec![]
        }
        Step::Answer => {
            let dispatcher = clients.staff(pb::Role::Dispatcher, centre).await?;
            let case = current(dispatcher, &story.id).await?;
            dispatcher
                .answer_consultation(pb::AnswerConsultationRequest {
                    request_id: request_id(n, step, 0),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    answer: "已电话答复。".to_owned(),
                })
                .await?;
            story.resolved_at = Some(now);
            story.resolved_on_time = true;
            story.resolutions = 1;
            story.state = State::Closed;
            vec![]
        }
        Step::Accept => {
            let dispatcher = clients.staff(pb::Role::Dispatcher, centre).await?;
            let case = current(dispatcher, &story.id).await?;
            let accepted = dispatcher
                .accept_for_filing(pb::AcceptForFilingRequest {
                    request_id: request_id(n, step, 0),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                })
                .await?
                .into_inner();
            story.deadline = time(
                accepted
                    .complaint
                    .as_ref()
                    .and_then(|c| c.deadline.as_ref()),
            );
            story.state = State::Open;
            story.accepted = true;
            story.lead = story.candidates[rng.random_range(0..story.candidates.len())].clone();
            dispatch(clients, centre, n, story, accepted.version, 0).await?;
            let mut next = Vec::new();
            if story.returned {
                next.push((minutes(rng, 30, 240), Step::Return));
            } else {
                next.extend(after_dispatch(rng, story, now));
            }
            next
        }
        Step::Return => {
            let unit = story.lead.clone();
            let handler = clients.staff(pb::Role::Handler, &unit).await?;
            let case = current(handler, &story.id).await?;
            handler
                .return_case(pb::ReturnCaseRequest {
                    request_id: request_id(n, step, 0),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    reason: "不属于本单位职责".to_owned(),
                })
                .await?;
            *tally.returns.entry(unit).or_default() += 1;
            vec![(minutes(rng, 10, 90), Step::Redispatch)]
        }
        Step::Redispatch => {
            let others: Vec<String> = story
                .candidates
                .iter()
                .filter(|u| **u != story.lead)
                .cloned()
                .collect();
            if !others.is_empty() {
                story.lead = others[rng.random_range(0..others.len())].clone();
            }
            let dispatcher = clients.staff(pb::Role::Dispatcher, centre).await?;
            let case = current(dispatcher, &story.id).await?;
            dispatch(clients, centre, n, story, case.version, 1).await?;
            after_dispatch(rng, story, now)
        }
        Step::AskExtension => {
            let unit = story.lead.clone();
            let until = story.deadline.unwrap_or(now) + Duration::days(3);
            let handler = clients.staff(pb::Role::Handler, &unit).await?;
            let case = current(handler, &story.id).await?;
            handler
                .request_extension(pb::RequestExtensionRequest {
                    request_id: request_id(n, step, 0),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    until: timestamp(until),
                    reason: "需协调多个部门".to_owned(),
                })
                .await?;
            let supervisor = clients.staff(pb::Role::DistrictSupervisor, centre).await?;
            let case = current(supervisor, &story.id).await?;
            let decided = supervisor
                .decide_extension(pb::DecideExtensionRequest {
                    request_id: request_id(n, step, 1),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    approve: true,
                })
                .await?
                .into_inner();
            story.deadline = time(decided.complaint.as_ref().and_then(|c| c.deadline.as_ref()));
            *tally.extensions.entry(unit).or_default() += 1;
            vec![]
        }
        Step::Resolve => {
            let unit = story.lead.clone();
            let handler = clients.staff(pb::Role::Handler, &unit).await?;
            let case = current(handler, &story.id).await?;
            handler
                .resolve_case(pb::ResolveCaseRequest {
                    request_id: request_id(n, step, story.resolutions),
                    complaint_id: story.id.clone(),
                    expected_version: case.version,
                    summary: "已处理完毕。".to_owned(),
                })
                .await?;
            story.resolutions += 1;
            story.state = State::Resolved;
            story.resolved_at = Some(now);
            story.resolved_on_time = story.deadline.is_some_and(|d| now <= d);
            vec![(
                between(rng, Duration::hours(1), Duration::hours(40)),
                Step::Rate,
            )]
        }
        Step::Rate => {
            let first = story.ratings == 0;
            let satisfaction = if first && story.unsatisfied_first {
                pb::Satisfaction::Unsatisfied
            } else if rng.random::<f64>() < 0.9 {
                pb::Satisfaction::Satisfied
            } else {
                pb::Satisfaction::BasicallySatisfied
            };
            let rated = clients
                .citizen(story.citizen)
                .await?
                .rate_complaint(pb::RateComplaintRequest {
                    complaint_id: story.id.clone(),
                    satisfaction: satisfaction.into(),
                    comment: String::new(),
                })
                .await?
                .into_inner();
            story.ratings += 1;
            if satisfaction == pb::Satisfaction::Unsatisfied {
                // Back to the unit under a new deadline; handled again well
                // inside it.
                story.final_satisfied = Some(false);
                story.state = State::Open;
                story.deadline = time(rated.deadline.as_ref());
                let room = story.deadline.map_or(Duration::hours(2), |d| d - now);
                let again = between(rng, room / 10, room * 8 / 10);
                vec![(again.max(Duration::minutes(1)), Step::Resolve)]
            } else {
                story.final_satisfied = Some(true);
                story.state = State::Closed;
                vec![]
            }
        }
        Step::Supervise => vec![],
    })
}

/// The steps after a case reaches the unit that will handle it.
fn after_dispatch(rng: &mut StdRng, story: &Story, now: DateTime<Utc>) -> Vec<(Duration, Step)> {
    if story.fate == Fate::LeftOpen {
        return vec![];
    }
    let mut next = Vec::new();
    let room = story.deadline.map_or(Duration::days(5), |d| d - now);
    let asked = Duration::minutes(30)
        .min(room / 4)
        .max(Duration::minutes(1));
    // An extension is asked for only while there is time left to ask.
    let extends = story.extended && room > Duration::hours(1);
    if extends {
        next.push((asked, Step::AskExtension));
    }
    let delay = if story.late {
        room + between(rng, Duration::hours(1), Duration::days(3))
    } else if story.effort < room {
        story.effort
    } else {
        // The limit is tighter than the work: done with a margin anyway.
        between(rng, room / 5, room * 9 / 10)
    };
    // After any extension request has been decided.
    let earliest = if extends {
        asked + Duration::minutes(1)
    } else {
        Duration::minutes(1)
    };
    next.push((delay.max(earliest), Step::Resolve));
    next
}

async fn current(client: &mut Cases, id: &str) -> anyhow::Result<pb::Case> {
    Ok(client
        .get_case(pb::GetCaseRequest {
            complaint_id: id.to_owned(),
        })
        .await?
        .into_inner())
}

async fn dispatch(
    clients: &mut Clients,
    centre: &str,
    n: usize,
    story: &mut Story,
    version: u64,
    round: u32,
) -> anyhow::Result<()> {
    let dispatcher = clients.staff(pb::Role::Dispatcher, centre).await?;
    let case = dispatcher
        .dispatch_case(pb::DispatchCaseRequest {
            request_id: request_id(n, Step::Accept, round + 1),
            complaint_id: story.id.clone(),
            expected_version: version,
            lead_unit_id: story.lead.clone(),
            co_unit_ids: vec![],
        })
        .await?
        .into_inner();
    anyhow::ensure!(case.version > version, "the dispatch changed nothing");
    Ok(())
}

/// Each figure as StatsService gives it beside the ground truth.
pub fn compare(stats: &pb::CaseStats, truth: &GroundTruth) -> Vec<(&'static str, String, String)> {
    let numerator = |rate: &Option<pb::Rate>| rate.as_ref().map_or(0, |r| r.numerator);
    let units = |pick: fn(&pb::UnitCounts) -> u64| -> BTreeMap<String, u64> {
        stats
            .units
            .iter()
            .filter(|u| pick(u) > 0)
            .map(|u| (u.unit_id.clone(), pick(u)))
            .collect()
    };
    let pairs: Vec<(&'static str, u64, u64)> = vec![
        ("received", stats.received, truth.received),
        ("accepted", stats.accepted, truth.accepted),
        ("rejected", stats.rejected, truth.rejected),
        ("withdrawn", stats.withdrawn, truth.withdrawn),
        ("closed", stats.closed, truth.closed),
        ("closed on time", stats.closed_on_time, truth.closed_on_time),
        ("open and overdue", stats.open_overdue, truth.open_overdue),
        (
            "closed within 1 day",
            numerator(&stats.closed_within_one_day),
            truth.closed_within_one_day,
        ),
        (
            "closed within 3 days",
            numerator(&stats.closed_within_three_days),
            truth.closed_within_three_days,
        ),
        (
            "rated",
            stats.satisfaction.as_ref().map_or(0, |r| r.denominator),
            truth.rated,
        ),
        ("satisfied", numerator(&stats.satisfaction), truth.satisfied),
        ("re-handled", numerator(&stats.rehandling), truth.rehandled),
    ];
    let mut rows: Vec<(&'static str, String, String)> = pairs
        .into_iter()
        .map(|(name, server, truth)| (name, server.to_string(), truth.to_string()))
        .collect();
    rows.push((
        "median handling (s)",
        stats.median_handling_seconds.to_string(),
        truth.median_handling_seconds.to_string(),
    ));
    rows.push((
        "p90 handling (s)",
        stats.p90_handling_seconds.to_string(),
        truth.p90_handling_seconds.to_string(),
    ));
    rows.push((
        "returns by unit",
        format!("{:?}", units(|u| u.returns)),
        format!("{:?}", truth.returns),
    ));
    rows.push((
        "extensions by unit",
        format!("{:?}", units(|u| u.extensions)),
        format!("{:?}", truth.extensions),
    ));
    rows
}
