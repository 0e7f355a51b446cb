//! Typed, layered configuration.
//!
//! Settings come from, in increasing priority: the defaults below (they run the whole mesh on a
//! laptop), a TOML file (`agora.toml` in the working directory, or the path in `AGORA_CONFIG`), the
//! environment with the `AGORA_` prefix and `__` between levels (`AGORA_SERVER__DRAIN_DELAY=5s`),
//! and a few conventional variables (`REDIS_URL`, `OTEL_EXPORTER_OTLP_ENDPOINT`,
//! `<SERVICE>_DATABASE_URL`). A bad value stops start-up with an error naming the setting.
//!
//! Secrets can also be files: with `AGORA_SECRETS_DIR` set, every file in that directory is one
//! setting, named by its key (`service_secret`, `services.order.database_url`,
//! `auth.admin_password`) and holding its value, so a mounted Kubernetes Secret never has to pass
//! through the environment. They sit above the TOML file and below the environment.
//!
//! Sections that belong to one service (`[auth]`, ...) are read by that service with
//! [`Config::section`], so the platform does not need to know them.

//!
//! # Layout
//! - `settings`: [`Settings`], the platform's settings, and where each service is found.
//! - `sections`: the platform's own sections (logs, telemetry, server, tokens, events, mTLS).
//! - `secrets`: [`SecretsDir`], settings from one file each.
//! - [`ServiceKind`] lives in [`crate::service`] and is re-exported here.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use serde::de::DeserializeOwned;

mod secrets;
mod sections;
mod settings;

pub use crate::service::ServiceKind;
pub use secrets::SecretsDir;
pub use sections::{
    EventSettings, LogFormat, LogSettings, MtlsSettings, ServerSettings, ServiceAccess,
    TelemetrySettings, TokenSettings,
};
pub use settings::{ServiceEndpoint, ServicesSettings, Settings};

/// A setting that could not be read; the message names the setting and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(#[from] Box<figment::Error>);

impl From<figment::Error> for ConfigError {
    fn from(error: figment::Error) -> Self {
        Self(Box::new(error))
    }
}

/// Loaded configuration: the platform's [`Settings`] and the raw layers, for service sections.
#[derive(Debug, Clone)]
pub struct Config {
    figment: Figment,
    /// The platform's settings.
    pub settings: Settings,
}

impl Config {
    /// Loads defaults, the TOML file and the process environment.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown `AGORA_` variable, named in the error.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("AGORA_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("agora.toml"));
        Self::from_figment(Self::layers(&file))
    }

    /// The layers [`Config::load`] reads, to add more on top (tests, command-line flags).
    pub fn layers(file: &Path) -> Figment {
        let conventional = Env::raw().filter_map(|key| {
            let key = key.as_str().to_ascii_lowercase();
            match key.as_str() {
                "redis_url" => Some("redis_url".into()),
                "otel_exporter_otlp_endpoint" => Some("otlp_endpoint".into()),
                _ => ServiceKind::ALL
                    .into_iter()
                    .find(|kind| key == format!("{}_database_url", kind.name()))
                    .map(|kind| format!("services.{}.database_url", kind.name()).into()),
            }
        });
        Figment::new()
            .merge(Toml::file(file))
            .merge(SecretsDir::from_env())
            .merge(
                Env::prefixed("AGORA_")
                    .ignore(&["config", "secrets_dir"])
                    .split("__"),
            )
            .merge(conventional)
    }

    /// Reads settings from the given layers.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown key, named in the error.
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment.extract()?;
        Ok(Self { figment, settings })
    }

    /// Reads a service's own section (`[auth]`, `AGORA_AUTH__...`); missing keys take the
    /// section type's defaults.
    ///
    /// # Errors
    /// A setting of the wrong type or an unknown key in that section, named in the error.
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> Result<T, ConfigError> {
        if self.figment.find_value(name).is_err() {
            return Ok(T::default());
        }
        Ok(self.figment.extract_inner(name)?)
    }

    /// Sets one value above every layer, for tests and command-line overrides.
    ///
    /// # Errors
    /// The value does not fit the setting.
    pub fn with(self, key: &str, value: impl serde::Serialize) -> Result<Self, ConfigError> {
        let figment = self
            .figment
            .merge(figment::providers::Serialized::default(key, value));
        Self::from_figment(figment)
    }
}

#[cfg(test)]
// figment's `Jail` closures return its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests;
