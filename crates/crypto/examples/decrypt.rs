//! Decrypts WeChat's official `encryptedData` sample, checks its watermark, and checks the
//! `rawData` signature of WeChat's published example.
//!
//! Run it with `cargo run -p wxlink-crypto --example decrypt`.
//! A server does the same with what the mini program sends and the `session_key` it got from
//! code2Session.

use std::error::Error;

use wxlink_crypto::{
    DecryptError, WatermarkError, check_session_signature, check_watermark, decrypt_user_data,
    verify_raw_data_signature,
};

/// The appid the sample was encrypted for.
const APPID: &str = "wx4f4bc4dec97d474b";
/// The user's session key, as code2Session returned it.
const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
/// What `wx.getUserInfo` gave the mini program.
const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

fn main() -> Result<(), Box<dyn Error>> {
    // 1. Decrypt. A wrong key or iv almost always shows as bad padding.
    let user = decrypt_user_data(SESSION_KEY, IV, ENCRYPTED_DATA)?;
    println!("openId   {}", user.open_id);
    println!("unionId  {:?}", user.union_id);
    println!("nickName {:?}", user.nick_name);
    assert_eq!(user.open_id, "oGZUI0egBJY1zhBYw2KhdUfwVJJE");

    let wrong_key = "AAAAAAAAAAAAAAAAAAAAAA==";
    match decrypt_user_data(wrong_key, IV, ENCRYPTED_DATA) {
        // Log the variant; answer the client the same for every variant.
        Err(error @ DecryptError::BadPadding) => println!("wrong key: {error}"),
        other => return Err(format!("a wrong key must fail with bad padding: {other:?}").into()),
    }

    // 2. The watermark ties the data to our mini program: always check the appid.
    // The sample is from 2016, so we pass its own time as "now"; a server passes its clock.
    let now = user.watermark.timestamp + 10;
    check_watermark(&user.watermark, APPID, now, Some(300))?;
    println!(
        "watermark ok: appid {} at {}",
        user.watermark.appid, user.watermark.timestamp
    );
    match check_watermark(&user.watermark, "wx_another_app", now, Some(300)) {
        Err(error @ WatermarkError::AppMismatch { .. }) => println!("refused: {error}"),
        other => return Err(format!("another appid must be refused: {other:?}").into()),
    }
    match check_watermark(&user.watermark, APPID, now + 3600, Some(300)) {
        Err(error @ WatermarkError::Expired { .. }) => println!("refused: {error}"),
        other => return Err(format!("old data must be refused: {other:?}").into()),
    }

    // 3. The rawData signature: SHA-1 over rawData and the session key's base64 text.
    // These are the values of WeChat's "开放数据校验与解密" page.
    let raw_data = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    let signature = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
    let key = "HyVFkGl5F5OQWJZZaNzBBg==";
    if !verify_raw_data_signature(raw_data, key, signature) {
        return Err("the published rawData signature must verify".into());
    }
    println!("rawData signature ok");
    if verify_raw_data_signature(&raw_data.replace("Band", "Bond"), key, signature) {
        return Err("a changed rawData must not verify".into());
    }
    println!("changed rawData refused");

    // 4. The signature wxa/checksession wants, to ask WeChat whether a stored key is current.
    let check = check_session_signature(SESSION_KEY);
    assert_eq!(
        check,
        "7154f9f8b4b76b92f541cbf0e37d48840fa06e5e42da92a6f80168a1516a4735"
    );
    println!("checksession signature {check}");
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
