//! Decrypt+verify of `wx.getUserInfo` data per call: wxlink-crypto, wechatpy (in Python), and
//! bare AES-128-CBC of the same bytes (with and without base64 + JSON), as timing loops.

use std::hint::black_box;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aes::Aes128;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut as _, KeyIvInit as _};
use serde::Serialize;

use crate::services::start_sim;
use crate::stats::minimum;
use crate::{APPID, Ctx};
use wxlink_tests::now_unix;

/// One user's encrypted data as a mini program submits it, and what checks it.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub session_key: String,
    pub iv: String,
    pub encrypted_data: String,
    pub raw_data: String,
    pub signature: String,
    pub appid: String,
}

/// ns per operation, the fastest of several rounds (on a shared machine the other rounds
/// measure the neighbours too).
#[derive(Debug, Clone, Serialize)]
pub struct DecryptFigures {
    /// Ciphertext length in bytes.
    pub ciphertext_bytes: usize,
    /// wxlink-crypto: base64, AES-128-CBC, strict PKCS#7, typed JSON, rawData signature (SHA-1,
    /// constant time), watermark appid and age — what wxlink's user-info path runs.
    pub wxlink_ns: f64,
    /// wxlink-crypto's `decrypt_user_data` alone (no signature, no watermark check): where the
    /// time of `wxlink_ns` goes.
    pub wxlink_decrypt_only_ns: f64,
    /// wechatpy's WeChatWxaCrypto + the same signature and watermark checks, in CPython.
    pub wechatpy_ns: f64,
    /// What a leaner decrypt+verify could cost: the same steps as `wxlink_ns` (base64, AES,
    /// strict unpadding, signature, watermark), but the JSON read straight into borrowed
    /// fields (openId, unionId, watermark) instead of a `serde_json::Value` then a struct.
    pub lean_ns: f64,
    /// AES-128-CBC decryption of the already-decoded bytes, nothing else.
    pub bare_aes_ns: f64,
    /// base64 decode + AES-128-CBC + unpad + parse into a `serde_json::Value`.
    pub bare_aes_json_ns: f64,
}

/// Times `op` in `rounds` rounds of `iterations`, returning the fastest round's ns per
/// operation.
pub fn time_loop(
    rounds: usize,
    iterations: u64,
    mut op: impl FnMut() -> bool,
) -> Result<f64, String> {
    // Warm caches and branch predictors, and check the operation succeeds at all.
    for _ in 0..iterations.min(1000) {
        if !op() {
            return Err("the operation failed".to_owned());
        }
    }
    let mut figures = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut ok = true;
        for _ in 0..iterations {
            ok &= black_box(op());
        }
        let elapsed = started.elapsed();
        if !ok {
            return Err("the operation failed".to_owned());
        }
        figures.push(elapsed.as_nanos() as f64 / iterations as f64);
    }
    Ok(minimum(&figures))
}

/// Iterations that take about `target` for an operation of `ns_guess` ns.
fn iterations_for(target: Duration, ns_guess: f64) -> u64 {
    ((target.as_nanos() as f64 / ns_guess.max(1.0)) as u64).clamp(100, 50_000_000)
}

/// Rust figures, ns per operation.
#[derive(Debug, Clone, Copy)]
pub struct RustFigures {
    pub wxlink: f64,
    pub wxlink_decrypt_only: f64,
    pub lean: f64,
    pub bare_aes: f64,
    pub bare_aes_json: f64,
}

/// The Rust side of the comparison.
pub fn measure_rust(
    sample: &Sample,
    now: i64,
    round: Duration,
    rounds: usize,
) -> Result<RustFigures, String> {
    let key = wxlink_crypto::decode_base64(&sample.session_key).map_err(|e| e.to_string())?;
    let iv = wxlink_crypto::decode_base64(&sample.iv).map_err(|e| e.to_string())?;
    let ciphertext =
        wxlink_crypto::decode_base64(&sample.encrypted_data).map_err(|e| e.to_string())?;
    let key: [u8; 16] = key.try_into().map_err(|_| "session key is not 16 bytes")?;
    let iv: [u8; 16] = iv.try_into().map_err(|_| "iv is not 16 bytes")?;

    let wxlink_op = || {
        let Ok(user) = wxlink_crypto::decrypt_user_data(
            black_box(&sample.session_key),
            black_box(&sample.iv),
            black_box(&sample.encrypted_data),
        ) else {
            return false;
        };
        wxlink_crypto::verify_raw_data_signature(
            &sample.raw_data,
            &sample.session_key,
            &sample.signature,
        ) && wxlink_crypto::check_watermark(&user.watermark, &sample.appid, now, Some(600)).is_ok()
            && !user.open_id.is_empty()
    };
    let decrypt_only_op = || {
        wxlink_crypto::decrypt_user_data(
            black_box(&sample.session_key),
            black_box(&sample.iv),
            black_box(&sample.encrypted_data),
        )
        .is_ok_and(|user| !user.open_id.is_empty())
    };
    let lean_op = || {
        let (Ok(mut data), Ok(key), Ok(iv)) = (
            wxlink_crypto::decode_base64(black_box(&sample.encrypted_data)),
            wxlink_crypto::decode_base64(black_box(&sample.session_key)),
            wxlink_crypto::decode_base64(black_box(&sample.iv)),
        ) else {
            return false;
        };
        let (Ok(key), Ok(iv)) = (<[u8; 16]>::try_from(key), <[u8; 16]>::try_from(iv)) else {
            return false;
        };
        let cipher = cbc::Decryptor::<Aes128>::new((&key).into(), (&iv).into());
        let Ok(plain) = cipher.decrypt_padded_mut::<NoPadding>(&mut data) else {
            return false;
        };
        let Some(text) = strict_unpad(plain) else {
            return false;
        };
        let Ok(user) = serde_json::from_slice::<LeanUser<'_>>(text) else {
            return false;
        };
        wxlink_crypto::verify_raw_data_signature(
            &sample.raw_data,
            &sample.session_key,
            &sample.signature,
        ) && user.watermark.appid == sample.appid
            && now - user.watermark.timestamp <= 600
            && !user.open_id.is_empty()
            && user.union_id.is_none_or(|u| !u.is_empty())
    };
    let mut buffer = ciphertext.clone();
    let bare_op = || {
        buffer.copy_from_slice(black_box(&ciphertext));
        let cipher = cbc::Decryptor::<Aes128>::new((&key).into(), (&iv).into());
        cipher.decrypt_padded_mut::<NoPadding>(&mut buffer).is_ok()
    };
    let bare_json_op = || {
        let Ok(mut data) = wxlink_crypto::decode_base64(black_box(&sample.encrypted_data)) else {
            return false;
        };
        let Ok(key) = wxlink_crypto::decode_base64(black_box(&sample.session_key)) else {
            return false;
        };
        let Ok(iv) = wxlink_crypto::decode_base64(black_box(&sample.iv)) else {
            return false;
        };
        let (Ok(key), Ok(iv)) = (<[u8; 16]>::try_from(key), <[u8; 16]>::try_from(iv)) else {
            return false;
        };
        let cipher = cbc::Decryptor::<Aes128>::new((&key).into(), (&iv).into());
        let Ok(plain) = cipher.decrypt_padded_mut::<NoPadding>(&mut data) else {
            return false;
        };
        let Some(text) = strict_unpad(plain) else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(text).is_ok()
    };

    let probe = |op: &mut dyn FnMut() -> bool| -> Result<f64, String> {
        // A short probe sizes the rounds.
        let guess = time_loop(1, 2000, &mut *op)?;
        time_loop(rounds, iterations_for(round, guess), op)
    };
    let mut wxlink_op = wxlink_op;
    let mut decrypt_only_op = decrypt_only_op;
    let mut lean_op = lean_op;
    let mut bare_op = bare_op;
    let mut bare_json_op = bare_json_op;
    Ok(RustFigures {
        wxlink: probe(&mut wxlink_op)?,
        wxlink_decrypt_only: probe(&mut decrypt_only_op)?,
        lean: probe(&mut lean_op)?,
        bare_aes: probe(&mut bare_op)?,
        bare_aes_json: probe(&mut bare_json_op)?,
    })
}

/// The fields a login needs from decrypted user data, borrowed from the plaintext.
#[derive(serde::Deserialize)]
struct LeanUser<'a> {
    #[serde(rename = "openId", borrow)]
    open_id: std::borrow::Cow<'a, str>,
    #[serde(rename = "unionId", default, borrow)]
    union_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    watermark: LeanWatermark<'a>,
}

#[derive(serde::Deserialize)]
struct LeanWatermark<'a> {
    #[serde(borrow)]
    appid: std::borrow::Cow<'a, str>,
    timestamp: i64,
}

/// Strict PKCS#7: 1 to 16 bytes, all equal to their count.
fn strict_unpad(block_aligned: &[u8]) -> Option<&[u8]> {
    let (&last, _) = block_aligned.split_last()?;
    let pad = usize::from(last);
    if pad == 0 || pad > 16 || pad > block_aligned.len() {
        return None;
    }
    let (text, padding) = block_aligned.split_at(block_aligned.len() - pad);
    padding.iter().all(|&b| b == last).then_some(text)
}

/// The Python side: runs bench/peer/decrypt_bench.py in the venv and reads its figures.
pub fn measure_wechatpy(
    python: &Path,
    script: &Path,
    sample: &Sample,
    iterations: u64,
    rounds: usize,
) -> Result<f64, String> {
    let mut spec = serde_json::to_value(sample).map_err(|e| e.to_string())?;
    if let Some(object) = spec.as_object_mut() {
        object.insert("iterations".into(), iterations.into());
        object.insert("rounds".into(), rounds.into());
    }
    let mut child = Command::new(python)
        .arg(script)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write as _;
        stdin
            .write_all(spec.to_string().as_bytes())
            .map_err(|e| format!("writing to the decrypt script: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("decrypt script: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "decrypt script failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_python_figures(&String::from_utf8_lossy(&out.stdout))
}

/// Reads `{"ns_per_op": [..], ...}` (the last JSON line of the script's output): the fastest
/// round.
pub fn parse_python_figures(output: &str) -> Result<f64, String> {
    let line = output
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or_else(|| format!("no JSON in the decrypt script's output: {output:?}"))?;
    let value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("decrypt script output: {e}"))?;
    let figures: Vec<f64> = value
        .get("ns_per_op")
        .and_then(|v| v.as_array())
        .ok_or("decrypt script output lacks ns_per_op")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    if figures.is_empty() {
        return Err("decrypt script output has no figures".to_owned());
    }
    Ok(minimum(&figures))
}

/// The decrypt section: one simulated user's data, decrypted and verified by each contender.
pub async fn section(ctx: &Ctx) -> Result<DecryptFigures, String> {
    let sim = start_sim().await?;
    let openid = "oDecryptBenchUser000000000001";
    let login = sim
        .login(APPID, openid, Some("uDecryptBenchUnion0000000001"))
        .map_err(|e| e.to_string())?;
    let info = sim.user_info(APPID, openid).map_err(|e| e.to_string())?;
    sim.shutdown().await;
    let sample = Sample {
        session_key: login.session_key,
        iv: info.iv,
        encrypted_data: info.encrypted_data,
        raw_data: info.raw_data,
        signature: info.signature,
        appid: APPID.to_owned(),
    };
    let ciphertext_bytes = wxlink_crypto::decode_base64(&sample.encrypted_data)
        .map_err(|e| e.to_string())?
        .len();
    let now = now_unix();
    let plan = ctx.plan;
    let rust_sample = sample.clone();
    let rust = tokio::task::spawn_blocking(move || {
        measure_rust(&rust_sample, now, plan.decrypt_round, plan.decrypt_rounds)
    })
    .await
    .map_err(|e| e.to_string())??;
    let python = ctx.venv_python.clone().ok_or("no venv")?;
    let script = ctx.root.join("bench").join("peer").join("decrypt_bench.py");
    let wechatpy_ns = tokio::task::spawn_blocking(move || {
        measure_wechatpy(
            &python,
            &script,
            &sample,
            plan.python_decrypt_iterations,
            plan.decrypt_rounds,
        )
    })
    .await
    .map_err(|e| e.to_string())??;
    Ok(DecryptFigures {
        ciphertext_bytes,
        wxlink_ns: rust.wxlink,
        wxlink_decrypt_only_ns: rust.wxlink_decrypt_only,
        lean_ns: rust.lean,
        wechatpy_ns,
        bare_aes_ns: rust.bare_aes,
        bare_aes_json_ns: rust.bare_aes_json,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_figures_are_the_fastest_round_of_the_last_json_line() {
        let out = "warming up\n{\"ns_per_op\": [30000.5, 10000.0, 20000.0], \"openid\": \"o1\"}\n";
        assert_eq!(parse_python_figures(out), Ok(10000.0));
        assert!(parse_python_figures("Traceback …\n").is_err());
        assert!(parse_python_figures("{\"ns_per_op\": []}").is_err());
        assert!(parse_python_figures("{\"other\": 1}").is_err());
    }

    #[test]
    fn loops_report_failures_and_time() {
        assert!(time_loop(1, 10, || false).is_err());
        let ns = time_loop(3, 1000, || black_box(1 + 1) == 2).expect("times");
        assert!(ns.is_finite() && ns >= 0.0);
    }

    #[test]
    fn unpadding_is_strict() {
        assert_eq!(strict_unpad(&[b'a', 1]), Some(&b"a"[..]));
        assert_eq!(strict_unpad(&[b'a', 2, 2]), Some(&b"a"[..]));
        assert_eq!(strict_unpad(&[b'a', 1, 2]), None);
        assert_eq!(strict_unpad(&[b'a', 0]), None);
        assert_eq!(strict_unpad(&[17; 17]), None);
        assert_eq!(strict_unpad(&[]), None);
    }

    #[test]
    fn iterations_are_bounded() {
        assert_eq!(iterations_for(Duration::from_secs(1), 1000.0), 1_000_000);
        assert_eq!(iterations_for(Duration::from_secs(1), 0.0), 50_000_000);
        assert_eq!(iterations_for(Duration::from_millis(1), 1e9), 100);
    }
}
