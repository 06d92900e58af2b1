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
}
