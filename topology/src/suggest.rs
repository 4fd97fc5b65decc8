//! "did you mean …?": the closest of the allowed names to a misspelt one, by edit distance.

/// The candidate closest to `word` if it is close enough to be a likely typo (at most 2 edits,
/// a transposition counting as one, and at most a third of the word's length) and no other
/// candidate is as close (`dc3` suggests neither `dc1` nor `dc2`).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let max = (word.chars().count() / 3).clamp(1, 2);
    let mut near: Vec<(usize, &str)> = candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= max)
        .collect();
    near.sort_by_key(|(d, _)| *d);
    match near.as_slice() {
        [(d, c), (d2, _), ..] if d < d2 => Some(c),
        [(_, c)] => Some(c),
        _ => None,
    }
}

/// `, did you mean `x`?` or, with no close candidate, `; expected one of `a`, `b``.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!(", did you mean `{c}`?"),
        None if candidates.is_empty() => String::new(),
        None => format!("; expected one of {}", quoted(candidates)),
    }
}

/// `` `a`, `b`, `c` ``
pub fn quoted(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_matched_and_strangers_are_not() {
        let fields = ["name", "partitions", "replicas", "copies", "default-ttl", "links"];
        assert_eq!(closest("partitons", fields), Some("partitions"));
        assert_eq!(closest("replcias", fields), Some("replicas"));
        assert_eq!(closest("defualt-ttl", fields), Some("default-ttl"));
        assert_eq!(closest("colour", fields), None);
        assert_eq!(closest("nam", fields), Some("name"));
        assert_eq!(hint("colour", &["a", "b"]), "; expected one of `a`, `b`");
        assert_eq!(closest("dc3", ["dc1", "dc2"]), None, "a tie suggests nothing");
    }
}
