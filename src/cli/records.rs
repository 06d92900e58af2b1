//! Commands that write to the record or read reports from it, offline:
//! reports, erasure, tokens, the signing key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use govledger::auth::access::{parse_ttl, Access};
use govledger::proofs::keys;
use govledger::reports::{self, ReportFormat, ReportRequest, ReportType};
use govledger::store::{Store, WriterConfig};

use super::args::{KeyArgs, MasterKeyArgs, StorageArgs, TokenArgs};
use super::ledger::open_proofs;

/// Arguments of `govledger report`.
#[derive(Args)]
pub struct ReportArgs {
    /// The report type: audit-trail, model-dossier, model-inventory, gdpr-processing, ai-act-log.
    kind: String,
    /// What the report is about: the model version (model-dossier), the
    /// dataset (gdpr-processing), the deployment (ai-act-log), an entity
    /// instead of a time window (audit-trail).
    #[arg(long, visible_aliases = ["model", "dataset", "deployment", "entity"])]
    subject: Option<String>,
    /// A project: a gdpr-processing report of all its datasets, or the
    /// model-inventory or audit-trail of that project alone.
    #[arg(long)]
    project: Option<String>,
    /// Events recorded from (RFC 3339, inclusive): audit-trail, ai-act-log.
    #[arg(long)]
    from: Option<String>,
    /// Events recorded before (RFC 3339): audit-trail, ai-act-log.
    #[arg(long)]
    to: Option<String>,
    /// The output file.
    #[arg(short = 'o', long)]
    out: PathBuf,
    /// pdf, json or csv (default: from the output file's extension).
    #[arg(long)]
    format: Option<String>,
    /// Also write the matching evidence bundle to this folder.
    #[arg(long)]
    bundle: Option<PathBuf>,
    /// Template folder; a report type without a file there uses the shipped template.
    #[arg(long, env = "GOVLEDGER_TEMPLATES", default_value = "reports")]
    templates: PathBuf,
    /// Approval rules (TOML) deciding findings; default: the shipped policies/approvals.toml.
    #[arg(long, env = "GOVLEDGER_APPROVAL_RULES")]
    approval_rules: Option<PathBuf>,
    /// TrueType fonts, tried in order, for the characters the embedded fonts
    /// lack (CJK); repeatable. Default: those of Debian's fonts-droid-fallback
    /// and fonts-nanum that are installed.
    #[arg(long, env = "GOVLEDGER_REPORT_FONT", value_delimiter = ',')]
    report_font: Vec<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    key: KeyArgs,
}

impl ReportArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        if !self.report_font.is_empty() {
            reports::pdf::use_fallback_fonts(&self.report_font)?;
        }
        let rules = match &self.approval_rules {
            Some(path) => super::args::read_rules(path)?,
            None => govledger::governance::ApprovalRules::default_rules(),
        };
        let normalize = |t: Option<String>| -> anyhow::Result<Option<String>> {
            Ok(t.map(|t| govledger::ledger::timestamp::normalize(&t)).transpose()?)
        };
        // The command line reads the database directly: its user sees every project.
        let request = ReportRequest {
            subject: self.subject,
            project: self.project,
            from: normalize(self.from)?,
            to: normalize(self.to)?,
            ..ReportRequest::new(ReportType::parse(&self.kind)?)
        };
        let format = match &self.format {
            Some(f) => f.as_str(),
            None => self.out.extension().and_then(|e| e.to_str()).unwrap_or("pdf"),
        };
        let format = ReportFormat::parse(format).context("--format must be pdf, json or csv")?;
        let (store, proofs) = open_proofs(&self.storage, &self.key)?;
        let written = (|| -> anyhow::Result<reports::Produced> {
            let produced = reports::produce(&request, &store, &proofs, &rules, &self.templates, format)?;
            std::fs::write(&self.out, &produced.bytes)
                .with_context(|| format!("cannot write {}", self.out.display()))?;
            if let Some(dir) = &self.bundle {
                anyhow::ensure!(!produced.cited.is_empty(), "no events in scope: no bundle to write");
                proofs.write_bundle(&produced.checkpoint, &produced.cited, dir)?;
            }
            Ok(produced)
        })();
        drop(proofs);
        store.close();
        let produced = written?;
        for warning in &produced.warnings {
            eprintln!("warning: {warning}");
        }
        println!(
            "wrote the {} report ({} events cited, checkpoint {} root {}) to {}",
            request.kind,
            produced.cited.len(),
            produced.checkpoint.tree_size,
            hex::encode(produced.checkpoint.root_hash),
            self.out.display()
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `govledger erase`.
#[derive(Args)]
pub struct EraseArgs {
    /// The subject's id, as sent in `personal.subject_ids`.
    #[arg(long)]
    subject: String,
    /// Why, for the record (e.g. the request's reference).
    #[arg(long)]
    reason: Option<String>,
    /// Recorded as the erasure's actor.
    #[arg(long, default_value = "cli")]
    actor: String,
    #[command(flatten)]
    storage: StorageArgs,
    #[command(flatten)]
    master_key: MasterKeyArgs,
}

impl EraseArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let master = self
            .master_key
            .load(&self.storage.data_dir)?
            .context("erasure needs the master key (GOVLEDGER_MASTER_KEY or --master-key-file)")?;
        let writer = WriterConfig { master_key: Some(master.clone()), ..WriterConfig::default() };
        let store = Store::open(self.storage.existing_target()?, 2, writer)?;
        let erased = super::runtime()?.block_on(govledger::governance::subjects::erase(
            &store,
            Some(&master),
            &self.subject,
            &self.actor,
            self.reason,
        ));
        store.close();
        let certificate = erased?;
        println!("{}", serde_json::to_string_pretty(&certificate)?);
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a token with the data directory's key, offline, and record
    /// `token.issued` in the ledger (never the token itself).
    Issue {
        /// The token's subject: the actor recorded for what it appends.
        #[arg(long)]
        sub: String,
        /// A role (repeatable): admin, ci, data_scientist, risk_officer, auditor, viewer.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// A project the token may act in (repeatable); default `*`, every project.
        #[arg(long = "project")]
        projects: Vec<String>,
        /// The named projects are meant to be new: they have no events or tokens yet.
        #[arg(long)]
        new_project: bool,
        /// Lifetime: 90d, 12h, 30m or seconds.
        #[arg(long, default_value = govledger::auth::access::DEFAULT_TOKEN_TTL)]
        ttl: String,
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        tokens: TokenArgs,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Print the verifier key in signed-note format (creating the signing key if none exists).
    Show {
        #[command(flatten)]
        storage: StorageArgs,
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// The actor recorded for tokens minted on the command line: whoever can
/// read the data directory's key.
const LOCAL_ADMIN: &str = "local-admin";

impl TokenCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let TokenCommand::Issue { sub, roles, projects, new_project, ttl, storage, tokens } = self;
        let ttl = parse_ttl(&ttl).map_err(anyhow::Error::msg)?;
        let all = govledger::auth::access::ALL_PROJECTS;
        let projects = if projects.is_empty() { vec![all.to_owned()] } else { projects };
        let store = Store::open(storage.target()?, 2, WriterConfig::default())?;
        let issued = super::runtime()?.block_on(async {
            let access = Access::load(&tokens.config(&storage.data_dir), &store).await?;
            access.issue_token(&store, LOCAL_ADMIN, &sub, &roles, &projects, ttl, new_project).await
        });
        store.close();
        let issued = match issued {
            Ok(issued) => issued,
            Err(govledger::auth::AccessError::Invalid(message)) => {
                eprintln!("error: {message}");
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => return Err(e.into()),
        };
        println!("{}", issued.token);
        eprintln!(
            "issued token {} for {} (roles {}, projects {}), expires at {}",
            issued.jti,
            issued.sub,
            issued.roles.join(","),
            issued.projects.join(","),
            issued.expires
        );
        Ok(ExitCode::SUCCESS)
    }
}

impl KeyCommand {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let KeyCommand::Show { storage, key } = self;
        let signer = keys::load_or_create(&key.config(&storage.data_dir))?;
        println!("{}", signer.verifier().to_vkey());
        Ok(ExitCode::SUCCESS)
    }
}
