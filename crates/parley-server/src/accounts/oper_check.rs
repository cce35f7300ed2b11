//! `OPER <name> <password>` against an operator block, throttled as a login is: the attempt
//! takes a place against the same lockout (under `oper:<name>`, which no account name can be,
//! and under the address), an unknown name costs the same hash as a known one, and every
//! failure waits the growing delay. The hash runs in the hashing pool, never on a runtime
//! worker, so a burst of OPERs stalls nobody.

use std::net::IpAddr;

use parley_proto::casefold;

use super::{verify_password, Accounts, LoginError, DUMMY_HASH};

/// What an OPER attempt came to.
#[derive(Debug, PartialEq, Eq)]
pub enum OperCheck {
    /// The name and password are right.
    Granted,
    /// No block by that name, or the wrong password (464): a guesser cannot tell which.
    WrongPassword,
    /// The block may not be used from this connection (491); its password was not checked.
    NotFromHere,
    /// Too many failures for this name or from this address.
    Locked { retry_after_secs: u64 },
}

impl Accounts {
    /// Check an OPER attempt. `hash` is the named block's, `None` without one; `allowed` says
    /// whether the block's TLS, host and account rules let this connection use it.
    pub async fn check_oper(
        &self,
        name: &str,
        password: &str,
        hash: Option<String>,
        allowed: bool,
        ip: IpAddr,
    ) -> Result<OperCheck, LoginError> {
        let folded = format!("oper:{}", casefold(name));
        let guess = match self.begin_guess(name, &folded, ip).await {
            Ok(guess) => guess,
            Err(LoginError::Locked { retry_after_secs }) => {
                return Ok(OperCheck::Locked { retry_after_secs })
            }
            Err(other) => return Err(other),
        };
        if hash.is_some() && !allowed {
            // Counted, so names cannot be tried from the wrong place for free either.
            let _ = self
                .failed_login(guess, name, ip, LoginError::Invalid)
                .await;
            return Ok(OperCheck::NotFromHere);
        }
        let known = hash.is_some();
        let password = password.to_owned();
        let matches = self
            .hashing
            .run(move |memory| {
                let hash = hash.as_deref().unwrap_or(DUMMY_HASH);
                verify_password(memory, &password, hash)
            })
            .await
            .map_err(|error| LoginError::Task(error.to_string()))?;
        if known && matches {
            return match self.succeeded(guess, name, ip).await {
                Ok(()) => Ok(OperCheck::Granted),
                Err(LoginError::Locked { retry_after_secs }) => {
                    Ok(OperCheck::Locked { retry_after_secs })
                }
                Err(other) => Err(other),
            };
        }
        let _ = self
            .failed_login(guess, name, ip, LoginError::Invalid)
            .await;
        Ok(OperCheck::WrongPassword)
    }
}
