//! wxlink's configuration file for tests and the benchmark: tables in the order they were first
//! named, keys in the order they were set, raw lines where a test needs TOML of its own.
//!
//! ```
//! use wxlink_tests::config::WxlinkToml;
//! let toml = WxlinkToml::new("127.0.0.1:0", "sqlite://wxlink.db", "http://127.0.0.1:9")
//!     .app("wxa1b2c3d4e5f60001", "s3cret")
//!     .to_string();
//! assert!(toml.starts_with("[server]\nbind = \"127.0.0.1:0\"\n"));
//! ```

use std::fmt;

/// A wxlink TOML configuration being built.
#[derive(Debug, Clone, Default)]
pub struct WxlinkToml {
    tables: Vec<(String, String)>,
    trailer: String,
}

impl WxlinkToml {
    /// The three tables every configuration needs: `[server] bind`, `[database] url` and
    /// `[wechat] api_base`.
    pub fn new(bind: &str, database_url: &str, wechat_api_base: &str) -> Self {
        Self::default()
            .string("server", "bind", bind)
            .string("database", "url", database_url)
            .string("wechat", "api_base", wechat_api_base)
    }

    /// `key = value` in `[table]`, `value` as TOML (a number, a list, `true`).
    pub fn value(mut self, table: &str, key: &str, value: impl fmt::Display) -> Self {
        self.table(table).push_str(&format!("{key} = {value}\n"));
        self
    }

    /// `key = "text"` in `[table]`, quoted as a TOML string.
    pub fn string(self, table: &str, key: &str, text: &str) -> Self {
        self.value(table, key, toml_str(text))
    }

    /// Lines appended to `[table]` as they are.
    pub fn lines(mut self, table: &str, lines: &str) -> Self {
        let body = self.table(table);
        body.push_str(lines);
        if !lines.is_empty() && !lines.ends_with('\n') {
            body.push('\n');
        }
        self
    }

    /// `[apps.APPID] secret = "..."`
    pub fn app(self, appid: &str, secret: &str) -> Self {
        self.string(&format!("apps.{appid}"), "secret", secret)
    }

    /// TOML appended after every table, as it is (e.g. more tables of a test's own).
    pub fn trailer(mut self, toml: &str) -> Self {
        self.trailer.push_str(toml);
        self
    }

    fn table(&mut self, name: &str) -> &mut String {
        let index = match self.tables.iter().position(|(n, _)| n == name) {
            Some(index) => index,
            None => {
                self.tables.push((name.to_owned(), String::new()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[index].1
    }
}

impl fmt::Display for WxlinkToml {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, body) in &self.tables {
            write!(f, "[{name}]\n{body}\n")?;
        }
        f.write_str(&self.trailer)
    }
}

/// A TOML basic string.
pub fn toml_str(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_in_their_table_whatever_the_order_they_are_set_in() {
        let toml = WxlinkToml::new("127.0.0.1:1", "sqlite://a \"b\".db", "http://x")
            .value("session", "ttl_secs", 5)
            .value("server", "max_body_bytes", 10)
            .lines("security", "")
            .trailer("[rate_limit]\nenabled = false\n")
            .to_string();
        assert_eq!(
            toml,
            "[server]\nbind = \"127.0.0.1:1\"\nmax_body_bytes = 10\n\n\
             [database]\nurl = \"sqlite://a \\\"b\\\".db\"\n\n\
             [wechat]\napi_base = \"http://x\"\n\n\
             [session]\nttl_secs = 5\n\n\
             [security]\n\n\
             [rate_limit]\nenabled = false\n"
        );
    }
}
