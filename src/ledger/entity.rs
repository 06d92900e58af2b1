//! Entity references of the form `type:name@version` (version optional).

use std::fmt;

use super::event::ValidationError;
use super::kind::Kind;

/// A parsed entity reference such as `model:fraud-detector@3` or
/// `deployment:prod/fraud-detector`.
///
/// Parsing is strict so that two spellings never name one entity: the type is
/// lower-case, the name and version use a small portable alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    entity_type: String,
    name: String,
    version: Option<String>,
}

const MAX_TYPE_LEN: usize = 32;
const MAX_NAME_LEN: usize = 200;
const MAX_VERSION_LEN: usize = 64;

impl EntityRef {
    /// Parses `type:name@version`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| ValidationError::new(format!("invalid entity reference {input:?}: {why}"));
        let (entity_type, rest) =
            input.split_once(':').ok_or_else(|| bad("expected `type:name` or `type:name@version`"))?;
        if entity_type.is_empty() || entity_type.len() > MAX_TYPE_LEN {
            return Err(bad("type must be 1 to 32 characters"));
        }
        let mut type_chars = entity_type.chars();
        let first_is_letter = type_chars.next().is_some_and(|c| c.is_ascii_lowercase());
        if !first_is_letter || !type_chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
            return Err(bad("type must be lower-case letters, digits or `_`, starting with a letter"));
        }
        let (name, version) = match rest.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (rest, None),
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(bad("name must be 1 to 200 characters"));
        }
        if !name.chars().all(is_name_char) {
            return Err(bad("name may contain only letters, digits and `.`, `_`, `-`, `/`"));
        }
        if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
            return Err(bad("name segments separated by `/` must not be empty"));
        }
        if let Some(version) = version {
            if version.is_empty() || version.len() > MAX_VERSION_LEN {
                return Err(bad("version after `@` must be 1 to 64 characters"));
            }
            if !version.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')) {
                return Err(bad("version may contain only letters, digits and `.`, `_`, `-`, `+`"));
            }
        }
        Ok(Self { entity_type: entity_type.to_owned(), name: name.to_owned(), version: version.map(str::to_owned) })
    }

    /// The entity type, e.g. `model`.
    pub fn entity_type(&self) -> &str {
        &self.entity_type
    }

    /// The entity name, e.g. `fraud-detector`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, if the reference names one.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The kind of the event that creates this entity when it is an
    /// immutable version (`dataset:…@v`, `model:…@v`). Such a version is
    /// created once: a second creating event would change what was used to
    /// train or serve after the fact, so the append path refuses it.
    pub fn version_creating_kind(&self) -> Option<Kind> {
        self.version.as_ref()?;
        version_creating_kind(&self.entity_type)
    }
}

impl EntityRef {
    /// The kind of the event that creates this entity and so gives it its
    /// project, for the types that have one; `None` for free-form types,
    /// which belong to the project of the first event about them.
    pub fn creating_kind(&self) -> Option<Kind> {
        match (self.entity_type.as_str(), self.version.is_some()) {
            ("dataset", false) => Some(Kind::DatasetRegistered),
            ("job", _) => Some(Kind::JobRegistered),
            ("approval", _) => Some(Kind::ApprovalRequested),
            (_, true) => self.version_creating_kind(),
            _ => None,
        }
    }

    /// Whether an event of `kind` about this entity, while it belongs to no
    /// project yet, makes it belong to the event's project. Being named as
    /// an input or output never does: otherwise one project could claim
    /// another's entity before it was created.
    pub fn is_owned_by(&self, kind: &str) -> bool {
        self.creating_kind().is_none_or(|k| k == kind)
    }
}

/// The kind that creates a version of an entity of `entity_type`, for the
/// types whose versions are immutable.
pub fn version_creating_kind(entity_type: &str) -> Option<Kind> {
    match entity_type {
        "dataset" => Some(Kind::DatasetVersionCreated),
        "model" => Some(Kind::ModelRegistered),
        _ => None,
    }
}

/// The grammar [`EntityRef::parse`] accepts, as a regular expression valid
/// in both ECMA-262 (JSON Schema) and Rust `regex` syntax, for the OpenAPI
/// description. The name's length limit is left to the parser.
pub const PATTERN: &str = r"^[a-z][a-z0-9_]{0,31}:[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*(@[A-Za-z0-9._+-]{1,64})?$";

impl utoipa::PartialSchema for EntityRef {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("An entity reference `type:name@version` (version optional)"))
            .pattern(Some(PATTERN))
            .max_length(Some(MAX_TYPE_LEN + 1 + MAX_NAME_LEN + 1 + MAX_VERSION_LEN))
            .examples([
                "model:fraud-detector@3",
                "dataset:transactions@2026-10",
                "deployment:production/fraud-detector",
            ])
            .into()
    }
}

impl utoipa::ToSchema for EntityRef {
    fn name() -> std::borrow::Cow<'static, str> {
        "EntityRef".into()
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.entity_type, self.name)?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_pattern_accepts_exactly_what_the_parser_accepts() {
        use rand::{Rng, SeedableRng};
        let pattern = regex::Regex::new(PATTERN).unwrap();
        let alphabet: Vec<char> = "aZ09:@/._-+ A@:/".chars().collect();
        let mut rng = rand::rngs::StdRng::seed_from_u64(9162);
        let mut accepted = 0;
        for i in 0..200_000 {
            let len = 1 + i % 24;
            let mut s: String = (0..len).map(|_| alphabet[rng.gen_range(0..alphabet.len())]).collect();
            if i % 2 == 0 {
                s.insert_str(0, ["model:", "a_1:", "dataset:x", "Model:", "9a:"][i % 5]);
            }
            let parsed = EntityRef::parse(&s).is_ok();
            accepted += usize::from(parsed);
            assert_eq!(pattern.is_match(&s), parsed, "{s:?}");
        }
        assert!(accepted > 1000, "only {accepted} samples were valid references");
        for long in ["a".repeat(32) + ":n", "a".repeat(33) + ":n", format!("t:n@{}", "1".repeat(65))] {
            assert_eq!(pattern.is_match(&long), EntityRef::parse(&long).is_ok(), "{long}");
        }
    }

    #[test]
    fn only_dataset_and_model_versions_are_immutable() {
        let creating = |r: &str| EntityRef::parse(r).unwrap().version_creating_kind();
        assert_eq!(creating("dataset:transactions@2026-10"), Some(Kind::DatasetVersionCreated));
        assert_eq!(creating("model:fraud-detector@3"), Some(Kind::ModelRegistered));
        assert_eq!(creating("dataset:transactions"), None);
        assert_eq!(creating("run:train-17"), None);
        assert_eq!(creating("prompt:greeting@1"), None);
    }

    #[test]
    fn ownership_comes_from_the_creating_kind_or_the_first_event() {
        let owned_by = |r: &str, kind: &str| EntityRef::parse(r).unwrap().is_owned_by(kind);
        assert!(owned_by("dataset:transactions", "dataset.registered"));
        assert!(!owned_by("dataset:transactions", "dataset.classified"));
        assert!(owned_by("dataset:transactions@1", "dataset.version_created"));
        assert!(!owned_by("model:m@1", "model.evaluated"));
        assert!(owned_by("approval:01a2", "approval.requested"));
        assert!(owned_by("run:train-17", "run.completed"));
        assert!(owned_by("deployment:production/x", "deployment.succeeded"));
    }

    #[test]
    fn parses_all_three_parts() {
        let r = EntityRef::parse("model:fraud-detector@3").unwrap();
        assert_eq!((r.entity_type(), r.name(), r.version()), ("model", "fraud-detector", Some("3")));
        assert_eq!(r.to_string(), "model:fraud-detector@3");
    }

    #[test]
    fn version_is_optional_and_names_may_have_paths() {
        let r = EntityRef::parse("deployment:prod/fraud-detector").unwrap();
        assert_eq!(r.name(), "prod/fraud-detector");
        assert_eq!(r.version(), None);
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "",
            "model",
            ":x",
            "Model:x",
            "1model:x",
            "model:",
            "model:x@",
            "model:a b",
            "model:x@1@2",
            "model:/x",
            "model:x//y",
            "model:x/",
            "mo-del:x",
            "model:é",
            "model:x@v 1",
        ] {
            assert!(EntityRef::parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
