//! Validating an identity provider's tokens (docs/BENCHMARKS.md, issue 27).
//!
//! A provider is served on loopback (a discovery document and a JWKS with
//! one Ed25519 key, as an `oidc-provider` or Keycloak would publish), and
//! discovered through the real [`Provider`]. Then, through the same
//! [`Authenticator::authenticate`] every request passes:
//!
//! - `first`: 2,000 distinct provider tokens, each checked once (signature,
//!   claims, identity map);
//! - `cached`: the same tokens again, 100 rounds (what a console session or a
//!   pipeline repeating its token costs); goal p99 < 0.2 ms;
//! - `own`: govledger's own tokens, cached, for comparison.
//!
//! `cargo bench --bench auth`

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use base64::Engine as _;
use govledger::auth::identity::IdentityMap;
use govledger::auth::oidc::{OidcConfig, Provider};
use govledger::auth::{Authenticator, Revocations, TokenConfig, TokenIssuer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::json;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKENS: usize = 2_000;
const ROUNDS: usize = 100;

/// Serves `discovery` and `jwks` on `listener`, one connection at a time.
fn serve(listener: TcpListener, discovery: String, jwks: String) {
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
                header.clear();
            }
            let body = if line.contains("openid-configuration") { &discovery } else { &jwks };
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: {} checks, p50 {:.4} ms, p99 {:.4} ms, max {:.4} ms",
        times.len(),
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
}

fn main() {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwks =
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bench-1", "alg": "EdDSA", "use": "sig"}]});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = format!("http://127.0.0.1:{port}");
    let discovery = json!({
        "issuer": issuer, "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
    });
    serve(listener, discovery.to_string(), jwks.to_string());

    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let roles = ["risk_officer".to_owned(), "viewer".to_owned()].into_iter().collect();
    let map = IdentityMap::parse(
        "[[map]]\nclaim = \"groups\"\nvalue = \"risk-officers\"\nroles = [\"risk_officer\"]\nprojects = [\"*\"]\n",
        &roles,
    )
    .unwrap();
    let mut config = OidcConfig::new(&issuer, "govledger", dir.path());
    config.cache_path = dir.path().join("oidc-cache.json");
    let provider = runtime.block_on(Provider::discover(config, map)).unwrap();
    let tokens_config = TokenConfig::in_data_dir(dir.path());
    let (own_issuer, own_key) = TokenIssuer::load_or_create(&tokens_config).unwrap();
    let authenticator = Authenticator::new(&tokens_config, own_key, Revocations::default()).unwrap();
    authenticator.set_provider(provider);

    let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("bench-1".into());
    let now = govledger::auth::tokens::now();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            let claims = json!({"iss": issuer, "aud": "govledger", "sub": format!("person-{i}"), "iat": now,
                                "exp": now + 3600, "groups": ["staff", "risk-officers"], "email": format!("p{i}@example.com")});
            jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
        })
        .collect();

    let mut first = Vec::with_capacity(TOKENS);
    for token in &tokens {
        let started = Instant::now();
        let principal = authenticator.authenticate(token).unwrap();
        first.push(started.elapsed());
        assert_eq!(principal.roles, ["risk_officer"]);
    }
    report("first check of a provider token (signature, claims, identity map)", first);
    let mut cached = Vec::with_capacity(TOKENS * ROUNDS);
    for _ in 0..ROUNDS {
        for token in &tokens {
            let started = Instant::now();
            let principal = authenticator.authenticate(token).unwrap();
            cached.push(started.elapsed());
            std::hint::black_box(principal);
        }
    }
    report("provider token from the cache (goal p99 < 0.2 ms)", cached);
    let own: Vec<String> = (0..TOKENS)
        .map(|i| own_issuer.issue(&format!("ci-{i}"), &["ci".into()], &["*".into()], 3600).unwrap().0)
        .collect();
    for token in &own {
        authenticator.authenticate(token).unwrap();
    }
    let mut own_cached = Vec::with_capacity(TOKENS * ROUNDS);
    for _ in 0..ROUNDS {
        for token in &own {
            let started = Instant::now();
            std::hint::black_box(authenticator.authenticate(token).unwrap());
            own_cached.push(started.elapsed());
        }
    }
    report("govledger's own token from the cache (baseline)", own_cached);
}
