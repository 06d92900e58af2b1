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

    /// Every registered model, page by page.
    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>, MlflowError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            registered_models: Vec<RegisteredModel>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("max_results", "1000")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let page: Page = self.call(reqwest::Method::GET, "registered-models/search", &query, None).await?;
            all.extend(page.registered_models);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = next,
                None => return Ok(all),
            }
        }
    }

    /// Every version of model `name`, page by page.
    pub async fn versions_of(&self, name: &str) -> Result<Vec<ModelVersion>, MlflowError> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            model_versions: Vec<ModelVersion>,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        let filter = format!("name='{}'", name.replace('\'', "\\'"));
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let mut query = vec![("filter", filter.as_str()), ("max_results", "10000")];
            if !token.is_empty() {
                query.push(("page_token", token.as_str()));
            }
            let page: Page = self.call(reqwest::Method::GET, "model-versions/search", &query, None).await?;
            all.extend(page.model_versions);
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) => token = next,
                None => return Ok(all),
            }
        }
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
