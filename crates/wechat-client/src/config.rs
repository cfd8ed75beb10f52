//! How a [`WeChatClient`](crate::WeChatClient) talks to WeChat: where, how long, how often.

use std::time::Duration;

use url::Url;

use crate::Error;

/// WeChat's production API base.
pub const DEFAULT_API_BASE: &str = "https://api.weixin.qq.com";
/// The default total time budget of one call, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default number of retries after errcode -1 or a connection error.
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// The default first backoff delay; it doubles with each retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(50);

/// The largest `max_retries` accepted: more would only burn the time budget.
const MAX_RETRIES_LIMIT: u32 = 10;

/// Settings of a [`WeChatClient`](crate::WeChatClient).
///
/// Build one with [`ClientConfig::builder`], or take [`ClientConfig::default`] for production
/// WeChat with the default budget.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    api_base: Url,
    timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    jitter: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            api_base: default_api_base(),
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_base: DEFAULT_BACKOFF_BASE,
            jitter: true,
        }
    }
}

impl ClientConfig {
    /// Starts a builder with the defaults.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// The API base that endpoint paths are appended to.
    pub fn api_base(&self) -> &Url {
        &self.api_base
    }

    /// The total time budget of one call, retries and backoff included.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How many times a call is retried after errcode -1 or a connection error.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The delay before the first retry; it doubles with each further retry.
    pub fn backoff_base(&self) -> Duration {
        self.backoff_base
    }

    /// Whether backoff delays are randomized (between half and all of the nominal delay).
    pub fn jitter(&self) -> bool {
        self.jitter
    }
}

/// Builds a [`ClientConfig`]; every setting starts at its default.
#[derive(Clone, Debug, Default)]
pub struct ClientConfigBuilder {
    api_base: Option<String>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
    backoff_base: Option<Duration>,
    jitter: Option<bool>,
}

impl ClientConfigBuilder {
    /// Sets the API base, e.g. `http://127.0.0.1:8081` for a simulator.
    ///
    /// A path is kept as a prefix: with `http://host/wechat`, code2Session is called at
    /// `http://host/wechat/sns/jscode2session`.
    /// Default: [`DEFAULT_API_BASE`].
    pub fn api_base(mut self, api_base: impl Into<String>) -> Self {
        self.api_base = Some(api_base.into());
        self
    }

    /// Sets the total time budget of one call, retries included. Default: 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how many retries follow a first attempt that met errcode -1 or a connection error.
    /// Default: 2, at most 10.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// Sets the delay before the first retry; it doubles with each retry. Default: 50 ms.
    pub fn backoff_base(mut self, backoff_base: Duration) -> Self {
        self.backoff_base = Some(backoff_base);
        self
    }

    /// Turns backoff jitter on or off. Default: on.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = Some(jitter);
        self
    }

    /// Checks the settings and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if the API base is not an absolute `http` or `https` URL without
    /// query, fragment or credentials, if the timeout is zero, or if `max_retries` exceeds 10.
    pub fn build(self) -> Result<ClientConfig, Error> {
        let defaults = ClientConfig::default();
        let api_base = match self.api_base {
            Some(text) => parse_api_base(&text)?,
            None => defaults.api_base,
        };
        let timeout = self.timeout.unwrap_or(defaults.timeout);
        if timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "timeout must be greater than zero".into(),
            ));
        }
        let max_retries = self.max_retries.unwrap_or(defaults.max_retries);
        if max_retries > MAX_RETRIES_LIMIT {
            return Err(Error::InvalidConfig(format!(
                "max_retries must be at most {MAX_RETRIES_LIMIT}, got {max_retries}"
            )));
        }
        Ok(ClientConfig {
            api_base,
            timeout,
            max_retries,
            backoff_base: self.backoff_base.unwrap_or(defaults.backoff_base),
            jitter: self.jitter.unwrap_or(defaults.jitter),
        })
    }
}

fn default_api_base() -> Url {
    Url::parse(DEFAULT_API_BASE).expect("DEFAULT_API_BASE is a valid URL")
}

fn parse_api_base(text: &str) -> Result<Url, Error> {
    let url = Url::parse(text)
        .map_err(|e| Error::InvalidConfig(format!("api_base {text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig(format!(
            "api_base must use http or https, got {:?}",
            url.scheme()
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(Error::InvalidConfig(format!(
            "api_base {text:?} has no host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidConfig(
            "api_base must not carry a query or fragment".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidConfig(
            "api_base must not carry credentials".into(),
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = ClientConfig::default();
        assert_eq!(config.api_base().as_str(), "https://api.weixin.qq.com/");
        assert_eq!(config.timeout(), Duration::from_secs(5));
        assert_eq!(config.max_retries(), 2);
        assert_eq!(config.backoff_base(), Duration::from_millis(50));
        assert!(config.jitter());
    }

    #[test]
    fn builder_sets_everything() {
        let config = ClientConfig::builder()
            .api_base("http://127.0.0.1:9/prefix")
            .timeout(Duration::from_millis(300))
            .max_retries(0)
            .backoff_base(Duration::from_millis(1))
            .jitter(false)
            .build()
            .expect("valid config");
        assert_eq!(config.api_base().as_str(), "http://127.0.0.1:9/prefix");
        assert_eq!(config.timeout(), Duration::from_millis(300));
        assert_eq!(config.max_retries(), 0);
        assert!(!config.jitter());
    }

    #[test]
    fn builder_refuses_bad_settings() {
        for base in [
            "not a url",
            "ftp://host",
            "http://host/?a=b",
            "http://u:p@host",
        ] {
            let result = ClientConfig::builder().api_base(base).build();
            assert!(matches!(result, Err(Error::InvalidConfig(_))), "{base}");
        }
        let zero = ClientConfig::builder().timeout(Duration::ZERO).build();
        assert!(matches!(zero, Err(Error::InvalidConfig(_))));
        let many = ClientConfig::builder().max_retries(11).build();
        assert!(matches!(many, Err(Error::InvalidConfig(_))));
    }
}
