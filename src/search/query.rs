//! Searching: a query string in tantivy's syntax plus exact filters, the
//! caller's readable projects, sorting, cursor pagination and facet counts.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;
use tantivy::aggregation::agg_req::Aggregations;
use tantivy::aggregation::{AggregationCollector, AggregationLimitsGuard};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Order, TantivyDocument, Term};

use super::schema::micros;
use super::{SearchError, SearchIndex};

/// Most hits one page may hold.
pub const MAX_LIMIT: usize = 100;

/// Deepest parenthesis nesting a query may have. Tantivy's query grammar
/// backtracks: each further level of unclosed parentheses doubles the parse
/// time (22 levels: 4 s; 40, found by the `search_query` fuzz target: hours).
pub const MAX_NESTING: usize = 10;

/// Refuses a query nesting parentheses deeper than [`MAX_NESTING`]
/// (parentheses inside quoted phrases do not count).
fn check_nesting(q: &str) -> Result<(), SearchError> {
    let (mut depth, mut deepest, mut quoted) = (0usize, 0usize, false);
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(SearchError::Query(format!(
            "the query nests parentheses {deepest} deep; at most {MAX_NESTING} are allowed"
        )));
    }
    Ok(())
}
/// Parses the user's query. tantivy's query grammar (0.24) panics on some
/// inputs instead of failing: `- *` reaches an exists query without a field
/// (`user_input_ast.rs`, found by the `search_query` fuzz target). The parser
/// is built per request and holds no shared state, so such a query is refused
/// like any other unparsable one rather than answered 500.
fn parse_user_query(parser: &QueryParser, q: &str) -> Result<Box<dyn Query>, SearchError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse_query(q))) {
        Ok(parsed) => parsed.map_err(|e| SearchError::Query(e.to_string())),
        Err(_) => Err(SearchError::Query(
            "the query cannot be parsed (a `*` after `-` or `+` needs a field, as in `-kind:*`)".into(),
        )),
    }
}

/// Facet values returned per facet.
const FACET_SIZE: u32 = 50;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (BM25); ties by index order.
    Relevance,
    /// Newest first (by seq, which follows `recorded_at`).
    Time,
}

/// A search.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Query string; empty matches every event.
    pub q: String,
    pub kind: Option<String>,
    pub entity_type: Option<String>,
    pub actor: Option<String>,
    pub project: Option<String>,
    /// `recorded_at` from (inclusive) and to (exclusive), RFC 3339.
    pub from: Option<String>,
    pub to: Option<String>,
    pub sort: Sort,
    pub limit: usize,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// `None`: every project; otherwise only events of these projects.
    pub projects: Option<Vec<String>>,
}

/// One hit.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize, PartialEq)]
pub struct SearchHit {
    pub seq: u64,
    pub kind: String,
    pub subject: String,
    pub actor: String,
    pub recorded_at: String,
    /// BM25 score (relevance sort only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// The matching part of the attributes text, matches in `<b>`.
    pub snippet: String,
}

/// A page of results with counts over all matches.
#[derive(utoipa::ToSchema, Debug, Clone, Serialize)]
pub struct SearchResults {
    pub hits: Vec<SearchHit>,
    /// Events matching (all pages).
    pub total: usize,
    /// Counts over all matches, by kind, entity type and actor.
    #[schema(value_type = BTreeMap<String, BTreeMap<String, u64>>)]
    pub facets: BTreeMap<&'static str, BTreeMap<String, u64>>,
    pub next_cursor: Option<String>,
    /// The last seq the index held when answering.
    pub indexed_seq: u64,
}

impl SearchIndex {
    /// Runs a search.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResults, SearchError> {
        let f = &self.fields;
        let searcher = self.reader.searcher();
        let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
        parser.set_conjunction_by_default();
        let user: Box<dyn Query> = if request.q.trim().is_empty() {
            Box::new(AllQuery)
        } else {
            check_nesting(&request.q)?;
            parse_user_query(&parser, &request.q)?
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, user)];
        let term = |field, value: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
        };
        for (field, value) in [
            (f.kind, &request.kind),
            (f.entity_type, &request.entity_type),
            (f.actor, &request.actor),
            (f.project, &request.project),
        ] {
            if let Some(value) = value {
                clauses.push((Occur::Must, term(field, value)));
            }
        }
        if let Some(projects) = &request.projects {
            let allowed: Vec<(Occur, Box<dyn Query>)> =
                projects.iter().map(|p| (Occur::Should, term(f.project, p))).collect();
            // No readable project: nothing matches (an empty Should matches nothing).
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(allowed))));
        }
        if request.from.is_some() || request.to.is_some() {
            let bound = |t: &Option<String>, inclusive: bool| -> Result<Bound<Term>, SearchError> {
                Ok(match t {
                    None => Bound::Unbounded,
                    Some(text) => {
                        let at = micros(text).ok_or_else(|| SearchError::Query(format!("invalid time {text:?}")))?;
                        let term = Term::from_field_date(f.recorded_at, at);
                        if inclusive {
                            Bound::Included(term)
                        } else {
                            Bound::Excluded(term)
                        }
                    }
                })
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(bound(&request.from, true)?, bound(&request.to, false)?)),
            ));
        }
        let query = BooleanQuery::new(clauses);

        // Counts and facets over every match, independent of the page.
        let aggregations: Aggregations = serde_json::from_value(serde_json::json!({
            "kind": {"terms": {"field": "kind", "size": FACET_SIZE}},
            "entity_type": {"terms": {"field": "entity_type", "size": FACET_SIZE}},
            "actor": {"terms": {"field": "actor", "size": FACET_SIZE}},
        }))
        .map_err(|e| SearchError::Query(e.to_string()))?;
        let (total, aggregated) = searcher.search(
            &query,
            &(Count, AggregationCollector::from_aggs(aggregations, AggregationLimitsGuard::default())),
        )?;
        let facets = facets_of(&aggregated);

        let limit = request.limit.clamp(1, MAX_LIMIT);
        let (page, next_cursor): (Vec<(Option<f32>, DocAddress)>, Option<String>) = match request.sort {
            Sort::Time => {
                let before = match &request.cursor {
                    None => None,
                    Some(c) => Some(
                        c.strip_prefix("t")
                            .and_then(|n| n.parse::<u64>().ok())
                            .ok_or_else(|| SearchError::Query(format!("invalid cursor {c:?} for sort=time")))?,
                    ),
                };
                let paged: Box<dyn Query> = match before {
                    None => Box::new(query.clone()),
                    Some(seq) => Box::new(BooleanQuery::new(vec![
                        (Occur::Must, Box::new(query.clone()) as Box<dyn Query>),
                        (
                            Occur::Must,
                            Box::new(RangeQuery::new(
                                Bound::Unbounded,
                                Bound::Excluded(Term::from_field_u64(f.seq, seq)),
                            )),
                        ),
                    ])),
                };
                let found =
                    searcher.search(&paged, &TopDocs::with_limit(limit + 1).order_by_u64_field("seq", Order::Desc))?;
                let more = found.len() > limit;
                let page: Vec<(Option<f32>, DocAddress)> =
                    found.into_iter().take(limit).map(|(_, a)| (None, a)).collect();
                // The cursor is the last hit's seq, filled in below.
                (page, more.then(String::new))
            }
            Sort::Relevance => {
                let offset = match &request.cursor {
                    None => 0,
                    Some(c) => c
                        .strip_prefix("r")
                        .and_then(|n| n.parse::<usize>().ok())
                        .ok_or_else(|| SearchError::Query(format!("invalid cursor {c:?} for sort=relevance")))?,
                };
                let found = searcher.search(&query, &TopDocs::with_limit(limit + 1).and_offset(offset))?;
                let more = found.len() > limit;
                let page = found.into_iter().take(limit).map(|(s, a)| (Some(s), a)).collect();
                (page, more.then(|| format!("r{}", offset + limit)))
            }
        };

        let snippets = SnippetGenerator::create(&searcher, &query, f.text)?;
        let mut hits = Vec::with_capacity(page.len());
        for (score, address) in page {
            let doc: TantivyDocument = searcher.doc(address)?;
            let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let recorded_at = doc
                .get_first(f.recorded_at)
                .and_then(|v| v.as_datetime())
                .and_then(|d| chrono::DateTime::from_timestamp_micros(d.into_timestamp_micros()))
                .map(crate::ledger::timestamp::format)
                .unwrap_or_default();
            hits.push(SearchHit {
                seq: doc.get_first(f.seq).and_then(|v| v.as_u64()).unwrap_or_default(),
                kind: text(f.kind),
                subject: text(f.subject),
                actor: text(f.actor),
                recorded_at,
                score,
                snippet: snippets.snippet_from_doc(&doc).to_html(),
            });
        }
        let next_cursor = match request.sort {
            Sort::Time => next_cursor.and(hits.last().map(|h| format!("t{}", h.seq))),
            Sort::Relevance => next_cursor,
        };
        Ok(SearchResults { hits, total, facets, next_cursor, indexed_seq: self.indexed_seq() })
    }
}

fn facets_of(
    results: &tantivy::aggregation::agg_result::AggregationResults,
) -> BTreeMap<&'static str, BTreeMap<String, u64>> {
    let json = serde_json::to_value(results).unwrap_or_default();
    ["kind", "entity_type", "actor"]
        .into_iter()
        .map(|name| {
            let counts = json[name]["buckets"]
                .as_array()
                .map(|buckets| {
                    buckets
                        .iter()
                        .filter_map(|b| Some((b["key"].as_str()?.to_owned(), b["doc_count"].as_u64()?)))
                        .collect()
                })
                .unwrap_or_default();
            (name, counts)
        })
        .collect()
}
