//! Compliance reports: built from the ledger as of a signed checkpoint,
//! worded by the templates in `reports/`, rendered as PDF, JSON and CSV.
//!
//! Every report names the checkpoint it rests on and cites, for each line,
//! the seq and hash of the event behind it, so an auditor can check every
//! statement with `govledger verify-bundle`. Reports are reproducible: their
//! only time is the checkpoint's (the recorded_at of its last event) and
//! nothing random goes in, so the same ledger state and template give
//! byte-identical files.

mod archival;
pub mod compliance;
pub mod layout;
pub mod models;
pub mod monitoring;
pub mod pdf;
mod shaping;
pub mod template;

use serde::Serialize;

pub use template::{Template, TemplateError};

use crate::governance::lineage::{project_visible, Visibility};
use crate::ledger::checkpoint::{Checkpoint, NoteVerifier};
use crate::ledger::{EntityRef, Event};
use crate::proofs::{ProofError, Proofs};
use crate::store::checkpoints::StoredCheckpoint;
use crate::store::{events, EventFilter, Store, StoreError};

/// Errors of report building.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error("{0}")]
    Invalid(String),
    /// The report's subject is not on the record at its checkpoint, or not
    /// where the reader may see it (the two read the same).
    #[error("{0}")]
    NotFound(String),
    #[error("cannot render the PDF: {0}")]
    Pdf(String),
}

/// The checkpoint a report rests on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CheckpointInfo {
    pub origin: String,
    pub tree_size: u64,
    pub root_hash: String,
    pub key_name: String,
    pub key_id: String,
    /// The signature lines of the signed note.
    pub signatures: Vec<String>,
    /// The signed note, verbatim.
    pub note: String,
}

/// One cited event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Citation {
    pub seq: u64,
    pub hash: String,
    pub recorded_at: String,
    pub kind: String,
    pub subject: String,
    pub actor: String,
}

/// A statement of a report and the event it rests on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Statement {
    pub text: String,
    pub seq: u64,
    pub hash: String,
    /// The statement as a row of its section's table, one cell per column
    /// (the PDF draws these; `text` says the same in a sentence).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
}

impl Statement {
    /// `text`, citing `event`.
    pub fn citing(text: impl Into<String>, event: &Event) -> Self {
        Self { text: text.into(), seq: event.seq, hash: hex::encode(event.hash), cells: Vec::new() }
    }

    /// The statement with `cells` as its table row.
    pub fn with_cells(mut self, cells: Vec<String>) -> Self {
        self.cells = cells;
        self
    }
}

/// A lineage diagram: boxes in columns by distance from the subject, arrows
/// from what an entity was made from to the entity.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Diagram {
    /// Entity references by column, the subject's column last.
    pub columns: Vec<Vec<String>>,
    /// `(source, target)` references.
    pub arrows: Vec<(String, String)>,
    /// The references each summary box ("+14 more datasets") stands for.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub summarized: std::collections::BTreeMap<String, Vec<String>>,
}

/// A line chart of one metric over time, drawn as vectors in the PDF.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Chart {
    pub title: String,
    pub y_label: String,
    pub x_label: String,
    /// One line per series (environment and segment), points by time.
    pub series: Vec<ChartSeries>,
    /// Horizontal lines: thresholds and warning bands.
    pub limits: Vec<ChartLimit>,
}

/// One series of a [`Chart`].
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct ChartSeries {
    pub name: String,
    /// (Unix seconds of the window's end, value), in time order.
    pub points: Vec<(i64, f64)>,
}

/// A horizontal line of a [`Chart`].
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChartLimit {
    pub label: String,
    pub value: f64,
}

impl Eq for Chart {}

/// A section as rendered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportSection {
    pub heading: String,
    pub text: String,
    pub show: String,
    /// Statements, each citing the event it rests on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub statements: Vec<Statement>,
    /// The columns of the table the statements' cells fill; none for prose.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Events listed in full (audit trails).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagram: Option<Diagram>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<Chart>,
}

/// A built report, ready to render.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    pub report: String,
    pub title: String,
    pub subtitle: Option<String>,
    pub scope: String,
    /// The time of the checkpoint's last event: the report's only date.
    pub as_of: String,
    pub checkpoint: CheckpointInfo,
    pub sections: Vec<ReportSection>,
    pub appendix: Option<template::Block>,
    /// What the PDF cannot show as written (characters no font covers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What an audit trail covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Events recorded in `[from, to)` (either end open), of one project
    /// when `project` is given.
    Window { from: Option<String>, to: Option<String>, project: Option<String> },
    /// Events about an entity (an unversioned reference includes its versions).
    Entity(String),
}

/// What every report is built from: the ledger as of a checkpoint, seen by
/// a reader of some projects.
#[derive(Clone, Copy)]
pub struct Basis<'a> {
    pub store: &'a Store,
    pub proofs: &'a Proofs,
    pub checkpoint: &'a StoredCheckpoint,
    /// The projects the requester may read; `None` for all.
    pub readable: Visibility<'a>,
}

impl Basis<'_> {
    /// The checkpoint as a report states it, and the report's only time:
    /// the recorded_at of the checkpoint's last event.
    pub(crate) fn anchor(&self) -> Result<(CheckpointInfo, String), ReportError> {
        let info = checkpoint_info(self.checkpoint, &self.proofs.verifier())?;
        let last = events::by_seq(&mut *self.store.conn()?, self.checkpoint.tree_size)?
            .ok_or_else(|| ReportError::Invalid("the checkpoint's last event is missing".into()))?;
        Ok((info, last.recorded_at))
    }
}

/// `show` values of the audit-trail template.
pub const AUDIT_TRAIL_SHOWS: [&str; 3] = ["checkpoint", "verification", "events"];

pub(crate) fn checkpoint_info(
    stored: &StoredCheckpoint,
    verifier: &NoteVerifier,
) -> Result<CheckpointInfo, ReportError> {
    let statement = Checkpoint::from_note_unverified(&stored.note).map_err(|e| ReportError::Invalid(e.to_string()))?;
    Ok(CheckpointInfo {
        origin: statement.origin,
        tree_size: stored.tree_size,
        root_hash: hex::encode(stored.root_hash),
        key_name: verifier.name().to_owned(),
        key_id: verifier.key_id_hex(),
        signatures: stored.note.lines().filter(|l| l.starts_with('\u{2014}')).map(str::to_owned).collect(),
        note: stored.note.clone(),
    })
}

fn cite(e: &Event) -> Citation {
    Citation {
        seq: e.seq,
        hash: hex::encode(e.hash),
        recorded_at: e.recorded_at.clone(),
        kind: e.kind.clone(),
        subject: e.subject.clone(),
        actor: e.actor.clone(),
    }
}

/// The events in `scope` with seq at most `tree_size` that a reader of
/// `readable` may see, in order.
pub fn events_in_scope(
    store: &Store,
    scope: &Scope,
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<Event>, ReportError> {
    let subject = match scope {
        Scope::Entity(r) => Some(EntityRef::parse(r).map_err(|e| ReportError::Invalid(e.to_string()))?.to_string()),
        Scope::Window { .. } => None,
    };
    let mut selected = Vec::new();
    let mut after = 0;
    let mut conn = store.conn()?;
    loop {
        let filter = EventFilter { subject: subject.clone(), after_seq: after, limit: 1000, ..Default::default() };
        let page = events::list(&mut conn, &filter)?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        for e in page {
            if e.seq > tree_size {
                return Ok(selected);
            }
            let in_scope = match scope {
                Scope::Window { from, to, project } => {
                    from.as_deref().is_none_or(|f| e.recorded_at.as_str() >= f)
                        && to.as_deref().is_none_or(|t| e.recorded_at.as_str() < t)
                        && project.as_deref().is_none_or(|p| e.project.as_deref() == Some(p))
                }
                Scope::Entity(_) => true,
            };
            if in_scope && project_visible(e.project.as_deref(), readable) {
                selected.push(e);
            }
        }
        after = last;
    }
    Ok(selected)
}

/// Builds the audit trail of `scope` as of `checkpoint`.
pub fn audit_trail(basis: Basis<'_>, scope: &Scope, template: &Template) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, proofs, checkpoint, readable } = basis;
    let events = events_in_scope(store, scope, checkpoint.tree_size, readable)?;
    let verification = proofs.verify()?;
    let chain_result = match &verification.failure {
        None => format!(
            "intact, {} events verified and {} signed checkpoints consistent with them",
            verification.verified, verification.checkpoints_verified
        ),
        Some(f) => format!("BROKEN at seq {}: {}", f.seq, f.message),
    };
    let (info, as_of) = basis.anchor()?;
    let scope_text = match scope {
        Scope::Entity(r) => format!("the events about {r}"),
        Scope::Window { from, to, project } => {
            let which = match (project, readable) {
                (Some(p), _) => format!("the events of project {p}"),
                (None, Some(projects)) => format!("the events of {}", models::projects_phrase(projects)),
                (None, None) => "every event of the ledger".to_owned(),
            };
            match (from, to) {
                (None, None) => which,
                (Some(f), None) => format!("{which} recorded from {f}"),
                (None, Some(t)) => format!("{which} recorded before {t}"),
                (Some(f), Some(t)) => format!("{which} recorded from {f} to {t} (exclusive)"),
            }
        }
    };
    let values = [
        ("scope", scope_text.clone()),
        ("tree_size", info.tree_size.to_string()),
        ("root_hash", info.root_hash.clone()),
        ("key_id", format!("{}+{}", info.key_name, info.key_id)),
        ("origin", info.origin.clone()),
        ("events", events.len().to_string()),
        ("verified", verification.verified.to_string()),
        ("chain_result", chain_result),
    ];
    let sections = template
        .sections
        .iter()
        .map(|s| ReportSection {
            heading: s.heading.clone(),
            text: template::fill(&s.text, &values),
            show: s.show.clone(),
            statements: Vec::new(),
            columns: Vec::new(),
            citations: if s.show == "events" { events.iter().map(cite).collect() } else { Vec::new() },
            diagram: None,
            charts: Vec::new(),
        })
        .collect();
    let report = Report {
        report: "audit-trail".into(),
        title: template.title.clone(),
        subtitle: template.subtitle.clone(),
        scope: scope_text,
        as_of,
        checkpoint: info,
        sections,
        appendix: template.appendix.clone(),
        warnings: Vec::new(),
    };
    Ok((report, events))
}

/// The report as CSV: one row per cited event, written with the `csv` crate.
/// Every cell a spreadsheet would evaluate is neutralized ([`spreadsheet_safe`]).
pub fn to_csv(report: &Report) -> Result<String, ReportError> {
    let fail = |e: csv::Error| ReportError::Invalid(format!("cannot write the CSV: {e}"));
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    writer
        .write_record([
            "report",
            "checkpoint_tree_size",
            "checkpoint_root_hash",
            "section",
            "seq",
            "hash",
            "recorded_at",
            "kind",
            "subject",
            "actor",
            "statement",
        ])
        .map_err(fail)?;
    let (size, root) = (report.checkpoint.tree_size.to_string(), report.checkpoint.root_hash.as_str());
    for section in &report.sections {
        for s in &section.statements {
            let seq = s.seq.to_string();
            let cells = [&report.report, &size, root, &section.heading, &seq, &s.hash, "", "", "", "", &s.text];
            writer.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned())).map_err(fail)?;
        }
        for c in &section.citations {
            let seq = c.seq.to_string();
            let cells = [
                &report.report,
                &size,
                root,
                &section.heading,
                &seq,
                &c.hash,
                &c.recorded_at,
                &c.kind,
                &c.subject,
                &c.actor,
                "",
            ];
            writer.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned())).map_err(fail)?;
        }
    }
    let bytes = writer.into_inner().map_err(|e| ReportError::Invalid(format!("cannot write the CSV: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ReportError::Invalid(format!("cannot write the CSV: {e}")))
}

/// A cell as a spreadsheet may open it: one that starts with `=`, `+`, `-`,
/// `@`, a tab or a carriage return would be evaluated as a formula (OWASP's
/// CSV injection), so it gets a leading `'`, which spreadsheets show as text.
/// The record's own text (a subject, an actor, a statement) is otherwise
/// unchanged; the JSON export keeps it exactly.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// What a report is about, by type.
#[derive(Debug, Clone)]
pub struct ReportRequest {
    pub kind: ReportType,
    /// The entity the report is about: the model version of a dossier, the
    /// dataset of a GDPR record, the deployment of an AI Act log, or (audit
    /// trail) an entity instead of a time window.
    pub subject: Option<String>,
    /// A project: gdpr-processing of a project instead of a dataset; the
    /// inventory or audit trail of one project.
    pub project: Option<String>,
    /// The projects the requester may read, `None` for all: nothing of
    /// another project goes into the report.
    pub readable: Option<Vec<String>>,
    /// Time window on `recorded_at` (audit trail, AI Act log), RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
}

impl ReportRequest {
    /// A report of type `kind` over the whole ledger, with no subject, project or window.
    pub fn new(kind: ReportType) -> Self {
        Self { kind, subject: None, project: None, readable: None, from: None, to: None }
    }
}

/// The report types. The API's path parameter, the CLI's argument and the
/// builder all dispatch on this enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReportType {
    AuditTrail,
    ModelDossier,
    ModelInventory,
    GdprProcessing,
    GdprErasure,
    AiActLog,
}

impl ReportType {
    pub const ALL: [ReportType; 6] = [
        ReportType::AuditTrail,
        ReportType::ModelDossier,
        ReportType::ModelInventory,
        ReportType::GdprProcessing,
        ReportType::GdprErasure,
        ReportType::AiActLog,
    ];

    /// The type's name in URLs, file names and templates.
    pub fn name(self) -> &'static str {
        match self {
            ReportType::AuditTrail => "audit-trail",
            ReportType::ModelDossier => "model-dossier",
            ReportType::ModelInventory => "model-inventory",
            ReportType::GdprProcessing => "gdpr-processing",
            ReportType::GdprErasure => "gdpr-erasure",
            ReportType::AiActLog => "ai-act-log",
        }
    }

    /// The type named `name`, or an error that lists the types.
    pub fn parse(name: &str) -> Result<ReportType, ReportError> {
        ReportType::ALL.into_iter().find(|t| t.name() == name).ok_or_else(|| {
            ReportError::NotFound(format!("unknown report type {name:?}; available: {}", ReportType::names()))
        })
    }

    /// Every type's name, for messages.
    pub fn names() -> String {
        ReportType::ALL.map(ReportType::name).join(", ")
    }

    /// The `show` values its template may list.
    pub fn shows(self) -> &'static [&'static str] {
        match self {
            ReportType::AuditTrail => &AUDIT_TRAIL_SHOWS,
            ReportType::ModelDossier => &models::DOSSIER_SHOWS,
            ReportType::ModelInventory => &models::INVENTORY_SHOWS,
            ReportType::GdprProcessing => &compliance::GDPR_SHOWS,
            ReportType::AiActLog => &compliance::AI_ACT_SHOWS,
            ReportType::GdprErasure => &compliance::ERASURE_SHOWS,
        }
    }
}

impl std::fmt::Display for ReportType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Builds the report `request` asks for, as of `checkpoint`, with the
/// template from `templates` (or the shipped one).
pub fn build(
    request: &ReportRequest,
    store: &Store,
    proofs: &Proofs,
    checkpoint: &StoredCheckpoint,
    rules: &crate::governance::ApprovalRules,
    templates: &std::path::Path,
) -> Result<(Report, Vec<Event>), ReportError> {
    let template = Template::load(templates, request.kind.name(), request.kind.shows())?;
    let readable = request.readable.as_deref();
    let basis = Basis { store, proofs, checkpoint, readable };
    if let Some(p) = &request.project {
        if !project_visible(Some(p), readable) {
            return Err(ReportError::NotFound(format!("project {p:?} is not readable with these credentials")));
        }
    }
    let need = |what: &str| ReportError::Invalid(format!("{} needs {what}", request.kind));
    let mut built = match request.kind {
        ReportType::ModelDossier => {
            let model = request.subject.as_deref().ok_or_else(|| need("a subject, model:NAME@VERSION"))?;
            models::model_dossier(basis, model, rules, &template)
        }
        ReportType::ModelInventory => models::model_inventory(basis, request.project.as_deref(), rules, &template),
        ReportType::GdprProcessing => {
            let scope = match (&request.subject, &request.project) {
                (Some(d), None) => compliance::GdprScope::Dataset(d.clone()),
                (None, Some(p)) => compliance::GdprScope::Project(p.clone()),
                _ => return Err(need("either a dataset subject or a project")),
            };
            compliance::gdpr_processing(basis, &scope, &template)
        }
        ReportType::GdprErasure => {
            let subject = request.subject.as_deref().ok_or_else(|| need("a subject, subject:PSEUDONYM"))?;
            compliance::gdpr_erasure(basis, subject, &template)
        }
        ReportType::AiActLog => {
            let deployment = request.subject.as_deref().ok_or_else(|| need("a subject, deployment:ENV/NAME"))?;
            compliance::ai_act_log(basis, deployment, request.from.as_deref(), request.to.as_deref(), &template)
        }
        ReportType::AuditTrail => {
            let scope = match &request.subject {
                Some(r) => Scope::Entity(r.clone()),
                None => Scope::Window {
                    from: request.from.clone(),
                    to: request.to.clone(),
                    project: request.project.clone(),
                },
            };
            audit_trail(basis, &scope, &template)
        }
    }?;
    withhold_unreadable(&mut built.0, &mut built.1, readable);
    Ok(built)
}

/// Drops every statement and citation resting on an event the requester
/// may not read. The builders already leave such events out; this is the
/// last line, so that no path through them can put another project's
/// event into a report.
fn withhold_unreadable(report: &mut Report, cited: &mut Vec<Event>, readable: Visibility<'_>) {
    if readable.is_none() {
        return;
    }
    let hidden: std::collections::BTreeSet<u64> =
        cited.iter().filter(|e| !project_visible(e.project.as_deref(), readable)).map(|e| e.seq).collect();
    if hidden.is_empty() {
        return;
    }
    tracing::warn!(events = hidden.len(), "a report builder cited events of unreadable projects; withheld");
    cited.retain(|e| !hidden.contains(&e.seq));
    for section in &mut report.sections {
        section.statements.retain(|s| !hidden.contains(&s.seq));
        section.citations.retain(|c| !hidden.contains(&c.seq));
    }
}

/// The formats a report is handed out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Pdf,
    Json,
    Csv,
}

impl ReportFormat {
    /// `pdf`, `json` or `csv`, as in `?format=` and `--format`.
    pub fn parse(name: &str) -> Result<Self, ReportError> {
        match name {
            "pdf" => Ok(Self::Pdf),
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            other => Err(ReportError::Invalid(format!("format {other:?} is not pdf, json or csv"))),
        }
    }

    /// The file extension, which is also the format's name.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Json => "json",
            Self::Csv => "csv",
        }
    }

    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The report in `format`.
pub fn render(report: &Report, format: ReportFormat) -> Result<Vec<u8>, ReportError> {
    match format {
        ReportFormat::Pdf => pdf::render(report),
        ReportFormat::Json => {
            let mut v = serde_json::to_vec_pretty(report).map_err(|e| ReportError::Invalid(e.to_string()))?;
            v.push(b'\n');
            Ok(v)
        }
        ReportFormat::Csv => Ok(to_csv(report)?.into_bytes()),
    }
}

/// A report as handed out: its bytes, the events it cites, and the
/// checkpoint it rests on.
pub struct Produced {
    pub bytes: Vec<u8>,
    /// What the PDF cannot show as written (also in the report's JSON).
    pub warnings: Vec<String>,
    pub cited: Vec<Event>,
    pub checkpoint: StoredCheckpoint,
}

/// Signs a checkpoint of the ledger as it is now, then builds and renders
/// the report `request` asks for as of it: the one path of the API, the
/// console and the CLI, so that they hand out the same bytes.
pub fn produce(
    request: &ReportRequest,
    store: &Store,
    proofs: &Proofs,
    rules: &crate::governance::ApprovalRules,
    templates: &std::path::Path,
    format: ReportFormat,
) -> Result<Produced, ReportError> {
    let checkpoint =
        proofs.publish()?.ok_or_else(|| ReportError::Invalid("the ledger is empty: nothing to report".into()))?;
    let (mut built, cited) = build(request, store, proofs, &checkpoint, rules, templates)?;
    built.warnings = pdf::warnings(&built);
    for warning in &built.warnings {
        tracing::warn!(report = %built.report, "{warning}");
    }
    let bytes = render(&built, format)?;
    Ok(Produced { bytes, warnings: built.warnings, cited, checkpoint })
}

/// Escapes `text` for XML and HTML text and attribute values (the
/// console's SVG, the PDF's XMP packet); control characters, which XML 1.0
/// cannot hold, become spaces.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The columns of a section's table: none unless a statement is a row.
pub(crate) fn table_columns(show: &str, statements: &[Statement]) -> Vec<String> {
    if statements.iter().any(|s| !s.cells.is_empty()) {
        columns_of(show)
    } else {
        Vec::new()
    }
}

/// The columns of the tables sections show: findings, and the inventory.
pub(crate) fn columns_of(show: &str) -> Vec<String> {
    let names: &[&str] = match show {
        "inventory" => &["model version", "owner", "status", "live in", "last evaluation", "approvals", "findings"],
        "findings" => &["seq", "finding"],
        "approvals" => &["seq", "environment", "step", "by", "at", "details"],
        _ => &[],
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// A finding as a table row: its evidence's seq, and the finding.
pub(crate) fn finding_row(finding: Statement) -> Statement {
    let text = finding.text.strip_prefix("FINDING: ").unwrap_or(&finding.text).to_owned();
    let seq = finding.seq.to_string();
    finding.with_cells(vec![seq, text])
}

/// The parts every statement report shares, filled from a template.
pub(crate) struct Assembly<'a> {
    pub kind: &'a str,
    pub scope: String,
    pub as_of: String,
    pub checkpoint: CheckpointInfo,
    pub values: Vec<(&'a str, String)>,
}

/// Builds a report whose sections hold statements: `statements_for(show)`
/// gives each section's; the events they cite are returned for the bundle.
pub(crate) fn assemble(
    conn: &mut crate::store::DbConn,
    template: &Template,
    parts: Assembly<'_>,
    statements_for: impl Fn(&str) -> Vec<Statement>,
) -> Result<(Report, Vec<Event>), ReportError> {
    let fill = |text: &str| template::fill(text, &parts.values);
    let mut cited = std::collections::BTreeMap::new();
    let mut sections = Vec::with_capacity(template.sections.len());
    for t in &template.sections {
        let statements = statements_for(&t.show);
        models::cite_all(conn, &statements, &mut cited)?;
        sections.push(ReportSection {
            heading: t.heading.clone(),
            text: fill(&t.text),
            show: t.show.clone(),
            columns: table_columns(&t.show, &statements),
            statements,
            citations: Vec::new(),
            diagram: None,
            charts: Vec::new(),
        });
    }
    let report = Report {
        report: parts.kind.to_owned(),
        title: fill(&template.title),
        subtitle: template.subtitle.as_deref().map(fill),
        scope: parts.scope,
        as_of: parts.as_of,
        checkpoint: parts.checkpoint,
        sections,
        appendix: template
            .appendix
            .as_ref()
            .map(|b| template::Block { heading: b.heading.clone(), text: fill(&b.text) }),
        warnings: Vec::new(),
    };
    Ok((report, cited.into_values().collect()))
}
