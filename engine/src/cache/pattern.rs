//! Key patterns: the globs of `ttlPolicies` and `warmingConfig.patterns`.
//!
//! `*` matches any run of characters (including none and including `:`), `?` exactly one
//! character; every other character matches itself. A pattern with no wildcard names a key
//! *namespace*: `prices` matches the key `prices` and every key that starts with `prices:`, so the
//! short map form of `ttlPolicies` (`prices: "5m"`) reads as users mean it.
//!
//! When several patterns match a key, the most specific one wins: the one with the most literal
//! (non-wildcard) characters, then the one written first. `vm:aws:*` therefore beats `vm:*`, and
//! an exact key beats any glob.

/// A validated key pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// Number of literal characters, the pattern's specificity.
    literals: usize,
    /// No `*` or `?`: matches the key itself and the namespace `text:`.
    namespace: bool,
}

impl Pattern {
    /// Reads a pattern; an empty one or one with whitespace or control characters is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a pattern must not be empty (use \"*\" to match every key)".into());
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "pattern {text:?} contains {c:?}; patterns are keys with `*` (any run) and `?` (one character)"
            ));
        }
        let literals = text.chars().filter(|&c| c != '*' && c != '?').count();
        let namespace = literals == text.chars().count();
        Ok(Pattern { text: text.to_owned(), literals, namespace })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Literal characters: the higher, the more specific.
    pub fn specificity(&self) -> usize {
        self.literals
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        if self.namespace {
            return key == self.text
                || (key.len() > self.text.len()
                    && key.starts_with(&self.text)
                    && key[self.text.len()..].starts_with(':'));
        }
        glob(&self.text, key)
    }
}

/// Iterative glob with one back-tracking point (the last `*`): no recursion, O(|p|·|k|) at worst.
fn glob(pattern: &str, key: &str) -> bool {
    // Work on chars so `?` matches one character, not one byte.
    let p: Vec<char> = pattern.chars().collect();
    let k: Vec<char> = key.chars().collect();
    let (mut pi, mut ki) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ki < k.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == k[ki])) {
            pi += 1;
            ki += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ki));
            pi += 1;
        } else if let Some((sp, sk)) = star {
            pi = sp + 1;
            ki = sk + 1;
            star = Some((sp, sk + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, k: &str) -> bool {
        Pattern::parse(p).expect("valid").matches(k)
    }

    #[test]
    fn globs() {
        assert!(m("vm:*", "vm:aws:i-1"));
        assert!(m("vm:*", "vm:"));
        assert!(!m("vm:*", "vmx"));
        assert!(m("*:health", "vm:r1:health"));
        assert!(!m("*:health", "vm:r1:healthy"));
        assert!(m("price:?", "price:a"));
        assert!(!m("price:?", "price:ab"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*", ""));
        assert!(m("é?", "éü"));
    }

    #[test]
    fn namespaces() {
        assert!(m("prices", "prices"));
        assert!(m("prices", "prices:aws:m5"));
        assert!(!m("prices", "pricesx"));
        assert!(!m("prices", "price"));
    }

    #[test]
    fn bad_patterns() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("vm: *").is_err());
    }
}
