//! Seals a session key for storage, bound to its row, then rotates the data key.
//!
//! Run it with `cargo run -p wxlink-crypto --example seal`.

use std::error::Error;

use wxlink_crypto::{DataKey, Keyring, SealError};

fn main() -> Result<(), Box<dyn Error>> {
    // A service reads its data keys from a secret store as base64: `DataKey::from_base64(&text)?`.
    // This one is fixed so that the example is repeatable.
    let old_key = || DataKey::from_bytes([7; 32]);
    let ring = Keyring::new(old_key());
    println!("sealing under key {}", ring.current_key_id());

    // The associated data binds the sealed value to where it is stored: a value copied to
    // another row does not open there.
    let session_key = b"tiihtNczf5v6AKRyjwEUhQ==";
    let sealed = ring.seal_with_aad(session_key, b"sessions/42");
    println!(
        "sealed {} bytes into {} bytes",
        session_key.len(),
        sealed.len()
    );
    assert_eq!(ring.open_with_aad(&sealed, b"sessions/42")?, session_key);
    match ring.open_with_aad(&sealed, b"sessions/43") {
        Err(SealError::Tampered) => println!("other row: refused"),
        other => return Err(format!("another row must not open it: {other:?}").into()),
    }
    let mut flipped = sealed.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 1;
    }
    match ring.open_with_aad(&flipped, b"sessions/42") {
        Err(SealError::Tampered) => println!("flipped byte: refused"),
        other => return Err(format!("a changed value must not open: {other:?}").into()),
    }

    // Rotation: the new key seals, the old one still opens, and values are moved over one by
    // one. Once nothing needs the old key, drop it from the ring.
    let new_key = DataKey::generate();
    println!("new key {} (prints as {new_key:?})", new_key.id());
    let ring = Keyring::new(new_key).with_old_key(old_key());
    assert!(ring.needs_reseal(&sealed));
    let plaintext = ring.open_with_aad(&sealed, b"sessions/42")?;
    let resealed = ring.seal_with_aad(&plaintext, b"sessions/42");
    assert!(!ring.needs_reseal(&resealed));
    println!("re-sealed under key {}", ring.current_key_id());

    // Without the old key, an old value names a key the ring does not have.
    let only_old = Keyring::new(old_key());
    match only_old.open_with_aad(&resealed, b"sessions/42") {
        Err(error @ SealError::UnknownKey { .. }) => println!("{error}"),
        other => return Err(format!("a ring without the key must refuse: {other:?}").into()),
    }
    Ok(())
}

// `cargo test -p wxlink-crypto` runs the example too (`test = true` in Cargo.toml).
#[cfg(test)]
mod tests {
    #[test]
    fn example_runs() {
        super::main().expect("the example succeeds");
    }
}
