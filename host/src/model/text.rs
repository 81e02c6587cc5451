//! Text that comes from a guest or a request and ends up in the database: what PostgreSQL
//! cannot store is cleaned where it enters, and free text is bounded.

/// The longest failure message kept, in bytes (longer ones are cut and marked).
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// What a NUL character becomes in stored text (PostgreSQL's `text` and `jsonb` refuse NUL).
pub const NUL_REPLACEMENT: char = '\u{FFFD}';

/// Returns `text` with every NUL replaced by [`NUL_REPLACEMENT`]; borrows when there is none.
pub fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', &NUL_REPLACEMENT.to_string())
    } else {
        text
    }
}

/// Cuts `text` to at most `max` bytes on a character boundary, marking the cut with
/// `" [truncated]"` after it.
pub fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        text.truncate(floor_char_boundary(&text, max));
        text.push_str(" [truncated]");
    }
    text
}

/// Returns the longest prefix of `text` of at most `max` bytes that ends on a char boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    &text[..floor_char_boundary(text, max)]
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Returns whether `key` can be an idempotency or store key: 1 to `max` bytes, with no control
/// characters (NUL among them, which the database cannot store).
pub fn is_valid_key(key: &str, max: usize) -> bool {
    !key.is_empty() && key.len() <= max && !key.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_replaced_and_the_rest_kept() {
        assert_eq!(without_nul("a\0b".into()), "a\u{FFFD}b");
        assert_eq!(without_nul("plain".into()), "plain");
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let cut = truncated("é".repeat(10), 5);
        assert_eq!(cut, "éé [truncated]");
        assert_eq!(prefix("éé", 3), "é");
        assert_eq!(truncated("short".into(), 5), "short");
    }

    #[test]
    fn keys_are_short_and_without_control_characters() {
        assert!(is_valid_key("order/7", 10));
        assert!(!is_valid_key("", 10));
        assert!(!is_valid_key("a\0b", 10));
        assert!(!is_valid_key("\u{1b}[2J", 10));
        assert!(!is_valid_key(&"k".repeat(11), 10));
    }
}
