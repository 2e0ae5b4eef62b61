//! The figures' APIs: statistics for staff, the published aggregates, and
//! the knowledge base of instant answers.

use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::knowledge::KnowledgeEntry;
use crate::domain::stats::{CaseCounts, Hotspot, HotspotDimension, Rate};
use crate::proto::v1 as pb;
use crate::proto::v1::knowledge_service_server::KnowledgeService;
use crate::proto::v1::public_stats_service_server::PublicStatsService;
use crate::proto::v1::stats_service_server::StatsService;
use crate::service::Services;
use crate::service::stats::ScopeRequest;

pub struct StatsApi {
    services: Arc<Services>,
}

impl StatsApi {
    pub fn new(services: Arc<Services>) -> StatsApi {
        StatsApi { services }
    }
}

pub struct PublicStatsApi {
    services: Arc<Services>,
}

impl PublicStatsApi {
    pub fn new(services: Arc<Services>) -> PublicStatsApi {
        PublicStatsApi { services }
    }
}

pub struct KnowledgeApi {
    services: Arc<Services>,
}

impl KnowledgeApi {
    pub fn new(services: Arc<Services>) -> KnowledgeApi {
        KnowledgeApi { services }
    }
}

fn scope_request(scope: Option<pb::StatsScope>) -> Result<ScopeRequest, Status> {
    let scope = scope.unwrap_or_default();
    Ok(ScopeRequest {
        from: scope
            .from
            .map(|at| convert::time_from_proto("scope.from", Some(at)))
            .transpose()?,
        to: scope
            .to
            .map(|at| convert::time_from_proto("scope.to", Some(at)))
            .transpose()?,
        unit_id: scope.unit_id,
        include_subtree: scope.include_subtree,
        category_code: scope.category_code,
    })
}

fn rate(rate: Rate) -> Option<pb::Rate> {
    Some(pb::Rate {
        numerator: rate.numerator,
        denominator: rate.denominator,
        value: rate.value(),
    })
}

fn hotspot(hotspot: &Hotspot) -> pb::Hotspot {
    let judged = &hotspot.judgement;
    pb::Hotspot {
        dimension: match hotspot.dimension {
            HotspotDimension::Category => pb::HotspotDimension::Category,
            HotspotDimension::Area => pb::HotspotDimension::Area,
        }
        .into(),
        key: hotspot.key.clone(),
        name: hotspot.name.clone(),
        count: judged.count,
        previous_count: judged.previous_count,
        baseline_mean: judged.baseline_mean,
        baseline_stddev: judged.baseline_stddev,
        rise: judged.rise,
        score: judged.score,
        spike: judged.spike,
    }
}

fn entry(entry: &KnowledgeEntry) -> pb::KnowledgeEntry {
    pb::KnowledgeEntry {
        id: entry.id.to_string(),
        question: entry.question.clone(),
        answer: entry.answer.clone(),
        category_code: entry.category_code.clone().unwrap_or_default(),
        retired: entry.retired,
        updated_at: Some(convert::timestamp(entry.updated_at)),
        updated_by_account_id: entry.updated_by.to_string(),
        accepted_count: entry.accepted_count,
    }
}

fn case_stats(counts: &CaseCounts) -> pb::CaseStats {
    let rates = counts.rates();
    pb::CaseStats {
        as_of: None,
        received: counts.received,
        accepted: counts.accepted,
        rejected: counts.rejected,
        withdrawn: counts.withdrawn,
        merged: counts.merged,
        closed: counts.closed,
        closed_on_time: counts.closed_on_time,
        open_overdue: counts.open_overdue,
        on_time_of_closed: rate(rates.on_time_of_closed),
        on_time_including_open_overdue: rate(rates.on_time_including_open_overdue),
        closed_within_one_day: rate(rates.closed_within_one_day),
        closed_within_three_days: rate(rates.closed_within_three_days),
        satisfaction: rate(rates.satisfaction),
        rehandling: rate(rates.rehandling),
        median_handling_seconds: counts.median_handling_seconds,
        p90_handling_seconds: counts.p90_handling_seconds,
        units: Vec::new(),
        acceptance_notice_sent: rate(rates.acceptance_notice_sent),
        acceptance_notice_delivered: rate(rates.acceptance_notice_delivered),
        handling_notice_sent: rate(rates.handling_notice_sent),
        handling_notice_delivered: rate(rates.handling_notice_delivered),
    }
}

type CsvStream = Pin<Box<dyn Stream<Item = Result<pb::CsvChunk, Status>> + Send>>;

#[tonic::async_trait]
impl StatsService for StatsApi {
    async fn get_case_stats(
        &self,
        request: Request<pb::GetCaseStatsRequest>,
    ) -> Result<Response<pb::CaseStats>, Status> {
        let staff = caller(&request)?;
        let scope = scope_request(request.into_inner().scope)?;
        let report = self.services.case_stats(&staff, &scope).await?;
        let directory = self.services.reference().directory.clone();
        let mut stats = case_stats(&report.counts);
        stats.as_of = Some(convert::timestamp(report.as_of));
        stats.units = report
            .units
            .iter()
            .map(|unit| pb::UnitCounts {
                unit_id: unit.unit_id.clone(),
                unit_name: directory
                    .get(&unit.unit_id)
                    .map(|u| u.name_zh.clone())
                    .unwrap_or_default(),
                returns: unit.returns,
                extensions: unit.extensions,
            })
            .collect();
        Ok(Response::new(stats))
    }

    async fn get_hotspots(
        &self,
        request: Request<pb::GetHotspotsRequest>,
    ) -> Result<Response<pb::Hotspots>, Status> {
        let request = request.into_inner();
        let report = self
            .services
            .hotspots(
                request.window_hours,
                request.baseline_windows,
                request.limit,
            )
            .await?;
        Ok(Response::new(pb::Hotspots {
            window_start: Some(convert::timestamp(report.window_start)),
            window_end: Some(convert::timestamp(report.window_end)),
            categories: report.categories.iter().map(hotspot).collect(),
            areas: report.areas.iter().map(hotspot).collect(),
            spikes: report.spikes.iter().map(hotspot).collect(),
        }))
    }

    async fn list_spike_alerts(
        &self,
        request: Request<pb::ListSpikeAlertsRequest>,
    ) -> Result<Response<pb::ListSpikeAlertsResponse>, Status> {
        let request = request.into_inner();
        let (alerts, next) = self
            .services
            .spike_alerts(request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListSpikeAlertsResponse {
            alerts: alerts
                .iter()
                .map(|alert| pb::SpikeAlert {
                    id: alert.id.to_string(),
                    hotspot: Some(hotspot(&alert.hotspot)),
                    window_start: Some(convert::timestamp(alert.window_start)),
                    window_end: Some(convert::timestamp(alert.window_end)),
                    raised_at: Some(convert::timestamp(alert.raised_at)),
                })
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    type ExportCasesStream = CsvStream;

    async fn export_cases(
        &self,
        request: Request<pb::ExportCasesRequest>,
    ) -> Result<Response<Self::ExportCasesStream>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let scope = scope_request(request.scope)?;
        let (scope, detail) = self
            .services
            .start_export(
                &staff,
                &scope,
                request.include_personal_data,
                &request.reason,
            )
            .await?;
        // Pages are read as the client takes them: a slow reader holds one
        // page in memory, not the whole period.
        let (chunks, items) = tokio::sync::mpsc::channel(2);
        let services = Arc::clone(&self.services);
        tokio::spawn(async move {
            let mut after = None;
            loop {
                let page = services.export_page(&scope, detail, after).await;
                let (csv, next) = match page {
                    Ok(page) => page,
                    Err(error) => {
                        let _ = chunks.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                let chunk = pb::CsvChunk {
                    data: csv.into_bytes(),
                };
                if chunks.send(Ok(chunk)).await.is_err() {
                    return;
                }
                match next {
                    Some(id) => after = Some(id),
                    None => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(items))))
    }
}

#[tonic::async_trait]
impl PublicStatsService for PublicStatsApi {
    async fn get_public_stats(
        &self,
        request: Request<pb::GetPublicStatsRequest>,
    ) -> Result<Response<pb::PublicStats>, Status> {
        let report = self
            .services
            .public_stats(&request.into_inner().month)
            .await?;
        let rates = report.counts.rates();
        Ok(Response::new(pb::PublicStats {
            month: report.month,
            received: report.counts.received,
            closed: report.counts.closed,
            on_time_of_closed: rate(rates.on_time_of_closed),
            on_time_including_open_overdue: rate(rates.on_time_including_open_overdue),
            closed_within_one_day: rate(rates.closed_within_one_day),
            closed_within_three_days: rate(rates.closed_within_three_days),
            satisfaction: rate(rates.satisfaction),
            categories: report
                .categories
                .into_iter()
                .map(|(code, name, received)| pb::PublicCategoryCount {
                    code,
                    name,
                    received,
                })
                .collect(),
            suppressed_below: crate::domain::stats::PUBLIC_MIN_CELL as u32,
        }))
    }
}

#[tonic::async_trait]
impl KnowledgeService for KnowledgeApi {
    async fn save_answer(
        &self,
        request: Request<pb::SaveAnswerRequest>,
    ) -> Result<Response<pb::KnowledgeEntry>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let saved = self
            .services
            .save_answer(
                &staff,
                &request.id,
                &request.question,
                &request.answer,
                &request.category_code,
            )
            .await?;
        Ok(Response::new(entry(&saved)))
    }

    async fn list_answers(
        &self,
        request: Request<pb::ListAnswersRequest>,
    ) -> Result<Response<pb::ListAnswersResponse>, Status> {
        let request = request.into_inner();
        let (entries, next) = self
            .services
            .list_answers(
                request.include_retired,
                request.page_size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListAnswersResponse {
            entries: entries.iter().map(entry).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn retire_answer(
        &self,
        request: Request<pb::RetireAnswerRequest>,
    ) -> Result<Response<pb::KnowledgeEntry>, Status> {
        let staff = caller(&request)?;
        let retired = self
            .services
            .retire_answer(&staff, &request.into_inner().id)
            .await?;
        Ok(Response::new(entry(&retired)))
    }

    async fn list_unanswered_consultations(
        &self,
        request: Request<pb::ListUnansweredConsultationsRequest>,
    ) -> Result<Response<pb::ListUnansweredConsultationsResponse>, Status> {
        let request = request.into_inner();
        let from = request
            .from
            .map(|at| convert::time_from_proto("from", Some(at)))
            .transpose()?;
        let to = request
            .to
            .map(|at| convert::time_from_proto("to", Some(at)))
            .transpose()?;
        let groups = self
            .services
            .unanswered_consultations(from, to, request.limit)
            .await?;
        Ok(Response::new(pb::ListUnansweredConsultationsResponse {
            groups: groups
                .iter()
                .map(|group| pb::UnansweredGroup {
                    sample_text: group.sample_text.clone(),
                    category_code: group.category_code.clone(),
                    count: group.complaint_ids.len() as u64,
                    complaint_ids: group
                        .complaint_ids
                        .iter()
                        .map(|id| id.to_string())
                        .collect(),
                    best_score: group.best_score,
                })
                .collect(),
        }))
    }
}
