//! Credentials and settings from the AWS shared files, for hosts set up with
//! `aws configure` rather than `AWS_*` variables (object_store reads only the
//! variables). `$AWS_PROFILE` (else `default`) selects the section of
//! `$AWS_SHARED_CREDENTIALS_FILE` (else `~/.aws/credentials`) and of
//! `$AWS_CONFIG_FILE` (else `~/.aws/config`, where it is `[profile NAME]`).
//! Variables win over the files, as in the AWS tools.

use std::collections::HashMap;
use std::path::PathBuf;

/// The settings of one profile that object_store understands.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Profile {
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint_url: Option<String>,
}

impl Profile {
    /// The profile named by `$AWS_PROFILE` (or `default`), from the files
    /// that exist; empty when none does.
    pub(crate) fn from_files() -> Profile {
        let name = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        let file = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(default))
        };
        let read = |path: PathBuf| std::fs::read_to_string(path).unwrap_or_default();
        let credentials = read(file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"));
        let config = read(file("AWS_CONFIG_FILE", ".aws/config"));
        Profile::parse(&name, &credentials, &config)
    }

    /// The profile `name` from the two files' texts.
    pub(crate) fn parse(name: &str, credentials: &str, config: &str) -> Profile {
        let mut keys = section(credentials, name);
        let config_name = if name == "default" {
            name.to_owned()
        } else {
            format!("profile {name}")
        };
        for (k, v) in section(config, &config_name) {
            keys.entry(k).or_insert(v);
        }
        let mut take = |k: &str| keys.remove(k);
        Profile {
            access_key_id: take("aws_access_key_id"),
            secret_access_key: take("aws_secret_access_key"),
            session_token: take("aws_session_token"),
            region: take("region"),
            endpoint_url: take("endpoint_url"),
        }
    }
}

/// The `key = value` pairs of INI section `[name]`.
fn section(text: &str, name: &str) -> HashMap<String, String> {
    let mut inside = false;
    let mut out = HashMap::new();
    for line in text.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = header.trim() == name;
        } else if inside && !line.starts_with(['#', ';']) {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_profile_takes_keys_from_credentials_and_region_from_config() {
        let credentials = "[default]\naws_access_key_id = D\n\n[lab]\naws_access_key_id=K\naws_secret_access_key = S\n";
        let config = "[default]\nregion = eu-west-1\n[profile lab]\n# a comment\nregion = us-west-2\nendpoint_url = http://seaweed:8333\n";
        let lab = Profile::parse("lab", credentials, config);
        assert_eq!(lab.access_key_id.as_deref(), Some("K"));
        assert_eq!(lab.secret_access_key.as_deref(), Some("S"));
        assert_eq!(lab.region.as_deref(), Some("us-west-2"));
        assert_eq!(lab.endpoint_url.as_deref(), Some("http://seaweed:8333"));
        let default = Profile::parse("default", credentials, config);
        assert_eq!(default.access_key_id.as_deref(), Some("D"));
        assert_eq!(default.region.as_deref(), Some("eu-west-1"));
        assert_eq!(Profile::parse("none", credentials, config), Profile::default());
    }
}
