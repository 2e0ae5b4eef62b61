//! Instant answers (秒回): staff keep questions with their answers, and a
//! consultation is matched against the questions as it is filed.
//!
//! Chinese has no spaces to split words on, and a dictionary segmenter
//! would be a large dependency for short texts, so a question matches a
//! consultation by how much of the question's content the consultation
//! repeats: its characters and its pairs of adjacent characters, after
//! dropping function characters (的, 吗, 请问, …) that say nothing about
//! the topic. "垃圾清运时间是几点" is mostly repeated by "请问小区的垃圾一般几点
//! 清运？" and hardly at all by "小区停电了什么时候来电".

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use super::account::AccountId;
use super::complaint::ComplaintId;
use super::duplicate::{Shingles, normalize};
use super::error::{DomainError, Violations};

/// How matching behaves. Configuration, not code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchPolicy {
    /// Answers scoring below this are not offered.
    pub threshold: f64,
    /// At most this many answers are offered.
    pub max_offers: usize,
    /// Added when the entry names the consultation's category (or one
    /// above it).
    pub category_bonus: f64,
    /// Unanswered consultations this similar fall into one group.
    pub group_similarity: f64,
}

impl Default for MatchPolicy {
    fn default() -> Self {
        MatchPolicy {
            threshold: 0.5,
            max_offers: 3,
            category_bonus: 0.1,
            group_similarity: 0.5,
        }
    }
}

/// Characters that carry grammar or politeness, not topic.
const FUNCTION_CHARACTERS: &str =
    "的了吗呢啊吧呀嘛哦请问我你您他她它们是在有和与及或么什怎样如何哪谁这那个一下些吗呃";

/// A text reduced to what matching compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    characters: HashSet<char>,
    pairs: HashSet<(char, char)>,
}

impl Content {
    pub fn of(text: &str) -> Content {
        let kept: Vec<char> = normalize(text)
            .chars()
            .filter(|c| !FUNCTION_CHARACTERS.contains(*c))
            .collect();
        Content {
            characters: kept.iter().copied().collect(),
            pairs: kept.windows(2).map(|w| (w[0], w[1])).collect(),
        }
    }

    /// How much of `self` (a question) `text` repeats, in [0, 1]: the
    /// mean of the shares of its characters and of its pairs found there.
    pub fn covered_by(&self, text: &Content) -> f64 {
        fn share<T: Eq + std::hash::Hash>(part: &HashSet<T>, whole: &HashSet<T>) -> f64 {
            if part.is_empty() {
                return 0.0;
            }
            part.intersection(whole).count() as f64 / part.len() as f64
        }
        if self.characters.is_empty() {
            return 0.0;
        }
        // A one-character question has no pairs; its characters decide.
        let pairs = if self.pairs.is_empty() {
            share(&self.characters, &text.characters)
        } else {
            share(&self.pairs, &text.pairs)
        };
        (share(&self.characters, &text.characters) + pairs) / 2.0
    }
}

/// One question and its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeEntry {
    pub id: i64,
    pub question: String,
    pub answer: String,
    pub category_code: Option<String>,
    pub retired: bool,
    pub updated_at: DateTime<Utc>,
    pub updated_by: AccountId,
    pub accepted_count: u64,
}

/// An entry as staff submit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    pub question: String,
    pub answer: String,
    pub category_code: Option<String>,
}

impl EntryDraft {
    pub fn parse(
        question: &str,
        answer: &str,
        category_code: &str,
        category_known: impl Fn(&str) -> bool,
    ) -> Result<EntryDraft, DomainError> {
        let mut violations = Violations::default();
        let question = question.trim();
        let answer = answer.trim();
        let category_code = category_code.trim();
        if question.chars().count() < 2 || question.chars().count() > 200 {
            violations.push("question", "must be 2 to 200 characters");
        } else if Content::of(question).characters.is_empty() {
            violations.push("question", "must say what it is about");
        }
        if answer.is_empty() || answer.chars().count() > 2000 {
            violations.push("answer", "must be 1 to 2000 characters");
        }
        if !category_code.is_empty() && !category_known(category_code) {
            violations.push("category_code", "no category has this code");
        }
        violations.into_result()?;
        Ok(EntryDraft {
            question: question.to_owned(),
            answer: answer.to_owned(),
            category_code: (!category_code.is_empty()).then(|| category_code.to_owned()),
        })
    }
}

/// An answer offered for a consultation.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub entry_id: i64,
    pub score: f64,
}

/// What matching one consultation found: the offers (best first) and the
/// best score reached, offered or not.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchResult {
    pub offers: Vec<Offer>,
    pub best_score: f64,
}

impl MatchPolicy {
    /// Scores every live entry against a consultation.
    pub fn match_consultation(
        &self,
        text: &str,
        category_code: &str,
        entries: &[KnowledgeEntry],
    ) -> MatchResult {
        let content = Content::of(text);
        let mut scored: Vec<Offer> = entries
            .iter()
            .filter(|entry| !entry.retired)
            .map(|entry| {
                let mut score = Content::of(&entry.question).covered_by(&content);
                let same_category = entry
                    .category_code
                    .as_deref()
                    .is_some_and(|code| category_code.starts_with(code));
                if same_category && score > 0.0 {
                    score = (score + self.category_bonus).min(1.0);
                }
                Offer {
                    entry_id: entry.id,
                    score,
                }
            })
            .collect();
        scored.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.entry_id.cmp(&b.entry_id))
        });
        let best_score = scored.first().map_or(0.0, |offer| offer.score);
        scored.retain(|offer| offer.score >= self.threshold);
        scored.truncate(self.max_offers);
        MatchResult {
            offers: scored,
            best_score,
        }
    }

    /// Groups unanswered consultations (newest first) by similar text; the
    /// largest group first, then the one with the newest consultation.
    pub fn group_unanswered(&self, consultations: &[Unanswered]) -> Vec<UnansweredGroup> {
        let mut groups: Vec<(Shingles, UnansweredGroup)> = Vec::new();
        for consultation in consultations {
            let shingles = Shingles::of(&consultation.text);
            let home = groups.iter_mut().find(|(sample, group)| {
                group.category_code == consultation.category_code
                    && sample.similarity(&shingles) >= self.group_similarity
            });
            match home {
                Some((_, group)) => group.complaint_ids.push(consultation.complaint_id),
                None => groups.push((
                    shingles,
                    UnansweredGroup {
                        sample_text: consultation.text.clone(),
                        category_code: consultation.category_code.clone(),
                        complaint_ids: vec![consultation.complaint_id],
                        best_score: consultation.best_score,
                    },
                )),
            }
        }
        let mut groups: Vec<UnansweredGroup> = groups.into_iter().map(|(_, g)| g).collect();
        // Stable: among equals, the group started by the newer one first.
        groups.sort_by_key(|group| std::cmp::Reverse(group.complaint_ids.len()));
        groups
    }
}

/// A consultation no entry answered well.
#[derive(Debug, Clone, PartialEq)]
pub struct Unanswered {
    pub complaint_id: ComplaintId,
    pub text: String,
    pub category_code: String,
    pub best_score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UnansweredGroup {
    pub sample_text: String,
    pub category_code: String,
    pub complaint_ids: Vec<ComplaintId>,
    pub best_score: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64, question: &str, category: Option<&str>) -> KnowledgeEntry {
        KnowledgeEntry {
            id,
            question: question.to_owned(),
            answer: "答复".to_owned(),
            category_code: category.map(str::to_owned),
            retired: false,
            updated_at: DateTime::<Utc>::MIN_UTC,
            updated_by: AccountId(1),
            accepted_count: 0,
        }
    }

    fn knowledge() -> Vec<KnowledgeEntry> {
        vec![
            entry(1, "垃圾清运时间是几点", None),
            entry(2, "如何办理居住证", None),
            entry(3, "停水什么时候恢复供水", Some("09")),
            entry(4, "社保卡丢了怎么补办", None),
            entry(5, "小孩上学积分入学怎么申请", None),
        ]
    }

    fn best(text: &str, category: &str) -> Option<i64> {
        MatchPolicy::default()
            .match_consultation(text, category, &knowledge())
            .offers
            .first()
            .map(|offer| offer.entry_id)
    }

    #[test]
    fn chinese_consultations_find_their_question() {
        assert_eq!(best("请问我们小区的垃圾一般几点清运？", "0101"), Some(1));
        assert_eq!(best("想问一下居住证在哪里办理，需要什么材料", ""), Some(2));
        assert_eq!(best("我家停水了，什么时候能恢复供水啊", "0901"), Some(3));
        assert_eq!(best("社保卡丢失了要怎么补办", ""), Some(4));
        assert_eq!(best("孩子明年上小学，积分入学在哪申请？", ""), Some(5));
    }

    #[test]
    fn unrelated_consultations_get_no_answer() {
        assert_eq!(best("小区停电了什么时候来电", ""), None);
        assert_eq!(best("楼下餐馆油烟太大，影响休息", ""), None);
        assert_eq!(best("请问", ""), None);
    }

    #[test]
    fn a_retired_entry_is_never_offered() {
        let mut entries = knowledge();
        entries[0].retired = true;
        let result = MatchPolicy::default().match_consultation("垃圾几点清运", "", &entries);
        assert!(result.offers.iter().all(|offer| offer.entry_id != 1));
    }

    #[test]
    fn the_category_lifts_a_borderline_match() {
        let text = "停水了，供水啥时候恢复";
        let plain = MatchPolicy::default().match_consultation(text, "", &knowledge());
        let in_category = MatchPolicy::default().match_consultation(text, "0901", &knowledge());
        let score = |r: &MatchResult| r.offers.iter().find(|o| o.entry_id == 3).map(|o| o.score);
        assert!(
            score(&in_category) > score(&plain),
            "{plain:?} {in_category:?}"
        );
    }

    #[test]
    fn similar_unanswered_consultations_group_together() {
        let items: Vec<Unanswered> = [
            (1, "台风过后小区树木倒伏什么时候清理"),
            (2, "路边大树被台风刮倒了挡住路，什么时候清理"),
            (3, "燃气费怎么网上缴纳"),
            (4, "台风刮倒的树木什么时候清理"),
        ]
        .into_iter()
        .map(|(id, text)| Unanswered {
            complaint_id: ComplaintId(id),
            text: text.to_owned(),
            category_code: "0105".to_owned(),
            best_score: 0.1,
        })
        .collect();
        let groups = MatchPolicy {
            group_similarity: 0.3,
            ..MatchPolicy::default()
        }
        .group_unanswered(&items);
        assert_eq!(groups.len(), 2, "{groups:?}");
        assert_eq!(groups[0].complaint_ids.len(), 3);
        assert_eq!(groups[1].sample_text, "燃气费怎么网上缴纳");
    }
}
