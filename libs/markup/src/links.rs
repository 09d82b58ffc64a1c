//! Links as Telegram checks them (TDLib's `LinkManager` and `parse_url`): a text link keeps only
//! an http(s), `tg:`, `ton:` or `tonsite:` URL, in its canonical form, and silently loses its
//! link otherwise; `tg://user?id=` makes a text mention and `tg://emoji?id=` a custom emoji.

use std::net::Ipv6Addr;

/// The largest user id Telegram accepts in a mention.
const MAX_USER_ID: i64 = (1 << 40) - 1;

/// TDLib's `is_space`: the bytes its parsers stop at (NUL stands for the end of the text).
pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0 | 0x0b)
}

/// TDLib's `to_integer_safe<int64>`: only the canonical decimal form (no sign but `-`, no
/// leading zeros).
pub(crate) fn to_integer_safe(text: &str) -> Option<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|value| value.to_string() == text)
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The canonical form of a link Telegram keeps in a text link (`get_checked_link`), or `None`
/// when it drops the link.
pub(crate) fn checked_link(link: &str) -> Option<String> {
    let (scheme, rest) = if let Some(rest) = strip_prefix_ignore_case(link, "tg:") {
        (Some("tg"), rest)
    } else if let Some(rest) = strip_prefix_ignore_case(link, "ton:") {
        (Some("ton"), rest)
    } else if let Some(rest) = strip_prefix_ignore_case(link, "tonsite:") {
        (Some("tonsite"), rest)
    } else {
        (None, link)
    };
    let rest = match scheme {
        Some(_) => rest.strip_prefix("//").unwrap_or(rest),
        None => rest,
    };
    let url = parse_url(rest)?;
    let Some(scheme) = scheme else {
        if !url.host.contains('.') && !url.is_ipv6 {
            return None;
        }
        return Some(url.to_url());
    };
    if strip_prefix_ignore_case(rest, "http://").is_some()
        || url.https
        || !url.userinfo.is_empty()
        || url.specified_port != 0
        || url.is_ipv6
    {
        return None;
    }
    let query = match url.query.strip_prefix('/') {
        Some(after) if after.starts_with('?') => after,
        _ => url.query.as_str(),
    };
    let host_ok = url.host.bytes().all(|b| {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || (scheme == "tonsite" && b == b'.')
    });
    host_ok.then(|| format!("{scheme}://{}{query}", url.host))
}

/// What TDLib's `parse_url` keeps of an http(s) URL.
struct HttpUrl {
    https: bool,
    userinfo: String,
    host: String,
    is_ipv6: bool,
    specified_port: u16,
    /// Starts with `/`.
    query: String,
}

impl HttpUrl {
    fn to_url(&self) -> String {
        let mut url = String::from(if self.https { "https://" } else { "http://" });
        if !self.userinfo.is_empty() {
            url.push_str(&self.userinfo);
            url.push('@');
        }
        url.push_str(&self.host);
        if self.specified_port > 0 {
            url.push(':');
            url.push_str(&self.specified_port.to_string());
        }
        url.push_str(&self.query);
        url
    }
}

/// `[https?://][userinfo@]host[:port][/query]`, as TDLib reads it (http when no scheme).
fn parse_url(url: &str) -> Option<HttpUrl> {
    let scheme_end = url
        .find([':', '/', '?', '#', '@', '[', ']'])
        .unwrap_or(url.len());
    let (https, rest) = match url[scheme_end..].strip_prefix("://") {
        Some(rest) => match url[..scheme_end].to_ascii_lowercase().as_str() {
            "http" => (false, rest),
            "https" => (true, rest),
            _ => return None,
        },
        None => (false, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, query) = rest.split_at(authority_end);

    // The port is after the last ':' not inside brackets or userinfo (never at position 0).
    let bytes = authority.as_bytes();
    let mut colon = bytes.len().saturating_sub(1);
    while colon > 0 && !matches!(bytes[colon], b':' | b']' | b'@') {
        colon -= 1;
    }
    let (userinfo_host, port) = if colon > 0 && bytes[colon] == b':' {
        let mut digits = &authority[colon + 1..];
        while digits.len() > 1 && digits.starts_with('0') {
            digits = &digits[1..];
        }
        let port = to_integer_safe(digits)
            .and_then(|port| u16::try_from(port).ok())
            .filter(|&port| port != 0)?;
        (&authority[..colon], port)
    } else {
        (authority, 0)
    };
    let (userinfo, host) = match userinfo_host.rfind('@') {
        Some(at) => (&userinfo_host[..at], &userinfo_host[at + 1..]),
        None => ("", userinfo_host),
    };
    let is_ipv6 = host.len() >= 2 && host.starts_with('[') && host.ends_with(']');
    if is_ipv6 && host[1..host.len() - 1].parse::<Ipv6Addr>().is_err() {
        return None;
    }
    if host.is_empty() || host == "." {
        return None;
    }

    let query = query.trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let mut canonical_query = String::with_capacity(query.len() + 1);
    if !query.starts_with('/') {
        canonical_query.push('/');
    }
    for c in query.chars() {
        if c <= ' ' {
            canonical_query.push_str(&format!("%{:02X}", c as u32));
        } else {
            canonical_query.push(c);
        }
    }

    let host = host.to_ascii_lowercase();
    let host_bytes = host.as_bytes();
    let mut i = 0;
    while i < host_bytes.len() {
        let c = host_bytes[i];
        let allowed = if is_ipv6 {
            i == 0
                || i + 1 == host_bytes.len()
                || c == b':'
                || c == b'.'
                || c.is_ascii_digit()
                || (b'a'..=b'f').contains(&c)
        } else if c == b'%' {
            let hex =
                |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
            if !(hex(host_bytes.get(i + 1)) && hex(host_bytes.get(i + 2))) {
                return None;
            }
            i += 2;
            true
        } else {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || b".-_!$,~*'();&+=".contains(&c)
                || c >= 0x80
        };
        if !allowed {
            return None;
        }
        i += 1;
    }

    Some(HttpUrl {
        https,
        userinfo: userinfo.to_owned(),
        host,
        is_ipv6,
        specified_port: port,
        query: canonical_query,
    })
}

/// The query of a `tg:` link to `host` (`tg://host?query`, `tg:host/?query`), lowercased, up to
/// `#`; `Err` says which part is missing.
fn tg_query(url: &str, host: &str) -> Result<String, TgLinkError> {
    let url = url.to_ascii_lowercase();
    let rest = url.strip_prefix("tg:").ok_or(TgLinkError::Scheme)?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let after_host = rest.strip_prefix(host).ok_or(TgLinkError::Host)?;
    if after_host
        .bytes()
        .next()
        .is_some_and(|b| !matches!(b, b'/' | b'?' | b'#'))
    {
        return Err(TgLinkError::Host);
    }
    let after_host = after_host.strip_prefix('/').unwrap_or(after_host);
    let query = after_host.strip_prefix('?').ok_or(TgLinkError::Query)?;
    Ok(query.split('#').next().unwrap_or_default().to_owned())
}

enum TgLinkError {
    Scheme,
    Host,
    Query,
}

/// The first `id` parameter of a query.
fn id_parameter(query: &str) -> Option<&str> {
    if query.is_empty() {
        return None;
    }
    query.split('&').find_map(|parameter| {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        (key == "id").then_some(value)
    })
}

/// The user of a `tg://user?id=…` link (`get_link_user_id`), when it names a valid one.
pub(crate) fn link_user_id(url: &str) -> Option<i64> {
    let query = tg_query(url, "user").ok()?;
    to_integer_safe(id_parameter(&query)?).filter(|&id| 0 < id && id <= MAX_USER_ID)
}

/// The custom emoji of a `tg://emoji?id=…` link (`get_link_custom_emoji_id`). `Ok(0)` is an
/// invalid id Telegram drops without an error.
pub(crate) fn link_custom_emoji_id(url: &str) -> Result<i64, String> {
    let query = tg_query(url, "emoji").map_err(|err| {
        match err {
            TgLinkError::Scheme => "Custom emoji URL must have scheme tg",
            TgLinkError::Host => "Custom emoji URL must have host \"emoji\"",
            TgLinkError::Query => "Custom emoji URL must have an emoji identifier",
        }
        .to_owned()
    })?;
    let id = id_parameter(&query)
        .ok_or_else(|| "Custom emoji URL must have an emoji identifier".to_owned())?;
    to_integer_safe(id).ok_or_else(|| "Invalid custom emoji identifier specified".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_take_telegrams_canonical_form() {
        let checked = |link| checked_link(link);
        assert_eq!(
            checked("telegram.org").as_deref(),
            Some("http://telegram.org/")
        );
        assert_eq!(
            checked("HTTPS://Telegram.ORG/Path?Q=1").as_deref(),
            Some("https://telegram.org/Path?Q=1")
        );
        assert_eq!(
            checked("https://telegram.dog?").as_deref(),
            Some("https://telegram.dog/?")
        );
        assert_eq!(
            checked("http://a.b:0080/x y").as_deref(),
            Some("http://a.b:80/x%20y")
        );
        assert_eq!(
            checked("https://user@x.y/").as_deref(),
            Some("https://user@x.y/")
        );
        assert_eq!(checked("http://[::1]/").as_deref(), Some("http://[::1]/"));
        assert_eq!(
            checked("tg://resolve?domain=herald").as_deref(),
            Some("tg://resolve?domain=herald")
        );
        assert_eq!(checked("TG:Resolve").as_deref(), Some("tg://resolve/"));
        assert_eq!(
            checked("tonsite://a.ton/").as_deref(),
            Some("tonsite://a.ton/")
        );
        // Dropped: no dot in the host, other schemes, bad ports and hosts.
        for bad in [
            "",
            "asdasd",
            "ftp://x.y/",
            "http://x.y:70000/",
            "http://x.y:0/",
            "http://x\"y.z/",
            "tg://a.b",
            "tg://x:1",
            "http://[zz]/",
        ] {
            assert_eq!(checked(bad), None, "{bad}");
        }
    }

    #[test]
    fn mentions_and_custom_emoji() {
        assert_eq!(link_user_id("tg://user?id=123456"), Some(123_456));
        assert_eq!(link_user_id("TG:USER/?foo=1&id=7#x"), Some(7));
        assert_eq!(link_user_id("tg://user?id=0"), None);
        assert_eq!(link_user_id("tg://user?id=01"), None);
        assert_eq!(link_user_id("tg://users?id=1"), None);
        assert_eq!(link_user_id("tg://user?id=1099511627776"), None);
        assert_eq!(
            link_custom_emoji_id("TG://EMoJI/?test=1&id=25#id=32"),
            Ok(25)
        );
        assert_eq!(
            link_custom_emoji_id("t://emoji?id=1"),
            Err("Custom emoji URL must have scheme tg".into())
        );
        assert_eq!(
            link_custom_emoji_id("tg:emojis?id=1"),
            Err("Custom emoji URL must have host \"emoji\"".into())
        );
        assert_eq!(
            link_custom_emoji_id("tg://emoji#id=1"),
            Err("Custom emoji URL must have an emoji identifier".into())
        );
        assert_eq!(
            link_custom_emoji_id("tg://emoji?id=025"),
            Err("Invalid custom emoji identifier specified".into())
        );
    }
}
