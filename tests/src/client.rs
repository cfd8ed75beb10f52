//! wxlink's API as a test calls it, the same at both test levels: an implementation only says
//! how a request reaches wxlink (over TCP to a `wxlink` process, or through the router
//! in-process); the typed requests are written once, here.

use std::future::Future;

use http::Method;
use serde_json::{Value, json};
use wxlink_wechat_sim::{Login, SimHandle, UserInfo};

use crate::answers::{LoginResponse, Me, Reply, UserInfoResponse};

/// A wxlink under test with its simulated WeChat.
pub trait Api: Sync {
    /// The simulated WeChat this wxlink talks to.
    fn sim(&self) -> &SimHandle;

    /// Any request; the answer is read whole. Transport failures fail the test.
    fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> impl Future<Output = Reply> + Send;

    // --- raw HTTP ---------------------------------------------------------------------------

    /// `GET path`
    fn get(&self, path: &str, token: Option<&str>) -> impl Future<Output = Reply> + Send {
        self.call(Method::GET, path, token, None, None)
    }

    /// `POST path` with a JSON body.
    fn post_json(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> impl Future<Output = Reply> + Send {
        let body = body.to_string().into_bytes();
        self.post_raw(path, token, Some("application/json"), body)
    }

    /// `POST path` with any bytes.
    fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Reply> + Send {
        self.call(Method::POST, path, token, content_type, Some(body.into()))
    }

    // --- the API, typed ---------------------------------------------------------------------

    /// `POST /v1/wechat/login` with a code.
    fn login_with_code(&self, appid: &str, code: &str) -> impl Future<Output = Reply> + Send {
        let body = json!({"appid": appid, "code": code});
        async move { self.post_json("/v1/wechat/login", None, &body).await }
    }

    /// What `wx.login` does on the phone: a fresh code, and a new session key for the user.
    fn wx_login(&self, appid: &str, openid: &str, unionid: Option<&str>) -> Login {
        self.sim()
            .login(appid, openid, unionid)
            .unwrap_or_else(|e| panic!("simulated wx.login for {appid}/{openid}: {e}"))
    }

    /// `wx.login` then `POST /v1/wechat/login`, which must succeed.
    fn login(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> impl Future<Output = LoginResponse> + Send {
        async move { self.login_full(appid, openid, unionid).await.1 }
    }

    /// As [`Api::login`], also giving what `wx.login` produced (its session key).
    fn login_full(
        &self,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> impl Future<Output = (Login, LoginResponse)> + Send {
        let wx = self.wx_login(appid, openid, unionid);
        async move {
            let reply = self.login_with_code(appid, &wx.code).await;
            (wx, LoginResponse::parse(&reply))
        }
    }

    /// What `wx.getUserInfo` gives the mini program, under the user's current session key.
    fn wx_user_info(&self, appid: &str, openid: &str) -> UserInfo {
        self.sim()
            .user_info(appid, openid)
            .unwrap_or_else(|e| panic!("simulated wx.getUserInfo for {appid}/{openid}: {e}"))
    }

    /// `POST /v1/wechat/user-info`
    fn user_info(&self, token: &str, body: &Value) -> impl Future<Output = Reply> + Send {
        self.post_json("/v1/wechat/user-info", Some(token), body)
    }

    /// `POST /v1/wechat/user-info`, which must succeed.
    fn user_info_ok(
        &self,
        token: &str,
        body: &Value,
    ) -> impl Future<Output = UserInfoResponse> + Send {
        async move { UserInfoResponse::parse(&self.user_info(token, body).await) }
    }

    /// The mini program sends what `wx.getUserInfo` gives it (signed) for `appid`/`openid`;
    /// it must succeed.
    fn share_user_info(
        &self,
        token: &str,
        appid: &str,
        openid: &str,
    ) -> impl Future<Output = UserInfoResponse> + Send {
        let body = crate::user_data::signed_body(&self.wx_user_info(appid, openid));
        async move { self.user_info_ok(token, &body).await }
    }

    /// What the `getPhoneNumber` button gives the mini program: a single-use phone code.
    fn wx_phone_code(
        &self,
        appid: &str,
        openid: &str,
        phone_number: &str,
        country_code: Option<&str>,
    ) -> String {
        self.sim()
            .phone_code(appid, openid, phone_number, country_code)
            .unwrap_or_else(|e| panic!("simulated getPhoneNumber for {appid}/{openid}: {e}"))
            .code
    }

    /// `POST /v1/wechat/phone-number` with a phone code.
    fn phone_number(&self, token: &str, code: &str) -> impl Future<Output = Reply> + Send {
        let body = json!({ "code": code });
        async move {
            self.post_json("/v1/wechat/phone-number", Some(token), &body)
                .await
        }
    }

    /// `GET /v1/me`
    fn me(&self, token: &str) -> impl Future<Output = Reply> + Send {
        self.get("/v1/me", Some(token))
    }

    /// `GET /v1/me`, which must refuse the token as `invalid_token` (`why`: the case).
    fn me_refused(&self, token: &str, why: &str) -> impl Future<Output = ()> + Send {
        async move {
            crate::answers::assert_error(&self.me(token).await, 401, "invalid_token", why);
        }
    }

    /// `GET /v1/me`, which must succeed.
    fn me_ok(&self, token: &str) -> impl Future<Output = Me> + Send {
        async move { Me::parse(&self.me(token).await) }
    }

    /// `DELETE /v1/me` with this body, or none: a request as any client may send it.
    fn cancel_with(&self, token: &str, body: Option<&Value>) -> impl Future<Output = Reply> + Send {
        let body = body.map(|b| b.to_string().into_bytes());
        let content_type = body.as_ref().map(|_| "application/json");
        self.call(Method::DELETE, "/v1/me", Some(token), content_type, body)
    }

    /// `DELETE /v1/me` as the person does it in a mini program: `wx.login` for a fresh code of
    /// (appid, openid), the identity the token logged in through, sent as the proof of presence.
    fn cancel(&self, token: &str, appid: &str, openid: &str) -> impl Future<Output = Reply> + Send {
        let body = json!({ "code": self.wx_login(appid, openid, None).code });
        async move { self.cancel_with(token, Some(&body)).await }
    }

    /// `POST /v1/logout`
    fn logout(&self, token: &str) -> impl Future<Output = Reply> + Send {
        self.call(Method::POST, "/v1/logout", Some(token), None, None)
    }
}
