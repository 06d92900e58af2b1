//! The search query parser and its filters, against a real (small) index:
//! lines of the input are the query, cursor, kind, from and to.
#![no_main]

use std::sync::OnceLock;

use govledger::search::query::Sort;
use govledger::search::{SearchIndex, SearchRequest};
use libfuzzer_sys::fuzz_target;

fn index() -> &'static SearchIndex {
    static INDEX: OnceLock<(tempfile::TempDir, SearchIndex)> = OnceLock::new();
    &INDEX
        .get_or_init(|| {
            // govledger catches the panics of tantivy's query grammar and refuses
            // the query (search/query.rs); every other panic still aborts.
            let fuzzer_hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !info.location().is_some_and(|l| l.file().contains("tantivy-query-grammar")) {
                    fuzzer_hook(info)
                }
            }));
            let dir = tempfile::tempdir().unwrap();
            let index = SearchIndex::open(dir.path(), 1, 15 * 1024 * 1024).unwrap();
            (dir, index)
        })
        .1
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let mut next = || lines.next().map(str::to_owned).filter(|s| !s.is_empty());
    let request = SearchRequest {
        q: next().unwrap_or_default(),
        cursor: next(),
        kind: next(),
        from: next(),
        to: next(),
        entity_type: None,
        actor: None,
        project: None,
        sort: if data.len() % 2 == 0 { Sort::Time } else { Sort::Relevance },
        limit: 10,
        projects: Some(vec!["fuzz".into()]),
    };
    let _ = index().search(&request);
});
