//! The `[user]` settings section: what an operator may set for the user service, with defaults
//! that work on a laptop.

use serde::Deserialize;

/// The `[user]` settings section (`AGORA_USER__...`). The service needs no settings of its own
/// yet (a profile read is one primary-key lookup, so nothing is cached); the section is still
/// read, so that a stray `AGORA_USER__...` variable stops start-up instead of being ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserSettings {}
