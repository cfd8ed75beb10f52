use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use wxlink_crypto::{
    Base64Error, DecryptError, UserData, Watermark, decrypt, decrypt_bytes, decrypt_user_data,
    decrypt_user_data_bytes, encrypt, session_key_bytes,
};

use crate::vectors::official;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODw==";
const IV: &str = "EBESExQVFhcYGRobHB0eHw==";

/// Ciphertext whose CBC decryption is exactly `blocks`, with no padding added: `encrypt` appends a
/// whole padding block to block-aligned input, and CBC lets us drop it.
fn raw_cbc(blocks: &[u8]) -> String {
    assert_eq!(blocks.len() % 16, 0);
    let padded = encrypt(KEY, IV, blocks).expect("valid key and iv");
    let padded = STANDARD.decode(padded).expect("encrypt returns base64");
    STANDARD.encode(&padded[..blocks.len()])
}

fn block_with_pad(pad: &[u8]) -> Vec<u8> {
    let mut block = vec![b'{'; 16 - pad.len()];
    block.extend_from_slice(pad);
    block
}

fn official_ciphertext() -> Vec<u8> {
    STANDARD
        .decode(official::ENCRYPTED_DATA)
        .expect("the official ciphertext is base64")
}

#[test]
fn official_vector_decrypts_to_json() {
    let value = decrypt(
        official::SESSION_KEY,
        official::IV,
        official::ENCRYPTED_DATA,
    )
    .unwrap();
    assert_eq!(value["openId"], official::OPEN_ID);
    assert_eq!(value["unionId"], official::UNION_ID);
    assert_eq!(value["nickName"], official::NICK_NAME);
    assert_eq!(value["watermark"]["appid"], official::APPID);
    assert_eq!(value["watermark"]["timestamp"], official::TIMESTAMP);
}

#[test]
fn official_vector_decrypts_to_user_data() {
    let user = decrypt_user_data(
        official::SESSION_KEY,
        official::IV,
        official::ENCRYPTED_DATA,
    )
    .unwrap();
    assert_eq!(user.open_id, official::OPEN_ID);
    assert_eq!(user.union_id.as_deref(), Some(official::UNION_ID));
    assert_eq!(user.nick_name.as_deref(), Some(official::NICK_NAME));
    assert_eq!(user.gender, Some(1));
    assert_eq!(
        user.watermark,
        Watermark {
            appid: official::APPID.to_owned(),
            timestamp: official::TIMESTAMP,
        }
    );
}

#[test]
fn decoded_inputs_decrypt_like_their_base64() {
    let key = session_key_bytes(official::SESSION_KEY).expect("a 16-byte key");
    let iv: [u8; 16] = STANDARD.decode(official::IV).unwrap().try_into().unwrap();
    let from_bytes = decrypt_user_data_bytes(&key, &iv, &official_ciphertext()).unwrap();
    let from_base64 = decrypt_user_data(
        official::SESSION_KEY,
        official::IV,
        official::ENCRYPTED_DATA,
    )
    .unwrap();
    assert_eq!(from_bytes, from_base64);
    let mut cut = official_ciphertext();
    cut.truncate(cut.len() - 1);
    assert!(matches!(
        decrypt_user_data_bytes(&key, &iv, &cut),
        Err(DecryptError::CiphertextLength { .. })
    ));
    assert!(matches!(
        decrypt_user_data_bytes(&key, &[0; 16], &official_ciphertext()),
        Err(DecryptError::BadPadding
            | DecryptError::PlaintextNotUtf8(_)
            | DecryptError::PlaintextNotJson(_))
    ));
    assert!(matches!(
        session_key_bytes("AAEC"),
        Err(DecryptError::SessionKeyLength { len: 3 })
    ));
}

/// The official vector decrypted, padding removed.
fn official_plaintext() -> Vec<u8> {
    decrypt_bytes(
        official::SESSION_KEY,
        official::IV,
        official::ENCRYPTED_DATA,
    )
    .expect("the official vector decrypts")
}

#[test]
fn official_vector_has_seven_bytes_of_padding() {
    let plaintext = official_plaintext();
    assert_eq!(
        official_ciphertext().len() - plaintext.len(),
        official::PKCS7_PAD_LEN
    );
}

#[test]
fn official_vector_reencrypts_to_itself() {
    let plaintext = official_plaintext();
    assert_eq!(
        encrypt(official::SESSION_KEY, official::IV, &plaintext).unwrap(),
        official::ENCRYPTED_DATA
    );
}

#[test]
fn spaces_from_form_decoding_are_read_as_plus() {
    let damaged = official::ENCRYPTED_DATA.replace('+', " ");
    assert_ne!(damaged, official::ENCRYPTED_DATA);
    let user = decrypt_user_data(official::SESSION_KEY, official::IV, &damaged).unwrap();
    assert_eq!(user.open_id, official::OPEN_ID);

    let key_with_plus = "+/8AAAAAAAAAAAAAAAAAAA==";
    let sealed = encrypt(key_with_plus, IV, b"{}").unwrap();
    assert_eq!(
        decrypt(
            " /8AAAAAAAAAAAAAAAAAAA==",
            &IV.replace('+', " "),
            &sealed.replace('+', " ")
        )
        .unwrap(),
        serde_json::json!({})
    );
}

#[test]
fn url_safe_alphabet_is_refused() {
    let url_safe = official::ENCRYPTED_DATA.replace('+', "-").replace('/', "_");
    let err = decrypt(official::SESSION_KEY, official::IV, &url_safe).unwrap_err();
    assert!(matches!(
        err,
        DecryptError::CiphertextNotBase64(Base64Error::InvalidCharacter {
            byte: b'-' | b'_',
            ..
        })
    ));
}

#[test]
fn missing_padding_is_refused() {
    let unpadded = official::ENCRYPTED_DATA.trim_end_matches('=');
    let err = decrypt(official::SESSION_KEY, official::IV, unpadded).unwrap_err();
    assert!(matches!(
        err,
        DecryptError::CiphertextNotBase64(Base64Error::InvalidPadding)
    ));
    let err = decrypt(
        "tiihtNczf5v6AKRyjwEUhQ",
        official::IV,
        official::ENCRYPTED_DATA,
    )
    .unwrap_err();
    assert!(matches!(
        err,
        DecryptError::SessionKeyNotBase64(Base64Error::InvalidPadding)
    ));
}

#[test]
fn line_breaks_and_garbage_are_refused() {
    let (head, tail) = official::ENCRYPTED_DATA.split_at(76);
    let wrapped = format!("{head}\n{tail}");
    assert!(matches!(
        decrypt(official::SESSION_KEY, official::IV, &wrapped).unwrap_err(),
        DecryptError::CiphertextNotBase64(Base64Error::InvalidCharacter {
            offset: 76,
            byte: b'\n'
        })
    ));
    assert!(matches!(
        decrypt(
            official::SESSION_KEY,
            "not base64!",
            official::ENCRYPTED_DATA
        )
        .unwrap_err(),
        DecryptError::IvNotBase64(_)
    ));
    assert!(matches!(
        decrypt("%%%", official::IV, official::ENCRYPTED_DATA).unwrap_err(),
        DecryptError::SessionKeyNotBase64(_)
    ));
}

#[test]
fn session_key_and_iv_must_be_sixteen_bytes() {
    let short = STANDARD.encode([0u8; 15]);
    let aes192 = STANDARD.encode([0u8; 24]);
    assert!(matches!(
        decrypt(&short, IV, official::ENCRYPTED_DATA).unwrap_err(),
        DecryptError::SessionKeyLength { len: 15 }
    ));
    assert!(matches!(
        decrypt(&aes192, IV, official::ENCRYPTED_DATA).unwrap_err(),
        DecryptError::SessionKeyLength { len: 24 }
    ));
    assert!(matches!(
        decrypt("", IV, official::ENCRYPTED_DATA).unwrap_err(),
        DecryptError::SessionKeyLength { len: 0 }
    ));
    assert!(matches!(
        decrypt(KEY, &short, official::ENCRYPTED_DATA).unwrap_err(),
        DecryptError::IvLength { len: 15 }
    ));
    assert!(matches!(
        encrypt(KEY, &aes192, b"{}").unwrap_err(),
        DecryptError::IvLength { len: 24 }
    ));
    assert!(matches!(
        encrypt(&short, IV, b"{}").unwrap_err(),
        DecryptError::SessionKeyLength { len: 15 }
    ));
}

#[test]
fn empty_and_partial_block_ciphertexts_are_refused() {
    assert!(matches!(
        decrypt(KEY, IV, "").unwrap_err(),
        DecryptError::CiphertextEmpty
    ));
    assert!(matches!(
        decrypt(KEY, IV, &STANDARD.encode([0u8; 15])).unwrap_err(),
        DecryptError::CiphertextLength { len: 15 }
    ));
    assert!(matches!(
        decrypt(KEY, IV, &STANDARD.encode([0u8; 33])).unwrap_err(),
        DecryptError::CiphertextLength { len: 33 }
    ));
}

#[test]
fn truncation_is_refused() {
    let ciphertext = official_ciphertext();
    let one_block_short = STANDARD.encode(&ciphertext[..ciphertext.len() - 16]);
    assert!(matches!(
        decrypt(official::SESSION_KEY, official::IV, &one_block_short).unwrap_err(),
        DecryptError::BadPadding
    ));
    let one_byte_short = STANDARD.encode(&ciphertext[..ciphertext.len() - 1]);
    assert!(matches!(
        decrypt(official::SESSION_KEY, official::IV, &one_byte_short).unwrap_err(),
        DecryptError::CiphertextLength { .. }
    ));
}

#[test]
fn wrong_session_key_is_refused() {
    let err = decrypt_user_data(KEY, official::IV, official::ENCRYPTED_DATA).unwrap_err();
    assert!(matches!(err, DecryptError::BadPadding), "{err:?}");
}

#[test]
fn wrong_iv_is_refused() {
    // A wrong iv garbles only the first block, so the padding still checks out and the JSON breaks.
    let err = decrypt_user_data(official::SESSION_KEY, IV, official::ENCRYPTED_DATA).unwrap_err();
    assert!(
        matches!(
            err,
            DecryptError::PlaintextNotUtf8(_) | DecryptError::PlaintextNotJson(_)
        ),
        "{err:?}"
    );
}

#[test]
fn every_ciphertext_bit_flip_is_refused() {
    let ciphertext = official_ciphertext();
    for index in 0..ciphertext.len() {
        for bit in [0x01, 0x80] {
            let mut flipped = ciphertext.clone();
            flipped[index] ^= bit;
            let result = decrypt_user_data(
                official::SESSION_KEY,
                official::IV,
                &STANDARD.encode(&flipped),
            );
            assert!(result.is_err(), "flip {bit:#x} at {index} went unnoticed");
        }
    }
}

#[test]
fn an_iv_bit_flip_goes_unnoticed_because_cbc_has_no_integrity() {
    // This is why the watermark appid check matters and why the data proves nothing about who sent
    // it: whoever holds the session key, or just the iv, can shape the first block.
    let mut iv = STANDARD.decode(official::IV).unwrap();
    iv[12] ^= 0x01; // the `G` of `"openId":"oGZ…`
    let user = decrypt_user_data(
        official::SESSION_KEY,
        &STANDARD.encode(&iv),
        official::ENCRYPTED_DATA,
    )
    .unwrap();
    assert_eq!(user.open_id, official::OPEN_ID.replacen('G', "F", 1));
}

#[test]
fn padding_must_be_strict_pkcs7() {
    for pad in [&[0u8][..], &[17], &[255], &[3, 2, 3], &[2, 3, 3], &[1, 2]] {
        let err = decrypt_bytes(KEY, IV, &raw_cbc(&block_with_pad(pad))).unwrap_err();
        assert!(
            matches!(err, DecryptError::BadPadding),
            "pad {pad:?}: {err:?}"
        );
    }
    // 16 is the largest pad, and it may be the whole plaintext.
    assert_eq!(decrypt_bytes(KEY, IV, &raw_cbc(&[16; 16])).unwrap(), b"");
    assert_eq!(
        decrypt_bytes(KEY, IV, &raw_cbc(&block_with_pad(&[1]))).unwrap(),
        [b'{'; 15]
    );
    // A pad longer than one block is refused even when every byte of it agrees.
    assert!(matches!(
        decrypt_bytes(KEY, IV, &raw_cbc(&[17; 32])).unwrap_err(),
        DecryptError::BadPadding
    ));
}

#[test]
fn plaintext_must_be_utf8_json() {
    let not_utf8 = encrypt(KEY, IV, &[0xff, 0xfe, b'{', b'}']).unwrap();
    assert_eq!(
        decrypt_bytes(KEY, IV, &not_utf8).unwrap(),
        [0xff, 0xfe, b'{', b'}']
    );
    assert!(matches!(
        decrypt(KEY, IV, &not_utf8).unwrap_err(),
        DecryptError::PlaintextNotUtf8(_)
    ));

    let not_json = encrypt(KEY, IV, b"openId=abc").unwrap();
    assert!(matches!(
        decrypt(KEY, IV, &not_json).unwrap_err(),
        DecryptError::PlaintextNotJson(_)
    ));
    let empty = encrypt(KEY, IV, b"").unwrap();
    assert!(matches!(
        decrypt(KEY, IV, &empty).unwrap_err(),
        DecryptError::PlaintextNotJson(_)
    ));
}

#[test]
fn user_data_needs_open_id_and_watermark() {
    let cases = [
        (r#"{"watermark":{"appid":"wx1","timestamp":1}}"#, "openId"),
        (
            r#"{"openId":null,"watermark":{"appid":"wx1","timestamp":1}}"#,
            "openId",
        ),
        (r#"{"openId":"o1"}"#, "watermark"),
        (
            r#"{"openId":"o1","watermark":{"timestamp":1}}"#,
            "watermark.appid",
        ),
        (
            r#"{"openId":"o1","watermark":{"appid":"wx1"}}"#,
            "watermark.timestamp",
        ),
        (r#"["openId"]"#, "openId"),
    ];
    for (json, missing) in cases {
        let data = encrypt(KEY, IV, json.as_bytes()).unwrap();
        match decrypt_user_data(KEY, IV, &data) {
            Err(DecryptError::MissingField { field }) => assert_eq!(field, missing, "{json}"),
            other => panic!("{json}: {other:?}"),
        }
    }
    let wrong_type = encrypt(
        KEY,
        IV,
        br#"{"openId":5,"watermark":{"appid":"wx1","timestamp":1}}"#,
    )
    .unwrap();
    assert!(matches!(
        decrypt_user_data(KEY, IV, &wrong_type).unwrap_err(),
        DecryptError::InvalidUserData(_)
    ));
}

#[test]
fn user_data_round_trips_and_tolerates_unknown_fields() {
    let user = UserData {
        open_id: "o1".to_owned(),
        union_id: None,
        nick_name: Some("微信用户".to_owned()),
        gender: Some(0),
        language: None,
        city: None,
        province: None,
        country: None,
        avatar_url: None,
        watermark: Watermark {
            appid: "wx1".to_owned(),
            timestamp: 1_700_000_000,
        },
    };
    let json = serde_json::to_string(&user).unwrap();
    assert_eq!(
        json,
        r#"{"openId":"o1","nickName":"微信用户","gender":0,"watermark":{"appid":"wx1","timestamp":1700000000}}"#
    );
    let data = encrypt(KEY, IV, json.as_bytes()).unwrap();
    assert_eq!(decrypt_user_data(KEY, IV, &data).unwrap(), user);

    let extra = encrypt(
        KEY,
        IV,
        br#"{"openId":"o1","is_demote":true,"watermark":{"appid":"wx1","timestamp":1,"x":0}}"#,
    )
    .unwrap();
    assert_eq!(decrypt_user_data(KEY, IV, &extra).unwrap().open_id, "o1");
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let errors = [
        decrypt("%", IV, "").unwrap_err(),
        decrypt("", IV, "").unwrap_err(),
        decrypt(KEY, "-", "").unwrap_err(),
        decrypt(KEY, "", "").unwrap_err(),
        decrypt(KEY, IV, "A").unwrap_err(),
        decrypt(KEY, IV, "").unwrap_err(),
        decrypt(KEY, IV, "AAAA").unwrap_err(),
        decrypt(KEY, IV, &raw_cbc(&[0; 16])).unwrap_err(),
        decrypt(KEY, IV, &encrypt(KEY, IV, &[0xff]).unwrap()).unwrap_err(),
        decrypt(KEY, IV, &encrypt(KEY, IV, b"x").unwrap()).unwrap_err(),
        decrypt_user_data(KEY, IV, &encrypt(KEY, IV, b"{}").unwrap()).unwrap_err(),
    ];
    for err in &errors {
        let message = err.to_string();
        assert!(message.starts_with(char::is_lowercase), "{message}");
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(errors[0].to_string(), "session key is not valid base64");
    assert_eq!(
        std::error::Error::source(&errors[0]).unwrap().to_string(),
        "invalid character '%' at offset 0"
    );
}
