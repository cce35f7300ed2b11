//! `KEYS` (capability `parley.chat/e2e`, docs/e2e.md): the end-to-end encryption key directory.
//! A logged-in client publishes its device (identity keys), one-time keys and a fallback key;
//! others list an account's devices by nick and claim a one-time key of one to start an Olm
//! session. Only public keys pass through here; the server never sees a private key nor checks
//! the device signature (clients do: it binds the device to the account they are shown).
//!
//! Every subcommand needs an account, and every write names the caller's own account, so no one
//! can add keys to or remove another's device. Keys are checked to be 32-byte (signatures
//! 64-byte) unpadded standard base64 before the store sees them; the store is asked off the
//! handler (a follow-up), one call per line.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use parley_proto::{casefold, numeric, Message};

use crate::accounts::key_directory::{
    KeyDirectory, MAX_DEVICES, MAX_KEYS_PER_LINE, MAX_UNCLAIMED_KEYS,
};
use crate::context::{Ctx, Reply};
use crate::store::e2e_keys::{Claimed, Device, KeyCount, Uploaded};
use crate::store::StoreError;

const COMMAND: &str = "KEYS";

pub fn keys(ctx: &mut Ctx<'_>, msg: &Message<'_>) -> Result<(), Reply> {
    let Some(directory) = ctx.shared.e2e_keys.clone() else {
        return Err(Reply::new(
            numeric::ERR_UNKNOWNCOMMAND,
            &[COMMAND],
            "Unknown command",
        ));
    };
    let Some(account) = ctx.session.account.as_deref().map(casefold) else {
        return Err(Reply::fail(
            COMMAND,
            "ACCOUNT_REQUIRED",
            &["*"],
            "Encryption keys are kept per account: log in first",
        ));
    };
    let subcommand = msg.param(0).unwrap_or_default().to_ascii_uppercase();
    let call = Call { directory, account };
    match subcommand.as_str() {
        "UPLOAD" => upload(ctx, msg, call),
        "OTK" => one_time_keys(ctx, msg, call),
        "FALLBACK" => fallback(ctx, msg, call),
        "COUNT" => count(ctx, msg, call),
        "REMOVE" => remove(ctx, msg, call),
        "LIST" => list(ctx, msg, call),
        "CLAIM" => claim(ctx, msg, call),
        _ => Err(invalid(
            if subcommand.is_empty() {
                "*"
            } else {
                &subcommand
            },
            "Unknown subcommand; use UPLOAD, OTK, FALLBACK, COUNT, REMOVE, LIST or CLAIM",
        )),
    }
}

/// What every subcommand acts with: the directory and the caller's casefolded account.
struct Call {
    directory: std::sync::Arc<KeyDirectory>,
    account: String,
}

fn invalid(subcommand: &str, text: &str) -> Reply {
    Reply::fail(COMMAND, "INVALID_PARAMS", &[subcommand], text)
}

/// Whether `text` is unpadded standard base64 of exactly `bytes` bytes (a Curve25519 or
/// Ed25519 public key: 32, 43 characters; an Ed25519 signature: 64, 86 characters).
fn is_base64_of(text: &str, bytes: usize) -> bool {
    text.len() == (bytes * 4).div_ceil(3)
        && STANDARD_NO_PAD
            .decode(text)
            .is_ok_and(|decoded| decoded.len() == bytes)
}

fn is_key(text: &str) -> bool {
    is_base64_of(text, 32)
}

/// The parameters after the subcommand, exactly `N` of them, or `INVALID_PARAMS` with `usage`.
fn params<'m, const N: usize>(
    msg: &'m Message<'_>,
    subcommand: &str,
    usage: &str,
) -> Result<[&'m str; N], Reply> {
    if msg.param(N + 1).is_some() {
        return Err(invalid(subcommand, usage));
    }
    let mut found = [""; N];
    for (i, slot) in found.iter_mut().enumerate() {
        *slot = msg
            .param(i + 1)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| invalid(subcommand, usage))?;
    }
    Ok(found)
}

/// The device key parameter of an own-device subcommand, checked.
fn device_key<'m>(curve: &'m str, subcommand: &str) -> Result<&'m str, Reply> {
    if is_key(curve) {
        Ok(curve)
    } else {
        Err(invalid(
            subcommand,
            "The device key must be a Curve25519 public key (43 characters of base64)",
        ))
    }
}

fn failed(ctx: &Ctx<'_>, subcommand: &str, error: &StoreError) {
    tracing::warn!(%error, subcommand, "the key directory could not answer");
    ctx.reply(&Reply::fail(
        COMMAND,
        "INTERNAL_ERROR",
        &[subcommand],
        "The key directory could not be reached; try again later",
    ));
}

/// `KEYS COUNT <curve> <n>`, or why there is no count.
fn answer_count(
    ctx: &Ctx<'_>,
    subcommand: &str,
    curve: &str,
    counted: Result<KeyCount, StoreError>,
) {
    match counted {
        Ok(KeyCount::Unclaimed(n)) => {
            ctx.server_line(COMMAND, &["COUNT", curve, &n.to_string()], None)
        }
        Ok(KeyCount::UnknownDevice) => ctx.reply(&Reply::fail(
            COMMAND,
            "UNKNOWN_DEVICE",
            &[curve],
            "Your account has no device with that key; KEYS UPLOAD it first",
        )),
        Ok(KeyCount::TooManyKeys) => ctx.reply(&Reply::fail(
            COMMAND,
            "TOO_MANY_KEYS",
            &[curve],
            &format!(
                "A device may have at most {MAX_UNCLAIMED_KEYS} unclaimed one-time keys; none were added"
            ),
        )),
        Err(error) => failed(ctx, subcommand, &error),
    }
}

/// `KEYS UPLOAD <curve> <ed25519> <sig>` -> `KEYS UPLOADED <curve>`.
fn upload(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [curve, ed25519, signature] = params::<3>(
        msg,
        "UPLOAD",
        "Use KEYS UPLOAD <curve25519 key> <ed25519 key> <signature>",
    )?;
    let curve = device_key(curve, "UPLOAD")?;
    if !is_key(ed25519) || !is_base64_of(signature, 64) {
        return Err(invalid(
            "UPLOAD",
            "The Ed25519 key must be 43 and the signature 86 characters of base64",
        ));
    }
    let device = Device {
        curve: curve.to_owned(),
        ed25519: ed25519.to_owned(),
        signature: signature.to_owned(),
    };
    let store = call.directory.store().clone();
    ctx.then_blocking(
        move || {
            let uploaded = store.upload_device(&call.account, &device, MAX_DEVICES);
            (device.curve, uploaded)
        },
        |ctx, (curve, uploaded)| match uploaded {
            Ok(Uploaded::Stored) => ctx.server_line(COMMAND, &["UPLOADED", &curve], None),
            Ok(Uploaded::KeyMismatch) => ctx.reply(&Reply::fail(
                COMMAND,
                "KEY_MISMATCH",
                &[&curve],
                "That device key is published already with other keys or by another account",
            )),
            Ok(Uploaded::TooManyDevices) => ctx.reply(&Reply::fail(
                COMMAND,
                "TOO_MANY_DEVICES",
                &[&curve],
                &format!(
                    "An account may have at most {MAX_DEVICES} devices; KEYS REMOVE an old one first"
                ),
            )),
            Err(error) => failed(ctx, "UPLOAD", &error),
        },
    );
    Ok(())
}

/// `KEYS OTK <curve> <key>[,<key>...]` -> `KEYS COUNT <curve> <n>`.
fn one_time_keys(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [curve, list] = params::<2>(msg, "OTK", "Use KEYS OTK <device key> <key>[,<key>...]")?;
    let curve = device_key(curve, "OTK")?.to_owned();
    // Counted before anything is split out, so a long line costs no more than the cap.
    if list.split(',').nth(MAX_KEYS_PER_LINE).is_some() {
        return Err(invalid(
            "OTK",
            &format!("At most {MAX_KEYS_PER_LINE} one-time keys per line"),
        ));
    }
    let keys: Vec<String> = list.split(',').map(str::to_owned).collect();
    if !keys.iter().all(|key| is_key(key)) {
        return Err(invalid(
            "OTK",
            "Each one-time key must be a Curve25519 public key (43 characters of base64)",
        ));
    }
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let curve = curve.clone();
            move || store.add_one_time_keys(&call.account, &curve, &keys, MAX_UNCLAIMED_KEYS)
        },
        move |ctx, counted| answer_count(ctx, "OTK", &curve, counted),
    );
    Ok(())
}

/// `KEYS FALLBACK <curve> <key>` -> `KEYS COUNT <curve> <n>`.
fn fallback(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [curve, key] = params::<2>(msg, "FALLBACK", "Use KEYS FALLBACK <device key> <key>")?;
    let curve = device_key(curve, "FALLBACK")?.to_owned();
    if !is_key(key) {
        return Err(invalid(
            "FALLBACK",
            "The fallback key must be a Curve25519 public key (43 characters of base64)",
        ));
    }
    let key = key.to_owned();
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let curve = curve.clone();
            move || store.set_fallback_key(&call.account, &curve, &key)
        },
        move |ctx, counted| answer_count(ctx, "FALLBACK", &curve, counted),
    );
    Ok(())
}

/// `KEYS COUNT <curve>` -> `KEYS COUNT <curve> <n>`.
fn count(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [curve] = params::<1>(msg, "COUNT", "Use KEYS COUNT <device key>")?;
    let curve = device_key(curve, "COUNT")?.to_owned();
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let curve = curve.clone();
            move || store.count_one_time_keys(&call.account, &curve)
        },
        move |ctx, counted| answer_count(ctx, "COUNT", &curve, counted),
    );
    Ok(())
}

/// `KEYS REMOVE <curve>` -> `KEYS REMOVED <curve>`: an own device, with its keys.
fn remove(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [curve] = params::<1>(msg, "REMOVE", "Use KEYS REMOVE <device key>")?;
    let curve = device_key(curve, "REMOVE")?.to_owned();
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let curve = curve.clone();
            move || store.remove_device(&call.account, &curve)
        },
        move |ctx, removed| match removed {
            Ok(true) => ctx.server_line(COMMAND, &["REMOVED", &curve], None),
            Ok(false) => ctx.reply(&Reply::fail(
                COMMAND,
                "UNKNOWN_DEVICE",
                &[&curve],
                "Your account has no device with that key",
            )),
            Err(error) => failed(ctx, "REMOVE", &error),
        },
    );
    Ok(())
}

/// The casefolded account of whoever uses `nick` now (this node's users and, in a cluster,
/// the others'), or the FAIL saying there is nobody or nobody logged in. The answers name the
/// nick as the client sent it, so it can match them to what it asked.
fn account_of(ctx: &Ctx<'_>, nick: &str) -> Result<(String, String), Reply> {
    let limits = &ctx.shared.config.limits;
    if !parley_proto::validate::nick(nick, limits.nick_len) {
        return Err(Reply::fail(
            COMMAND,
            "NO_SUCH_NICK",
            &[nick],
            "No such nick",
        ));
    }
    let world = ctx.shared.world.lock();
    let Some(user) = world.user_by_nick(nick) else {
        return Err(Reply::fail(
            COMMAND,
            "NO_SUCH_NICK",
            &[nick],
            "No such nick",
        ));
    };
    let Some(account) = user.account.as_deref().map(casefold) else {
        return Err(Reply::fail(
            COMMAND,
            "NO_ACCOUNT",
            &[nick],
            "That user is not logged in, so has no keys",
        ));
    };
    Ok((nick.to_owned(), account))
}

/// `KEYS LIST <nick>` -> a `KEYS DEVICE` line per device of the account using `<nick>`, then
/// `KEYS END`.
fn list(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [nick] = params::<1>(msg, "LIST", "Use KEYS LIST <nick>")?;
    let (nick, account) = account_of(ctx, nick)?;
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let account = account.clone();
            move || store.devices(&account)
        },
        move |ctx, devices| match devices {
            Ok(devices) => {
                for device in &devices {
                    ctx.server_line(
                        COMMAND,
                        &[
                            "DEVICE",
                            &nick,
                            &account,
                            &device.curve,
                            &device.ed25519,
                            &device.signature,
                        ],
                        None,
                    );
                }
                ctx.server_line(COMMAND, &["END", &nick, &account], None);
            }
            Err(error) => failed(ctx, "LIST", &error),
        },
    );
    Ok(())
}

/// `KEYS CLAIM <nick> <curve>` -> `KEYS CLAIMED <nick> <account> <curve> <key>`.
fn claim(ctx: &mut Ctx<'_>, msg: &Message<'_>, call: Call) -> Result<(), Reply> {
    let [nick, curve] = params::<2>(msg, "CLAIM", "Use KEYS CLAIM <nick> <device key>")?;
    let curve = device_key(curve, "CLAIM")?.to_owned();
    let (nick, owner) = account_of(ctx, nick)?;
    if !call.directory.take_claim(&call.account) {
        return Err(Reply::fail(
            COMMAND,
            "RATE_LIMITED",
            &[&nick],
            "Too many key claims from your account; wait a minute",
        ));
    }
    let store = call.directory.store().clone();
    ctx.then_blocking(
        {
            let (owner, curve) = (owner.clone(), curve.clone());
            move || store.claim_key(&owner, &curve)
        },
        move |ctx, claimed| match claimed {
            Ok(Claimed::OneTime(key) | Claimed::Fallback(key)) => {
                ctx.server_line(COMMAND, &["CLAIMED", &nick, &owner, &curve, &key], None)
            }
            Ok(Claimed::NoKeys) => ctx.reply(&Reply::fail(
                COMMAND,
                "NO_KEYS",
                &[&nick, &curve],
                "That device has no key left to claim",
            )),
            Err(error) => failed(ctx, "CLAIM", &error),
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_43_and_signatures_86_characters_of_canonical_base64() {
        let key = STANDARD_NO_PAD.encode([0xfb; 32]);
        assert!(key.contains('+'), "{key}");
        let signature = STANDARD_NO_PAD.encode([9u8; 64]);
        assert_eq!((key.len(), signature.len()), (43, 86));
        assert!(is_key(&key));
        assert!(is_base64_of(&signature, 64));
        assert!(!is_key(&signature));
        assert!(
            !is_key(&format!("{key}=")),
            "padding is not vodozemac's form"
        );
        assert!(
            !is_key(&key.replace('+', "-")),
            "URL-safe is not standard base64"
        );
        assert!(!is_key(&key[..42]));
        // The last character carries 4 bits of the key and 2 unused ones that must be zero.
        let mut loose = key.clone();
        loose.pop();
        loose.push('B');
        assert!(!is_key(&loose), "{loose}");
    }
}
