//! The watermark WeChat puts inside encrypted data, and the check that the data was meant for us.

/// How far a watermark timestamp may lie ahead of the caller's clock before it is refused, in
/// seconds.
///
/// WeChat's clock and ours are never exactly in step; a minute covers ordinary drift without
/// letting a forged far-future timestamp outlive any age limit.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;

/// The `watermark` object inside decrypted data: which mini program it was encrypted for, and when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Watermark {
    /// The appid of the mini program the data was encrypted for.
    pub appid: String,
    /// When WeChat encrypted the data, in Unix seconds.
    pub timestamp: i64,
}

/// Why a watermark was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WatermarkError {
    /// The data was encrypted for another mini program.
    #[error("watermark appid {found:?} is not the expected {expected:?}")]
    AppMismatch {
        /// The appid the caller expected.
        expected: String,
        /// The appid in the watermark.
        found: String,
    },
    /// The data is older than the caller allows.
    #[error("watermark timestamp {timestamp} is more than {max_age_secs} s before now ({now})")]
    Expired {
        /// The watermark's timestamp.
        timestamp: i64,
        /// The caller's clock.
        now: i64,
        /// The age limit the caller gave.
        max_age_secs: u64,
    },
    /// The timestamp lies more than [`MAX_CLOCK_SKEW_SECS`] after the caller's clock.
    #[error(
        "watermark timestamp {timestamp} is more than {} s after now ({now})",
        MAX_CLOCK_SKEW_SECS
    )]
    InFuture {
        /// The watermark's timestamp.
        timestamp: i64,
        /// The caller's clock.
        now: i64,
    },
}

/// Checks that decrypted data was encrypted for `expected_appid`, is not stamped in the future,
/// and optionally that it is fresh.
///
/// The appid must match exactly, and is checked first.
/// Data whose timestamp lies more than [`MAX_CLOCK_SKEW_SECS`] (60 s) after `now_unix_secs` is
/// always [`WatermarkError::InFuture`], a variant of its own so that clock trouble is not
/// mistaken for stale data: no age limit makes data stamped years ahead acceptable.
/// With `Some(max)`, data older than `max` seconds is also [`WatermarkError::Expired`].
///
/// # Errors
///
/// [`WatermarkError::AppMismatch`], [`WatermarkError::Expired`] or [`WatermarkError::InFuture`].
pub fn check_watermark(
    watermark: &Watermark,
    expected_appid: &str,
    now_unix_secs: i64,
    max_age_secs: Option<u64>,
) -> Result<(), WatermarkError> {
    if watermark.appid != expected_appid {
        return Err(WatermarkError::AppMismatch {
            expected: expected_appid.to_owned(),
            found: watermark.appid.clone(),
        });
    }
    // i128 holds the difference of any two i64 values and any u64, so no input can overflow.
    let age = i128::from(now_unix_secs) - i128::from(watermark.timestamp);
    if let Some(max_age_secs) = max_age_secs
        && age > i128::from(max_age_secs)
    {
        return Err(WatermarkError::Expired {
            timestamp: watermark.timestamp,
            now: now_unix_secs,
            max_age_secs,
        });
    }
    if -age > i128::from(MAX_CLOCK_SKEW_SECS) {
        return Err(WatermarkError::InFuture {
            timestamp: watermark.timestamp,
            now: now_unix_secs,
        });
    }
    Ok(())
}
