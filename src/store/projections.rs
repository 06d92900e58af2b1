//! Projections of the ledger: entities, lineage edges and approvals.
//!
//! [`apply`] runs inside the append transaction with the events just chained,
//! so these tables never disagree with the ledger; it depends on nothing but
//! the events (no clock, no configuration), which is what makes
//! `govledger rebuild` reproduce them exactly. It never refuses an event:
//! events that make no sense for the projection (an approval decision for an
//! unknown approval in an old ledger) are recorded as facts and skipped here.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{approval_decisions, approvals, entities, lineage_edges, projection_state};
use super::{events, DbConn, StoreError};
use crate::ledger::kind::{ApprovalState, Decision, Kind};
use crate::ledger::{timestamp, EntityRef, Event};
use crate::with_conn;

/// An entity and its current state.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = entities)]
pub struct EntityRow {
    #[serde(rename = "ref")]
    pub ref_: String,
    pub entity_type: String,
    pub name: String,
    pub version: Option<String>,
    /// The project it belongs to: that of its creating event (see
    /// `owned_seq`). `None` while unowned, or when that event had none.
    pub project: Option<String>,
    pub status: String,
    /// JSON object: for each event kind about this entity, the seq of the
    /// latest such event (readers fetch it for its attributes); deployments
    /// add `live_model`. Kept small on purpose: every new entity is an
    /// insert at a random place in this table's key, on the append path.
    pub state: String,
    /// The event that first named it (as subject, input or output).
    pub created_seq: i64,
    pub updated_seq: i64,
    /// The event that gave it its project (`EntityRef::is_owned_by`);
    /// `None` while it has only been named by others.
    pub owned_seq: Option<i64>,
}

impl EntityRow {
    /// Whether an event created it, so that it belongs to a project (or,
    /// with `project` `None`, deliberately to none).
    pub fn is_owned(&self) -> bool {
        self.owned_seq.is_some()
    }
}

/// A lineage edge `source -> target`, live from `created_seq` until
/// `ended_seq` (exclusive) if it ended.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = lineage_edges)]
pub struct EdgeRow {
    pub source: String,
    pub target: String,
    pub created_seq: i64,
    pub ended_seq: Option<i64>,
    /// The kind of the event that created the edge.
    pub kind: String,
}

/// An approval request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = approvals, treat_none_as_null = true)]
pub struct ApprovalRow {
    pub id: String,
    pub model: String,
    pub environment: String,
    pub project: Option<String>,
    /// `pending`, `granted`, `rejected` or `revoked`. Expiry is not a state:
    /// it depends on the time of the question, see `expires_at`.
    pub state: String,
    pub requested_by: String,
    pub requested_seq: i64,
    pub requested_at: String,
    pub required_approvals: i32,
    pub valid_for_seconds: i64,
    /// JSON array of evidence references.
    pub evidence: String,
    pub note: String,
    pub granted_at: Option<String>,
    pub expires_at: Option<String>,
    pub decided_seq: Option<i64>,
}

/// One decision on an approval.
#[derive(utoipa::ToSchema, Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable, serde::Serialize)]
#[diesel(table_name = approval_decisions)]
pub struct DecisionRow {
    pub seq: i64,
    pub approval_id: String,
    pub actor: String,
    /// `grant`, `reject` or `revoke`.
    pub decision: String,
    pub reason: String,
    pub recorded_at: String,
}

/// Rows per statement: at most 9 columns each, well under both backends' bound-parameter limits.
const CHUNK: usize = 500;

/// Brings the projections up to date with `events` (consecutive, in seq
/// order, following the events already applied).
pub fn apply(conn: &mut DbConn, batch: &[Event]) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let mut work = Batch::load(conn, batch)?;
    for event in batch {
        work.event(event);
    }
    work.save(conn)
}

/// The last seq of the events recorded before the projections existed and
/// not applied yet; 0 when there are none.
pub fn backlog_until(conn: &mut DbConn) -> Result<u64, StoreError> {
    let seq: Option<i64> = with_conn!(conn, |c| projection_state::table
        .find("governance")
        .select(projection_state::backlog_until)
        .first(c)
        .optional())?;
    Ok(seq.map_or(0, |s| u64::try_from(s).unwrap_or(0)))
}

fn set_backlog_until(conn: &mut DbConn, seq: u64) -> Result<(), StoreError> {
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    with_conn!(conn, |c| diesel::update(projection_state::table.find("governance"))
        .set(projection_state::backlog_until.eq(seq))
        .execute(c))?;
    Ok(())
}

/// Empties every projection (inside the caller's transaction).
pub fn clear(conn: &mut DbConn) -> Result<(), StoreError> {
    with_conn!(conn, |c| {
        diesel::delete(approval_decisions::table).execute(c)?;
        diesel::delete(approvals::table).execute(c)?;
        diesel::delete(lineage_edges::table).execute(c)?;
        diesel::delete(entities::table).execute(c)
    })?;
    super::subjects::clear(conn)
}

/// Applies the events `1..=last`, in chunks, and clears the backlog (inside
/// the caller's transaction, which holds the append lock).
pub fn replay(conn: &mut DbConn, last: u64) -> Result<u64, StoreError> {
    let mut from = 1;
    while from <= last {
        let to = (from + 4999).min(last);
        let mut rows = Vec::new();
        events::for_each_in_range(conn, from, to, |row| {
            rows.push(row);
            std::ops::ControlFlow::Continue(())
        })?;
        let batch: Vec<Event> = rows.into_iter().map(events::EventRow::into_event).collect::<Result<_, _>>()?;
        apply(conn, &batch)?;
        from = to + 1;
    }
    set_backlog_until(conn, 0)?;
    Ok(last)
}

/// The working set of one [`apply`]: the rows the batch touches, loaded
/// once, changed in memory, written back once.
struct Batch {
    entities: HashMap<String, EntityRow>,
    dirty: BTreeSet<String>,
    /// `(source, target)` of edges that are live now.
    live_edges: HashSet<(String, String)>,
    new_edges: Vec<EdgeRow>,
    /// `(source, target, created_seq)` of edges that ended, and when.
    ended_edges: Vec<(EdgeRow, i64)>,
    live_edge_rows: HashMap<(String, String), i64>,
    approvals: HashMap<String, ApprovalRow>,
    dirty_approvals: BTreeSet<String>,
    new_approvals: HashSet<String>,
    decisions: HashMap<String, Vec<DecisionRow>>,
    new_decisions: Vec<DecisionRow>,
}

impl Batch {
    /// A working set that starts from nothing: the projections of the
    /// events fed to it alone, for checking the stored ones.
    fn empty() -> Self {
        Self {
            entities: HashMap::new(),
            dirty: BTreeSet::new(),
            live_edges: HashSet::new(),
            new_edges: Vec::new(),
            ended_edges: Vec::new(),
            live_edge_rows: HashMap::new(),
            approvals: HashMap::new(),
            dirty_approvals: BTreeSet::new(),
            new_approvals: HashSet::new(),
            decisions: HashMap::new(),
            new_decisions: Vec::new(),
        }
    }

    fn load(conn: &mut DbConn, batch: &[Event]) -> Result<Self, StoreError> {
        let mut refs = BTreeSet::new();
        let mut approval_ids = BTreeSet::new();
        let failed_runs: Vec<String> =
            batch.iter().filter(|e| e.kind == Kind::RunFailed).map(|e| e.subject.clone()).collect();
        for e in batch {
            refs.insert(e.subject.clone());
            refs.extend(e.inputs.iter().cloned());
            refs.extend(e.outputs.iter().cloned());
            if let Some(model) = deployment_model(e) {
                refs.insert(model);
            }
            if e.kind.starts_with("approval.") {
                if let Some(id) = e.subject.strip_prefix("approval:") {
                    approval_ids.insert(id.to_owned());
                }
            }
        }
        let refs: Vec<String> = refs.into_iter().collect();
        let ids: Vec<String> = approval_ids.into_iter().collect();
        let mut entities = HashMap::new();
        let mut live_edges = HashSet::new();
        let mut live_edge_rows = HashMap::new();
        entities.extend(entities_by_ref(conn, &refs)?.into_iter().map(|r| (r.ref_.clone(), r)));
        // The live edges into what the batch names, and out of the runs it
        // fails (their outputs end).
        let into = edges_of(conn, &refs, Direction::Upstream, None, None)?;
        let out_of_failed = edges_of(conn, &failed_runs, Direction::Downstream, None, None)?;
        for edge in into.into_iter().chain(out_of_failed) {
            live_edge_rows.insert((edge.source.clone(), edge.target.clone()), edge.created_seq);
            live_edges.insert((edge.source, edge.target));
        }
        let mut approvals_map = HashMap::new();
        let mut decisions: HashMap<String, Vec<DecisionRow>> = HashMap::new();
        for chunk in ids.chunks(CHUNK) {
            let rows: Vec<ApprovalRow> = with_conn!(conn, |c| approvals::table
                .filter(approvals::id.eq_any(chunk))
                .select(ApprovalRow::as_select())
                .load(c))?;
            approvals_map.extend(rows.into_iter().map(|r| (r.id.clone(), r)));
            let rows: Vec<DecisionRow> = with_conn!(conn, |c| approval_decisions::table
                .filter(approval_decisions::approval_id.eq_any(chunk))
                .select(DecisionRow::as_select())
                .load(c))?;
            for d in rows {
                decisions.entry(d.approval_id.clone()).or_default().push(d);
            }
        }
        Ok(Self {
            entities,
            dirty: BTreeSet::new(),
            live_edges,
            new_edges: Vec::new(),
            ended_edges: Vec::new(),
            live_edge_rows,
            approvals: approvals_map,
            dirty_approvals: BTreeSet::new(),
            new_approvals: HashSet::new(),
            decisions,
            new_decisions: Vec::new(),
        })
    }

    fn event(&mut self, e: &Event) {
        let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
        // Only deployments and approvals read their attributes; parsing every
        // event's took 1% of the writer's time with sealed envelopes in them.
        let attributes: serde_json::Value = if e.kind.starts_with("deployment.") || e.kind.starts_with("approval.") {
            serde_json::from_str(&e.attributes).unwrap_or_default()
        } else {
            serde_json::Value::Null
        };
        for r in e.inputs.iter().chain(&e.outputs) {
            self.touch(r, e, seq, false);
        }
        self.touch(&e.subject, e, seq, true);
        for input in &e.inputs {
            self.edge(input, &e.subject, seq, &e.kind);
        }
        let kind = Kind::from_name(&e.kind);
        if kind == Some(Kind::RunFailed) {
            // What a failed or aborted run wrote is not lineage: the edges to
            // the outputs it announced (at START, say) end here.
            self.end_edges_from(&e.subject, seq);
        } else {
            for output in &e.outputs {
                self.edge(&e.subject, output, seq, &e.kind);
            }
        }
        let Some(kind) = kind else { return };
        if let Some(status) = kind.status_after() {
            self.set_status(&e.subject, status);
        }
        if kind.puts_model_live() {
            if let Some(model) = attributes["model"].as_str() {
                self.go_live(&e.subject, model, e, seq);
            }
        }
        if kind == Kind::ApprovalRequested {
            self.approval_requested(e, seq, &attributes);
        } else if let Some(decision) = kind.decision() {
            self.decision(e, seq, decision, &attributes);
        }
    }

    /// Makes sure `r` exists; when it is the event's subject, records the
    /// event in its state. A row is rewritten only when it changed: an
    /// unchanged row still costs a page write at commit.
    fn touch(&mut self, r: &str, e: &Event, seq: i64, is_subject: bool) {
        let mut created = false;
        let entity = self.entities.entry(r.to_owned()).or_insert_with(|| {
            created = true;
            let parsed = EntityRef::parse(r).ok();
            EntityRow {
                ref_: r.to_owned(),
                entity_type: parsed.as_ref().map_or_else(String::new, |p| p.entity_type().to_owned()),
                name: parsed.as_ref().map_or_else(|| r.to_owned(), |p| p.name().to_owned()),
                version: parsed.as_ref().and_then(|p| p.version().map(str::to_owned)),
                project: None,
                status: "referenced".into(),
                state: "{}".into(),
                created_seq: seq,
                updated_seq: seq,
                owned_seq: None,
            }
        });
        if is_subject {
            let mut state: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&entity.state).unwrap_or_default();
            state.insert(e.kind.clone(), e.seq.into());
            entity.state = serde_json::Value::Object(state).to_string();
            entity.updated_seq = seq;
            let takes_owner = EntityRef::parse(r).is_ok_and(|p| p.is_owned_by(&e.kind));
            if entity.owned_seq.is_none() && takes_owner {
                entity.owned_seq = Some(seq);
                entity.project.clone_from(&e.project);
            }
        }
        if created || is_subject {
            self.dirty.insert(r.to_owned());
        }
    }

    fn set_status(&mut self, r: &str, status: &str) {
        if let Some(entity) = self.entities.get_mut(r) {
            if entity.status != status {
                status.clone_into(&mut entity.status);
                self.dirty.insert(r.to_owned());
            }
        }
    }

    fn edge(&mut self, source: &str, target: &str, seq: i64, kind: &str) {
        let key = (source.to_owned(), target.to_owned());
        if self.live_edges.insert(key.clone()) {
            self.live_edge_rows.insert(key, seq);
            self.new_edges.push(EdgeRow {
                source: source.to_owned(),
                target: target.to_owned(),
                created_seq: seq,
                ended_seq: None,
                kind: kind.to_owned(),
            });
        }
    }

    /// Ends the live edge `key` at `seq`.
    fn end_edge(&mut self, key: (String, String), seq: i64) {
        self.live_edges.remove(&key);
        let created_seq = self.live_edge_rows.remove(&key).unwrap_or(seq);
        if let Some(fresh) =
            self.new_edges.iter_mut().find(|n| n.source == key.0 && n.target == key.1 && n.ended_seq.is_none())
        {
            fresh.ended_seq = Some(seq);
        } else {
            let row = EdgeRow { source: key.0, target: key.1, created_seq, ended_seq: None, kind: String::new() };
            self.ended_edges.push((row, seq));
        }
    }

    /// Ends every live edge out of `source` at `seq`.
    fn end_edges_from(&mut self, source: &str, seq: i64) {
        let ending: Vec<(String, String)> = self.live_edges.iter().filter(|(s, _)| s == source).cloned().collect();
        for key in ending {
            self.end_edge(key, seq);
        }
    }

    /// `model` now serves `deployment`: the edge from whichever model served
    /// it before ends here.
    fn go_live(&mut self, deployment: &str, model: &str, e: &Event, seq: i64) {
        self.touch(model, e, seq, false);
        let ending: Vec<(String, String)> =
            self.live_edges.iter().filter(|(s, t)| t == deployment && s != model).cloned().collect();
        for key in ending {
            self.end_edge(key, seq);
        }
        self.edge(model, deployment, seq, &e.kind);
        if let Some(entity) = self.entities.get_mut(deployment) {
            let mut state: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&entity.state).unwrap_or_default();
            state.insert("live_model".into(), model.into());
            entity.state = serde_json::Value::Object(state).to_string();
            self.dirty.insert(deployment.to_owned());
        }
    }

    fn approval_requested(&mut self, e: &Event, seq: i64, attributes: &serde_json::Value) {
        let Some(id) = e.subject.strip_prefix("approval:") else { return };
        if self.approvals.contains_key(id) {
            return;
        }
        let text = |k: &str| attributes[k].as_str().unwrap_or_default().to_owned();
        let row = ApprovalRow {
            id: id.to_owned(),
            model: text("model"),
            environment: text("environment"),
            project: e.project.clone(),
            state: ApprovalState::Pending.as_str().into(),
            requested_by: e.actor.clone(),
            requested_seq: seq,
            requested_at: e.recorded_at.clone(),
            required_approvals: attributes["required_approvals"]
                .as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .unwrap_or(1),
            valid_for_seconds: attributes["valid_for_seconds"].as_i64().unwrap_or(0),
            evidence: attributes.get("evidence").map_or_else(|| "[]".into(), ToString::to_string),
            note: text("note"),
            granted_at: None,
            expires_at: None,
            decided_seq: None,
        };
        self.approvals.insert(id.to_owned(), row);
        self.new_approvals.insert(id.to_owned());
        self.set_status(&e.subject, ApprovalState::Pending.as_str());
    }

    fn decision(&mut self, e: &Event, seq: i64, decision: Decision, attributes: &serde_json::Value) {
        let Some(id) = e.subject.strip_prefix("approval:") else { return };
        let row = DecisionRow {
            seq,
            approval_id: id.to_owned(),
            actor: e.actor.clone(),
            decision: decision.as_str().to_owned(),
            reason: attributes["reason"].as_str().unwrap_or_default().to_owned(),
            recorded_at: e.recorded_at.clone(),
        };
        self.new_decisions.push(row.clone());
        let history = self.decisions.entry(id.to_owned()).or_default();
        history.push(row);
        // One person, however their subject is capitalised, is one approver.
        let granters: BTreeSet<String> = history
            .iter()
            .filter(|d| d.decision == Decision::Grant.as_str())
            .map(|d| crate::ledger::actor::subject_key(&d.actor))
            .collect();
        let granters = granters.len();
        let Some(approval) = self.approvals.get_mut(id) else { return };
        let Some(current) = ApprovalState::parse(&approval.state) else { return };
        let required = usize::try_from(approval.required_approvals).unwrap_or(1);
        if let Some(state) = current.after(decision, granters, required) {
            if state == ApprovalState::Granted {
                approval.granted_at = Some(e.recorded_at.clone());
                approval.expires_at = Some(add_seconds(&e.recorded_at, approval.valid_for_seconds));
            }
            let state = state.as_str();
            state.clone_into(&mut approval.state);
            approval.decided_seq = Some(seq);
            self.dirty_approvals.insert(id.to_owned());
            self.set_status(&e.subject, state);
        }
    }

    fn save(self, conn: &mut DbConn) -> Result<(), StoreError> {
        let rows: Vec<&EntityRow> = self.dirty.iter().filter_map(|r| self.entities.get(r)).collect();
        macro_rules! upsert {
            ($c:expr, $values:expr) => {
                diesel::insert_into(entities::table)
                    .values($values)
                    .on_conflict(entities::ref_)
                    .do_update()
                    .set((
                        entities::status.eq(excluded(entities::status)),
                        entities::state.eq(excluded(entities::state)),
                        entities::project.eq(excluded(entities::project)),
                        entities::updated_seq.eq(excluded(entities::updated_seq)),
                        entities::owned_seq.eq(excluded(entities::owned_seq)),
                    ))
                    .execute($c)
            };
        }
        match conn {
            // diesel has no multi-row upsert for SQLite; in-process statements are cheap.
            DbConn::Sqlite(c) => {
                for row in rows {
                    upsert!(c, row)?;
                }
            }
            // One statement per chunk: each one is a round trip to the server.
            DbConn::Pg(c) => {
                for chunk in rows.chunks(CHUNK) {
                    let chunk: Vec<EntityRow> = chunk.iter().map(|r| (*r).clone()).collect();
                    upsert!(c, &chunk)?;
                }
            }
        }
        for chunk in self.new_edges.chunks(CHUNK) {
            with_conn!(conn, |c| diesel::insert_into(lineage_edges::table).values(chunk).execute(c))?;
        }
        for (edge, ended) in &self.ended_edges {
            with_conn!(conn, |c| diesel::update(lineage_edges::table.find((
                &edge.source,
                &edge.target,
                edge.created_seq
            )))
            .set(lineage_edges::ended_seq.eq(Some(*ended)))
            .execute(c))?;
        }
        for id in &self.new_approvals {
            if let Some(row) = self.approvals.get(id) {
                with_conn!(conn, |c| diesel::insert_into(approvals::table).values(row).execute(c))?;
            }
        }
        for id in self.dirty_approvals.difference(&self.new_approvals.iter().cloned().collect()) {
            if let Some(row) = self.approvals.get(id) {
                with_conn!(conn, |c| diesel::update(approvals::table.find(id)).set(row).execute(c))?;
            }
        }
        for chunk in self.new_decisions.chunks(CHUNK) {
            with_conn!(conn, |c| diesel::insert_into(approval_decisions::table).values(chunk).execute(c))?;
        }
        Ok(())
    }
}

/// The kinds that move an entity's status ([`Kind::status_after`]), as
/// stored, for the `as_of` query.
fn status_kinds() -> Vec<&'static str> {
    Kind::ALL.iter().filter(|k| k.status_after().is_some()).map(|k| k.as_str()).collect()
}

/// The status `r` had when the ledger ended at `seq`: what the latest
/// status-moving event about it up to then made it, for `as_of` answers.
pub fn status_at(conn: &mut DbConn, r: &str, entity_type: &str, seq: i64) -> Result<String, StoreError> {
    use super::schema::events::dsl;
    if entity_type == "approval" {
        return approval_status_at(conn, r.trim_start_matches("approval:"), seq);
    }
    let kind: Option<String> = with_conn!(conn, |c| dsl::events
        .filter(dsl::subject.eq(r))
        .filter(dsl::seq.le(seq))
        .filter(dsl::kind.eq_any(status_kinds()))
        .order(dsl::seq.desc())
        .select(dsl::kind)
        .first(c)
        .optional())?;
    Ok(kind.as_deref().and_then(Kind::from_name).and_then(Kind::status_after).unwrap_or("referenced").to_owned())
}

/// An approval's state after the decisions recorded up to `seq`, by the
/// same moves [`Batch::decision`] makes.
fn approval_status_at(conn: &mut DbConn, id: &str, seq: i64) -> Result<String, StoreError> {
    let Some(row) = approval(conn, id)? else { return Ok("referenced".into()) };
    if row.requested_seq > seq {
        return Ok("referenced".into());
    }
    let mut state = ApprovalState::Pending;
    let mut granters = BTreeSet::new();
    let required = usize::try_from(row.required_approvals).unwrap_or(1);
    for d in decisions(conn, id)?.into_iter().filter(|d| d.seq <= seq) {
        let Some(decision) = Decision::parse(&d.decision) else { continue };
        if decision == Decision::Grant {
            granters.insert(crate::ledger::actor::subject_key(&d.actor));
        }
        state = state.after(decision, granters.len(), required).unwrap_or(state);
    }
    Ok(state.as_str().to_owned())
}

/// An approval as its own events make it (its `approval.*` events, in seq
/// order), by the same moves as the projection, without reading the
/// projection: what the gate relies on is then the ledger itself, never a
/// row that could have been changed behind its back.
pub fn approval_from_events(id: &str, events: &[Event]) -> Option<(ApprovalRow, Vec<DecisionRow>)> {
    let subject = format!("approval:{id}");
    let mut work = Batch::empty();
    for e in events
        .iter()
        .filter(|e| e.subject == subject && Kind::from_name(&e.kind).is_some_and(|k| k.namespace() == "approval"))
    {
        work.event(e);
    }
    let row = work.approvals.remove(id)?;
    let decisions = work.decisions.remove(id).unwrap_or_default();
    Some((row, decisions))
}

/// Where the stored projections first differ from the ones the events give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub table: &'static str,
    pub key: String,
    pub what: String,
}

/// Rebuilds the entity, edge and approval projections from every event in
/// memory, in one read snapshot with the stored ones, and compares: `None`
/// when they agree (or when events recorded before the projections existed
/// are still to be applied at the next start).
pub fn check(conn: &mut DbConn) -> Result<Option<Mismatch>, StoreError> {
    let snapshot = match conn {
        DbConn::Pg(_) => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        DbConn::Sqlite(_) => "BEGIN",
    };
    with_conn!(conn, |c| diesel::connection::SimpleConnection::batch_execute(c, snapshot))?;
    let outcome = check_in_snapshot(conn);
    with_conn!(conn, |c| diesel::connection::SimpleConnection::batch_execute(c, "COMMIT"))?;
    outcome
}

fn check_in_snapshot(conn: &mut DbConn) -> Result<Option<Mismatch>, StoreError> {
    if backlog_until(conn)? > 0 {
        return Ok(None);
    }
    let head = events::head(conn)?.size;
    let mut work = Batch::empty();
    let mut from = 1;
    while from <= head {
        let to = (from + 4999).min(head);
        let mut failed = None;
        events::for_each_in_range(conn, from, to, |row| match row.into_event() {
            Ok(e) => {
                work.event(&e);
                std::ops::ControlFlow::Continue(())
            }
            Err(e) => {
                failed = Some(e);
                std::ops::ControlFlow::Break(())
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        from = to + 1;
    }
    let stored_entities: Vec<EntityRow> =
        with_conn!(conn, |c| entities::table.order(entities::ref_).select(EntityRow::as_select()).load(c))?;
    let stored_edges: Vec<EdgeRow> = with_conn!(conn, |c| lineage_edges::table.select(EdgeRow::as_select()).load(c))?;
    let stored_approvals: Vec<ApprovalRow> =
        with_conn!(conn, |c| approvals::table.select(ApprovalRow::as_select()).load(c))?;
    let stored_decisions: Vec<DecisionRow> =
        with_conn!(conn, |c| approval_decisions::table.select(DecisionRow::as_select()).load(c))?;
    let edge_key = |e: &EdgeRow| format!("{} -> {} (seq {})", e.source, e.target, e.created_seq);
    // Ended edges keep the kind of the event that created them.
    let expected_edges = work.new_edges.iter().map(|e| (edge_key(e), e.clone()));
    Ok(first_difference(
        "entities",
        work.entities.into_iter(),
        stored_entities.into_iter().map(|e| (e.ref_.clone(), e)),
    )
    .or_else(|| first_difference("lineage_edges", expected_edges, stored_edges.into_iter().map(|e| (edge_key(&e), e))))
    .or_else(|| {
        first_difference(
            "approvals",
            work.approvals.into_iter(),
            stored_approvals.into_iter().map(|a| (a.id.clone(), a)),
        )
    })
    .or_else(|| {
        first_difference(
            "approval_decisions",
            work.new_decisions.into_iter().map(|d| (format!("seq {}", d.seq), d)),
            stored_decisions.into_iter().map(|d| (format!("seq {}", d.seq), d)),
        )
    }))
}

/// The first key (in order) at which the rows the events give and the
/// stored rows differ.
fn first_difference<T: PartialEq + std::fmt::Debug>(
    table: &'static str,
    expected: impl Iterator<Item = (String, T)>,
    stored: impl Iterator<Item = (String, T)>,
) -> Option<Mismatch> {
    let expected: BTreeMap<String, T> = expected.collect();
    let stored: BTreeMap<String, T> = stored.collect();
    let keys: BTreeSet<&String> = expected.keys().chain(stored.keys()).collect();
    let found = keys.into_iter().find_map(|key| {
        let what = match (expected.get(key), stored.get(key)) {
            (Some(e), Some(s)) if e == s => return None,
            (Some(e), Some(s)) => format!("stored {s:?}, but the events give {e:?}"),
            (Some(_), None) => "missing, though the events create it".to_owned(),
            (None, Some(s)) => format!("stored {s:?}, but no event creates it"),
            (None, None) => return None,
        };
        Some(Mismatch { table, key: key.clone(), what })
    });
    found
}

fn deployment_model(e: &Event) -> Option<String> {
    if !e.kind.starts_with("deployment.") {
        return None;
    }
    let attributes: serde_json::Value = serde_json::from_str(&e.attributes).ok()?;
    attributes["model"].as_str().map(str::to_owned)
}

/// `at` plus `seconds`, in the ledger's timestamp form.
pub fn add_seconds(at: &str, seconds: i64) -> String {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|t| timestamp::format(t.with_timezone(&chrono::Utc) + chrono::Duration::seconds(seconds)))
        .unwrap_or_else(|_| at.to_owned())
}

// ---- queries -------------------------------------------------------------

/// One entity.
pub fn entity(conn: &mut DbConn, r: &str) -> Result<Option<EntityRow>, StoreError> {
    Ok(with_conn!(conn, |c| entities::table.find(r).select(EntityRow::as_select()).first(c).optional())?)
}

/// The entities named in `refs` (those that exist).
pub fn entities_by_ref(conn: &mut DbConn, refs: &[String]) -> Result<Vec<EntityRow>, StoreError> {
    let mut out = Vec::with_capacity(refs.len());
    for chunk in refs.chunks(CHUNK) {
        let rows: Vec<EntityRow> = with_conn!(conn, |c| entities::table
            .filter(entities::ref_.eq_any(chunk))
            .select(EntityRow::as_select())
            .load(c))?;
        out.extend(rows);
    }
    Ok(out)
}

/// Which way to walk the lineage graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards what a node was made from.
    Upstream,
    /// Towards what was made from a node.
    Downstream,
}

/// The edges touching `refs` in `direction` that existed at `as_of` (a
/// seq; `None` for now).
pub fn edges_of(
    conn: &mut DbConn,
    refs: &[String],
    direction: Direction,
    as_of: Option<i64>,
    limit: Option<usize>,
) -> Result<Vec<EdgeRow>, StoreError> {
    let mut out = Vec::new();
    for chunk in refs.chunks(CHUNK) {
        let left = limit.map(|l| l.saturating_sub(out.len()));
        if left == Some(0) {
            break;
        }
        let rows: Vec<EdgeRow> = with_conn!(conn, |c| {
            let mut q = lineage_edges::table.select(EdgeRow::as_select()).into_boxed();
            q = match direction {
                Direction::Upstream => q.filter(lineage_edges::target.eq_any(chunk)),
                Direction::Downstream => q.filter(lineage_edges::source.eq_any(chunk)),
            };
            q = match as_of {
                Some(seq) => q
                    .filter(lineage_edges::created_seq.le(seq))
                    .filter(lineage_edges::ended_seq.is_null().or(lineage_edges::ended_seq.gt(seq))),
                None => q.filter(lineage_edges::ended_seq.is_null()),
            };
            q = q.order((lineage_edges::source, lineage_edges::target, lineage_edges::created_seq));
            if let Some(n) = left {
                q = q.limit(i64::try_from(n).unwrap_or(i64::MAX));
            }
            q.load(c)
        })?;
        out.extend(rows);
    }
    Ok(out)
}

/// The last seq recorded at or before `at` (0 when none): `recorded_at`
/// never decreases along the chain, so a binary search over seq finds it.
pub fn seq_at(conn: &mut DbConn, at: &str) -> Result<u64, StoreError> {
    let head = events::head(conn)?.size;
    let (mut lo, mut hi) = (0u64, head);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let Ok(mid_i) = i64::try_from(mid) else { break };
        let recorded: Option<String> = with_conn!(conn, |c| super::schema::events::table
            .find(mid_i)
            .select(super::schema::events::recorded_at)
            .first(c)
            .optional())?;
        match recorded {
            Some(r) if r.as_str() <= at => lo = mid,
            _ => hi = mid - 1,
        }
    }
    Ok(lo)
}

/// One approval.
pub fn approval(conn: &mut DbConn, id: &str) -> Result<Option<ApprovalRow>, StoreError> {
    Ok(with_conn!(conn, |c| approvals::table.find(id).select(ApprovalRow::as_select()).first(c).optional())?)
}

/// The decisions on an approval, in order.
pub fn decisions(conn: &mut DbConn, id: &str) -> Result<Vec<DecisionRow>, StoreError> {
    Ok(with_conn!(conn, |c| approval_decisions::table
        .filter(approval_decisions::approval_id.eq(id))
        .order(approval_decisions::seq.asc())
        .select(DecisionRow::as_select())
        .load(c))?)
}

/// Filters for listing approvals.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub state: Option<String>,
    pub model: Option<String>,
    pub environment: Option<String>,
    pub after_seq: i64,
    pub limit: i64,
}

/// Approvals matching `filter`, by request seq.
pub fn list_approvals(conn: &mut DbConn, filter: &ApprovalFilter) -> Result<Vec<ApprovalRow>, StoreError> {
    Ok(with_conn!(conn, |c| {
        let mut q = approvals::table
            .filter(approvals::requested_seq.gt(filter.after_seq))
            .order(approvals::requested_seq.asc())
            .limit(filter.limit)
            .select(ApprovalRow::as_select())
            .into_boxed();
        if let Some(state) = &filter.state {
            q = q.filter(approvals::state.eq(state.clone()));
        }
        if let Some(model) = &filter.model {
            q = q.filter(approvals::model.eq(model.clone()));
        }
        if let Some(environment) = &filter.environment {
            q = q.filter(approvals::environment.eq(environment.clone()));
        }
        q.load(c)
    })?)
}

/// The actors of the events about `subject` of the given kinds: who
/// registered a model version, who ran a training run.
pub fn actors_of(conn: &mut DbConn, subject: &str, kinds: &[Kind]) -> Result<BTreeSet<String>, StoreError> {
    use super::schema::events::dsl;
    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    let actors: Vec<String> = with_conn!(conn, |c| dsl::events
        .filter(dsl::subject.eq(subject))
        .filter(dsl::kind.eq_any(&kinds))
        .select(dsl::actor)
        .distinct()
        .load(c))?;
    Ok(actors.into_iter().collect())
}

/// Row counts and a digest of every projection table, for comparing a
/// rebuild with the projections it replaced.
pub fn fingerprint(conn: &mut DbConn) -> Result<BTreeMap<&'static str, String>, StoreError> {
    use ring::digest::{Context, SHA256};
    let mut out = BTreeMap::new();
    let entities: Vec<EntityRow> =
        with_conn!(conn, |c| entities::table.order(entities::ref_).select(EntityRow::as_select()).load(c))?;
    let edges: Vec<EdgeRow> = with_conn!(conn, |c| lineage_edges::table
        .order((lineage_edges::source, lineage_edges::target, lineage_edges::created_seq))
        .select(EdgeRow::as_select())
        .load(c))?;
    let approvals_rows: Vec<ApprovalRow> =
        with_conn!(conn, |c| approvals::table.order(approvals::id).select(ApprovalRow::as_select()).load(c))?;
    let decisions_rows: Vec<DecisionRow> = with_conn!(conn, |c| approval_decisions::table
        .order(approval_decisions::seq)
        .select(DecisionRow::as_select())
        .load(c))?;
    let subject_rows = super::subjects::all_named(conn)?;
    let mut digest = |name: &'static str, count: usize, text: String| {
        let mut ctx = Context::new(&SHA256);
        ctx.update(text.as_bytes());
        out.insert(name, format!("{count} rows, sha256 {}", hex::encode(ctx.finish())));
    };
    digest("entities", entities.len(), format!("{entities:?}"));
    digest("lineage_edges", edges.len(), format!("{edges:?}"));
    digest("approvals", approvals_rows.len(), format!("{approvals_rows:?}"));
    digest("approval_decisions", decisions_rows.len(), format!("{decisions_rows:?}"));
    digest("subject_events", subject_rows.len(), format!("{subject_rows:?}"));
    Ok(out)
}

/// The seqs (up to `tree_size`) of the events about an entity that carry
/// another project than the one the entity was created in, with the seq that
/// created it: a ledger recorded before projects were walls may hold them
/// (the append path refuses them now).
pub fn ownership_breaches(conn: &mut DbConn, tree_size: u64) -> Result<Vec<(u64, u64)>, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Breach {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        owned_seq: i64,
    }
    let tree_size = i64::try_from(tree_size).unwrap_or(i64::MAX);
    let query = "SELECT e.seq AS seq, n.owned_seq AS owned_seq FROM entities n JOIN events e ON e.subject = n.ref \
                 WHERE n.owned_seq IS NOT NULL AND e.seq > n.owned_seq AND e.seq <= $1 \
                 AND (e.project <> n.project OR (e.project IS NULL) <> (n.project IS NULL)) ORDER BY e.seq";
    let rows: Vec<Breach> =
        with_conn!(conn, |c| diesel::sql_query(query).bind::<diesel::sql_types::BigInt, _>(tree_size).load(c))?;
    Ok(rows.into_iter().filter_map(|r| Some((u64::try_from(r.seq).ok()?, u64::try_from(r.owned_seq).ok()?))).collect())
}

/// Every edge from `source`, live or ended.
pub fn edges_ever_from(conn: &mut DbConn, source: &str) -> Result<Vec<EdgeRow>, StoreError> {
    Ok(with_conn!(conn, |c| lineage_edges::table
        .filter(lineage_edges::source.eq(source))
        .order(lineage_edges::created_seq)
        .select(EdgeRow::as_select())
        .load(c))?)
}

/// Up to `limit` entities whose reference holds the words of `needle` (of
/// `entity_type` when given), by reference: what a subject picker offers.
pub fn entities_matching(
    conn: &mut DbConn,
    needle: &str,
    entity_type: Option<&str>,
    limit: i64,
) -> Result<Vec<EntityRow>, StoreError> {
    // The words in order, anything between them; a `%`, `_` or `\` typed
    // stands for itself.
    let words: Vec<String> = needle
        .split_whitespace()
        .map(|word| {
            word.chars()
                .flat_map(|c| match c {
                    '%' | '_' | '\\' => vec!['\\', c],
                    c => vec![c],
                })
                .collect()
        })
        .collect();
    let pattern = format!("%{}%", words.join("%"));
    Ok(with_conn!(conn, |c| {
        let mut q = entities::table
            .filter(entities::ref_.like(pattern.clone()).escape('\\'))
            .order(entities::ref_)
            .limit(limit)
            .select(EntityRow::as_select())
            .into_boxed();
        if let Some(t) = entity_type {
            q = q.filter(entities::entity_type.eq(t.to_owned()));
        }
        q.load(c)
    })?)
}

/// Entities of `entity_type`, by reference.
pub fn entities_of_type(conn: &mut DbConn, entity_type: &str) -> Result<Vec<EntityRow>, StoreError> {
    Ok(with_conn!(conn, |c| entities::table
        .filter(entities::entity_type.eq(entity_type))
        .order(entities::ref_)
        .select(EntityRow::as_select())
        .load(c))?)
}
