//! Right-to-left text for the PDF: Arabic letters take the contextual form
//! (isolated, initial, medial, final, and the lam-alef ligatures) that
//! their neighbours call for, and each line is reordered for display by
//! the Unicode bidirectional algorithm (UAX #9), so Arabic and Hebrew read
//! right to left inside left-to-right reports and the reverse.
//!
//! printpdf draws one glyph per character and does no shaping, so the
//! forms are the Arabic Presentation Forms that fonts such as DejaVu Sans
//! carry. Their table is derived from Unicode's compatibility
//! decompositions (each form decomposes to its letter, and a letter's forms
//! are consecutive, in the order isolated, final, initial, medial) rather
//! than typed in by hand.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A letter's contextual forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Forms {
    isolated: char,
    final_: char,
    /// Dual-joining letters only.
    initial: Option<char>,
    medial: Option<char>,
}

struct Tables {
    letters: HashMap<char, Forms>,
    /// Lam followed by an alef: (isolated, final).
    lam_alef: HashMap<char, (char, char)>,
}

const LAM: char = '\u{0644}';

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let decomposed = |c: char| {
            let mut out = Vec::new();
            unicode_normalization::char::decompose_compatible(c, |d| out.push(d));
            out
        };
        let mut letters = HashMap::new();
        let mut lam_alef = HashMap::new();
        let forms: Vec<char> = ('\u{FB50}'..='\u{FBFF}').chain('\u{FE70}'..='\u{FEFC}').collect();
        let mut i = 0;
        while i < forms.len() {
            let base = decomposed(forms[i]);
            let mut run = 1;
            while i + run < forms.len()
                && decomposed(forms[i + run]) == base
                && u32::from(forms[i + run]) == u32::from(forms[i]) + run as u32
            {
                run += 1;
            }
            let group = &forms[i..i + run];
            match (base.as_slice(), run) {
                ([letter], 2) => {
                    letters.entry(*letter).or_insert(Forms {
                        isolated: group[0],
                        final_: group[1],
                        initial: None,
                        medial: None,
                    });
                }
                ([letter], 4) => {
                    letters.entry(*letter).or_insert(Forms {
                        isolated: group[0],
                        final_: group[1],
                        initial: Some(group[2]),
                        medial: Some(group[3]),
                    });
                }
                ([LAM, alef], 2) => {
                    lam_alef.insert(*alef, (group[0], group[1]));
                }
                _ => {}
            }
            i += run;
        }
        Tables { letters, lam_alef }
    })
}

/// How a character takes part in joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joining {
    /// Joins on both sides (most Arabic letters).
    Dual,
    /// Joins only to the letter before it (alef, dal, reh, waw...).
    Right,
    /// Joins to both neighbours without changing: tatweel, zero-width joiner.
    Causing,
    /// Marks: invisible to joining.
    Transparent,
    None,
}

fn joining(c: char) -> Joining {
    if matches!(c, '\u{0640}' | '\u{200D}') {
        return Joining::Causing;
    }
    if matches!(c, '\u{0610}'..='\u{061A}' | '\u{064B}'..='\u{065F}' | '\u{0670}' | '\u{06D6}'..='\u{06DC}' | '\u{06DF}'..='\u{06E4}' | '\u{06E7}' | '\u{06E8}' | '\u{06EA}'..='\u{06ED}')
    {
        return Joining::Transparent;
    }
    match tables().letters.get(&c) {
        Some(f) if f.initial.is_some() => Joining::Dual,
        Some(_) => Joining::Right,
        None => Joining::None,
    }
}

/// Whether `text` holds anything written right to left.
fn has_rtl(text: &str) -> bool {
    text.chars().any(|c| matches!(c, '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}'))
}

/// `text` (logical order) with Arabic letters in their contextual forms;
/// a form `has_glyph` rejects is left as the plain letter.
fn shape(text: &str, has_glyph: &dyn Fn(char) -> bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let kinds: Vec<Joining> = chars.iter().map(|c| joining(*c)).collect();
    let neighbour = |from: usize, step: isize| -> Joining {
        let mut i = from as isize + step;
        while i >= 0 && (i as usize) < chars.len() {
            match kinds[i as usize] {
                Joining::Transparent => i += step,
                k => return k,
            }
        }
        Joining::None
    };
    let t = tables();
    let pick = |form: char, plain: char| if has_glyph(form) { form } else { plain };
    let mut out = String::with_capacity(text.len() * 3);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let kind = kinds[i];
        if !matches!(kind, Joining::Dual | Joining::Right) {
            out.push(c);
            i += 1;
            continue;
        }
        let joins_before = matches!(kind, Joining::Dual | Joining::Right)
            && matches!(neighbour(i, -1), Joining::Dual | Joining::Causing);
        if c == LAM {
            if let Some(&(isolated, final_)) = chars.get(i + 1).and_then(|a| t.lam_alef.get(a)) {
                let form = if joins_before { final_ } else { isolated };
                if has_glyph(form) {
                    out.push(form);
                    i += 2;
                    continue;
                }
            }
        }
        let joins_after =
            kind == Joining::Dual && matches!(neighbour(i, 1), Joining::Dual | Joining::Right | Joining::Causing);
        let forms = t.letters[&c];
        let form = match (joins_before, joins_after, forms.initial, forms.medial) {
            (true, true, _, Some(medial)) => medial,
            (false, true, Some(initial), _) => initial,
            (true, _, _, _) => forms.final_,
            _ => forms.isolated,
        };
        out.push(pick(form, c));
        i += 1;
    }
    out
}

/// The mirror image a bracket takes in right-to-left text.
fn mirrored(c: char) -> char {
    match c {
        '(' => ')',
        ')' => '(',
        '[' => ']',
        ']' => '[',
        '{' => '}',
        '}' => '{',
        '<' => '>',
        '>' => '<',
        '«' => '»',
        '»' => '«',
        c => c,
    }
}

/// One line of text in the order its glyphs are drawn left to right:
/// shaped, then reordered by the bidirectional algorithm. The paragraph
/// direction is left to right, as the reports' wording is: a line's own
/// first letter would decide it otherwise, and the lines a wrapped
/// paragraph breaks into could then run in different directions. Text
/// without right-to-left characters is returned as is.
pub(crate) fn visual<'a>(line: &'a str, has_glyph: &dyn Fn(char) -> bool) -> Cow<'a, str> {
    if !has_rtl(line) {
        return Cow::Borrowed(line);
    }
    let shaped = shape(line, has_glyph);
    let info = unicode_bidi::BidiInfo::new(&shaped, Some(unicode_bidi::Level::ltr()));
    let mut out = String::with_capacity(shaped.len());
    for paragraph in &info.paragraphs {
        let (levels, runs) = info.visual_runs(paragraph, paragraph.range.clone());
        for run in runs {
            let text = &shaped[run.clone()];
            if levels[run.start].is_rtl() {
                out.extend(text.chars().rev().map(mirrored));
            } else {
                out.push_str(text);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_glyph(_: char) -> bool {
        true
    }

    #[test]
    fn the_forms_table_knows_the_letters_and_their_joining() {
        assert_eq!(joining('\u{0628}'), Joining::Dual, "beh");
        assert_eq!(joining('\u{0627}'), Joining::Right, "alef");
        assert_eq!(joining('\u{062F}'), Joining::Right, "dal");
        assert_eq!(joining('\u{0648}'), Joining::Right, "waw");
        assert_eq!(joining('\u{067E}'), Joining::Dual, "peh (Persian)");
        assert_eq!(joining('\u{064E}'), Joining::Transparent, "fatha");
        assert_eq!(joining('a'), Joining::None);
        let beh = tables().letters[&'\u{0628}'];
        assert_eq!(
            (beh.isolated, beh.final_, beh.initial, beh.medial),
            ('\u{FE8F}', '\u{FE90}', Some('\u{FE91}'), Some('\u{FE92}'))
        );
        assert_eq!(tables().lam_alef[&'\u{0627}'], ('\u{FEFB}', '\u{FEFC}'));
    }

    #[test]
    fn letters_take_the_form_their_neighbours_call_for() {
        // بيت (house): beh initial, yeh medial, teh final.
        assert_eq!(shape("بيت", &every_glyph), "\u{FE91}\u{FEF4}\u{FE96}");
        // دار (house): dal and alef do not join forward, so: dal isolated,
        // alef isolated, reh isolated.
        assert_eq!(shape("دار", &every_glyph), "\u{FEA9}\u{FE8D}\u{FEAD}");
        // سلام: seen initial, lam-alef final ligature, meem isolated.
        assert_eq!(shape("سلام", &every_glyph), "\u{FEB3}\u{FEFC}\u{FEE1}");
        // A mark between two letters does not break the join: بَت.
        assert_eq!(shape("بَت", &every_glyph), "\u{FE91}\u{064E}\u{FE96}");
        // A form the font lacks stays the letter.
        assert_eq!(shape("بيت", &|c| c != '\u{FEF4}'), "\u{FE91}\u{064A}\u{FE96}");
    }

    #[test]
    fn lines_are_reordered_right_to_left_where_they_are_written_so() {
        assert!(matches!(visual("plain text", &every_glyph), Cow::Borrowed(_)));
        // Hebrew inside English: the Hebrew word reversed, the rest in place.
        assert_eq!(visual("name: שלום (ok)", &every_glyph), "name: םולש (ok)");
        // Arabic: shaped, then right to left; a number after it belongs to it
        // (UAX #9 rule W2) and keeps its own digit order.
        assert_eq!(visual("بيت 12", &every_glyph), "12 \u{FE96}\u{FEF4}\u{FE91}");
        assert_eq!(visual("بيت ودار", &every_glyph), "\u{FEAD}\u{FE8D}\u{FEA9}\u{FEED} \u{FE96}\u{FEF4}\u{FE91}");
        // Brackets inside right-to-left text are mirrored.
        assert_eq!(visual("א (עולם) ב", &every_glyph), "ב (םלוע) א");
    }
}
