//! The `Meta` calls of the topology state version (`state/apply_version.rs`, issue #26): read
//! it, or compare-and-set it. A refused bump is an answer (`refused`), not an error, so the
//! caller can tell "state changed since plan" from a failed call.

use tern_core::Error;
use tern_proto::pb;
use tonic::Status;

use crate::service::MetaService;
use crate::state::{Command, Response as Applied};

impl MetaService {
    pub(crate) fn do_apply_version_get(&self) -> Result<pb::ApplyVersionStatus, Status> {
        self.leader()?;
        let version = self.group.read(|s| s.0.topology_version);
        Ok(pb::ApplyVersionStatus { version, refused: false, refusal: String::new() })
    }

    pub(crate) async fn do_apply_version_bump(
        &self,
        r: pb::ApplyVersionBumpRequest,
    ) -> Result<pb::ApplyVersionStatus, Status> {
        let applied = self.write(Command::BumpTopologyVersion { expect: r.expect }).await?;
        let version = self.group.read(|s| s.0.topology_version);
        match applied {
            Applied::Done => {
                tracing::info!("topology state version bumped from {} to {version}", r.expect);
                Ok(pb::ApplyVersionStatus { version, refused: false, refusal: String::new() })
            }
            Applied::Refused(refusal) => Ok(pb::ApplyVersionStatus { version, refused: true, refusal }),
            other => Err(tern_proto::status::to_status(&Error::invariant(format!(
                "bump topology version returned {other:?}"
            )))),
        }
    }
}
