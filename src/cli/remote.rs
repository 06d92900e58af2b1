//! Commands that talk to a running server (GOVLEDGER_URL, GOVLEDGER_TOKEN).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use govledger::client::{self, Client, SearchParams};

/// Arguments of `govledger search`.
#[derive(Args)]
pub struct SearchArgs {
    /// The query (docs/SEARCH.md): free text, field:value, "phrases", AND/OR/NOT, ranges.
    query: Option<String>,
    #[arg(long)]
    kind: Option<String>,
    #[arg(long)]
    entity_type: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    project: Option<String>,
    /// recorded_at from (RFC 3339, inclusive).
    #[arg(long)]
    from: Option<String>,
    /// recorded_at to (RFC 3339, exclusive).
    #[arg(long)]
    to: Option<String>,
    /// relevance or time.
    #[arg(long)]
    sort: Option<String>,
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Print the whole JSON answer.
    #[arg(long)]
    json: bool,
}

impl SearchArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let params = SearchParams {
            q: self.query,
            kind: self.kind,
            entity_type: self.entity_type,
            actor: self.actor,
            project: self.project,
            from: self.from,
            to: self.to,
            sort: self.sort,
            limit: Some(self.limit),
        };
        let results = super::runtime()?.block_on(Client::from_env()?.search(&params))?;
        if self.json {
            println!("{}", serde_json::to_string_pretty(&results)?);
            return Ok(ExitCode::SUCCESS);
        }
        for hit in results["hits"].as_array().into_iter().flatten() {
            println!(
                "{:>8}  {}  {:<24} {:<40} {}",
                hit["seq"],
                hit["recorded_at"].as_str().unwrap_or_default(),
                hit["kind"].as_str().unwrap_or_default(),
                hit["subject"].as_str().unwrap_or_default(),
                hit["actor"].as_str().unwrap_or_default()
            );
        }
        eprintln!("{} matching events", results["total"]);
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger post`.
#[derive(Args)]
pub struct PostArgs {
    /// The event kind, e.g. model.registered.
    #[arg(long)]
    kind: String,
    /// The subject, type:name@version.
    #[arg(long)]
    subject: String,
    /// The project.
    #[arg(long, env = "GOVLEDGER_PROJECT")]
    project: Option<String>,
    /// An input entity (repeatable).
    #[arg(long = "input")]
    inputs: Vec<String>,
    /// An output entity (repeatable).
    #[arg(long = "output")]
    outputs: Vec<String>,
    /// An attribute key=value (repeatable; JSON values are parsed; a.b=1 nests).
    #[arg(long = "attr")]
    attrs: Vec<String>,
    /// A JSON file holding the attributes object (--attr adds to it).
    #[arg(long)]
    attributes_file: Option<PathBuf>,
    /// The idempotency key; default: a fresh one, reused across retries.
    #[arg(long)]
    idempotency_key: Option<String>,
}

impl PostArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let file = self
            .attributes_file
            .map(|path| -> anyhow::Result<serde_json::Value> {
                let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
            })
            .transpose()?;
        let event = client::event_from_args(&client::EventArgs {
            kind: &self.kind,
            subject: &self.subject,
            project: self.project.as_deref(),
            inputs: &self.inputs,
            outputs: &self.outputs,
            attrs: &self.attrs,
            attributes_file: file.as_ref(),
            idempotency_key: self.idempotency_key.as_deref(),
        })?;
        let stored = super::runtime()?.block_on(Client::from_env()?.append(event))?;
        println!("{}", serde_json::to_string(&stored)?);
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger gate`.
#[derive(Args)]
pub struct GateArgs {
    /// The model version, model:NAME@VERSION.
    #[arg(long)]
    model: String,
    /// The target environment, e.g. production.
    #[arg(long)]
    environment: String,
}

impl GateArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let decision = super::runtime()?.block_on(Client::from_env()?.gate(&self.model, &self.environment))?;
        println!("{}", serde_json::to_string_pretty(&decision)?);
        let allowed = decision["allowed"].as_bool() == Some(true);
        let reasons: Vec<&str> =
            decision["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str()).collect();
        eprintln!("{}: {}", if allowed { "ALLOW" } else { "DENY" }, reasons.join("; "));
        Ok(if allowed { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
