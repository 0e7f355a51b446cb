//! Access tokens that must die before they expire: a deny-list every verifier consults.
//!
//! Access tokens are short-lived JWTs that services verify on their own, so a logout, a revoked
//! session or a removed role would otherwise reach them only when the token expires. The auth
//! service writes `agora.events.v1.SessionRevoked` and `agora.events.v1.UserAccessChanged` to its
//! outbox in the transaction that makes the change; every process that verifies tokens follows
//! auth's stream ([`Revocations::follow`]) and keeps what each event denies until the event's
//! `deny_until`, when the tokens it names have expired anyway:
//! - a revoked session: every token whose `sid` claim names it;
//! - an access change: every token of the account issued before the change (the UUIDv7 `jti`
//!   of Agora's tokens says when to the millisecond; `iat`, in whole seconds, otherwise).
//!
//! At start-up the follower asks auth's relay to publish again the events it published within a
//! token lifetime ([`crate::events::Bus::request_replay`]), so a process that starts, or a whole
//! embedded mesh restarted with an empty in-memory bus, rebuilds the list from auth's outbox
//! within a relay round. A follower that finds auth's stream gone (Redis lost its data) reads it
//! again from the start and asks for the same replay.
//!
//! If the bus cannot be reached the list stops growing (and says so at WARN): tokens revoked
//! meanwhile live out their short lifetime, as before revocations existed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime},
};

use agora_contracts::agora::events::v1::{EventEnvelope, SessionRevoked, UserAccessChanged};
use prost::Name as _;

use crate::{
    access::Claims,
    config::Settings,
    events::{Background, Bus, Stream, spawn_follower},
};

/// The producer whose stream carries revocations: auth's.
pub const PRODUCER: &str = Stream::Auth.name();

/// The tokens refused before they expire, shared by a process's verifiers.
#[derive(Debug, Default)]
pub struct Revocations {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked session id -> when its last token expires (Unix millis).
    sessions: HashMap<String, i64>,
    /// Account id -> (tokens issued before this are refused, until when), Unix millis.
    accounts: HashMap<String, (i64, i64)>,
    /// Entries added since the last sweep of expired ones, so memory stays bounded by the
    /// revocations of one token lifetime.
    added: usize,
}

fn millis(time: Option<&prost_types::Timestamp>) -> i64 {
    time.map_or(0, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000))
    })
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |now| i64::try_from(now.as_millis()).unwrap_or(i64::MAX))
}

/// When a token was issued, in Unix millis: from its UUIDv7 `jti` when it has one (Agora's
/// tokens do), else from `iat`, the start of its second, so a token of the second of a change
/// counts as issued before it (refused rather than let through).
fn issued_at_millis(claims: &Claims) -> i64 {
    let from_jti = uuid::Uuid::parse_str(&claims.jti)
        .ok()
        .filter(|id| id.get_version_num() == 7)
        .and_then(|id| id.get_timestamp())
        .map(|ts| {
            let (seconds, nanos) = ts.to_unix();
            i64::try_from(seconds)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000)
                .saturating_add(i64::from(nanos / 1_000_000))
        });
    from_jti.unwrap_or_else(|| claims.iat.saturating_mul(1000))
}

impl Revocations {
    /// An empty list.
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each update is one map insert or sweep: a panic elsewhere cannot leave it half-made.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses the tokens of `session_id` until `until` (Unix millis).
    pub fn revoke_session(&self, session_id: &str, until: i64) {
        let mut state = self.state();
        let entry = state.sessions.entry(session_id.to_owned()).or_insert(until);
        *entry = (*entry).max(until);
        state.added_one();
    }

    /// Refuses the tokens of `user_id` issued before `changed_at` until `until` (Unix millis).
    pub fn change_access(&self, user_id: &str, changed_at: i64, until: i64) {
        let mut state = self.state();
        let entry = state
            .accounts
            .entry(user_id.to_owned())
            .or_insert((changed_at, until));
        // A replayed older change must not move the line back.
        *entry = (entry.0.max(changed_at), entry.1.max(until));
        state.added_one();
    }

    /// Takes in one event of auth's stream; other events are ignored.
    pub fn apply(&self, event: &EventEnvelope) {
        let Some(payload) = &event.payload else {
            return;
        };
        if event.r#type == SessionRevoked::full_name() {
            match prost::Message::decode(payload.value.as_slice()) {
                Ok(SessionRevoked {
                    session_id,
                    deny_until,
                    ..
                }) => self.revoke_session(&session_id, millis(deny_until.as_ref())),
                Err(error) => {
                    tracing::warn!(event.id = %event.id, %error, "undecodable SessionRevoked")
                }
            }
        } else if event.r#type == UserAccessChanged::full_name() {
            match prost::Message::decode(payload.value.as_slice()) {
                Ok(UserAccessChanged {
                    user_id,
                    change_time,
                    deny_until,
                }) => self.change_access(
                    &user_id,
                    millis(change_time.as_ref()),
                    millis(deny_until.as_ref()),
                ),
                Err(error) => {
                    tracing::warn!(event.id = %event.id, %error, "undecodable UserAccessChanged")
                }
            }
        }
    }

    /// Whether a token with these (verified) claims is refused.
    pub fn refuses(&self, claims: &Claims) -> bool {
        let now = now_millis();
        let state = self.state();
        if let Some(sid) = &claims.sid
            && state.sessions.get(sid).is_some_and(|until| *until > now)
        {
            return true;
        }
        state
            .accounts
            .get(&claims.sub)
            .is_some_and(|(changed_at, until)| {
                *until > now && issued_at_millis(claims) <= *changed_at
            })
    }

    /// How many sessions and accounts the list holds (expired entries included until swept).
    pub fn len(&self) -> (usize, usize) {
        let state = self.state();
        (state.sessions.len(), state.accounts.len())
    }

    /// Follows auth's stream on `bus` until the returned guard is dropped, first asking auth to
    /// publish again what it published within `lifetime` (the longest token lifetime).
    pub fn follow(self: &Arc<Self>, bus: Bus, lifetime: Duration) -> Background {
        let revocations = Arc::clone(self);
        spawn_follower(bus, PRODUCER, lifetime, move |event| {
            revocations.apply(event);
        })
    }
}

/// A deny-list kept current from auth's events on the bus `settings` describe (connected in the
/// background, retried until it answers), for as long as the returned guard lives. Call it
/// within a Tokio runtime.
pub fn follow(settings: &Settings) -> (Arc<Revocations>, Arc<Background>) {
    let revocations = Revocations::new();
    let lifetime = settings.tokens.max_lifetime + settings.tokens.leeway;
    let settings = settings.clone();
    let list = Arc::clone(&revocations);
    let mut background = Background::default();
    background.spawn(async move {
        let bus = loop {
            match Bus::connect(&settings).await {
                Ok(bus) => break bus,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "cannot reach the bus to follow revocations; retrying"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        // Holds the follower for as long as this task runs, which is as long as the guard.
        let _following = list.follow(bus, lifetime);
        std::future::pending::<()>().await;
    });
    (revocations, Arc::new(background))
}

impl State {
    fn added_one(&mut self) {
        self.added += 1;
        if self.added >= 1024 {
            self.added = 0;
            let now = now_millis();
            self.sessions.retain(|_, until| *until > now);
            self.accounts.retain(|_, (_, until)| *until > now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sub: &str, sid: Option<&str>, jti: &str, iat: i64) -> Claims {
        Claims {
            iss: "i".into(),
            aud: "a".into(),
            sub: sub.into(),
            iat,
            nbf: iat,
            exp: iat + 900,
            jti: jti.into(),
            roles: vec![],
            sid: sid.map(str::to_owned),
        }
    }

    fn v7_at(millis: u64) -> String {
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            millis / 1000,
            u32::try_from(millis % 1000).expect("under a second") * 1_000_000,
        );
        uuid::Uuid::new_v7(ts).to_string()
    }

    #[test]
    fn a_revoked_sessions_tokens_are_refused_and_other_sessions_are_not() {
        let list = Revocations::new();
        let now = now_millis();
        list.revoke_session("s1", now + 60_000);
        let jti = v7_at(u64::try_from(now).expect("after 1970"));
        assert!(list.refuses(&claims("u", Some("s1"), &jti, now / 1000)));
        assert!(!list.refuses(&claims("u", Some("s2"), &jti, now / 1000)));
        assert!(!list.refuses(&claims("u", None, &jti, now / 1000)));
    }

    #[test]
    fn an_access_change_refuses_tokens_issued_before_it_to_the_millisecond() {
        let list = Revocations::new();
        let changed = now_millis();
        list.change_access("u", changed, changed + 60_000);
        let at = |ms: i64| v7_at(u64::try_from(ms).expect("after 1970"));
        let before = claims("u", Some("s"), &at(changed - 1), changed / 1000);
        let after = claims("u", Some("s"), &at(changed + 1), changed / 1000);
        assert!(list.refuses(&before));
        assert!(
            !list.refuses(&after),
            "a token issued after the change works"
        );
        let other = claims("v", Some("s"), &at(changed - 1), changed / 1000);
        assert!(!list.refuses(&other));
        // Without a v7 jti, a token of the change's second counts as issued before it.
        let legacy = claims("u", None, "not-a-uuid", changed / 1000);
        assert!(list.refuses(&legacy));
        let later = claims("u", None, "not-a-uuid", changed / 1000 + 1);
        assert!(!list.refuses(&later));
    }

    #[test]
    fn entries_end_when_the_tokens_they_name_have_expired() {
        let list = Revocations::new();
        let now = now_millis();
        list.revoke_session("gone", now - 1);
        list.change_access("u", now, now - 1);
        let jti = v7_at(u64::try_from(now - 5).expect("after 1970"));
        assert!(!list.refuses(&claims("u", Some("gone"), &jti, now / 1000)));
    }

    #[test]
    fn a_replayed_older_change_does_not_move_the_line_back() {
        let list = Revocations::new();
        let now = now_millis();
        list.change_access("u", now, now + 60_000);
        list.change_access("u", now - 10_000, now + 50_000);
        let jti = v7_at(u64::try_from(now - 5).expect("after 1970"));
        assert!(list.refuses(&claims("u", None, &jti, now / 1000)));
    }

    #[test]
    fn events_from_auths_stream_fill_the_list() {
        let list = Revocations::new();
        let now = now_millis();
        let ts = |ms: i64| prost_types::Timestamp {
            seconds: ms / 1000,
            nanos: i32::try_from(ms % 1000).expect("under a second") * 1_000_000,
        };
        let revoked = SessionRevoked {
            session_id: "s9".into(),
            user_id: "u".into(),
            revoke_time: Some(ts(now)),
            reason: "logout".into(),
            deny_until: Some(ts(now + 60_000)),
        };
        let envelope = EventEnvelope {
            id: "e1".into(),
            r#type: SessionRevoked::full_name(),
            payload: Some(prost_types::Any::from_msg(&revoked).expect("encodes")),
            ..EventEnvelope::default()
        };
        list.apply(&envelope);
        let jti = v7_at(u64::try_from(now).expect("after 1970"));
        assert!(list.refuses(&claims("u", Some("s9"), &jti, now / 1000)));
    }
}
