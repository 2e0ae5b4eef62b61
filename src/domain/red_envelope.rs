//! Red envelopes: the reward policy, who earns an envelope when a complaint
//! is accepted for filing, the life of an envelope's money, and the
//! double-entry postings each step writes. Amounts are integer fen.

use chrono::{DateTime, Duration, Utc};

use super::complaint::{Channel, ComplaintKind};
use super::error::{DomainError, Violations};
use super::time::local_date;

/// The largest amount a policy may name: 200 yuan. The product pays 1 to 20
/// yuan; the headroom is for a district that decides otherwise.
pub const MAX_ENVELOPE_FEN: i64 = 20_000;

/// The largest budget a policy may name: 100 million yuan.
pub const MAX_BUDGET_FEN: i64 = 10_000_000_000;

/// The amounts an envelope may have, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmountRange {
    pub min_fen: i64,
    pub max_fen: i64,
}

impl AmountRange {
    pub fn contains(&self, fen: i64) -> bool {
        (self.min_fen..=self.max_fen).contains(&fen)
    }

    /// How many different amounts the range holds.
    pub fn len(&self) -> u64 {
        (self.max_fen - self.min_fen + 1).unsigned_abs()
    }

    pub fn is_empty(&self) -> bool {
        self.max_fen < self.min_fen
    }
}

/// The reward policy in force; changed through `RewardService`, never code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewardPolicy {
    pub range: AmountRange,
    pub daily_cap_per_citizen: u32,
    pub monthly_cap_per_citizen: u32,
    pub daily_budget_fen: i64,
    pub monthly_budget_fen: i64,
    /// How long a citizen has to claim an envelope before its money goes
    /// back to the budget.
    pub claim_days: u32,
}

impl RewardPolicy {
    /// The policy a new database starts with (the migration writes the same).
    pub fn initial() -> RewardPolicy {
        RewardPolicy {
            range: AmountRange {
                min_fen: 100,
                max_fen: 2000,
            },
            daily_cap_per_citizen: 3,
            monthly_cap_per_citizen: 20,
            daily_budget_fen: 1_000_000,
            monthly_budget_fen: 20_000_000,
            claim_days: 30,
        }
    }

    /// Checks a proposed policy, reporting every problem at once.
    pub fn parse(proposed: RewardPolicy) -> Result<RewardPolicy, DomainError> {
        let mut violations = Violations::default();
        let range = proposed.range;
        if !(1..=MAX_ENVELOPE_FEN).contains(&range.min_fen) {
            violations.push("min_amount_fen", "must be 1 to 20000 fen");
        }
        if !(1..=MAX_ENVELOPE_FEN).contains(&range.max_fen) {
            violations.push("max_amount_fen", "must be 1 to 20000 fen");
        }
        if range.max_fen < range.min_fen {
            violations.push("max_amount_fen", "must not be below min_amount_fen");
        }
        if !(1..=1000).contains(&proposed.daily_cap_per_citizen) {
            violations.push("daily_cap_per_citizen", "must be 1 to 1000");
        }
        if !(1..=10_000).contains(&proposed.monthly_cap_per_citizen) {
            violations.push("monthly_cap_per_citizen", "must be 1 to 10000");
        }
        if !(0..=MAX_BUDGET_FEN).contains(&proposed.daily_budget_fen) {
            violations.push("daily_budget_fen", "must be 0 to 10000000000 fen");
        }
        if !(0..=MAX_BUDGET_FEN).contains(&proposed.monthly_budget_fen) {
            violations.push("monthly_budget_fen", "must be 0 to 10000000000 fen");
        }
        if !(1..=365).contains(&proposed.claim_days) {
            violations.push("claim_days", "must be 1 to 365");
        }
        violations.into_result()?;
        Ok(proposed)
    }

    pub fn claim_until(&self, decided_at: DateTime<Utc>) -> DateTime<Utc> {
        decided_at + Duration::days(i64::from(self.claim_days))
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident {
        $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }
    };
}

string_enum! {
    /// Where an envelope stands. Paid, cancelled, expired and failed are
    /// final; granted and claiming mean the money is owed to the citizen.
    EnvelopeState {
        NotGranted => "not_granted",
        Granted => "granted",
        Claiming => "claiming",
        Paid => "paid",
        Cancelled => "cancelled",
        Expired => "expired",
        Failed => "failed",
    }
}

impl EnvelopeState {
    /// The money is still owed to the citizen.
    pub fn is_pending(self) -> bool {
        matches!(self, EnvelopeState::Granted | EnvelopeState::Claiming)
    }

    /// The money went back to the budget.
    pub fn is_released(self) -> bool {
        matches!(
            self,
            EnvelopeState::Cancelled | EnvelopeState::Expired | EnvelopeState::Failed
        )
    }
}

string_enum! {
    /// Why a complaint accepted for filing earned no envelope.
    NotGrantedReason {
        NotAComplaint => "not_a_complaint",
        NotMobileChannel => "not_mobile_channel",
        Merged => "merged_as_duplicate",
        AuthorBlocked => "author_blocked",
        DailyCapReached => "daily_cap_reached",
        MonthlyCapReached => "monthly_cap_reached",
        DailyBudgetExhausted => "daily_budget_exhausted",
        MonthlyBudgetExhausted => "monthly_budget_exhausted",
    }
}

/// The reason recorded with a granted envelope.
pub const ELIGIBLE: &str = "eligible";

impl NotGrantedReason {
    /// What the citizen is told. Running out of budget or reaching a cap is
    /// said plainly, so that nobody thinks the complaint was judged unworthy.
    pub fn citizen_message(self) -> &'static str {
        match self {
            NotGrantedReason::NotAComplaint => "咨询和建议不发放红包。",
            NotGrantedReason::NotMobileChannel => "仅通过小程序或App提交的投诉可获得红包。",
            NotGrantedReason::Merged => "该投诉已与同一问题的投诉合并，不重复发放红包。",
            NotGrantedReason::AuthorBlocked => "该账号暂不能领取红包。",
            NotGrantedReason::DailyCapReached => "您今日获得的红包已达上限。",
            NotGrantedReason::MonthlyCapReached => "您本月获得的红包已达上限。",
            NotGrantedReason::DailyBudgetExhausted => "今日红包预算已发放完毕，感谢您的反映。",
            NotGrantedReason::MonthlyBudgetExhausted => "本月红包预算已发放完毕，感谢您的反映。",
        }
    }
}

/// The decision for one complaint accepted for filing, and its money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub id: i64,
    pub complaint_id: super::complaint::ComplaintId,
    pub citizen_id: super::account::AccountId,
    /// Zero when not granted.
    pub amount_fen: i64,
    pub state: EnvelopeState,
    /// `eligible`, a `NotGrantedReason`, or why it was cancelled or failed.
    pub reason: String,
    /// The budget periods it counts against (district time).
    pub day: String,
    pub month: String,
    pub decided_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub claim_until: DateTime<Utc>,
    /// Transfers started so far.
    pub attempts: u32,
    pub paid_at: Option<DateTime<Utc>>,
    /// Set when something happened after payout that an auditor must see.
    pub audit_flag: Option<String>,
}

impl Envelope {
    /// What the citizen is told about it.
    pub fn citizen_message(&self) -> &'static str {
        if let Some(reason) = NotGrantedReason::parse(&self.reason) {
            return reason.citizen_message();
        }
        match self.state {
            EnvelopeState::Granted => "红包待领取，请在小程序中领取。",
            EnvelopeState::Claiming => "红包领取中，请在微信中确认收款。",
            EnvelopeState::Paid => "红包已发放到微信零钱。",
            EnvelopeState::Cancelled => "红包已取消。",
            EnvelopeState::Expired => "红包已过期未领取。",
            EnvelopeState::Failed => "红包发放失败，请联系工作人员。",
            EnvelopeState::NotGranted => "该诉求未获得红包。",
        }
    }
}

/// What a filing decision asks of the reward, written in its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewardEffect {
    /// Acceptance: decide the complaint's envelope with this drawn amount.
    Offer(EnvelopeOffer),
    /// The complaint was merged as a duplicate: cancel an unpaid envelope,
    /// flag a paid one for the auditor.
    Withdraw { reason: String },
}

/// An amount drawn before the acceptance's transaction, and what the store
/// cannot know by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeOffer {
    pub amount_fen: i64,
    pub author_blocked: bool,
}

/// Everything eligibility depends on, read under the locks of the grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantFacts {
    pub kind: ComplaintKind,
    pub channel: Channel,
    pub merged: bool,
    pub author_blocked: bool,
    /// Envelopes the citizen was granted today and this month (district time).
    pub citizen_today: u32,
    pub citizen_this_month: u32,
    /// Money committed to envelopes today and this month.
    pub committed_today_fen: i64,
    pub committed_this_month_fen: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantDecision {
    Granted { amount_fen: i64 },
    NotGranted(NotGrantedReason),
}

/// Decides an envelope. The checks run in a fixed order, so the recorded
/// reason is the first that applies.
pub fn decide_grant(facts: &GrantFacts, policy: &RewardPolicy, amount_fen: i64) -> GrantDecision {
    use NotGrantedReason::*;
    let refused = if facts.kind != ComplaintKind::Complaint {
        Some(NotAComplaint)
    } else if !facts.channel.is_mobile() {
        Some(NotMobileChannel)
    } else if facts.merged {
        Some(Merged)
    } else if facts.author_blocked {
        Some(AuthorBlocked)
    } else if facts.citizen_today >= policy.daily_cap_per_citizen {
        Some(DailyCapReached)
    } else if facts.citizen_this_month >= policy.monthly_cap_per_citizen {
        Some(MonthlyCapReached)
    } else if facts.committed_today_fen + amount_fen > policy.daily_budget_fen {
        Some(DailyBudgetExhausted)
    } else if facts.committed_this_month_fen + amount_fen > policy.monthly_budget_fen {
        Some(MonthlyBudgetExhausted)
    } else {
        None
    };
    match refused {
        Some(reason) => GrantDecision::NotGranted(reason),
        None => GrantDecision::Granted { amount_fen },
    }
}

/// The budget periods an instant falls in: ("2026-12-03", "2026-12").
pub fn periods(at: DateTime<Utc>) -> (String, String) {
    let day = local_date(at);
    (
        day.format("%Y-%m-%d").to_string(),
        day.format("%Y-%m").to_string(),
    )
}

pub fn day_budget_key(day: &str) -> String {
    format!("day:{day}")
}

pub fn month_budget_key(month: &str) -> String {
    format!("month:{month}")
}

string_enum! {
    /// Where one transfer attempt stands, as far as this server knows.
    BillState {
        /// Recorded before the request is sent: it may or may not exist at
        /// the provider until a query or a repeated request says.
        Creating => "creating",
        /// Created; waiting for the citizen's confirmation or in flight.
        Waiting => "waiting",
        /// Cancellation asked for; not yet known closed.
        Cancelling => "cancelling",
        Success => "success",
        /// Closed without paying.
        Closed => "closed",
    }
}

impl BillState {
    pub fn is_open(self) -> bool {
        matches!(
            self,
            BillState::Creating | BillState::Waiting | BillState::Cancelling
        )
    }
}

/// Transfer attempts per envelope before it fails for staff to look at.
pub const MAX_TRANSFER_ATTEMPTS: u32 = 5;

/// One transfer attempt of an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub out_bill_no: String,
    pub envelope_id: i64,
    pub attempt: u32,
    pub state: BillState,
    pub transfer_bill_no: Option<String>,
    pub package_info: Option<String>,
    pub fail_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

string_enum! {
    /// The ledger's accounts: the budget money comes from, what is owed to
    /// citizens, and what was paid out.
    LedgerAccount {
        Budget => "budget",
        Owed => "owed",
        PaidOut => "paid_out",
    }
}

string_enum! {
    /// The movements of an envelope's money.
    EntryKind {
        Grant => "grant",
        Payout => "payout",
        Release => "release",
    }
}

/// The balanced postings of one movement of `amount_fen`.
pub fn postings(kind: EntryKind, amount_fen: i64) -> [(LedgerAccount, i64); 2] {
    use LedgerAccount::*;
    match kind {
        EntryKind::Grant => [(Budget, -amount_fen), (Owed, amount_fen)],
        EntryKind::Payout => [(Owed, -amount_fen), (PaidOut, amount_fen)],
        EntryKind::Release => [(Owed, -amount_fen), (Budget, amount_fen)],
    }
}

/// An envelope as the ledger check sees it, with the sums of its postings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeBalance {
    pub envelope_id: i64,
    pub state: EnvelopeState,
    pub amount_fen: i64,
    pub budget_fen: i64,
    pub owed_fen: i64,
    pub paid_out_fen: i64,
}

impl EnvelopeBalance {
    /// What the postings should sum to for the envelope's state, as
    /// (budget, owed, paid out).
    pub fn expected(&self) -> (i64, i64, i64) {
        let a = self.amount_fen;
        match self.state {
            EnvelopeState::NotGranted => (0, 0, 0),
            EnvelopeState::Granted | EnvelopeState::Claiming => (-a, a, 0),
            EnvelopeState::Paid => (-a, 0, a),
            EnvelopeState::Cancelled | EnvelopeState::Expired | EnvelopeState::Failed => (0, 0, 0),
        }
    }

    /// A sentence for the auditor when state and postings disagree.
    pub fn discrepancy(&self) -> Option<String> {
        let actual = (self.budget_fen, self.owed_fen, self.paid_out_fen);
        let expected = self.expected();
        (actual != expected).then(|| {
            format!(
                "envelope {} is {} but its postings are budget {}, owed {}, paid out {} \
                 (expected {}, {}, {})",
                self.envelope_id,
                self.state.as_str(),
                actual.0,
                actual.1,
                actual.2,
                expected.0,
                expected.1,
                expected.2
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eligible() -> GrantFacts {
        GrantFacts {
            kind: ComplaintKind::Complaint,
            channel: Channel::MiniProgram,
            merged: false,
            author_blocked: false,
            citizen_today: 0,
            citizen_this_month: 0,
            committed_today_fen: 0,
            committed_this_month_fen: 0,
        }
    }

    #[test]
    fn an_eligible_complaint_is_granted_the_drawn_amount() {
        let decision = decide_grant(&eligible(), &RewardPolicy::initial(), 1234);
        assert_eq!(decision, GrantDecision::Granted { amount_fen: 1234 });
    }

    #[test]
    fn each_rule_records_its_own_reason() {
        let policy = RewardPolicy::initial();
        let cases: Vec<(GrantFacts, NotGrantedReason)> = vec![
            (
                GrantFacts {
                    kind: ComplaintKind::Consultation,
                    ..eligible()
                },
                NotGrantedReason::NotAComplaint,
            ),
            (
                GrantFacts {
                    channel: Channel::Hotline,
                    ..eligible()
                },
                NotGrantedReason::NotMobileChannel,
            ),
            (
                GrantFacts {
                    merged: true,
                    ..eligible()
                },
                NotGrantedReason::Merged,
            ),
            (
                GrantFacts {
                    author_blocked: true,
                    ..eligible()
                },
                NotGrantedReason::AuthorBlocked,
            ),
            (
                GrantFacts {
                    citizen_today: 3,
                    ..eligible()
                },
                NotGrantedReason::DailyCapReached,
            ),
            (
                GrantFacts {
                    citizen_this_month: 20,
                    ..eligible()
                },
                NotGrantedReason::MonthlyCapReached,
            ),
            (
                GrantFacts {
                    committed_today_fen: 999_000,
                    ..eligible()
                },
                NotGrantedReason::DailyBudgetExhausted,
            ),
            (
                GrantFacts {
                    committed_this_month_fen: 19_999_000,
                    ..eligible()
                },
                NotGrantedReason::MonthlyBudgetExhausted,
            ),
        ];
        for (facts, reason) in cases {
            assert_eq!(
                decide_grant(&facts, &policy, 2000),
                GrantDecision::NotGranted(reason)
            );
        }
    }

    #[test]
    fn a_grant_that_exactly_spends_the_budget_is_made() {
        let facts = GrantFacts {
            committed_today_fen: 998_000,
            ..eligible()
        };
        let decision = decide_grant(&facts, &RewardPolicy::initial(), 2000);
        assert_eq!(decision, GrantDecision::Granted { amount_fen: 2000 });
    }

    #[test]
    fn every_posting_pair_balances() {
        for kind in EntryKind::ALL {
            let [(_, a), (_, b)] = postings(*kind, 777);
            assert_eq!(a + b, 0);
        }
    }

    #[test]
    fn a_policy_reports_all_its_problems() {
        let proposed = RewardPolicy {
            range: AmountRange {
                min_fen: 0,
                max_fen: 30_000,
            },
            daily_cap_per_citizen: 0,
            claim_days: 0,
            ..RewardPolicy::initial()
        };
        let Err(DomainError::InvalidInput(violations)) = RewardPolicy::parse(proposed) else {
            panic!("refused");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "min_amount_fen",
                "max_amount_fen",
                "daily_cap_per_citizen",
                "claim_days"
            ]
        );
    }

    #[test]
    fn a_paid_envelope_without_its_payout_posting_is_a_discrepancy() {
        let balance = EnvelopeBalance {
            envelope_id: 1,
            state: EnvelopeState::Paid,
            amount_fen: 500,
            budget_fen: -500,
            owed_fen: 500,
            paid_out_fen: 0,
        };
        assert!(balance.discrepancy().is_some());
        let settled = EnvelopeBalance {
            owed_fen: 0,
            paid_out_fen: 500,
            ..balance
        };
        assert_eq!(settled.discrepancy(), None);
    }
}
