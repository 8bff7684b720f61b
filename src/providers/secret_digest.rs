//! A form field that carries a digest of the secret itself (PayDunya's `data[hash]`, the SHA-512
//! of the account's master key, in hex). It is the same for every notification: it proves the
//! sender knew the digest, not that the body is unchanged, so the providers that send it are
//! confirmed by API as well. Compared in constant time all the same.

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;
use crate::domain::Secret;

/// Where one provider puts the digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// The form field, as written in the body before encoding (`data[hash]`).
    pub field: &'static str,
}

impl Layout {
    fn expected(secret: &Secret) -> String {
        hex::encode(Sha512::digest(secret.expose().as_bytes()))
    }

    /// Checks the body's field against every secret's digest.
    pub fn verify(&self, body: &[u8], secrets: &[Secret]) -> Result<(), VerifyError> {
        std::str::from_utf8(body)
            .map_err(|e| VerifyError::MalformedPayload(format!("not UTF-8 ({e})")))?;
        // The first value of a repeated field, as the payload's reading keeps it.
        let presented = form_urlencoded::parse(body)
            .find(|(k, _)| k == self.field)
            .map(|(_, v)| v.into_owned())
            .ok_or(VerifyError::MissingSignature)?;
        let matched = secrets.iter().fold(subtle::Choice::from(0), |acc, s| {
            acc | Self::expected(s).as_bytes().ct_eq(presented.as_bytes())
        });
        if !bool::from(matched) {
            return Err(VerifyError::InvalidSignature);
        }
        Ok(())
    }

    /// `body` with the field the provider would add, after any it holds.
    pub fn sign(&self, secret: &Secret, mut body: Vec<u8>) -> Vec<u8> {
        let pair = form_urlencoded::Serializer::new(String::new())
            .append_pair(self.field, &Self::expected(secret))
            .finish();
        if !body.is_empty() {
            body.push(b'&');
        }
        body.extend_from_slice(pair.as_bytes());
        body
    }
}

/// PayDunya's IPN: `data[hash]` is `hash('sha512', MASTER_KEY)` (the official WooCommerce
/// gateway, `WC_Paydunya::callback_handler`, and Magento module, `Controller/Payment/Ipn.php`).
pub const PAYDUNYA: Layout = Layout {
    field: "data[hash]",
};

#[cfg(test)]
mod tests {
    use super::*;

    /// PayDunya publishes no vector; `printf %s KEY | sha512sum` and Node's `crypto` agree on this
    /// one.
    const MASTER_KEY: &str = "wQzk9ZwR-Qq9m-0hD2-zpOE-bUac3DWSU6Af";
    const HASH: &str = "ae32a2d145b0a1ae160eb3f7d62e5b2f7ddfa85aff254fdd651ed0de125fcfd39f1b77ba03f7c5f4ec5f889402cc1e6fa464e1ba65ddd33160452f47eb62dbd3";

    #[test]
    fn paydunya_vector() {
        let key = Secret::new(MASTER_KEY);
        let body = format!(
            "data%5Bresponse_code%5D=00&data%5Bstatus%5D=completed&data%5Bhash%5D={HASH}&data%5Binvoice%5D%5Btoken%5D=test_VPGPZNnHOC"
        );
        let secrets = [Secret::new("old-master-key"), key.clone()];
        assert_eq!(PAYDUNYA.verify(body.as_bytes(), &secrets), Ok(()));
        assert_eq!(
            PAYDUNYA.verify(body.as_bytes(), &[Secret::new("wrong")]),
            Err(VerifyError::InvalidSignature)
        );
        assert_eq!(
            PAYDUNYA.verify(
                body.replace(HASH, &HASH.to_ascii_uppercase()).as_bytes(),
                &secrets
            ),
            Err(VerifyError::InvalidSignature),
            "PayDunya compares the lowercase hex with ==="
        );
        assert_eq!(
            PAYDUNYA.verify(b"data%5Bstatus%5D=completed", &secrets),
            Err(VerifyError::MissingSignature)
        );
        assert!(matches!(
            PAYDUNYA.verify(b"data%5Bhash%5D=\xff", &secrets),
            Err(VerifyError::MalformedPayload(_))
        ));
        let signed = PAYDUNYA.sign(&key, b"data%5Bstatus%5D=completed".to_vec());
        assert_eq!(
            String::from_utf8(signed.clone()).unwrap(),
            format!("data%5Bstatus%5D=completed&data%5Bhash%5D={HASH}")
        );
        assert_eq!(PAYDUNYA.verify(&signed, &secrets), Ok(()));
    }
}
