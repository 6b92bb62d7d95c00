//! An AES key in a PKCS#11 HSM (SoftHSM2 in the tests): the root keys are wrapped with AES key
//! wrap (RFC 3394, `CKM_AES_KEY_WRAP`), which also proves on unwrap that the same HSM key did
//! the wrapping. The root key passes through the HSM as a session object that is destroyed
//! straight after; the wrapping key is never extractable.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use zeroize::{Zeroize, Zeroizing};

use super::KeyManagerError;
use crate::config::Config;

pub struct Hsm {
    /// One logged-in session, used by one caller at a time (PKCS#11 sessions are not shared
    /// between threads at once).
    session: Mutex<Session>,
    module: PathBuf,
    token: String,
    key: String,
}

/// A PKCS#11 module is initialised once per process and never finalised: `C_Initialize` is
/// process-wide, so a second context of the same module (a server opened again, as a restore
/// or a test does) shares the first.
fn module(path: &Path) -> Result<Pkcs11, KeyManagerError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(context) = modules.get(path) {
        return Ok(context.clone());
    }
    let context = Pkcs11::new(path).map_err(|e| {
        KeyManagerError(format!(
            "cannot load the PKCS#11 module {}: {e}. Check pkcs11_module (SoftHSM2's is \
             /usr/lib/softhsm/libsofthsm2.so).",
            path.display()
        ))
    })?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => {
            return Err(KeyManagerError(format!(
                "the PKCS#11 module {} does not start: {e}",
                path.display()
            )))
        }
    }
    modules.insert(path.to_path_buf(), context.clone());
    Ok(context)
}

/// `ask` again, a few times, while the module answers a general error. SoftHSM2 does when one
/// thread reads a token's file while another rewrites it (a login updates the token's flags);
/// a listing that fails so would otherwise stop a start for nothing.
fn again_on_general_error<T>(mut ask: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut tries = 0;
    loop {
        match ask() {
            Err(Error::Pkcs11(RvError::GeneralError, _)) if tries < 4 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(25 * tries));
            }
            answer => return answer,
        }
    }
}

impl Hsm {
    pub fn connect(config: &Config) -> Result<Hsm, KeyManagerError> {
        let module_path = config.pkcs11_module.clone().unwrap_or_default();
        let token = config.pkcs11_token.clone().unwrap_or_default();
        let context = module(&module_path)?;
        let fail = |what: String| KeyManagerError(format!("PKCS#11 token {token:?}: {what}"));
        let slots = again_on_general_error(|| context.get_slots_with_token())
            .map_err(|e| fail(format!("cannot list the module's tokens: {e}")))?;
        let mut labels = Vec::new();
        let mut found = None;
        for slot in slots {
            let Ok(info) = again_on_general_error(|| context.get_token_info(slot)) else {
                continue;
            };
            if !info.token_initialized() {
                continue;
            }
            let label = info.label().trim().to_string();
            if label == token && found.is_none() {
                found = Some(slot);
            }
            labels.push(label);
        }
        let slot = found.ok_or_else(|| {
            fail(format!(
                "no initialised token has this label in {} (it has: {}). Check pkcs11_token.",
                module_path.display(),
                if labels.is_empty() {
                    "none".to_string()
                } else {
                    labels.join(", ")
                }
            ))
        })?;
        let session = context
            .open_ro_session(slot)
            .map_err(|e| fail(format!("cannot open a session: {e}")))?;
        let pin = AuthPin::from(
            config
                .pkcs11_pin
                .as_ref()
                .map(|p| p.expose())
                .unwrap_or_default(),
        );
        match session.login(UserType::User, Some(&pin)) {
            // A PKCS#11 login holds for the whole process: already in means this process
            // logged in before (a server opened again in the same process), with the PIN.
            Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(Error::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(fail("the HSM refused the PIN (pkcs11_pin is wrong)".into()))
            }
            Err(Error::Pkcs11(RvError::PinLocked, _)) => {
                return Err(fail(
                    "the user PIN is locked after too many wrong tries; the token's security \
                     officer must reset it"
                        .into(),
                ))
            }
            Err(e) => return Err(fail(format!("cannot log in: {e}"))),
        }
        let hsm = Hsm {
            session: Mutex::new(session),
            module: module_path,
            token,
            key: config.pkcs11_key.clone(),
        };
        let session = hsm.session();
        hsm.wrapping_key(&session, &hsm.key)?;
        drop(session);
        Ok(hsm)
    }

    pub fn key_label(&self) -> &str {
        &self.key
    }

    pub fn describe(&self) -> String {
        format!(
            "PKCS#11 key {:?} on token {:?} ({})",
            self.key,
            self.token,
            self.module.display()
        )
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The AES key labelled `label` that may wrap and unwrap: exactly one, of that type.
    fn wrapping_key(
        &self,
        session: &Session,
        label: &str,
    ) -> Result<ObjectHandle, KeyManagerError> {
        let fail = |what: String| {
            KeyManagerError(format!(
                "PKCS#11 key {label:?} on token {:?}: {what}",
                self.token
            ))
        };
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| fail(format!("cannot search the token: {e}")))?;
        let key = match found.as_slice() {
            [key] => *key,
            [] => {
                return Err(fail(format!(
                    "there is no such secret key. Create it with `pkcs11-tool --module {} \
                     --login --token-label {} --keygen --key-type AES:32 --label {label}` (or check pkcs11_key).",
                    self.module.display(),
                    self.token
                )))
            }
            _ => {
                return Err(fail(format!(
                    "{} secret keys have this label; give the wrapping key a label of its own",
                    found.len()
                )))
            }
        };
        let attributes = session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                ],
            )
            .map_err(|e| fail(format!("cannot read its attributes: {e}")))?;
        let (mut is_aes, mut wraps, mut unwraps) = (false, false, false);
        for attribute in attributes {
            match attribute {
                Attribute::KeyType(kind) => is_aes = kind == KeyType::AES,
                Attribute::Wrap(yes) => wraps = yes,
                Attribute::Unwrap(yes) => unwraps = yes,
                _ => {}
            }
        }
        if !(is_aes && wraps && unwraps) {
            return Err(fail(
                "it is not an AES key allowed to wrap and unwrap (CKA_KEY_TYPE CKK_AES, CKA_WRAP \
                 and CKA_UNWRAP true), which medvault needs"
                    .into(),
            ));
        }
        Ok(key)
    }

    pub fn wrap(&self, bytes: &[u8]) -> Result<Vec<u8>, KeyManagerError> {
        let session = self.session();
        let wrapping = self.wrapping_key(&session, &self.key)?;
        let mut template = vec![
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
            Attribute::Value(bytes.to_vec()),
        ];
        let created = session.create_object(&template);
        for attribute in &mut template {
            if let Attribute::Value(value) = attribute {
                value.zeroize();
            }
        }
        let root = created.map_err(|e| self.failed("cannot hand the root key to the HSM", e))?;
        let wrapped = session.wrap_key(&Mechanism::AesKeyWrap, wrapping, root);
        let _ = session.destroy_object(root);
        wrapped.map_err(|e| self.failed("cannot wrap the root key", e))
    }

    /// The root key `wrapped` by the HSM key labelled `label`.
    pub fn unwrap(
        &self,
        wrapped: &[u8],
        label: &str,
    ) -> Result<Zeroizing<Vec<u8>>, KeyManagerError> {
        let session = self.session();
        let unwrapping = self.wrapping_key(&session, label)?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::GENERIC_SECRET),
            Attribute::Token(false),
            Attribute::Sensitive(false),
            Attribute::Extractable(true),
        ];
        let root = session
            .unwrap_key(&Mechanism::AesKeyWrap, unwrapping, wrapped, &template)
            .map_err(|e| match e {
                // AES key wrap's integrity check failed: another key wrapped it. SoftHSM2 says
                // so with a general error, other HSMs with the codes meant for it.
                Error::Pkcs11(
                    RvError::WrappedKeyInvalid
                    | RvError::EncryptedDataInvalid
                    | RvError::WrappedKeyLenRange
                    | RvError::GeneralError,
                    _,
                ) => KeyManagerError::not_this_key(format!(
                    "the HSM's key does not open the stored wrapping ({e})"
                )),
                e => self.failed("cannot unwrap the root key", e),
            })?;
        let read = session.get_attributes(root, &[AttributeType::Value]);
        let _ = session.destroy_object(root);
        let mut value = None;
        for attribute in read.map_err(|e| self.failed("cannot read the unwrapped key", e))? {
            if let Attribute::Value(mut bytes) = attribute {
                value = Some(Zeroizing::new(bytes.clone()));
                bytes.zeroize();
            }
        }
        value.ok_or_else(|| KeyManagerError("the HSM gave no value for the unwrapped key".into()))
    }

    /// A root key wrapped by another HSM key than `pkcs11_key` (the operator made a new one),
    /// unwrapped by that one and wrapped by the new; the old key can then be destroyed.
    pub fn rewrap_if_stale(
        &self,
        wrapped: &[u8],
        label: &str,
    ) -> Result<Option<Vec<u8>>, KeyManagerError> {
        if label == self.key {
            return Ok(None);
        }
        let bytes = self.unwrap(wrapped, label)?;
        self.wrap(&bytes).map(Some)
    }

    pub fn reachable(&self) -> bool {
        let session = self.session();
        session.get_session_info().is_ok() && self.wrapping_key(&session, &self.key).is_ok()
    }

    fn failed(&self, what: &str, e: Error) -> KeyManagerError {
        KeyManagerError(format!(
            "{what} with PKCS#11 key {:?} on token {:?}: {e}",
            self.key, self.token
        ))
    }
}
