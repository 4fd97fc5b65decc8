//! Commands that later issues fill. They are part of the command tree now so that `--help`
//! shows the whole shape of Tern; running one says plainly that it is not available yet and
//! which issue brings it.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Planned {
    /// Snapshots of tables in S3-compatible storage. [not available yet: backup issue]
    #[command(subcommand)]
    Backup(BackupVerb),
}

#[derive(Debug, Subcommand)]
pub enum BackupVerb {
    /// Take a backup of tables now.
    Create,
    /// List backups.
    List,
    /// Restore a backup into a new table (re-partitioned if asked); it serves once complete.
    Restore(Box<super::backup_restore::RestoreArgs>),
    /// Manage backup policies (interval, retention, target).
    Policy,
}

impl Planned {
    fn describe(&self) -> (&'static str, &'static str) {
        match self {
            Planned::Backup(_) => ("tern backup", "the backup issue"),
        }
    }

    pub fn run(self, output: super::OutputFormat) -> anyhow::Result<()> {
        if let Planned::Backup(BackupVerb::Restore(args)) = self {
            return super::backup_restore::run(*args, output);
        }
        let (cmd, issue) = self.describe();
        anyhow::bail!(
            "`{cmd}` is not available yet: it arrives with {issue}. \
             See `tern --help` for what works today."
        )
    }
}
