//! A tenant's outbound-HTTP allow-list: the origins its handlers may call. No I/O here.
//!
//! An entry is `scheme://host[:port]`: the scheme is `https` or `http`, the port defaults to
//! the scheme's, and `*.example.com` matches every subdomain of `example.com` (not the apex).
//! Host names are compared in lower case, without a trailing dot, after IDNA conversion.
//! Tenants get no bare `*`, no IP literals and no CIDRs: which addresses may be reached is
//! the SSRF guard's business and the operator's (see `docs/architecture.md`). An empty list
//! allows nothing.

use std::fmt;

/// The most entries one tenant's list may hold.
pub const MAX_ALLOWED_HOSTS: usize = 100;

/// The longest entry, in bytes.
const MAX_ENTRY_BYTES: usize = 300;

/// A URL scheme an entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP: reachable only inside networks the operator allows.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// Parses `http` or `https`, in any case.
    pub fn parse(text: &str) -> Option<Scheme> {
        match text.to_ascii_lowercase().as_str() {
            "http" => Some(Scheme::Http),
            "https" => Some(Scheme::Https),
            _ => None,
        }
    }

    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Which host names an entry matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Exactly this name (normalised).
    Exact(String),
    /// Every name ending in `.` and this suffix; not the suffix itself.
    Subdomains(String),
}

/// One parsed entry of an allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigin {
    /// The scheme it allows.
    pub scheme: Scheme,
    /// The hosts it allows.
    pub host: HostPattern,
    /// The port it allows (the scheme's default when the entry names none).
    pub port: u16,
}

/// Why an allow-list entry, or a host a request names, is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllowListError {
    /// The entry does not have the `scheme://host[:port]` shape; the reason is given.
    #[error("{entry:?} is not scheme://host[:port]: {reason}")]
    Malformed {
        /// The entry as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The entry names an IP address: tenants list host names only.
    #[error("{0:?} names an IP address; list host names only")]
    IpLiteral(String),
    /// The entry is a bare `*`, or a wildcard too wide (`*.com`).
    #[error("{0:?} is too wide: a wildcard must be *.name.tld")]
    TooWide(String),
    /// The list is longer than [`MAX_ALLOWED_HOSTS`].
    #[error("at most {MAX_ALLOWED_HOSTS} entries")]
    TooMany,
}

/// Returns `host` normalised for comparison: IDNA (punycode), lower case, no trailing dot;
/// `Err` with a reason when it is not a host name, or is an IP address.
pub fn normalize_host(host: &str) -> Result<String, HostError> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(HostError::NotAName);
    }
    if host.starts_with('[') || host.parse::<std::net::IpAddr>().is_ok() {
        return Err(HostError::IpLiteral);
    }
    match url::Host::parse(host) {
        Ok(url::Host::Domain(name)) => {
            let name = name.to_ascii_lowercase();
            let labels_ok = name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            if labels_ok {
                Ok(name)
            } else {
                Err(HostError::NotAName)
            }
        }
        // WHATWG parsing reads `0x7f.1` or `2130706433` as IPv4: an IP all the same.
        Ok(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => Err(HostError::IpLiteral),
        Err(_) => Err(HostError::NotAName),
    }
}

/// Why a host is not a name [`normalize_host`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    /// It is an IP address, in any notation.
    IpLiteral,
    /// It is not a valid host name.
    NotAName,
}

impl AllowedOrigin {
    /// Parses one entry.
    pub fn parse(entry: &str) -> Result<AllowedOrigin, AllowListError> {
        let malformed = |reason| AllowListError::Malformed {
            entry: entry.to_string(),
            reason,
        };
        if entry.len() > MAX_ENTRY_BYTES {
            return Err(malformed("longer than 300 bytes"));
        }
        let Some((scheme, rest)) = entry.split_once("://") else {
            return Err(malformed("the scheme (https:// or http://) is required"));
        };
        let scheme = Scheme::parse(scheme).ok_or(malformed("the scheme must be https or http"))?;
        if rest.contains(['/', '?', '#', '@', '\\']) || rest.chars().any(char::is_whitespace) {
            return Err(malformed("no path, query, user or spaces"));
        }
        if rest.starts_with('[') {
            return Err(AllowListError::IpLiteral(entry.to_string()));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or(malformed("the port must be a number from 1 to 65535"))?;
                (host, port)
            }
            None => (rest, scheme.default_port()),
        };
        if host == "*" {
            return Err(AllowListError::TooWide(entry.to_string()));
        }
        let (wildcard, name) = match host.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, host),
        };
        if name.contains('*') {
            return Err(malformed("`*` may only start the host, as *.name.tld"));
        }
        let name = normalize_host(name).map_err(|e| match e {
            HostError::IpLiteral => AllowListError::IpLiteral(entry.to_string()),
            HostError::NotAName => malformed("the host is not a valid host name"),
        })?;
        let host = if wildcard {
            // `*.com` would allow a whole top-level domain.
            if !name.contains('.') {
                return Err(AllowListError::TooWide(entry.to_string()));
            }
            HostPattern::Subdomains(name)
        } else {
            HostPattern::Exact(name)
        };
        Ok(AllowedOrigin { scheme, host, port })
    }

    /// Returns whether this entry allows `scheme://host:port` (`host` normalised).
    pub fn allows(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        self.scheme == scheme
            && self.port == port
            && match &self.host {
                HostPattern::Exact(name) => host == name,
                HostPattern::Subdomains(suffix) => host
                    .strip_suffix(suffix.as_str())
                    .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            }
    }

    /// The label metrics give requests this entry allows: the host, or the wildcard
    /// pattern (so that a tenant's subdomains cannot multiply the label's values).
    pub fn label(&self) -> String {
        match &self.host {
            HostPattern::Exact(name) => name.clone(),
            HostPattern::Subdomains(suffix) => format!("*.{suffix}"),
        }
    }
}

/// A tenant's parsed allow-list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<AllowedOrigin>,
}

impl AllowList {
    /// Parses every entry, failing on the first that is not acceptable (the error names it).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowList, AllowListError> {
        if entries.len() > MAX_ALLOWED_HOSTS {
            return Err(AllowListError::TooMany);
        }
        let entries = entries
            .iter()
            .map(|e| AllowedOrigin::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(AllowList { entries })
    }

    /// Parses what was stored, skipping entries that do not parse (stored before entries
    /// were checked): a bad entry allows nothing, it does not disable the list.
    pub fn parse_lenient<S: AsRef<str>>(entries: &[S]) -> AllowList {
        AllowList {
            entries: entries
                .iter()
                .filter_map(|e| AllowedOrigin::parse(e.as_ref()).ok())
                .collect(),
        }
    }

    /// Returns the entry that allows `scheme://host:port` (`host` normalised), if any.
    pub fn find(&self, scheme: Scheme, host: &str, port: u16) -> Option<&AllowedOrigin> {
        self.entries.iter().find(|e| e.allows(scheme, host, port))
    }

    /// Whether the list allows nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> AllowList {
        AllowList::parse(entries).unwrap()
    }

    #[test]
    fn exact_entries_match_scheme_host_and_port() {
        let l = list(&["https://api.stripe.com", "http://vendor.test:8080"]);
        assert!(l.find(Scheme::Https, "api.stripe.com", 443).is_some());
        assert!(l.find(Scheme::Https, "api.stripe.com", 8443).is_none());
        assert!(l.find(Scheme::Http, "api.stripe.com", 80).is_none());
        assert!(l.find(Scheme::Https, "stripe.com", 443).is_none());
        assert!(l.find(Scheme::Https, "evil-api.stripe.com", 443).is_none());
        assert!(l.find(Scheme::Http, "vendor.test", 8080).is_some());
        assert!(l.find(Scheme::Http, "vendor.test", 80).is_none());
    }

    #[test]
    fn a_wildcard_matches_subdomains_but_not_the_apex_or_lookalikes() {
        let l = list(&["https://*.shipengine.com:8443"]);
        assert!(l.find(Scheme::Https, "api.shipengine.com", 8443).is_some());
        assert!(l.find(Scheme::Https, "a.b.shipengine.com", 8443).is_some());
        assert!(l.find(Scheme::Https, "shipengine.com", 8443).is_none());
        assert!(l.find(Scheme::Https, "evilshipengine.com", 8443).is_none());
        assert!(l.find(Scheme::Https, ".shipengine.com", 8443).is_none());
        assert_eq!(
            l.find(Scheme::Https, "x.shipengine.com", 8443)
                .unwrap()
                .label(),
            "*.shipengine.com"
        );
    }

    #[test]
    fn entries_are_normalised() {
        let l = list(&["HTTPS://API.Example.COM.", "https://bücher.example"]);
        assert!(l.find(Scheme::Https, "api.example.com", 443).is_some());
        assert!(
            l.find(Scheme::Https, "xn--bcher-kva.example", 443)
                .is_some()
        );
        assert_eq!(
            normalize_host("API.example.com.").unwrap(),
            "api.example.com"
        );
    }

    #[test]
    fn bad_entries_are_refused_and_named() {
        for (entry, wanted) in [
            ("api.example.com", "scheme"),
            ("ftp://api.example.com", "scheme"),
            ("https://api.example.com/v1", "path"),
            ("https://user@api.example.com", "path"),
            ("https://api.example.com:0", "port"),
            ("https://api.example.com:99999", "port"),
            ("https://*", "too wide"),
            ("*", "scheme"),
            ("https://*.com", "too wide"),
            ("https://a.*.example.com", "`*`"),
            ("https://127.0.0.1", "IP address"),
            ("https://10.0.0.1:8080", "IP address"),
            ("https://[::1]", "IP address"),
            ("https://2130706433", "IP address"),
            ("https://0x7f.1", "IP address"),
            ("https://10.0.0.0/8", "path"),
            ("https://exa mple.com", "spaces"),
            ("https://", "host name"),
        ] {
            let error = AllowedOrigin::parse(entry).unwrap_err().to_string();
            assert!(error.contains(wanted), "{entry}: {error}");
            assert!(error.contains(&format!("{entry:?}")), "{entry}: {error}");
        }
    }

    #[test]
    fn ip_literals_are_never_names() {
        for host in ["127.0.0.1", "::1", "[::1]", "0177.0.0.1", "0x7f000001"] {
            assert_eq!(normalize_host(host), Err(HostError::IpLiteral), "{host}");
        }
    }

    #[test]
    fn stored_entries_that_do_not_parse_allow_nothing() {
        let l = AllowList::parse_lenient(&["api.example.com", "https://ok.example.com"]);
        assert!(l.find(Scheme::Https, "api.example.com", 443).is_none());
        assert!(l.find(Scheme::Https, "ok.example.com", 443).is_some());
        assert!(AllowList::default().is_empty());
    }

    #[test]
    fn lists_are_bounded() {
        let many: Vec<String> = (0..=MAX_ALLOWED_HOSTS)
            .map(|i| format!("https://h{i}.example.com"))
            .collect();
        assert_eq!(AllowList::parse(&many), Err(AllowListError::TooMany));
    }
}
