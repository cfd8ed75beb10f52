use wxlink_crypto::{MAX_CLOCK_SKEW_SECS, Watermark, WatermarkError, check_watermark};

fn watermark(timestamp: i64) -> Watermark {
    Watermark {
        appid: "wx4f4bc4dec97d474b".to_owned(),
        timestamp,
    }
}

const APPID: &str = "wx4f4bc4dec97d474b";
const NOW: i64 = 1_700_000_000;

#[test]
fn without_an_age_limit_old_data_passes_and_the_future_is_still_bounded() {
    assert_eq!(check_watermark(&watermark(0), APPID, NOW, None), Ok(()));
    assert_eq!(
        check_watermark(&watermark(NOW + MAX_CLOCK_SKEW_SECS), APPID, NOW, None),
        Ok(())
    );
    assert_eq!(
        check_watermark(&watermark(i64::MAX), APPID, NOW, None),
        Err(WatermarkError::InFuture {
            timestamp: i64::MAX,
            now: NOW,
        })
    );
}

#[test]
fn other_appid_is_refused_first() {
    let err = check_watermark(&watermark(0), "wx0000000000000000", NOW, Some(1)).unwrap_err();
    assert_eq!(
        err,
        WatermarkError::AppMismatch {
            expected: "wx0000000000000000".to_owned(),
            found: APPID.to_owned(),
        }
    );
    assert_eq!(
        err.to_string(),
        r#"watermark appid "wx4f4bc4dec97d474b" is not the expected "wx0000000000000000""#
    );
    // Exact match: no case folding, no trimming.
    assert!(check_watermark(&watermark(NOW), &APPID.to_uppercase(), NOW, None).is_err());
    assert!(check_watermark(&watermark(NOW), &format!("{APPID} "), NOW, None).is_err());
}

#[test]
fn age_limit_is_inclusive() {
    assert_eq!(
        check_watermark(&watermark(NOW - 300), APPID, NOW, Some(300)),
        Ok(())
    );
    assert_eq!(
        check_watermark(&watermark(NOW - 301), APPID, NOW, Some(300)),
        Err(WatermarkError::Expired {
            timestamp: NOW - 301,
            now: NOW,
            max_age_secs: 300,
        })
    );
}

#[test]
fn future_timestamps_get_a_minute_of_skew() {
    assert_eq!(MAX_CLOCK_SKEW_SECS, 60);
    assert_eq!(
        check_watermark(&watermark(NOW + 60), APPID, NOW, Some(300)),
        Ok(())
    );
    let err = check_watermark(&watermark(NOW + 61), APPID, NOW, Some(300)).unwrap_err();
    assert_eq!(
        err,
        WatermarkError::InFuture {
            timestamp: NOW + 61,
            now: NOW,
        }
    );
    assert_eq!(
        err.to_string(),
        "watermark timestamp 1700000061 is more than 60 s after now (1700000000)"
    );
}

#[test]
fn extreme_values_do_not_overflow() {
    // i64::MAX - i64::MIN is exactly u64::MAX.
    assert_eq!(
        check_watermark(&watermark(i64::MIN), APPID, i64::MAX, Some(u64::MAX)),
        Ok(())
    );
    assert!(matches!(
        check_watermark(&watermark(i64::MIN), APPID, i64::MAX, Some(u64::MAX - 1)),
        Err(WatermarkError::Expired { .. })
    ));
    assert!(matches!(
        check_watermark(&watermark(i64::MAX), APPID, i64::MIN, Some(u64::MAX)),
        Err(WatermarkError::InFuture { .. })
    ));
    assert_eq!(
        check_watermark(&watermark(NOW), APPID, NOW, Some(0)),
        Ok(())
    );
}
