//! The TOML configuration file (`--config FILE` or `GOVLEDGER_CONFIG`).
//!
//! Its keys are the command-line flags that have a `GOVLEDGER_*` variable,
//! with `_` for `-` (docs/CONFIG.md).
//! A key fills its flag only where neither the command line nor a
//! `GOVLEDGER_*` variable set it, so the order is flags, then environment,
//! then file, then defaults. Values go through the flags' own parsers, so a
//! file is validated exactly as the command line is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;

#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The `--config` value of `args` (`--config F`, `--config=F`) or `GOVLEDGER_CONFIG`.
pub fn path_in(args: &[OsString]) -> Option<PathBuf> {
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            return iter.next().map(PathBuf::from);
        }
        if let Some(value) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(value));
        }
    }
    std::env::var_os("GOVLEDGER_CONFIG").filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `args` with the file's settings added as flags where nothing else set them.
/// `command` is the whole CLI; `args` must already parse.
pub fn apply(command: &clap::Command, args: Vec<OsString>, path: &Path) -> Result<Vec<OsString>, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read { path: path.into(), source })?;
    let invalid = |message: String| ConfigFileError::Invalid { path: path.into(), message };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
    // Help, a typo on the command line: clap reports those itself afterwards.
    let Ok(matches) = command.clone().try_get_matches_from(&args) else { return Ok(args) };
    let Some((name, sub_matches)) = matches.subcommand() else { return Ok(args) };
    let mut built = command.clone();
    built.build();
    let command = &built;
    let sub = command.find_subcommand(name).ok_or_else(|| invalid(format!("no subcommand {name}")))?;
    let mut args = args;
    for (key, value) in &table {
        let flag = key.replace('_', "-");
        // Settings only: a flag with a GOVLEDGER_* variable. Per-run arguments
        // (`erase --subject`, `--json`) have none and cannot come from a file.
        let setting = |a: &clap::Arg| a.get_long() == Some(flag.as_str()) && a.get_env().is_some();
        let known_anywhere = command
            .get_subcommands()
            .flat_map(|s| std::iter::once(s).chain(s.get_subcommands()))
            .any(|s| s.get_arguments().any(setting));
        if !known_anywhere || key == "config" {
            return Err(invalid(format!("unknown key `{key}` (docs/CONFIG.md lists every key)")));
        }
        // A key for another command (say `bind` while running `verify`) is not this command's concern.
        let Some(arg) = sub.get_arguments().find(|a| setting(a)) else { continue };
        let id = arg.get_id().as_str();
        if matches!(sub_matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
            continue;
        }
        let takes_value = arg.get_num_args().is_none_or(|n| n.takes_values());
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if !takes_value => {
                    if *b {
                        args.push(format!("--{flag}").into());
                    }
                    continue;
                }
                other => {
                    return Err(invalid(format!(
                        "`{key}`: expected a string, number or boolean, not a {}",
                        other.type_str()
                    )))
                }
            };
            args.push(format!("--{flag}").into());
            args.push(text.into());
        }
    }
    // Re-parsed here so a bad value names the file and the key.
    command.clone().try_get_matches_from(&args).map_err(|e| invalid(e.to_string()))?;
    Ok(args)
}
