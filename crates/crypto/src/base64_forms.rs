//! The base64 forms this crate accepts, and why it refuses the others.
//!
//! WeChat hands out `session_key`, `iv` and `encryptedData` in the standard alphabet (RFC 4648 §4)
//! with `=` padding.
//! The one kind of damage that really happens on the way to the server is form decoding: a client
//! that puts the values into a query string or an `application/x-www-form-urlencoded` body without
//! percent-encoding them gets every `+` turned into a space.
//! The standard alphabet contains no space, so turning each space back into `+` is unambiguous,
//! and this module does exactly that before decoding.
//! Everything else is refused rather than guessed at: the URL-safe alphabet (`-`, `_`), missing or
//! extra `=` padding, line breaks, tabs and other whitespace, and non-zero trailing bits.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Why a base64 input was refused.
///
/// Offsets count bytes of the input after spaces were turned back into `+`, which does not move
/// anything, so they also point into the string the caller passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Error {
    /// A byte outside the standard alphabet, or a `=` before the end.
    #[error("invalid character {} at offset {offset}{}", Escaped(*byte), alphabet_hint(*byte))]
    InvalidCharacter {
        /// Byte offset of the offending character.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// The number of base64 symbols cannot encode whole bytes (for example one symbol too many).
    #[error("invalid length: {symbols} symbols cannot encode whole bytes")]
    InvalidLength {
        /// The number of symbols seen.
        symbols: usize,
    },
    /// The last symbol carries bits that no byte uses, the mark of truncated or damaged input.
    #[error("last symbol at offset {offset} has trailing bits set (truncated or damaged input)")]
    InvalidLastSymbol {
        /// Byte offset of the last symbol.
        offset: usize,
    },
    /// The `=` padding is missing, incomplete or superfluous.
    #[error("missing or wrong '=' padding")]
    InvalidPadding,
}

/// Prints a byte as an escaped ASCII character, so that control characters stay readable in logs.
struct Escaped(u8);

impl fmt::Display for Escaped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'", self.0.escape_ascii())
    }
}

fn alphabet_hint(byte: u8) -> &'static str {
    match byte {
        b'-' | b'_' => " (the URL-safe alphabet is not accepted)",
        _ => "",
    }
}

/// Decodes one of the accepted forms: standard alphabet with canonical `=` padding, where any space
/// is read as the `+` that form decoding turned into it.
///
/// Servers use it to refuse malformed `encryptedData` or `iv` before any other work, with the
/// same rules the decryption functions apply.
///
/// ```
/// assert_eq!(wxlink_crypto::decode_base64("aGk=")?, b"hi");
/// assert_eq!(wxlink_crypto::decode_base64("+w==")?, wxlink_crypto::decode_base64(" w==")?);
/// assert!(wxlink_crypto::decode_base64("aGk").is_err());
/// # Ok::<(), wxlink_crypto::Base64Error>(())
/// ```
pub fn decode(input: &str) -> Result<Vec<u8>, Base64Error> {
    let repaired = if input.contains(' ') {
        Cow::Owned(input.replace(' ', "+"))
    } else {
        Cow::Borrowed(input)
    };
    STANDARD
        .decode(repaired.as_bytes())
        .map_err(|err| match err {
            base64::DecodeError::InvalidByte(offset, byte) => {
                Base64Error::InvalidCharacter { offset, byte }
            }
            base64::DecodeError::InvalidLength(symbols) => Base64Error::InvalidLength { symbols },
            base64::DecodeError::InvalidLastSymbol { offset, .. } => {
                Base64Error::InvalidLastSymbol { offset }
            }
            base64::DecodeError::InvalidPadding => Base64Error::InvalidPadding,
        })
}

/// Encodes in the form WeChat uses: standard alphabet with `=` padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_with_padding_decodes() {
        assert_eq!(decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode("").unwrap(), b"");
    }

    #[test]
    fn spaces_are_read_as_plus() {
        assert_eq!(decode(" /8=").unwrap(), decode("+/8=").unwrap());
    }

    #[test]
    fn url_safe_alphabet_is_refused_with_a_hint() {
        let err = decode("-_8=").unwrap_err();
        assert_eq!(
            err,
            Base64Error::InvalidCharacter {
                offset: 0,
                byte: b'-'
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid character '-' at offset 0 (the URL-safe alphabet is not accepted)"
        );
    }

    #[test]
    fn missing_padding_is_refused() {
        assert_eq!(decode("+/8").unwrap_err(), Base64Error::InvalidPadding);
    }

    #[test]
    fn newlines_are_refused_and_shown_escaped() {
        let err = decode("AAAA\nAAAA").unwrap_err();
        assert_eq!(
            err,
            Base64Error::InvalidCharacter {
                offset: 4,
                byte: b'\n'
            }
        );
        assert_eq!(err.to_string(), r"invalid character '\n' at offset 4");
    }

    #[test]
    fn trailing_bits_are_refused() {
        assert_eq!(
            decode("AB==").unwrap_err(),
            Base64Error::InvalidLastSymbol { offset: 1 }
        );
    }

    #[test]
    fn encode_is_padded_standard() {
        assert_eq!(encode(&[0xfb, 0xff]), "+/8=");
    }
}
