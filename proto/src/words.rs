//! Counted words for messages people read: "1 commit", "2 commits", "1 task", "3 tasks".

/// `n` and `thing`, with an "s" when `n` is not 1.
/// Dollars for people: cents once it is a dollar or more, else four places (`$0.0020`).
pub fn usd(amount: f64) -> String {
    if amount.abs() >= 1.0 {
        format!("${amount:.2}")
    } else {
        format!("${amount:.4}")
    }
}

pub fn count(n: impl Into<u64>, thing: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(super::count(1u32, "commit"), "1 commit");
        assert_eq!(super::count(0u32, "task"), "0 tasks");
        assert_eq!(super::count(3usize as u64, "active run"), "3 active runs");
    }
}
