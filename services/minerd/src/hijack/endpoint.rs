//! Comparing pool endpoints the way firmware report them: `stratum+tcp://Host:3333/`,
//! `stratum://host:3333` and `host:3333` are the same endpoint.

/// A pool URL reduced to what identifies the endpoint: lower-case `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(String);

impl Endpoint {
    pub fn of(url: &str) -> Endpoint {
        let trimmed = url.trim();
        let without_scheme = match trimmed.find("://") {
            Some(i) => &trimmed[i + 3..],
            None => trimmed,
        };
        // A user-info part (`user@host`) or a path does not change where the miner connects.
        let host_port = without_scheme
            .rsplit_once('@')
            .map_or(without_scheme, |(_, h)| h);
        let host_port = host_port.split('/').next().unwrap_or(host_port);
        Endpoint(host_port.to_ascii_lowercase())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether a pool entry looks like a firmware developer fee: some firmware mine a share of
/// the time for their author under such names (the user names the fee account).
pub fn looks_like_devfee(url: &str, user: &str) -> bool {
    const MARKS: [&str; 4] = ["devfee", "dev-fee", "dev_fee", "developer"];
    let url = url.to_ascii_lowercase();
    let user = user.to_ascii_lowercase();
    MARKS
        .iter()
        .any(|mark| url.contains(mark) || user.contains(mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_case_slash_and_userinfo_do_not_matter() {
        let a = Endpoint::of("stratum+tcp://Proxy.Site:3333/");
        assert_eq!(a, Endpoint::of("stratum://proxy.site:3333"));
        assert_eq!(a, Endpoint::of("proxy.site:3333"));
        assert_eq!(a, Endpoint::of("stratum+tcp://w1@proxy.site:3333"));
        assert_ne!(a, Endpoint::of("proxy.site:3334"));
    }

    #[test]
    fn devfee_names_are_recognised() {
        assert!(looks_like_devfee("stratum+tcp://pool.x:3333", "DevFee.1"));
        assert!(looks_like_devfee(
            "stratum+tcp://devfee.pool.x:3333",
            "acct"
        ));
        assert!(!looks_like_devfee(
            "stratum+tcp://pool.x:3333",
            "client7.w12"
        ));
    }
}
