//! Any text as a valid DNS label: what Route 53 stores and every resolver on the way accepts. RFC 1035 section 2.3.1
//! ("preferred name syntax": letters, digits and hyphens, starting with a letter or digit, ending with one, at most
//! 63 octets); RFC 1123 section 2.1 allows the leading digit. Lower case because Route 53 stores names in lower case
//! ("Amazon Route 53 ... DNS domain name format": https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/DomainNameFormat.html),
//! so what we compare with what we read back must be lower case too.

/// RFC 1035 2.3.4: labels are 63 octets or less.
pub const MAX: usize = 63;

/// `text` made a valid label: lower case, every run of other characters one '-', no '-' at either end, at most
/// [`MAX`] long; `fallback` (itself a valid label) when nothing is left.
pub fn label(text: &str, fallback: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX));
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= MAX {
            break;
        }
    }
    out.truncate(MAX);
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        fallback.to_string()
    } else {
        out.to_string()
    }
}

/// `base-suffix`, `base` shortened so that the whole stays a valid label; `suffix` is kept whole (it is what makes
/// the name unique), and must itself be a valid label.
pub fn with_suffix(base: &str, suffix: &str) -> String {
    let room = MAX.saturating_sub(suffix.len() + 1);
    let base = base[..base.len().min(room)].trim_end_matches('-');
    if base.is_empty() {
        suffix.to_string()
    } else {
        format!("{base}-{suffix}")
    }
}

/// What [`label`] guarantees.
pub fn is_valid(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= MAX
        && l.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        assert_eq!(label("Web Server #1", "x"), "web-server-1");
        assert_eq!(label("--db__primary--", "x"), "db-primary");
        assert_eq!(label("Ünïcode", "x"), "n-code");
        assert_eq!(label("***", "host"), "host");
        assert_eq!(label(&"a".repeat(100), "x").len(), MAX);
        assert_eq!(
            label(&format!("{}-b", "a".repeat(62)), "x"),
            "a".repeat(62),
            "no trailing '-' after truncation"
        );
        assert_eq!(with_suffix("web", "0abc"), "web-0abc");
        assert_eq!(with_suffix(&"w".repeat(63), "0123456789abcdef0").len(), MAX);
        assert_eq!(with_suffix("", "0abc"), "0abc");
        assert!(!is_valid("-a") && !is_valid("a-") && !is_valid("A") && !is_valid(""));
    }

    proptest! {
        #[test]
        fn labels_are_always_valid(text in ".{0,200}", fallback in "[a-z0-9]{1,10}") {
            let l = label(&text, &fallback);
            prop_assert!(is_valid(&l), "{l:?} from {text:?}");
        }

        #[test]
        fn suffixed_labels_are_valid_and_keep_the_suffix(text in ".{0,200}", suffix in "[a-z0-9]{1,20}") {
            let l = with_suffix(&label(&text, "x"), &suffix);
            prop_assert!(is_valid(&l), "{l:?}");
            prop_assert!(l.ends_with(&suffix));
        }
    }
}
