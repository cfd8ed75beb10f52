//! The call counters tests read: per endpoint, per appid, bounded.

use super::{MAX_ID_LEN, State};
use crate::model::CallCounts;

const MAX_COUNTED_APPIDS: usize = 1_000;

impl State {
    pub(crate) fn calls(&self) -> CallCounts {
        self.calls.clone()
    }

    pub(crate) fn reset_calls(&mut self) {
        self.calls = CallCounts::default();
        for app in self.apps.values_mut() {
            app.tokens.force_refresh_calls = 0;
        }
    }

    /// Counts a call of `path` for `appid` (as sent, or the access_token's app).
    pub(crate) fn count_call(&mut self, path: &str, appid: Option<&str>) {
        let endpoint = self.calls.endpoints.entry(path.to_owned()).or_default();
        endpoint.total += 1;
        let appid = appid.unwrap_or_default();
        let key = if appid.len() > MAX_ID_LEN {
            "(invalid)".to_owned()
        } else if endpoint.by_appid.contains_key(appid)
            || endpoint.by_appid.len() < MAX_COUNTED_APPIDS
        {
            appid.to_owned()
        } else {
            "(other)".to_owned()
        };
        *endpoint.by_appid.entry(key).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CODE2SESSION_PATH;

    #[test]
    fn counters_cap_distinct_appids() {
        let mut state = State::default();
        for i in 0..(MAX_COUNTED_APPIDS + 10) {
            state.count_call(CODE2SESSION_PATH, Some(&format!("wx{i}")));
        }
        let calls = state.calls();
        assert_eq!(
            calls.total(CODE2SESSION_PATH),
            (MAX_COUNTED_APPIDS + 10) as u64
        );
        assert_eq!(calls.for_app(CODE2SESSION_PATH, "(other)"), 10);
    }
}
