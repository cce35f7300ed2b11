//! Reading a config: the file (a byte-order mark dropped), the spanned TOML parse, the
//! environment, and `--data-dir`, into the [`Config`] the server runs with. Every failure becomes
//! a [`ConfigError`] naming the file, the dotted key and its line (or the variable), and what would
//! be accepted instead, with a "did you mean" for a misspelt key.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use super::docs::{default_table, one_line_value, KEY_DOCS, SECTION_DOCS};
use super::{Config, ENV_PREFIX};

/// Why a configuration could not be used.
///
/// `path` is the file the text came from (`None` for [`Config::from_toml_str`]). `line` is 1-based;
/// `0` means the key is not in the file (its default value, or a `Config` built in code, failed
/// validation), and the message then names no line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}; check that it exists and is readable", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}TOML syntax error: {message}; fix the file at that spot", syntax_location(.path, *.line, *.column))]
    Syntax {
        path: Option<PathBuf>,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}unknown key `{key}` ({}); fix the spelling or remove it", location(.path, *.line), unknown_key_hint(.key))]
    UnknownKey {
        path: Option<PathBuf>,
        key: String,
        line: usize,
    },
    #[error("{}invalid value for `{key}`: {message}", location(.path, *.line))]
    InvalidValue {
        path: Option<PathBuf>,
        key: String,
        line: usize,
        message: String,
    },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
}

impl Config {
    /// Parses and validates configuration text; errors carry no file path.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        parse(text, None)
    }

    /// Reads, parses and validates the config file at `path`; errors name the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        parse(&read_config(path)?, Some(path))
    }

    /// The configuration the server runs with: the file (or the defaults), then the environment,
    /// then a `--data-dir` given on the command line.
    ///
    /// `server.data_dir` comes out absolute. A relative one from the file is taken from the
    /// file's directory, not the working directory: the file is what says where the data is, and
    /// `parleyd --config /etc/parley/parley.toml users add` must find the server's data from any
    /// directory. One from `--data-dir` or `PARLEY_SERVER__DATA_DIR` is taken from the working
    /// directory, as paths typed on a command line are.
    pub fn effective(path: Option<&Path>, data_dir: Option<&Path>) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let env_sets_data_dir = vars.iter().any(|(var, _)| {
            var.strip_prefix(ENV_PREFIX)
                .is_some_and(|name| name.eq_ignore_ascii_case("SERVER__DATA_DIR"))
        });
        // The file and the environment are checked together: a key the file leaves out (a
        // password kept in the environment) is not an error in the file.
        let mut config = match path {
            Some(path) => {
                let text = read_config(path)?;
                parse_then(&text, Some(path), |config| config.apply_env(vars))?
            }
            None => Config::default().with_env(vars)?,
        };
        if let Some(dir) = data_dir {
            config.server.data_dir = dir.to_path_buf();
        } else if let (Some(file), false) = (path, env_sets_data_dir) {
            if config.server.data_dir.is_relative() {
                let base = file.parent().unwrap_or(Path::new(""));
                config.server.data_dir = base.join(&config.server.data_dir);
            }
        }
        config.server.data_dir = crate::data_dir::absolute(&config.server.data_dir);
        config.derive_node_server_name();
        Ok(config)
    }
}

/// The `file:line: ` (or `line N: `) prefix of an error message; empty when neither is known.
fn location(path: &Option<PathBuf>, line: usize) -> String {
    match (path, line) {
        (Some(path), 0) => format!("{}: ", path.display()),
        (Some(path), line) => format!("{}:{line}: ", path.display()),
        (None, 0) => String::new(),
        (None, line) => format!("line {line}: "),
    }
}

/// The `file:line:column: ` (or `line N, column M: `) prefix of a syntax error.
fn syntax_location(path: &Option<PathBuf>, line: usize, column: usize) -> String {
    match (path, line) {
        (Some(path), 0) => format!("{}: ", path.display()),
        (Some(path), line) => format!("{}:{line}:{column}: ", path.display()),
        (None, 0) => String::new(),
        (None, line) => format!("line {line}, column {column}: "),
    }
}

/// What the user probably meant by an unknown dotted key: the keys that do exist there.
pub(super) fn unknown_key_hint(key: &str) -> String {
    let (section, leaf) = match key.rsplit_once('.') {
        Some((section, leaf)) => (section, leaf),
        None => ("", key),
    };
    let known: Vec<&str> = if section.is_empty() {
        SECTION_DOCS.iter().map(|(name, _)| *name).collect()
    } else {
        KEY_DOCS
            .iter()
            .filter(|(s, _, _)| *s == section)
            .map(|(_, k, _)| *k)
            .collect()
    };
    let mut hint = if section.is_empty() {
        let sections: Vec<String> = known.iter().map(|s| format!("[{s}]")).collect();
        format!("known sections: {}", sections.join(", "))
    } else if known.is_empty() {
        format!("[{section}] has no keys of its own")
    } else {
        format!("known keys in [{section}]: {}", known.join(", "))
    };
    if let Some(home) = KEY_DOCS
        .iter()
        .find(|(s, k, _)| *k == leaf && *s != section)
        .map(|(s, _, _)| s)
    {
        let _ = write!(hint, "; `{leaf}` belongs in [{home}]");
    } else if let Some(near) = known
        .iter()
        .filter(|k| edit_distance(k, leaf) <= 2)
        .min_by_key(|k| edit_distance(k, leaf))
    {
        let _ = write!(hint, "; did you mean `{near}`?");
    }
    hint
}

/// Levenshtein distance, for "did you mean" on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

/// A config file's text; editors on some systems save a byte-order mark, which TOML does not allow.
fn read_config(path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_owned(),
        None => text,
    })
}

/// Parse, deserialize and validate, turning every failure into an error that names key and line.
fn parse(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    parse_then(text, path, |config| Ok((config, Vec::new())))
}

/// Parse, let `adjust` change the result (environment overrides, naming the keys it set), then
/// check: an invalid key from the file is reported at its line, one from the environment by
/// its variable.
pub(super) fn parse_then(
    text: &str,
    path: Option<&Path>,
    adjust: impl FnOnce(Config) -> Result<(Config, Vec<String>), ConfigError>,
) -> Result<Config, ConfigError> {
    let path_buf = path.map(Path::to_path_buf);
    let document = DeTable::parse(text).map_err(|error| {
        let (line, column) = error
            .span()
            .map_or((0, 0), |span| line_and_column(text, span.start));
        ConfigError::Syntax {
            path: path_buf.clone(),
            line,
            column,
            message: error.message().trim().to_owned(),
        }
    })?;
    let config = Config::deserialize(toml::de::Deserializer::from(document.clone()))
        .map_err(|error| deserialize_error(text, document.get_ref(), &error, path_buf.clone()))?;
    let (config, overridden) = adjust(config)?;
    config.check().map_err(|invalid| {
        if overridden.iter().any(|key| key == invalid.key) {
            return ConfigError::Env {
                var: format!(
                    "{ENV_PREFIX}{}",
                    invalid.key.replace('.', "__").to_ascii_uppercase()
                ),
                message: invalid.message,
            };
        }
        let segments: Vec<&str> = invalid.key.split('.').collect();
        let line = span_of(document.get_ref(), &segments, invalid.item)
            .map_or(0, |span| line_and_column(text, span.start).0);
        ConfigError::InvalidValue {
            path: path_buf.clone(),
            key: invalid.key.to_owned(),
            line,
            message: invalid.message,
        }
    })?;
    Ok(config)
}

/// Turns a serde error (unknown field, wrong type) into one naming the dotted key found at its span.
fn deserialize_error(
    text: &str,
    document: &DeTable<'_>,
    error: &toml::de::Error,
    path: Option<PathBuf>,
) -> ConfigError {
    let span = error.span();
    let segments = span
        .as_ref()
        .and_then(|span| key_path_at(document, span.start))
        .unwrap_or_default();
    let key = segments.join(".");
    let line = span.map_or(0, |span| line_and_column(text, span.start).0);
    let message = error.message().trim();
    if message.starts_with("unknown field") {
        return ConfigError::UnknownKey { path, key, line };
    }
    let found = if let Some(rest) = message.strip_prefix("invalid type: ") {
        rest.split_once(", expected")
            .map(|(found, _)| found.to_owned())
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        // serde says "invalid value" for an integer that does not fit the key's type.
        rest.split_once(", expected")
            .map(|(found, _)| format!("{found}, which is negative or too large"))
    } else {
        None
    };
    let expected = expected_for(&segments);
    let message = match (found, expected) {
        (Some(found), Some(expected)) => format!("found {found}; expected {expected}"),
        (None, Some(expected)) => format!("{message}; expected {expected}"),
        (_, None) => message.to_owned(),
    };
    ConfigError::InvalidValue {
        path,
        key,
        line,
        message,
    }
}

/// What a key accepts, described from the type and value of its default.
fn expected_for(segments: &[String]) -> Option<String> {
    let defaults = toml::Value::Table(default_table());
    let mut value = &defaults;
    for segment in segments {
        value = value.get(segment.as_str())?;
    }
    let shown = one_line_value(value);
    Some(match value {
        toml::Value::Integer(_) => format!("a whole number, like {shown}"),
        toml::Value::Float(_) => format!("a number, like {shown}"),
        toml::Value::Boolean(_) => "true or false".to_owned(),
        toml::Value::String(_) => format!("a quoted string, like {shown}"),
        toml::Value::Array(_) => format!("a list of strings, like {shown}"),
        toml::Value::Table(_) => format!("a section, written as a [{}] header", segments.join(".")),
        toml::Value::Datetime(_) => format!("a date, like {shown}"),
    })
}

/// The dotted key whose name or value covers byte `offset` of the document.
fn key_path_at(table: &DeTable<'_>, offset: usize) -> Option<Vec<String>> {
    for (key, value) in table.iter() {
        let name = key.get_ref().to_string();
        if covers(&key.span(), offset) {
            return Some(vec![name]);
        }
        let inner = match value.get_ref() {
            DeValue::Table(inner) => key_path_at(inner, offset),
            DeValue::Array(items) => items.iter().find_map(|item| match item.get_ref() {
                DeValue::Table(inner) => key_path_at(inner, offset),
                _ => None,
            }),
            _ => None,
        };
        if let Some(mut rest) = inner {
            rest.insert(0, name);
            return Some(rest);
        }
        if covers(&value.span(), offset) {
            return Some(vec![name]);
        }
    }
    None
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// Where a dotted key (or one element of its list) is written, if it is in the document at all.
fn span_of(table: &DeTable<'_>, segments: &[&str], item: Option<usize>) -> Option<Range<usize>> {
    let (first, rest) = segments.split_first()?;
    let (key, value) = table.get_key_value(*first)?;
    if !rest.is_empty() {
        return match (value.get_ref(), item) {
            (DeValue::Table(inner), _) => span_of(inner, rest, item),
            // A key inside one table of a list of tables (`[[operators.opers]]`): `item`
            // picks the table, and the key is found in it.
            (DeValue::Array(items), Some(index)) => {
                let table = items.get(index)?;
                match table.get_ref() {
                    DeValue::Table(inner) => {
                        span_of(inner, rest, None).or_else(|| Some(table.span()))
                    }
                    _ => None,
                }
            }
            _ => None,
        };
    }
    match (item, value.get_ref()) {
        (Some(index), DeValue::Array(items)) => items.get(index).map(|item| item.span()),
        _ => Some(key.span()),
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line_start = before
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let line = before.iter().filter(|&&byte| byte == b'\n').count() + 1;
    // Count characters, not bytes: skip UTF-8 continuation bytes.
    let column = before[line_start..]
        .iter()
        .filter(|&&byte| byte & 0xC0 != 0x80)
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{invalid, unknown};
    use crate::config::{FloodConfig, ListenConfig, LogConfig};

    #[test]
    fn empty_text_gives_the_defaults() {
        let config = Config::from_toml_str("").expect("empty config is valid");
        assert_eq!(config, Config::default());
        assert_eq!(config.server.default_channel, "#lobby");
        assert_eq!(config.listen.plain, ["127.0.0.1:6667"]);
        assert_eq!(config.limits.send_queue_bytes, 262_144);
        assert!(config.server.motd.contains("Parley") && config.server.motd.contains("#lobby"));
        Config::default()
            .validate()
            .expect("the defaults are valid");
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::from_toml_str(
            "[server]\nname = \"irc.example.org\"\n\n[limits]\nnick_len = 20\n",
        )
        .expect("partial config is valid");
        assert_eq!(config.server.name, "irc.example.org");
        assert_eq!(config.limits.nick_len, 20);
        assert_eq!(config.server.network, "Parley");
        assert_eq!(config.limits.channel_len, 50);
        assert_eq!(config.listen, ListenConfig::default());
        assert_eq!(config.flood, FloodConfig::default());
        assert_eq!(config.log, LogConfig::default());
    }

    #[test]
    fn dotted_keys_work_like_sections() {
        let config = Config::from_toml_str("limits.nick_len = 12\nflood = { burst = 3 }\n")
            .expect("dotted keys and inline tables are valid");
        assert_eq!(config.limits.nick_len, 12);
        assert_eq!(config.flood.burst, 3);
        assert!(config.flood.enabled);
    }

    #[test]
    fn unknown_key_in_section_names_key_and_line() {
        let (key, line) =
            unknown("[server]\nname = \"a\"\n\n[limits]\nnick_len = 9\nnick_lenn = 10\n");
        assert_eq!(key, "limits.nick_lenn");
        assert_eq!(line, 6);
        let error = Config::from_toml_str("[limits]\nnick_lenn = 10\n").expect_err("unknown key");
        let text = error.to_string();
        assert!(
            text.starts_with("line 2: unknown key `limits.nick_lenn`"),
            "{text}"
        );
        assert!(
            text.contains("known keys in [limits]: max_clients,"),
            "{text}"
        );
        assert!(text.contains("did you mean `nick_len`?"), "{text}");
    }

    #[test]
    fn unknown_key_at_top_level_names_key_and_line() {
        let (key, line) = unknown("# comment\n\nbogus = 1\n");
        assert_eq!(key, "bogus");
        assert_eq!(line, 3);
        let (key, line) = unknown("[limits]\nnick_len = 9\n\n[limts]\nx = 1\n");
        assert_eq!(key, "limts");
        assert_eq!(line, 4);
        let text = Config::from_toml_str("nick_len = 5\n")
            .expect_err("top-level nick_len is unknown")
            .to_string();
        assert!(
            text.contains("known sections: [server], [listen]"),
            "{text}"
        );
        assert!(text.contains("`nick_len` belongs in [limits]"), "{text}");
    }

    #[test]
    fn unknown_subtable_names_dotted_key() {
        let (key, line) = unknown("[limits]\nnick_len = 9\n[limits.extra]\na = 1\n");
        assert_eq!(key, "limits.extra");
        assert_eq!(line, 3);
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let (key, line, message) = invalid("[limits]\n\nnick_len = \"x\"\n");
        assert_eq!(key, "limits.nick_len");
        assert_eq!(line, 3);
        assert_eq!(
            message,
            "found string \"x\"; expected a whole number, like 30"
        );

        let (key, line, _) = invalid("[flood]\nenabled = \"yes\"\n");
        assert_eq!((key.as_str(), line), ("flood.enabled", 2));

        let (key, line, message) = invalid("[listen]\nplain = \"127.0.0.1:6667\"\n");
        assert_eq!((key.as_str(), line), ("listen.plain", 2));
        assert!(message.contains("a list of strings"), "{message}");

        let (key, line, message) = invalid("\nlimits = 5\n");
        assert_eq!((key.as_str(), line), ("limits", 2));
        assert!(message.contains("[limits] header"), "{message}");

        let (key, line, message) = invalid("[limits]\nmax_clients = -1\n");
        assert_eq!((key.as_str(), line), ("limits.max_clients", 2));
        assert_eq!(
            message,
            "found integer `-1`, which is negative or too large; expected a whole number, like 10000"
        );
    }

    #[test]
    fn wrong_type_inside_list_names_the_list() {
        let (key, line, _) = invalid("[listen]\nplain = [\n  \"127.0.0.1:6667\",\n  7000,\n]\n");
        assert_eq!(key, "listen.plain");
        assert_eq!(line, 4);
    }

    #[test]
    fn bad_listen_address_names_the_element_line() {
        let (key, line, message) =
            invalid("[listen]\nplain = [\n  \"127.0.0.1:6667\",\n  \"abc\",\n]\n");
        assert_eq!(key, "listen.plain");
        assert_eq!(line, 4);
        assert!(
            message.starts_with("\"abc\" is not an address like 127.0.0.1:6667"),
            "{message}"
        );
        let text = Config::from_toml_str("[listen]\nplain = [\"abc\"]\n")
            .expect_err("bad address")
            .to_string();
        assert!(
            text.starts_with("line 2: invalid value for `listen.plain`: \"abc\" is not an address"),
            "{text}"
        );
        let (key, line, _) = invalid("[listen]\nplain = []\ntls = []\n[web]\nlisten = []\n");
        assert_eq!((key.as_str(), line), ("listen.plain", 2));
        let (key, line, _) = invalid("[listen]\ntls = [\"nope\"]\n");
        assert_eq!((key.as_str(), line), ("listen.tls", 2));
        Config::from_toml_str("[listen]\nplain = []\n").expect("TLS alone is enough");
    }

    #[test]
    fn invalid_default_value_has_no_line() {
        // A default-valued key that fails only because of another key: the line is that of the key
        // present in the file when there is one, else 0.
        let (key, line, _) = invalid("[limits]\nchannel_len = 3\n");
        assert_eq!((key.as_str(), line), ("server.default_channel", 0));
        let error = Config::from_toml_str("[limits]\nchannel_len = 3\n").expect_err("too long");
        assert!(error
            .to_string()
            .starts_with("invalid value for `server.default_channel`"));

        let mut config = Config::default();
        config.limits.nick_len = 0;
        match config.validate() {
            Err(ConfigError::InvalidValue {
                key,
                line: 0,
                path: None,
                ..
            }) => {
                assert_eq!(key, "limits.nick_len");
            }
            other => panic!("expected InvalidValue, got {other:?}"),
        }
    }

    #[test]
    fn syntax_error_gives_line_and_column() {
        match Config::from_toml_str("[server]\nname = \"ok\"\n[limits\nnick_len = 3\n") {
            Err(ConfigError::Syntax {
                line,
                column,
                path,
                message,
            }) => {
                assert_eq!(line, 3);
                assert_eq!(column, 8);
                assert_eq!(path, None);
                assert!(!message.is_empty());
            }
            other => panic!("expected Syntax, got {other:?}"),
        }
        match Config::from_toml_str("[limits]\nnick_len = 3\nnick_len = 4\n") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, 3),
            other => panic!("expected Syntax for a duplicate key, got {other:?}"),
        }
        match Config::from_toml_str("[server]\nname = \"unterminated\n") {
            Err(ConfigError::Syntax { line, .. }) => assert_eq!(line, 2),
            other => panic!("expected Syntax for an open string, got {other:?}"),
        }
        let text = Config::from_toml_str("[limits\n")
            .expect_err("open table header")
            .to_string();
        assert!(
            text.starts_with("line 1, column 8: TOML syntax error: "),
            "{text}"
        );
    }

    #[test]
    fn load_reads_a_file_and_errors_name_it() {
        let dir = std::env::temp_dir().join(format!("parley-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let good = dir.join("good.toml");
        std::fs::write(&good, "[limits]\nnick_len = 12\n").expect("write config");
        let config = Config::load(&good).expect("valid file loads");
        assert_eq!(config.limits.nick_len, 12);

        let bad = dir.join("parley.toml");
        std::fs::write(
            &bad,
            "[server]\nname = \"a\"\n\n\n\n\n[limits]\nnick_lenn = 1\n",
        )
        .expect("write config");
        let error = Config::load(&bad).expect_err("unknown key");
        match &error {
            ConfigError::UnknownKey { path, key, line } => {
                assert_eq!(path.as_deref(), Some(bad.as_path()));
                assert_eq!(key, "limits.nick_lenn");
                assert_eq!(*line, 8);
            }
            other => panic!("expected UnknownKey, got {other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "{}:8: unknown key `limits.nick_lenn` (known keys in [limits]: ",
                bad.display()
            )),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }

    #[test]
    fn load_of_missing_file_is_io_error_with_path() {
        let missing = std::env::temp_dir().join("parley-config-test-does-not-exist/parley.toml");
        match Config::load(&missing) {
            Err(ConfigError::Io { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Io, got {other:?}"),
        }
        let text = Config::load(&missing).expect_err("missing").to_string();
        assert!(
            text.starts_with(&format!("cannot read config file {}:", missing.display())),
            "{text}"
        );
    }

    /// A clear password where the hash goes is refused at load, at its line, and the error
    /// never repeats it; a real hash loads, and the printed config hides it.
    #[test]
    fn an_operator_block_needs_an_argon2id_hash_not_a_password() {
        let block = |hash: &str| {
            format!(
                "[operators]\nauto_oper = true\n\n[[operators.opers]]\nname = \"alice\"\n\
                 class = \"admin\"\npassword_hash = \"{hash}\"\n"
            )
        };
        let (key, line, message) = invalid(&block("hunter2hunter2"));
        assert_eq!((key.as_str(), line), ("operators.opers.password_hash", 7));
        assert!(message.contains("not an Argon2id hash"), "{message}");
        assert!(message.contains("parleyd oper hash"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
        let (key, line, _) = invalid(&block("$argon2id$v=19$m=19456,t=2,p=1$garbage"));
        assert_eq!((key.as_str(), line), ("operators.opers.password_hash", 7));

        let hash = "$argon2id$v=19$m=19456,t=2,p=1$pHhSU8GHLMoxRx5j2InAyw$CPSrjQWKx/bo7+m3kFmNAG62jHS1Hofos19KhhUylLY";
        let config = Config::from_toml_str(&block(hash)).expect("a real hash loads");
        let opers = &config.operators.opers;
        assert_eq!(opers.len(), 1);
        assert_eq!(opers[0].class, crate::config::OperBlockClass::Admin);
        assert!(!format!("{config:?}").contains(hash));
        assert!(!config.to_commented_toml().contains(hash));

        let twice = format!(
            "{}\n[[operators.opers]]\nname = \"ALICE\"\npassword_hash = \"{hash}\"\n",
            block(hash)
        );
        let (key, line, message) = invalid(&twice);
        assert_eq!((key.as_str(), line), ("operators.opers.name", 10));
        assert!(message.contains("already named"), "{message}");
    }
}
