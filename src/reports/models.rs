//! The model reports: the `model-dossier` of one model version (SR 11-7
//! development evidence, validation, approvals, deployments, findings) and
//! the `model-inventory` of all of them. Everything is read as of the
//! report's checkpoint: events and edges after its tree size are left out.

use std::collections::{BTreeMap, BTreeSet};

use super::{assemble, Assembly, Basis, Diagram, Report, ReportError, ReportSection, Statement, Template};
use crate::governance::lineage::{self, Visibility, Walk};
use crate::governance::ApprovalRules;
use crate::ledger::{EntityRef, Event, Kind};
use crate::store::projections::{self, ApprovalFilter};
use crate::store::{events, DbConn, EventFilter};

/// `show` values of the model-dossier template.
pub const DOSSIER_SHOWS: [&str; 7] =
    ["model_card", "lineage", "evaluations", "approvals", "deployments", "monitoring", "findings"];
/// `show` values of the model-inventory template.
pub const INVENTORY_SHOWS: [&str; 2] = ["inventory", "findings"];

/// Events about `subject` (exactly) up to `tree_size` that a reader of
/// `readable` may see, in order.
pub(crate) fn about(
    conn: &mut DbConn,
    subject: &str,
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<Event>, ReportError> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let filter = EventFilter {
            subject: Some(subject.to_owned()),
            subject_exact: true,
            after_seq: after,
            limit: 1000,
            ..Default::default()
        };
        let page = events::list(conn, &filter)?;
        let Some(last) = page.last().map(|e| e.seq) else { break };
        out.extend(page.into_iter().filter(|e| {
            e.seq <= tree_size && e.subject == subject && lineage::project_visible(e.project.as_deref(), readable)
        }));
        after = last;
    }
    Ok(out)
}

pub(crate) fn attrs(e: &Event) -> serde_json::Value {
    serde_json::from_str(&e.attributes).unwrap_or_default()
}

/// "auc 0.9 against 0.92, …" for an evaluation's metrics and thresholds.
fn thresholds(evaluation: &serde_json::Value) -> String {
    let Some(limits) = evaluation["thresholds"].as_object() else { return metrics(&evaluation["metrics"]) };
    limits
        .iter()
        .map(|(k, limit)| match evaluation["metrics"].get(k) {
            Some(value) => format!("{k} {value} against {limit}"),
            None => format!("{k} not measured, threshold {limit}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn metrics(v: &serde_json::Value) -> String {
    v.as_object().map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn event(conn: &mut DbConn, seq: i64) -> Result<Option<Event>, ReportError> {
    Ok(events::by_seq(conn, u64::try_from(seq).unwrap_or(0))?)
}

/// An approval's history as of the checkpoint: the request and decisions.
struct ApprovalHistory {
    environment: String,
    requested: Event,
    decisions: Vec<Event>,
    required: u64,
    valid_for: i64,
}

impl ApprovalHistory {
    /// Whether the approval was granted and in force at `at`.
    fn valid_at(&self, at: &str) -> bool {
        let mut granters = BTreeSet::new();
        let mut granted_at: Option<String> = None;
        for d in &self.decisions {
            if d.recorded_at.as_str() > at {
                break;
            }
            match Kind::from_name(&d.kind) {
                Some(Kind::ApprovalGranted) => {
                    granters.insert(d.actor.clone());
                    if granters.len() as u64 >= self.required && granted_at.is_none() {
                        granted_at = Some(d.recorded_at.clone());
                    }
                }
                Some(Kind::ApprovalRejected) if granted_at.is_none() => return false,
                Some(Kind::ApprovalRevoked) => return false,
                _ => {}
            }
        }
        granted_at.is_some_and(|g| projections::add_seconds(&g, self.valid_for).as_str() > at)
    }
}

fn approvals_of(
    conn: &mut DbConn,
    model: &str,
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<ApprovalHistory>, ReportError> {
    let filter = ApprovalFilter { model: Some(model.to_owned()), limit: 10_000, ..Default::default() };
    let shown = |e: &Event| e.seq <= tree_size && lineage::project_visible(e.project.as_deref(), readable);
    let mut out = Vec::new();
    for row in projections::list_approvals(conn, &filter)? {
        let Some(requested) = event(conn, row.requested_seq)?.filter(shown) else { continue };
        let mut decisions = Vec::new();
        for d in projections::decisions(conn, &row.id)? {
            if let Some(e) = event(conn, d.seq)?.filter(shown) {
                decisions.push(e);
            }
        }
        out.push(ApprovalHistory {
            environment: row.environment,
            requested,
            decisions,
            required: u64::try_from(row.required_approvals).unwrap_or(1),
            valid_for: row.valid_for_seconds,
        });
    }
    Ok(out)
}

/// Where a model version served, as of the checkpoint.
struct DeploymentStory {
    /// Every deployment event that names the version, and every event that
    /// took it out of service (a rollback or a later version going live
    /// where it served), in order.
    events: Vec<Event>,
    /// The deployments it serves at the checkpoint, with the event that put
    /// it live there.
    live: Vec<(String, Event)>,
}

/// The deployment story (up to the checkpoint) of `model`; `deployments`
/// are every deployment entity, loaded once per report.
fn deployments_of(
    conn: &mut DbConn,
    model: &str,
    tree_size: u64,
    readable: Visibility<'_>,
    deployments: &[String],
) -> Result<DeploymentStory, ReportError> {
    let mut targets: BTreeSet<String> = BTreeSet::new();
    for edge in projections::edges_ever_from(conn, model)? {
        if edge.target.starts_with("deployment:") {
            targets.insert(edge.target);
        }
    }
    // Blocked and failed deployments create no edge: find them by the
    // deployments of the same name in any environment.
    if let Ok(r) = EntityRef::parse(model) {
        let suffix = format!("/{}", r.name());
        targets.extend(deployments.iter().filter(|d| d.ends_with(&suffix)).cloned());
    }
    let mut story = DeploymentStory { events: Vec::new(), live: Vec::new() };
    for target in targets {
        let mut serving: Option<Event> = None;
        // Monitoring of the deployment has its own section.
        let history = about(conn, &target, tree_size, readable)?;
        for e in history.into_iter().filter(|e| !e.kind.starts_with("monitoring.")) {
            let names_model = attrs(&e)["model"] == model;
            let goes_live = Kind::from_name(&e.kind).is_some_and(Kind::puts_model_live);
            if names_model {
                story.events.push(e.clone());
            } else if goes_live && serving.is_some() {
                // Another version took over: the end of this one's service.
                story.events.push(e.clone());
            }
            if goes_live {
                serving = names_model.then_some(e);
            }
        }
        if let Some(since) = serving {
            story.live.push((target, since));
        }
    }
    story.events.sort_by_key(|e| e.seq);
    Ok(story)
}

/// Which versions [`redefinitions`] looks at.
enum Versions<'a> {
    /// These references (a dossier's lineage): an index lookup each.
    Of(&'a BTreeSet<&'a str>),
    /// Every version `wanted` admits (the inventory): a scan by kind.
    All(&'a dyn Fn(&Event) -> bool),
}

/// A finding for every dataset or model version that was created more than
/// once up to the checkpoint (a ledger recorded before versions were made
/// immutable may hold one), among `versions`.
fn redefinitions(
    conn: &mut DbConn,
    tree_size: u64,
    readable: Visibility<'_>,
    versions: Versions<'_>,
) -> Result<Vec<Statement>, ReportError> {
    let mut out = Vec::new();
    for kind in [Kind::DatasetVersionCreated, Kind::ModelRegistered] {
        let mut first: BTreeMap<String, u64> = BTreeMap::new();
        let mut of_kind = Vec::new();
        let subjects: Vec<Option<String>> = match &versions {
            Versions::Of(refs) => refs.iter().map(|r| Some((*r).to_owned())).collect(),
            Versions::All(_) => vec![None],
        };
        for subject in subjects {
            let mut after = 0;
            'pages: loop {
                let filter = EventFilter {
                    kind: Some(kind.as_str().into()),
                    subject_exact: subject.is_some(),
                    subject: subject.clone(),
                    after_seq: after,
                    limit: 1000,
                    ..Default::default()
                };
                let page = events::list(conn, &filter)?;
                let Some(last) = page.last().map(|e| e.seq) else { break };
                for e in page {
                    if e.seq > tree_size {
                        break 'pages;
                    }
                    let versioned = EntityRef::parse(&e.subject).is_ok_and(|r| r.version_creating_kind() == Some(kind));
                    let wanted = match &versions {
                        Versions::Of(_) => true,
                        Versions::All(wanted) => wanted(&e),
                    };
                    if !versioned || !lineage::project_visible(e.project.as_deref(), readable) || !wanted {
                        continue;
                    }
                    match first.get(&e.subject) {
                        None => {
                            first.insert(e.subject.clone(), e.seq);
                        }
                        Some(original) => of_kind.push(Statement::citing(
                            format!(
                                "FINDING: {} was created again at seq {} by {} ({kind}), after its creation at seq {original}: what was recorded about this version changed after the fact.",
                                e.subject, e.seq, e.actor
                            ),
                            &e,
                        )),
                    }
                }
                after = last;
            }
        }
        // In seq order within a kind, however they were looked up.
        of_kind.sort_by_key(|s: &Statement| s.seq);
        out.extend(of_kind);
    }
    Ok(out)
}

/// A finding for every event about an entity that carries another project
/// than the one the entity was created in (possible only in a ledger
/// recorded before the append path refused them), shown to readers of both.
fn ownership_breaches(
    conn: &mut DbConn,
    tree_size: u64,
    readable: Visibility<'_>,
    project: Option<&str>,
) -> Result<Vec<Statement>, ReportError> {
    let breaches = projections::ownership_breaches(conn, tree_size)?;
    let seqs: Vec<u64> = breaches.iter().flat_map(|(seq, owned)| [*seq, *owned]).collect();
    let by_seq: BTreeMap<u64, Event> = events::by_seqs(conn, &seqs)?.into_iter().map(|e| (e.seq, e)).collect();
    let mut out = Vec::new();
    for (seq, owned) in breaches {
        let (Some(e), Some(creation)) = (by_seq.get(&seq), by_seq.get(&owned)) else { continue };
        let shown = |p: Option<&str>| lineage::project_visible(p, readable);
        let in_scope =
            project.is_none_or(|p| creation.project.as_deref() == Some(p) || e.project.as_deref() == Some(p));
        if !in_scope || !shown(e.project.as_deref()) || !shown(creation.project.as_deref()) {
            continue;
        }
        let name =
            |p: &Option<String>| p.as_deref().map_or_else(|| "no project".to_owned(), |p| format!("project {p}"));
        out.push(Statement::citing(
            format!(
                "FINDING: {} at seq {seq} by {} is about {}, created in {} at seq {owned}, but was recorded in {}: an entity's events must stay in its project.",
                e.kind,
                e.actor,
                e.subject,
                name(&creation.project),
                name(&e.project)
            ),
            e,
        ));
    }
    Ok(out)
}

/// "no findings", "1 finding", "3 findings".
pub(crate) fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {many}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// "project p", "the projects p and q".
pub(crate) fn projects_phrase(projects: &[String]) -> String {
    match projects {
        [one] => format!("project {one}"),
        several => format!("the projects {}", and_list(several)),
    }
}

/// "a", "a and b", "a, b and c".
pub(crate) fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// "live now in: …" for a story, as of the checkpoint.
fn live_line(model: &str, story: &DeploymentStory, tree_size: u64) -> String {
    if story.live.is_empty() {
        return format!("{model} is not live anywhere as of checkpoint {tree_size}.");
    }
    let places: Vec<String> =
        story.live.iter().map(|(target, since)| format!("{target} (since seq {})", since.seq)).collect();
    format!("{model} is live now in {}, as of checkpoint {tree_size}.", and_list(&places))
}

/// Every deployment entity's reference.
fn deployment_refs(conn: &mut DbConn) -> Result<Vec<String>, ReportError> {
    Ok(projections::entities_of_type(conn, "deployment")?.into_iter().map(|e| e.ref_).collect())
}

/// What the ledger says about one model version, as of the checkpoint.
struct ModelFacts<'a> {
    model: &'a str,
    registered: &'a Event,
    evaluations: &'a [Event],
    approvals: &'a [ApprovalHistory],
    deployments: &'a DeploymentStory,
    retired: Option<&'a Event>,
}

/// Findings about one model version: deployments without a valid approval
/// or to an undeclared environment, grants that overrode the environment's
/// rules, a live version
/// whose latest evaluation failed, a missing or stale evaluation, a retired
/// version still deployed.
fn findings(facts: &ModelFacts<'_>, as_of: &str, rules: &ApprovalRules) -> Vec<Statement> {
    let ModelFacts { model, registered, evaluations, approvals, deployments, retired } = *facts;
    let mut out = Vec::new();
    let own_deployments = deployments.events.iter().filter(|d| attrs(d)["model"] == *model);
    for d in own_deployments.filter(|d| Kind::from_name(&d.kind).is_some_and(Kind::puts_model_live)) {
        let name = d.subject.trim_start_matches("deployment:");
        let environment = crate::governance::kinds::deployment_environment(name);
        match rules.lookup(environment) {
            Ok(crate::governance::Environment::Ungated) => continue,
            Ok(crate::governance::Environment::Gated(_)) => {}
            Err(_) => {
                out.push(Statement::citing(
                    format!(
                        "FINDING: {model} went live in {environment} ({}) at {}, an environment policies/approvals.toml does not declare.",
                        d.subject, d.recorded_at
                    ),
                    d,
                ));
                continue;
            }
        }
        let valid = approvals.iter().any(|a| a.environment == environment && a.valid_at(&d.recorded_at));
        if !valid {
            out.push(Statement::citing(
                format!(
                    "FINDING: {model} went live in {environment} ({}) at {} without a valid approval for {environment}.",
                    d.subject, d.recorded_at
                ),
                d,
            ));
        }
    }
    for a in approvals {
        for d in a.decisions.iter().filter(|d| d.kind == Kind::ApprovalGranted) {
            let given = attrs(d);
            let Some(why) = given["override_reason"].as_str() else { continue };
            let list = |field: &str| -> Vec<String> {
                given[field].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
            };
            let (rules_overridden, found) = (list("overridden"), list("failed_checks"));
            let what = if rules_overridden.is_empty() {
                "although no rule was failing".to_owned()
            } else {
                format!("overriding rule {} ({})", rules_overridden.join(" and "), found.join("; "))
            };
            out.push(Statement::citing(
                format!(
                    "FINDING: {} of {model} for {} was granted by {} at seq {} {what}; override reason: \"{why}\".",
                    a.requested.subject, a.environment, d.actor, d.seq
                ),
                d,
            ));
        }
    }
    if let (Some(last), false) = (evaluations.last(), deployments.live.is_empty()) {
        if attrs(last)["passed"].as_bool() == Some(false) {
            let places: Vec<&str> = deployments.live.iter().map(|(t, _)| t.as_str()).collect();
            out.push(Statement::citing(
                format!(
                    "FINDING: {model} is live in {} although its latest evaluation (seq {}, {}) did not pass its thresholds ({}).",
                    places.join(", "),
                    last.seq,
                    last.recorded_at,
                    thresholds(&attrs(last))
                ),
                last,
            ));
        }
    }
    match evaluations.last() {
        None => out.push(Statement::citing(format!("FINDING: {model} has never been evaluated."), registered)),
        Some(last) => {
            let due = projections::add_seconds(
                &last.recorded_at,
                i64::try_from(rules.evaluation_max_age_seconds).unwrap_or(i64::MAX),
            );
            if due.as_str() < as_of {
                out.push(Statement::citing(
                    format!(
                        "FINDING: the latest evaluation of {model} ({}) is older than the {} days the policy allows; its review was due at {due}.",
                        last.recorded_at,
                        rules.evaluation_max_age_seconds / 86_400
                    ),
                    last,
                ));
            }
        }
    }
    if let Some(r) = retired {
        let live_after: Vec<&Event> = deployments
            .events
            .iter()
            .filter(|d| d.seq > r.seq && d.kind == Kind::DeploymentSucceeded && attrs(d)["model"] == *model)
            .collect();
        for d in live_after {
            out.push(Statement::citing(
                format!("FINDING: {model} was deployed to {} after it was retired.", d.subject),
                d,
            ));
        }
    }
    out
}

/// A finding for each traffic split that gave `model` a share of a gated
/// environment's deployment while no approval of it for that environment
/// was valid (a canary serves customers too).
fn unapproved_traffic(
    record: &super::monitoring::Record,
    model: &str,
    approvals: &[ApprovalHistory],
    rules: &ApprovalRules,
) -> Vec<Statement> {
    let mut out = Vec::new();
    for e in &record.traffic {
        let Some(share) = attrs(e)["shares"][model].as_f64() else { continue };
        let environment = crate::governance::kinds::deployment_environment(e.subject.trim_start_matches("deployment:"));
        if !matches!(rules.lookup(environment), Ok(crate::governance::Environment::Gated(_))) {
            continue;
        }
        if !approvals.iter().any(|a| a.environment == environment && a.valid_at(&e.recorded_at)) {
            out.push(Statement::citing(
                format!(
                    "FINDING: {model} was given {share}% of the traffic of {} at {} without a valid approval for {environment}.",
                    e.subject, e.recorded_at
                ),
                e,
            ));
        }
    }
    out
}

/// Adds the events behind `statements` to `cited` (for the bundle).
pub(crate) fn cite_all(
    conn: &mut DbConn,
    statements: &[Statement],
    cited: &mut BTreeMap<u64, Event>,
) -> Result<(), ReportError> {
    let missing: BTreeSet<u64> = statements.iter().map(|s| s.seq).filter(|s| !cited.contains_key(s)).collect();
    let missing: Vec<u64> = missing.into_iter().collect();
    for e in events::by_seqs(conn, &missing)? {
        cited.insert(e.seq, e);
    }
    Ok(())
}

/// Columns the dossier's diagram shows: those nearest the subject. Five
/// columns of boxes keep labels at a readable size across an A4 page.
const DIAGRAM_COLUMNS: usize = 5;
/// Boxes per column, summary boxes included: more would shrink the drawing.
const DIAGRAM_ROWS: usize = 10;

/// A lineage diagram of `graph`, in the columns [`super::layout`] draws it
/// with (the subject's last); each column's references in name order. A
/// large graph is summarized, not shrunk: columns beyond
/// [`DIAGRAM_COLUMNS`] from the subject become one "+N upstream entities"
/// box, and a column of more than [`DIAGRAM_ROWS`] boxes keeps the first
/// by name and shows the rest as "+N more datasets" (per entity type). The
/// diagram lists what each summary box stands for.
fn diagram(graph: &lineage::Graph) -> Diagram {
    let refs: Vec<&str> = graph.nodes.iter().map(|n| n.ref_.as_str()).collect();
    let index: BTreeMap<&str, usize> = refs.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let arrows: BTreeSet<(&str, &str)> = graph
        .edges
        .iter()
        .filter(|e| index.contains_key(e.source.as_str()) && index.contains_key(e.target.as_str()))
        .map(|e| (e.source.as_str(), e.target.as_str()))
        .collect();
    let pairs: Vec<(usize, usize)> = arrows.iter().map(|(s, t)| (index[s], index[t])).collect();
    let layout = super::layout::layered(refs.len(), &pairs, super::layout::Sizes::SCREEN);
    let mut columns: Vec<Vec<&str>> = layout
        .columns
        .iter()
        .map(|c| {
            let mut column: Vec<&str> = c.iter().map(|&n| refs[n]).collect();
            column.sort_unstable();
            column
        })
        .filter(|c| !c.is_empty())
        .collect();
    // What each reference is drawn as: itself, or the summary box it went into.
    let mut shown: BTreeMap<&str, String> = refs.iter().map(|r| (*r, (*r).to_owned())).collect();
    let mut summarized: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut summary_column = Vec::new();
    if columns.len() > DIAGRAM_COLUMNS {
        let far: Vec<&str> = columns.drain(..columns.len() - (DIAGRAM_COLUMNS - 1)).flatten().collect();
        let label = format!("+{} upstream {}", far.len(), if far.len() == 1 { "entity" } else { "entities" });
        for r in &far {
            shown.insert(r, label.clone());
        }
        summarized.insert(label.clone(), far.iter().map(|r| (*r).to_owned()).collect());
        summary_column.push(label);
    }
    let mut drawn: Vec<Vec<String>> = Vec::with_capacity(columns.len() + 1);
    if !summary_column.is_empty() {
        drawn.push(summary_column);
    }
    for column in columns {
        if column.len() <= DIAGRAM_ROWS {
            drawn.push(column.iter().map(|r| (*r).to_owned()).collect());
            continue;
        }
        let mut by_type: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in &column {
            by_type.entry(r.split(':').next().unwrap_or("entity")).or_default().push(r);
        }
        // Each type keeps a share of the boxes, one of which says what is left out.
        let share = (DIAGRAM_ROWS / by_type.len()).max(2);
        let mut kept = Vec::new();
        for (entity_type, members) in by_type {
            if members.len() <= share {
                kept.extend(members.iter().map(|r| (*r).to_owned()));
                continue;
            }
            let (visible, hidden) = members.split_at(share - 1);
            kept.extend(visible.iter().map(|r| (*r).to_owned()));
            let label = format!("+{} more {}", hidden.len(), plural(entity_type, hidden.len()));
            for r in hidden {
                shown.insert(r, label.clone());
            }
            summarized.insert(label.clone(), hidden.iter().map(|r| (*r).to_owned()).collect());
            kept.push(label);
        }
        drawn.push(kept);
    }
    let arrows: BTreeSet<(String, String)> =
        arrows.iter().map(|(s, t)| (shown[s].clone(), shown[t].clone())).filter(|(s, t)| s != t).collect();
    Diagram { columns: drawn, arrows: arrows.into_iter().collect(), summarized }
}

/// "datasets", "runs", "evaluations": an entity type as counted.
fn plural(entity_type: &str, n: usize) -> String {
    match (entity_type, n) {
        (t, 1) => t.to_owned(),
        (t, _) if t.ends_with('s') => format!("{t}es"),
        (t, _) => format!("{t}s"),
    }
}

fn section(template_section: &super::template::Section, text: String) -> ReportSection {
    ReportSection {
        heading: template_section.heading.clone(),
        text,
        show: template_section.show.clone(),
        statements: Vec::new(),
        columns: Vec::new(),
        citations: Vec::new(),
        diagram: None,
        charts: Vec::new(),
    }
}

fn common_values(info: &super::CheckpointInfo, as_of: &str) -> Vec<(&'static str, String)> {
    vec![
        ("tree_size", info.tree_size.to_string()),
        ("root_hash", info.root_hash.clone()),
        ("key_id", format!("{}+{}", info.key_name, info.key_id)),
        ("origin", info.origin.clone()),
        ("as_of", as_of.to_owned()),
    ]
}

/// The dossier of one model version.
pub fn model_dossier(
    basis: Basis<'_>,
    model: &str,
    rules: &ApprovalRules,
    template: &Template,
) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, checkpoint, readable, .. } = basis;
    let parsed = EntityRef::parse(model).map_err(|e| ReportError::Invalid(e.to_string()))?;
    if parsed.entity_type() != "model" || parsed.version().is_none() {
        return Err(ReportError::Invalid(format!("{model}: a dossier is about a model version, model:NAME@VERSION")));
    }
    let model = parsed.to_string();
    let (info, as_of) = basis.anchor()?;
    let tree_size = checkpoint.tree_size;
    let mut conn = store.conn()?;
    let own = about(&mut conn, &model, tree_size, readable)?;
    // A model of an unreadable project reads as unknown: its existence is
    // not disclosed either.
    let registered = own.iter().find(|e| e.kind == Kind::ModelRegistered).cloned();
    let Some(registered) = registered else {
        return Err(ReportError::NotFound(format!(
            "{model} is not a registered model version at checkpoint {tree_size}"
        )));
    };
    let evaluations: Vec<Event> = own.iter().filter(|e| e.kind == Kind::ModelEvaluated).cloned().collect();
    let explanations: Vec<Event> = own.iter().filter(|e| e.kind == Kind::ModelExplained).cloned().collect();
    let retired = own.iter().find(|e| e.kind == Kind::ModelRetired).cloned();
    let graph = lineage::lineage(
        &mut conn,
        &model,
        Walk::Upstream,
        lineage::MAX_DEPTH,
        Some(tree_size),
        readable,
        lineage::MAX_NODES,
    )?
    .ok_or_else(|| ReportError::NotFound(format!("{model} has no lineage at checkpoint {tree_size}")))?;
    let approvals = approvals_of(&mut conn, &model, tree_size, readable)?;
    let all_deployments = deployment_refs(&mut conn)?;
    let deployments = deployments_of(&mut conn, &model, tree_size, readable, &all_deployments)?;
    let facts = ModelFacts {
        model: &model,
        registered: &registered,
        evaluations: &evaluations,
        approvals: &approvals,
        deployments: &deployments,
        retired: retired.as_ref(),
    };
    let mut found = findings(&facts, &as_of, rules);
    let live: Vec<String> = deployments.live.iter().map(|(t, _)| t.clone()).collect();
    found.extend(super::monitoring::open_breach_findings(&own, &model, &live));
    let subjects: BTreeSet<String> = deployments.events.iter().map(|e| e.subject.clone()).collect();
    let record = super::monitoring::Record::read(&mut conn, &model, &subjects, tree_size, readable)?;
    found.extend(unapproved_traffic(&record, &model, &approvals, rules));
    // The version itself and the versions it was made from.
    let upstream: BTreeSet<&str> = graph.nodes.iter().map(|n| n.ref_.as_str()).collect();
    found.extend(redefinitions(&mut conn, tree_size, readable, Versions::Of(&upstream))?);

    let mut cited: BTreeMap<u64, Event> = BTreeMap::new();
    let mut values = common_values(&info, &as_of);
    values.push(("model", model.clone()));
    values.push(("findings", found.len().to_string()));
    let mut sections = Vec::new();
    for t in &template.sections {
        let mut s = section(t, super::template::fill(&t.text, &values));
        match t.show.as_str() {
            "model_card" => {
                let a = attrs(&registered);
                s.statements.push(Statement::citing(
                    format!(
                        "{model} was registered by {} at {} (framework {}, owner {}).",
                        registered.actor,
                        registered.recorded_at,
                        a["framework"].as_str().unwrap_or("not stated"),
                        a["owner"].as_str().unwrap_or("not stated")
                    ),
                    &registered,
                ));
                for e in &explanations {
                    let a = attrs(e);
                    for (field, label) in [
                        ("intended_use", "Intended use"),
                        ("limitations", "Limitations"),
                        ("method", "Explanation method"),
                    ] {
                        if let Some(v) = a[field].as_str() {
                            s.statements.push(Statement::citing(format!("{label}: {v}"), e));
                        }
                    }
                    for (field, label) in
                        [("feature_importances", "Feature importances"), ("fairness_metrics", "Fairness metrics")]
                    {
                        if a[field].is_object() {
                            s.statements.push(Statement::citing(format!("{label}: {}.", metrics(&a[field])), e));
                        }
                    }
                }
                if explanations.is_empty() {
                    s.statements.push(Statement::citing(
                        format!("No explanation or model card has been recorded for {model}."),
                        &registered,
                    ));
                }
            }
            "lineage" => {
                let seqs: Vec<u64> = graph.edges.iter().filter_map(|e| u64::try_from(e.seq).ok()).collect();
                let by_seq: BTreeMap<i64, Event> = events::by_seqs(&mut conn, &seqs)?
                    .into_iter()
                    .map(|e| (i64::try_from(e.seq).unwrap_or(i64::MAX), e))
                    .collect();
                for edge in &graph.edges {
                    if let Some(e) = by_seq.get(&edge.seq) {
                        let how = match Kind::from_name(&edge.kind) {
                            Some(Kind::ModelEvaluated) => "was evaluated on",
                            _ => "was made from",
                        };
                        s.statements.push(Statement::citing(format!("{} {how} {}.", edge.target, edge.source), e));
                    }
                }
                s.diagram = Some(diagram(&graph));
            }
            "evaluations" => {
                for e in &evaluations {
                    let a = attrs(e);
                    let on = if e.inputs.is_empty() { String::new() } else { format!(" on {}", e.inputs.join(", ")) };
                    let verdict = match a["passed"].as_bool() {
                        Some(true) => " Passed its thresholds.",
                        Some(false) => " Did NOT pass its thresholds.",
                        None => "",
                    };
                    s.statements.push(Statement::citing(
                        format!(
                            "Evaluated{on} by {} at {}: {}.{verdict}",
                            e.actor,
                            e.recorded_at,
                            metrics(&a["metrics"])
                        ),
                        e,
                    ));
                }
                if evaluations.is_empty() {
                    s.statements.push(Statement::citing(format!("{model} has not been evaluated."), &registered));
                }
            }
            "approvals" => {
                for a in &approvals {
                    let attributes = attrs(&a.requested);
                    let needs = format!(
                        "{} needed, valid {}",
                        count(attributes["required_approvals"].as_u64().unwrap_or(1) as usize, "approver", "approvers"),
                        count((a.valid_for / 86_400) as usize, "day", "days")
                    );
                    s.statements.push(
                        Statement::citing(
                            format!(
                                "Approval for {} requested by {} at {} ({needs}).",
                                a.environment, a.requested.actor, a.requested.recorded_at,
                            ),
                            &a.requested,
                        )
                        .with_cells(vec![
                            a.requested.seq.to_string(),
                            a.environment.clone(),
                            "requested".into(),
                            a.requested.actor.clone(),
                            a.requested.recorded_at.clone(),
                            needs,
                        ]),
                    );
                    for d in &a.decisions {
                        let verb = d.kind.trim_start_matches("approval.");
                        let given = attrs(d);
                        let overriding = given["override_reason"]
                            .as_str()
                            .map(|why| format!(" OVERRIDE of failing rules: \"{why}\""))
                            .unwrap_or_default();
                        let reason = given["reason"].as_str().unwrap_or("");
                        s.statements.push(
                            Statement::citing(
                                format!("{verb} by {} at {}: {reason}{overriding}", d.actor, d.recorded_at),
                                d,
                            )
                            .with_cells(vec![
                                d.seq.to_string(),
                                a.environment.clone(),
                                verb.to_owned(),
                                d.actor.clone(),
                                d.recorded_at.clone(),
                                format!("{reason}{overriding}").trim().to_owned(),
                            ]),
                        );
                    }
                }
                if approvals.is_empty() {
                    s.statements
                        .push(Statement::citing(format!("No approval of {model} has been requested."), &registered));
                }
            }
            "monitoring" => {
                let breaches: Vec<&Event> =
                    record.changes.iter().filter(|e| e.kind == Kind::MonitoringThresholdBreached).collect();
                let triggered = super::monitoring::triggered_runs(&mut conn, &breaches, tree_size, readable)?;
                let runs: Vec<String> = graph
                    .edges
                    .iter()
                    .filter(|e| e.target == model && e.source.starts_with("run:"))
                    .map(|e| e.source.clone())
                    .collect();
                s.statements = super::monitoring::answered(&mut conn, &runs, tree_size, readable)?;
                s.statements.extend(super::monitoring::statements(&record, &model, &triggered, &registered));
                let limits = super::monitoring::rules_at(&mut conn, tree_size, rules)?;
                s.charts = super::monitoring::charts(&record, &model, limits.as_ref());
            }
            "deployments" => {
                for d in &deployments.events {
                    let a = attrs(d);
                    let reason = a["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
                    let what = d.kind.trim_start_matches("deployment.").replace('_', " ");
                    let (at, by) = (&d.recorded_at, &d.actor);
                    let text = if a["model"] == model.as_str() {
                        format!("{}: {what} at {at} (recorded by {by}){reason}", d.subject)
                    } else {
                        // An event that took this version out of service there.
                        let other = a["model"].as_str().unwrap_or("another version");
                        let change = match Kind::from_name(&d.kind) {
                            Some(Kind::DeploymentRolledBack) => format!("rolled back to {other}"),
                            _ => format!("{other} went live"),
                        };
                        format!(
                            "{}: {change} at {at} (recorded by {by}){reason}; {model} no longer serves there.",
                            d.subject
                        )
                    };
                    s.statements.push(Statement::citing(text, d));
                }
                if deployments.events.is_empty() {
                    s.statements.push(Statement::citing(format!("{model} has not been deployed."), &registered));
                }
                let line = live_line(&model, &deployments, tree_size);
                match deployments.live.first() {
                    Some((_, since)) => s.statements.push(Statement::citing(line, since)),
                    None => {
                        s.statements.push(Statement::citing(line, deployments.events.last().unwrap_or(&registered)))
                    }
                }
            }
            _ => {
                s.statements.extend(found.iter().cloned().map(super::finding_row));
                if found.is_empty() {
                    s.statements.push(Statement::citing(format!("No open findings for {model}."), &registered));
                }
            }
        }
        cite_all(&mut conn, &s.statements, &mut cited)?;
        s.columns = super::table_columns(&s.show, &s.statements);
        sections.push(s);
    }
    let report = Report {
        report: "model-dossier".into(),
        title: super::template::fill(&template.title, &values),
        subtitle: template.subtitle.as_ref().map(|s| super::template::fill(s, &values)),
        scope: model.clone(),
        as_of,
        checkpoint: info,
        sections,
        appendix: template.appendix.as_ref().map(|b| super::template::Block {
            heading: b.heading.clone(),
            text: super::template::fill(&b.text, &values),
        }),
        warnings: Vec::new(),
    };
    Ok((report, cited.into_values().collect()))
}

/// Every model version at the checkpoint (of `project`, if given) that a
/// reader of `readable` may see, SR 11-7 style.
pub fn model_inventory(
    basis: Basis<'_>,
    project: Option<&str>,
    rules: &ApprovalRules,
    template: &Template,
) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, checkpoint, readable, .. } = basis;
    let (info, as_of) = basis.anchor()?;
    let tree_size = checkpoint.tree_size;
    let mut conn = store.conn()?;
    let as_of_seq = i64::try_from(tree_size).unwrap_or(i64::MAX);
    let models: Vec<String> = projections::entities_of_type(&mut conn, "model")?
        .into_iter()
        .filter(|e| e.version.is_some() && e.created_seq <= as_of_seq)
        .filter(|e| project.is_none_or(|p| e.project.as_deref() == Some(p)))
        .filter(|e| lineage::project_visible(e.project.as_deref(), readable))
        .map(|e| e.ref_)
        .collect();
    let all_deployments = deployment_refs(&mut conn)?;
    let mut rows = Vec::new();
    let mut all_findings = Vec::new();
    for model in &models {
        let own = about(&mut conn, model, tree_size, readable)?;
        let Some(registered) = own.iter().find(|e| e.kind == Kind::ModelRegistered).cloned() else { continue };
        let evaluations: Vec<Event> = own.iter().filter(|e| e.kind == Kind::ModelEvaluated).cloned().collect();
        let retired = own.iter().find(|e| e.kind == Kind::ModelRetired).cloned();
        let approvals = approvals_of(&mut conn, model, tree_size, readable)?;
        let deployments = deployments_of(&mut conn, model, tree_size, readable, &all_deployments)?;
        let live: Vec<String> = deployments.live.iter().map(|(t, _)| t.clone()).collect();
        let approved: Vec<String> = approvals
            .iter()
            .map(|a| format!("{} {}", a.environment, if a.valid_at(&as_of) { "valid" } else { "not valid" }))
            .collect();
        let facts = ModelFacts {
            model,
            registered: &registered,
            evaluations: &evaluations,
            approvals: &approvals,
            deployments: &deployments,
            retired: retired.as_ref(),
        };
        let mut found = findings(&facts, &as_of, rules);
        found.extend(super::monitoring::open_breach_findings(&own, model, &live));
        let a = attrs(&registered);
        let owner = a["owner"].as_str().unwrap_or(&registered.actor).to_owned();
        let status = if retired.is_some() { "retired" } else { "active" };
        let evaluated = evaluations.last().map_or("never".to_owned(), |e| format!("{} (seq {})", e.recorded_at, e.seq));
        let approved = if approved.is_empty() { "none".to_owned() } else { approved.join(", ") };
        let live = if live.is_empty() { "nowhere".to_owned() } else { live.join(", ") };
        rows.push(
            Statement::citing(
                format!(
                    "{model}: owner {owner}, {status}; last validation {evaluated}; approvals: {approved}; live in: {live}; {}.",
                    count(found.len(), "finding", "findings")
                ),
                &registered,
            )
            .with_cells(vec![model.clone(), owner, status.into(), live, evaluated, approved, found.len().to_string()]),
        );
        all_findings.extend(found);
    }
    let in_project = |e: &Event| project.is_none_or(|p| e.project.as_deref() == Some(p));
    all_findings.extend(redefinitions(&mut conn, tree_size, readable, Versions::All(&in_project))?);
    all_findings.extend(ownership_breaches(&mut conn, tree_size, readable, project)?);
    let mut values = common_values(&info, &as_of);
    values.push(("models", rows.len().to_string()));
    values.push(("findings", all_findings.len().to_string()));
    let scope = match (project, readable) {
        (Some(p), _) => format!("the model versions of project {p}"),
        (None, Some(projects)) => format!("the model versions of {}", projects_phrase(projects)),
        (None, None) => "every model version".into(),
    };
    let parts = Assembly { kind: "model-inventory", scope, as_of, checkpoint: info, values };
    let all_findings: Vec<Statement> = all_findings.into_iter().map(super::finding_row).collect();
    assemble(&mut conn, template, parts, |show| if show == "inventory" { rows.clone() } else { all_findings.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(String, String)]) -> lineage::Graph {
        let mut refs: BTreeSet<&str> = BTreeSet::new();
        for (s, t) in edges {
            refs.extend([s.as_str(), t.as_str()]);
        }
        let node = |r: &str| lineage::Node {
            ref_: r.to_owned(),
            entity_type: r.split(':').next().unwrap().to_owned(),
            name: r.to_owned(),
            version: None,
            project: None,
            status: "active".into(),
            seq: 1,
        };
        lineage::Graph {
            node: "model:m@1".into(),
            direction: "upstream",
            depth: 10,
            as_of_seq: None,
            nodes: refs.iter().map(|r| node(r)).collect(),
            edges: edges
                .iter()
                .map(|(s, t)| lineage::Edge {
                    source: s.clone(),
                    target: t.clone(),
                    seq: 1,
                    ended_seq: None,
                    kind: "run.started".into(),
                })
                .collect(),
            truncated: false,
            node_limit: 500,
            omitted_nodes: 0,
            hidden_nodes: 0,
        }
    }

    #[test]
    fn generated_phrases_read_for_none_one_and_several() {
        let items = |n: usize| (1..=n).map(|i| format!("deployment:{i}")).collect::<Vec<_>>();
        assert_eq!(and_list(&items(0)), "");
        assert_eq!(and_list(&items(1)), "deployment:1");
        assert_eq!(and_list(&items(2)), "deployment:1 and deployment:2");
        assert_eq!(and_list(&items(3)), "deployment:1, deployment:2 and deployment:3");
        assert_eq!(count(0, "finding", "findings"), "no findings");
        assert_eq!(count(1, "approver", "approvers"), "1 approver");
        assert_eq!(count(2, "day", "days"), "2 days");
        assert_eq!(projects_phrase(&["credit".into()]), "project credit");
        assert_eq!(projects_phrase(&["credit".into(), "cards".into()]), "the projects credit and cards");
    }

    #[test]
    fn a_small_diagram_is_drawn_whole() {
        let edges = vec![
            ("dataset:a@1".to_owned(), "run:r".to_owned()),
            ("run:r".to_owned(), "model:m@1".to_owned()),
            ("dataset:e@1".to_owned(), "model:m@1".to_owned()),
        ];
        let d = diagram(&graph(&edges));
        assert_eq!(d.columns.iter().flatten().count(), 4);
        assert_eq!(d.arrows.len(), 3);
        assert!(d.summarized.is_empty());
    }

    #[test]
    fn a_wide_column_is_summarized_by_type_and_its_edges_follow_the_summary() {
        let mut edges: Vec<(String, String)> =
            (0..24).map(|i| (format!("dataset:d{i:02}@1"), "run:train".to_owned())).collect();
        edges.push(("run:train".into(), "model:m@1".into()));
        let d = diagram(&graph(&edges));
        assert_eq!(d.columns.len(), 3);
        let first = &d.columns[0];
        assert!(first.len() <= DIAGRAM_ROWS, "{first:?}");
        let label = "+15 more datasets";
        assert_eq!(first.last().map(String::as_str), Some(label), "{first:?}");
        assert_eq!(d.summarized[label].len(), 15);
        assert!(d.summarized[label].contains(&"dataset:d23@1".to_owned()));
        assert!(d.arrows.contains(&(label.to_owned(), "run:train".to_owned())));
        // Every reference is shown or summarized, once.
        let shown = first.len() - 1 + d.summarized[label].len();
        assert_eq!(shown, 24);
    }

    #[test]
    fn a_deep_graph_keeps_the_columns_nearest_the_subject() {
        let chain: Vec<String> = (0..9).map(|i| format!("dataset:step{i}@1")).chain(["model:m@1".into()]).collect();
        let edges: Vec<(String, String)> = chain.windows(2).map(|w| (w[0].clone(), w[1].clone())).collect();
        let d = diagram(&graph(&edges));
        assert_eq!(d.columns.len(), DIAGRAM_COLUMNS);
        assert_eq!(d.columns[0], ["+6 upstream entities"]);
        assert_eq!(d.columns.last().unwrap(), &["model:m@1"]);
        assert!(d.arrows.contains(&("+6 upstream entities".to_owned(), "dataset:step6@1".to_owned())));
        assert_eq!(d.summarized["+6 upstream entities"].len(), 6);
        assert_eq!(plural("dataset", 1), "dataset");
        assert_eq!(plural("process", 2), "processes");
    }
}
