//! What a password must be (OWASP ASVS 5.0, 6.2): 12 to 128 characters, no composition rules,
//! not one of the commonly used passwords shipped with medvault.

use std::collections::HashSet;
use std::sync::OnceLock;

pub const MIN_CHARS: usize = 12;
pub const MAX_CHARS: usize = 128;

static COMMON_PASSWORDS_TEXT: &str = include_str!("../../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON_PASSWORDS_TEXT
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    })
}

/// Why `password` is refused for `username`, or `None` when it is acceptable.
pub fn problem(password: &str, username: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Some(format!(
            "Use at least {MIN_CHARS} characters; a short sentence is easy to remember."
        ));
    }
    if chars > MAX_CHARS {
        return Some(format!("Use at most {MAX_CHARS} characters."));
    }
    let lowered = password.to_lowercase();
    if common_passwords().contains(lowered.as_str()) {
        return Some("This password is one of the most commonly used; choose another.".into());
    }
    if !username.is_empty() && lowered.contains(&username.to_lowercase()) {
        return Some("A password must not contain the username.".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_limits_count_characters_not_bytes() {
        assert!(problem("short", "u").is_some());
        assert!(problem("ééééééééééé", "u").is_some()); // 11 characters, 22 bytes
        assert_eq!(problem("éééééééééééé", "u"), None);
        assert!(problem(&"x".repeat(129), "u").is_some());
        assert_eq!(problem(&"xy".repeat(64), "u"), None);
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        assert!(problem("qwertyuiop123", "u").is_some());
        assert!(problem("QWERTYUIOP123", "u").is_some());
    }

    #[test]
    fn no_composition_rules() {
        assert_eq!(problem("all lower case words here", "u"), None);
    }

    #[test]
    fn the_username_is_refused_inside_the_password() {
        assert!(problem("drhouse-is-the-best", "drhouse").is_some());
    }
}
