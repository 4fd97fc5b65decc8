//! Object names: Kubernetes (and Compose) want RFC 1123 labels (lowercase letters, digits and
//! `-`, at most 63 characters), where the topology allows `_`, `.` and capitals.

use std::collections::BTreeMap;

use super::{ExportError, Result};
use crate::schema::Topology;

/// The longest base name of a StatefulSet: its pods carry a `controller-revision-hash` label of
/// NAME-HASH (63 characters at most, the hash up to 11 with its dash) and are named NAME-N.
const MAX_STATEFULSET: usize = 52;

/// `name` as an RFC 1123 label: lowercase, `_` and `.` made `-`.
pub fn label(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '_' | '.' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The base names of the objects of each cluster and proxy, checked: valid, short enough, and
/// no two the same.
#[derive(Clone, Debug)]
pub struct Names {
    /// Per cluster: its label (objects `LABEL-meta`, `LABEL-replica`).
    pub clusters: Vec<String>,
    /// Per proxy: its objects' name, `proxy-LABEL`.
    pub proxies: Vec<String>,
}

impl Names {
    pub fn new(t: &Topology) -> Result<Names> {
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut claim = |object: String, owner: String| -> Result<()> {
            if object.len() > MAX_STATEFULSET {
                return Err(ExportError::Name {
                    what: owner,
                    name: object,
                    why: format!(
                        "object names of at most {MAX_STATEFULSET} characters are needed; shorten the name"
                    ),
                });
            }
            let bad_edge = |c: Option<char>| !c.is_some_and(|c| c.is_ascii_alphanumeric());
            if bad_edge(object.chars().next()) || bad_edge(object.chars().last()) {
                return Err(ExportError::Name {
                    what: owner,
                    name: object,
                    why: "an object name must start and end with a letter or digit".into(),
                });
            }
            match seen.insert(object.clone(), owner.clone()) {
                Some(first) => Err(ExportError::Clash { first, second: owner, object }),
                None => Ok(()),
            }
        };
        let mut clusters = Vec::new();
        for c in &t.clusters {
            let l = label(&c.name);
            for kind in ["meta", "replica"] {
                claim(format!("{l}-{kind}"), format!("cluster `{}`", *c.name))?;
            }
            clusters.push(l);
        }
        let mut proxies = Vec::new();
        for p in &t.proxies {
            let n = format!("proxy-{}", label(&p.name));
            claim(n.clone(), format!("proxy `{}`", *p.name))?;
            proxies.push(n);
        }
        Ok(Names { clusters, proxies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_lowercase_with_dashes() {
        assert_eq!(label("DC_1.east"), "dc-1-east");
    }
}
