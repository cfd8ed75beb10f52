use wxlink_crypto::{DataKey, KeyError, KeyId, Keyring, SealError, sealed_key_id};

/// SHA-256 of 32 zero bytes begins with these four bytes.
const ZERO_KEY_ID: [u8; 4] = [0x66, 0x68, 0x7a, 0xad];

fn zero_key() -> DataKey {
    DataKey::from_bytes([0; 32])
}

#[test]
fn seal_then_open_round_trips() {
    let ring = Keyring::new(DataKey::generate());
    for plaintext in [&b""[..], b"x", b"tiihtNczf5v6AKRyjwEUhQ==", &[0xff; 1000]] {
        assert_eq!(ring.open(&ring.seal(plaintext)).unwrap(), plaintext);
        let sealed = ring.seal_with_aad(plaintext, b"row 1");
        assert_eq!(ring.open_with_aad(&sealed, b"row 1").unwrap(), plaintext);
    }
}

#[test]
fn sealed_format_is_version_key_id_nonce_ciphertext_tag() {
    let ring = Keyring::new(zero_key());
    let sealed = ring.seal(b"abc");
    assert_eq!(sealed.len(), 1 + 4 + 12 + 3 + 16);
    assert_eq!(sealed[0], 0x01);
    assert_eq!(sealed[1..5], ZERO_KEY_ID);
}

#[test]
fn each_seal_uses_a_fresh_nonce() {
    let ring = Keyring::new(zero_key());
    assert_ne!(ring.seal(b"same"), ring.seal(b"same"));
}

#[test]
fn any_changed_byte_is_detected() {
    let ring = Keyring::new(zero_key());
    let sealed = ring.seal_with_aad(b"session key", b"row 7");
    for index in 0..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut tampered = sealed.clone();
            tampered[index] ^= bit;
            assert!(
                ring.open_with_aad(&tampered, b"row 7").is_err(),
                "flip {bit:#x} at {index} went unnoticed"
            );
        }
    }
    for len in 0..sealed.len() {
        assert!(ring.open_with_aad(&sealed[..len], b"row 7").is_err());
    }
    let mut extended = sealed.clone();
    extended.push(0);
    assert_eq!(
        ring.open_with_aad(&extended, b"row 7"),
        Err(SealError::Tampered)
    );
    assert_eq!(
        ring.open_with_aad(&sealed, b"row 7").unwrap(),
        b"session key"
    );
}

#[test]
fn associated_data_must_match() {
    let ring = Keyring::new(zero_key());
    let bound = ring.seal_with_aad(b"secret", b"users/1");
    assert_eq!(
        ring.open_with_aad(&bound, b"users/2"),
        Err(SealError::Tampered)
    );
    assert_eq!(ring.open(&bound), Err(SealError::Tampered));
    let unbound = ring.seal(b"secret");
    assert_eq!(
        ring.open_with_aad(&unbound, b"users/1"),
        Err(SealError::Tampered)
    );
}

#[test]
fn unknown_key_version_and_short_values_are_told_apart() {
    let sealed = Keyring::new(DataKey::from_bytes([1; 32])).seal(b"x");
    let ring = Keyring::new(zero_key());
    let key_id = DataKey::from_bytes([1; 32]).id();
    assert_eq!(ring.open(&sealed), Err(SealError::UnknownKey { key_id }));
    assert_eq!(
        SealError::UnknownKey { key_id }.to_string(),
        format!("sealed value needs key {key_id}, which is not in the keyring")
    );

    let mut future = ring.seal(b"x");
    future[0] = 0x02;
    assert_eq!(
        ring.open(&future),
        Err(SealError::UnknownVersion { version: 2 })
    );
    assert_eq!(ring.open(&[]), Err(SealError::Malformed { len: 0 }));
    assert_eq!(
        ring.open(&[0x01; 32]),
        Err(SealError::Malformed { len: 32 })
    );
    assert_eq!(
        ring.open(&[0x00; 40]),
        Err(SealError::UnknownVersion { version: 0 })
    );
}

#[test]
fn rotation_keeps_old_values_open_and_reseals_them() {
    let old_ring = Keyring::new(DataKey::from_bytes([1; 32]));
    let sealed = old_ring.seal_with_aad(b"session key", b"row 9");
    assert!(!old_ring.needs_reseal(&sealed));

    let ring =
        Keyring::new(DataKey::from_bytes([2; 32])).with_old_key(DataKey::from_bytes([1; 32]));
    assert_eq!(ring.current_key_id(), DataKey::from_bytes([2; 32]).id());
    assert!(ring.needs_reseal(&sealed));
    let plaintext = ring.open_with_aad(&sealed, b"row 9").unwrap();
    let resealed = ring.seal_with_aad(&plaintext, b"row 9");
    assert!(!ring.needs_reseal(&resealed));
    assert_eq!(resealed[1..5], ring.current_key_id().to_bytes());

    // Once the old key is retired, values still under it are reported, not misread.
    let retired = Keyring::new(DataKey::from_bytes([2; 32]));
    assert_eq!(
        retired.open_with_aad(&resealed, b"row 9").unwrap(),
        b"session key"
    );
    assert!(matches!(
        retired.open_with_aad(&sealed, b"row 9"),
        Err(SealError::UnknownKey { .. })
    ));
}

#[test]
fn malformed_values_need_reseal() {
    let ring = Keyring::new(zero_key());
    assert!(ring.needs_reseal(&[]));
    assert!(ring.needs_reseal(b"plain text stored before sealing existed"));
}

#[test]
fn key_id_is_a_sha256_prefix_printed_as_hex() {
    let id = zero_key().id();
    assert_eq!(id, KeyId::from_bytes(ZERO_KEY_ID));
    assert_eq!(id.to_bytes(), ZERO_KEY_ID);
    assert_eq!(id.to_string(), "66687aad");
    assert_eq!(format!("{id:?}"), "KeyId(66687aad)");
    assert_ne!(DataKey::generate().id(), DataKey::generate().id());
}

#[test]
fn data_key_base64_round_trips() {
    use secrecy::ExposeSecret as _;
    let key = DataKey::generate();
    let text = key.to_base64();
    assert_eq!(text.expose_secret().len(), 44);
    assert_eq!(
        DataKey::from_base64(text.expose_secret()).unwrap().id(),
        key.id()
    );
    assert_eq!(
        DataKey::from_base64("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
            .unwrap()
            .id(),
        zero_key().id()
    );
}

#[test]
fn data_key_must_be_32_bytes_of_base64() {
    assert_eq!(
        DataKey::from_base64("tiihtNczf5v6AKRyjwEUhQ==").unwrap_err(),
        KeyError::Length { len: 16 }
    );
    assert!(matches!(
        DataKey::from_base64("not a key!").unwrap_err(),
        KeyError::NotBase64(_)
    ));
    assert_eq!(
        KeyError::Length { len: 16 }.to_string(),
        "data key decodes to 16 bytes, expected 32"
    );
}

#[test]
fn debug_output_is_redacted() {
    assert_eq!(format!("{:?}", zero_key()), "DataKey([redacted])");
    assert_eq!(format!("{:#?}", zero_key()), "DataKey([redacted])");
    let ring = Keyring::new(zero_key()).with_old_key(DataKey::generate());
    assert_eq!(
        format!("{ring:?}"),
        "Keyring { current: DataKey([redacted]), old: [DataKey([redacted])] }"
    );
    assert_eq!(
        format!("{:?}", DataKey::generate().to_base64()),
        "SecretBox<str>([REDACTED])"
    );
}

#[test]
fn fingerprint_is_an_hmac_of_the_key_and_tells_keys_apart() {
    // HMAC-SHA256(key = 32 bytes of 7, "wxlink data key fingerprint v1"), first 8 bytes.
    let key = DataKey::from_bytes([7; 32]);
    assert_eq!(key.fingerprint(), "6f60f5ed381e2aec");
    assert_eq!(key.id().to_string(), "4bb06f8e");
    assert_ne!(zero_key().fingerprint(), key.fingerprint());
    let b64 = key.to_base64();
    assert!(!secrecy::ExposeSecret::expose_secret(&b64).contains(&key.fingerprint()));
}

#[test]
fn keyed_hash_is_an_hmac_under_a_key_derived_for_its_context() {
    // HMAC-SHA256(key = HMAC-SHA256(32 bytes of 7, "wxlink keyed hash v1\ndecrypt budget"),
    // "wx1\no1"), computed independently with Python's hmac.
    let key = DataKey::from_bytes([7; 32]);
    let hash = key.keyed_hash("decrypt budget", b"wx1\no1");
    assert_eq!(
        hex::encode(hash),
        "ead21e772167f350a70942ed69be48c4c981940236e0df3e007ef4dbaa2ded82"
    );
    assert_ne!(key.keyed_hash("other", b"wx1\no1"), hash);
    assert_ne!(zero_key().keyed_hash("decrypt budget", b"wx1\no1"), hash);
}

#[test]
fn a_sealed_value_names_its_key_without_any_key() {
    let ring = Keyring::new(zero_key()).with_old_key(DataKey::from_bytes([7; 32]));
    let sealed = ring.seal_with_aad(b"x", b"row");
    assert_eq!(sealed_key_id(&sealed), Ok(KeyId::from_bytes(ZERO_KEY_ID)));
    assert_eq!(
        sealed_key_id(&[0x02; 40]),
        Err(SealError::UnknownVersion { version: 2 })
    );
    assert_eq!(sealed_key_id(&[]), Err(SealError::Malformed { len: 0 }));
    let ids: Vec<String> = ring.keys().map(|k| k.id().to_string()).collect();
    assert_eq!(ids, ["66687aad", "4bb06f8e"]);
    assert_eq!(ring.current_key().id(), ring.current_key_id());
}
