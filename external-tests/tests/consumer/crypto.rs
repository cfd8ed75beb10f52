//! `wxlink-crypto` on WeChat's published vectors, its error variants, and sealing.

use wxlink_crypto::{
    Base64Error, DataKey, DecryptError, KeyError, KeyId, Keyring, MAX_CLOCK_SKEW_SECS, SealError,
    UserData, Watermark, WatermarkError, check_session_signature, check_watermark, decode_base64,
    decrypt, decrypt_bytes, decrypt_user_data, encrypt, raw_data_signature, session_signature,
    verify_raw_data_signature,
};

/// WeChat's official decryption sample.
const APPID: &str = "wx4f4bc4dec97d474b";
const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";
const TIMESTAMP: i64 = 1_477_314_187;

#[test]
fn decrypts_the_official_sample() {
    let user: UserData = decrypt_user_data(SESSION_KEY, IV, ENCRYPTED_DATA).expect("decrypts");
    assert_eq!(user.open_id, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(
        user.union_id.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    assert_eq!(user.nick_name.as_deref(), Some("Band"));
    assert_eq!(user.gender, Some(1));
    assert_eq!(
        user.watermark,
        Watermark {
            appid: APPID.to_owned(),
            timestamp: TIMESTAMP,
        }
    );

    // The same data as untyped JSON and as bytes.
    let json = decrypt(SESSION_KEY, IV, ENCRYPTED_DATA).expect("decrypts");
    assert_eq!(json["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    let bytes = decrypt_bytes(SESSION_KEY, IV, ENCRYPTED_DATA).expect("decrypts");
    assert!(bytes.starts_with(b"{"));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&bytes).ok(),
        Some(json)
    );
}

#[test]
fn form_decoding_spaces_are_read_as_plus() {
    // A form-decoded, unescaped `encryptedData` has spaces where WeChat sent `+`.
    let mangled = ENCRYPTED_DATA.replace('+', " ");
    assert_ne!(mangled, ENCRYPTED_DATA);
    let user = decrypt_user_data(SESSION_KEY, IV, &mangled).expect("spaces read as +");
    assert_eq!(user.open_id, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
    assert_eq!(decode_base64("+w==").ok(), decode_base64(" w==").ok());
}

#[test]
fn every_bad_input_has_its_own_variant() {
    let err =
        |key: &str, iv: &str, data: &str| decrypt_user_data(key, iv, data).expect_err("must fail");
    assert!(matches!(
        err("tiihtNczf5v6AKRyjwEUhQ", IV, ENCRYPTED_DATA),
        DecryptError::SessionKeyNotBase64(Base64Error::InvalidPadding)
    ));
    assert!(matches!(
        err("tiihtNczf5v6AKRyjwEUhQ-=", IV, ENCRYPTED_DATA),
        DecryptError::SessionKeyNotBase64(Base64Error::InvalidCharacter { byte: b'-', .. })
    ));
    assert!(matches!(
        err("aGk=", IV, ENCRYPTED_DATA),
        DecryptError::SessionKeyLength { len: 2 }
    ));
    assert!(matches!(
        err(SESSION_KEY, "r7BXXKkLb8qrSNn05n0q\niA==", ENCRYPTED_DATA),
        DecryptError::IvNotBase64(_)
    ));
    assert!(matches!(
        err(SESSION_KEY, "aGk=", ENCRYPTED_DATA),
        DecryptError::IvLength { len: 2 }
    ));
    assert!(matches!(
        err(SESSION_KEY, IV, "not base64!"),
        DecryptError::CiphertextNotBase64(_)
    ));
    assert!(matches!(
        err(SESSION_KEY, IV, ""),
        DecryptError::CiphertextEmpty
    ));
    assert!(matches!(
        err(SESSION_KEY, IV, "aGk="),
        DecryptError::CiphertextLength { len: 2 }
    ));
    // A wrong key: only the padding check notices.
    assert!(matches!(
        err("AAAAAAAAAAAAAAAAAAAAAA==", IV, ENCRYPTED_DATA),
        DecryptError::BadPadding
    ));

    // Plaintexts that are not user data, made with `encrypt` as a simulator would.
    let sealed = |plaintext: &[u8]| encrypt(SESSION_KEY, IV, plaintext).expect("encrypts");
    assert!(matches!(
        err(SESSION_KEY, IV, &sealed(&[0xff, 0xfe])),
        DecryptError::PlaintextNotUtf8(_)
    ));
    assert!(matches!(
        err(SESSION_KEY, IV, &sealed(b"hello")),
        DecryptError::PlaintextNotJson(_)
    ));
    assert!(matches!(
        err(
            SESSION_KEY,
            IV,
            &sealed(br#"{"watermark":{"appid":"x","timestamp":1}}"#)
        ),
        DecryptError::MissingField { field: "openId" }
    ));
    assert!(matches!(
        err(
            SESSION_KEY,
            IV,
            &sealed(br#"{"openId":"o","watermark":{"appid":"x"}}"#)
        ),
        DecryptError::MissingField {
            field: "watermark.timestamp"
        }
    ));
    assert!(matches!(
        err(
            SESSION_KEY,
            IV,
            &sealed(br#"{"openId":7,"watermark":{"appid":"x","timestamp":1}}"#)
        ),
        DecryptError::InvalidUserData(_)
    ));

    // Messages are lowercase without a final period, and never echo the key.
    let message = err("AAAAAAAAAAAAAAAAAAAAAA==", IV, ENCRYPTED_DATA).to_string();
    assert!(!message.contains("AAAAAAAA") && !message.ends_with('.'));
}

#[test]
fn encrypt_round_trips() {
    let plaintext = br#"{"openId":"o1","watermark":{"appid":"wx1","timestamp":5}}"#;
    let data = encrypt(SESSION_KEY, IV, plaintext).expect("encrypts");
    assert_eq!(
        decrypt_bytes(SESSION_KEY, IV, &data).expect("decrypts"),
        plaintext
    );
    let user = decrypt_user_data(SESSION_KEY, IV, &data).expect("decrypts");
    assert_eq!((user.open_id.as_str(), user.union_id), ("o1", None));
}

#[test]
fn watermarks() {
    let user = decrypt_user_data(SESSION_KEY, IV, ENCRYPTED_DATA).expect("decrypts");
    let mark = &user.watermark;
    check_watermark(mark, APPID, TIMESTAMP, None).expect("our app");
    check_watermark(mark, APPID, TIMESTAMP + 300, Some(300)).expect("just in time");
    // Without an age limit old data passes, but data stamped in the future does not.
    check_watermark(mark, APPID, TIMESTAMP + 10 * 365 * 86_400, None).expect("no age limit");
    assert!(matches!(
        check_watermark(mark, APPID, 0, None),
        Err(WatermarkError::InFuture { .. })
    ));

    assert_eq!(
        check_watermark(mark, "wx_other", TIMESTAMP, None),
        Err(WatermarkError::AppMismatch {
            expected: "wx_other".to_owned(),
            found: APPID.to_owned(),
        })
    );
    // Appids match exactly, case included.
    assert!(check_watermark(mark, &APPID.to_uppercase(), TIMESTAMP, None).is_err());
    assert_eq!(
        check_watermark(mark, APPID, TIMESTAMP + 301, Some(300)),
        Err(WatermarkError::Expired {
            timestamp: TIMESTAMP,
            now: TIMESTAMP + 301,
            max_age_secs: 300,
        })
    );
    let now = TIMESTAMP - MAX_CLOCK_SKEW_SECS - 1;
    assert_eq!(
        check_watermark(mark, APPID, now, Some(300)),
        Err(WatermarkError::InFuture {
            timestamp: TIMESTAMP,
            now,
        })
    );
    check_watermark(mark, APPID, TIMESTAMP - MAX_CLOCK_SKEW_SECS, Some(300)).expect("skew");
}

#[test]
fn signatures_match_the_published_vectors() {
    // The rawData example of WeChat's "开放数据校验与解密" page.
    let raw_data = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    let key = "HyVFkGl5F5OQWJZZaNzBBg==";
    let signature = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
    assert_eq!(raw_data_signature(raw_data, key), signature);
    assert!(verify_raw_data_signature(raw_data, key, signature));
    assert!(verify_raw_data_signature(
        raw_data,
        key,
        &signature.to_uppercase()
    ));
    assert!(!verify_raw_data_signature(raw_data, SESSION_KEY, signature));
    assert!(!verify_raw_data_signature(raw_data, key, "not hex"));
    assert!(!verify_raw_data_signature(raw_data, key, &signature[..38]));

    // The login-state HMAC vectors; checksession signs the empty string.
    assert_eq!(
        session_signature("o0q0otL8aEzpcZL/FT9WsQ==", br#"{"foo":"bar"}"#),
        "654571f79995b2ce1e149e53c0a33dc39c0a74090db514261454e8dbe432aa0b"
    );
    assert_eq!(
        check_session_signature(SESSION_KEY),
        "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735"
    );
    assert_eq!(
        check_session_signature(SESSION_KEY),
        session_signature(SESSION_KEY, b"")
    );
}

#[test]
fn seal_and_open() {
    let ring = Keyring::new(DataKey::from_bytes([1; 32]));
    let sealed = ring.seal(b"session key");
    assert_eq!(ring.open(&sealed).expect("opens"), b"session key");
    assert_eq!(sealed[0], 0x01, "format version 1");
    assert_eq!(sealed[1..5], ring.current_key_id().to_bytes());

    // Associated data binds a value to where it is stored.
    let bound = ring.seal_with_aad(b"session key", b"users/1");
    assert_eq!(
        ring.open_with_aad(&bound, b"users/1").expect("opens"),
        b"session key"
    );
    assert_eq!(
        ring.open_with_aad(&bound, b"users/2"),
        Err(SealError::Tampered)
    );
    assert_eq!(ring.open(&bound), Err(SealError::Tampered));

    // Every byte is authenticated.
    for i in 0..sealed.len() {
        let mut changed = sealed.clone();
        changed[i] ^= 0x80;
        assert!(ring.open(&changed).is_err(), "byte {i} flipped");
    }
    assert_eq!(
        ring.open(&[0x01; 10]),
        Err(SealError::Malformed { len: 10 })
    );
    let mut unknown_version = sealed.clone();
    unknown_version[0] = 9;
    assert_eq!(
        ring.open(&unknown_version),
        Err(SealError::UnknownVersion { version: 9 })
    );
    let other = Keyring::new(DataKey::from_bytes([2; 32]));
    assert_eq!(
        other.open(&sealed),
        Err(SealError::UnknownKey {
            key_id: ring.current_key_id()
        })
    );
}

#[test]
fn rotation_keeps_old_values_readable() {
    let old = || DataKey::from_bytes([3; 32]);
    let sealed = Keyring::new(old()).seal_with_aad(b"v", b"row");
    let ring = Keyring::new(DataKey::generate()).with_old_key(old());
    assert!(ring.needs_reseal(&sealed));
    let resealed = ring.seal_with_aad(&ring.open_with_aad(&sealed, b"row").expect("opens"), b"row");
    assert!(!ring.needs_reseal(&resealed));
    assert_eq!(ring.open_with_aad(&resealed, b"row").expect("opens"), b"v");
    assert_ne!(
        KeyId::from_bytes(resealed[1..5].try_into().expect("4 bytes")),
        old().id()
    );
}

#[test]
fn data_keys_are_read_strictly_and_never_printed() {
    let text = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    let key = DataKey::from_base64(text).expect("32 bytes");
    assert_eq!(key.id(), DataKey::from_bytes([1; 32]).id());
    assert_eq!(format!("{key:?}"), "DataKey([redacted])");
    let ring = Keyring::new(key);
    assert!(!format!("{ring:?}").contains("AQEB"));

    assert_eq!(
        DataKey::from_base64("aGk=").err(),
        Some(KeyError::Length { len: 2 })
    );
    assert!(matches!(
        DataKey::from_base64("AQEB_QEB").err(),
        Some(KeyError::NotBase64(_))
    ));
    // Two generated keys differ.
    assert_ne!(DataKey::generate().id(), DataKey::generate().id());
}

#[test]
fn no_input_panics() {
    let inputs = [
        "",
        "=",
        "====",
        " ",
        "\u{0}",
        "é",
        "A",
        "AA==",
        &"A".repeat(10_001),
    ];
    for key in inputs {
        for iv in inputs {
            for data in inputs {
                let _ = decrypt_user_data(key, iv, data);
            }
            let _ = encrypt(key, iv, b"x");
        }
        let _ = DataKey::from_base64(key);
        let _ = verify_raw_data_signature(key, key, key);
        let _ = check_session_signature(key);
        let _ = Keyring::new(DataKey::from_bytes([0; 32])).open(key.as_bytes());
    }
}
