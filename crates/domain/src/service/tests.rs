use super::*;
use crate::ports::{MockWeChatSessions, WeChatSession};

#[test]
fn mock_compiles() {
    let mut w = MockWeChatSessions::new();
    w.expect_code2session()
        .returning(|_, _| Box::pin(async { Err(crate::error::WeChatError::InvalidCode) }));
    let _ = w;
    let _ = std::marker::PhantomData::<WeChatSession>;
}
