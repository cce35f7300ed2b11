//! SCRAM-SHA-256 (RFC 5802 with RFC 7677's hash) for both ends of a SASL exchange: the four
//! messages, the key derivation, the proofs, and the RFC 5803 form a server stores instead of the
//! password. Pure like the rest of this crate: the caller brings the randomness (nonces, salts)
//! and decides where the slow PBKDF2 runs, so a server can keep it off its workers and a client
//! can cache it. No channel binding: this side sends the gs2 header `n,,` and refuses `p=`. Every
//! parser returns an error for bad input and never panics.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The SASL mechanism name.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// RFC 7677's floor for the iteration count; a server that offers fewer is refused.
pub const MIN_ITERATIONS: u32 = 4096;
/// The most iterations a client here accepts from a server, so a hostile server cannot make a
/// client spin for minutes; a server here cannot be configured above it.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Length of SHA-256 output, and so of every key and proof.
pub const KEY_LEN: usize = 32;

/// What this side sends: no channel binding, no authorization identity.
const GS2_HEADER: &str = "n,,";

type HmacSha256 = Hmac<Sha256>;

/// Why a SCRAM message or credential was refused.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error(
        "channel binding (p=) is not supported; use SCRAM-SHA-256 without it (gs2 header `n,,`)"
    )]
    ChannelBinding,
    #[error("the SCRAM message requires an extension (m=) that is not supported")]
    MandatoryExtension,
    #[error("the nonce does not continue this exchange")]
    NonceMismatch,
    #[error("the channel-binding attribute (c=) does not repeat the first message's gs2 header")]
    BindingMismatch,
    #[error("iteration count {count} is outside the accepted {MIN_ITERATIONS} to {max}")]
    Iterations { count: u32, max: u32 },
    #[error("the client proof is wrong")]
    InvalidProof,
    #[error("the server's signature is wrong: it does not know this account's credential")]
    InvalidServerSignature,
    #[error("the server refused the login: {0}")]
    ServerError(String),
    #[error("the password has characters SCRAM cannot use (SASLprep, RFC 4013, refuses it)")]
    Password,
    #[error("not a SCRAM-SHA-256 credential in RFC 5803 form: {0}")]
    Credential(&'static str),
}

/// `HMAC-SHA-256(key, parts...)`.
fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; KEY_LEN] {
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts a key of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    Sha256::digest(data).into()
}

fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    BASE64.decode(text).ok()?.try_into().ok()
}

/// A nonce is printable ASCII without ',' (RFC 5802 `printable`).
fn valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A nonce made from random bytes the caller drew (base64, so printable and without ',').
pub fn nonce_from_random(random: &[u8]) -> String {
    BASE64.encode(random)
}

/// A name as a SCRAM `saslname`: ',' and '=' escaped as `=2C` and `=3D`.
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// The name a `saslname` stands for; any '=' other than `=2C`/`=3D` is an error.
pub fn decode_saslname(text: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let escape = rest.get(at + 1..at + 3);
        out.push(match escape {
            Some("2C") => ',',
            Some("3D") => '=',
            _ => return Err(ScramError::Malformed("'=' in a name must be =2C or =3D")),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(ScramError::Malformed("the name is empty"));
    }
    Ok(out)
}

/// The value of the attribute `key=value`, when `part` is that attribute.
fn attribute<'a>(
    part: Option<&'a str>,
    key: char,
    missing: &'static str,
) -> Result<&'a str, ScramError> {
    let part = part.ok_or(ScramError::Malformed(missing))?;
    let mut chars = part.chars();
    match (chars.next(), chars.next()) {
        (Some(k), Some('=')) if k == key => Ok(&part[2..]),
        _ => Err(ScramError::Malformed(missing)),
    }
}

/// Attributes after the required ones: extensions, which must look like `x=value` and are
/// otherwise ignored (RFC 5802 section 5.1).
fn check_extensions<'a>(rest: impl Iterator<Item = &'a str>) -> Result<(), ScramError> {
    for part in rest {
        let mut chars = part.chars();
        match (chars.next(), chars.next()) {
            (Some(k), Some('=')) if k.is_ascii_alphabetic() => {}
            _ => {
                return Err(ScramError::Malformed(
                    "an attribute is not of the form x=value",
                ))
            }
        }
    }
    Ok(())
}

/// PBKDF2-HMAC-SHA-256 of the SASLprepped password: the slow step, and the one secret a client
/// may cache per salt and iteration count instead of the password.
#[derive(Clone, PartialEq, Eq)]
pub struct SaltedPassword([u8; KEY_LEN]);

// Hand-written: this is as good as the password for logging in.
impl fmt::Debug for SaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SaltedPassword(<redacted>)")
    }
}

impl SaltedPassword {
    /// Run PBKDF2 with `iterations` rounds: milliseconds to a second, so keep it off async workers.
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> Result<Self, ScramError> {
        if iterations == 0 {
            return Err(ScramError::Iterations {
                count: 0,
                max: MAX_ITERATIONS,
            });
        }
        let prepared = stringprep::saslprep(password).map_err(|_| ScramError::Password)?;
        let mut out = [0; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepared.as_bytes(), salt, iterations, &mut out);
        Ok(SaltedPassword(out))
    }

    fn client_key(&self) -> [u8; KEY_LEN] {
        hmac(&self.0, &[b"Client Key"])
    }

    fn server_key(&self) -> [u8; KEY_LEN] {
        hmac(&self.0, &[b"Server Key"])
    }
}

/// What a server keeps per account: enough to check a proof and prove itself, not enough to log
/// in as the account (RFC 5802 section 3). Written as RFC 5803's
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

// Hand-written: the keys allow guessing the password offline, so they stay out of logs.
impl fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCredential")
            .field("iterations", &self.iterations)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for StoredCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{MECHANISM}${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(self.stored_key),
            BASE64.encode(self.server_key)
        )
    }
}

impl StoredCredential {
    /// Derive the credential for `password` (slow: runs PBKDF2).
    pub fn new(password: &str, salt: &[u8], iterations: u32) -> Result<Self, ScramError> {
        let salted = SaltedPassword::derive(password, salt, iterations)?;
        Ok(Self::from_salted(&salted, salt, iterations))
    }

    /// The credential from an already derived [`SaltedPassword`].
    pub fn from_salted(salted: &SaltedPassword, salt: &[u8], iterations: u32) -> Self {
        StoredCredential {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&salted.client_key()),
            server_key: salted.server_key(),
        }
    }

    /// A credential from its parts, for a server that answers for accounts it does not have with
    /// keys nobody can match.
    pub fn from_parts(
        iterations: u32,
        salt: Vec<u8>,
        stored_key: [u8; KEY_LEN],
        server_key: [u8; KEY_LEN],
    ) -> Self {
        StoredCredential {
            iterations,
            salt,
            stored_key,
            server_key,
        }
    }

    /// Read the RFC 5803 form that [`fmt::Display`] writes.
    pub fn parse(text: &str) -> Result<Self, ScramError> {
        let rest = text
            .strip_prefix(MECHANISM)
            .and_then(|rest| rest.strip_prefix('$'))
            .ok_or(ScramError::Credential(
                "it does not start with SCRAM-SHA-256$",
            ))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(ScramError::Credential("no '$' before the keys"))?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or(ScramError::Credential("no ':' between iterations and salt"))?;
        let (stored_key, server_key) = keys
            .split_once(':')
            .ok_or(ScramError::Credential("no ':' between the keys"))?;
        let iterations: u32 =
            iterations
                .parse()
                .ok()
                .filter(|count| *count > 0)
                .ok_or(ScramError::Credential(
                    "the iteration count is not a number above 0",
                ))?;
        let salt = BASE64
            .decode(salt)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or(ScramError::Credential("the salt is not base64"))?;
        Ok(StoredCredential {
            iterations,
            salt,
            stored_key: decode_key(stored_key).ok_or(ScramError::Credential(
                "StoredKey is not 32 bytes of base64",
            ))?,
            server_key: decode_key(server_key).ok_or(ScramError::Credential(
                "ServerKey is not 32 bytes of base64",
            ))?,
        })
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    pub fn salt(&self) -> &[u8] {
        &self.salt
    }
}

/// The client's first message as a server reads it: `gs2-header client-first-bare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    gs2_header: String,
    authzid: Option<String>,
    username: String,
    nonce: String,
    bare: String,
}

impl ClientFirst {
    /// Parse `n,[a=authzid],n=name,r=nonce[,extensions]`. `y` (client could bind, thinks we
    /// cannot) is accepted as RFC 5802 asks of a server without channel binding; `p=` is refused.
    pub fn parse(message: &str) -> Result<Self, ScramError> {
        let (flag, rest) = message
            .split_once(',')
            .ok_or(ScramError::Malformed("no gs2 header"))?;
        match flag {
            "n" | "y" => {}
            flag if flag.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => {
                return Err(ScramError::Malformed(
                    "the gs2 header must start with n or y",
                ))
            }
        }
        let (authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed(
            "the gs2 header does not end with ','",
        ))?;
        let authzid = match authzid {
            "" => None,
            other => Some(decode_saslname(attribute(
                Some(other),
                'a',
                "the authorization identity must be a=name",
            )?)?),
        };
        let gs2_header = message[..message.len() - bare.len()].to_owned();
        let mut parts = bare.split(',');
        let first = parts.next();
        if first.is_some_and(|part| part.starts_with("m=")) {
            return Err(ScramError::MandatoryExtension);
        }
        let username = decode_saslname(attribute(first, 'n', "no n=name")?)?;
        let nonce = attribute(parts.next(), 'r', "no r=nonce after the name")?;
        if !valid_nonce(nonce) {
            return Err(ScramError::Malformed(
                "the nonce is not printable ASCII without ','",
            ));
        }
        check_extensions(parts)?;
        Ok(ClientFirst {
            gs2_header,
            authzid,
            username,
            nonce: nonce.to_owned(),
            bare: bare.to_owned(),
        })
    }

    /// The account the client logs in as.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The identity to act as, when the client named one (`a=`).
    pub fn authzid(&self) -> Option<&str> {
        self.authzid.as_deref()
    }

    pub fn nonce(&self) -> &str {
        &self.nonce
    }
}

/// A server's side of one exchange, from its first message to the proof check.
#[derive(Clone)]
pub struct ServerExchange {
    gs2_header: String,
    client_first_bare: String,
    nonce: String,
    server_first: String,
    credential: StoredCredential,
}

impl fmt::Debug for ServerExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerExchange")
            .field("nonce", &self.nonce)
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl ServerExchange {
    /// Answer `client_first` for `credential`, extending the client's nonce with `server_nonce`
    /// (fresh randomness, see [`nonce_from_random`]).
    pub fn new(
        client_first: &ClientFirst,
        server_nonce: &str,
        credential: StoredCredential,
    ) -> Result<Self, ScramError> {
        if !valid_nonce(server_nonce) {
            return Err(ScramError::Malformed(
                "the server nonce is not printable ASCII without ','",
            ));
        }
        let nonce = format!("{}{server_nonce}", client_first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        Ok(ServerExchange {
            gs2_header: client_first.gs2_header.clone(),
            client_first_bare: client_first.bare.clone(),
            nonce,
            server_first,
            credential,
        })
    }

    /// `r=nonce,s=salt,i=iterations`, to send.
    pub fn server_first(&self) -> &str {
        &self.server_first
    }

    /// Check the client's final message. On success, returns the server's final message
    /// (`v=signature`) that proves to the client that this server holds its credential.
    /// The proof is compared in constant time.
    pub fn finish(&self, client_final: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = client_final
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no p=proof at the end"))?;
        let mut parts = without_proof.split(',');
        let binding = attribute(parts.next(), 'c', "no c=binding first")?;
        let nonce = attribute(parts.next(), 'r', "no r=nonce after c=")?;
        check_extensions(parts)?;
        let binding = BASE64
            .decode(binding)
            .map_err(|_| ScramError::Malformed("c= is not base64"))?;
        if binding != self.gs2_header.as_bytes() {
            return Err(ScramError::BindingMismatch);
        }
        if nonce != self.nonce {
            return Err(ScramError::NonceMismatch);
        }
        let proof =
            decode_key(proof).ok_or(ScramError::Malformed("p= is not 32 bytes of base64"))?;
        let auth = [
            self.client_first_bare.as_bytes(),
            b",",
            self.server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let signature = hmac(&self.credential.stored_key, &auth);
        let mut client_key = proof;
        for (byte, mask) in client_key.iter_mut().zip(signature) {
            *byte ^= mask;
        }
        if !bool::from(sha256(&client_key).ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::InvalidProof);
        }
        let server_signature = hmac(&self.credential.server_key, &auth);
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

/// A client's side of one exchange, before the server's first message.
#[derive(Debug, Clone)]
pub struct ClientExchange {
    nonce: String,
    bare: String,
}

impl ClientExchange {
    /// Start logging in as `username` with `nonce` (fresh randomness, see [`nonce_from_random`]).
    pub fn new(username: &str, nonce: &str) -> Result<Self, ScramError> {
        if username.is_empty() {
            return Err(ScramError::Malformed("the name is empty"));
        }
        if !valid_nonce(nonce) {
            return Err(ScramError::Malformed(
                "the nonce is not printable ASCII without ','",
            ));
        }
        Ok(ClientExchange {
            nonce: nonce.to_owned(),
            bare: format!("n={},r={nonce}", encode_saslname(username)),
        })
    }

    /// `n,,n=name,r=nonce`, to send.
    pub fn client_first(&self) -> String {
        format!("{GS2_HEADER}{}", self.bare)
    }

    /// Read the server's first message: its nonce must extend ours, and its iteration count must
    /// lie between [`MIN_ITERATIONS`] and `max_iterations`.
    pub fn server_first(
        &self,
        message: &str,
        max_iterations: u32,
    ) -> Result<ServerChallenge, ScramError> {
        let mut parts = message.split(',');
        let first = parts.next();
        if first.is_some_and(|part| part.starts_with("m=")) {
            return Err(ScramError::MandatoryExtension);
        }
        let nonce = attribute(first, 'r', "no r=nonce first")?;
        if !valid_nonce(nonce) {
            return Err(ScramError::Malformed(
                "the nonce is not printable ASCII without ','",
            ));
        }
        if nonce.len() <= self.nonce.len() || !nonce.starts_with(&self.nonce) {
            return Err(ScramError::NonceMismatch);
        }
        let salt = BASE64
            .decode(attribute(parts.next(), 's', "no s=salt after the nonce")?)
            .ok()
            .filter(|salt| !salt.is_empty())
            .ok_or(ScramError::Malformed("s= is not base64"))?;
        let count = attribute(parts.next(), 'i', "no i=iterations after the salt")?;
        let count: u32 = count
            .parse()
            .map_err(|_| ScramError::Malformed("i= is not a number"))?;
        if !(MIN_ITERATIONS..=max_iterations).contains(&count) {
            return Err(ScramError::Iterations {
                count,
                max: max_iterations,
            });
        }
        check_extensions(parts)?;
        Ok(ServerChallenge {
            salt,
            iterations: count,
            nonce: nonce.to_owned(),
            auth_prefix: format!("{},{message}", self.bare),
        })
    }
}

/// The server's salt and iteration count, once its first message checked out.
#[derive(Debug, Clone)]
pub struct ServerChallenge {
    salt: Vec<u8>,
    iterations: u32,
    nonce: String,
    /// `client-first-bare,server-first`: the start of the AuthMessage both sides sign.
    auth_prefix: String,
}

impl ServerChallenge {
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// The client's final message with its proof, from the password salted with this salt and
    /// iteration count ([`SaltedPassword::derive`], or a cached one).
    pub fn respond(&self, salted: &SaltedPassword) -> ClientResponse {
        let without_proof = format!("c={},r={}", BASE64.encode(GS2_HEADER), self.nonce);
        let auth = [self.auth_prefix.as_bytes(), b",", without_proof.as_bytes()];
        let client_key = salted.client_key();
        let signature = hmac(&sha256(&client_key), &auth);
        let mut proof = client_key;
        for (byte, mask) in proof.iter_mut().zip(signature) {
            *byte ^= mask;
        }
        ClientResponse {
            message: format!("{without_proof},p={}", BASE64.encode(proof)),
            server_signature: hmac(&salted.server_key(), &auth),
        }
    }
}

/// The client's final message, and the signature the server must answer with.
#[derive(Clone)]
pub struct ClientResponse {
    message: String,
    server_signature: [u8; KEY_LEN],
}

impl fmt::Debug for ClientResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientResponse").finish_non_exhaustive()
    }
}

impl ClientResponse {
    /// `c=biws,r=nonce,p=proof`, to send.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Check the server's final message: `v=` with the expected signature proves the server holds
    /// this account's credential; `e=` is its refusal.
    pub fn verify_server_final(&self, message: &str) -> Result<(), ScramError> {
        let first = message.split(',').next();
        if let Ok(error) = attribute(first, 'e', "") {
            return Err(ScramError::ServerError(error.to_owned()));
        }
        let signature = attribute(first, 'v', "no v=signature")?;
        let signature =
            decode_key(signature).ok_or(ScramError::Malformed("v= is not 32 bytes of base64"))?;
        if bool::from(signature.ct_eq(&self.server_signature)) {
            Ok(())
        } else {
            Err(ScramError::InvalidServerSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3.
    const USER: &str = "user";
    const PASSWORD: &str = "pencil";
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                                p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_salt() -> Vec<u8> {
        BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt")
    }

    fn rfc_credential() -> StoredCredential {
        StoredCredential::new(PASSWORD, &rfc_salt(), 4096).expect("credential")
    }

    #[test]
    fn client_side_reproduces_rfc_7677() {
        let client = ClientExchange::new(USER, CLIENT_NONCE).expect("client");
        assert_eq!(client.client_first(), CLIENT_FIRST);
        let challenge = client
            .server_first(SERVER_FIRST, MAX_ITERATIONS)
            .expect("server-first");
        assert_eq!(challenge.iterations(), 4096);
        assert_eq!(challenge.salt(), rfc_salt());
        let salted = SaltedPassword::derive(PASSWORD, challenge.salt(), challenge.iterations())
            .expect("derive");
        let response = challenge.respond(&salted);
        assert_eq!(response.message(), CLIENT_FINAL);
        assert_eq!(response.verify_server_final(SERVER_FINAL), Ok(()));
    }

    #[test]
    fn server_side_reproduces_rfc_7677() {
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        assert_eq!(first.username(), USER);
        assert_eq!(first.nonce(), CLIENT_NONCE);
        assert_eq!(first.authzid(), None);
        let exchange = ServerExchange::new(&first, SERVER_NONCE, rfc_credential()).expect("server");
        assert_eq!(exchange.server_first(), SERVER_FIRST);
        assert_eq!(exchange.finish(CLIENT_FINAL).as_deref(), Ok(SERVER_FINAL));
    }

    #[test]
    fn stored_credential_round_trips_in_rfc_5803_form() {
        let credential = rfc_credential();
        let text = credential.to_string();
        assert!(
            text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"),
            "{text}"
        );
        assert_eq!(StoredCredential::parse(&text), Ok(credential.clone()));
        assert!(!format!("{credential:?}").contains(&text[40..]));
        for bad in [
            "",
            "SCRAM-SHA-1$4096:c2FsdA==$a:b",
            "SCRAM-SHA-256$",
            "SCRAM-SHA-256$4096:c2FsdA==",
            "SCRAM-SHA-256$0:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$x:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$4096:!!$AAAA:AAAA",
            "SCRAM-SHA-256$4096:$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA",
        ] {
            assert!(
                matches!(StoredCredential::parse(bad), Err(ScramError::Credential(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_wrong_password_fails_both_ways() {
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        let exchange = ServerExchange::new(&first, SERVER_NONCE, rfc_credential()).expect("server");
        let client = ClientExchange::new(USER, CLIENT_NONCE).expect("client");
        let challenge = client
            .server_first(exchange.server_first(), MAX_ITERATIONS)
            .expect("server-first");
        let wrong = SaltedPassword::derive("pencil2", challenge.salt(), 4096).expect("derive");
        let response = challenge.respond(&wrong);
        assert_eq!(
            exchange.finish(response.message()),
            Err(ScramError::InvalidProof)
        );
        // And the right client refuses a server that does not know the credential.
        let right = SaltedPassword::derive(PASSWORD, challenge.salt(), 4096).expect("derive");
        let response = challenge.respond(&right);
        let impostor = ServerExchange::new(
            &first,
            SERVER_NONCE,
            StoredCredential::new("other", &rfc_salt(), 4096).expect("credential"),
        )
        .expect("server");
        assert!(impostor.finish(response.message()).is_err());
        assert_eq!(
            response.verify_server_final("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
            Err(ScramError::InvalidServerSignature)
        );
        assert_eq!(
            response.verify_server_final("e=invalid-proof"),
            Err(ScramError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn forged_and_replayed_finals_are_refused() {
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        let exchange = ServerExchange::new(&first, SERVER_NONCE, rfc_credential()).expect("server");
        let cases: &[(&str, ScramError)] = &[
            // A replay into an exchange with another server nonce.
            (
                "c=biws,r=rOprNGfwEbeRWgbNEkqOother,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                ScramError::NonceMismatch,
            ),
            // One bit of the proof flipped.
            (
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=",
                ScramError::InvalidProof,
            ),
            // A gs2 header that differs from the first message's (a binding downgrade).
            (
                "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                 p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                ScramError::BindingMismatch,
            ),
            (
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
                ScramError::Malformed("p= is not 32 bytes of base64"),
            ),
            (
                "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                ScramError::Malformed("no p=proof at the end"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
                ScramError::Malformed("no c=binding first"),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(
                &exchange.finish(message).expect_err(message),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn client_first_checks() {
        let ok = ClientFirst::parse("y,,n=al=2Cice=3D,r=abc,x=ext").expect("y and an extension");
        assert_eq!(ok.username(), "al,ice=");
        let with_authzid = ClientFirst::parse("n,a=bob,n=bob,r=abc").expect("authzid");
        assert_eq!(with_authzid.authzid(), Some("bob"));
        let cases: &[(&str, ScramError)] = &[
            ("p=tls-unique,,n=user,r=abc", ScramError::ChannelBinding),
            ("n,,m=ext,n=user,r=abc", ScramError::MandatoryExtension),
            ("", ScramError::Malformed("no gs2 header")),
            (
                "x,,n=user,r=abc",
                ScramError::Malformed("the gs2 header must start with n or y"),
            ),
            (
                "n,",
                ScramError::Malformed("the gs2 header does not end with ','"),
            ),
            (
                "n,b=x,n=user,r=abc",
                ScramError::Malformed("the authorization identity must be a=name"),
            ),
            ("n,,r=abc,n=user", ScramError::Malformed("no n=name")),
            ("n,,n=,r=abc", ScramError::Malformed("the name is empty")),
            (
                "n,,n=us=2xer,r=abc",
                ScramError::Malformed("'=' in a name must be =2C or =3D"),
            ),
            (
                "n,,n=user=",
                ScramError::Malformed("'=' in a name must be =2C or =3D"),
            ),
            (
                "n,,n=user",
                ScramError::Malformed("no r=nonce after the name"),
            ),
            (
                "n,,n=user,r=",
                ScramError::Malformed("the nonce is not printable ASCII without ','"),
            ),
            (
                "n,,n=user,r=a b",
                ScramError::Malformed("the nonce is not printable ASCII without ','"),
            ),
            (
                "n,,n=user,r=abc,",
                ScramError::Malformed("an attribute is not of the form x=value"),
            ),
            (
                "n,,n=user,r=abc,1=x",
                ScramError::Malformed("an attribute is not of the form x=value"),
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(
                &ClientFirst::parse(message).expect_err(message),
                expected,
                "{message}"
            );
        }
    }

    #[test]
    fn server_first_checks() {
        let client = ClientExchange::new(USER, CLIENT_NONCE).expect("client");
        let cases: &[(&str, ScramError)] = &[
            (
                "m=x,r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=4096",
                ScramError::MandatoryExtension,
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqO,s=c2FsdA==,i=4096",
                ScramError::NonceMismatch,
            ),
            (
                "r=XOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=4096",
                ScramError::NonceMismatch,
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=4095",
                ScramError::Iterations {
                    count: 4095,
                    max: 10_000,
                },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=10001",
                ScramError::Iterations {
                    count: 10_001,
                    max: 10_000,
                },
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=-1",
                ScramError::Malformed("i= is not a number"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=99999999999",
                ScramError::Malformed("i= is not a number"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=,i=4096",
                ScramError::Malformed("s= is not base64"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=%%,i=4096",
                ScramError::Malformed("s= is not base64"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,i=4096",
                ScramError::Malformed("no s=salt after the nonce"),
            ),
            (
                "r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==",
                ScramError::Malformed("no i=iterations after the salt"),
            ),
            ("e=other-error", ScramError::Malformed("no r=nonce first")),
        ];
        for (message, expected) in cases {
            assert_eq!(
                &client.server_first(message, 10_000).expect_err(message),
                expected,
                "{message}"
            );
        }
        assert!(client
            .server_first("r=rOprNGfwEbeRWgbNEkqOs,s=c2FsdA==,i=4096,x=ext", 10_000)
            .is_ok());
    }

    #[test]
    fn saslnames_escape_both_ways() {
        for name in ["alice", "a,b", "a=b", "=,=,", "é"] {
            assert_eq!(decode_saslname(&encode_saslname(name)).as_deref(), Ok(name));
        }
        assert_eq!(encode_saslname("a=b,c"), "a=3Db=2Cc");
        assert!(decode_saslname("a=2").is_err());
        assert!(decode_saslname("a=3d").is_err(), "escapes are upper case");
    }

    #[test]
    fn passwords_are_saslprepped() {
        let salt = b"salt";
        // A non-ASCII space maps to a space (RFC 4013 section 2.1).
        assert_eq!(
            SaltedPassword::derive("pass\u{00A0}word", salt, 1),
            SaltedPassword::derive("pass word", salt, 1)
        );
        // So does a decomposed letter to its composed form (NFKC).
        assert_eq!(
            SaltedPassword::derive("cafe\u{0301}", salt, 1),
            SaltedPassword::derive("caf\u{00E9}", salt, 1)
        );
        assert_eq!(
            SaltedPassword::derive("bell\u{0007}", salt, 1),
            Err(ScramError::Password)
        );
        assert!(SaltedPassword::derive("x", salt, 0).is_err());
        assert_eq!(
            format!("{:?}", SaltedPassword::derive("x", salt, 1)),
            "Ok(SaltedPassword(<redacted>))"
        );
    }

    #[test]
    fn client_refuses_bad_starts() {
        assert!(ClientExchange::new("", "abc").is_err());
        assert!(ClientExchange::new("user", "a,b").is_err());
        assert!(ClientExchange::new("user", "").is_err());
        let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
        assert!(ServerExchange::new(&first, "", rfc_credential()).is_err());
        assert!(ServerExchange::new(&first, "a b", rfc_credential()).is_err());
    }

    /// One exchange at each stage, made once: the parsers are what the property test exercises.
    fn stages() -> &'static (ClientExchange, ServerExchange, ClientResponse) {
        static STAGES: std::sync::OnceLock<(ClientExchange, ServerExchange, ClientResponse)> =
            std::sync::OnceLock::new();
        STAGES.get_or_init(|| {
            let client = ClientExchange::new(USER, CLIENT_NONCE).expect("client");
            let first = ClientFirst::parse(CLIENT_FIRST).expect("client-first");
            let server =
                ServerExchange::new(&first, SERVER_NONCE, rfc_credential()).expect("server");
            let challenge = client
                .server_first(SERVER_FIRST, MAX_ITERATIONS)
                .expect("server-first");
            let salted = SaltedPassword::derive(PASSWORD, &rfc_salt(), 4096).expect("derive");
            let response = challenge.respond(&salted);
            (client, server, response)
        })
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(
            text in "\\PC{0,80}",
            bytes in proptest::collection::vec(0u8..=255, 0..80),
        ) {
            let (client, server, response) = stages();
            let lossy = String::from_utf8_lossy(&bytes).into_owned();
            for input in [text.as_str(), lossy.as_str()] {
                let _ = ClientFirst::parse(input);
                let _ = StoredCredential::parse(input);
                let _ = decode_saslname(input);
                let _ = client.server_first(input, MAX_ITERATIONS);
                let _ = server.finish(input);
                let _ = response.verify_server_final(input);
            }
        }
    }
}
