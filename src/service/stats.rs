//! The district's figures for staff and the public: case statistics for a
//! scope, hotspots and spike alerts, the CSV export, and the published
//! monthly aggregates.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

use super::Services;
use crate::domain::account::{Principal, Role};
use crate::domain::audit::{AuditAction, AuditDraft, parse_reason};
use crate::domain::complaint::{ComplaintId, tracking_number};
use crate::domain::directory::Directory;
use crate::domain::error::DomainError;
use crate::domain::stats::{
    CaseCounts, CaseScope, Hotspot, HotspotDimension, HotspotPolicy, PUBLIC_MIN_CELL, SpikeAlert,
    UNASSIGNED_AREA, UnitCounts,
};
use crate::domain::time::{local_date, shanghai};
use crate::store::stats::ExportRow;

/// A scope as a caller asks for it, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct ScopeRequest {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub unit_id: String,
    pub include_subtree: bool,
    pub category_code: String,
}

/// A scope's figures.
#[derive(Debug, Clone)]
pub struct CaseStatsReport {
    pub as_of: DateTime<Utc>,
    pub counts: CaseCounts,
    pub units: Vec<UnitCounts>,
}

/// Hotspots of the window ending now.
#[derive(Debug, Clone)]
pub struct HotspotReport {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub categories: Vec<Hotspot>,
    pub areas: Vec<Hotspot>,
    pub spikes: Vec<Hotspot>,
}

/// One month's published figures.
#[derive(Debug, Clone)]
pub struct PublicReport {
    pub month: String,
    pub counts: CaseCounts,
    /// First-level category code, name and cases received; rare ones are
    /// folded into one row with an empty code.
    pub categories: Vec<(String, String, u64)>,
}

/// What an export may show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDetail {
    /// Contact phones and citizen accounts left out.
    Plain,
    /// With them: a district supervisor's audited request.
    PersonalData,
}

/// Rows per export page; each page is one CSV chunk.
pub const EXPORT_PAGE: u32 = 500;

impl Services {
    /// The units a staff member's figures may cover: `None` for the whole
    /// district.
    fn stats_reach(&self, staff: &Principal, directory: &Directory) -> Option<Vec<String>> {
        let unit = staff.unit_id.as_deref().unwrap_or_default();
        match staff.role {
            Role::Dispatcher | Role::DistrictSupervisor | Role::Auditor => None,
            Role::UnitSupervisor => Some(subtree(directory, unit)),
            _ => Some(vec![unit.to_owned()]),
        }
    }

    /// Checks a requested scope against the caller's reach.
    pub fn case_scope(
        &self,
        staff: &Principal,
        request: &ScopeRequest,
    ) -> Result<CaseScope, DomainError> {
        let (from, to) = CaseScope::period(request.from, request.to)?;
        let reference = self.reference();
        let directory = &reference.directory;
        let reach = self.stats_reach(staff, directory);
        let unit_id = request.unit_id.trim();
        let units = if unit_id.is_empty() {
            reach
        } else {
            if directory.get(unit_id).is_none() {
                return Err(DomainError::invalid("scope.unit_id", "no unit has this id"));
            }
            let asked = if request.include_subtree {
                subtree(directory, unit_id)
            } else {
                vec![unit_id.to_owned()]
            };
            if let Some(reach) = &reach
                && !asked.iter().all(|unit| reach.contains(unit))
            {
                return Err(DomainError::PermissionDenied(
                    "the unit is outside your reach".to_owned(),
                ));
            }
            Some(asked)
        };
        let code = request.category_code.trim();
        if !code.is_empty() && self.standard.get(code).is_none() {
            return Err(DomainError::invalid(
                "scope.category_code",
                "no category has this code",
            ));
        }
        Ok(CaseScope {
            from,
            to,
            units,
            category_prefix: (!code.is_empty()).then(|| code.to_owned()),
        })
    }

    pub async fn case_stats(
        &self,
        staff: &Principal,
        request: &ScopeRequest,
    ) -> Result<CaseStatsReport, DomainError> {
        let scope = self.case_scope(staff, request)?;
        let as_of = self.clock.now();
        let counts = self.store.case_counts(&scope, as_of).await?;
        let units = self.store.unit_counts(&scope).await?;
        Ok(CaseStatsReport {
            as_of,
            counts,
            units,
        })
    }

    /// Hotspots of the window that ends now.
    pub async fn hotspots(
        &self,
        window_hours: u32,
        baseline_windows: u32,
        limit: u32,
    ) -> Result<HotspotReport, DomainError> {
        if limit > 100 {
            return Err(DomainError::invalid("limit", "must be 1 to 100"));
        }
        let limit = if limit == 0 { 10 } else { limit as usize };
        let policy = HotspotPolicy::default().requested(window_hours, baseline_windows)?;
        let mut report = self.judge_hotspots(&policy, self.clock.now()).await?;
        report.categories.truncate(limit);
        report.areas.truncate(limit);
        Ok(report)
    }

    async fn judge_hotspots(
        &self,
        policy: &HotspotPolicy,
        now: DateTime<Utc>,
    ) -> anyhow::Result<HotspotReport> {
        let reference = self.reference();
        let directory = &reference.directory;
        let windows = policy.baseline_windows + 2;
        let mut judged = HashMap::new();
        for dimension in [HotspotDimension::Category, HotspotDimension::Area] {
            let counts = self
                .store
                .window_counts(dimension, now, policy.window, windows)
                .await?;
            // Per key, counts oldest window first.
            let mut series: HashMap<String, Vec<u64>> = HashMap::new();
            for count in counts {
                let key = match dimension {
                    HotspotDimension::Category => count.key.unwrap_or_default(),
                    HotspotDimension::Area => area_of(directory, count.key.as_deref()),
                };
                let slots = series
                    .entry(key)
                    .or_insert_with(|| vec![0; windows as usize]);
                slots[(windows - 1 - count.window) as usize] += count.count;
            }
            let mut hotspots: Vec<Hotspot> = series
                .into_iter()
                .map(|(key, counts)| Hotspot {
                    dimension,
                    name: self.hotspot_name(directory, dimension, &key),
                    judgement: policy.judge(&counts),
                    key,
                })
                .collect();
            hotspots.sort_by(|a, b| {
                b.judgement
                    .rise
                    .cmp(&a.judgement.rise)
                    .then_with(|| b.judgement.count.cmp(&a.judgement.count))
                    .then_with(|| a.key.cmp(&b.key))
            });
            judged.insert(dimension, hotspots);
        }
        let categories = judged
            .remove(&HotspotDimension::Category)
            .unwrap_or_default();
        let areas = judged.remove(&HotspotDimension::Area).unwrap_or_default();
        let mut spikes: Vec<Hotspot> = categories
            .iter()
            .chain(&areas)
            .filter(|h| h.judgement.spike)
            .cloned()
            .collect();
        spikes.sort_by(|a, b| {
            b.judgement
                .score
                .total_cmp(&a.judgement.score)
                .then_with(|| a.dimension.as_str().cmp(b.dimension.as_str()))
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(HotspotReport {
            window_start: now - policy.window,
            window_end: now,
            categories,
            areas,
            spikes,
        })
    }

    fn hotspot_name(
        &self,
        directory: &Directory,
        dimension: HotspotDimension,
        key: &str,
    ) -> String {
        match dimension {
            HotspotDimension::Category => self
                .standard
                .get(key)
                .map(|c| c.name_zh.clone())
                .unwrap_or_else(|| key.to_owned()),
            HotspotDimension::Area if key == UNASSIGNED_AREA => "未分派".to_owned(),
            HotspotDimension::Area => directory
                .get(key)
                .map(|u| u.name_zh.clone())
                .unwrap_or_else(|| key.to_owned()),
        }
    }

    /// The supervision pass's part: records each spike of the default
    /// window once per key and district day, and says how many were new.
    pub async fn record_spikes(&self, now: DateTime<Utc>) -> anyhow::Result<u32> {
        let report = self.judge_hotspots(&HotspotPolicy::default(), now).await?;
        let day = local_date(now).to_string();
        let mut recorded = 0;
        for hotspot in report.spikes {
            let alert = SpikeAlert {
                id: 0,
                hotspot,
                window_start: report.window_start,
                window_end: report.window_end,
                raised_at: now,
            };
            if self.store.record_spike(&alert, &day).await? {
                tracing::warn!(
                    spike.dimension = alert.hotspot.dimension.as_str(),
                    spike.key = %alert.hotspot.key,
                    spike.count = alert.hotspot.judgement.count,
                    spike.baseline = alert.hotspot.judgement.baseline_mean,
                    "case volume spike"
                );
                recorded += 1;
            }
        }
        Ok(recorded)
    }

    pub async fn spike_alerts(
        &self,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<SpikeAlert>, Option<String>), DomainError> {
        let limit = match page_size {
            0 => 50,
            1..=200 => page_size as u32,
            _ => return Err(DomainError::invalid("page_size", "must be 0 to 200")),
        };
        let before = match page_token {
            "" => None,
            token => Some(
                token
                    .parse::<i64>()
                    .map_err(|_| DomainError::invalid("page_token", "not a token we gave"))?,
            ),
        };
        let mut alerts = self.store.spike_alerts(before, limit + 1).await?;
        let next = (alerts.len() > limit as usize).then(|| {
            alerts.truncate(limit as usize);
            alerts.last().map(|a| a.id.to_string()).unwrap_or_default()
        });
        Ok((alerts, next))
    }

    /// Checks an export request; a request for personal data is audited
    /// here, before any row leaves.
    pub async fn start_export(
        &self,
        staff: &Principal,
        request: &ScopeRequest,
        include_personal_data: bool,
        reason: &str,
    ) -> Result<(CaseScope, ExportDetail), DomainError> {
        let scope = self.case_scope(staff, request)?;
        if !include_personal_data {
            return Ok((scope, ExportDetail::Plain));
        }
        if staff.role != Role::DistrictSupervisor {
            return Err(DomainError::PermissionDenied(
                "only a district supervisor may export personal data".to_owned(),
            ));
        }
        let reason =
            parse_reason("reason", reason).map_err(|v| DomainError::InvalidInput(vec![v]))?;
        let target = format!(
            "cases:{}..{}",
            scope.from.to_rfc3339(),
            scope.to.to_rfc3339()
        );
        let audit = AuditDraft::by(staff, AuditAction::CasesExported, target, self.clock.now())
            .because(reason);
        self.store.record_audit(&audit).await?;
        tracing::info!("case export with personal data started");
        Ok((scope, ExportDetail::PersonalData))
    }

    /// One page of the export as CSV lines, and where the next starts.
    pub async fn export_page(
        &self,
        scope: &CaseScope,
        detail: ExportDetail,
        after: Option<ComplaintId>,
    ) -> Result<(String, Option<ComplaintId>), DomainError> {
        let rows = self.store.export_rows(scope, after, EXPORT_PAGE).await?;
        let next = (rows.len() == EXPORT_PAGE as usize).then(|| rows.last().map(|r| r.id));
        let mut csv = String::new();
        if after.is_none() {
            // A byte-order mark, so that spreadsheet programs read UTF-8.
            csv.push('\u{feff}');
            csv.push_str(&csv_line(&export_header(detail)));
        }
        for row in &rows {
            csv.push_str(&csv_line(&self.export_fields(row, detail)?));
        }
        Ok((csv, next.flatten()))
    }

    fn export_fields(
        &self,
        row: &ExportRow,
        detail: ExportDetail,
    ) -> Result<Vec<String>, DomainError> {
        let time = |at: Option<DateTime<Utc>>| {
            at.map(|at| {
                at.with_timezone(&shanghai())
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_default()
        };
        let mut fields = vec![
            tracking_number(row.id, row.created_at),
            row.kind.clone(),
            row.channel.clone(),
            row.status.clone(),
            row.category_code.clone(),
            self.standard
                .get(&row.category_code)
                .map(|c| c.name_zh.clone())
                .unwrap_or_default(),
            row.text.clone(),
            row.address.clone().unwrap_or_default(),
            row.lead_unit_id.clone().unwrap_or_default(),
            time(Some(row.created_at)),
            time(row.accepted_at),
            time(row.deadline),
            time(row.resolved_at),
            time(row.closed_at),
            match row.resolved_on_time {
                Some(true) => "是".to_owned(),
                Some(false) => "否".to_owned(),
                None => String::new(),
            },
            row.rating.clone().unwrap_or_default(),
            row.rework_round.to_string(),
            row.merged_into.map(|id| id.to_string()).unwrap_or_default(),
        ];
        match detail {
            ExportDetail::Plain => {
                fields.push(row.contact_phone_masked.clone().unwrap_or_default());
            }
            ExportDetail::PersonalData => {
                let phone = row
                    .contact_phone_cipher
                    .as_deref()
                    .map(|cipher| self.cipher.decrypt(cipher))
                    .transpose()?;
                fields.push(phone.map(|p| p.expose().to_owned()).unwrap_or_default());
                fields.push(row.citizen_id.to_string());
            }
        }
        Ok(fields)
    }

    /// The published figures of one district month.
    pub async fn public_stats(&self, month: &str) -> Result<PublicReport, DomainError> {
        let (start, end, label) = month_bounds(month, self.clock.now())?;
        let scope = CaseScope {
            from: start,
            to: end,
            units: None,
            category_prefix: None,
        };
        let counts = self.store.case_counts(&scope, self.clock.now()).await?;
        let mut categories = Vec::new();
        let mut other = 0;
        for root in self.standard.roots() {
            let scope = CaseScope {
                category_prefix: Some(root.code.clone()),
                ..scope.clone()
            };
            let received = self.store.case_counts(&scope, end).await?.received;
            if received >= PUBLIC_MIN_CELL {
                categories.push((root.code.clone(), root.name_zh.clone(), received));
            } else {
                other += received;
            }
        }
        categories.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        if other > 0 {
            categories.push((String::new(), "其他".to_owned(), other));
        }
        Ok(PublicReport {
            month: label,
            counts,
            categories,
        })
    }
}

/// The unit and every unit below it.
fn subtree(directory: &Directory, unit: &str) -> Vec<String> {
    directory
        .units()
        .iter()
        .filter(|u| directory.is_within(&u.id, unit))
        .map(|u| u.id.clone())
        .collect()
}

/// The subdistrict a case's unit belongs to, or the unit itself for units
/// outside any subdistrict (district departments, utilities).
fn area_of(directory: &Directory, unit: Option<&str>) -> String {
    let Some(unit) = unit else {
        return UNASSIGNED_AREA.to_owned();
    };
    match directory.subdistrict_of(unit) {
        Some(subdistrict) => subdistrict.id.clone(),
        None => unit.to_owned(),
    }
}

/// `[start, end)` of a district month "YYYY-MM"; empty means the last
/// complete month before `now`.
pub fn month_bounds(
    month: &str,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, String), DomainError> {
    let first = if month.trim().is_empty() {
        let today = local_date(now);
        let this_month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        this_month
            .pred_opt()
            .and_then(|last| NaiveDate::from_ymd_opt(last.year(), last.month(), 1))
            .unwrap_or(this_month)
    } else {
        NaiveDate::parse_from_str(&format!("{}-01", month.trim()), "%Y-%m-%d")
            .map_err(|_| DomainError::invalid("month", "must look like 2026-11"))?
    };
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| DomainError::invalid("month", "out of range"))?;
    let at_midnight = |day: NaiveDate| {
        shanghai()
            .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap_or_default())
            .single()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| DomainError::invalid("month", "out of range"))
    };
    Ok((
        at_midnight(first)?,
        at_midnight(next)?,
        first.format("%Y-%m").to_string(),
    ))
}

fn export_header(detail: ExportDetail) -> Vec<String> {
    let mut header: Vec<String> = [
        "编号",
        "类型",
        "渠道",
        "状态",
        "分类编码",
        "分类",
        "诉求内容",
        "地址",
        "承办单位",
        "受理时间",
        "立案时间",
        "办理期限",
        "办结时间",
        "关闭时间",
        "按时办结",
        "满意度",
        "重办次数",
        "合并至",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    match detail {
        ExportDetail::Plain => header.push("联系电话（脱敏）".to_owned()),
        ExportDetail::PersonalData => {
            header.push("联系电话".to_owned());
            header.push("市民账号".to_owned());
        }
    }
    header
}

/// One CSV record (RFC 4180): fields with commas, quotes or line breaks
/// are quoted, quotes doubled. A field starting with =, +, - or @ gets a
/// leading apostrophe so that a spreadsheet does not run it as a formula.
pub fn csv_line(fields: &[String]) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let guarded = if field.starts_with(['=', '+', '-', '@']) {
            format!("'{field}")
        } else {
            field.clone()
        };
        if guarded.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&guarded.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&guarded);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let line = csv_line(&[
            "HY1".to_owned(),
            "井盖,丢失".to_owned(),
            "他说\"快修\"".to_owned(),
            "=HYPERLINK(\"x\")".to_owned(),
            "第一行\n第二行".to_owned(),
        ]);
        assert_eq!(
            line,
            "HY1,\"井盖,丢失\",\"他说\"\"快修\"\"\",\"'=HYPERLINK(\"\"x\"\")\",\"第一行\n第二行\"\r\n"
        );
    }

    #[test]
    fn months_are_district_months() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let (start, end, label) = month_bounds("", now).unwrap();
        assert_eq!(label, "2026-11");
        assert_eq!(start.to_rfc3339(), "2026-10-31T16:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2026-11-30T16:00:00+00:00");
        assert!(month_bounds("2026-13", now).is_err());
        assert!(month_bounds("November", now).is_err());
        let (_, _, label) = month_bounds("2026-01", now).unwrap();
        assert_eq!(label, "2026-01");
    }
}
