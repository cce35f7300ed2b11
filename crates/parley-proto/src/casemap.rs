//! Case-insensitive comparison under CASEMAPPING=ascii: only A-Z fold, so a nick or channel key
//! is a plain lowercase string and `wildcard_match` needs no tables. Ban masks and other IRC globs
//! are matched here without allocating, with backtracking limited to the last '*'.

/// CASEMAPPING=ascii: lowercase A-Z only. Used for nick and channel keys.
pub fn casefold(s: &str) -> String {
    s.to_ascii_lowercase()
}

enum MaskToken {
    AnyRun,
    AnyOne,
    Literal(char),
}

/// The mask token starting at byte `at`, with the byte index just after it.
fn mask_token(mask: &str, at: usize) -> Option<(MaskToken, usize)> {
    let mut chars = mask.get(at..)?.chars();
    let c = chars.next()?;
    let after = at + c.len_utf8();
    Some(match c {
        '*' => (MaskToken::AnyRun, after),
        '?' => (MaskToken::AnyOne, after),
        // A trailing '\' escapes nothing, so it stands for itself.
        '\\' => match chars.next() {
            Some(escaped) => (MaskToken::Literal(escaped), after + escaped.len_utf8()),
            None => (MaskToken::Literal('\\'), after),
        },
        other => (MaskToken::Literal(other), after),
    })
}

/// IRC glob: '*' any run, '?' one char, '\' escapes; case-insensitive (ascii casemapping)
pub fn wildcard_match(mask: &str, text: &str) -> bool {
    let (mut m, mut t) = (0usize, 0usize);
    // Where to resume after the most recent '*': mask index after it, text index it has eaten to.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        let token = mask_token(mask, m);
        if let Some((MaskToken::AnyRun, next)) = token {
            resume = Some((next, t));
            m = next;
            continue;
        }
        let text_char = text.get(t..).and_then(|rest| rest.chars().next());
        match (token, text_char) {
            (None, None) => return true,
            (Some((MaskToken::AnyOne, next)), Some(c)) => {
                m = next;
                t += c.len_utf8();
                continue;
            }
            (Some((MaskToken::Literal(want), next)), Some(c)) if want.eq_ignore_ascii_case(&c) => {
                m = next;
                t += c.len_utf8();
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last '*' swallow one more character, or fail if there is none.
        let Some((star_next, star_t)) = resume else {
            return false;
        };
        let Some(c) = text.get(star_t..).and_then(|rest| rest.chars().next()) else {
            return false;
        };
        let eaten = star_t + c.len_utf8();
        resume = Some((star_next, eaten));
        m = star_next;
        t = eaten;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn casefold_touches_ascii_letters_only() {
        assert_eq!(casefold("NiCk[]\\~É"), "nick[]\\~É");
    }

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("", "", true),
            ("", "x", false),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("a**c", "abc", true),
            ("?", "é", true),
            ("?", "", false),
            ("??", "a", false),
            ("*!*@*.example.com", "Nick!User@host.EXAMPLE.com", true),
            ("*!*@*.example.com", "nick!user@example.com", false),
            ("NICK!*@*", "nick!u@h", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("a\\?", "a?", true),
            ("a\\?", "ab", false),
            ("a\\\\b", "a\\b", true),
            ("a\\", "a\\", true),
            ("[x]", "[X]", true),
            ("[x]", "x", false),
        ];
        for (mask, text, expected) in cases {
            assert_eq!(wildcard_match(mask, text), expected, "{mask:?} vs {text:?}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let mask = "*a".repeat(20) + "b";
        let text = "a".repeat(200);
        assert!(!wildcard_match(&mask, &text));
    }
}
