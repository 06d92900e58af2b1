//! The console's static files, embedded in the binary: its style sheet,
//! its few lines of script, and the vendored htmx with its licence.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::page::ConsoleError;
use crate::http::ApiError;

/// Name, content type and bytes of each file.
const FILES: &[(&str, &str, &[u8])] = &[
    ("console.css", "text/css; charset=utf-8", include_bytes!("assets/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_bytes!("assets/console.js")),
    ("htmx-2.0.11.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/htmx-2.0.11.min.js")),
    ("htmx-LICENSE.txt", "text/plain; charset=utf-8", include_bytes!("assets/htmx-LICENSE.txt")),
];

/// Each file's ETag (a prefix of its SHA-256), computed once.
fn etags() -> &'static Vec<String> {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|(_, _, bytes)| {
                let d = ring::digest::digest(&ring::digest::SHA256, bytes);
                format!("\"{}\"", hex::encode(&d.as_ref()[..12]))
            })
            .collect()
    })
}

/// `GET /ui/assets/{name}`: revalidated on each use (`no-cache` with an
/// ETag), so a new binary's files are never hidden behind a cached copy.
pub async fn serve(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ConsoleError> {
    let Some(i) = FILES.iter().position(|(n, _, _)| *n == name.as_str()) else {
        return Err(ApiError::not_found(format!("no console asset {name}")).into());
    };
    let (_, content_type, bytes) = FILES[i];
    let etag = &etags()[i];
    let cached = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str());
    let mut response = if cached { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::ETAG, etag.clone()))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(content_type);
    Ok(if cached { response.finish() } else { response.body(bytes) })
}

#[cfg(test)]
mod tests {
    /// The budget: at most 60 KB of JavaScript in all.
    #[test]
    fn the_console_sends_at_most_60_kb_of_javascript() {
        let total: usize = super::FILES.iter().filter(|(n, _, _)| n.ends_with(".js")).map(|(_, _, b)| b.len()).sum();
        assert!(total <= 60 * 1024, "{total} bytes of JavaScript");
    }
}
