//! `/ui/search`: the API's search, with facets as filters and cursor
//! pages; and `/ui/suggest`, the subject pickers' suggestions.

use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::page::{self, day_or_time, given, urlencode, utc, Chrome, ConsoleError, Viewer};
use crate::auth::actions::ReadEvents;
use crate::error_code::ErrorCode;
use crate::http::search::SearchQuery;
use crate::http::AppState;
use crate::search::query::SearchResults;

/// The query string of `/ui/search`: the API's parameters, where a form's
/// empty field means "not given".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSearch {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    entity_type: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

impl ConsoleSearch {
    fn to_api(&self) -> SearchQuery {
        SearchQuery {
            q: given(&self.q),
            kind: given(&self.kind),
            entity_type: given(&self.entity_type),
            actor: given(&self.actor),
            project: given(&self.project),
            // `to` is exclusive: a date stands for the start of that day.
            from: day_or_time(&self.from, false),
            to: day_or_time(&self.to, false),
            sort: given(&self.sort),
            limit: None,
            cursor: given(&self.cursor),
            consistent: None,
        }
    }

    /// This search's URL with `changes` applied (an empty value removes a
    /// parameter); a changed search starts again from its first page.
    fn with(&self, changes: &[(&str, &str)]) -> String {
        let mut fields = vec![
            ("q", self.q.as_str()),
            ("kind", &self.kind),
            ("entity_type", &self.entity_type),
            ("actor", &self.actor),
            ("project", &self.project),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
            ("cursor", ""),
        ];
        for (name, value) in changes {
            if let Some(f) = fields.iter_mut().find(|f| f.0 == *name) {
                f.1 = value;
            }
        }
        let query: Vec<String> = fields
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(n, v)| format!("{n}={}", urlencode(v.trim())))
            .collect();
        if query.is_empty() {
            "/ui/search".to_owned()
        } else {
            format!("/ui/search?{}", query.join("&"))
        }
    }
}

/// A facet value as a link that narrows the search.
pub struct FacetValue {
    pub value: String,
    pub count: u64,
    pub href: String,
    pub active: bool,
}

/// One facet.
pub struct Facet {
    pub name: &'static str,
    pub label: &'static str,
    pub values: Vec<FacetValue>,
}

/// A filter in force, with the link that removes it.
pub struct Chip {
    pub label: String,
    pub remove: String,
}

/// A hit as shown.
pub struct Hit {
    pub seq: u64,
    pub kind: String,
    pub subject: String,
    pub subject_href: String,
    pub actor: String,
    pub at: String,
    /// Escaped text with the matches in `<mark>`.
    pub snippet: String,
}

#[derive(Template)]
#[template(path = "search.html", config = "src/http/console/askama.toml")]
struct SearchPage {
    chrome: Chrome,
    form: ConsoleSearch,
    error: Option<String>,
    total: usize,
    hits: Vec<Hit>,
    facets: Vec<Facet>,
    chips: Vec<Chip>,
    next: Option<String>,
    first: Option<String>,
    indexed_seq: u64,
}

/// The snippet tantivy gives (escaped text, matches in `<b>`), rebuilt so
/// that nothing but `<mark>` can come out of it, whatever the index holds.
pub fn safe_snippet(snippet: &str) -> String {
    let mut out = String::with_capacity(snippet.len() + 16);
    for (i, part) in snippet.split("<b>").enumerate() {
        let (marked, rest) = if i == 0 { ("", part) } else { part.split_once("</b>").unwrap_or((part, "")) };
        if !marked.is_empty() {
            out.push_str("<mark>");
            out.push_str(&inert(marked));
            out.push_str("</mark>");
        }
        out.push_str(&inert(rest));
    }
    out
}

/// Text that tantivy escaped already, with any `<` or `>` left escaped too.
fn inert(text: &str) -> String {
    text.replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const FACETS: [(&str, &str); 3] = [("kind", "Kind"), ("entity_type", "Entity type"), ("actor", "Actor")];

/// `GET /ui/search?q=&kind=&entity_type=&actor=&project=&from=&to=&sort=&cursor=`.
pub async fn page(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    form: web::Query<ConsoleSearch>,
) -> Result<HttpResponse, ConsoleError> {
    let form = form.into_inner();
    let chrome = viewer.chrome(
        if form.q.trim().is_empty() { "Search".to_owned() } else { format!("Search: {}", form.q.trim()) },
        "search",
    );
    let answer = crate::http::search::run(&state, viewer.guard.into_caller(), form.to_api()).await;
    let results = match answer {
        Ok(r) => r,
        // The parser's message on the page, beside the query to fix.
        Err(e) if matches!(e.code(), ErrorCode::MalformedQuery | ErrorCode::InvalidQuery) => {
            let page = SearchPage {
                chrome,
                error: Some(e.message().to_owned()),
                total: 0,
                hits: Vec::new(),
                facets: Vec::new(),
                chips: chips(&form),
                next: None,
                first: None,
                indexed_seq: 0,
                form,
            };
            return page::html_with(actix_web::http::StatusCode::BAD_REQUEST, &page);
        }
        Err(e) => return Err(e.into()),
    };
    page::html(&results_page(chrome, form, results))
}

fn chips(form: &ConsoleSearch) -> Vec<Chip> {
    let mut chips = Vec::new();
    for (name, label, value) in [
        ("kind", "kind", &form.kind),
        ("entity_type", "entity type", &form.entity_type),
        ("actor", "actor", &form.actor),
        ("project", "project", &form.project),
        ("from", "from", &form.from),
        ("to", "to", &form.to),
    ] {
        if !value.trim().is_empty() {
            chips.push(Chip { label: format!("{label}: {}", value.trim()), remove: form.with(&[(name, "")]) });
        }
    }
    chips
}

fn results_page(chrome: Chrome, form: ConsoleSearch, results: SearchResults) -> SearchPage {
    let facets = FACETS
        .iter()
        .map(|(name, label)| {
            let current = match *name {
                "kind" => &form.kind,
                "entity_type" => &form.entity_type,
                _ => &form.actor,
            };
            let values = results
                .facets
                .get(name)
                .map(|counts| {
                    let mut v: Vec<(&String, &u64)> = counts.iter().collect();
                    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                    v.into_iter()
                        .map(|(value, count)| FacetValue {
                            value: value.clone(),
                            count: *count,
                            href: form.with(&[(name, value)]),
                            active: current.trim() == value,
                        })
                        .collect()
                })
                .unwrap_or_default();
            Facet { name, label, values }
        })
        .collect();
    let hits = results
        .hits
        .into_iter()
        .map(|h| Hit {
            subject_href: super::svg::entity_href(&h.subject),
            seq: h.seq,
            kind: h.kind,
            subject: h.subject,
            actor: h.actor,
            at: utc(&h.recorded_at),
            snippet: safe_snippet(&h.snippet),
        })
        .collect();
    let next = results.next_cursor.as_deref().map(|c| {
        let base = form.with(&[]);
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}cursor={}", urlencode(c))
    });
    let first = (!form.cursor.trim().is_empty()).then(|| form.with(&[]));
    SearchPage {
        chrome,
        error: None,
        total: results.total,
        hits,
        facets,
        chips: chips(&form),
        next,
        first,
        indexed_seq: results.indexed_seq,
        form,
    }
}

/// Query of `GET /ui/suggest`.
#[derive(Deserialize)]
pub struct SuggestQuery {
    #[serde(default)]
    subject: String,
    /// Only subjects of this entity type.
    #[serde(default)]
    entity_type: String,
}

#[derive(Template)]
#[template(path = "suggest.html", config = "src/http/console/askama.toml")]
struct Suggestions {
    refs: Vec<String>,
}

/// `GET /ui/suggest?subject=TEXT&entity_type=`: `<option>`s for a subject
/// picker's datalist: references containing what was typed, among the
/// entities the caller may read.
pub async fn suggest(
    viewer: Viewer<ReadEvents>,
    state: web::Data<AppState>,
    q: web::Query<SuggestQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let text = q.subject.trim().to_owned();
    if text.chars().count() < 2 {
        return page::html(&Suggestions { refs: Vec::new() });
    }
    let entity_type = given(&q.entity_type);
    let caller = viewer.guard.into_caller();
    let store = state.store.clone();
    let refs = state
        .blocking(move || -> Result<_, crate::http::ApiError> {
            let mut conn = store.conn()?;
            let readable = caller.readable_projects_in(&mut conn)?;
            Ok(crate::governance::lineage::find(&mut conn, &text, entity_type.as_deref(), readable.as_deref(), 15)?)
        })
        .await??;
    page::html(&Suggestions { refs })
}
