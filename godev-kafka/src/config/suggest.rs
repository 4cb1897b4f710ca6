//! Did-you-mean: the known key closest to a misspelt one.

/// The candidate closest to `unknown` by edit distance (ignoring case), if one is close
/// enough to be a likely typo: at most a third of its length away, and at least one edit.
pub(super) fn closest<'a>(
    unknown: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let unknown = unknown.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| (distance(&unknown, candidate), candidate))
        .filter(|&(d, candidate)| d <= (candidate.chars().count() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, candidate)| candidate)
}

/// Edit distance in characters, counting a swap of two neighbours as one edit (optimal
/// string alignment), so `kafak` is one edit from `kafka`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between a[..i] and b[..j].
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("grup_id", "group_id"), 1);
        assert_eq!(distance("controll", "control"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kafak", "kafka"), 1);
    }

    #[test]
    fn suggests_only_close_keys() {
        let keys = ["brokers", "group_id", "client", "codec", "source"];
        assert_eq!(closest("grup_id", keys), Some("group_id"));
        assert_eq!(closest("GROUP_ID", keys), Some("group_id"));
        assert_eq!(closest("broker", keys), Some("brokers"));
        assert_eq!(closest("codek", keys), Some("codec"));
        assert_eq!(closest("verbosity", keys), None);
        assert_eq!(closest("x", keys), None);
    }
}
