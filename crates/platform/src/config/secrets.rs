//! [`SecretsDir`]: settings read from one file each, as Kubernetes mounts secrets.

use std::path::{Path, PathBuf};

use figment::{
    Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};

/// Settings from files, one per setting, in the directory named by `AGORA_SECRETS_DIR`: how a
/// Kubernetes Secret volume (or Compose secrets) gives secrets to a process without putting them
/// in its environment, where every child process and crash report could see them.
///
/// A file's name is the setting's key with `.` between levels; its content, less trailing line
/// breaks, is the value, read as a string. Names starting with `.` are skipped: the kubelet keeps
/// its own `..data` links there.
#[derive(Debug, Clone)]
pub struct SecretsDir {
    dir: Option<PathBuf>,
}

impl SecretsDir {
    /// The directory in `AGORA_SECRETS_DIR`, or none.
    pub fn from_env() -> Self {
        Self {
            dir: std::env::var_os("AGORA_SECRETS_DIR")
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from),
        }
    }

    /// The settings of one directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: Some(dir.into()),
        }
    }

    fn read(dir: &Path) -> std::io::Result<Dict> {
        let mut settings = Dict::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            // `metadata` follows symbolic links: a Secret volume's files are links into `..data`.
            if name.starts_with('.') || !std::fs::metadata(entry.path())?.is_file() {
                continue;
            }
            let value = std::fs::read_to_string(entry.path())?;
            let value = value.trim_end_matches(['\r', '\n']).to_owned();
            let path: Vec<&str> = name.split('.').collect();
            insert(&mut settings, &path, Value::from(value));
        }
        Ok(settings)
    }
}

/// Puts `value` at `path` in `dict`, creating the tables on the way.
fn insert(dict: &mut Dict, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            dict.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry((*first).to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if !matches!(entry, Value::Dict(..)) {
                *entry = Value::from(Dict::new());
            }
            if let Value::Dict(_, inner) = entry {
                insert(inner, rest, value);
            }
        }
    }
}

impl Provider for SecretsDir {
    fn metadata(&self) -> Metadata {
        let metadata = Metadata::named("secrets directory (AGORA_SECRETS_DIR)");
        match &self.dir {
            Some(dir) => metadata.source(figment::Source::File(dir.clone())),
            None => metadata,
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let Some(dir) = &self.dir else {
            return Ok(Map::new());
        };
        let settings = Self::read(dir).map_err(|error| {
            figment::Error::from(format!(
                "AGORA_SECRETS_DIR: cannot read {}: {error}",
                dir.display()
            ))
        })?;
        Ok(Profile::Default.collect(settings))
    }
}
