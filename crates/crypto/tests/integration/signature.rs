use wxlink_crypto::{
    check_session_signature, raw_data_signature, session_signature, verify_raw_data_signature,
};

use crate::vectors::{SESSION_HMAC, raw_data};

#[test]
fn session_signature_matches_wechat_vectors() {
    for (key, message, expected) in SESSION_HMAC {
        assert_eq!(session_signature(key, message.as_bytes()), expected);
    }
}

#[test]
fn check_session_signature_signs_the_empty_message() {
    let (key, message, expected) = SESSION_HMAC[1];
    assert_eq!(message, "");
    assert_eq!(check_session_signature(key), expected);
}

#[test]
fn raw_data_signature_matches_wechat_vector() {
    assert_eq!(
        raw_data_signature(raw_data::RAW_DATA, raw_data::SESSION_KEY),
        raw_data::SIGNATURE
    );
}

#[test]
fn raw_data_signature_verifies_in_either_case() {
    assert!(verify_raw_data_signature(
        raw_data::RAW_DATA,
        raw_data::SESSION_KEY,
        raw_data::SIGNATURE
    ));
    assert!(verify_raw_data_signature(
        raw_data::RAW_DATA,
        raw_data::SESSION_KEY,
        &raw_data::SIGNATURE.to_uppercase()
    ));
}

#[test]
fn raw_data_signature_refuses_anything_else() {
    let sig = raw_data::SIGNATURE;
    let refused = [
        String::new(),
        sig[..39].to_owned(),
        format!("{sig}0"),
        format!(" {sig}"),
        format!("{sig}\n"),
        format!("{}d", &sig[..39]),
        format!("{}g", &sig[..39]),
        sig.replacen('7', "8", 1),
    ];
    for bad in refused {
        assert!(
            !verify_raw_data_signature(raw_data::RAW_DATA, raw_data::SESSION_KEY, &bad),
            "{bad:?}"
        );
    }
    assert!(!verify_raw_data_signature(
        &format!("{} ", raw_data::RAW_DATA),
        raw_data::SESSION_KEY,
        sig
    ));
    assert!(!verify_raw_data_signature(
        raw_data::RAW_DATA,
        "tiihtNczf5v6AKRyjwEUhQ==",
        sig
    ));
}
