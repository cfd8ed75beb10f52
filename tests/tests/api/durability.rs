//! An acknowledged login survives the process being killed (SIGKILL, no shutdown).

use crate::helpers::{APP_A, APP_B, Backend, Options, TestApp, signed_body};

on_both_backends!(acknowledged_logins_survive_sigkill);

async fn acknowledged_logins_survive_sigkill(backend: Backend) {
    let mut app = TestApp::spawn(backend, Options::default()).await;

    let mut acknowledged = Vec::new();
    for i in 0..30 {
        let appid = if i % 3 == 0 { APP_A } else { APP_B };
        let openid = format!("durable-{i}");
        let unionid = format!("durable-union-{i}");
        let login = app.login(appid, &openid, Some(&unionid)).await;
        acknowledged.push((appid, openid, login));
    }
    let key_file = app.dir().join("wxlink.key");
    let data_key = std::fs::read_to_string(&key_file).expect("the data key file");

    app.kill_and_restart().await;

    assert_eq!(
        std::fs::read_to_string(&key_file).expect("the data key file"),
        data_key,
        "a restart reuses the data key file"
    );
    for (appid, openid, login) in &acknowledged {
        let me = app.me_ok(&login.token).await;
        assert_eq!(me.user_id, login.user_id, "{appid}/{openid}");
        assert_eq!(me.unionid_linked, login.unionid_linked, "{appid}/{openid}");
        assert!(
            me.identities
                .contains(&((*appid).to_owned(), openid.clone())),
            "{appid}/{openid}: {me:?}"
        );
    }

    // The stored session_keys survived too (sealed with the same data key): a provisional
    // user's data opens with the key stored before the kill.
    let (appid, openid, login) = &acknowledged[0];
    assert!(login.needs_user_info);
    let info = app.wx_user_info(appid, openid);
    let linked = app.user_info_ok(&login.token, &signed_body(&info)).await;
    assert!(linked.unionid_linked && !linked.merged, "{linked:?}");
    assert_eq!(linked.user_id, login.user_id);
}
