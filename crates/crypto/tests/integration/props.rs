use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use wxlink_crypto::{
    DataKey, DecryptError, Keyring, decrypt, decrypt_bytes, decrypt_user_data, encrypt,
};

proptest! {
    #[test]
    fn decrypt_never_panics_on_any_strings(key in ".*", iv in ".*", data in ".*") {
        let _ = decrypt_user_data(&key, &iv, &data);
        let _ = encrypt(&key, &iv, data.as_bytes());
    }

    #[test]
    fn decrypt_never_panics_on_any_bytes(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        iv in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let _ = decrypt_user_data(
            &String::from_utf8_lossy(&key),
            &String::from_utf8_lossy(&iv),
            &String::from_utf8_lossy(&data),
        );
    }

    #[test]
    fn decrypt_of_any_base64_checks_lengths_in_order(
        key in proptest::collection::vec(any::<u8>(), 0..40),
        iv in proptest::collection::vec(any::<u8>(), 0..40),
        data in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let result = decrypt(&STANDARD.encode(&key), &STANDARD.encode(&iv), &STANDARD.encode(&data));
        match result {
            Err(DecryptError::SessionKeyLength { len }) => prop_assert!(len == key.len() && len != 16),
            Err(DecryptError::IvLength { len }) => prop_assert!(key.len() == 16 && len == iv.len() && len != 16),
            Err(DecryptError::CiphertextEmpty) => prop_assert!(data.is_empty()),
            Err(DecryptError::CiphertextLength { len }) => prop_assert!(len == data.len() && len % 16 != 0),
            Err(DecryptError::BadPadding | DecryptError::PlaintextNotUtf8(_) | DecryptError::PlaintextNotJson(_)) | Ok(_) => {
                prop_assert!(key.len() == 16 && iv.len() == 16 && !data.is_empty() && data.len() % 16 == 0);
            }
            Err(other) => prop_assert!(false, "unexpected {other:?}"),
        }
    }

    #[test]
    fn decrypt_of_any_whole_blocks_never_panics(
        key in any::<[u8; 16]>(),
        iv in any::<[u8; 16]>(),
        blocks in proptest::collection::vec(any::<[u8; 16]>(), 1..8),
    ) {
        let data = blocks.concat();
        let _ = decrypt_user_data(&STANDARD.encode(key), &STANDARD.encode(iv), &STANDARD.encode(&data));
    }

    #[test]
    fn encrypt_then_decrypt_is_identity(
        key in any::<[u8; 16]>(),
        iv in any::<[u8; 16]>(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let (key, iv) = (STANDARD.encode(key), STANDARD.encode(iv));
        let data = encrypt(&key, &iv, &plaintext).unwrap();
        prop_assert_eq!(STANDARD.decode(&data).unwrap().len(), (plaintext.len() / 16 + 1) * 16);
        prop_assert_eq!(decrypt_bytes(&key, &iv, &data).unwrap(), plaintext);
    }

    #[test]
    fn encrypt_then_decrypt_json_is_identity(text in ".*", number in any::<i64>()) {
        let key = "tiihtNczf5v6AKRyjwEUhQ==";
        let iv = "r7BXXKkLb8qrSNn05n0qiA==";
        let value = serde_json::json!({ "text": text, "number": number });
        let data = encrypt(key, iv, value.to_string().as_bytes()).unwrap();
        prop_assert_eq!(decrypt(key, iv, &data.replace('+', " ")).unwrap(), value);
    }

    #[test]
    fn seal_then_open_is_identity(
        plaintext in proptest::collection::vec(any::<u8>(), 0..512),
        aad in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let ring = Keyring::new(DataKey::generate());
        let sealed = ring.seal_with_aad(&plaintext, &aad);
        prop_assert_eq!(ring.open_with_aad(&sealed, &aad).unwrap(), plaintext);
        prop_assert!(!ring.needs_reseal(&sealed));
    }

    #[test]
    fn open_never_panics_on_any_bytes(
        sealed in proptest::collection::vec(any::<u8>(), 0..100),
        aad in proptest::collection::vec(any::<u8>(), 0..8),
    ) {
        let ring = Keyring::new(DataKey::from_bytes([0; 32]));
        prop_assert!(ring.open_with_aad(&sealed, &aad).is_err());
        let _ = ring.needs_reseal(&sealed);
        // The same bytes behind a valid header reach the key lookup and the tag check.
        let mut headed = vec![0x01, 0x66, 0x68, 0x7a, 0xad];
        headed.extend_from_slice(&sealed);
        prop_assert!(ring.open_with_aad(&headed, &aad).is_err());
    }

    #[test]
    fn data_key_from_any_string_never_panics(text in ".*") {
        let _ = DataKey::from_base64(&text);
    }
}
