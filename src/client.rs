//! A small client for the govledger HTTP API, used by `govledger post`,
//! `govledger gate` and `govledger demo`, and usable from other Rust tools.
//!
//! Appends are retried on network errors and 5xx answers with the same
//! idempotency key, so a retry after a lost response never records twice.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach {url}: {source}")]
    Network { url: String, source: reqwest::Error },
    /// The server answered with an error.
    #[error("{status} {code}: {message}")]
    Api { status: u16, code: String, message: String, body: Value },
}

/// A client bound to one server and one token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
    /// Attempts for an append before giving up.
    pub attempts: u32,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) with a bearer token.
    pub fn new(base: &str, token: &str) -> Result<Self, ClientError> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ClientError::Config(format!("GOVLEDGER_URL {base:?} must start with http:// or https://")));
        }
        if token.trim().is_empty() {
            return Err(ClientError::Config("GOVLEDGER_TOKEN is empty".into()));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Config(e.to_string()))?;
        Ok(Self { base: base.trim_end_matches('/').to_owned(), token: token.trim().to_owned(), http, attempts: 5 })
    }

    /// A client from `GOVLEDGER_URL` and `GOVLEDGER_TOKEN`.
    pub fn from_env() -> Result<Self, ClientError> {
        let url = std::env::var("GOVLEDGER_URL").map_err(|_| ClientError::Config("set GOVLEDGER_URL".into()))?;
        let token = std::env::var("GOVLEDGER_TOKEN").map_err(|_| ClientError::Config("set GOVLEDGER_TOKEN".into()))?;
        Self::new(&url, &token)
    }

    /// The same server with another token.
    pub fn with_token(&self, token: &str) -> Self {
        Self { token: token.to_owned(), ..self.clone() }
    }

    /// One request; a non-2xx answer is an [`ClientError::Api`].
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| ClientError::Network { url: url.clone(), source })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|source| ClientError::Network { url, source })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(ClientError::Api {
                status,
                code: value["error"].as_str().unwrap_or("error").to_owned(),
                message: value["message"].as_str().map_or_else(|| value.to_string(), str::to_owned),
                body: value,
            })
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.request(Method::GET, path, None).await
    }

    /// The deployment gate's decision for `model` in `environment`. An
    /// environment the server's rules do not declare is a decision too (a
    /// deny that names the known environments), not an error.
    pub async fn gate(&self, model: &str, environment: &str) -> Result<Value, ClientError> {
        let path = format!("/api/v1/gate?model={}&environment={}", encode_query(model), encode_query(environment));
        match self.get(&path).await {
            Err(ClientError::Api { code, body, .. }) if code == "unknown_environment" && body["gate"].is_object() => {
                Ok(body["gate"].clone())
            }
            other => other,
        }
    }

    /// A search over the events the token may read (docs/SEARCH.md).
    pub async fn search(&self, params: &SearchParams) -> Result<Value, ClientError> {
        self.get(&format!("/api/v1/search?{}", params.query_string())).await
    }

    /// `POST path` once (for requests that are not appends of events).
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    /// Appends one event, retrying transient failures with one idempotency
    /// key (generated when the event has none).
    pub async fn append(&self, mut event: Value) -> Result<Value, ClientError> {
        if event.get("idempotency_key").is_none_or(Value::is_null) {
            event["idempotency_key"] = Value::String(format!("client-{}", uuid::Uuid::now_v7()));
        }
        self.retrying(|| self.request(Method::POST, "/api/v1/events", Some(&event))).await
    }

    async fn retrying<F, Fut>(&self, attempt: F) -> Result<Value, ClientError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Value, ClientError>>,
    {
        let mut delay = Duration::from_millis(200);
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(e) if tries < self.attempts && transient(&e) => {
                    tracing::warn!(error = %e, tries, "retrying with the same idempotency key");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                other => return other,
            }
        }
    }
}

fn transient(e: &ClientError) -> bool {
    match e {
        ClientError::Network { .. } => true,
        ClientError::Api { status, .. } => *status >= 500 || *status == 429,
        ClientError::Config(_) => false,
    }
}

/// What `govledger post` was given.
#[derive(Debug, Clone, Copy)]
pub struct EventArgs<'a> {
    pub kind: &'a str,
    pub subject: &'a str,
    pub project: Option<&'a str>,
    pub inputs: &'a [String],
    pub outputs: &'a [String],
    /// `key=value` pairs.
    pub attrs: &'a [String],
    pub attributes_file: Option<&'a Value>,
    pub idempotency_key: Option<&'a str>,
}

/// Builds an event from `govledger post` arguments: `--attr key=value`
/// values are parsed as JSON when they are JSON (numbers, booleans, objects)
/// and kept as strings otherwise; `--attributes-file` gives a base object.
pub fn event_from_args(args: &EventArgs<'_>) -> Result<Value, ClientError> {
    let EventArgs { kind, subject, project, inputs, outputs, attrs, attributes_file, idempotency_key } = *args;
    let mut attributes = match attributes_file {
        None => serde_json::Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(ClientError::Config("--attributes-file must hold a JSON object".into())),
    };
    for pair in attrs {
        let (key, raw) =
            pair.split_once('=').ok_or_else(|| ClientError::Config(format!("--attr {pair:?}: expected key=value")))?;
        if key.is_empty() {
            return Err(ClientError::Config(format!("--attr {pair:?}: empty key")));
        }
        let value = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        // `a.b=1` sets a nested field, for typed attributes such as metrics.auc.
        let mut target = &mut attributes;
        let mut parts: Vec<&str> = key.split('.').collect();
        let last = parts.pop().unwrap_or(key);
        for part in parts {
            let entry = target.entry(part.to_owned()).or_insert_with(|| Value::Object(serde_json::Map::new()));
            target = entry
                .as_object_mut()
                .ok_or_else(|| ClientError::Config(format!("--attr {pair:?}: {part} is not an object")))?;
        }
        target.insert(last.to_owned(), value);
    }
    let mut event = serde_json::json!({"kind": kind, "subject": subject, "attributes": attributes});
    if let Some(project) = project {
        event["project"] = project.into();
    }
    if !inputs.is_empty() {
        event["inputs"] = inputs.into();
    }
    if !outputs.is_empty() {
        event["outputs"] = outputs.into();
    }
    if let Some(key) = idempotency_key {
        event["idempotency_key"] = key.into();
    }
    Ok(event)
}

/// What `GET /api/v1/search` takes; unset fields are left out.
#[derive(Debug, Clone, Default)]
pub struct SearchParams {
    pub q: Option<String>,
    pub kind: Option<String>,
    pub entity_type: Option<String>,
    pub actor: Option<String>,
    pub project: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sort: Option<String>,
    pub limit: Option<u32>,
}

impl SearchParams {
    /// The parameters as an encoded query string.
    pub fn query_string(&self) -> String {
        let limit = self.limit.map(|l| l.to_string());
        [
            ("q", &self.q),
            ("kind", &self.kind),
            ("entity_type", &self.entity_type),
            ("actor", &self.actor),
            ("project", &self.project),
            ("from", &self.from),
            ("to", &self.to),
            ("sort", &self.sort),
            ("limit", &limit),
        ]
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={}", encode_query(v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// Percent-encodes a query value (entity references contain `:` and `@`).
pub fn encode_query(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_parameters_are_encoded_and_unset_ones_left_out() {
        let params = SearchParams {
            q: Some("kind:model.* AND fraud".into()),
            actor: Some("raj risk".into()),
            limit: Some(5),
            ..SearchParams::default()
        };
        assert_eq!(params.query_string(), "q=kind%3Amodel.%2A%20AND%20fraud&actor=raj%20risk&limit=5");
    }

    #[test]
    fn attrs_become_typed_nested_attributes() {
        let attrs = ["metrics.auc=0.93".to_owned(), "notes=looks fine".to_owned(), "passed=true".to_owned()];
        let args = EventArgs {
            kind: "model.evaluated",
            subject: "model:m@1",
            project: Some("fraud"),
            inputs: &[],
            outputs: &[],
            attrs: &attrs,
            attributes_file: None,
            idempotency_key: None,
        };
        let e = event_from_args(&args).unwrap();
        assert_eq!(e["attributes"]["metrics"]["auc"], 0.93);
        assert_eq!(e["attributes"]["notes"], "looks fine");
        assert_eq!(e["attributes"]["passed"], true);
        let bad = ["novalue".to_owned()];
        assert!(event_from_args(&EventArgs { attrs: &bad, ..args }).is_err());
    }
}
