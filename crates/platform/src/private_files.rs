//! Files only the owner may read: the data directory (0700) and what it holds that is secret (the
//! SQLite databases, with the auth service's signing key, and the administrator's password, 0600).
//!
//! New ones are created tight by giving the mode to `open`/`mkdir` themselves, rather than by
//! changing the process umask: the umask is process-wide (it would also tighten files that are
//! meant to be shared), it cannot be set without `unsafe`, and a thread could create a file
//! between setting and restoring it. SQLite gives a database's `-wal`, `-shm` and `-journal`
//! files the database file's own mode, so creating the database file 0600 covers them too.
//!
//! Existing ones are never changed: an operator who loosened a mode by hand gets a warning at
//! start-up naming the path and the `chmod` that fixes it.

use std::{
    collections::BTreeSet,
    fs, io,
    path::{Path, PathBuf},
    sync::{Mutex, PoisonError},
};

/// The mode a new secret file gets, and the most an existing one should allow.
pub const FILE_MODE: u32 = 0o600;
/// The mode a new data directory gets, and the most an existing one should allow.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents, readable by the owner only. An existing directory is
/// left as it is.
///
/// # Errors
/// The directory could not be created.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)
}

/// Open options that create a missing file readable by the owner only; an existing file keeps
/// its mode.
pub fn open_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Creates `path` empty and readable by the owner only when it is missing; an existing file is
/// left as it is (contents and mode).
///
/// # Errors
/// The file could not be created or opened.
pub fn create_file(path: &Path) -> io::Result<()> {
    open_options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
}

/// A secret file or directory that the owner's group or other users may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits.
    pub mode: u32,
    /// The permission bits it should have.
    pub wanted: u32,
}

impl Exposed {
    /// The command that fixes it.
    pub fn fix(&self) -> String {
        format!("chmod {:o} {}", self.wanted, self.path.display())
    }
}

/// The paths among `paths` that group or others may read, write or enter: directories should
/// be 0700, files 0600. Missing paths are skipped. Always empty on platforms without Unix modes.
pub fn exposed<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Vec<Exposed> {
    paths
        .into_iter()
        .filter_map(|path| exposure(path.as_ref()))
        .collect()
}

#[cfg(unix)]
fn exposure(path: &Path) -> Option<Exposed> {
    use std::os::unix::fs::PermissionsExt as _;
    let metadata = fs::metadata(path).ok()?;
    let mode = metadata.permissions().mode() & 0o777;
    let wanted = if metadata.is_dir() {
        DIR_MODE
    } else {
        FILE_MODE
    };
    (mode & 0o077 != 0).then(|| Exposed {
        path: path.to_owned(),
        mode,
        wanted,
    })
}

#[cfg(not(unix))]
fn exposure(_path: &Path) -> Option<Exposed> {
    None
}

/// Paths already warned about: `agora up` opens five databases in one data directory, and one
/// warning per path is enough.
static WARNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Checks `paths` like [`exposed`] and logs a warning for each finding, once per path per
/// process. Returns the findings.
pub fn warn_if_exposed<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Vec<Exposed> {
    let found = exposed(paths);
    let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
    for exposed in &found {
        if warned.insert(exposed.path.clone()) {
            tracing::warn!(
                path = %exposed.path.display(),
                mode = %format_args!("{:o}", exposed.mode),
                fix = %exposed.fix(),
                "a file holding secrets, or their directory, is open to other users"
            );
        }
    }
    found
}

/// A SQLite database file with the companions SQLite keeps beside it, which hold the same data.
pub fn sqlite_files(database: &Path) -> Vec<PathBuf> {
    let mut files = vec![database.to_owned()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = database.as_os_str().to_owned();
        name.push(suffix);
        files.push(PathBuf::from(name));
    }
    files
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("exists").permissions().mode() & 0o777
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// A file `name` in `dir` holding `contents`, set to `mode`.
    fn file_at(dir: &Path, name: &str, contents: &str, mode: u32) -> PathBuf {
        let file = dir.join(name);
        fs::write(&file, contents).expect("written");
        chmod(&file, mode);
        file
    }

    #[test]
    fn a_file_loosened_to_0644_is_reported_with_its_fix() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = file_at(dir.path(), "auth.db", "", 0o644);

        let found = exposed([&file]);

        assert_eq!(
            found,
            vec![Exposed {
                path: file.clone(),
                mode: 0o644,
                wanted: 0o600
            }]
        );
        assert_eq!(found[0].fix(), format!("chmod 600 {}", file.display()));
    }

    #[test]
    fn a_file_at_0600_and_a_directory_at_0700_are_not_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = file_at(dir.path(), "auth.db", "", 0o600);
        chmod(dir.path(), 0o700);

        assert_eq!(exposed([dir.path(), &file]), vec![]);
    }

    #[test]
    fn a_directory_others_may_enter_is_reported_with_chmod_700() {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o755);

        let found = exposed([dir.path()]);

        assert_eq!(found.len(), 1);
        assert_eq!(found[0].mode, 0o755);
        assert_eq!(
            found[0].fix(),
            format!("chmod 700 {}", dir.path().display())
        );
    }

    #[test]
    fn missing_paths_are_not_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert_eq!(exposed(sqlite_files(&dir.path().join("none.db"))), vec![]);
    }

    #[test]
    fn warn_if_exposed_returns_what_it_warned_about() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = file_at(dir.path(), "admin-password", "secret", 0o640);

        let found = warn_if_exposed([&file]);

        assert_eq!(found.len(), 1);
        assert_eq!(found[0].mode, 0o640);
    }

    #[test]
    fn create_dir_makes_the_directory_and_its_missing_parents_owner_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a").join("data");

        create_dir(&dir).expect("created");

        assert_eq!(mode_of(&dir), 0o700);
        assert_eq!(mode_of(&root.path().join("a")), 0o700);
    }

    #[test]
    fn create_dir_leaves_an_existing_directory_as_it_is() {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o750);

        create_dir(dir.path()).expect("exists");

        assert_eq!(mode_of(dir.path()), 0o750);
    }

    #[test]
    fn create_file_makes_a_missing_file_0600_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let new = dir.path().join("new.db");
        create_file(&new).expect("created");
        assert_eq!(mode_of(&new), 0o600);

        let old = dir.path().join("old.db");
        fs::write(&old, "kept").expect("written");
        chmod(&old, 0o644);
        create_file(&old).expect("opened");
        assert_eq!(
            mode_of(&old),
            0o644,
            "a loosened mode is reported, not changed"
        );
        assert_eq!(fs::read_to_string(&old).expect("read"), "kept");
    }

    #[test]
    fn sqlite_files_name_the_database_and_its_companions() {
        let files = sqlite_files(Path::new("/data/auth.db"));
        assert_eq!(
            files,
            [
                "/data/auth.db",
                "/data/auth.db-wal",
                "/data/auth.db-shm",
                "/data/auth.db-journal"
            ]
            .map(PathBuf::from)
        );
    }
}
