//! Fuzzing of the decryptor with proptest on the stable toolchain.
//!
//! `cargo xtask fuzz --cases N` runs the ignored test below in release mode with
//! `WXLINK_FUZZ_CASES=N`; the plain test suite runs a small number of cases of the same
//! generators so they stay correct. Inputs mix three kinds: arbitrary text (mostly refused as
//! base64), well-formed base64 of random blocks (reaches padding and JSON checks), and bit flips
//! and truncations of real encrypted data (reaches every stage). A panic fails the run.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const PLAINTEXT: &str = r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","nickName":"Band","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#;

#[derive(Debug, Clone)]
struct Input {
    key: String,
    iv: String,
    data: String,
}

fn inputs() -> impl Strategy<Value = Input> {
    let valid = wxlink_crypto::encrypt(KEY, IV, PLAINTEXT.as_bytes()).expect("sample encrypts");
    let valid = STANDARD.decode(valid).expect("own output is base64");
    let b64 = |len: std::ops::Range<usize>| {
        proptest::collection::vec(any::<u8>(), len).prop_map(|b| STANDARD.encode(b))
    };
    let arbitrary_text =
        (".{0,40}", ".{0,40}", ".{0,300}").prop_map(|(key, iv, data)| Input { key, iv, data });
    let random_blocks = (
        b64(0..20),
        b64(0..20),
        (0usize..8).prop_flat_map(|blocks| proptest::collection::vec(any::<u8>(), blocks * 16)),
    )
        .prop_map(|(key, iv, data)| Input {
            key,
            iv,
            data: STANDARD.encode(data),
        });
    let mutated = (
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(move |(flips, cut, truncate, space)| {
            let mut data = valid.clone();
            for (at, bits) in flips {
                let i = at.index(data.len());
                data[i] ^= bits;
            }
            if truncate {
                data.truncate(cut.index(data.len() + 1));
            }
            let mut data = STANDARD.encode(data);
            if space {
                data = data.replace('+', " ");
            }
            Input {
                key: KEY.into(),
                iv: IV.into(),
                data,
            }
        });
    prop_oneof![arbitrary_text, random_blocks, mutated]
}

/// Runs `cases` inputs through every decryption entry point; returns how many ran.
fn fuzz(cases: u32) -> u64 {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let executed = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&inputs(), |input| {
            executed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let bytes = wxlink_crypto::decrypt_bytes(&input.key, &input.iv, &input.data);
            let json = wxlink_crypto::decrypt(&input.key, &input.iv, &input.data);
            let user = wxlink_crypto::decrypt_user_data(&input.key, &input.iv, &input.data);
            // The entry points agree on what they refuse.
            prop_assert!(bytes.is_ok() || json.is_err());
            prop_assert!(json.is_ok() || user.is_err());
            let _ = wxlink_crypto::verify_raw_data_signature(&input.data, &input.key, &input.iv);
            let _ = wxlink_crypto::decode_base64(&input.data);
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("fuzzing found a failure: {failure}"));
    executed.into_inner()
}

#[test]
fn decryption_survives_a_small_fuzz_run() {
    assert!(fuzz(2_000) >= 2_000);
}

#[test]
#[ignore = "long: run through `cargo xtask fuzz --cases N`"]
fn fuzz_decryption() {
    let cases: u32 = std::env::var("WXLINK_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let started = std::time::Instant::now();
    let executed = fuzz(cases);
    // A panic would have failed the run above, so every execution here ended without one.
    println!(
        "fuzz decryption: {executed} executions, 0 panics, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
