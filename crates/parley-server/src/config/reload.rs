//! What a live reload (SIGHUP or REHASH) may change: the keys that take effect at once, and for
//! the rest, which of them changed and so wait for a restart. The server loads the new config as
//! at start ([`Config::effective`]) and asks [`Config::restart_needed`] what it cannot apply.

use super::docs::SECTION_DOCS;
use super::Config;

/// Keys that take effect on a reload (SIGHUP or REHASH); every other key needs a restart.
pub const RELOADABLE: &[(&str, &str)] = &[
    ("server", "motd"),
    ("flood", "enabled"),
    ("flood", "burst"),
    ("flood", "lines_per_second"),
    ("accounts", "registration"),
    ("accounts", "allow_plaintext_login"),
    ("operators", "admins"),
    ("operators", "moderators"),
    ("operators", "moderator_permissions"),
    ("operators", "auto_oper"),
    ("operators", "broadcast"),
    ("operators", "broadcast_interval_secs"),
    ("operators", "opers"),
];

impl Config {
    /// The dotted names of the keys that differ between `self` and `other` and need a restart.
    pub fn restart_needed(&self, other: &Config) -> Vec<String> {
        let (Ok(a), Ok(b)) = (toml::Table::try_from(self), toml::Table::try_from(other)) else {
            return Vec::new();
        };
        let mut changed = Vec::new();
        for (section, _) in SECTION_DOCS {
            let (Some(x), Some(y)) = (a.get(*section), b.get(*section)) else {
                continue;
            };
            let (Some(x), Some(y)) = (x.as_table(), y.as_table()) else {
                continue;
            };
            for (key, value) in x {
                if y.get(key) != Some(value) && !RELOADABLE.contains(&(section, key.as_str())) {
                    changed.push(format!("{section}.{key}"));
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_needed_lists_only_fixed_keys() {
        let old = Config::default();
        let mut new = old.clone();
        new.server.motd = "new motd".into();
        new.operators.admins = vec!["root".into()];
        assert!(old.restart_needed(&new).is_empty());
        new.limits.nick_len = 12;
        new.listen.plain = vec!["127.0.0.1:7000".into()];
        assert_eq!(
            old.restart_needed(&new),
            ["listen.plain", "limits.nick_len"]
        );
        assert!(old.to_commented_toml().contains("Takes effect on reload"));
    }
}
