//! Tokens that must not get in: the platform's access layer refuses every forgery, tested against
//! a server whose signing key the test knows, so that each forgery differs from a token the
//! server accepts in exactly one way.

use agora_platform::on_both_backends;

use crate::common::{TestAuth, authed, config};
use agora_contracts::agora::auth::v1 as pb;
use agora_platform::testing::{TestBackend, TestStore};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey, pkcs8::spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn pem_of(key: &SigningKey) -> String {
    key.to_pkcs8_pem(LineEnding::LF).expect("PEM").to_string()
}

fn claims(sub: &str) -> Value {
    json!({
        "iss": "agora-auth",
        "aud": "agora",
        "sub": sub,
        "iat": now(),
        "nbf": now(),
        "exp": now() + 600,
        "jti": "forged",
        "roles": [],
    })
}

fn sign(kid: Option<&str>, claims: &Value, key: &SigningKey) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    let encoding = EncodingKey::from_ed_pem(pem_of(key).as_bytes()).expect("key");
    jsonwebtoken::encode(&header, claims, &encoding).expect("signed")
}

fn unsigned(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn forgeries_are_refused_and_the_genuine_token_is_not(backend: TestBackend) {
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let Some(store) = TestStore::new(backend).await else {
        return;
    };
    let settings = config(&store, &[("auth.signing_key_pem", json!(pem_of(&key)))]);
    let auth = TestAuth::start(store, settings).await;
    let jwks = auth.jwks().await;
    let kid = jwks[0].kid.clone();
    let public_x = jwks[0].x.clone();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(&public_x).expect("base64url"),
        key.verifying_key().to_bytes(),
        "the configured key is the published one"
    );
    let (user_id, _) = auth.register(&crate::common::email("victim")).await;

    let call = |token: String| {
        let mut client = auth.client();
        async move {
            client
                .list_sessions(authed(pb::ListSessionsRequest {}, &token))
                .await
                .map(|_| ())
                .map_err(|status| status.code())
        }
    };

    let genuine = sign(Some(&kid), &claims(&user_id), &key);
    assert_eq!(
        call(genuine.clone()).await,
        Ok(()),
        "the control token is accepted"
    );

    let other_key = SigningKey::from_bytes(&[9u8; 32]);
    let with = |field: &str, value: Value| {
        let mut c = claims(&user_id);
        c[field] = value;
        c
    };
    let without = |field: &str| {
        let mut c = claims(&user_id);
        c.as_object_mut().expect("an object").remove(field);
        c
    };
    let tampered = {
        let parts: Vec<&str> = genuine.split('.').collect();
        let mut payload = claims(&user_id);
        payload["roles"] = json!(["admin"]);
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            parts[2]
        )
    };
    let hs256_with = |secret: &[u8]| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims(&user_id),
            &EncodingKey::from_secret(secret),
        )
        .expect("signed")
    };

    let forgeries: Vec<(&str, String)> = vec![
        (
            "alg none",
            unsigned(
                &json!({"alg": "none", "typ": "JWT", "kid": kid}),
                &claims(&user_id),
                b"",
            ),
        ),
        (
            "signed by another key under the same kid",
            sign(Some(&kid), &claims(&user_id), &other_key),
        ),
        (
            "expired",
            sign(Some(&kid), &with("exp", json!(now() - 3600)), &key),
        ),
        (
            "exp as a string",
            sign(
                Some(&kid),
                &with("exp", json!((now() + 600).to_string())),
                &key,
            ),
        ),
        (
            "nbf as a string",
            sign(Some(&kid), &with("nbf", json!(now().to_string())), &key),
        ),
        (
            "not valid yet",
            sign(Some(&kid), &with("nbf", json!(now() + 3600)), &key),
        ),
        ("no exp", sign(Some(&kid), &without("exp"), &key)),
        (
            "wrong audience",
            sign(Some(&kid), &with("aud", json!("someone-else")), &key),
        ),
        (
            "wrong issuer",
            sign(Some(&kid), &with("iss", json!("evil-auth")), &key),
        ),
        ("tampered payload", tampered),
        (
            "HS256 keyed with the raw public key",
            hs256_with(&key.verifying_key().to_bytes()),
        ),
        (
            "HS256 keyed with the JWK x",
            hs256_with(public_x.as_bytes()),
        ),
        ("no kid", sign(None, &claims(&user_id), &key)),
        (
            "unknown kid",
            sign(Some("not-a-key"), &claims(&user_id), &key),
        ),
        ("not a JWT", "definitely.not.a-jwt".to_owned()),
    ];
    for (name, token) in forgeries {
        assert_eq!(call(token).await, Err(Code::Unauthenticated), "{name}");
    }

    // A forged admin role signed with a foreign key gets nowhere either.
    let mut admin_claims = claims(&user_id);
    admin_claims["roles"] = json!(["admin"]);
    let forged_admin = sign(Some(&kid), &admin_claims, &other_key);
    let status = auth.rotate(&forged_admin).await.expect_err("forged");
    assert_eq!(status.code(), Code::Unauthenticated);

    // With keys from configuration, rotation is refused with a reason.
    let admin = auth.admin_token().await;
    let status = auth.rotate(&admin).await.expect_err("configured keys");
    assert_eq!(status.code(), Code::FailedPrecondition);
}

on_both_backends!(forgeries_are_refused_and_the_genuine_token_is_not);
