//! Probable duplicates: a new complaint that looks like an open one, by its
//! text, its place and its category. The result is a hint for the
//! dispatcher, who decides whether to merge; nothing is refused on it.
//!
//! Chinese is written without spaces, so texts are compared by their
//! overlapping pairs of characters (bigrams) rather than by words: "井盖丢失"
//! and "井盖不见了" share "井盖" without any dictionary.

use std::collections::HashSet;
use std::time::Duration;

use super::account::AccountId;
use super::complaint::{Complaint, ComplaintId, Location};

/// When two complaints count as one matter. Configuration, not code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicatePolicy {
    /// How far back open complaints are compared with a new one.
    pub window: Duration,
    /// Two reports closer than this are about the same place.
    pub radius_km: f64,
    /// At the same place, texts this similar are one matter even when filed
    /// under different categories.
    pub same_place_similarity: f64,
    /// Anywhere, texts this similar in one category (or from one citizen)
    /// are one matter.
    pub text_similarity: f64,
}

impl Default for DuplicatePolicy {
    fn default() -> Self {
        DuplicatePolicy {
            window: Duration::from_secs(72 * 3600),
            radius_km: 0.15,
            same_place_similarity: 0.3,
            text_similarity: 0.6,
        }
    }
}

/// What a new complaint is compared on.
#[derive(Debug, Clone, Copy)]
pub struct NewReport<'a> {
    pub citizen_id: AccountId,
    pub text: &'a str,
    pub category_code: &'a str,
    pub location: &'a Location,
}

/// The open complaint a new one most probably repeats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DuplicateHint {
    pub of: ComplaintId,
    /// Text similarity in [0, 1].
    pub similarity: f64,
}

impl DuplicatePolicy {
    /// The best match among `candidates` (open complaints filed within the
    /// window), or none. The most similar text wins; among equals, the
    /// newest complaint.
    pub fn probable_duplicate(
        &self,
        report: &NewReport<'_>,
        candidates: &[Complaint],
    ) -> Option<DuplicateHint> {
        let shingles = Shingles::of(report.text);
        let address = report.location.address.as_deref().map(normalize);
        candidates
            .iter()
            .filter_map(|candidate| {
                let similarity = shingles.similarity(&Shingles::of(&candidate.text));
                let same_category = candidate.category_code == report.category_code;
                let same_citizen = candidate.citizen_id == report.citizen_id;
                let same_place = self.same_place(report.location, &address, &candidate.location);
                let matches = (same_place
                    && (same_category || similarity >= self.same_place_similarity))
                    || ((same_category || same_citizen) && similarity >= self.text_similarity);
                matches.then_some(DuplicateHint {
                    of: candidate.id,
                    similarity,
                })
            })
            .max_by(|a, b| {
                a.similarity
                    .total_cmp(&b.similarity)
                    .then_with(|| a.of.0.cmp(&b.of.0))
            })
    }

    fn same_place(&self, location: &Location, address: &Option<String>, other: &Location) -> bool {
        let near = match (location.point, other.point) {
            (Some(a), Some(b)) => a.distance_km(b) <= self.radius_km,
            _ => false,
        };
        let same_address = address.is_some() && other.address.as_deref().map(normalize) == *address;
        near || same_address
    }
}

/// The set of character bigrams of a text, after normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shingles(HashSet<(char, char)>);

impl Shingles {
    pub fn of(text: &str) -> Shingles {
        let chars: Vec<char> = normalize(text).chars().collect();
        let pairs = match chars.len() {
            0 => HashSet::new(),
            // A one-character text still compares with itself.
            1 => HashSet::from([(chars[0], chars[0])]),
            _ => chars.windows(2).map(|pair| (pair[0], pair[1])).collect(),
        };
        Shingles(pairs)
    }

    /// The Dice coefficient: shared bigrams over the average count, in
    /// [0, 1]; two empty texts are not similar.
    pub fn similarity(&self, other: &Shingles) -> f64 {
        let total = self.0.len() + other.0.len();
        if total == 0 {
            return 0.0;
        }
        let shared = self.0.intersection(&other.0).count();
        2.0 * shared as f64 / total as f64
    }
}

/// Folds full-width letters and digits to ASCII, lower-cases, and drops
/// whitespace and punctuation (ASCII and CJK), so that "ＡＢ路，３号" and
/// "ab路3号" compare equal.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(fold_full_width)
        .filter(|c| !c.is_whitespace() && !is_punctuation(*c))
        .flat_map(char::to_lowercase)
        .collect()
}

fn fold_full_width(c: char) -> char {
    match c {
        // Full-width forms of the printable ASCII range.
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        '\u{3000}' => ' ',
        _ => c,
    }
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c,
            // CJK symbols and punctuation: 、。〈〉《》「」【】〔〕 and kin.
            '\u{3001}'..='\u{303F}'
            // General punctuation: dashes, quotes, ellipsis.
            | '\u{2010}'..='\u{205E}'
            // Full-width forms that have no ASCII twin, and the middle dot.
            | '\u{FF5F}'..='\u{FF65}' | '\u{00B7}' | '\u{FE30}'..='\u{FE4F}')
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::complaint::{Channel, ComplaintKind, ComplaintStatus};
    use crate::domain::geo::GeoPoint;

    fn similarity(a: &str, b: &str) -> f64 {
        Shingles::of(a).similarity(&Shingles::of(b))
    }

    fn location(address: &str, point: Option<(f64, f64)>) -> Location {
        Location {
            address: (!address.is_empty()).then(|| address.to_owned()),
            point: point.map(|(latitude, longitude)| GeoPoint {
                latitude,
                longitude,
            }),
        }
    }

    fn open(id: i64, citizen: i64, category: &str, text: &str, location: Location) -> Complaint {
        let at = Utc.with_ymd_and_hms(2026, 7, 1, 2, 0, 0).unwrap();
        Complaint {
            id: ComplaintId(id),
            citizen_id: AccountId(citizen),
            kind: ComplaintKind::Complaint,
            channel: Channel::MiniProgram,
            status: ComplaintStatus::Received,
            status_reason: None,
            text: text.to_owned(),
            category_code: category.to_owned(),
            location,
            contact_phone_masked: None,
            photo_ids: Vec::new(),
            created_at: at,
            updated_at: at,
            resolution_round: 0,
            rating: None,
            handling: Default::default(),
            last_sequence: 1,
            version: 1,
        }
    }

    #[test]
    fn the_same_matter_in_other_words_is_similar_and_another_matter_is_not() {
        let manhole = "六和路口井盖丢失，晚上很危险";
        let reworded = "六和路口的井盖不见了，非常危险！";
        let noise = "小区旁边工地夜间施工，噪音扰民";

        assert!(
            similarity(manhole, reworded) >= 0.3,
            "{}",
            similarity(manhole, reworded)
        );
        assert!(
            similarity(manhole, noise) < 0.1,
            "{}",
            similarity(manhole, noise)
        );
        assert_eq!(similarity(manhole, manhole), 1.0);
    }

    #[test]
    fn punctuation_spacing_and_full_width_forms_do_not_matter() {
        assert_eq!(normalize("ＡＢ路，３号 「东门」"), "ab路3号东门");
        assert_eq!(similarity("垃圾没人清理。", "垃圾 没人清理！！"), 1.0);
    }

    #[test]
    fn empty_texts_are_never_similar() {
        assert_eq!(similarity("", ""), 0.0);
        assert_eq!(similarity("。。。", "井盖"), 0.0);
    }

    #[test]
    fn a_report_near_an_open_one_in_its_category_is_a_duplicate_whatever_its_words() {
        let policy = DuplicatePolicy::default();
        let here = location("", Some((22.690, 114.345)));
        let earlier = open(7, 1, "010102", "坪山大道旁垃圾堆积", here.clone());
        let near = location("", Some((22.6903, 114.345)));
        let report = NewReport {
            citizen_id: AccountId(2),
            text: "路边有一堆垃圾",
            category_code: "010102",
            location: &near,
        };

        let hint = policy.probable_duplicate(&report, &[earlier]).unwrap();

        assert_eq!(hint.of, ComplaintId(7));
    }

    #[test]
    fn at_one_place_another_category_needs_similar_words() {
        let policy = DuplicatePolicy::default();
        let place = location("坪山街道六和路12号", None);
        let earlier = open(
            3,
            1,
            "010301",
            "六和路口井盖丢失，晚上很危险",
            place.clone(),
        );
        let similar = NewReport {
            citizen_id: AccountId(2),
            text: "六和路口的井盖不见了，非常危险",
            category_code: "010399",
            location: &place,
        };
        let unrelated = NewReport {
            text: "六和路12号店铺占道经营",
            ..similar
        };

        let found = policy.probable_duplicate(&similar, std::slice::from_ref(&earlier));
        let not_found = policy.probable_duplicate(&unrelated, &[earlier]);

        assert_eq!(found.map(|hint| hint.of), Some(ComplaintId(3)));
        assert_eq!(not_found, None);
    }

    #[test]
    fn the_same_citizen_repeating_a_text_elsewhere_is_a_duplicate() {
        let policy = DuplicatePolicy::default();
        let earlier = open(
            4,
            9,
            "020101",
            "我家楼下的烧烤店每天油烟很大，熏得没法开窗",
            location("", None),
        );
        let nowhere = location("", None);
        let repeat = NewReport {
            citizen_id: AccountId(9),
            text: "我家楼下烧烤店每天油烟很大，熏得不能开窗",
            category_code: "020199",
            location: &nowhere,
        };
        let someone_else = NewReport {
            citizen_id: AccountId(10),
            ..repeat
        };

        let found = policy.probable_duplicate(&repeat, std::slice::from_ref(&earlier));
        let other = policy.probable_duplicate(&someone_else, &[earlier]);

        assert_eq!(found.map(|hint| hint.of), Some(ComplaintId(4)));
        assert_eq!(other, None, "another category, no place, another author");
    }

    #[test]
    fn the_most_similar_candidate_wins() {
        let policy = DuplicatePolicy::default();
        let place = location("坪山大道1号", None);
        let loose = open(5, 1, "010102", "垃圾桶满了", place.clone());
        let close = open(
            6,
            1,
            "010102",
            "坪山大道垃圾堆了三天没人清理",
            place.clone(),
        );
        let report = NewReport {
            citizen_id: AccountId(2),
            text: "坪山大道的垃圾堆了三天，没人清理",
            category_code: "010102",
            location: &place,
        };

        let hint = policy.probable_duplicate(&report, &[close, loose]).unwrap();

        assert_eq!(hint.of, ComplaintId(6));
    }
}
