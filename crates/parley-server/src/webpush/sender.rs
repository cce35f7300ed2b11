//! The background task that sends pushes: takes [`Push`]es off the bounded queue, at most
//! `webpush.concurrency` at a time (the queue fills, and drops, while they are all busy), looks
//! up the account's subscriptions and POSTs an encrypted, VAPID-signed message to each within
//! `webpush.timeout_secs`. A push service answering 404 or 410 has forgotten the subscription
//! (RFC 8030 section 7.3), so it is removed; other failures are logged and the push is lost,
//! as a notification is worth little late. Endpoints and keys never reach a log line.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, AUTHORIZATION};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use web_push_native::p256::PublicKey;
use web_push_native::{Auth, WebPushBuilder};

use super::endpoint::{self, PublicResolver};
use super::{Push, WebPush, WebPushError};
use crate::store::PushSubscription;

/// How long a push service keeps a message for a browser that is offline (the `TTL` header):
/// a day, after which a notification is stale.
const TTL: Duration = Duration::from_secs(24 * 60 * 60);

type PushClient = Client<HttpsConnector<HttpConnector<PublicResolver>>, Full<Bytes>>;

/// Send pushes until `shutdown`.
pub async fn run(
    service: Arc<WebPush>,
    mut jobs: mpsc::Receiver<Push>,
    shutdown: CancellationToken,
) -> Result<(), WebPushError> {
    let client = Arc::new(client(&service)?);
    let slots = Arc::new(Semaphore::new(service.config.concurrency));
    loop {
        let push = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            push = jobs.recv() => match push {
                Some(push) => push,
                None => return Ok(()),
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let (service, client) = (service.clone(), client.clone());
        tokio::spawn(async move {
            push_to_account(&service, &client, push).await;
            drop(slot);
        });
    }
}

/// HTTPS through our rustls (ring) with the system's roots; plain HTTP only when some host is
/// allowed it (`webpush.allow_insecure_endpoints`), and DNS answers kept to public addresses.
fn client(service: &WebPush) -> Result<PushClient, WebPushError> {
    let mut roots = rustls::RootCertStore::empty();
    let (_added, _ignored) =
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| WebPushError::Tls(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new_with_resolver(PublicResolver {
        allowed: service.allowed.clone(),
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(service.config.timeout_secs)));
    let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls);
    let connector = if service.config.allow_insecure_endpoints.is_empty() {
        builder.https_only().enable_http1().wrap_connector(http)
    } else {
        builder.https_or_http().enable_http1().wrap_connector(http)
    };
    Ok(Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector))
}

async fn push_to_account(service: &Arc<WebPush>, client: &PushClient, push: Push) {
    let store = service.store.clone();
    let account = push.account.clone();
    let subscriptions =
        match tokio::task::spawn_blocking(move || store.push_subscriptions(&account)).await {
            Ok(Ok(subscriptions)) => subscriptions,
            Ok(Err(error)) => {
                tracing::warn!(%error, "web push: cannot read the subscriptions");
                return;
            }
            Err(_) => return,
        };
    for subscription in subscriptions {
        let timeout = Duration::from_secs(service.config.timeout_secs);
        let sent = tokio::time::timeout(
            timeout,
            push_one(service, client, &subscription, &push.payload),
        )
        .await;
        match sent {
            Ok(Ok(Delivered::Yes)) => {}
            Ok(Ok(Delivered::Gone)) => {
                let store = service.store.clone();
                let (account, endpoint) = (push.account.clone(), subscription.endpoint.clone());
                let removed =
                    tokio::task::spawn_blocking(move || store.unregister_push(&account, &endpoint))
                        .await;
                tracing::info!(
                    account = %push.account,
                    removed = matches!(removed, Ok(Ok(true))),
                    "web push: the push service forgot a subscription; removed"
                );
            }
            Ok(Err(why)) => {
                tracing::warn!(account = %push.account, %why, "web push not delivered");
            }
            Err(_) => {
                tracing::warn!(account = %push.account, ?timeout, "web push timed out");
            }
        }
    }
}

enum Delivered {
    Yes,
    /// 404 or 410: the subscription is no more.
    Gone,
}

async fn push_one(
    service: &WebPush,
    client: &PushClient,
    subscription: &PushSubscription,
    payload: &[u8],
) -> Result<Delivered, String> {
    let uri = service
        .check_endpoint(&subscription.endpoint)
        .map_err(|error| error.to_string())?;
    let audience = endpoint::audience(&uri).ok_or("the endpoint has no origin")?;
    let (public, auth) = keys(subscription)?;
    let request = WebPushBuilder::new(uri, public, auth)
        .with_valid_duration(TTL)
        .build(payload.to_vec())
        .map_err(|error| format!("cannot encrypt: {error}"))?;
    let now = crate::clock::now_ms() / 1000;
    let authorization = service
        .vapid
        .authorization(&audience, &service.config.contact, now)
        .map_err(|error| error.to_string())?;
    let (mut parts, body) = request.into_parts();
    parts.headers.insert(
        AUTHORIZATION,
        HeaderValue::from_str(&authorization).map_err(|error| error.to_string())?,
    );
    // RFC 8030 section 5.3: a private message or a mention is what "high" is for.
    parts
        .headers
        .insert("urgency", HeaderValue::from_static("high"));
    let request = hyper::Request::from_parts(parts, Full::new(Bytes::from(body)));
    let response = client
        .request(request)
        .await
        .map_err(|error| format!("request failed: {error}"))?;
    // The body is not read: nothing in it is needed, and a hostile endpoint could make it
    // endless. Dropping the response closes the connection.
    match response.status().as_u16() {
        200..=299 => Ok(Delivered::Yes),
        404 | 410 => Ok(Delivered::Gone),
        status => Err(format!("the push service answered {status}")),
    }
}

/// The browser's P-256 public key and auth secret, as checked at `WEBPUSH REGISTER`.
fn keys(subscription: &PushSubscription) -> Result<(PublicKey, Auth), String> {
    let (public, auth) = decode_keys(&subscription.p256dh, &subscription.auth)?;
    Ok((public, auth))
}

/// Decode and check `p256dh` (an uncompressed P-256 point) and `auth` (16 bytes), URL-safe
/// base64 with or without padding.
pub(super) fn decode_keys(p256dh: &str, auth: &str) -> Result<(PublicKey, Auth), String> {
    let decode = |text: &str| URL_SAFE_NO_PAD.decode(text.trim_end_matches('='));
    let public = decode(p256dh)
        .ok()
        .and_then(|bytes| PublicKey::from_sec1_bytes(&bytes).ok())
        .ok_or("p256dh is not a P-256 public key")?;
    let auth = decode(auth)
        .ok()
        .filter(|bytes| bytes.len() == 16)
        .ok_or("auth is not 16 bytes")?;
    Ok((public, Auth::clone_from_slice(&auth)))
}
