//! Bot API method parameters.
//!
//! The Bot API accepts parameters in the query string, a JSON body or a
//! form-urlencoded body (teloxide sends JSON, curl users send forms), and is
//! lenient about types: `"42"` is as good a `chat_id` as `42`. Parameters
//! are therefore merged into one JSON object and read through typed getters.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::reply::ApiError;

#[derive(Debug, Default)]
pub(crate) struct Params(Map<String, Value>);

impl Params {
    /// Merges the query string and the body; body values win.
    pub(crate) fn parse(
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, ApiError> {
        let mut params = Map::new();
        if let Some(query) = query {
            for (key, value) in decode_form(query.as_bytes()) {
                params.insert(key, Value::String(value));
            }
        }
        let content_type = content_type.unwrap_or("").to_ascii_lowercase();
        let is_json = content_type.starts_with("application/json")
            || (content_type.is_empty() && body.trim_ascii_start().starts_with(b"{"));
        if body.trim_ascii().is_empty() {
            // Nothing to merge.
        } else if is_json {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(fields)) => params.extend(fields),
                Ok(_) => return Err(ApiError::bad_request("parameters must be a JSON object")),
                Err(_) => return Err(ApiError::bad_request("can't parse JSON object")),
            }
        } else if content_type.starts_with("multipart/") {
            return Err(ApiError::bad_request(
                "multipart/form-data is read by Params::parse_request",
            ));
        } else {
            for (key, value) in decode_form(body) {
                params.insert(key, Value::String(value));
            }
        }
        Ok(Self(params))
    }

    /// [`Params::parse`], and `multipart/form-data` too (its text fields; files are not
    /// kept: the sandbox sends no media).
    pub(crate) async fn parse_request(
        query: Option<&str>,
        content_type: Option<&str>,
        body: bytes::Bytes,
    ) -> Result<Self, ApiError> {
        let Some(boundary) = content_type
            .filter(|t| t.to_ascii_lowercase().starts_with("multipart/"))
            .map(multer::parse_boundary)
        else {
            return Self::parse(query, content_type, &body);
        };
        let boundary = boundary.map_err(|_| ApiError::bad_request("multipart boundary missing"))?;
        let mut params = Self::parse(query, None, b"")?;
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        loop {
            let field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(_) => return Err(ApiError::bad_request("can't parse multipart/form-data")),
            };
            let Some(name) = field.name().map(str::to_owned) else {
                continue;
            };
            if field.file_name().is_some() {
                continue;
            }
            let text = field
                .text()
                .await
                .map_err(|_| ApiError::bad_request("can't parse multipart/form-data"))?;
            params.0.insert(name, Value::String(text));
        }
        Ok(params)
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }

    /// A string parameter; numbers and booleans are taken as their text.
    pub(crate) fn string(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.get(key)? {
            Value::String(text) => Some(Cow::Borrowed(text)),
            Value::Number(number) => Some(Cow::Owned(number.to_string())),
            Value::Bool(flag) => Some(Cow::Owned(flag.to_string())),
            _ => None,
        }
    }

    /// An integer parameter given as a JSON number or a decimal string.
    pub(crate) fn integer(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    /// A boolean flag given as a JSON boolean (teloxide), or as `true`/`false`
    /// or `1`/`0` in a form or the query string; anything else is unset.
    pub(crate) fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(flag) => Some(*flag),
            Value::Number(number) => match number.as_i64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// `chat_id` as a numeric id. The sandbox knows no usernames, so an
    /// `@channel` (or anything not numeric) is a chat that does not exist.
    pub(crate) fn chat_id(&self) -> Result<i64, ApiError> {
        match self.string("chat_id") {
            None => Err(ApiError::bad_request("chat_id is empty")),
            Some(text) if text.trim().is_empty() => Err(ApiError::bad_request("chat_id is empty")),
            Some(_) => self
                .integer("chat_id")
                .filter(|&id| id != 0)
                .ok_or_else(ApiError::chat_not_found),
        }
    }
}

/// Decodes `application/x-www-form-urlencoded` pairs (`+` is a space,
/// invalid `%` escapes are kept literally, invalid UTF-8 is replaced).
pub(crate) fn decode_form(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        let hex = |offset: usize| {
            input
                .get(i + offset)
                .and_then(|&d| char::from(d).to_digit(16))
        };
        match (b, hex(1), hex(2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits are below 256, so the cast is lossless.
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        assert_eq!(
            decode_form(b"chat_id=-100&text=a+b%20c%21&x&bad=%zz%4"),
            vec![
                ("chat_id".to_owned(), "-100".to_owned()),
                ("text".to_owned(), "a b c!".to_owned()),
                ("x".to_owned(), String::new()),
                ("bad".to_owned(), "%zz%4".to_owned()),
            ]
        );
        assert_eq!(
            decode_form("text=%F0%9F%98%80".as_bytes()),
            vec![("text".to_owned(), "😀".to_owned())]
        );
    }

    #[test]
    fn body_overrides_query() {
        let params = Params::parse(
            Some("chat_id=1&text=q"),
            Some("application/json"),
            br#"{"chat_id": 2}"#,
        )
        .expect("valid");
        assert_eq!(params.chat_id(), Ok(2));
        assert_eq!(params.string("text").as_deref(), Some("q"));
    }

    #[test]
    fn form_body_and_sniffed_json() {
        let form = Params::parse(
            None,
            Some("application/x-www-form-urlencoded"),
            b"chat_id=42&text=hi",
        )
        .expect("valid");
        assert_eq!(form.chat_id(), Ok(42));
        let json = Params::parse(None, None, br#"{"chat_id":"7"}"#).expect("valid");
        assert_eq!(json.chat_id(), Ok(7));
    }

    #[test]
    fn booleans_from_json_and_forms() {
        let json = |body: &str| {
            Params::parse(None, Some("application/json"), body.as_bytes()).expect("valid")
        };
        assert_eq!(json(r#"{"f":true}"#).boolean("f"), Some(true));
        assert_eq!(json(r#"{"f":false}"#).boolean("f"), Some(false));
        assert_eq!(json(r#"{"f":1}"#).boolean("f"), Some(true));
        assert_eq!(json(r#"{"f":"yes"}"#).boolean("f"), None);
        assert_eq!(json(r#"{"f":null}"#).boolean("f"), None);
        assert_eq!(json("{}").boolean("f"), None);
        let form = Params::parse(
            Some("g=0"),
            Some("application/x-www-form-urlencoded"),
            b"f=True",
        )
        .expect("valid");
        assert_eq!(form.boolean("f"), Some(true));
        assert_eq!(form.boolean("g"), Some(false));
    }

    #[test]
    fn chat_id_errors() {
        let parse = |body: &str| {
            Params::parse(None, Some("application/json"), body.as_bytes()).expect("valid")
        };
        assert_eq!(
            parse(r#"{"chat_id":"@herald"}"#).chat_id(),
            Err(ApiError::chat_not_found())
        );
        assert_eq!(
            parse(r#"{"chat_id":1.5}"#).chat_id(),
            Err(ApiError::chat_not_found())
        );
        assert_eq!(
            parse("{}").chat_id(),
            Err(ApiError::bad_request("chat_id is empty"))
        );
        assert!(Params::parse(None, Some("application/json"), b"{").is_err());
        assert!(Params::parse(None, Some("application/json"), b"[1]").is_err());
    }

    #[tokio::test]
    async fn multipart_text_fields_are_read_and_files_left_out() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\nhttp://127.0.0.1:9/hook\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"certificate\"; filename=\"c.pem\"\r\n\r\nPEM\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"secret_token\"\r\n\r\nabc_1\r\n--XyZ--\r\n";
        let params = Params::parse_request(
            Some("drop_pending_updates=true"),
            Some("multipart/form-data; boundary=XyZ"),
            bytes::Bytes::from(body),
        )
        .await
        .expect("valid multipart");
        assert_eq!(
            params.string("url").as_deref(),
            Some("http://127.0.0.1:9/hook")
        );
        assert_eq!(params.string("secret_token").as_deref(), Some("abc_1"));
        assert_eq!(params.boolean("drop_pending_updates"), Some(true));
        assert!(params.string("certificate").is_none());
        let broken = Params::parse_request(
            None,
            Some("multipart/form-data"),
            bytes::Bytes::from_static(b"x"),
        )
        .await;
        assert!(broken.is_err());
    }
}
