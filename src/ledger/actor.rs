//! Actors: the token subjects the ledger records as who did what. One
//! person must be one actor, or separation of duties and quorum could be
//! met by one person under two spellings.

/// Whether two token subjects name the same person: subjects are NFC and
/// compared without case, so `Alice` and `alice` are one approver for
/// separation of duties and quorum.
pub fn same_subject(a: &str, b: &str) -> bool {
    a == b || a.to_lowercase() == b.to_lowercase()
}

/// The form of a subject that [`same_subject`] compares.
pub fn subject_key(subject: &str) -> String {
    subject.to_lowercase()
}

/// Identities declared to be one person (a CLI token's subject and the
/// identity provider's actor, say), so that separation of duties and quorum
/// count people rather than spellings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct People {
    /// [`subject_key`] of each declared identity, to its person's index.
    person_of: std::collections::HashMap<String, usize>,
}

impl People {
    /// People from groups of identities; an identity in two groups is refused.
    pub fn new(groups: Vec<Vec<String>>) -> Result<Self, String> {
        let mut person_of = std::collections::HashMap::new();
        for (i, group) in groups.iter().enumerate() {
            for identity in group {
                match person_of.insert(subject_key(identity), i) {
                    Some(other) if other != i => {
                        return Err(format!("identity {identity:?} is declared for two people"));
                    }
                    _ => {}
                }
            }
        }
        Ok(Self { person_of })
    }

    /// Whether `a` and `b` are one person: the same subject (see
    /// [`same_subject`]) or two identities declared together.
    pub fn same(&self, a: &str, b: &str) -> bool {
        if same_subject(a, b) {
            return true;
        }
        match (self.person_of.get(&subject_key(a)), self.person_of.get(&subject_key(b))) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }
}

/// The [`People`] in force, shared by the services that compare actors and
/// replaced when the identity map changes.
#[derive(Debug, Clone, Default)]
pub struct SharedPeople(std::sync::Arc<std::sync::RwLock<std::sync::Arc<People>>>);

impl SharedPeople {
    /// The people in force now.
    pub fn current(&self) -> std::sync::Arc<People> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Installs `people`.
    pub fn replace(&self, people: People) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::new(people);
    }
}

/// Checks a subject before a token is issued for it: printable text in NFC,
/// 1 to 200 bytes, with no leading or trailing space and no invisible
/// characters, so that one person cannot be minted as several identities
/// that look alike (`alice`, `alice `, `alice\u{200b}`).
pub fn validate_subject(subject: &str) -> Result<(), String> {
    let invisible = |c: char| matches!(c, '\u{00ad}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}');
    if subject.is_empty() || subject.len() > 200 {
        return Err("sub must be 1 to 200 bytes".into());
    }
    if subject.starts_with(char::is_whitespace) || subject.ends_with(char::is_whitespace) {
        return Err(format!("sub {subject:?} must not begin or end with a space"));
    }
    if let Some(c) = subject.chars().find(|c| c.is_control() || invisible(*c)) {
        return Err(format!("sub {subject:?} holds the invisible or control character U+{:04X}", u32::from(c)));
    }
    if !unicode_normalization::is_nfc(subject) {
        return Err(format!("sub {subject:?} is not in Unicode NFC form: send it normalized"));
    }
    Ok(())
}

#[cfg(test)]
mod subject_tests {
    use super::*;

    #[test]
    fn look_alike_subjects_are_refused_and_case_does_not_make_a_new_person() {
        for bad in ["alice ", " alice", "alice\u{200b}", "al\u{0007}ice", "", "e\u{0301}lise"] {
            assert!(validate_subject(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "Zoë 李", "ci-fraud", "élise"] {
            assert!(validate_subject(good).is_ok(), "{good:?}");
        }
        assert!(same_subject("Alice", "alice") && same_subject("ZOË", "zoë") && !same_subject("alice", "alicia"));
    }

    #[test]
    fn declared_identities_are_one_person_and_others_stay_apart() {
        let people = People::new(vec![vec!["dana".into(), "oidc:https://idp|d1".into()]]).unwrap();
        assert!(people.same("Dana", "oidc:https://idp|d1") && people.same("oidc:https://idp|d1", "dana"));
        assert!(!people.same("dana", "oidc:https://idp|d2") && !people.same("eve", "oidc:https://idp|d1"));
        assert!(People::new(vec![vec!["a".into(), "b".into()], vec!["B".into(), "c".into()]]).is_err());
    }
}
