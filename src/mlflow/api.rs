//! The parts of MLflow's REST API (`/api/2.0/mlflow/...`) the bridge reads
//! and, to enforce the gate, writes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::json;

/// A failed call to MLflow.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("MLflow at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("MLflow answered {status} to {what}: {body}")]
    Status { what: String, status: u16, body: String },
    #[error("MLflow's answer to {what} cannot be read: {reason}")]
    Unreadable { what: String, reason: String },
}

/// A key and value, as MLflow lists tags, params and metrics.
#[derive(Debug, Clone, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metric {
    pub key: String,
    pub value: serde_json::Value,
    #[serde(default)]
    pub step: Option<i64>,
}

/// A registered model version (`model-versions/get`).
#[derive(Debug, Clone, Deserialize)]
pub struct ModelVersion {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub creation_timestamp: Option<i64>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunInfo {
    pub run_id: String,
    #[serde(default)]
    pub experiment_id: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub run_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunData {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default)]
    pub params: Vec<KeyValue>,
    #[serde(default)]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    #[serde(default)]
    pub source_type: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatasetInput {
    #[serde(default)]
    pub tags: Vec<KeyValue>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RunInputs {
    #[serde(default)]
    pub dataset_inputs: Vec<DatasetInput>,
}

/// A run (`runs/get`).
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    pub info: RunInfo,
    #[serde(default)]
    pub data: RunData,
    #[serde(default)]
    pub inputs: RunInputs,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AliasEntry {
    pub alias: String,
    pub version: String,
}

/// A registered model (`registered-models/search`).
#[derive(Debug, Clone, Deserialize)]
pub struct RegisteredModel {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<AliasEntry>,
}

/// A client of one MLflow tracking server.
#[derive(Clone)]
pub struct Mlflow {
    base: String,
    http: reqwest::Client,
}

impl Mlflow {
    pub fn new(url: &str, timeout: std::time::Duration) -> Result<Self, MlflowError> {
        let unreachable = |reason: String| MlflowError::Unreachable { url: url.to_owned(), reason };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(unreachable("the URL must start with http:// or https://".into()));
        }
        let http = reqwest::Client::builder().timeout(timeout).build().map_err(|e| unreachable(e.to_string()))?;
        Ok(Self { base: format!("{}/api/2.0/mlflow", url.trim_end_matches('/')), http })
    }

    async fn call<T: for<'de> Deserialize<'de>>(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Result<T, MlflowError> {
        let what = format!("{method} {path}");
        let mut request = self.http.request(method, format!("{}/{path}", self.base)).query(query);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| MlflowError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| MlflowError::Unreachable { url: self.base.clone(), reason: e.to_string() })?;
        if !status.is_success() {
            return Err(MlflowError::Status { what, status: status.as_u16(), body: text.chars().take(500).collect() });
        }
        serde_json::from_str(&text).map_err(|e| MlflowError::Unreadable { what, reason: e.to_string() })
    }

    pub async fn model_version(&self, name: &str, version: &str) -> Result<ModelVersion, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            model_version: ModelVersion,
        }
        let answer: Answer = self
            .call(reqwest::Method::GET, "model-versions/get", &[("name", name), ("version", version)], None)
            .await?;
        Ok(answer.model_version)
    }

    pub async fn run(&self, run_id: &str) -> Result<Run, MlflowError> {
        #[derive(Deserialize)]
        struct Answer {
            run: Run,
        }
        let answer: Answer = self.call(reqwest::Method::GET, "runs/get", &[("run_id", run_id)], None).await?;
        Ok(answer.run)
    }

    /// Every item of a paged search answer's `field`.
    async fn all_pages<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        field: &str,
    ) -> Result<Vec<T>, MlflowError> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let mut paged = query.to_vec();
            if !token.is_empty() {
                paged.push(("page_token", token.as_str()));
            }
            let page: serde_json::Value = self.call(reqwest::Method::GET, path, &paged, None).await?;
            let items = page.get(field).cloned().unwrap_or_else(|| serde_json::Value::Array(Vec::new()));
            let items: Vec<T> = serde_json::from_value(items)
                .map_err(|e| MlflowError::Unreadable { what: format!("GET {path}"), reason: e.to_string() })?;
            all.extend(items);
            match page.get("next_page_token").and_then(serde_json::Value::as_str).filter(|t| !t.is_empty()) {
                Some(next) => token = next.to_owned(),
                None => return Ok(all),
            }
        }
    }

    /// Every registered model.
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, MlflowError> {
        self.all_pages("registered-models/search", &[("max_results", "1000")], "registered_models").await
    }

    /// Every version of model `name`.
    pub async fn versions_of(&self, name: &str) -> Result<Vec<ModelVersion>, MlflowError> {
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        self.all_pages(
            "model-versions/search",
            &[("filter", filter.as_str()), ("max_results", "10000")],
            "model_versions",
        )
        .await
    }

    /// Points `alias` of model `name` at `version`.
    pub async fn set_alias(&self, name: &str, alias: &str, version: &str) -> Result<(), MlflowError> {
        let body = json!({"name": name, "alias": alias, "version": version});
        let _: BTreeMap<String, serde_json::Value> =
            self.call(reqwest::Method::POST, "registered-models/alias", &[], Some(body)).await?;
        Ok(())
    }

    /// Removes `alias` from model `name`.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), MlflowError> {
        let body = json!({"name": name, "alias": alias});
        let _: BTreeMap<String, serde_json::Value> =
            self.call(reqwest::Method::DELETE, "registered-models/alias", &[], Some(body)).await?;
        Ok(())
    }
}
