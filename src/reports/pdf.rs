//! PDF rendering (printpdf, A4) with DejaVu Sans and DejaVu Sans Mono
//! embedded (reports/fonts, Bitstream Vera licence): names in Greek,
//! Cyrillic and other scripts DejaVu covers render as written. Characters
//! DejaVu lacks (Chinese, Japanese, Korean) are set in a fallback font:
//! `--report-font FILE`, else the first of [`FALLBACK_FONTS`] installed.
//! Only the glyphs used are embedded, so a report without such text does
//! not grow. A character no font covers is drawn as U+FFFD, visibly, and
//! named in the report's `warnings`: text never silently vanishes.
//!
//! Reproducible by construction: the document id is derived from the
//! report's content and every date is the report's `as_of`; printpdf's own
//! XMP (random instance ids) is left out and [`super::archival`] writes a
//! deterministic one, making the file PDF/A-2b.

use printpdf::lopdf::content::Operation;
use printpdf::lopdf::{Object, StringFormat};
use printpdf::{
    CustomPdfConformance, IndirectFontRef, Line, Mm, PdfConformance, PdfDocument, PdfDocumentReference,
    PdfLayerReference, Point,
};
use ring::digest::{digest, SHA256};

use super::layout::Sizes;
use super::{Chart, Diagram, Report, ReportError};

const PAGE_W: f32 = 210.0;
const PAGE_H: f32 = 297.0;
const MARGIN: f32 = 20.0;
const BOTTOM: f32 = 22.0;

struct Fonts {
    regular: IndirectFontRef,
    bold: IndirectFontRef,
    mono: IndirectFontRef,
    /// The fallback fonts, by index, those the report has text for added.
    fallback: Vec<Option<IndirectFontRef>>,
}

type Face = ttf_parser::Face<'static>;

/// The embedded faces, parsed once per process, for glyph lookups.
fn faces() -> Result<&'static (Face, Face), ReportError> {
    static FACES: std::sync::OnceLock<Result<(Face, Face), String>> = std::sync::OnceLock::new();
    FACES
        .get_or_init(|| {
            let sans = Face::parse(SANS, 0).map_err(|e| e.to_string())?;
            let mono = Face::parse(MONO, 0).map_err(|e| e.to_string())?;
            Ok((sans, mono))
        })
        .as_ref()
        .map_err(|e| ReportError::Pdf(e.clone()))
}

/// Fonts for what DejaVu lacks, as Debian installs them, tried in order
/// when no `--report-font` is given: Chinese and Japanese
/// (`fonts-droid-fallback`), Korean (`fonts-nanum`). TrueType files only:
/// printpdf embeds no collections (`.ttc`).
pub const FALLBACK_FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/droid/DroidSansFallback.ttf",
    "/usr/share/fonts/truetype/nanum/NanumGothic.ttf",
];

/// A fallback font: its bytes (for embedding) and face (for lookups).
struct Fallback {
    bytes: &'static [u8],
    face: Face,
}

static FALLBACKS: std::sync::OnceLock<Vec<Fallback>> = std::sync::OnceLock::new();

fn load_fallback(path: &std::path::Path) -> Result<Fallback, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Read once per process and kept for its life, as the embedded fonts are.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let face =
        Face::parse(bytes, 0).map_err(|e| format!("{}: not a TrueType or OpenType font: {e}", path.display()))?;
    Ok(Fallback { bytes, face })
}

/// Uses the fonts at `paths`, in order, for what the embedded fonts lack
/// (`--report-font`, repeatable), instead of [`FALLBACK_FONTS`]; before the
/// first report only.
pub fn use_fallback_fonts(paths: &[std::path::PathBuf]) -> Result<(), ReportError> {
    let fonts = paths.iter().map(|p| load_fallback(p)).collect::<Result<Vec<_>, _>>().map_err(ReportError::Pdf)?;
    FALLBACKS.set(fonts).map_err(|_| ReportError::Pdf("the report fonts are chosen already".into()))
}

fn fallbacks() -> &'static [Fallback] {
    FALLBACKS
        .get_or_init(|| FALLBACK_FONTS.iter().filter_map(|p| load_fallback(std::path::Path::new(p)).ok()).collect())
}

/// What draws one character: the face (`None`) or the fallback of that index.
type Source = Option<usize>;

/// Whether the PDF can carry `ch` so that it reads back: printpdf writes
/// its ToUnicode map with four hex digits, so a character beyond the Basic
/// Multilingual Plane (emoji) would read back as another one. It is drawn
/// as U+FFFD and reported instead.
fn representable(ch: char) -> bool {
    u32::from(ch) <= 0xFFFF
}

/// The glyph that draws `ch`: the face's, else the first fallback's that
/// has it, else the face's U+FFFD (or `?`), so that nothing is left out.
fn glyph_of(face: &Face, ch: char) -> (Source, ttf_parser::GlyphId) {
    let replacement = || face.glyph_index('\u{fffd}').or_else(|| face.glyph_index('?')).unwrap_or_default();
    if !representable(ch) {
        return (None, replacement());
    }
    if let Some(g) = face.glyph_index(ch) {
        return (None, g);
    }
    if let Some((i, g)) = fallbacks().iter().enumerate().find_map(|(i, f)| Some((i, f.face.glyph_index(ch)?))) {
        return (Some(i), g);
    }
    (None, replacement())
}

/// The characters of `text` that no font covers (drawn as U+FFFD).
fn uncovered(text: &str) -> Vec<char> {
    let Ok((sans, mono)) = faces() else { return Vec::new() };
    let covered = |c: char| {
        representable(c)
            && (sans.glyph_index(c).is_some()
                || mono.glyph_index(c).is_some()
                || fallbacks().iter().any(|f| f.face.glyph_index(c).is_some()))
    };
    printable(text).chars().filter(|c| !covered(*c)).collect()
}

/// Writes `text` at `(x, y)`, each run of characters in the font that has
/// them. printpdf's `use_text` copies the whole embedded font for every
/// call (a megabyte per line of a 10,000-line report); the glyph ids are
/// looked up here instead and written the way printpdf writes them, so its
/// subsetting and ToUnicode map still see them.
#[allow(clippy::too_many_arguments)]
fn put_text(
    layer: &PdfLayerReference,
    font: &IndirectFontRef,
    face: &Face,
    fallback: &[Option<IndirectFontRef>],
    text: &str,
    size: f32,
    x: Mm,
    y: Mm,
) {
    let mut runs: Vec<(Source, Vec<u8>)> = Vec::new();
    let text = printable(text);
    for ch in super::shaping::visual(&text, &|c| face.glyph_index(c).is_some()).chars() {
        let (mut source, mut gid) = glyph_of(face, ch);
        if source.is_some_and(|i| fallback.get(i).is_none_or(Option::is_none)) {
            (source, gid) = (None, face.glyph_index('\u{fffd}').unwrap_or_default());
        }
        match runs.last_mut() {
            Some((s, bytes)) if *s == source => bytes.extend_from_slice(&gid.0.to_be_bytes()),
            _ => runs.push((source, gid.0.to_be_bytes().to_vec())),
        }
    }
    layer.begin_text_section();
    layer.set_text_cursor(x, y);
    for (source, bytes) in runs {
        // Each Tj advances the text position by its glyphs' widths, so the
        // next run, in the other font, starts where this one ends.
        match source.and_then(|i| fallback.get(i)).and_then(Option::as_ref) {
            Some(f) => layer.set_font(f, size),
            None => layer.set_font(font, size),
        }
        // Literal, not hex: half the bytes for the (level 9) compression to chew.
        layer.add_operation(Operation::new("Tj", vec![Object::String(bytes, StringFormat::Literal)]));
    }
    layer.end_text_section();
}

/// Writes lines top to bottom, starting new pages as needed.
struct Writer {
    doc: PdfDocumentReference,
    layer: PdfLayerReference,
    y: f32,
    page: usize,
    footer: String,
    fonts: Fonts,
    faces: &'static (Face, Face),
}

fn pdf_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Pdf(e.to_string())
}

const SANS: &[u8] = include_bytes!("../../reports/fonts/DejaVuSans.ttf");
const MONO: &[u8] = include_bytes!("../../reports/fonts/DejaVuSansMono.ttf");

/// Control characters have no glyph: tabs become spaces, the rest `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c == '\t' {
                ' '
            } else if c.is_control() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Joins a template's hard-wrapped lines into paragraphs: a blank line
/// separates paragraphs, and list items (`1. `, `- `) start their own line.
fn paragraphs(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    for line in text.lines() {
        let line = line.trim();
        let item = line.starts_with("- ")
            || line.split_once(". ").is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        match out.last_mut() {
            _ if line.is_empty() => open = false,
            Some(last) if open && !item => {
                last.push(' ');
                last.push_str(line);
            }
            _ => {
                out.push(line.to_owned());
                open = true;
            }
        }
    }
    out
}

/// The width of `text` set in `face` at `size` points, in mm, from the
/// glyphs' own advances: an `m` is not an `i`, and a wrap that counted
/// characters let lines of wide letters run past the margin.
fn text_width(face: &Face, text: &str, size: f32) -> f32 {
    let em = |f: &Face| f32::from(f.units_per_em().max(1));
    let ems: f32 = printable(text)
        .chars()
        .map(|c| match glyph_of(face, c) {
            (None, g) => face.glyph_hor_advance(g).map_or(0.0, f32::from) / em(face),
            (Some(i), g) => {
                let f = &fallbacks()[i].face;
                f.glyph_hor_advance(g).map_or(0.0, f32::from) / em(f)
            }
        })
        .sum();
    ems * size * PT_TO_MM
}

/// Wraps paragraphs on spaces so that no line is wider than `width` as
/// `measure` measures it; a word wider than a whole line is cut where it
/// stops fitting. Each word is measured once (a report has 10,000 lines).
fn wrap(text: &str, width: f32, measure: impl Fn(&str) -> f32) -> Vec<String> {
    let space = measure(" ");
    let mut lines = Vec::new();
    for paragraph in paragraphs(text) {
        let (mut line, mut used) = (String::new(), 0.0f32);
        for word in paragraph.split_whitespace() {
            let mut word = word;
            let mut wide = measure(word);
            while wide > width {
                // A reference breaks best after its punctuation
                // (`deployment:` / `staging/`), else where the width ends.
                let (mut end, mut taken, mut after_mark) = (0, 0.0f32, 0);
                for (i, c) in word.char_indices() {
                    let w = measure(&word[i..i + c.len_utf8()]);
                    if end > 0 && taken + w > width {
                        break;
                    }
                    end = i + c.len_utf8();
                    taken += w;
                    if matches!(c, ':' | '/' | '@' | '-' | '_' | '.' | '|') {
                        after_mark = end;
                    }
                }
                if after_mark * 3 >= end {
                    end = after_mark.max(1);
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                lines.push(word[..end].to_owned());
                word = &word[end..];
                wide = measure(word);
                used = 0.0;
            }
            if !line.is_empty() && used + space + wide > width {
                lines.push(std::mem::take(&mut line));
                used = 0.0;
            }
            if !line.is_empty() {
                line.push(' ');
                used += space;
            }
            line.push_str(word);
            used += wide;
        }
        lines.push(line);
    }
    lines
}

/// `name` as it fits `width` mm at `size`, cut with a `~` when it does not
/// (measured, so a box of `W`s is cut as soon as one of `i`s would be).
fn fit_label(face: &Face, name: &str, size: f32, width: f32) -> String {
    if text_width(face, name, size) <= width {
        return name.to_owned();
    }
    let mut label = String::new();
    for c in name.chars() {
        label.push(c);
        if text_width(face, &format!("{label}~"), size) > width {
            label.pop();
            break;
        }
    }
    format!("{label}~")
}

/// The audit trail's columns and their widths in mm (170 between the
/// margins): a 7-digit seq, a timestamp to the microsecond and the longest
/// kind the server writes (`monitoring.threshold_recovered`) fit on one line
/// at [`TABLE_SIZE`]; subjects and actors wrap.
const AUDIT_COLUMNS: [(&str, f32); 5] =
    [("seq", 12.0), ("recorded_at", 38.5), ("kind", 39.0), ("subject", 44.0), ("actor", 36.5)];
/// Space between a cell's text and the next column, in mm.
const CELL_PAD: f32 = 1.5;
/// The size of table text, in points.
const TABLE_SIZE: f32 = 6.5;

/// The size of the text of statement tables (inventory, findings,
/// approvals), in points: fewer columns than the audit trail's, longer text.
const STATEMENT_TABLE_SIZE: f32 = 7.0;

/// Widths in mm of a statement table's columns: each shape
/// [`super::columns_of`] gives sums to the 170 between the margins, with a
/// 7-digit seq and a timestamp to the microsecond on one line; columns a
/// template names otherwise share the width evenly.
fn column_widths(columns: &[String]) -> Vec<f32> {
    let weight = |name: &str| match name {
        "seq" => 12.5,
        "model version" => 35.0,
        "owner" => 18.0,
        "status" | "findings" => 12.0,
        "step" => 16.0,
        "live in" | "by" => 30.0,
        "last evaluation" | "at" => 42.0,
        "approvals" => 21.0,
        "environment" => 18.0,
        "details" => 51.5,
        "finding" => 157.5,
        _ => 30.0,
    };
    let total: f32 = columns.iter().map(|c| weight(c)).sum();
    columns.iter().map(|c| weight(c) * (PAGE_W - 2.0 * MARGIN) / total.max(1.0)).collect()
}

/// One row of a table: its cells, and a note set under it across the
/// whole width (an event's hash).
struct Row {
    cells: Vec<String>,
    note: Option<String>,
}

/// Points to millimetres.
const PT_TO_MM: f32 = 0.3528;

impl Writer {
    fn text(&mut self, text: &str, size: f32, font: Font, indent: f32) {
        let height = size * PT_TO_MM * 1.35;
        if self.y - height < BOTTOM {
            self.new_page();
        }
        self.y -= height;
        let (font, face) = match font {
            Font::Regular => (&self.fonts.regular, &self.faces.0),
            Font::Bold => (&self.fonts.bold, &self.faces.0),
            Font::Mono => (&self.fonts.mono, &self.faces.1),
        };
        put_text(&self.layer, font, face, &self.fonts.fallback, text, size, Mm(MARGIN + indent), Mm(self.y));
    }

    /// `text` wrapped to the width between the margins.
    fn paragraph(&mut self, text: &str, size: f32, font: Font) {
        let face = match font {
            Font::Regular | Font::Bold => &self.faces.0,
            Font::Mono => &self.faces.1,
        };
        let width = PAGE_W - 2.0 * MARGIN;
        for line in wrap(text, width, |t| text_width(face, t, size)) {
            self.text(&line, size, font, 0.0);
        }
    }

    /// A table: a header row, repeated at the top of every page the table
    /// runs onto, then each row with every cell wrapped (or, for a word
    /// longer than the column, cut) within its column, so that nothing runs
    /// into its neighbour. Full values are in the JSON and CSV exports.
    fn table(&mut self, columns: &[(&str, f32)], size: f32, rows: impl Iterator<Item = Row>) {
        let line_h = size * PT_TO_MM * 1.3;
        let face = &self.faces.0;
        let header = |w: &mut Self| {
            let mut x = MARGIN;
            w.y -= line_h;
            for (name, width) in columns {
                put_text(&w.layer, &w.fonts.bold, face, &[], name, size, Mm(x), Mm(w.y));
                x += width;
            }
            w.y -= 0.8;
            w.polygon(&[(MARGIN, w.y), (MARGIN + columns.iter().map(|c| c.1).sum::<f32>(), w.y)], false);
        };
        // A header alone at the foot of a page says nothing.
        if self.y - 4.0 * line_h < BOTTOM {
            self.new_page();
        }
        header(self);
        for row in rows {
            let cells: Vec<Vec<String>> = row
                .cells
                .iter()
                .zip(columns)
                .map(|(text, (_, width))| wrap(text, width - CELL_PAD, |t| text_width(face, t, size)))
                .collect();
            let lines = cells.iter().map(Vec::len).max().unwrap_or(1);
            let note_h = if row.note.is_some() { 6.0 * PT_TO_MM * 1.3 } else { 0.0 };
            if self.y - line_h * lines as f32 - note_h < BOTTOM {
                self.new_page();
                header(self);
            }
            let top = self.y;
            let mut x = MARGIN;
            for (cell, (_, width)) in cells.iter().zip(columns) {
                for (i, line) in cell.iter().enumerate() {
                    let y = top - line_h * (i as f32 + 1.0);
                    put_text(&self.layer, &self.fonts.regular, face, &self.fonts.fallback, line, size, Mm(x), Mm(y));
                }
                x += width;
            }
            self.y = top - line_h * lines as f32;
            if let Some(note) = &row.note {
                self.y -= note_h;
                put_text(&self.layer, &self.fonts.mono, &self.faces.1, &[], note, 6.0, Mm(MARGIN + 12.0), Mm(self.y));
            }
            self.y -= 0.6;
        }
    }

    fn gap(&mut self, mm: f32) {
        self.y -= mm;
    }

    fn rule(&mut self) {
        self.gap(1.5);
        let line = Line {
            points: vec![
                (Point::new(Mm(MARGIN), Mm(self.y)), false),
                (Point::new(Mm(PAGE_W - MARGIN), Mm(self.y)), false),
            ],
            is_closed: false,
        };
        self.layer.add_line(line);
        self.gap(1.5);
    }

    /// The lineage diagram, laid out by [`super::layout`] as the console
    /// draws it: boxes in columns, edges passing between boxes, scaled to
    /// the text width (and, for a tall graph, to most of a page).
    fn diagram(&mut self, diagram: &Diagram) {
        const SIZES: Sizes = Sizes { box_w: 40.0, box_h: 7.0, gap_x: 14.0, gap_y: 3.0, lane_h: 2.5 };
        const MAX_H: f32 = PAGE_H - MARGIN - BOTTOM - 20.0;
        let refs: Vec<&str> = diagram.columns.iter().flatten().map(String::as_str).collect();
        if refs.is_empty() {
            return;
        }
        let index: std::collections::BTreeMap<&str, usize> = refs.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        let edges: Vec<(usize, usize)> = diagram
            .arrows
            .iter()
            .filter_map(|(s, t)| Some((*index.get(s.as_str())?, *index.get(t.as_str())?)))
            .collect();
        let layout = super::layout::layered(refs.len(), &edges, SIZES);
        let scale = ((PAGE_W - 2.0 * MARGIN) / layout.width.max(1.0)).min(MAX_H / layout.height.max(1.0)).min(1.5);
        let height = layout.height * scale + 4.0;
        if self.y - height < BOTTOM {
            self.new_page();
        }
        let top = self.y - 2.0;
        let at = |(x, y): (f32, f32)| (MARGIN + x * scale, top - y * scale);
        let (w, h) = (SIZES.box_w * scale, SIZES.box_h * scale);
        let size = (5.5 * scale).clamp(3.0, 7.0);
        for placed in &layout.boxes {
            let (x, y) = at((placed.x, placed.y + SIZES.box_h));
            self.polygon(&[(x, y), (x + w, y), (x + w, y + h), (x, y + h)], true);
            let name = refs[placed.node];
            let label = fit_label(&self.faces.0, name, size, w - 1.6);
            put_text(
                &self.layer,
                &self.fonts.regular,
                &self.faces.0,
                &self.fonts.fallback,
                &label,
                size,
                Mm(x + 0.8),
                Mm(y + h / 2.0 - size * 0.12),
            );
        }
        for route in &layout.routes {
            let points: Vec<(f32, f32)> = route.points.iter().map(|p| at(*p)).collect();
            self.polygon(&points, false);
            if let [.., (x1, y1), (x2, y2)] = points[..] {
                // Arrowhead at the target.
                let (dx, dy) = (x2 - x1, y2 - y1);
                let len = (dx * dx + dy * dy).sqrt().max(0.01);
                let (ux, uy) = (dx / len, dy / len);
                let head = 1.6 * scale.max(0.6);
                let (ax, ay) = (x2 - head * ux, y2 - head * uy);
                let side = head / 2.0;
                self.polygon(&[(ax - side * uy, ay + side * ux), (x2, y2), (ax + side * uy, ay - side * ux)], false);
            }
        }
        self.y = top - height;
    }

    /// A line chart: a framed plot with value ticks on the left, dates
    /// below, one coloured line per series with a legend, and each limit
    /// as a dashed line labelled on the right. Every label is text, so
    /// the chart reads back with the rest of the report.
    fn chart(&mut self, chart: &Chart) {
        const HEIGHT: f32 = 62.0;
        const PLOT_H: f32 = 40.0;
        const LEFT: f32 = 16.0;
        const RIGHT: f32 = 26.0;
        let points: Vec<(i64, f64)> = chart.series.iter().flat_map(|s| s.points.iter().copied()).collect();
        if points.is_empty() {
            return;
        }
        if self.y - HEIGHT < BOTTOM {
            self.new_page();
        }
        let small = |w: &Self, text: &str, size: f32, x: f32, y: f32| {
            put_text(&w.layer, &w.fonts.regular, &w.faces.0, &w.fonts.fallback, text, size, Mm(x), Mm(y));
        };
        small(self, &chart.title, 8.5, MARGIN, self.y - 4.0);
        small(self, &chart.y_label, 6.5, MARGIN, self.y - 8.5);
        let top = self.y - 11.0;
        let (x0, x1) = (MARGIN + LEFT, PAGE_W - MARGIN - RIGHT);
        let (y0, y1) = (top - PLOT_H, top);
        let values = points.iter().map(|p| p.1).chain(chart.limits.iter().map(|l| l.value));
        let (mut lo, mut hi) = values.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        // Round ticks: four steps of 1, 2 or 5 times a power of ten.
        let raw = ((hi - lo) / 4.0).max(hi.abs().max(1e-9) * 0.005);
        let magnitude = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * magnitude).find(|s| *s >= raw).unwrap_or(raw);
        (lo, hi) = ((lo / step).floor() * step, (hi / step).ceil() * step);
        if hi - lo < step {
            hi = lo + step;
        }
        let steps = ((hi - lo) / step).round().max(1.0) as i32;
        let (t0, t1) = points.iter().fold((i64::MAX, i64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
        let span = (t1 - t0).max(1) as f32;
        let at_x = |t: i64| if t1 == t0 { (x0 + x1) / 2.0 } else { x0 + (t - t0) as f32 / span * (x1 - x0) };
        let at_y = |v: f64| y0 + ((v - lo) / (hi - lo)) as f32 * PLOT_H;
        self.layer.set_outline_thickness(0.4);
        self.polygon(&[(x0, y0), (x1, y0), (x1, y1), (x0, y1)], true);
        self.layer.set_outline_thickness(0.2);
        for i in 0..=steps {
            let v = lo + step * f64::from(i);
            let y = at_y(v);
            self.polygon(&[(x0 - 1.2, y), (x0, y)], false);
            small(self, &tick(v, step * 4.0), 6.0, MARGIN, y - 0.8);
        }
        let ticks = if t1 == t0 { vec![t0] } else { (0..=3).map(|i| t0 + (t1 - t0) * i / 3).collect() };
        for t in ticks {
            let x = at_x(t);
            self.polygon(&[(x, y0), (x, y0 - 1.2)], false);
            let date = chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d").to_string());
            small(self, &date.unwrap_or_default(), 6.0, (x - 6.5).max(MARGIN), y0 - 4.0);
        }
        small(self, &chart.x_label, 6.5, (x0 + x1) / 2.0 - 14.0, y0 - 7.5);
        let dashed = printpdf::LineDashPattern { dash_1: Some(2), gap_1: Some(2), ..Default::default() };
        for limit in &chart.limits {
            let y = at_y(limit.value);
            self.layer.set_line_dash_pattern(dashed);
            self.polygon(&[(x0, y), (x1, y)], false);
            self.layer.set_line_dash_pattern(printpdf::LineDashPattern::default());
            small(self, &format!("{} {}", limit.label, tick(limit.value, 0.0)), 5.5, x1 + 1.0, y - 0.8);
        }
        const COLOURS: [(f32, f32, f32); 4] =
            [(0.0, 0.32, 0.65), (0.80, 0.33, 0.0), (0.0, 0.5, 0.25), (0.45, 0.2, 0.6)];
        let mut legend_x = x0;
        for (i, series) in chart.series.iter().enumerate() {
            let (r, g, b) = COLOURS[i % COLOURS.len()];
            self.layer.set_outline_color(printpdf::Color::Rgb(printpdf::Rgb::new(r, g, b, None)));
            self.layer.set_outline_thickness(0.6);
            let line: Vec<(f32, f32)> = series.points.iter().map(|(t, v)| (at_x(*t), at_y(*v))).collect();
            if line.len() == 1 {
                let (x, y) = line[0];
                self.polygon(&[(x - 0.8, y), (x + 0.8, y)], false);
            } else {
                self.polygon(&line, false);
            }
            let ly = y0 - 11.5;
            self.polygon(&[(legend_x, ly + 0.8), (legend_x + 5.0, ly + 0.8)], false);
            self.layer.set_outline_color(printpdf::Color::Rgb(printpdf::Rgb::new(0.0, 0.0, 0.0, None)));
            small(self, &series.name, 6.0, legend_x + 6.0, ly);
            legend_x += 8.0 + series.name.chars().count() as f32 * 1.25;
        }
        self.layer.set_outline_thickness(1.0);
        self.y -= HEIGHT;
    }

    fn polygon(&self, points: &[(f32, f32)], closed: bool) {
        let line = Line {
            points: points.iter().map(|(x, y)| (Point::new(Mm(*x), Mm(*y)), false)).collect(),
            is_closed: closed,
        };
        self.layer.add_line(line);
    }

    fn footer(&self) {
        let text = format!("{}  -  page {}", self.footer, self.page);
        put_text(&self.layer, &self.fonts.regular, &self.faces.0, &[], &text, 7.0, Mm(MARGIN), Mm(10.0));
    }

    fn new_page(&mut self) {
        let (page, layer) = self.doc.add_page(Mm(PAGE_W), Mm(PAGE_H), "content");
        self.layer = self.doc.get_page(page).get_layer(layer);
        self.page += 1;
        self.y = PAGE_H - MARGIN;
        self.footer();
    }
}

#[derive(Clone, Copy)]
enum Font {
    Regular,
    Bold,
    Mono,
}

/// A tick label with as many decimals as the axis' span needs.
fn tick(value: f64, span: f64) -> String {
    let decimals = if span <= 0.0 { 4 } else { (2.0 - span.log10().floor()).clamp(0.0, 6.0) as usize };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The characters of the report beyond ASCII (which DejaVu covers), each
/// once: what may need a fallback font. Read from the fields the PDF draws,
/// without serializing the report (a dossier holds 10,000 statements).
fn non_ascii(report: &Report) -> std::collections::BTreeSet<char> {
    let mut found = std::collections::BTreeSet::new();
    let mut add = |text: &str| {
        if !text.is_ascii() {
            found.extend(text.chars().filter(|c| !c.is_ascii()));
        }
    };
    add(&report.title);
    add(report.subtitle.as_deref().unwrap_or_default());
    add(&report.scope);
    for section in &report.sections {
        add(&section.heading);
        add(&section.text);
        section.statements.iter().for_each(|s| add(&s.text));
        for c in &section.citations {
            add(&c.kind);
            add(&c.subject);
            add(&c.actor);
        }
        if let Some(d) = &section.diagram {
            d.columns.iter().flatten().for_each(|r| add(r));
        }
        for chart in &section.charts {
            add(&chart.title);
            add(&chart.x_label);
            add(&chart.y_label);
            chart.series.iter().for_each(|s| add(&s.name));
            chart.limits.iter().for_each(|l| add(&l.label));
        }
    }
    if let Some(a) = &report.appendix {
        add(&a.heading);
        add(&a.text);
    }
    found
}

/// What the report's PDF cannot show as written: one warning naming the
/// characters no font covers, which the PDF draws as U+FFFD.
pub fn warnings(report: &Report) -> Vec<String> {
    let text: String = non_ascii(report).into_iter().collect();
    let missing: std::collections::BTreeSet<char> = uncovered(&text).into_iter().collect();
    if missing.is_empty() {
        return Vec::new();
    }
    let listed: Vec<String> = missing.iter().take(20).map(|c| format!("U+{:04X}", u32::from(*c))).collect();
    let more = if missing.len() > 20 { format!(" and {} more", missing.len() - 20) } else { String::new() };
    vec![format!(
        "no font covers {}{more}: the PDF shows \u{fffd} in their place; give --report-font FILE with a font that has them",
        listed.join(", ")
    )]
}

/// Renders `report` as PDF bytes.
pub fn render(report: &Report) -> Result<Vec<u8>, ReportError> {
    let content = serde_json::to_vec(report).map_err(pdf_error)?;
    let id = hex::encode(&digest(&SHA256, &content).as_ref()[..16]);
    // The report's only time, whole seconds: printpdf's dates and the XMP's.
    let created = chrono::DateTime::parse_from_rfc3339(&report.as_of).map_err(pdf_error)?.timestamp();
    let at = time::OffsetDateTime::from_unix_timestamp(created).map_err(pdf_error)?;
    // printpdf's information dictionary is replaced (super::archival).
    let (doc, page, layer) = PdfDocument::new("govledger report", Mm(PAGE_W), Mm(PAGE_H), "content");
    let doc = doc
        .with_conformance(PdfConformance::Custom(CustomPdfConformance {
            identifier: "govledger report".into(),
            requires_icc_profile: false,
            requires_xmp_metadata: false,
            ..Default::default()
        }))
        .with_document_id(id.clone())
        .with_creation_date(at)
        .with_mod_date(at)
        .with_metadata_date(at)
        .with_producer("govledger");
    let regular = doc.add_external_font(SANS).map_err(pdf_error)?;
    // Parsing a fallback font costs milliseconds; only reports with text
    // that needs it pay them.
    let (sans, _) = faces()?;
    let lacking: Vec<char> =
        non_ascii(report).into_iter().filter(|c| representable(*c) && sans.glyph_index(*c).is_none()).collect();
    // The fallback fonts (megabytes) are read only for a report that needs one.
    let mut fallback = Vec::new();
    if !lacking.is_empty() {
        let mut used = vec![false; fallbacks().len()];
        for c in lacking {
            if let (Some(i), _) = glyph_of(sans, c) {
                used[i] = true;
            }
        }
        for (f, used) in fallbacks().iter().zip(used) {
            fallback.push(if used { Some(doc.add_external_font(f.bytes).map_err(pdf_error)?) } else { None });
        }
    }
    let fonts = Fonts {
        fallback,
        // Headings are set larger in the same face: a bold face would add
        // another 700 kB to every report.
        bold: regular.clone(),
        regular,
        mono: doc.add_external_font(MONO).map_err(pdf_error)?,
    };
    let layer = doc.get_page(page).get_layer(layer);
    // The full root hash is on page 1; the footer names it short.
    let footer = format!(
        "govledger {} - checkpoint {} at tree size {}, root {}...",
        report.report,
        report.checkpoint.origin,
        report.checkpoint.tree_size,
        &report.checkpoint.root_hash[..16.min(report.checkpoint.root_hash.len())]
    );
    let mut w = Writer { doc, layer, y: PAGE_H - MARGIN, page: 1, footer, fonts, faces: faces()? };
    w.footer();

    w.paragraph(&report.title, 18.0, Font::Bold);
    if let Some(subtitle) = &report.subtitle {
        w.paragraph(subtitle, 10.0, Font::Regular);
    }
    w.paragraph(
        &format!("Scope: {}. As of {} (the checkpoint's last event).", report.scope, report.as_of),
        9.0,
        Font::Regular,
    );
    w.rule();
    for warning in &report.warnings {
        w.paragraph(&format!("Warning: {warning}."), 9.0, Font::Bold);
    }
    w.text("Signed checkpoint", 9.0, Font::Bold, 0.0);
    for line in report.checkpoint.note.lines() {
        w.text(line, 7.5, Font::Mono, 0.0);
    }
    w.text(
        &format!("verifier key: {} (key id {})", report.checkpoint.key_name, report.checkpoint.key_id),
        7.5,
        Font::Mono,
        0.0,
    );
    w.rule();

    for section in &report.sections {
        w.gap(2.0);
        w.paragraph(&section.heading, 13.0, Font::Bold);
        w.gap(1.0);
        w.paragraph(&section.text, 10.0, Font::Regular);
        let (rows, prose): (Vec<_>, Vec<_>) =
            section.statements.iter().partition(|s| !section.columns.is_empty() && !s.cells.is_empty());
        for (i, statement) in prose.iter().enumerate() {
            w.gap(0.8);
            w.paragraph(&statement.text, 9.0, Font::Regular);
            // Statements that rest on one event (a model card's lines) name it once, after the last.
            if prose.get(i + 1).is_none_or(|next| next.seq != statement.seq) {
                w.text(&format!("seq {}, hash {}", statement.seq, statement.hash), 6.5, Font::Mono, 6.0);
            }
        }
        if !rows.is_empty() {
            w.gap(1.5);
            let widths = column_widths(&section.columns);
            let columns: Vec<(&str, f32)> = section.columns.iter().map(String::as_str).zip(widths).collect();
            // A seq column already names the event; the note adds its hash.
            let seq_shown = section.columns.first().is_some_and(|c| c == "seq");
            let rows = rows.into_iter().map(|s| Row {
                cells: s.cells.clone(),
                note: Some(if seq_shown {
                    format!("hash {}", s.hash)
                } else {
                    format!("seq {}, hash {}", s.seq, s.hash)
                }),
            });
            w.table(&columns, STATEMENT_TABLE_SIZE, rows);
        }
        if let Some(diagram) = &section.diagram {
            w.diagram(diagram);
        }
        for chart in &section.charts {
            w.gap(2.0);
            w.chart(chart);
        }
        if !section.citations.is_empty() {
            w.gap(1.5);
            let rows = section.citations.iter().map(|c| Row {
                cells: vec![
                    c.seq.to_string(),
                    c.recorded_at.clone(),
                    c.kind.clone(),
                    c.subject.clone(),
                    c.actor.clone(),
                ],
                note: Some(format!("hash {}", c.hash)),
            });
            w.table(&AUDIT_COLUMNS, TABLE_SIZE, rows);
        }
    }
    if let Some(appendix) = &report.appendix {
        // The appendix follows on the same page when it has room: a page
        // holding only the last lines of a report reads as a page missing.
        w.gap(4.0);
        let lines = wrap(&appendix.text, PAGE_W - 2.0 * MARGIN, |t| text_width(&w.faces.0, t, 10.0)).len();
        let needed = 3.0 + 13.0 * PT_TO_MM * 1.35 + 1.0 + lines as f32 * 10.0 * PT_TO_MM * 1.35;
        if w.y - needed < BOTTOM {
            w.new_page();
        }
        w.rule();
        w.paragraph(&appendix.heading, 13.0, Font::Bold);
        w.gap(1.0);
        w.paragraph(&appendix.text, 10.0, Font::Regular);
    }
    let bytes = w.doc.save_to_bytes().map_err(pdf_error)?;
    let created = chrono::DateTime::from_timestamp(created, 0).unwrap_or_default();
    let described = super::archival::Described {
        title: &printable(&report.title),
        author: &report.checkpoint.origin,
        subject: &printable(&report.scope),
        created,
        id: &id,
    };
    super::archival::finish(&bytes, &described)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(title: &str) -> Report {
        Report {
            report: "audit-trail".into(),
            title: title.into(),
            subtitle: None,
            scope: "every event".into(),
            as_of: "2026-03-03T09:00:00.000000Z".into(),
            checkpoint: crate::reports::CheckpointInfo {
                origin: "govledger".into(),
                tree_size: 1,
                root_hash: "00".repeat(32),
                key_name: "govledger".into(),
                key_id: "01020304".into(),
                signatures: Vec::new(),
                note: "govledger\n1\nAAAA\n".into(),
            },
            sections: Vec::new(),
            appendix: None,
            warnings: Vec::new(),
        }
    }

    #[test]
    fn the_same_report_renders_identically_whatever_was_rendered_before() {
        let first = render(&sample("A")).unwrap();
        let id = hex::encode(&digest(&SHA256, &serde_json::to_vec(&sample("A")).unwrap()).as_ref()[..16]);
        let trailer_id = format!("/ID[<{id}><{id}>]");
        assert!(first.windows(trailer_id.len()).any(|w| w == trailer_id.as_bytes()), "the content-derived /ID");
        render(&sample("something else")).unwrap();
        assert_eq!(render(&sample("A")).unwrap(), first);
        assert_ne!(render(&sample("B")).unwrap(), first);
    }

    #[test]
    fn template_lines_join_into_paragraphs_but_list_items_stay() {
        let text = "This report covers\nthe ledger.\n\n1. First step\n   continued.\n2. Second\n- item";
        assert_eq!(
            paragraphs(text),
            ["This report covers the ledger.", "1. First step continued.", "2. Second", "- item"]
        );
        let chars = |t: &str| t.chars().count() as f32;
        assert_eq!(wrap("aaa bbb ccc", 7.0, chars), ["aaa bbb", "ccc"]);
        assert_eq!(wrap("abcdefghij x", 7.0, chars), ["abcdefg", "hij x"]);
        assert_eq!(printable("Zoë —\t李\u{7}"), "Zoë — 李?");
    }

    #[test]
    fn every_kind_every_timestamp_and_a_seven_digit_seq_fit_their_audit_columns() {
        let (sans, _) = faces().unwrap();
        let fits = |text: &str, column: usize| text_width(sans, text, TABLE_SIZE) <= AUDIT_COLUMNS[column].1 - CELL_PAD;
        assert!(fits("9999999", 0));
        assert!(fits("2026-12-03T07:19:38.780779Z", 1) && fits("2026-08-28T08:08:08.888888Z", 1));
        for kind in crate::ledger::Kind::ALL {
            assert!(fits(kind.as_str(), 2), "{kind}");
        }
    }

    #[test]
    fn statement_tables_fill_the_text_width_and_fit_seqs_and_timestamps() {
        let (sans, _) = faces().unwrap();
        for show in ["inventory", "findings", "approvals"] {
            let columns = crate::reports::columns_of(show);
            let widths = column_widths(&columns);
            assert!((widths.iter().sum::<f32>() - (PAGE_W - 2.0 * MARGIN)).abs() < 0.01, "{show}");
            for (name, width) in columns.iter().zip(&widths) {
                let fits = |t: &str| text_width(sans, t, STATEMENT_TABLE_SIZE) <= width - CELL_PAD;
                assert!(fits(name), "{show}: the header {name:?}");
                match name.as_str() {
                    "seq" => assert!(fits("9999999"), "{show}"),
                    "at" | "last evaluation" => assert!(fits("2026-12-03T07:19:38.780779Z"), "{show}: {name}"),
                    "step" => {
                        assert!(["requested", "granted", "rejected", "revoked"].iter().all(|s| fits(s)), "{show}")
                    }
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn wrapping_measures_glyphs_so_wide_letters_wrap_sooner() {
        let (sans, _) = faces().unwrap();
        let width = 40.0;
        let measure = |t: &str| text_width(sans, t, 10.0);
        let wide = wrap(&"MMMM ".repeat(20), width, measure);
        let narrow = wrap(&"iiii ".repeat(20), width, measure);
        assert!(wide.len() > 2 * narrow.len(), "{} lines of M, {} of i", wide.len(), narrow.len());
        for line in wide.iter().chain(&narrow) {
            assert!(text_width(sans, line, 10.0) <= width, "{line:?} is wider than {width} mm");
        }
        assert_eq!(fit_label(sans, "iiii", 10.0, width), "iiii");
        let cut = fit_label(sans, &"W".repeat(60), 10.0, width);
        assert!(cut.ends_with('~') && text_width(sans, &cut, 10.0) <= width, "{cut}");
        // A word longer than a line is cut within the width, not dropped.
        assert_eq!(
            wrap("deployment:staging/fraud-detector", 28.0, measure),
            ["deployment:", "staging/fraud-", "detector"],
            "a reference breaks after its punctuation"
        );
        let long = wrap(&"W".repeat(60), width, measure);
        assert_eq!(long.concat(), "W".repeat(60));
        assert!(long.iter().all(|l| text_width(sans, l, 10.0) <= width));
    }
}
