//! `govledger mlflow import`: backfill from an MLflow registry, offline
//! against the data directory (like `token issue`), idempotent and resumable.

use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Subcommand};
use govledger::governance::Governance;
use govledger::store::{Store, WriterConfig};

use super::args::{MlflowArgs, StorageArgs, TokenArgs};

#[derive(Subcommand)]
pub enum MlflowCommand {
    /// Mirror an MLflow registry's models, versions, their runs with dataset
    /// inputs, and current aliases into the ledger. A second run writes
    /// nothing; an interrupted one resumes.
    Import(ImportArgs),
}

impl MlflowCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        match self {
            Self::Import(args) => args.run(),
        }
    }
}

#[derive(Args)]
pub struct ImportArgs {
    /// The MLflow tracking server, e.g. http://mlflow:5000.
    #[arg(long)]
    tracking_uri: String,
    /// Only this registered model (repeatable); default: every model.
    #[arg(long = "model")]
    models: Vec<String>,
    /// Move aliases on versions the gate denies back, as the live bridge
    /// does with `enforce = true`. Without it the import only records the
    /// refusals: a backfill should not change a registry unannounced.
    #[arg(long)]
    enforce: bool,
    /// Approval rules (TOML); default: the shipped policies/approvals.toml.
    #[arg(long, env = "GOVLEDGER_APPROVAL_RULES")]
    approval_rules: Option<std::path::PathBuf>,
    #[command(flatten)]
    mlflow: MlflowArgs,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    tokens: TokenArgs,
}

impl ImportArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let rules = match &self.approval_rules {
            Some(path) => super::args::read_rules(path)?,
            None => govledger::governance::ApprovalRules::default_rules(),
        };
        let mapping = self.mlflow.mapping(&rules)?;
        let store = Store::open(self.storage.target()?, 2, WriterConfig::default())?;
        let outcome = super::runtime()?.block_on(async {
            // The policy in force decides what the bridge may record, here as on the server.
            let access =
                govledger::auth::access::Access::load(&self.tokens.config(&self.storage.data_dir), &store).await?;
            let governance = Governance::new(store.clone(), rules, None)?;
            let mlflow = govledger::mlflow::api::Mlflow::new(
                &self.tracking_uri,
                std::time::Duration::from_secs(self.mlflow.mlflow_timeout.max(1)),
            )?;
            let bridge = govledger::mlflow::Bridge::new(governance, mlflow, mapping, access.authorizer.clone(), None);
            let started = Instant::now();
            let report = govledger::mlflow::importer::import(&bridge, &self.models, self.enforce, |done, total| {
                super::progress::draw(done as u64, total as u64, "versions", started)
            })
            .await;
            eprintln!();
            anyhow::Ok(report?)
        });
        store.close();
        let report = outcome?;
        for alias in &report.aliases {
            println!("alias: {alias}");
        }
        let rate = report.versions as f64 / report.record_seconds.max(1e-9);
        println!(
            "imported {} versions of {} models: {} events written ({rate:.0} versions/s recording, {:.1} s waiting for MLflow)",
            report.versions, report.models, report.events_written, report.mlflow_seconds
        );
        Ok(ExitCode::SUCCESS)
    }
}
