//! The console's words in English and Chinese, picked by the browser's `Accept-Language`. The
//! English labels of the search field and the buttons are part of the contract (other teams
//! script the console by them): docs/contract.md lists them.

use std::collections::BTreeMap;

use axum::http::HeaderMap;

/// A language of the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English, the default.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// The language the browser prefers among the two, by `Accept-Language` weights (RFC 9110
    /// §12.5.4); English when it names neither.
    pub fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Lang::En;
        };
        let mut best = (Lang::En, 0.0_f32);
        for range in value.split(',') {
            let mut parts = range.split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = match tag.split('-').next() {
                Some("zh") => Lang::Zh,
                Some("en") => Lang::En,
                _ => continue,
            };
            if q > best.1 {
                best = (lang, q);
            }
        }
        best.0
    }

    /// The `lang` attribute of the page.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// Every label, for the templates' `t`.
    pub fn labels(self) -> BTreeMap<&'static str, &'static str> {
        LABELS
            .iter()
            .map(|(key, en, zh)| {
                (
                    *key,
                    match self {
                        Lang::En => *en,
                        Lang::Zh => *zh,
                    },
                )
            })
            .collect()
    }

    /// One label.
    pub fn t(self, key: &str) -> &'static str {
        LABELS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or("", |(_, en, zh)| match self {
                Lang::En => en,
                Lang::Zh => zh,
            })
    }
}

/// (key, English, Chinese).
const LABELS: &[(&str, &str, &str)] = &[
    ("title", "wxlink support console", "wxlink 客服控制台"),
    ("search", "Search", "搜索"),
    (
        "search_hint",
        "User id, openid, unionid or phone number",
        "用户 ID、openid、unionid 或手机号",
    ),
    ("sign_in", "Sign in", "登录"),
    ("sign_out", "Sign out", "退出登录"),
    ("operator", "Operator", "操作员"),
    ("password", "Password", "密码"),
    (
        "code",
        "Authenticator code (if enabled)",
        "动态验证码（如已启用）",
    ),
    ("new_password", "New password", "新密码"),
    ("change_password", "Change password", "修改密码"),
    (
        "password_expired",
        "This password was for one sign-in: choose your own before going on.",
        "此密码仅限一次登录：请先设置您自己的密码。",
    ),
    ("merge", "Merge", "合并"),
    ("split", "Split", "拆分"),
    ("unlink", "Unlink", "解绑"),
    ("revoke", "Revoke sessions", "撤销会话"),
    ("cancel", "Cancel account", "注销账号"),
    ("confirm", "Confirm", "确认"),
    ("preview", "Preview", "预览"),
    ("duplicates", "Possible duplicates", "疑似重复账号"),
    (
        "duplicates_hint",
        "Users that share a verified phone number and are not one user, newest first.",
        "共用同一已验证手机号但不是同一用户的账号，最新的在前。",
    ),
    ("no_results", "Nothing found.", "没有找到。"),
    ("user", "User", "用户"),
    ("status", "Status", "状态"),
    ("identities", "Identities", "身份"),
    ("phone", "Phone number", "手机号"),
    ("created", "Created", "创建时间"),
    ("merged_from", "Merged into it", "已并入的用户"),
    ("app", "App", "应用"),
    ("kind", "Kind", "类型"),
    ("vouches", "Vouches for the unionid", "为 unionid 作证"),
    ("live_sessions", "Live sessions", "有效会话"),
    ("timeline", "Timeline", "时间线"),
    ("when", "When", "时间"),
    ("event", "Event", "事件"),
    ("detail", "Detail", "详情"),
    ("into", "User that stays", "保留的用户"),
    ("from", "User merged away", "被合并的用户"),
    ("moves", "What moves", "迁移内容"),
    (
        "type_target",
        "Type the id of the user that stays to confirm",
        "输入保留用户的 ID 以确认",
    ),
    ("back", "Back", "返回"),
    (
        "split_pick",
        "Identities that leave this user",
        "离开此用户的身份",
    ),
    ("split_into", "They go to", "迁往"),
    ("new_user", "a new user", "新用户"),
    ("provisional", "provisional", "临时"),
    ("linked", "linked", "已关联 unionid"),
    ("merged", "merged into", "已合并至"),
    ("cancelled", "cancelled", "已注销"),
    ("yes", "yes", "是"),
    ("no", "no", "否"),
];
