//! The words of notifications, as data: one template per kind, with the
//! inbox (or webhook) text and, when the deployment has them, the WeChat
//! subscribe-message and SMS templates approved for it. Texts hold
//! placeholders such as `{tracking_number}`; the bundled set
//! (`reference/notification-templates.json`) has Chinese texts and no
//! WeChat or SMS template ids, which each deployment gets approved for
//! itself.

use std::collections::HashMap;

use anyhow::{Context, bail};
use serde::Deserialize;

use super::notification::NotificationKind;

/// What a placeholder may stand for. Only these leave the system, and
/// `{message}` (free text written by staff) only to staff and the inbox.
pub const PLACEHOLDERS: &[&str] = &[
    "tracking_number",
    "complaint_id",
    "status",
    "deadline",
    "time",
    "unit",
    "message",
];

/// The values of one notification's placeholders.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateValues {
    pub tracking_number: String,
    pub complaint_id: String,
    /// The status in Chinese, e.g. "已受理".
    pub status: String,
    /// "2026-12-10 18:00", or "—" when there is none.
    pub deadline: String,
    /// When the event happened, "2026-12-03 10:00".
    pub time: String,
    /// The unit's name (staff notifications).
    pub unit: String,
    /// The event's own message.
    pub message: String,
}

impl TemplateValues {
    fn get(&self, name: &str) -> &str {
        match name {
            "tracking_number" => &self.tracking_number,
            "complaint_id" => &self.complaint_id,
            "status" => &self.status,
            "deadline" => &self.deadline,
            "time" => &self.time,
            "unit" => &self.unit,
            "message" => &self.message,
            _ => "",
        }
    }
}

/// A text with placeholders, checked when loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(String);

impl Pattern {
    fn parse(text: &str, allow_message: bool) -> anyhow::Result<Pattern> {
        for name in placeholders(text)? {
            if !PLACEHOLDERS.contains(&name) {
                bail!("unknown placeholder {{{name}}} in {text:?}");
            }
            if name == "message" && !allow_message {
                bail!("{{message}} may not leave the system in {text:?}");
            }
        }
        Ok(Pattern(text.to_owned()))
    }

    pub fn render(&self, values: &TemplateValues) -> String {
        let mut out = String::with_capacity(self.0.len() + 32);
        let mut rest = self.0.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            // Checked at load: every brace closes around a known name.
            let close = rest[open..].find('}').map_or(rest.len(), |c| open + c);
            out.push_str(values.get(&rest[open + 1..close]));
            rest = rest.get(close + 1..).unwrap_or("");
        }
        out.push_str(rest);
        out
    }
}

fn placeholders(text: &str) -> anyhow::Result<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .with_context(|| format!("an unclosed {{ in {text:?}"))?;
        names.push(&rest[open + 1..open + close]);
        rest = &rest[open + close + 1..];
    }
    if rest.contains('}') {
        bail!("a stray }} in {text:?}");
    }
    Ok(names)
}

/// A WeChat subscribe-message template approved for the mini-program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatTemplate {
    pub template_id: String,
    /// The mini-program page the card opens.
    pub page: Pattern,
    /// Template keys ("thing4", "character_string1", …) and their values.
    pub data: Vec<(String, Pattern)>,
    /// A long-term subscription (allowed to government mini-programs):
    /// one grant allows every message.
    pub long_term: bool,
}

impl WeChatTemplate {
    /// The `data` object of `subscribeMessage.send`, each value cut to
    /// what its key's type allows.
    pub fn render_data(&self, values: &TemplateValues) -> Vec<(String, String)> {
        self.data
            .iter()
            .map(|(key, pattern)| (key.clone(), fit_wechat_value(key, &pattern.render(values))))
            .collect()
    }
}

/// WeChat refuses values longer than their key's type allows (errcode
/// 47003): `thing` 20 characters, `phrase` 5, `name` 10,
/// `character_string` and `number` 32.
fn fit_wechat_value(key: &str, value: &str) -> String {
    let kind = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let limit = match kind {
        "thing" => 20,
        "phrase" => 5,
        "name" => 10,
        "character_string" | "number" | "letter" | "symbol" => 32,
        _ => return value.to_owned(),
    };
    if value.chars().count() <= limit {
        return value.to_owned();
    }
    if kind == "thing" {
        let mut cut: String = value.chars().take(limit - 1).collect();
        cut.push('…');
        cut
    } else {
        value.chars().take(limit).collect()
    }
}

/// An SMS template approved with the provider, and its parameters in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsTemplate {
    pub template_id: String,
    pub params: Vec<Pattern>,
}

/// One kind's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationTemplate {
    pub title: Pattern,
    /// The inbox entry, or the webhook message for staff.
    pub text: Pattern,
    /// Sent even in quiet hours.
    pub urgent: bool,
    pub wechat: Option<WeChatTemplate>,
    pub sms: Option<SmsTemplate>,
}

/// Every kind's template.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationTemplates {
    pub version: String,
    by_kind: HashMap<NotificationKind, NotificationTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSet {
    version: String,
    templates: HashMap<String, FileTemplate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTemplate {
    title: String,
    text: String,
    #[serde(default)]
    urgent: bool,
    #[serde(default)]
    wechat: Option<FileWeChat>,
    #[serde(default)]
    sms: Option<FileSms>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeChat {
    template_id: String,
    #[serde(default)]
    page: String,
    data: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    long_term: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSms {
    template_id: String,
    params: Vec<String>,
}

impl NotificationTemplates {
    /// The set bundled with the server.
    pub fn bundled() -> NotificationTemplates {
        NotificationTemplates::from_json(include_str!(
            "../../reference/notification-templates.json"
        ))
        .expect("the bundled notification templates are valid")
    }

    /// Reads and checks a set: every kind needs a template, placeholders
    /// must be known, and an empty template id turns that channel off.
    pub fn from_json(text: &str) -> anyhow::Result<NotificationTemplates> {
        let file: FileSet = serde_json::from_str(text).context("bad notification templates")?;
        let mut by_kind = HashMap::new();
        for (name, template) in file.templates {
            let kind = NotificationKind::parse(&name)
                .with_context(|| format!("no notification kind is called {name:?}"))?;
            let template =
                parse_template(kind, template).with_context(|| format!("template {name}"))?;
            by_kind.insert(kind, template);
        }
        if let Some(missing) = NotificationKind::ALL
            .iter()
            .find(|k| !by_kind.contains_key(k))
        {
            bail!(
                "the notification templates have none for {}",
                missing.as_str()
            );
        }
        Ok(NotificationTemplates {
            version: file.version,
            by_kind,
        })
    }

    pub fn get(&self, kind: NotificationKind) -> &NotificationTemplate {
        // Every kind is present: checked when loaded.
        &self.by_kind[&kind]
    }

    pub fn get_mut(&mut self, kind: NotificationKind) -> &mut NotificationTemplate {
        self.by_kind
            .get_mut(&kind)
            .expect("every kind has a template")
    }

    /// The WeChat template ids in use, and whether each is long-term.
    pub fn wechat_template_ids(&self) -> Vec<(String, bool)> {
        let mut ids: Vec<(String, bool)> = NotificationKind::ALL
            .iter()
            .filter_map(|kind| self.get(*kind).wechat.as_ref())
            .map(|w| (w.template_id.clone(), w.long_term))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

fn parse_template(
    kind: NotificationKind,
    file: FileTemplate,
) -> anyhow::Result<NotificationTemplate> {
    let citizen = kind.for_citizens();
    let wechat = match file.wechat {
        Some(w) if !w.template_id.trim().is_empty() => {
            if !citizen {
                bail!("units are told through the webhook, not WeChat");
            }
            let mut data = Vec::new();
            for (key, value) in w.data {
                let valid_key = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !valid_key {
                    bail!("{key:?} is not a WeChat template key like thing1");
                }
                data.push((key, Pattern::parse(&value, false)?));
            }
            if data.is_empty() {
                bail!("a WeChat template needs data");
            }
            Some(WeChatTemplate {
                template_id: w.template_id.trim().to_owned(),
                page: Pattern::parse(&w.page, false)?,
                data,
                long_term: w.long_term,
            })
        }
        _ => None,
    };
    let sms = match file.sms {
        Some(s) if !s.template_id.trim().is_empty() => {
            if !citizen {
                bail!("units are told through the webhook, not SMS");
            }
            let params = s
                .params
                .iter()
                .map(|p| Pattern::parse(p, false))
                .collect::<anyhow::Result<Vec<_>>>()?;
            Some(SmsTemplate {
                template_id: s.template_id.trim().to_owned(),
                params,
            })
        }
        _ => None,
    };
    Ok(NotificationTemplate {
        title: Pattern::parse(&file.title, true)?,
        text: Pattern::parse(&file.text, true)?,
        urgent: file.urgent,
        wechat,
        sms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> TemplateValues {
        TemplateValues {
            tracking_number: "HY20261203000042".to_owned(),
            complaint_id: "42".to_owned(),
            status: "已受理".to_owned(),
            deadline: "2026-12-10 18:00".to_owned(),
            time: "2026-12-03 10:00".to_owned(),
            unit: "和平社区".to_owned(),
            message: "内部说明".to_owned(),
        }
    }

    #[test]
    fn the_bundled_set_covers_every_kind_without_channels() {
        let templates = NotificationTemplates::bundled();
        for kind in NotificationKind::ALL {
            let template = templates.get(*kind);
            assert!(template.wechat.is_none() && template.sms.is_none());
            assert!(!template.text.render(&values()).contains('{'));
        }
    }

    #[test]
    fn placeholders_render_and_unknown_ones_are_refused() {
        let pattern =
            Pattern::parse("您的诉求{tracking_number}{status}，期限{deadline}", false).unwrap();
        assert_eq!(
            pattern.render(&values()),
            "您的诉求HY20261203000042已受理，期限2026-12-10 18:00"
        );
        assert!(Pattern::parse("{phone}", true).is_err());
        assert!(Pattern::parse("{message}", false).is_err());
        assert!(Pattern::parse("{tracking_number", true).is_err());
        assert!(Pattern::parse("a}b", true).is_err());
    }

    #[test]
    fn wechat_values_are_cut_to_their_type() {
        assert_eq!(fit_wechat_value("phrase2", "不予受理了吧啊"), "不予受理了");
        let long = "一二三四五六七八九十一二三四五六七八九十一";
        assert_eq!(fit_wechat_value("thing4", long).chars().count(), 20);
        assert!(fit_wechat_value("thing4", long).ends_with('…'));
        assert_eq!(fit_wechat_value("time3", long), long);
    }

    #[test]
    fn a_set_missing_a_kind_or_leaking_the_message_is_refused() {
        let bundled = include_str!("../../reference/notification-templates.json");
        let mut file: serde_json::Value = serde_json::from_str(bundled).unwrap();
        file["templates"]["accepted"]["sms"] =
            serde_json::json!({ "template_id": "1", "params": ["{message}"] });
        let error = NotificationTemplates::from_json(&file.to_string()).unwrap_err();
        assert!(format!("{error:#}").contains("accepted"), "{error:#}");

        file["templates"]
            .as_object_mut()
            .unwrap()
            .remove("accepted");
        assert!(NotificationTemplates::from_json(&file.to_string()).is_err());
    }
}
