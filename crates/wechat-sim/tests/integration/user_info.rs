//! User info: what wx.getUserInfo gives, encrypted under the current session key.

use super::*;

#[tokio::test]
async fn user_info_decrypts_with_the_current_key() {
    let sim = sim_with_app(UnionidPolicy::Never).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let info = sim.user_info(APPID, "o-1").expect("user info");

    let data = wxlink_crypto::decrypt_user_data(&login.session_key, &info.iv, &info.encrypted_data)
        .expect("decrypts");
    assert_eq!(data.open_id, "o-1");
    // getUserInfo carries the unionid even where code2Session's policy withholds it.
    assert_eq!(data.union_id.as_deref(), Some("u-1"));
    assert_eq!(data.watermark.appid, APPID);
    assert!((data.watermark.timestamp - sim.now_unix()).abs() <= 1);
    assert_eq!(data.nick_name.as_deref(), Some("微信用户"));
    assert!(wxlink_crypto::verify_raw_data_signature(
        &info.raw_data,
        &login.session_key,
        &info.signature
    ));
    let raw: Value = serde_json::from_str(&info.raw_data).expect("raw_data is JSON");
    assert!(raw.get("openId").is_none() && raw.get("unionId").is_none());
    assert_eq!(raw.get("nickName"), Some(&json!("微信用户")));
}

#[tokio::test]
async fn user_profile_has_no_unionid_and_options_apply() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    let login = sim.login(APPID, "o-1", Some("u-1")).expect("login");
    let mut request = UserInfoRequest::new(APPID, "o-1").without_unionid();
    request.nick_name = Some("Alice".into());
    request.watermark_appid = Some("wxsomeoneelse".into());
    request.watermark_timestamp = Some(1_477_314_187);
    let info = sim.user_info_with(&request).expect("user info");
    let data = wxlink_crypto::decrypt_user_data(&login.session_key, &info.iv, &info.encrypted_data)
        .expect("decrypts");
    assert_eq!(data.union_id, None);
    assert_eq!(data.nick_name.as_deref(), Some("Alice"));
    assert_eq!(data.watermark.appid, "wxsomeoneelse");
    assert_eq!(data.watermark.timestamp, 1_477_314_187);
}

#[tokio::test]
async fn user_info_needs_a_logged_in_user() {
    let sim = sim_with_app(UnionidPolicy::Always).await;
    assert!(matches!(
        sim.user_info(APPID, "nobody"),
        Err(SimError::UnknownUser { .. })
    ));
    sim.follow(APPID, "follower").expect("follow");
    assert!(matches!(
        sim.user_info(APPID, "follower"),
        Err(SimError::NoSession { .. })
    ));
    assert!(matches!(
        sim.user_info("wxunknown", "o"),
        Err(SimError::UnknownApp(_))
    ));
    assert!(matches!(
        sim.login("wxunknown", "o", None),
        Err(SimError::UnknownApp(_))
    ));
}
