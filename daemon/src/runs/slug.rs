//! Branch slugs: `Add OAuth login (v2)!` → `add-oauth-login-v2`, `Café menü` → `cafe-menu`.

/// Longest slug; long feature texts are cut at a word boundary.
pub const MAX_LEN: usize = 48;

/// Lowercase ASCII words joined by `-`, at most [`MAX_LEN`] bytes; `feature` when nothing is left.
pub fn slugify(text: &str) -> String {
    let ascii = deunicode::deunicode(text);
    let mut slug = String::new();
    for word in ascii
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let extra = word.len() + usize::from(!slug.is_empty());
        if slug.len() + extra > MAX_LEN {
            if slug.is_empty() {
                slug.push_str(&word[..MAX_LEN].to_ascii_lowercase());
            }
            break;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    if slug.is_empty() {
        "feature".to_owned()
    } else {
        slug
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Add OAuth login (v2)!"), "add-oauth-login-v2");
        assert_eq!(slugify("  --  "), "feature");
        assert_eq!(slugify("Ünïcödé naïve café"), "unicode-naive-cafe");
        assert_eq!(slugify(&"x".repeat(100)).len(), MAX_LEN);
        let long =
            slugify("implement the whole user authentication subsystem with oauth and roles");
        assert!(long.len() <= MAX_LEN, "{long}");
        assert!(!long.ends_with('-'));
        assert_eq!(long, "implement-the-whole-user-authentication");
    }

    proptest::proptest! {
        /// Whatever the feature text, the slug is a short, clean branch component.
        #[test]
        fn any_text_gives_a_clean_slug(text in "\\PC{0,120}") {
            let s = slugify(&text);
            proptest::prop_assert!(!s.is_empty() && s.len() <= MAX_LEN, "{s:?}");
            proptest::prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{s:?}");
            proptest::prop_assert!(!s.starts_with('-') && !s.ends_with('-') && !s.contains("--"), "{s:?}");
        }
    }
}
