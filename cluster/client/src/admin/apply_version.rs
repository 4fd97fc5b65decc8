//! The cluster's topology state version (issue #26): what `tern apply -f FILE` plans against
//! and compare-and-sets before it changes anything, so two applies planned against the same
//! state cannot both win (docs/topology.md, "The version rule").

use tern_core::Result;
use tern_proto::pb;

use super::AdminClient;

/// What a compare-and-set of the topology state version found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopologyVersionBump {
    /// It was the expected version; it is now `version` (one more).
    Bumped { version: u64 },
    /// It was another version (`version`, as read after the refusal): nothing changed. `why`
    /// names the cluster and both versions.
    Refused { version: u64, why: String },
}

impl AdminClient {
    /// The cluster's topology state version, as its meta leader holds it.
    pub async fn topology_version(&self) -> Result<u64> {
        self.call(pb::Empty {}, |mut c, r| async move { c.apply_version_get(r).await })
            .await
            .map(|s| s.version)
            .map_err(|e| e.context("ask for the cluster's topology state version"))
    }

    /// Compare-and-set: increments the topology state version if it is `expect`, refuses if
    /// not. A bump whose answer was lost and is retried by the call is refused (the version
    /// moved): the refusal errs on the safe side, a re-plan reads the new version.
    pub async fn bump_topology_version(&self, expect: u64) -> Result<TopologyVersionBump> {
        let req = pb::ApplyVersionBumpRequest { expect };
        let s = self
            .call(req, |mut c, r| async move { c.apply_version_bump(r).await })
            .await
            .map_err(|e| e.context(format!("bump the cluster's topology state version from {expect}")))?;
        Ok(if s.refused {
            TopologyVersionBump::Refused { version: s.version, why: s.refusal }
        } else {
            TopologyVersionBump::Bumped { version: s.version }
        })
    }
}
