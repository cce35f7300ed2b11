//! `Config::from_toml_str` on any text must not panic (an error naming the key is fine), and a
//! config it accepts must survive `to_commented_toml` and parse back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parley_server::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml_str(text) else {
        return;
    };
    let printed = config.to_commented_toml();
    let reparsed = Config::from_toml_str(&printed)
        .unwrap_or_else(|error| panic!("printed config does not parse: {error}\n{printed}"));
    assert_eq!(
        reparsed, config,
        "printed config parses to a different config"
    );
});
