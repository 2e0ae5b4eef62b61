//! The organisation cases are dispatched through ("1+6+N"): one district
//! centre, six subdistricts with their offices and communities, and the
//! departments, utilities and contractors that handle appeals. It is data:
//! the bundled default is read from Pingshan's directory file, and an
//! operator's units, kept as rows, are rebuilt with `Directory::from_units`.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// The district appeal dispatch centre (区民生诉求分拨中心), root of the tree.
    Centre,
    /// Takes what no unit owns (兜底处置).
    Fallback,
    Subdistrict,
    /// An office inside a subdistrict, such as its law-enforcement team.
    SubdistrictOffice,
    Community,
    /// A district bureau or a municipal bureau's Pingshan branch.
    Department,
    Utility,
    /// A third party engaged for rapid handling.
    Contractor,
}

impl UnitKind {
    const ALL: [UnitKind; 8] = [
        UnitKind::Centre,
        UnitKind::Fallback,
        UnitKind::Subdistrict,
        UnitKind::SubdistrictOffice,
        UnitKind::Community,
        UnitKind::Department,
        UnitKind::Utility,
        UnitKind::Contractor,
    ];

    /// The stored name; changing one breaks rows already in a database.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitKind::Centre => "centre",
            UnitKind::Fallback => "fallback",
            UnitKind::Subdistrict => "subdistrict",
            UnitKind::SubdistrictOffice => "subdistrict_office",
            UnitKind::Community => "community",
            UnitKind::Department => "department",
            UnitKind::Utility => "utility",
            UnitKind::Contractor => "contractor",
        }
    }

    pub fn parse(text: &str) -> Option<UnitKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub id: String,
    pub kind: UnitKind,
    pub name_zh: String,
    pub name_en: String,
    /// The unit a case escalates to; only the centre has none.
    pub parent_id: Option<String>,
}

/// A validated tree of units: one centre at the root, every other unit
/// reaching it through its parents.
#[derive(Debug, Clone)]
pub struct Directory {
    units: Vec<Unit>,
    /// Id → position in `units`.
    index: HashMap<String, usize>,
    centre: usize,
    fallback: usize,
}

const CENTRE_ID: &str = "centre";
const FALLBACK_ID: &str = "fallback";
const MAX_ID_CHARS: usize = 64;

/// The department that runs the dispatch centre. It becomes the centre
/// rather than a department, so that nothing is dispatched to it twice over.
const HUB_DEPARTMENT: &str = "ps_gov_data";

/// A kind of subdistrict office that categories name as `sd_<key>`.
struct OfficeType {
    key: &'static str,
    /// Short names under which the directory file lists the office; the
    /// 2019 street-office reform renamed some, so both forms are accepted.
    names: &'static [&'static str],
}

const OFFICE_TYPES: [OfficeType; 5] = [
    OfficeType {
        key: "enforcement",
        names: &["综合执法队"],
    },
    OfficeType {
        key: "municipal",
        names: &["市政服务中心"],
    },
    OfficeType {
        key: "construction",
        names: &["城建办"],
    },
    OfficeType {
        key: "labour",
        names: &["劳动办", "公共服务办"],
    },
    OfficeType {
        key: "safety",
        names: &["安监办", "消安委办"],
    },
];

/// Utilities in the file carry no key, so each is recognised by a kind of
/// appeal that only it handles.
const UTILITY_MARKERS: [(&str, &str); 5] = [
    ("water", "停水"),
    ("power", "停电"),
    ("telecom", "通信"),
    ("cable_tv", "有线电视"),
    ("gas", "燃气"),
];

/// The utilities that categories dispatch to, named as the category standard
/// names them. One stands in when the directory file lacks it, so that such
/// a category reaches a unit an operator can staff rather than the fallback.
// TODO(directory): the bundled file lists no gas supplier, so `utility:gas`
// is this placeholder until someone checks which company supplies Pingshan.
const CATEGORY_UTILITIES: [(&str, &str, &str); 4] = [
    ("water", "供水企业", "water supply company"),
    (
        "power",
        "深圳供电局坪山供电局",
        "Shenzhen Power Supply Bureau, Pingshan branch",
    ),
    ("telecom", "通信运营商", "telecom operators"),
    ("gas", "燃气企业", "gas supplier"),
];

impl Directory {
    /// The directory shipped with the server.
    pub fn bundled() -> Directory {
        Self::from_json(include_str!("../../reference/pingshan-directory.json"))
            .expect("the bundled Pingshan directory is valid")
    }

    pub fn from_json(text: &str) -> anyhow::Result<Directory> {
        let file: FileFormat =
            serde_json::from_str(text).context("Failed to parse the directory")?;
        let units = file
            .into_units()
            .context("Failed to read units from the directory")?;
        Self::from_units(units)
    }

    pub fn from_units(units: Vec<Unit>) -> anyhow::Result<Directory> {
        let index = index_units(&units)?;
        let centre = the_only(&units, UnitKind::Centre)?;
        let fallback = the_only(&units, UnitKind::Fallback)?;
        check_parents(&units, &index)?;
        check_no_cycles(&units, &index)?;

        Ok(Directory {
            units,
            index,
            centre,
            fallback,
        })
    }

    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    pub fn get(&self, id: &str) -> Option<&Unit> {
        self.index.get(id).map(|&i| &self.units[i])
    }

    pub fn centre(&self) -> &Unit {
        &self.units[self.centre]
    }

    pub fn fallback(&self) -> &Unit {
        &self.units[self.fallback]
    }

    pub fn children(&self, id: &str) -> Vec<&Unit> {
        self.units
            .iter()
            .filter(|unit| unit.parent_id.as_deref() == Some(id))
            .collect()
    }

    /// The unit one level up, for escalation (逐级催办): office/community →
    /// subdistrict → centre; department → centre; centre → None.
    pub fn parent(&self, id: &str) -> Option<&Unit> {
        self.get(self.get(id)?.parent_id.as_deref()?)
    }

    /// True when `unit` is `ancestor` or lies below it (a supervisor's scope).
    pub fn is_within(&self, unit: &str, ancestor: &str) -> bool {
        self.lineage(unit).any(|unit| unit.id == ancestor)
    }

    /// The subdistrict a unit belongs to (itself for a subdistrict), if any.
    pub fn subdistrict_of(&self, id: &str) -> Option<&Unit> {
        self.lineage(id)
            .find(|unit| unit.kind == UnitKind::Subdistrict)
    }

    /// Concrete units a category's `responsible_unit` can mean: "dept:X" →
    /// that department; "utility:X" → that utility; "sd_municipal" etc. →
    /// that office in each of the six subdistricts; "community" → every
    /// community; "hub" → the centre; anything unknown (e.g.
    /// "other:housing_fund") → the fallback unit. Never empty.
    pub fn responsible_candidates(&self, responsible_unit: &str) -> Vec<&Unit> {
        let candidates = match responsible_unit {
            "hub" => vec![self.centre()],
            "community" => self.of_kind(UnitKind::Community).collect(),
            other => match other.strip_prefix("sd_") {
                Some(office_type) => self.offices_of_type(office_type),
                None => self.get(other).into_iter().collect(),
            },
        };

        if candidates.is_empty() {
            vec![self.fallback()]
        } else {
            candidates
        }
    }

    /// The unit itself, then each unit above it up to the centre. Validation
    /// ruled out cycles, so this ends.
    fn lineage(&self, id: &str) -> impl Iterator<Item = &Unit> {
        std::iter::successors(self.get(id), |unit| self.parent(&unit.id))
    }

    fn of_kind(&self, kind: UnitKind) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(move |unit| unit.kind == kind)
    }

    /// Offices are told apart by their id, `sd:<subdistrict>/<type>`, which
    /// survives a round trip through the database where nothing else would.
    fn offices_of_type(&self, office_type: &str) -> Vec<&Unit> {
        self.of_kind(UnitKind::SubdistrictOffice)
            .filter(|unit| {
                unit.id
                    .rsplit_once('/')
                    .is_some_and(|(_, key)| key == office_type)
            })
            .collect()
    }
}

fn index_units(units: &[Unit]) -> anyhow::Result<HashMap<String, usize>> {
    let mut index = HashMap::with_capacity(units.len());
    for (i, unit) in units.iter().enumerate() {
        if !is_valid_id(&unit.id) {
            bail!(
                "unit id {:?} is not 1 to {MAX_ID_CHARS} of a-z 0-9 : / _ -",
                unit.id
            );
        }
        if index.insert(unit.id.clone(), i).is_some() {
            bail!("unit id {} appears twice", unit.id);
        }
    }
    Ok(index)
}

/// Ids go into URLs, logs and database keys, so they stay short and plain.
fn is_valid_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ":/_-".contains(c);
    (1..=MAX_ID_CHARS).contains(&id.len()) && id.chars().all(allowed)
}

fn the_only(units: &[Unit], kind: UnitKind) -> anyhow::Result<usize> {
    let mut found = units
        .iter()
        .enumerate()
        .filter(|(_, unit)| unit.kind == kind);
    match (found.next(), found.next()) {
        (Some((i, _)), None) => Ok(i),
        (None, _) => bail!("the directory has no {} unit", kind.as_str()),
        (Some(_), Some(_)) => bail!("the directory has more than one {} unit", kind.as_str()),
    }
}

fn check_parents(units: &[Unit], index: &HashMap<String, usize>) -> anyhow::Result<()> {
    for unit in units {
        match (unit.kind, unit.parent_id.as_deref()) {
            (UnitKind::Centre, None) => {}
            (UnitKind::Centre, Some(_)) => bail!("the centre {} cannot have a parent", unit.id),
            (_, None) => bail!("unit {} has no parent", unit.id),
            (_, Some(parent)) if !index.contains_key(parent) => {
                bail!(
                    "unit {} names parent {parent}, which does not exist",
                    unit.id
                )
            }
            (_, Some(_)) => {}
        }
    }
    Ok(())
}

/// Every parent exists and only the centre has none, so a unit either
/// reaches the centre within `units.len()` steps or sits on a cycle.
fn check_no_cycles(units: &[Unit], index: &HashMap<String, usize>) -> anyhow::Result<()> {
    for unit in units {
        let mut current = unit;
        let mut steps = 0;
        while let Some(parent) = current.parent_id.as_deref() {
            steps += 1;
            if steps > units.len() {
                bail!("unit {} lies on a cycle of parents", unit.id);
            }
            // check_parents has run, so the parent is always found.
            let Some(&at) = index.get(parent) else { break };
            current = &units[at];
        }
    }
    Ok(())
}

fn child_of(parent: &str, id: String, kind: UnitKind, name_zh: &str, name_en: &str) -> Unit {
    Unit {
        id,
        kind,
        name_zh: name_zh.to_string(),
        name_en: name_en.to_string(),
        parent_id: Some(parent.to_string()),
    }
}

/// "Kengzi Subdistrict" → "kengzi": the id part of an English name.
fn slug(name_en: &str, suffix: &str) -> String {
    let name = name_en.trim();
    let stem = name.strip_suffix(suffix).unwrap_or(name).trim();
    stem.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join("-")
}

/// Drops a bracketed note such as "(2018: …)" or "（城建办公室）".
fn without_note(name: &str) -> &str {
    name.find(['(', '（']).map_or(name, |at| &name[..at]).trim()
}

/// The file's shape; only the fields the server uses are read.
#[derive(Deserialize)]
struct FileFormat {
    subdistricts: Vec<FileSubdistrict>,
    departments: Vec<FileDepartment>,
    utilities: Vec<FileUtility>,
    subdistrict_units_2018: FileOfficeList,
    /// Absent from the bundled file, which names no contractor.
    #[serde(default)]
    contractors: Vec<FileContractor>,
}

#[derive(Deserialize)]
struct FileSubdistrict {
    name_zh: String,
    name_en: String,
    communities: Vec<FileCommunity>,
}

#[derive(Deserialize)]
struct FileCommunity {
    name_zh: String,
    name_en: String,
    subdistrict_zh: Option<String>,
}

#[derive(Deserialize)]
struct FileDepartment {
    id: String,
    name_zh: String,
    name_en: String,
}

#[derive(Deserialize)]
struct FileUtility {
    /// Lets an operator name a utility whose appeals no marker recognises.
    key: Option<String>,
    name_zh: String,
    name_en: String,
    #[serde(default)]
    handles: Vec<String>,
}

#[derive(Deserialize)]
struct FileOfficeList {
    units: Vec<FileOffice>,
}

#[derive(Deserialize)]
struct FileOffice {
    name_zh: String,
    name_en: String,
}

#[derive(Deserialize)]
struct FileContractor {
    key: String,
    name_zh: String,
    name_en: String,
}

/// An office type with the names the file gives it, before it is placed
/// in a subdistrict.
struct OfficeName {
    key: &'static str,
    name_zh: String,
    name_en: String,
}

impl FileFormat {
    fn into_units(self) -> anyhow::Result<Vec<Unit>> {
        let mut units = vec![self.centre()?, fallback_unit()];

        let offices = office_names(&self.subdistrict_units_2018.units)?;
        for subdistrict in &self.subdistricts {
            units.extend(subdistrict.units(&offices)?);
        }

        let departments = self.departments.iter();
        units.extend(
            departments
                .filter(|department| department.id != HUB_DEPARTMENT)
                .map(FileDepartment::unit),
        );
        units.extend(utility_units(&self.utilities)?);
        units.extend(self.contractors.iter().map(FileContractor::unit));
        Ok(units)
    }

    fn centre(&self) -> anyhow::Result<Unit> {
        let Some(hub) = self.departments.iter().find(|d| d.id == HUB_DEPARTMENT) else {
            bail!("no department {HUB_DEPARTMENT}, which runs the dispatch centre");
        };
        Ok(Unit {
            id: CENTRE_ID.to_string(),
            kind: UnitKind::Centre,
            name_zh: hub.name_zh.clone(),
            name_en: hub.name_en.clone(),
            parent_id: None,
        })
    }
}

fn fallback_unit() -> Unit {
    let id = FALLBACK_ID.to_string();
    let (zh, en) = ("兜底处置单位", "Fallback handling unit");
    child_of(CENTRE_ID, id, UnitKind::Fallback, zh, en)
}

/// Finds each office type among the units the file lists inside a
/// subdistrict; the others on that list are not dispatched to by category.
fn office_names(listed: &[FileOffice]) -> anyhow::Result<Vec<OfficeName>> {
    OFFICE_TYPES
        .iter()
        .map(|office_type| {
            let Some(office) = listed.iter().find(|office| {
                short_names(&office.name_zh).any(|name| office_type.names.contains(&name))
            }) else {
                bail!(
                    "no subdistrict unit is named {}",
                    office_type.names.join(" or ")
                );
            };
            Ok(OfficeName {
                key: office_type.key,
                name_zh: display_name(&office.name_zh),
                name_en: office.name_en.clone(),
            })
        })
        .collect()
}

/// "劳动办 / 劳动管理办公室 / 公共服务办" → "劳动办", "劳动管理办公室", "公共服务办".
fn short_names(name_zh: &str) -> impl Iterator<Item = &str> {
    name_zh
        .split('/')
        .map(without_note)
        .filter(|name| !name.is_empty())
}

/// Keeps the short forms and drops those spelled out as "…办公室", which
/// gives the names the category standard uses ("劳动办/公共服务办").
fn display_name(name_zh: &str) -> String {
    let short: Vec<&str> = short_names(name_zh)
        .filter(|name| !name.ends_with("办公室"))
        .collect();
    if short.is_empty() {
        short_names(name_zh).collect::<Vec<_>>().join("/")
    } else {
        short.join("/")
    }
}

impl FileSubdistrict {
    /// The subdistrict, its category offices and its communities.
    fn units(&self, offices: &[OfficeName]) -> anyhow::Result<Vec<Unit>> {
        let id = format!("sd:{}", slug(&self.name_en, "Subdistrict"));
        let kind = UnitKind::Subdistrict;
        let subdistrict = child_of(CENTRE_ID, id.clone(), kind, &self.name_zh, &self.name_en);
        let mut units = vec![subdistrict];

        units.extend(offices.iter().map(|office| self.office(&id, office)));
        for community in &self.communities {
            units.push(self.community(&id, community)?);
        }
        Ok(units)
    }

    fn office(&self, subdistrict_id: &str, office: &OfficeName) -> Unit {
        let id = format!("{subdistrict_id}/{}", office.key);
        let name_zh = format!("{}{}", self.name_zh, office.name_zh);
        // "subdistrict municipal services centre" → "Kengzi Subdistrict municipal …"
        let generic = office.name_en.strip_prefix("subdistrict ");
        let name_en = format!("{} {}", self.name_en, generic.unwrap_or(&office.name_en));
        let kind = UnitKind::SubdistrictOffice;
        child_of(subdistrict_id, id, kind, &name_zh, &name_en)
    }

    /// A community's own subdistrict field must agree with where it is
    /// nested, or a hand edit has left the file contradicting itself.
    fn community(&self, subdistrict_id: &str, community: &FileCommunity) -> anyhow::Result<Unit> {
        if let Some(stated) = &community.subdistrict_zh
            && *stated != self.name_zh
        {
            bail!(
                "community {} is listed under {} but says it belongs to {stated}",
                community.name_zh,
                self.name_zh
            );
        }
        let id = format!("cm:{}", slug(&community.name_en, "Community"));
        let (zh, en) = (&community.name_zh, &community.name_en);
        Ok(child_of(subdistrict_id, id, UnitKind::Community, zh, en))
    }
}

impl FileDepartment {
    fn unit(&self) -> Unit {
        let id = format!("dept:{}", self.id);
        let kind = UnitKind::Department;
        child_of(CENTRE_ID, id, kind, &self.name_zh, &self.name_en)
    }
}

impl FileContractor {
    fn unit(&self) -> Unit {
        let id = format!("contractor:{}", self.key);
        let kind = UnitKind::Contractor;
        child_of(CENTRE_ID, id, kind, &self.name_zh, &self.name_en)
    }
}

impl FileUtility {
    fn key(&self) -> anyhow::Result<&str> {
        if let Some(key) = &self.key {
            return Ok(key);
        }
        let handles = |marker: &str| self.handles.iter().any(|item| item.contains(marker));
        match UTILITY_MARKERS.iter().find(|(_, marker)| handles(marker)) {
            Some((key, _)) => Ok(key),
            None => bail!(
                "utility {} handles nothing that identifies it; give it a \"key\"",
                self.name_zh
            ),
        }
    }

    fn unit(&self) -> anyhow::Result<Unit> {
        let id = format!("utility:{}", self.key()?);
        let (kind, name_zh) = (UnitKind::Utility, without_note(&self.name_zh));
        Ok(child_of(CENTRE_ID, id, kind, name_zh, &self.name_en))
    }
}

fn utility_units(listed: &[FileUtility]) -> anyhow::Result<Vec<Unit>> {
    let mut units = listed
        .iter()
        .map(FileUtility::unit)
        .collect::<anyhow::Result<Vec<_>>>()?;

    for (key, name_zh, name_en) in CATEGORY_UTILITIES {
        let id = format!("utility:{key}");
        if !units.iter().any(|unit| unit.id == id) {
            units.push(child_of(CENTRE_ID, id, UnitKind::Utility, name_zh, name_en));
        }
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    const DIRECTORY_FILE: &str = include_str!("../../reference/pingshan-directory.json");
    const CATEGORY_FILE: &str = include_str!("../../reference/complaint-categories.json");

    fn count(directory: &Directory, kind: UnitKind) -> usize {
        directory.of_kind(kind).count()
    }

    fn ids(units: &[&Unit]) -> Vec<String> {
        units.iter().map(|unit| unit.id.clone()).collect()
    }

    fn unit(id: &str, kind: UnitKind, parent: Option<&str>) -> Unit {
        Unit {
            id: id.to_string(),
            kind,
            name_zh: id.to_string(),
            name_en: id.to_string(),
            parent_id: parent.map(str::to_string),
        }
    }

    /// The smallest valid directory: a centre, its fallback and one branch.
    fn minimal_units() -> Vec<Unit> {
        vec![
            unit("centre", UnitKind::Centre, None),
            unit("fallback", UnitKind::Fallback, Some("centre")),
            unit("sd:a", UnitKind::Subdistrict, Some("centre")),
            unit("cm:b", UnitKind::Community, Some("sd:a")),
        ]
    }

    fn leaf_responsible_units(node: &Value, found: &mut BTreeSet<String>) {
        match node["children"].as_array() {
            Some(children) if !children.is_empty() => {
                for child in children {
                    leaf_responsible_units(child, found);
                }
            }
            _ => {
                let unit = node["responsible_unit"].as_str();
                found.insert(unit.expect("every leaf names a unit").to_string());
            }
        }
    }

    #[test]
    fn the_bundled_directory_has_the_documented_shape() {
        let directory = Directory::bundled();

        assert_eq!(count(&directory, UnitKind::Centre), 1);
        assert_eq!(count(&directory, UnitKind::Fallback), 1);
        assert_eq!(count(&directory, UnitKind::Subdistrict), 6);
        assert_eq!(count(&directory, UnitKind::SubdistrictOffice), 30);
        assert_eq!(count(&directory, UnitKind::Community), 23);
        assert_eq!(count(&directory, UnitKind::Department), 19);
        assert_eq!(count(&directory, UnitKind::Utility), 5);
        assert_eq!(count(&directory, UnitKind::Contractor), 0);
        assert_eq!(directory.units().len(), 85);
    }

    #[test]
    fn the_hub_department_is_the_centre_and_not_a_department() {
        let directory = Directory::bundled();

        assert_eq!(directory.centre().id, "centre");
        assert_eq!(directory.centre().name_zh, "坪山区政务服务数据管理局");
        assert!(directory.get("dept:ps_gov_data").is_none());
        assert_eq!(directory.fallback().parent_id.as_deref(), Some("centre"));
    }

    #[test]
    fn subdistricts_and_offices_are_named_from_the_file() {
        let directory = Directory::bundled();
        let subdistricts = [
            "pingshan", "maluan", "biling", "shijing", "kengzi", "longtian",
        ];
        for subdistrict in subdistricts {
            let id = format!("sd:{subdistrict}");
            assert_eq!(
                directory.get(&id).map(|u| u.kind),
                Some(UnitKind::Subdistrict)
            );
        }

        let office = directory
            .get("sd:kengzi/labour")
            .expect("Kengzi has a labour office");
        assert_eq!(office.name_zh, "坑梓街道劳动办/公共服务办");
        assert_eq!(
            office.name_en,
            "Kengzi Subdistrict labour / public service office"
        );
        let construction = directory
            .get("sd:pingshan/construction")
            .expect("an office");
        assert_eq!(construction.name_zh, "坪山街道城建办");
    }

    #[test]
    fn each_community_sits_under_the_subdistrict_the_file_places_it_in() {
        let directory = Directory::bundled();
        let file: Value = serde_json::from_str(DIRECTORY_FILE).expect("the file is JSON");

        for subdistrict in file["subdistricts"].as_array().expect("a list") {
            for community in subdistrict["communities"].as_array().expect("a list") {
                let unit = directory
                    .of_kind(UnitKind::Community)
                    .find(|unit| unit.name_zh == community["name_zh"])
                    .expect("every community in the file is a unit");
                let parent = directory
                    .parent(&unit.id)
                    .expect("a community has a parent");
                assert_eq!(parent.name_zh, subdistrict["name_zh"], "{}", unit.name_zh);
            }
        }

        // Both placements rest on registered addresses.
        let shatian = directory.get("cm:shatian").expect("沙田社区 is listed");
        assert_eq!(shatian.name_zh, "沙田社区");
        assert_eq!(
            directory.subdistrict_of("cm:shatian").map(|u| &*u.name_zh),
            Some("坑梓街道")
        );
        let shahu = directory.get("cm:shahu").expect("沙湖社区 is listed");
        assert_eq!(shahu.name_zh, "沙湖社区");
        assert_eq!(
            directory.subdistrict_of("cm:shahu").map(|u| &*u.name_zh),
            Some("碧岭街道")
        );
    }

    #[test]
    fn every_responsible_unit_in_the_category_standard_resolves() {
        let directory = Directory::bundled();
        let standard: Value = serde_json::from_str(CATEGORY_FILE).expect("the file is JSON");
        let mut used = BTreeSet::new();
        for root in standard["categories"].as_array().expect("a list") {
            leaf_responsible_units(root, &mut used);
        }
        assert!(
            used.len() > 20,
            "only {} distinct units were found",
            used.len()
        );

        for responsible in &used {
            let candidates = directory.responsible_candidates(responsible);
            assert!(!candidates.is_empty(), "{responsible} resolves to nothing");
            if responsible.starts_with("dept:") || responsible.starts_with("utility:") {
                assert_eq!(ids(&candidates), [responsible.as_str()]);
            }
        }
    }

    #[test]
    fn unit_types_resolve_to_the_units_of_that_type() {
        let directory = Directory::bundled();

        let municipal = directory.responsible_candidates("sd_municipal");
        assert_eq!(municipal.len(), 6);
        assert!(
            municipal
                .iter()
                .all(|u| u.kind == UnitKind::SubdistrictOffice)
        );
        assert!(municipal.iter().all(|u| u.id.ends_with("/municipal")));
        let subdistricts: BTreeSet<_> = municipal
            .iter()
            .map(|u| directory.subdistrict_of(&u.id).map(|s| s.id.clone()))
            .collect();
        assert_eq!(subdistricts.len(), 6);

        assert_eq!(directory.responsible_candidates("community").len(), 23);
        assert_eq!(ids(&directory.responsible_candidates("hub")), ["centre"]);
        assert_eq!(
            ids(&directory.responsible_candidates("utility:gas")),
            ["utility:gas"]
        );
    }

    #[test]
    fn unknown_responsible_units_go_to_the_fallback() {
        let directory = Directory::bundled();

        for unknown in [
            "other:housing_fund",
            "redirect:110_119_120_122",
            "sd_nowhere",
            "",
        ] {
            let candidates = directory.responsible_candidates(unknown);
            assert_eq!(ids(&candidates), ["fallback"], "{unknown:?}");
        }
    }

    #[test]
    fn escalation_climbs_from_an_office_to_the_centre() {
        let directory = Directory::bundled();

        let subdistrict = directory.parent("sd:kengzi/municipal").expect("a parent");
        assert_eq!(subdistrict.id, "sd:kengzi");
        let centre = directory.parent(&subdistrict.id).expect("a parent");
        assert_eq!(centre.id, "centre");
        assert!(directory.parent(&centre.id).is_none());
        assert_eq!(
            directory.parent("dept:ps_housing").map(|u| &*u.id),
            Some("centre")
        );
    }

    #[test]
    fn a_supervisor_sees_only_units_within_their_scope() {
        let directory = Directory::bundled();

        assert!(directory.is_within("sd:kengzi/municipal", "sd:kengzi"));
        assert!(directory.is_within("sd:kengzi/municipal", "centre"));
        assert!(directory.is_within("sd:kengzi", "sd:kengzi"));
        assert!(directory.is_within("cm:shatian", "sd:kengzi"));
        assert!(!directory.is_within("sd:kengzi/municipal", "sd:pingshan"));
        assert!(!directory.is_within("sd:kengzi", "sd:kengzi/municipal"));
        assert!(!directory.is_within("dept:ps_housing", "sd:kengzi"));
        assert!(!directory.is_within("no-such-unit", "centre"));
    }

    #[test]
    fn children_and_subdistricts_follow_the_tree() {
        let directory = Directory::bundled();

        let children = directory.children("sd:kengzi");
        assert_eq!(children.len(), 5 + 4);
        assert!(
            children
                .iter()
                .all(|u| u.parent_id.as_deref() == Some("sd:kengzi"))
        );
        assert_eq!(
            directory.subdistrict_of("sd:maluan").map(|u| &*u.id),
            Some("sd:maluan")
        );
        assert!(directory.subdistrict_of("dept:ps_hr").is_none());
        assert!(directory.subdistrict_of("centre").is_none());
    }

    #[test]
    fn units_rebuilt_from_rows_give_the_same_directory() {
        let bundled = Directory::bundled();

        let rebuilt = Directory::from_units(bundled.units().to_vec()).expect("valid rows");
        assert_eq!(rebuilt.units(), bundled.units());
        assert_eq!(rebuilt.responsible_candidates("sd_safety").len(), 6);
    }

    #[test]
    fn kinds_round_trip_through_their_stored_names() {
        for kind in UnitKind::ALL {
            assert_eq!(UnitKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(
            UnitKind::parse("subdistrict_office"),
            Some(UnitKind::SubdistrictOffice)
        );
        assert_eq!(UnitKind::parse("Centre"), None);
    }

    #[test]
    fn the_minimal_directory_is_accepted() {
        let directory = Directory::from_units(minimal_units()).expect("a valid tree");
        assert_eq!(directory.fallback().id, "fallback");
    }

    #[test]
    fn a_cycle_is_refused() {
        let mut units = minimal_units();
        units.push(unit("cm:x", UnitKind::Community, Some("cm:y")));
        units.push(unit("cm:y", UnitKind::Community, Some("cm:x")));

        let error = Directory::from_units(units).unwrap_err();
        assert!(error.to_string().contains("cycle"), "{error}");
    }

    #[test]
    fn a_missing_parent_is_refused() {
        let mut units = minimal_units();
        units.push(unit("cm:x", UnitKind::Community, Some("sd:gone")));

        let error = Directory::from_units(units).unwrap_err();
        assert!(error.to_string().contains("sd:gone"), "{error}");
    }

    #[test]
    fn a_unit_without_a_parent_is_refused() {
        let mut units = minimal_units();
        units.push(unit("dept:x", UnitKind::Department, None));

        let error = Directory::from_units(units).unwrap_err();
        assert!(
            error.to_string().contains("dept:x has no parent"),
            "{error}"
        );
    }

    #[test]
    fn two_centres_or_no_fallback_are_refused() {
        let mut two_centres = minimal_units();
        two_centres.push(unit("centre2", UnitKind::Centre, None));
        let error = Directory::from_units(two_centres).unwrap_err();
        assert!(
            error.to_string().contains("more than one centre"),
            "{error}"
        );

        let no_fallback: Vec<_> = minimal_units()
            .into_iter()
            .filter(|u| u.kind != UnitKind::Fallback)
            .collect();
        let error = Directory::from_units(no_fallback).unwrap_err();
        assert!(error.to_string().contains("no fallback"), "{error}");
    }

    #[test]
    fn a_centre_with_a_parent_is_refused() {
        let mut units = minimal_units();
        units[0].parent_id = Some("sd:a".to_string());

        let error = Directory::from_units(units).unwrap_err();
        assert!(
            error.to_string().contains("cannot have a parent"),
            "{error}"
        );
    }

    #[test]
    fn bad_and_duplicate_ids_are_refused() {
        let too_long = format!("dept:{}", "x".repeat(60));
        for bad in ["", "Dept:x", "dept:坪山", "dept x", too_long.as_str()] {
            let mut units = minimal_units();
            units.push(unit(bad, UnitKind::Department, Some("centre")));
            let error = Directory::from_units(units).unwrap_err();
            assert!(
                error.to_string().contains("is not 1 to 64"),
                "{bad:?}: {error}"
            );
        }

        let longest = format!("dept:{}", "x".repeat(59));
        let mut units = minimal_units();
        units.push(unit(&longest, UnitKind::Department, Some("centre")));
        assert!(Directory::from_units(units).is_ok());

        let mut units = minimal_units();
        units.push(unit("sd:a", UnitKind::Subdistrict, Some("centre")));
        let error = Directory::from_units(units).unwrap_err();
        assert!(error.to_string().contains("sd:a appears twice"), "{error}");
    }

    #[test]
    fn a_file_can_name_contractors_and_keyed_utilities() {
        let mut file: Value = serde_json::from_str(DIRECTORY_FILE).expect("the file is JSON");
        file["contractors"] = serde_json::json!([
            {"key": "quick_fix", "name_zh": "快修公司", "name_en": "rapid repair company"}
        ]);
        file["utilities"] = serde_json::json!([
            {"key": "gas", "name_zh": "坪山燃气", "name_en": "Pingshan gas", "handles": []}
        ]);

        let directory = Directory::from_json(&file.to_string()).expect("a valid file");
        let contractor = directory
            .get("contractor:quick_fix")
            .expect("the contractor");
        assert_eq!(contractor.kind, UnitKind::Contractor);
        assert_eq!(contractor.parent_id.as_deref(), Some("centre"));
        assert_eq!(
            directory.get("utility:gas").map(|u| &*u.name_zh),
            Some("坪山燃气")
        );
        // The utilities the file dropped are stood in for, not lost.
        assert_eq!(count(&directory, UnitKind::Utility), 4);
    }

    #[test]
    fn a_file_contradicting_itself_is_refused() {
        let mut file: Value = serde_json::from_str(DIRECTORY_FILE).expect("the file is JSON");
        file["subdistricts"][0]["communities"][0]["subdistrict_zh"] = "龙田街道".into();

        let error = Directory::from_json(&file.to_string()).unwrap_err();
        assert!(
            format!("{error:#}").contains("says it belongs to 龙田街道"),
            "{error:#}"
        );
    }
}
