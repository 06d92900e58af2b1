//! Report templates: TOML files in `reports/`, read at run time so wording
//! and sections change without recompiling.

use std::path::Path;

use serde::Deserialize;

/// The templates shipped in `reports/`.
pub const SHIPPED: [(&str, &str); 6] = [
    ("audit-trail", include_str!("../../reports/audit-trail.toml")),
    ("model-dossier", include_str!("../../reports/model-dossier.toml")),
    ("model-inventory", include_str!("../../reports/model-inventory.toml")),
    ("gdpr-processing", include_str!("../../reports/gdpr-processing.toml")),
    ("ai-act-log", include_str!("../../reports/ai-act-log.toml")),
    ("gdpr-erasure", include_str!("../../reports/gdpr-erasure.toml")),
];

/// A template that cannot be used; the message names the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct TemplateError {
    pub file: String,
    pub message: String,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub title: String,
    pub subtitle: Option<String>,
    pub sections: Vec<Section>,
    pub appendix: Option<Block>,
}

/// One section: its wording and the data it shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub heading: String,
    pub text: String,
    pub show: String,
}

/// A heading with text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Block {
    pub heading: String,
    pub text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    title: String,
    subtitle: Option<String>,
    #[serde(default)]
    sections: Vec<RawSection>,
    appendix: Option<Block>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    heading: String,
    #[serde(default)]
    text: String,
    show: toml::Spanned<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}

impl Template {
    /// Parses `text` (from `file`), accepting only the `show` values in `known`.
    pub fn parse(file: &str, text: &str, known: &[&str]) -> Result<Self, TemplateError> {
        let error = |message: String| TemplateError { file: file.to_owned(), message };
        let raw: RawTemplate = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| format!("line {}: ", line_of(text, s.start))).unwrap_or_default();
            error(format!("{line}{}", e.message()))
        })?;
        if raw.sections.is_empty() {
            return Err(error("a template needs at least one [[sections]]".into()));
        }
        let mut sections = Vec::with_capacity(raw.sections.len());
        for s in raw.sections {
            let span = s.show.span();
            let show = s.show.into_inner();
            if !known.contains(&show.as_str()) {
                return Err(error(format!(
                    "line {}: show = {show:?} is not one of {}",
                    line_of(text, span.start),
                    known.join(", ")
                )));
            }
            sections.push(Section { heading: s.heading, text: s.text.trim().to_owned(), show });
        }
        Ok(Self {
            title: raw.title,
            subtitle: raw.subtitle,
            sections,
            appendix: raw.appendix.map(|b| Block { heading: b.heading, text: b.text.trim().to_owned() }),
        })
    }

    /// Reads `DIR/<name>.toml`; without that file, the template shipped in
    /// `reports/` (built in, so the service needs no working directory).
    pub fn load(dir: &Path, name: &str, known: &[&str]) -> Result<Self, TemplateError> {
        let path = dir.join(format!("{name}.toml"));
        if !path.exists() {
            if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name) {
                return Self::parse(&format!("reports/{name}.toml (built in)"), text, known);
            }
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TemplateError { file: path.display().to_string(), message: e.to_string() })?;
        Self::parse(&path.display().to_string(), &text, known)
    }
}

/// Fills `{name}` placeholders, and `{name|one|many}` ones with a count
/// and the word that agrees with it ("1 finding", "0 findings", "3
/// findings"); unknown ones are left as written.
pub fn fill(text: &str, values: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
        let open = format!("{{{name}|");
        while let Some(at) = out.find(&open) {
            let Some(len) = out[at..].find('}') else { break };
            let inner = &out[at + open.len()..at + len];
            let Some((one, many)) = inner.split_once('|') else { break };
            let word = if value == "1" { one } else { many };
            let counted = format!("{value} {word}");
            out.replace_range(at..=at + len, &counted);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_placeholders_agree_with_none_one_and_several() {
        let text = "{findings|finding|findings}: {models|model version|model versions} of {events}.";
        let with =
            |n: &str| fill(text, &[("findings", n.to_owned()), ("models", n.to_owned()), ("events", n.to_owned())]);
        assert_eq!(with("0"), "0 findings: 0 model versions of 0.");
        assert_eq!(with("1"), "1 finding: 1 model version of 1.");
        assert_eq!(with("12"), "12 findings: 12 model versions of 12.");
        assert_eq!(fill("{other|a|b} {findings|x", &[("findings", "1".into())]), "{other|a|b} {findings|x");
        // No shipped template says "(s)": every count agrees with its noun.
        for (name, text) in SHIPPED {
            assert!(!text.contains("(s)"), "{name} has a \"(s)\"");
        }
    }

    #[test]
    fn every_shipped_template_parses() {
        let shows: [(&str, &[&str]); 5] = [
            ("audit-trail", &crate::reports::AUDIT_TRAIL_SHOWS),
            ("model-dossier", &crate::reports::models::DOSSIER_SHOWS),
            ("model-inventory", &crate::reports::models::INVENTORY_SHOWS),
            ("gdpr-processing", &crate::reports::compliance::GDPR_SHOWS),
            ("ai-act-log", &crate::reports::compliance::AI_ACT_SHOWS),
        ];
        for ((name, text), (kind, known)) in SHIPPED.iter().zip(shows) {
            assert_eq!(*name, kind);
            Template::parse(name, text, known).unwrap();
        }
    }

    #[test]
    fn the_shipped_audit_trail_template_parses() {
        let text = include_str!("../../reports/audit-trail.toml");
        let t = Template::parse("audit-trail.toml", text, &["checkpoint", "verification", "events"]).unwrap();
        assert_eq!(t.sections.len(), 3);
        assert_eq!(t.title, "Audit trail");
    }

    #[test]
    fn errors_name_the_line() {
        let bad_show = "title = \"x\"\n\n[[sections]]\nheading = \"h\"\nshow = \"everything\"\n";
        let e = Template::parse("t.toml", bad_show, &["events"]).unwrap_err();
        assert!(e.to_string().contains("t.toml: line 5: show = \"everything\""), "{e}");
        let bad_toml = "title = \"x\"\n[[sections]]\nheading = \n";
        let e = Template::parse("t.toml", bad_toml, &["events"]).unwrap_err();
        assert!(e.to_string().contains("line 3"), "{e}");
        let unknown = "title = \"x\"\ncolour = \"red\"\n[[sections]]\nheading = \"h\"\nshow = \"events\"\n";
        let e = Template::parse("t.toml", unknown, &["events"]).unwrap_err();
        assert!(e.to_string().contains("line 2") && e.to_string().contains("colour"), "{e}");
    }
}
