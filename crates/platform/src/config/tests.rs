//! Configuration tests: defaults, layers, sections and secrets files.

use super::*;
use std::time::Duration;

use serde::Deserialize;

use figment::Jail;

impl From<ConfigError> for figment::Error {
    fn from(error: ConfigError) -> Self {
        *error.0
    }
}

#[test]
fn defaults_run_every_service_on_its_own_port_with_sqlite() {
    Jail::expect_with(|_| {
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        let s = &config.settings;
        assert_eq!(s.bind_addr(ServiceKind::Auth).port(), 50051);
        assert_eq!(s.bind_addr(ServiceKind::Order).port(), 50055);
        assert_eq!(s.service_url(ServiceKind::Auth), "http://127.0.0.1:50051");
        assert_eq!(
            s.database_url(ServiceKind::Auth),
            "sqlite://.agora/auth.db?mode=rwc"
        );
        assert!(s.redis_url.is_none());
        Ok(())
    });
}

#[test]
fn environment_overrides_the_file_which_overrides_defaults() {
    Jail::expect_with(|jail| {
        jail.create_file(
            "agora.toml",
            "data_dir = \"/var/agora\"\n[server]\ndrain_delay = \"2s\"\n[services.auth]\nport = 6000\n",
        )?;
        jail.set_env("AGORA_SERVICES__AUTH__PORT", "7000");
        jail.set_env("REDIS_URL", "redis://cache:6379");
        jail.set_env("AUTH_DATABASE_URL", "postgres://db/auth");
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        let s = &config.settings;
        assert_eq!(s.data_dir, PathBuf::from("/var/agora"));
        assert_eq!(s.server.drain_delay, Duration::from_secs(2));
        assert_eq!(s.port(ServiceKind::Auth), 7000);
        assert_eq!(s.database_url(ServiceKind::Auth), "postgres://db/auth");
        assert!(s.redis_url.is_some());
        Ok(())
    });
}

#[test]
fn a_datastore_ca_bundle_is_the_default_sslrootcert_of_postgres_urls() {
    Jail::expect_with(|jail| {
        jail.set_env(
            "AGORA_DATASTORE_TLS__CA_FILE",
            "/etc/agora/datastore-ca.pem",
        );
        jail.set_env("AUTH_DATABASE_URL", "postgres://db/auth");
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        let s = &config.settings;
        assert_eq!(
            s.datastore_tls.ca_file.as_deref(),
            Some(Path::new("/etc/agora/datastore-ca.pem"))
        );
        assert_eq!(
            s.database_url(ServiceKind::Auth),
            "postgres://db/auth?sslrootcert=/etc/agora/datastore-ca.pem&sslmode=verify-full"
        );
        assert_eq!(
            s.database_url(ServiceKind::User),
            "sqlite://.agora/user.db?mode=rwc"
        );
        Ok(())
    });
}

#[test]
fn a_bad_setting_names_the_setting() {
    Jail::expect_with(|jail| {
        jail.set_env("AGORA_SERVER__CONCURRENCY_LIMIT", "lots");
        let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
            .expect_err("a word is not a number");
        let message = error.to_string();
        assert!(
            message.to_lowercase().contains("server.concurrency_limit"),
            "{message}"
        );
        assert!(
            message.contains("AGORA_"),
            "names where it came from: {message}"
        );
        Ok(())
    });
}

#[test]
fn a_misspelt_variable_is_an_error_not_a_silent_default() {
    Jail::expect_with(|jail| {
        jail.set_env("AGORA_SERVR__DRAIN_DELAY", "5s");
        let error =
            Config::from_figment(Config::layers(Path::new("agora.toml"))).expect_err("unknown key");
        assert!(
            error.to_string().to_lowercase().contains("servr"),
            "{error}"
        );
        Ok(())
    });
}

#[test]
fn service_sections_default_when_absent_and_read_when_present() {
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Section {
        flag: bool,
    }
    Jail::expect_with(|jail| {
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        assert!(!config.section::<Section>("auth")?.flag);
        jail.set_env("AGORA_AUTH__FLAG", "true");
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        assert!(config.section::<Section>("auth")?.flag);
        Ok(())
    });
}

#[test]
fn secrets_come_from_files_named_by_their_setting_and_the_environment_still_wins() {
    Jail::expect_with(|jail| {
        std::fs::create_dir_all(jail.directory().join("secrets/..data"))
            .map_err(|e| e.to_string())?;
        jail.create_file(
            "secrets/services.order.database_url",
            "postgres://db/order\n",
        )?;
        jail.create_file("secrets/service_secret", "s3cret")?;
        jail.create_file("secrets/auth.admin_password", "12345\r\n")?;
        jail.create_file("secrets/..data/ignored", "not a setting")?;
        jail.create_file("secrets/redis_url", "redis://from-file:6379")?;
        jail.set_env("AGORA_SECRETS_DIR", "secrets");
        jail.set_env("REDIS_URL", "redis://from-env:6379");
        let config = Config::from_figment(Config::layers(Path::new("agora.toml")))?;
        let s = &config.settings;
        assert_eq!(s.database_url(ServiceKind::Order), "postgres://db/order");
        use secrecy::ExposeSecret;
        let secret = s
            .service_secret
            .as_ref()
            .map(|v| v.expose_secret().to_owned());
        assert_eq!(secret.as_deref(), Some("s3cret"));
        let redis = s.redis_url.as_ref().map(|v| v.expose_secret().to_owned());
        assert_eq!(redis.as_deref(), Some("redis://from-env:6379"));
        #[derive(Debug, Default, Deserialize)]
        #[serde(default)]
        struct Auth {
            admin_password: String,
        }
        // Digits stay a string: a file holds text, whatever it looks like.
        assert_eq!(config.section::<Auth>("auth")?.admin_password, "12345");
        Ok(())
    });
}

#[test]
fn a_missing_secrets_directory_or_a_misnamed_file_stops_start_up() {
    Jail::expect_with(|jail| {
        jail.set_env("AGORA_SECRETS_DIR", "nowhere");
        let error = Config::from_figment(Config::layers(Path::new("agora.toml")))
            .expect_err("the directory does not exist");
        assert!(error.to_string().contains("AGORA_SECRETS_DIR"), "{error}");
        std::fs::create_dir_all(jail.directory().join("secrets")).map_err(|e| e.to_string())?;
        jail.create_file("secrets/servce_secret", "typo")?;
        jail.set_env("AGORA_SECRETS_DIR", "secrets");
        let error =
            Config::from_figment(Config::layers(Path::new("agora.toml"))).expect_err("unknown key");
        assert!(error.to_string().contains("servce_secret"), "{error}");
        Ok(())
    });
}
