//! The regulatory reports: `gdpr-processing` (GDPR Art. 30 record of a
//! dataset's or a project's processing) and `ai-act-log` (EU AI Act Art. 12
//! record-keeping extract of a deployment over a time window, with an
//! Annex IV summary of the models it served).

use std::collections::BTreeSet;

use super::models::{about, attrs};
use super::{assemble, Assembly, Basis, Report, ReportError, Statement, Template};
use crate::governance::lineage::{self, Visibility, Walk};
use crate::ledger::{EntityRef, Event, Kind};
use crate::store::projections;
use crate::store::{events, DbConn};

/// `show` values of the gdpr-processing template.
pub const GDPR_SHOWS: [&str; 4] = ["classification", "usage", "deployments", "findings"];
/// `show` values of the gdpr-erasure template.
pub const ERASURE_SHOWS: [&str; 3] = ["erasure", "affected", "verification"];
/// `show` values of the ai-act-log template.
pub const AI_ACT_SHOWS: [&str; 5] = ["record_keeping", "models", "post_market_monitoring", "data", "verification"];

/// What a gdpr-processing report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GdprScope {
    /// A dataset; an unversioned reference includes every version.
    Dataset(String),
    /// Every dataset of a project.
    Project(String),
}

fn event_at(conn: &mut DbConn, seq: i64) -> Result<Option<Event>, ReportError> {
    Ok(events::by_seq(conn, u64::try_from(seq).unwrap_or(0))?)
}

/// The datasets (unversioned and versions) a scope names, as of `as_of_seq`.
fn datasets_in(
    conn: &mut DbConn,
    scope: &GdprScope,
    as_of_seq: i64,
    readable: Visibility<'_>,
) -> Result<Vec<String>, ReportError> {
    let mut all = projections::entities_of_type(conn, "dataset")?;
    all.retain(|e| lineage::project_visible(e.project.as_deref(), readable));
    let selected: Vec<String> = match scope {
        GdprScope::Dataset(r) => {
            let parsed = EntityRef::parse(r).map_err(|e| ReportError::Invalid(e.to_string()))?;
            all.into_iter()
                .filter(|e| e.created_seq <= as_of_seq && e.name == parsed.name())
                .filter(|e| {
                    parsed.version().is_none() || e.version.as_deref() == parsed.version() || e.version.is_none()
                })
                .map(|e| e.ref_)
                .collect()
        }
        GdprScope::Project(p) => all
            .into_iter()
            .filter(|e| e.created_seq <= as_of_seq && e.project.as_deref() == Some(p.as_str()))
            .map(|e| e.ref_)
            .collect(),
    };
    if selected.is_empty() {
        return Err(ReportError::NotFound(format!("no dataset matches {scope:?} at this checkpoint")));
    }
    Ok(selected)
}

/// What a classification says of a dataset, as the predicate of a sentence
/// ("contains personal data (...); legal basis ...", "is classified as
/// containing no personal data"), so that each report can build its own
/// sentence around it and none reads as two glued together.
fn classification_clause(e: &Event) -> String {
    let a = attrs(e);
    if a["contains_personal_data"].as_bool() == Some(true) {
        let categories: Vec<&str> = a["personal_data_categories"]
            .as_array()
            .map(|c| c.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let categories = match categories.as_slice() {
            [] => "categories not stated".to_owned(),
            [one] => format!("category {one}"),
            several => format!("categories {}", several.join(", ")),
        };
        format!(
            "contains personal data ({categories}); legal basis {}; retention {}; purpose {}{}",
            a["legal_basis"].as_str().unwrap_or("not stated"),
            a["retention"].as_str().unwrap_or("not stated"),
            a["purpose"].as_str().unwrap_or("not stated"),
            if a["special_categories"].as_bool() == Some(true) { "; includes special categories (Art. 9)" } else { "" }
        )
    } else {
        "is classified as containing no personal data".to_owned()
    }
}

fn describe_classification(dataset: &str, e: &Event) -> String {
    format!("{dataset} {}.", classification_clause(e))
}

/// The GDPR record of processing of a dataset or a project.
pub fn gdpr_processing(
    basis: Basis<'_>,
    scope: &GdprScope,
    template: &Template,
) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, checkpoint, readable, .. } = basis;
    let (info, as_of) = basis.anchor()?;
    let tree_size = checkpoint.tree_size;
    let as_of_seq = i64::try_from(tree_size).unwrap_or(i64::MAX);
    let mut conn = store.conn()?;
    let datasets = datasets_in(&mut conn, scope, as_of_seq, readable)?;

    let mut classification = Vec::new();
    let mut findings = Vec::new();
    let mut personal: BTreeSet<String> = BTreeSet::new();
    for dataset in &datasets {
        let classified: Vec<Event> = about(&mut conn, dataset, tree_size, readable)?
            .into_iter()
            .filter(|e| e.kind == Kind::DatasetClassified)
            .collect();
        if let Some(latest) = classified.last() {
            classification.push(Statement::citing(describe_classification(dataset, latest), latest));
            if attrs(latest)["contains_personal_data"].as_bool() == Some(true) {
                personal.insert(dataset.clone());
            }
        }
    }
    // A version inherits its dataset's classification.
    for dataset in &datasets {
        if let Ok(r) = EntityRef::parse(dataset) {
            if r.version().is_some() && personal.contains(&format!("dataset:{}", r.name())) {
                personal.insert(dataset.clone());
            }
        }
    }

    let mut usage = Vec::new();
    let mut deployments = Vec::new();
    let mut seen_edges = BTreeSet::new();
    for dataset in &datasets {
        let Some(graph) = lineage::lineage(
            &mut conn,
            dataset,
            Walk::Downstream,
            lineage::MAX_DEPTH,
            Some(tree_size),
            readable,
            lineage::MAX_NODES,
        )?
        else {
            continue;
        };
        let used = graph.edges.iter().any(|e| e.source == *dataset);
        let classified = classification.iter().any(|s| {
            s.text.starts_with(&format!("{dataset} "))
                || EntityRef::parse(dataset).is_ok_and(|r| s.text.starts_with(&format!("dataset:{} ", r.name())))
        });
        if used && !classified {
            if let Some(first) = graph.edges.iter().find(|e| e.source == *dataset) {
                if let Some(e) = event_at(&mut conn, first.seq)? {
                    findings.push(Statement::citing(
                        format!("FINDING: {dataset} is used ({}) but has never been classified.", first.target),
                        &e,
                    ));
                }
            }
        }
        for edge in &graph.edges {
            if !seen_edges.insert((edge.source.clone(), edge.target.clone(), edge.seq)) {
                continue;
            }
            let Some(e) =
                event_at(&mut conn, edge.seq)?.filter(|e| lineage::project_visible(e.project.as_deref(), readable))
            else {
                continue;
            };
            let target_type = edge.target.split(':').next().unwrap_or_default();
            match target_type {
                "run" => usage.push(Statement::citing(format!("{} read {}.", edge.target, edge.source), &e)),
                "model" => usage.push(Statement::citing(
                    format!(
                        "{} {} {}.",
                        edge.target,
                        if edge.kind == Kind::ModelEvaluated { "was evaluated on" } else { "was made from" },
                        edge.source
                    ),
                    &e,
                )),
                "deployment" if edge.ended_seq.is_none() => deployments.push(Statement::citing(
                    format!("{} serves {} (live since {}).", edge.target, edge.source, e.recorded_at),
                    &e,
                )),
                "deployment" => deployments.push(Statement::citing(
                    format!(
                        "{} served {} from {} until seq {}.",
                        edge.target,
                        edge.source,
                        e.recorded_at,
                        edge.ended_seq.unwrap_or_default()
                    ),
                    &e,
                )),
                _ => usage.push(Statement::citing(format!("{} was derived from {}.", edge.target, edge.source), &e)),
            }
        }
    }
    let scope_text = match scope {
        GdprScope::Dataset(r) => format!("the dataset {r}"),
        GdprScope::Project(p) => format!("the datasets of project {p}"),
    };
    let values = vec![
        ("scope", scope_text.clone()),
        ("datasets", datasets.len().to_string()),
        ("personal", personal.len().to_string()),
        ("findings", findings.len().to_string()),
        ("tree_size", info.tree_size.to_string()),
        ("root_hash", info.root_hash.clone()),
        ("as_of", as_of.clone()),
    ];
    let parts = Assembly { kind: "gdpr-processing", scope: scope_text, as_of, checkpoint: info, values };
    let findings: Vec<Statement> = findings.into_iter().map(super::finding_row).collect();
    assemble(&mut conn, template, parts, |show| match show {
        "classification" => classification.clone(),
        "usage" => usage.clone(),
        "deployments" => deployments.clone(),
        _ => findings.clone(),
    })
}

/// "key id K1", "key ids K1, K2".
fn key_ids(ids: &[String]) -> String {
    format!("{} {}", if ids.len() == 1 { "key id" } else { "key ids" }, ids.join(", "))
}

/// The AI Act record-keeping extract of `deployment` over `[from, to)`.
pub fn ai_act_log(
    basis: Basis<'_>,
    deployment: &str,
    from: Option<&str>,
    to: Option<&str>,
    template: &Template,
) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, proofs, checkpoint, readable } = basis;
    let parsed = EntityRef::parse(deployment).map_err(|e| ReportError::Invalid(e.to_string()))?;
    if parsed.entity_type() != "deployment" {
        return Err(ReportError::Invalid(format!("{deployment}: expected deployment:ENVIRONMENT/NAME")));
    }
    let (info, as_of) = basis.anchor()?;
    let tree_size = checkpoint.tree_size;
    let mut conn = store.conn()?;
    let in_window = |at: &str| from.is_none_or(|f| at >= f) && to.is_none_or(|t| at < t);
    let history = about(&mut conn, deployment, tree_size, readable)?;
    if history.is_empty() {
        return Err(ReportError::NotFound(format!("no events about {deployment} at this checkpoint")));
    }
    let mut record = Vec::new();
    for e in history.iter().filter(|e| in_window(&e.recorded_at)) {
        let a = attrs(e);
        let reasons = a["reasons"]
            .as_array()
            .map(|r| format!(" Gate: {}.", r.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join("; ")))
            .unwrap_or_default();
        record.push(Statement::citing(
            format!(
                "{} {}: {} (recorded by {}).{reasons}",
                e.recorded_at,
                e.kind,
                a["model"].as_str().unwrap_or("?"),
                e.actor
            ),
            e,
        ));
    }
    // The models that served the deployment at any time in the window: the
    // one live at its start, and every one that went live during it.
    let mut served: BTreeSet<String> = BTreeSet::new();
    let mut live: Option<String> = None;
    for e in &history {
        if Kind::from_name(&e.kind).is_some_and(Kind::puts_model_live) {
            let model = attrs(e)["model"].as_str().unwrap_or_default().to_owned();
            if from.is_some_and(|f| e.recorded_at.as_str() < f) {
                live = Some(model);
            } else if in_window(&e.recorded_at) {
                served.insert(model);
            }
        }
    }
    served.extend(live);
    let mut models = Vec::new();
    let mut data = Vec::new();
    for model in &served {
        let own = about(&mut conn, model, tree_size, readable)?;
        for e in &own {
            let a = attrs(e);
            match Kind::from_name(&e.kind) {
                Some(Kind::ModelRegistered) => models.push(Statement::citing(
                    format!(
                        "{model}: registered by {} at {} (framework {}).",
                        e.actor,
                        e.recorded_at,
                        a["framework"].as_str().unwrap_or("not stated")
                    ),
                    e,
                )),
                Some(Kind::ModelExplained) => {
                    for (field, label) in [("intended_use", "intended use"), ("limitations", "limitations")] {
                        if let Some(v) = a[field].as_str() {
                            models.push(Statement::citing(format!("{model}, {label}: {v}"), e));
                        }
                    }
                }
                Some(Kind::ModelEvaluated) => models.push(Statement::citing(
                    format!(
                        "{model}, evaluated at {}: {}.",
                        e.recorded_at,
                        a["metrics"]
                            .as_object()
                            .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    ),
                    e,
                )),
                _ => {}
            }
        }
        if let Some(graph) = lineage::lineage(
            &mut conn,
            model,
            Walk::Upstream,
            lineage::MAX_DEPTH,
            Some(tree_size),
            readable,
            lineage::MAX_NODES,
        )? {
            for node in graph.nodes.iter().filter(|n| n.entity_type == "dataset") {
                let classified = about(&mut conn, &node.ref_, tree_size, readable)?
                    .into_iter()
                    .chain(about(&mut conn, &format!("dataset:{}", node.name), tree_size, readable)?)
                    .filter(|e| e.kind == Kind::DatasetClassified)
                    .max_by_key(|e| e.seq);
                let statement = match &classified {
                    Some(c) => {
                        let clause = classification_clause(c);
                        Statement::citing(format!("{model} rests on {}, which {clause}.", node.ref_), c)
                    }
                    None => match event_at(&mut conn, node.seq)? {
                        Some(e) => Statement::citing(
                            format!("{model} rests on {}, which has not been classified.", node.ref_),
                            &e,
                        ),
                        None => continue,
                    },
                };
                data.push(statement);
            }
        }
    }
    let monitoring = post_market(&mut conn, deployment, &served, &in_window, tree_size, readable)?;
    let verification = proofs.verify()?;
    let chain = match &verification.failure {
        None => format!("intact, {} events verified", verification.verified),
        Some(f) => format!("BROKEN at seq {}: {}", f.seq, f.message),
    };
    let window = match (from, to) {
        (None, None) => "its whole history".to_owned(),
        (Some(f), None) => format!("from {f}"),
        (None, Some(t)) => format!("before {t}"),
        (Some(f), Some(t)) => format!("from {f} to {t} (exclusive)"),
    };
    let values = vec![
        ("deployment", deployment.to_owned()),
        ("window", window.clone()),
        ("models", served.len().to_string()),
        ("events", record.len().to_string()),
        ("chain_result", chain),
        ("tree_size", info.tree_size.to_string()),
        ("root_hash", info.root_hash.clone()),
        ("as_of", as_of.clone()),
    ];
    let parts =
        Assembly { kind: "ai-act-log", scope: format!("{deployment}, {window}"), as_of, checkpoint: info, values };
    assemble(&mut conn, template, parts, |show| match show {
        "record_keeping" => record.clone(),
        "models" => models.clone(),
        "data" => data.clone(),
        "post_market_monitoring" => monitoring.clone(),
        _ => Vec::new(),
    })
}

/// Post-market monitoring (Art. 72) of `deployment` in the window: for each
/// model version that served it, the metrics reported, the breaches and
/// recoveries, drift, traffic shares and the retraining they triggered,
/// where the deployment runs.
fn post_market(
    conn: &mut DbConn,
    deployment: &str,
    served: &BTreeSet<String>,
    in_window: &dyn Fn(&str) -> bool,
    tree_size: u64,
    readable: Visibility<'_>,
) -> Result<Vec<Statement>, ReportError> {
    let environment = crate::governance::kinds::deployment_environment(deployment.trim_start_matches("deployment:"));
    let here = |e: &Event| {
        let a = attrs(e);
        let when = a["window"]["end"].as_str().unwrap_or(&e.recorded_at).to_owned();
        let place = e.subject == deployment || a["environment"].as_str() == Some(environment);
        place && in_window(&when)
    };
    let mut out = Vec::new();
    let only = BTreeSet::from([deployment.to_owned()]);
    for model in served {
        let mut record = super::monitoring::Record::read(conn, model, &only, tree_size, readable)?;
        record.reports.retain(here);
        record.changes.retain(here);
        record.drift.retain(here);
        record.traffic.retain(|e| in_window(&e.recorded_at));
        let breaches: Vec<&Event> =
            record.changes.iter().filter(|e| e.kind == Kind::MonitoringThresholdBreached).collect();
        let triggered = super::monitoring::triggered_runs(conn, &breaches, tree_size, readable)?;
        if record.reports.is_empty()
            && record.changes.is_empty()
            && record.drift.is_empty()
            && record.traffic.is_empty()
        {
            if let Some(registered) = super::models::about(conn, model, tree_size, readable)?
                .into_iter()
                .find(|e| e.kind == Kind::ModelRegistered)
            {
                out.push(Statement::citing(
                    format!("No monitoring of {model} in {environment} is on the record for the window."),
                    &registered,
                ));
            }
            continue;
        }
        let registered = record.reports.first().or(record.changes.first()).cloned();
        if let Some(first) = registered {
            out.extend(super::monitoring::statements(&record, model, &triggered, &first));
        }
    }
    Ok(out)
}

/// The erasure certificate of the subject with `pseudonym` (its latest
/// erasure at the checkpoint).
pub fn gdpr_erasure(basis: Basis<'_>, subject: &str, template: &Template) -> Result<(Report, Vec<Event>), ReportError> {
    let Basis { store, proofs, checkpoint, readable } = basis;
    let pseudonym = subject.strip_prefix("subject:").unwrap_or(subject);
    let subject_ref = crate::governance::subjects::subject_ref(pseudonym);
    let (info, as_of) = basis.anchor()?;
    let tree_size = checkpoint.tree_size;
    let mut conn = store.conn()?;
    let erasures: Vec<Event> = about(&mut conn, &subject_ref, tree_size, readable)?
        .into_iter()
        .filter(|e| e.kind == Kind::SubjectErased)
        .collect();
    let Some(erasure) = erasures.last() else {
        return Err(ReportError::NotFound(format!("no erasure of {subject_ref} at checkpoint {tree_size}")));
    };
    // Every erasure of the subject, oldest first: the certificate is
    // cumulative, so a later erasure never hides the keys an earlier one
    // destroyed or the reason it was given.
    let certificates = erasures
        .iter()
        .map(|e| {
            crate::governance::subjects::certificate_of(e)
                .ok_or_else(|| ReportError::Invalid(format!("seq {} is not a well-formed erasure", e.seq)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let named: Vec<u64> =
        crate::store::subjects::events_of(&mut conn, pseudonym)?.into_iter().filter(|s| *s < erasure.seq).collect();
    let events_affected = named.len();
    let affected: Vec<Event> = named
        .chunks(500)
        .map(|chunk| events::by_seqs(&mut conn, chunk))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
        .filter(|e| lineage::project_visible(e.project.as_deref(), readable))
        .collect();
    let verification = proofs.verify()?;
    let chain = match &verification.failure {
        None => format!("intact, {} events verified", verification.verified),
        Some(f) => format!("BROKEN at seq {}: {}", f.seq, f.message),
    };
    let all_keys: Vec<String> = certificates.iter().flat_map(|c| c.key_ids_destroyed.iter().cloned()).collect();
    let keys = if all_keys.is_empty() {
        "none held: the subject was only listed, with no fields".to_owned()
    } else {
        key_ids(&all_keys)
    };
    let count = certificates.len();
    let mut erasure_statements = Vec::new();
    for (i, (event, certificate)) in erasures.iter().zip(&certificates).enumerate() {
        let destroyed = if certificate.key_ids_destroyed.is_empty() {
            "no key was held".to_owned()
        } else {
            format!("{} destroyed", key_ids(&certificate.key_ids_destroyed))
        };
        let reason =
            certificate.reason.as_deref().map_or_else(|| "no reason given".to_owned(), |r| format!("reason: {r}"));
        let which = if count == 1 { "Erasure".to_owned() } else { format!("Erasure {} of {count}", i + 1) };
        erasure_statements.push(Statement::citing(
            format!(
                "{which} of {pseudonym} recorded at {} by {}; {} affected; {destroyed}; {reason}.",
                event.recorded_at,
                event.actor,
                super::models::count(
                    usize::try_from(certificate.events_affected).unwrap_or(usize::MAX),
                    "event",
                    "events"
                )
            ),
            event,
        ));
    }
    let affected_statements: Vec<Statement> = affected
        .iter()
        .map(|e| {
            Statement::citing(
                format!(
                    "{} about {} ({}) named the subject; its personal fields are erased.",
                    e.kind, e.subject, e.recorded_at
                ),
                e,
            )
        })
        .collect();
    let verification_statements = vec![Statement::citing(format!("Chain {chain}."), erasure)];
    let values = vec![
        ("pseudonym", pseudonym.to_owned()),
        ("erased_at", erasure.recorded_at.clone()),
        ("requested_by", erasure.actor.clone()),
        ("events_affected", events_affected.to_string()),
        ("keys_destroyed", keys),
        ("chain_result", chain),
        ("tree_size", info.tree_size.to_string()),
        ("root_hash", info.root_hash.clone()),
        ("as_of", as_of.clone()),
    ];
    let parts = Assembly { kind: "gdpr-erasure", scope: subject_ref, as_of, checkpoint: info, values };
    assemble(&mut conn, template, parts, |show| match show {
        "erasure" => erasure_statements.clone(),
        "affected" => affected_statements.clone(),
        _ => verification_statements.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classified(attributes: serde_json::Value) -> Event {
        Event {
            seq: 7,
            id: "01a2".into(),
            recorded_at: "2026-12-01T00:00:00Z".into(),
            actor: "dpo".into(),
            kind: "dataset.classified".into(),
            subject: "dataset:loans@1".into(),
            project: Some("credit".into()),
            inputs: vec![],
            outputs: vec![],
            attributes: attributes.to_string(),
            occurred_at: None,
            idempotency_key: None,
            prev_hash: [0; 32],
            hash: [1; 32],
        }
    }

    #[test]
    fn classification_sentences_read_for_none_one_and_several_categories() {
        let with = |categories: serde_json::Value| {
            describe_classification(
                "dataset:loans@1",
                &classified(serde_json::json!({"contains_personal_data": true, "personal_data_categories": categories,
                                               "legal_basis": "contract", "retention": "5y", "purpose": "credit scoring"})),
            )
        };
        assert_eq!(
            with(serde_json::json!([])),
            "dataset:loans@1 contains personal data (categories not stated); legal basis contract; retention 5y; \
             purpose credit scoring."
        );
        assert!(with(serde_json::json!(["email"])).contains("(category email);"));
        assert!(with(serde_json::json!(["email", "income"])).contains("(categories email, income);"));
        let none = classified(serde_json::json!({"contains_personal_data": false}));
        assert_eq!(
            describe_classification("dataset:cb@1", &none),
            "dataset:cb@1 is classified as containing no personal data."
        );
        // The AI Act log builds "<model> rests on <dataset>, which <clause>." around the same clause.
        assert_eq!(
            format!("model:fraud@2 rests on dataset:cb@1, which {}.", classification_clause(&none)),
            "model:fraud@2 rests on dataset:cb@1, which is classified as containing no personal data."
        );
    }
}
