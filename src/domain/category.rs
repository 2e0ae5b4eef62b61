//! The classification standard (事件分级分类标准): a three-level category
//! tree whose leaves name the responsible unit type, the urgency and the
//! handling time limit. It is data, loaded from a JSON file that an operator
//! can replace; the bundled default is Pingshan's.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::FieldViolation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLimitUnit {
    /// Clock hours, nights and rest days included.
    Hours,
    /// Hours inside office hours on working days.
    WorkingHours,
    /// Working days on the official holiday calendar.
    WorkingDays,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLimit {
    pub value: u32,
    pub unit: TimeLimitUnit,
    /// True when the limit is a default the operator inferred rather than a
    /// published rule.
    pub inferred: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    Normal,
    Urgent,
}

impl Urgency {
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Normal => "normal",
            Urgency::Urgent => "urgent",
        }
    }

    pub fn parse(text: &str) -> Option<Urgency> {
        match text {
            "normal" => Some(Urgency::Normal),
            "urgent" => Some(Urgency::Urgent),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Category {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
    pub level: u32,
    pub responsible_unit: Option<String>,
    pub time_limit: Option<TimeLimit>,
    pub urgency: Option<Urgency>,
    /// An emergency line that takes this matter instead of the district.
    pub redirect_to: Option<String>,
    pub children: Vec<Category>,
}

impl Category {
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

/// The loaded standard, with an index from code to category.
#[derive(Debug, Clone)]
pub struct CategoryStandard {
    roots: Vec<Category>,
    /// Code → path of child indexes from the roots.
    index: HashMap<String, Vec<usize>>,
    version: String,
}

impl CategoryStandard {
    /// The standard shipped with the server.
    pub fn bundled() -> CategoryStandard {
        Self::from_json(include_str!("../../reference/complaint-categories.json"))
            .expect("the bundled category standard is valid")
    }

    pub fn from_json(text: &str) -> anyhow::Result<CategoryStandard> {
        let file: FileFormat =
            serde_json::from_str(text).context("Failed to parse the category standard")?;
        let roots = file
            .categories
            .into_iter()
            .map(|node| node.into_category(1))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let mut index = HashMap::new();
        for (i, root) in roots.iter().enumerate() {
            index_subtree(root, vec![i], &mut index)?;
        }

        let digest = Sha256::digest(text.as_bytes());
        let version = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        Ok(CategoryStandard {
            roots,
            index,
            version,
        })
    }

    pub fn roots(&self) -> &[Category] {
        &self.roots
    }

    /// A short digest of the file, so that clients can cache the tree.
    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn get(&self, code: &str) -> Option<&Category> {
        let path = self.index.get(code)?;
        let (first, rest) = path.split_first()?;
        let mut node = &self.roots[*first];
        for i in rest {
            node = &node.children[*i];
        }
        Some(node)
    }

    /// The leaf a complaint may be filed under.
    pub fn fileable_leaf(&self, field: &str, code: &str) -> Result<&Category, FieldViolation> {
        let Some(category) = self.get(code) else {
            return Err(FieldViolation::new(field, "no category has this code"));
        };
        if !category.is_leaf() {
            return Err(FieldViolation::new(
                field,
                "choose a leaf category (level 3), not a group",
            ));
        }
        if let Some(line) = &category.redirect_to {
            return Err(FieldViolation::new(
                field,
                format!("this matter is handled by the emergency line {line}; please call it"),
            ));
        }
        Ok(category)
    }
}

fn index_subtree(
    node: &Category,
    path: Vec<usize>,
    index: &mut HashMap<String, Vec<usize>>,
) -> anyhow::Result<()> {
    for (i, child) in node.children.iter().enumerate() {
        let mut child_path = path.clone();
        child_path.push(i);
        index_subtree(child, child_path, index)?;
    }
    if index.insert(node.code.clone(), path).is_some() {
        bail!("category code {} appears twice", node.code);
    }
    Ok(())
}

/// The file's shape; only the fields the server uses are read.
#[derive(Deserialize)]
struct FileFormat {
    categories: Vec<FileNode>,
}

#[derive(Deserialize)]
struct FileNode {
    code: String,
    name_zh: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    children: Vec<FileNode>,
    responsible_unit: Option<String>,
    time_limit: Option<FileTimeLimit>,
    urgency: Option<String>,
}

#[derive(Deserialize)]
struct FileTimeLimit {
    value: Option<u32>,
    unit: Option<String>,
    #[serde(default)]
    inferred: bool,
    redirect: Option<String>,
}

impl FileNode {
    fn into_category(self, level: u32) -> anyhow::Result<Category> {
        if level > 3 {
            bail!("category {} is nested deeper than three levels", self.code);
        }
        let children = self
            .children
            .into_iter()
            .map(|child| child.into_category(level + 1))
            .collect::<anyhow::Result<Vec<_>>>()?;

        let urgency = match self.urgency.as_deref() {
            None => None,
            Some(text) => match Urgency::parse(text) {
                Some(urgency) => Some(urgency),
                None => bail!("category {}: unknown urgency {text:?}", self.code),
            },
        };
        let redirect_to = self.time_limit.as_ref().and_then(|t| t.redirect.clone());
        let time_limit = match self.time_limit {
            Some(limit) => parse_limit(&self.code, limit)?,
            None => None,
        };
        if children.is_empty() && time_limit.is_none() && redirect_to.is_none() {
            bail!(
                "leaf category {} has neither a time limit nor a redirect",
                self.code
            );
        }

        Ok(Category {
            code: self.code,
            name_zh: self.name_zh,
            name_en: self.name_en,
            level,
            responsible_unit: self.responsible_unit,
            time_limit,
            urgency,
            redirect_to,
            children,
        })
    }
}

fn parse_limit(code: &str, limit: FileTimeLimit) -> anyhow::Result<Option<TimeLimit>> {
    let (Some(value), Some(unit)) = (limit.value, limit.unit.as_deref()) else {
        return Ok(None);
    };
    let unit = match unit {
        "hours" => TimeLimitUnit::Hours,
        "working_hours" => TimeLimitUnit::WorkingHours,
        "working_days" => TimeLimitUnit::WorkingDays,
        other => bail!("category {code}: unknown time limit unit {other:?}"),
    };
    if value == 0 {
        bail!("category {code}: a time limit of zero");
    }
    Ok(Some(TimeLimit {
        value,
        unit,
        inferred: limit.inferred,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_standard_has_the_documented_shape() {
        let standard = CategoryStandard::bundled();
        let count = |level| {
            standard
                .index
                .keys()
                .filter(|c| standard.get(c).unwrap().level == level)
                .count()
        };
        assert_eq!(standard.roots().len(), 14);
        assert_eq!(count(2), 74);
        assert_eq!(count(3), 251);
    }

    #[test]
    fn a_leaf_carries_its_unit_and_limit() {
        let standard = CategoryStandard::bundled();
        let leaf = standard.fileable_leaf("c", "010102").unwrap();
        assert_eq!(leaf.responsible_unit.as_deref(), Some("sd_municipal"));
        assert_eq!(
            leaf.time_limit,
            Some(TimeLimit {
                value: 4,
                unit: TimeLimitUnit::WorkingDays,
                inferred: false
            })
        );
    }

    #[test]
    fn groups_unknown_codes_and_emergency_matters_cannot_be_filed() {
        let standard = CategoryStandard::bundled();
        assert!(standard.fileable_leaf("c", "0101").is_err());
        assert!(standard.fileable_leaf("c", "999999").is_err());
        let redirect = standard.fileable_leaf("c", "050207").unwrap_err();
        assert!(redirect.reason.contains("122"));
    }

    #[test]
    fn a_duplicated_code_is_refused() {
        let leaf = r#"{"code":"0101","name_zh":"x","time_limit":{"value":1,"unit":"hours"}}"#;
        let text = format!(
            r#"{{"categories":[{{"code":"01","name_zh":"a","children":[{leaf}]}},
                {{"code":"02","name_zh":"b","children":[{leaf}]}}]}}"#
        );
        let error = CategoryStandard::from_json(&text).unwrap_err();
        assert!(error.to_string().contains("0101 appears twice"));
    }
}
